"""``twin bench soak``: the whole stack under load for half an hour, watched for leaks and creeping lag.

Mosquitto and influxd are started here (core.localservices), the simulator, ``twin ingest`` and the twin
in child processes as ``twin bench e2e`` runs them (bench.e2e). Every ``--sample-every-s`` each process's
RSS, open file descriptors and threads are read (psutil), with the samples the twin processed
(``twin_samples_total``), the samples ingest wrote to InfluxDB and ingest's wait histogram
(``linetwin_ingest_wait_seconds``: receipt to written, on the host's clock, so known at any plant speed,
where the source-time latency is not: at 60× the timestamps are plant time, hours ahead). The twin's lag
is a gauge of its last batch (``twin_bus_lag_seconds``), so it is read twice a second and each interval
reports the p99 of those readings; the ingest p99 of an interval comes from the histogram's bucket
deltas over it. The twin's lag is timed from ingest's receipt on the wall clock too.

A leak shows as growth after the warm-up (while it lasts the models calibrate, their feature history
fills, caches settle): each figure's peak over the last readings is compared with its peak over the
first readings after the warm-up (``growth``). A creeping lag shows as later p99s above earlier ones
(``stable``).
"""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import psutil
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

GOAL_GROWTH_PERCENT = 5.0  # issue 16: growth < 5 % after warm-up
GOAL_RATE = 5000.0  # samples/s through the whole stack
#: A p99 is stable when the later half's median is at most this many times the earlier half's, plus
#: ``STABLE_SLACK_S``: the latency buckets are coarse and a lag of a few ms doubles on noise alone.
STABLE_RATIO = 1.5
STABLE_SLACK_S = 0.05
LAG_POLL_S = 0.5
FIGURES = ("rss", "fds", "threads")


@dataclass(frozen=True)
class Growth:
    """One figure just after the warm-up and at the end (peaks, see ``growth``), against the goal."""

    after_warmup: float
    end: float
    goal_percent: float = GOAL_GROWTH_PERCENT

    @property
    def percent(self) -> float:
        if self.after_warmup == 0:
            return 0.0 if self.end == 0 else math.inf
        return (self.end - self.after_warmup) / self.after_warmup * 100

    @property
    def passed(self) -> bool:
        return self.percent < self.goal_percent


def growth(
    times_s: Sequence[float],
    values: Sequence[float],
    warmup_s: float,
    goal_percent: float = GOAL_GROWTH_PERCENT,
) -> Growth:
    """Growth from the readings just after ``warmup_s`` to the last ones: the peak of the first fifth of
    the readings after the warm-up against the peak of the last fifth (one reading each in a short run).

    Peaks, not single readings: influxd's cache and a Python heap saw between snapshots and collections,
    so one reading at a trough against one at a crest would be growth that is not there, and the reverse
    would hide a leak; a leak raises the peaks.
    """
    after = [v for t, v in zip(times_s, values, strict=True) if t >= warmup_s]
    if not after:
        raise ValueError(f"no reading after the warm-up of {warmup_s:g} s")
    window = max(1, len(after) // 5)
    return Growth(max(after[:window]), max(after[-window:]), goal_percent)


def stable(p99s: Sequence[float], ratio: float = STABLE_RATIO, slack_s: float = STABLE_SLACK_S) -> bool:
    """True unless the later half of the intervals' p99s (median) rose above the earlier half's."""
    values = [v for v in p99s if not math.isnan(v)]
    if len(values) < 2:
        return True
    half = len(values) // 2
    return statistics.median(values[-half:]) <= ratio * statistics.median(values[:half]) + slack_s


def histogram_quantile(q: float, before: Mapping[float, float], after: Mapping[float, float]) -> float:
    """The ``q`` quantile of what a cumulative histogram counted between two readings ({le: count}),
    interpolated within its bucket as Prometheus does; nan when nothing was counted."""
    bounds = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in bounds]
    if not counts or counts[-1] <= 0:
        return math.nan
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for le, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bound: that bound is all that is known
            return lower + (le - lower) * (rank - below) / (count - below) if count > below else le
        lower, below = le, count
    return lower


