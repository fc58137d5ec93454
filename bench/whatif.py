"""``twin bench whatif``: latency of the what-if prediction and of its inverse on a calibrated line model,
and each prediction checked against the plant after a setpoint step (``bench.whatif_steps``).

Goals: a prediction within 50 ms, an inverse within 200 ms; after every step the measured quality inside
the predicted interval and within 1 % (loading) or 2 % (porosity, thickness) of the prediction. The
latency model is calibrated on a recorded nominal hour; setpoints and targets are drawn around the
operating point.
"""

from __future__ import annotations

import time
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from models.line import LineModel
from models.replay import replay
from models.whatif import WhatIf
from plant.recording import record


def calibrated_whatif(seed: int = 1) -> WhatIf:
    rec = record("nominal", seed, 3600)
    model = LineModel(calibration_s=1800, calibration_cells=16)
    replay(model, rec.process, rec.cells)
    return WhatIf(model)


def measure(whatif: WhatIf, calls: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Wall-clock seconds of each predict and inverse call."""
    rng = np.random.default_rng(seed)
    base = whatif.base
    predict, inverse = [], []
    for _ in range(calls):
        setpoints = {
            "pump_flow": base["pump_flow"] * rng.uniform(0.9, 1.1),
            "web_speed": base["web_speed"] * rng.uniform(0.9, 1.1),
            "line_load": base["line_load"] * rng.uniform(0.8, 1.2),
            "roll_temperature": base["roll_temperature"] + rng.uniform(-10, 10),
        }
        started = time.perf_counter()
        whatif.predict(setpoints)
        predict.append(time.perf_counter() - started)
        targets = {"dry_loading": rng.uniform(19.0, 21.0), "porosity": rng.uniform(28.0, 32.0)}
        started = time.perf_counter()
        whatif.inverse(targets)
        inverse.append(time.perf_counter() - started)
    return {"predict": np.array(predict), "inverse": np.array(inverse)}


def whatif_command(
    calls: Annotated[int, typer.Option(min=10, help="calls of each kind")] = 300,
    steps: Annotated[bool, typer.Option(help="also check setpoint steps against the running plant")] = True,
    speed: Annotated[float, typer.Option(help="plant seconds per wall-clock second for the steps")] = 120.0,
) -> None:
    """What-if latency (p50/p99 against 50 ms / 200 ms) and prediction error after setpoint steps."""
    console = Console()
    with console.status("calibrating on a recorded nominal hour"):
        whatif = calibrated_whatif()
    timings = measure(whatif, calls)
    table = Table(title=f"what-if latency over {calls} calls")
    for column in ("call", "p50 ms", "p99 ms", "goal ms"):
        table.add_column(column, justify="right" if column != "call" else "left")
    for name, goal in (("predict", 50), ("inverse", 200)):
        p50, p99 = np.percentile(timings[name], [50, 99]) * 1e3
        table.add_row(name, f"{p50:.2f}", f"{p99:.2f}", str(goal))
    console.print(table)
    if steps:
        _steps(console, speed)


def _steps(console: Console, speed: float) -> None:
    from bench.whatif_steps import STEPS, run_steps, table_rows
    from core.localservices import start_influxd, start_mosquitto

    services = [start_mosquitto(), start_influxd()]
    try:
        with console.status(
            f"{len(STEPS)} setpoint steps through simulator, connectors and twin at {speed:g}x"
        ):
            checks = run_steps(services[0].port, f"http://127.0.0.1:{services[1].port}", speed)
    finally:
        for service in services:
            service.cleanup()
    rows = table_rows(checks)
    table = Table(title="what-if prediction against the settled plant after each setpoint step")
    for column in rows[0]:
        table.add_column(column, justify="left" if column in ("step", "quality") else "right")
    for row in rows:
        table.add_row(*row.values())
    console.print(table)
    bad = [c for c in checks if not (c.inside and c.close)]
    console.print(f"{len(checks) - len(bad)} of {len(checks)} checks inside the interval and the tolerance")
    if bad:
        raise typer.Exit(1)
