"""``twin bench arl``: does the generic path keep its stated ARL₀ on data shaped like a plant's?

Each run is an in-control series the twin has never seen: AR(1) with φ = 0.9 (a disturbance through a
control loop), t-distributed innovations with 3 degrees of freedom (heavy tails), and a small in-control
mean shift between the training period and the monitored one (``shift`` in standard deviations of the
series). Every chart is calibrated on the training period and runs until its first alarm (at most
``CAP`` × ARL₀ samples):

- ``TwoScale`` (``models.levelchart``, blocks of ``BLOCK`` samples), the generic path's default chart;
- ``ARCUSUM`` (``models.prewhitened``), the prewhitened CUSUM with its empirical limit
  (``models.detector = "cusum"``);
- a CUSUM on the raw values with Siegmund's Gaussian limit (``models.prewhitened.gaussian_cusum``), as
  the physics features' chart was before either.

The measured ARL is the samples monitored per alarm (censored runs count their samples, not an alarm),
the maximum-likelihood estimate for run lengths that are roughly geometric. The delay rows put the
prewhitened chart's mean delay for a sustained level step beside Lorden's lower bound log(ARL₀)/KL for
the shift its residuals see, (1 − φ)·step/σₑ after the first sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from models.levelchart import TwoScale
from models.prewhitened import ARCUSUM, gaussian_cusum

PHI = 0.9
DOF = 3
TRAINING = 3000
CAP = 10
BLOCK = 60


@dataclass(frozen=True)
class ArlResult:
    chart: str
    arl0: float
    measured: float
    alarms: int
    runs: int

    @property
    def ratio(self) -> float:
        return self.measured / self.arl0


def ar1_t(rng: np.random.Generator, n: int, phi: float = PHI, dof: int = DOF) -> np.ndarray:
    innovations = rng.standard_t(dof, n)
    x = np.empty(n)
    x[0] = innovations[0] / math.sqrt(1 - phi * phi)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + innovations[t]
    return x


def _run_length(detector: Any, series: np.ndarray) -> int:
    for i, value in enumerate(series):
        detector.update(value)
        if detector.drift_detected:
            return i + 1
    return len(series) + 1


def measure(runs: int, arl0: float, shift: float, seed: int = 0, progress: bool = False) -> list[ArlResult]:
    """Measured in-control ARL of both charts over ``runs`` independent series (see module)."""
    rng = np.random.default_rng(seed)
    cap = int(CAP * arl0)
    lengths: dict[str, list[int]] = {
        "two-scale (the default)": [],
        "prewhitened (ARCUSUM)": [],
        "raw, Gaussian limit": [],
    }
    loop = track(range(runs), description="in-control runs") if progress else range(runs)
    for _ in loop:
        x = ar1_t(rng, TRAINING + cap)
        training, monitored = x[:TRAINING], x[TRAINING:] + shift * float(np.std(x[:TRAINING]))
        charts = (
            TwoScale.calibrated(training, arl0, BLOCK),
            ARCUSUM.calibrated(training, arl0),
            gaussian_cusum(training, arl0),
        )
        for name, chart in zip(lengths, charts, strict=True):
            lengths[name].append(_run_length(chart, monitored))
    results = []
    for name, found in lengths.items():
        rl = np.minimum(np.array(found), cap)
        alarms = int((np.array(found) <= cap).sum())
        results.append(ArlResult(name, arl0, float(rl.sum()) / max(alarms, 1), alarms, runs))
    return results


def delays(
    arl0: float, steps: tuple[float, ...] = (1.0, 2.0), runs: int = 200, seed: int = 1
) -> list[tuple[float, float, float]]:
    """(step in σ of the series, mean delay, Lorden bound) of the prewhitened chart."""
    rng = np.random.default_rng(seed)
    out = []
    for step in steps:
        found, bounds = [], []
        for _ in range(runs):
            x = ar1_t(rng, TRAINING + int(CAP * arl0))
            chart = ARCUSUM.calibrated(x[:TRAINING], arl0)
            size = step * float(np.std(x[:TRAINING]))
            found.append(_run_length(chart, x[TRAINING:] + size))
            residual_shift = (1 - float(chart.phi.sum())) * size / chart.sigma
            bounds.append(math.log(arl0) / (residual_shift**2 / 2))
        out.append((step, float(np.mean(found)), float(np.mean(bounds))))
    return out


def arl_command(
    runs: Annotated[int, typer.Option(min=10, help="independent in-control series")] = 1000,
    arl0: Annotated[float, typer.Option(min=10, help="the stated in-control ARL₀, in samples")] = 500.0,
    shift: Annotated[float, typer.Option(help="in-control mean shift, training to monitoring (σ)")] = 0.2,
) -> None:
    """Measured ARL₀ of the two-scale, prewhitened and raw charts on AR(1) φ 0.9, t₃ data (goal: ×2)."""
    console = Console()
    results = measure(runs, arl0, shift, progress=True)
    table = Table(
        title=f"in-control ARL on {runs} AR(1) φ={PHI} t{DOF} runs, mean shift {shift:g} σ (goal ×0.5–×2)"
    )
    for column in ("chart", "stated ARL₀", "measured ARL", "ratio", "alarms", "holds"):
        table.add_column(column, justify="left" if column == "chart" else "right")
    for r in results:
        holds = "yes" if 0.5 <= r.ratio <= 2.0 else "no"
        alarms = f"{r.alarms}/{r.runs}"
        table.add_row(r.chart, f"{r.arl0:g}", f"{r.measured:.0f}", f"{r.ratio:.2f}", alarms, holds)
    console.print(table)
    delay = Table(title=f"prewhitened chart: delay for a sustained level step (ARL₀ {arl0:g})")
    for column in ("step (σ of the series)", "mean delay", "Lorden bound"):
        delay.add_column(column, justify="right")
    for step, mean, bound in delays(arl0):
        delay.add_row(f"{step:g}", f"{mean:.1f}", f"{bound:.1f}")
    console.print(delay)