@dataclass(frozen=True)
class Reading:
    """One process at one moment."""

    rss: int
    fds: int
    threads: int


def read_process(process: psutil.Process) -> Reading:
    with process.oneshot():
        return Reading(process.memory_info().rss, process.num_fds(), process.num_threads())


@dataclass
class Snapshot:
    """Everything read at one sampling moment, ``t_s`` seconds after the stack came up."""

    t_s: float
    processes: dict[str, Reading]
    twin_samples: float
    written: float
    latency_buckets: dict[float, float]
    #: the twin's lag gauge, read every ``LAG_POLL_S`` since the previous snapshot
    lags_s: list[float] = field(default_factory=list)


@dataclass
class Interval:
    """What happened between two snapshots."""

    start_s: float
    end_s: float
    twin_rate: float
    written_rate: float
    latency_p99_s: float
    lag_p99_s: float


def intervals(snapshots: Sequence[Snapshot]) -> list[Interval]:
    return [
        Interval(
            a.t_s,
            b.t_s,
            (b.twin_samples - a.twin_samples) / (b.t_s - a.t_s),
            (b.written - a.written) / (b.t_s - a.t_s),
            histogram_quantile(0.99, a.latency_buckets, b.latency_buckets),
            float(np.percentile(b.lags_s, 99)) if b.lags_s else math.nan,
        )
        for a, b in itertools.pairwise(snapshots)
    ]


class Scraper:
    """The twin's and ingest's ``/metrics``, read into the few figures the soak follows."""

    def __init__(self, twin_port: int, ingest_port: int) -> None:
        self.http = httpx.Client(timeout=30.0)  # the twin answers late while a calibration holds its loop
        self.twin = f"http://127.0.0.1:{twin_port}/metrics"
        self.ingest = f"http://127.0.0.1:{ingest_port}/metrics"

    def _samples(self, url: str) -> list[tuple[str, dict[str, str], float]]:
        text = self.http.get(url).raise_for_status().text
        return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]

    def lag_s(self) -> float:
        return max((v for n, _, v in self._samples(self.twin) if n == "twin_bus_lag_seconds"), default=0.0)

    def snapshot(self, t_s: float, processes: dict[str, Reading]) -> Snapshot:
        twin = sum(v for n, _, v in self._samples(self.twin) if n == "twin_samples_total")
        written = 0.0
        buckets: dict[float, float] = {}
        for name, labels, value in self._samples(self.ingest):
            if name == "linetwin_ingest_written_total":
                written += value
            elif name == "linetwin_ingest_wait_seconds_bucket":
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + value  # every connector together
        return Snapshot(t_s, processes, twin, written, buckets)


def _pid(pid: int | None) -> int:
    assert pid is not None, "a process of the stack has not started"
    return pid


def _check_alive(processes: dict[str, psutil.Process]) -> None:
    """Raise for a process of the stack that exited (a child stays a zombie until its parent reaps it)."""
    dead = []
    for name, process in processes.items():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                dead.append(name)
        except psutil.NoSuchProcess:
            dead.append(name)
    if dead:
        raise RuntimeError(f"{', '.join(dead)} stopped during the soak")


def _sample(processes: dict[str, psutil.Process], scraper: Scraper, start: float, until_s: float) -> Snapshot:
    """Read the lag gauge every ``LAG_POLL_S`` until ``until_s``, then everything else once."""
    lags = []
    try:
        while (elapsed := time.monotonic() - start) < until_s:
            time.sleep(min(LAG_POLL_S, until_s - elapsed))
            lags.append(scraper.lag_s())
        _check_alive(processes)
        readings = {name: read_process(p) for name, p in processes.items()}
        snapshot = scraper.snapshot(time.monotonic() - start, readings)
    except httpx.HTTPError as exc:
        _check_alive(processes)  # a process that died is the cause to report, not its silent endpoint
        raise RuntimeError(f"cannot read the metrics: {exc}") from None
    snapshot.lags_s = lags
    return snapshot


