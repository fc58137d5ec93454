"""``twin bench hall``: the hall's day as a context, and a re-baseline's own error, on synthetic data.

Two questions the realistic bench cannot answer one at a time:

1. **Which gate keeps a slow context's regression honest?** A dryer zone follows the hall's air by
   0.5 K/K; six hours of calibration see a quarter of the hall's day. Against it, an unrelated zone
   wander (Ornstein-Uhlenbeck, 40 or 60 minutes) that moved alongside the day by chance. Both sensors
   are dressed as the realistic simulators dress theirs (``plant.disturbances.Sensors``: t₃ noise,
   spikes, frozen values, dropouts). Each gate's share of trainings that keep the regression:
   cross-validated R² over time folds (the residual regressors' default), OLS with HAC (Newey-West)
   errors at p < 10⁻⁶, and GLSAR with AR(2) errors at the same p (``models.ml``, ``slow=True``).
2. **What does a re-baseline on ten minutes cost?** A level that wanders (OU, as large as the noise) is
   calibrated on six hours, then re-baselined 40 times on the median of ten minutes, each followed by two
   hours in control. Counted: two-hour windows with an alarm, with the level chart allowing for the
   median's error (``LevelChart.rebase`` with the sample count) and without (the calibration's σ_z kept).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import statsmodels.api as sm
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from scipy.signal import lfilter

from models.levelchart import TwoScale, block_means
from models.ml import SLOW_BLOCK, SLOW_P, ResidualRegressor
from plant.disturbances import Disturbed, Realism

SIX_HOURS = 21_600
HALL_GAIN = 0.5  # K of zone per K of hall
ZONE_NOISE = 0.3  # K, the zone sensor's one-second noise
REBASE_S = 600
WINDOW_S = 7_200


def ou(rng: np.random.Generator, n: int, tau_s: float, sigma: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck level sampled every second, started in its stationary state."""
    keep = math.exp(-1 / tau_s)
    shocks = rng.standard_normal(n) * sigma * math.sqrt(1 - keep * keep)
    shocks[0] = rng.standard_normal() * sigma
    return np.asarray(lfilter([1.0], [1.0, -keep], shocks))


def hall_day(rng: np.random.Generator, phase: float) -> np.ndarray:
    """Six hours of the hall's air at 1 s (22 °C ± 2 over the day) with 0.1 K of sensor noise."""
    t = np.arange(SIX_HOURS)
    return 22.0 + 2.0 * np.sin(2 * np.pi * t / 86_400 + phase) + rng.normal(0, 0.1, SIX_HOURS)


