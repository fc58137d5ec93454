"""``twin bench whatif``: latency of the what-if prediction and of its inverse on a calibrated line model.

Goals (issue 5): a prediction within 50 ms, an inverse within 200 ms. The model is calibrated on a
recorded nominal hour; setpoints and targets are drawn around the operating point.
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


def whatif_command(calls: Annotated[int, typer.Option(min=10, help="calls of each kind")] = 300) -> None:
    """What-if prediction and inverse latency, p50 and p99, against the 50 ms / 200 ms goals."""
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