def run(
    minutes: float, sample_every_s: float, speed: float, tick_s: float, channels: int, console: Console
) -> list[Snapshot]:
    """Start the stack, sample it for ``minutes``, stop it; the first snapshot is taken as it came up."""
    from bench.e2e import pipeline_settings, twin_process, upstream
    from core.localservices import free_port, start_influxd, start_mosquitto

    mosquitto, influxd = start_mosquitto(), start_influxd()
    files = tempfile.TemporaryDirectory(prefix="lt-bench-soak-")
    try:
        settings = pipeline_settings(
            mosquitto.port,
            influxd.url,
            Path(files.name),
            speed=speed,
            tick_s=tick_s,
            cycler_channels=channels,
        )
        ingest_port = settings.ingest.metrics_port = free_port()
        # plant time runs ``speed`` times the clock: ingest must take timestamps that far ahead
        settings.ingest.max_future_skew_s = max(
            settings.ingest.max_future_skew_s, speed * minutes * 60 + 3600
        )
        scraper = Scraper(settings.twin.port, ingest_port)
        with twin_process(settings) as twin, upstream(settings) as parts:
            pids = {
                "mosquitto": _pid(mosquitto.process.pid if mosquitto.process else None),
                "influxd": _pid(influxd.process.pid if influxd.process else None),
                "simulator": _pid(parts.plant.pid),
                "ingest": _pid(parts.ingest.pid),
                "twin": _pid(twin.pid),
            }
            processes = {name: psutil.Process(pid) for name, pid in pids.items()}
            start = time.monotonic()
            snapshots = [_sample(processes, scraper, start, 0.0)]
            end_s = minutes * 60
            with console.status(f"soak: {minutes:g} minutes through the whole stack") as status:
                while snapshots[-1].t_s < end_s:
                    snapshots.append(
                        _sample(processes, scraper, start, min(snapshots[-1].t_s + sample_every_s, end_s))
                    )
                    last = intervals(snapshots[-2:])[0]
                    status.update(
                        f"soak {last.end_s / 60:.1f} of {minutes:g} min: {last.twin_rate:,.0f} samples/s, "
                        f"ingest p99 {_ms(last.latency_p99_s)} ms, twin lag p99 {_ms(last.lag_p99_s)} ms"
                    )
        return snapshots
    finally:
        mosquitto.cleanup()
        influxd.cleanup()
        files.cleanup()


@dataclass
class Verdict:
    """The soak judged against issue 16's goals, from the first reading after the warm-up on."""

    warmup_s: float
    #: process -> figure (``FIGURES``) -> growth
    growths: dict[str, dict[str, Growth]]
    after: list[Interval]
    #: samples/s after the warm-up: processed by the twin, written to InfluxDB by ingest
    twin_rate: float
    written_rate: float

    @property
    def latency_stable(self) -> bool:
        return stable([i.latency_p99_s for i in self.after])

    @property
    def lag_stable(self) -> bool:
        return stable([i.lag_p99_s for i in self.after])

    def failures(self) -> list[str]:
        """Every goal missed, in words; empty when the soak passed."""
        failed = [
            f"{process} {figure} grew {g.percent:+.1f} %"
            for process, figures in self.growths.items()
            for figure, g in figures.items()
            if not g.passed
        ]
        if min(self.twin_rate, self.written_rate) < GOAL_RATE:
            failed.append(
                f"the stack carried {min(self.twin_rate, self.written_rate):,.0f} samples/s, "
                f"below {GOAL_RATE:,.0f}"
            )
        if not self.latency_stable:
            failed.append("ingest latency p99 rose")
        if not self.lag_stable:
            failed.append("twin lag p99 rose")
        return failed


def judge(snapshots: Sequence[Snapshot], warmup_s: float) -> Verdict:
    times = [s.t_s for s in snapshots]
    growths = {
        process: {
            figure: growth(times, [getattr(s.processes[process], figure) for s in snapshots], warmup_s)
            for figure in FIGURES
        }
        for process in snapshots[0].processes
    }
    base = next(s for s in snapshots if s.t_s >= warmup_s)
    last = snapshots[-1]
    seconds = last.t_s - base.t_s
    return Verdict(
        warmup_s,
        growths,
        [i for i in intervals(snapshots) if i.start_s >= warmup_s],
        (last.twin_samples - base.twin_samples) / seconds if seconds > 0 else 0.0,
        (last.written - base.written) / seconds if seconds > 0 else 0.0,
    )