def dressed(seed: int, hall: np.ndarray, zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both series through the realistic simulators' sensors, second by second."""
    sensors = Disturbed(Realism(), seed)
    hall, zone = hall.copy(), zone.copy()
    for t in range(len(hall)):
        sensors.advance(float(t + 1))
        values = {"hall": float(hall[t]), "zone": float(zone[t])}
        sensors.sense(1.0, values)
        hall[t], zone[t] = values["hall"], values["zone"]
    return hall, zone


def hac_keeps(hall: np.ndarray, zone: np.ndarray) -> bool:
    keep = np.isfinite(hall) & np.isfinite(zone)
    hall, zone = hall[keep], zone[keep]
    bx, by = block_means(hall, SLOW_BLOCK), block_means(zone, SLOW_BLOCK)
    fit = sm.OLS(by, sm.add_constant(bx)).fit(cov_type="HAC", cov_kwds={"maxlags": len(by) // 4})
    return bool(fit.pvalues[1] < SLOW_P)


@dataclass(frozen=True)
class GateRow:
    case: str
    cv: float
    hac: float
    glsar: float


CASES = {
    "hall effect 0.5 K/K": (HALL_GAIN, 0.0, 0.0),
    "hall effect + 40-min wander of 0.5 K": (HALL_GAIN, 2400.0, 0.5),
    "unrelated 40-min wander of 0.5 K": (0.0, 2400.0, 0.5),
    "unrelated 60-min wander of 1 K": (0.0, 3600.0, 1.0),
}


def gates(trainings: int) -> list[GateRow]:
    rows = []
    for case, (gain, tau_s, sigma) in CASES.items():
        kept = np.zeros(3)
        for seed in track(range(trainings), description=case, transient=True):
            rng = np.random.default_rng(seed)
            hall = hall_day(rng, float(rng.uniform(0, 2 * np.pi)))
            zone = gain * (hall - 22.0) + rng.normal(0, ZONE_NOISE, SIX_HOURS)
            if tau_s:
                zone += ou(rng, SIX_HOURS, tau_s, sigma)
            hall, zone = dressed(seed, hall, zone)
            x = hall[:, None]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept += [
                    ResidualRegressor(["hall"]).fit(x, zone).active,
                    hac_keeps(hall, zone),
                    ResidualRegressor(["hall"], slow=True).fit(x, zone).active,
                ]
        rows.append(GateRow(case, *(kept / trainings)))
    return rows


@dataclass(frozen=True)
class RebaseRow:
    tau_s: float
    trainings: int
    windows: int
    alarmed_kept: int
    alarmed_allowed: int


def rebases(tau_s: float, trainings: int, per_training: int = 40) -> RebaseRow:
    alarmed = {False: 0, True: 0}
    windows = used = 0
    for seed in track(range(trainings), description=f"re-baselines, τ {tau_s / 60:.0f} min", transient=True):
        rng = np.random.default_rng(seed)
        n = SIX_HOURS + per_training * (REBASE_S + WINDOW_S)
        x = ou(rng, n, tau_s, 1.0) + rng.normal(0, 1, n)
        charts = {allow: TwoScale.calibrated(x[:SIX_HOURS], 1e6, 60) for allow in (False, True)}
        if not charts[True].resolved:
            continue
        used += 1
        for k in range(per_training):
            start = SIX_HOURS + k * (REBASE_S + WINDOW_S)
            ten_minutes = x[start : start + REBASE_S]
            window = x[start + REBASE_S : start + REBASE_S + WINDOW_S]
            for allow, chart in charts.items():
                chart.rebase(float(np.median(ten_minutes)), len(ten_minutes) if allow else 0)
                hit = False
                for value in window:
                    chart.update(float(value))
                    hit = hit or chart.drift_detected
                alarmed[allow] += hit
            windows += 1
    return RebaseRow(tau_s, used, windows, alarmed[False], alarmed[True])


def hall_command(
    trainings: Annotated[int, typer.Option(min=10, help="six-hour trainings per gate case")] = 100,
    rebase_trainings: Annotated[
        int, typer.Option(min=1, help="trainings per wander in the re-baseline run")
    ] = 20,
) -> None:
    """The slow-context gates and a re-baseline's own error, measured on synthetic hall and wander data."""
    console = Console()
    table = Table(
        title=f"share of {trainings} six-hour trainings that keep the hall regression (p < {SLOW_P:g})"
    )
    for column in ("case", "cross-validated R² > 0.05", "OLS, HAC errors", "GLSAR, AR(2) errors (used)"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in gates(trainings):
        table.add_row(row.case, f"{row.cv:.2f}", f"{row.hac:.2f}", f"{row.glsar:.2f}")
    console.print(table)
    rebase = Table(
        title="two-hour in-control windows with an alarm after a re-baseline on a ten-minute median "
        "(an OU level as large as the noise, calibrated on six hours, 40 re-baselines per training)"
    )
    for column in ("wander τ", "trainings resolved", "windows", "σ_z kept", "median's error allowed"):
        rebase.add_column(column, justify="right")
    for tau_s in (1800.0, 3600.0):
        r = rebases(tau_s, rebase_trainings)
        rebase.add_row(
            f"{tau_s / 60:.0f} min",
            str(r.trainings),
            str(r.windows),
            str(r.alarmed_kept),
            str(r.alarmed_allowed),
        )
    console.print(rebase)
