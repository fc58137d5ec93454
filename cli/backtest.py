"""``twin backtest``: run the live detectors over recorded history and score them against ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.context import run_guarded, settings_from
from core.errors import ConfigError
from models import backtest
from models.detectors import DETECTOR_KINDS

LONG_VALUE = "value"
LONG_KEYS = ("machine", "signal")
TIME_NAMES = ("time", "timestamp", "ts", "datetime", "date")

console = Console()


EXPORTED = "process.parquet"


def exported(path: Path) -> Path:
    """``twin export data`` writes a directory: its wide process table is what the backtest reads."""
    return path / EXPORTED if path.is_dir() and (path / EXPORTED).is_file() else path


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a wide frame with a time index (long format is pivoted); a directory
    written by ``twin export data`` is read as its ``process.parquet``."""
    path = exported(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: cannot read it as {suffix or 'CSV'} ({exc})") from None
    if frame.empty:
        raise ConfigError(f"{path}: no rows")
    time_column = next((c for c in frame.columns if str(c).lower() in TIME_NAMES), None)
    if LONG_VALUE in frame.columns and "signal" in frame.columns and time_column is not None:
        keys = [k for k in LONG_KEYS if k in frame.columns]
        frame["column"] = frame[keys].astype(str).agg(".".join, axis=1)
        frame = frame.pivot_table(index=time_column, columns="column", values=LONG_VALUE, aggfunc="last")
        frame.columns.name = None
    elif time_column is not None:
        frame = frame.set_index(time_column)
    elif not isinstance(frame.index, pd.DatetimeIndex):
        frame.index = pd.date_range("1970-01-01", periods=len(frame), freq="s", tz="UTC")
    if not isinstance(frame.index, pd.DatetimeIndex):
        try:
            frame.index = pd.to_datetime(frame.index, utc=True)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: the time column does not parse as timestamps ({exc})") from None
    elif frame.index.tz is None:
        frame.index = frame.index.tz_localize("UTC")
    return frame.sort_index()


def read_truth(path: Path) -> list[dict[str, object]]:
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON-lines ground-truth file ({exc})") from None
    if any("onset" not in r for r in rows):
        raise ConfigError(f"{path}: every ground-truth record needs an 'onset' timestamp")
    return rows


def _cells_beside(path: Path) -> pd.DataFrame | None:
    """The recorder writes ``<stem>.cells<suffix>`` beside the process table: use it when present."""
    path = exported(path)
    cells_path = path.with_name(f"{path.stem}.cells{path.suffix}")
    if not cells_path.is_file():
        return None
    cells = pd.read_parquet(cells_path) if path.suffix.lower() == ".parquet" else pd.read_csv(cells_path)
    for column in ("formation_start", "formation_end", "aging_end"):
        if column in cells:
            cells[column] = pd.to_datetime(cells[column], utc=True, format="ISO8601")
    return cells


def backtest_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="history: CSV or Parquet, one column per signal or long format, or a twin export data dir"
        ),
    ],
    train: Annotated[Path | None, typer.Option(help="in-control training file (same columns)")] = None,
    train_rows: Annotated[
        int | None, typer.Option(help="use the first N rows as the in-control period (default: 20 %)")
    ] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help="JSON lines of drift onsets to score against")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write detections to .csv or .json")] = None,
    arl0: Annotated[
        float | None,
        typer.Option(min=10, help="in-control average run length per detector, samples [models.arl0]"),
    ] = None,
    detector: Annotated[
        str | None, typer.Option(help=f"{' | '.join(DETECTOR_KINDS)} [models.detector]")
    ] = None,
    per_sample: Annotated[
        Path | None, typer.Option(help="write each row's alarm state (time, in_alarm) to this .csv")
    ] = None,
    hold_s: Annotated[
        float, typer.Option(min=0, help="an alarm episode stands this long after its last detection")
    ] = backtest.HOLD_S,
) -> None:
    """Run the live models and detectors over recorded history; print (and save) the detections."""
    models = settings_from(ctx).models
    arl0 = models.arl0 if arl0 is None else arl0
    detector = models.detector if detector is None else detector

    def job() -> None:
        if detector not in DETECTOR_KINDS:
            raise ConfigError(f"unknown detector {detector!r}: use {', '.join(DETECTOR_KINDS)}")
        if out is not None and out.suffix.lower() not in (".csv", ".json"):
            raise ConfigError(f"{out}: write detections to a .csv or .json file")
        history = read_table(file)
        if train is not None:
            training = read_table(train)
        else:
            rows = train_rows if train_rows is not None else max(len(history) // 5, 2)
            if not 2 <= rows < len(history):
                raise ConfigError(f"--train-rows must be between 2 and {len(history) - 1}")
            training, history = history.iloc[:rows], history.iloc[rows:]
        truth = read_truth(ground_truth) if ground_truth is not None else []
        with Progress(
            TextColumn("[bold]backtest[/]"),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("rows", total=len(history))
            detections = backtest.run(
                history,
                training,
                arl0=arl0,
                detector=detector,
                cells=_cells_beside(file),
                progress=lambda i: progress.update(task, completed=i),
                options=models.model_dump(),
            )
            progress.update(task, completed=len(history))
        _print(detections)
        if out is not None:
            rows_out = [d.row() for d in detections]
            if out.suffix.lower() == ".json":
                out.write_text(json.dumps(rows_out, indent=1) + "\n")
            else:
                pd.DataFrame(rows_out, columns=list(backtest.Detection.__slots__)).to_csv(out, index=False)
            console.print(f"{len(detections)} detections written to {out}")
        if truth:
            _print_score(backtest.score(detections, truth, history.index[0], history.index[-1]))
        index = pd.DatetimeIndex(history.index)
        _print_per_sample(backtest.per_sample(detections, truth, index, hold_s), bool(truth))
        if per_sample is not None:
            states = backtest.alarm_states(detections, index, hold_s)
            frame = pd.DataFrame({"time": index, "in_alarm": states.astype(int)})
            frame.to_csv(per_sample, index=False)
            console.print(f"{len(frame)} rows' alarm states written to {per_sample}")

    run_guarded(job)


def _print(detections: list[backtest.Detection]) -> None:
    table = Table(title=f"{len(detections)} detections")
    for name in ("time", "machine", "signal", "detector", "onset", "magnitude", "cause"):
        table.add_column(name)
    for d in detections:
        signal = f"{d.signal} ({d.channel})" if d.channel else d.signal
        table.add_row(
            f"{d.time:%Y-%m-%d %H:%M:%S}",
            d.machine,
            signal,
            d.detector,
            f"{d.onset:%H:%M:%S}",
            f"{d.magnitude:+.4g} {d.unit}",
            d.cause,
        )
    console.print(table)


def _print_per_sample(result: backtest.PerSample, scored: bool) -> None:
    table = Table(title="per sample and per episode")
    table.add_column("measure")
    table.add_column("value", justify="right")
    before, after = 100 * result.false_alarm_rate, 100 * result.detection_rate
    table.add_row("rows in alarm before the onset (false-alarm rate)", f"{before:.2f} %")
    if scored:
        table.add_row("rows in alarm after the onset (detection rate)", f"{after:.2f} %")
    table.add_row("false alarm episodes per 8 h shift", f"{result.false_episodes_per_shift:.2f}")
    console.print(table)


def _print_score(result: backtest.Score) -> None:
    table = Table(title="score against ground truth")
    table.add_column("drift")
    table.add_column("detection delay")
    for name, delay in result.delays_s.items():
        table.add_row(name, f"{delay / 60:.1f} min")
    for name in result.missed:
        table.add_row(name, "[red]missed[/]")
    console.print(table)
    rate = result.false_alarms_per_shift
    console.print(
        f"false alarms: {result.false_alarms} in {result.monitored_s / 3600:.1f} h "
        f"= {rate if math.isfinite(rate) else 0:.2f} per 8 h shift"
    )