def _ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1e3:.0f}"


def _change(g: Growth, scale: float = 1.0, digits: int = 0) -> str:
    return f"{g.after_warmup / scale:.{digits}f} → {g.end / scale:.{digits}f} ({g.percent:+.1f} %)"


def process_table(verdict: Verdict) -> Table:
    table = Table(
        title=f"every process: just after the {verdict.warmup_s / 60:g}-minute warm-up → at the end",
        caption=(
            f"goal: each figure grows < {GOAL_GROWTH_PERCENT:g} % after the warm-up; each side is the "
            "peak of a fifth of the readings after the warm-up (at least one)"
        ),
    )
    for column in ("process", "RSS MiB", "open fds", "threads", "goal"):
        table.add_column(column, justify="left" if column == "process" else "right")
    for process, g in verdict.growths.items():
        table.add_row(
            process,
            _change(g["rss"], 2**20, 1),
            _change(g["fds"]),
            _change(g["threads"]),
            "met" if all(x.passed for x in g.values()) else "[bold red]missed[/]",
        )
    return table


def interval_summary_table(verdict: Verdict) -> Table:
    after = verdict.after
    table = Table(
        title=f"per interval after the warm-up ({len(after)} intervals)",
        caption=(
            f"stable: the later half's median p99 ≤ {STABLE_RATIO:g} × the earlier half's + "
            f"{STABLE_SLACK_S * 1e3:.0f} ms; worst = max for a p99, min for a rate"
        ),
    )
    for column in ("figure", "first", "median", "last", "worst", "goal"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name, values, ok in (
        ("ingest receipt → written p99 ms", [i.latency_p99_s for i in after], verdict.latency_stable),
        ("twin lag p99 ms", [i.lag_p99_s for i in after], verdict.lag_stable),
    ):
        known = [v for v in values if not math.isnan(v)] or [math.nan]
        goal = "stable" if ok else "[bold red]rose[/]"
        table.add_row(
            name, _ms(known[0]), _ms(statistics.median(known)), _ms(known[-1]), _ms(max(known)), goal
        )
    for name, rates, mean in (
        ("samples/s processed by the twin", [i.twin_rate for i in after], verdict.twin_rate),
        ("samples/s written to InfluxDB", [i.written_rate for i in after], verdict.written_rate),
    ):
        goal = (
            f"≥ {GOAL_RATE:,.0f}: {'met' if mean >= GOAL_RATE else '[bold red]missed[/]'} ({mean:,.0f} mean)"
        )
        cells = (rates[0], statistics.median(rates), rates[-1], min(rates))
        table.add_row(name, *(f"{r:,.0f}" for r in cells), goal)
    return table


def interval_table(snapshots: Sequence[Snapshot], warmup_s: float) -> Table:
    table = Table(title="every interval (* = warm-up)")
    columns = ("end min", "twin samples/s", "written/s", "ingest p99 ms", "twin lag p99 ms")
    for column in (*columns, *(f"{p} MiB" for p in snapshots[0].processes)):
        table.add_column(column, justify="right")
    for interval, snapshot in zip(intervals(snapshots), snapshots[1:], strict=True):
        table.add_row(
            f"{interval.end_s / 60:.1f}{'*' if interval.start_s < warmup_s else ''}",
            f"{interval.twin_rate:,.0f}",
            f"{interval.written_rate:,.0f}",
            _ms(interval.latency_p99_s),
            _ms(interval.lag_p99_s),
            *(f"{r.rss / 2**20:.1f}" for r in snapshot.processes.values()),
        )
    return table


def plot(snapshots: Sequence[Snapshot], warmup_s: float, path: Path, title: str) -> None:
    """RSS per process (absolute and against its first reading after the warm-up), the p99s and the rate
    over time, to a PNG (matplotlib's Agg canvas: no display, no global pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    minutes = [s.t_s / 60 for s in snapshots]
    ends = [i.end_s / 60 for i in intervals(snapshots)]
    base = next(s for s in snapshots if s.t_s >= warmup_s)
    figure = Figure(figsize=(12, 8), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title)
    rss, change, p99, rate = figure.subplots(2, 2, sharex=True).flat
    for process in snapshots[0].processes:
        values = [s.processes[process].rss for s in snapshots]
        rss.plot(minutes, [v / 2**20 for v in values], marker=".", label=process)
        start = base.processes[process].rss
        change.plot(minutes, [(v - start) / start * 100 for v in values], marker=".", label=process)
    rss.set(title="RSS per process", ylabel="MiB", yscale="log")
    change.axhspan(-GOAL_GROWTH_PERCENT, GOAL_GROWTH_PERCENT, color="tab:green", alpha=0.1)
    change.set(title="RSS against its first reading after the warm-up", ylabel="%")
    every = intervals(snapshots)
    p99.plot(ends, [i.latency_p99_s * 1e3 for i in every], marker=".", label="ingest receipt → written p99")
    p99.set(title="p99 per interval")
    p99.plot(ends, [i.lag_p99_s * 1e3 for i in every], marker=".", label="twin lag p99")
    p99.set(ylabel="ms", xlabel="minutes")
    rate.plot(ends, [i.twin_rate for i in every], marker=".", label="processed by the twin")
    rate.plot(ends, [i.written_rate for i in every], marker=".", label="written to InfluxDB")
    rate.axhline(GOAL_RATE, color="tab:red", linestyle="--", label=f"goal {GOAL_RATE:,.0f}")
    rate.set(title="samples/s per interval", ylabel="samples/s", xlabel="minutes", ylim=(0, None))
    for axes in (rss, change, p99, rate):
        axes.axvspan(0, warmup_s / 60, color="grey", alpha=0.15)
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def soak_command(
    minutes: Annotated[float, typer.Option(min=1, help="wall-clock minutes under load")] = 30.0,
    sample_every_s: Annotated[
        float, typer.Option(min=1, help="seconds between readings of every process")
    ] = 60.0,
    warmup_minutes: Annotated[
        float | None,
        typer.Option(help="minutes before the growth baseline; default 5, or a sixth of a shorter run"),
    ] = None,
    plot_path: Annotated[Path, typer.Option("--plot", help="the PNG to write")] = Path("docs/img/soak.png"),
    speed: Annotated[float, typer.Option(help="plant seconds per wall-clock second")] = 60.0,
    tick_s: Annotated[float, typer.Option(help="plant seconds between coater/calender samples")] = 1.0,
    cycler_channels: Annotated[int, typer.Option(min=1, max=256, help="formation cycler channels")] = 16,
) -> None:
    """The whole stack at ≥ 5,000 samples/s: growth of every process after the warm-up, p99s, rate."""
    warmup = min(5.0, minutes / 6) if warmup_minutes is None else warmup_minutes
    if warmup * 60 + sample_every_s > minutes * 60:
        raise typer.BadParameter(
            "the run must leave at least one reading after the warm-up", param_hint="--minutes"
        )
    console = Console(width=150)
    try:
        snapshots = run(minutes, sample_every_s, speed, tick_s, cycler_channels, console)
    except RuntimeError as exc:
        console.print(f"[bold red]the soak stopped:[/] {exc}")
        raise typer.Exit(1) from None
    verdict = judge(snapshots, warmup * 60)
    console.print(interval_table(snapshots, warmup * 60))
    console.print(process_table(verdict))
    console.print(interval_summary_table(verdict))
    title = (
        f"twin bench soak: {minutes:g} min, readings every {sample_every_s:g} s, warm-up {warmup:g} min "
        f"(shaded); {speed:g}× plant, {tick_s:g} s ticks, {cycler_channels} cycler channels"
    )
    plot(snapshots, warmup * 60, plot_path, title)
    console.print(f"plot: {plot_path}")
    if failures := verdict.failures():
        console.print(f"[bold red]goals missed:[/] {'; '.join(failures)}")
        raise typer.Exit(1)
    console.print("every goal met")
