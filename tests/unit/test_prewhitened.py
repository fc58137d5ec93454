"""The generic path's chart holds its stated ARL₀ on 1,000 in-control runs shaped like plant data
(AR(1) φ = 0.9, t₃ innovations, a small mean shift between training and monitoring), where today's
Gaussian-limit CUSUM on the raw values does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.arl import ar1_t, measure
from core.linedesc import LineDescription
from models import backtest
from models.detectors import cusum_limit, make_detector
from models.line import LineModel
from models.prewhitened import ARCUSUM, empirical_limit


def test_the_prewhitened_chart_keeps_its_arl0_where_todays_limits_fail() -> None:
    """300 runs here (the ARL's standard error about 6 %); ``twin bench arl`` runs the issue's 1,000."""
    twoscale, prewhitened, raw = measure(runs=200, arl0=500.0, shift=0.2)
    assert 0.5 <= prewhitened.ratio <= 2.0, f"measured ARL {prewhitened.measured:.0f} for a stated 500"
    # the two-scale chart errs the other way at so small an ARL₀: its indifference zone and its limit of
    # several extreme values are a larger share of so low a limit; it never alarms more than stated
    assert twoscale.ratio >= 0.5, f"two-scale: measured ARL {twoscale.measured:.0f} for a stated 500"
    assert raw.ratio < 0.2, "the raw Gaussian-limit CUSUM alarms far more often than it states"


def test_the_empirical_limit_is_the_gaussian_one_on_gaussian_residuals() -> None:
    z = np.random.default_rng(3).normal(size=200_000)
    assert empirical_limit(z, 10_000.0, 0.5) == pytest.approx(cusum_limit(10_000.0), abs=0.35)


def test_heavy_tails_raise_the_limit() -> None:
    rng = np.random.default_rng(4)
    t3 = np.clip(rng.standard_t(3, 200_000) / 1.15, -3, 3)
    h = empirical_limit(t3, 10_000.0, 0.5)
    assert h is not None and h > cusum_limit(10_000.0) + 0.3


def test_a_spike_does_not_alarm_but_a_sustained_step_does() -> None:
    x = ar1_t(np.random.default_rng(5), 5000)
    chart = ARCUSUM.calibrated(x[:3000], arl0=1e5)
    monitored = x[3000:].copy()
    monitored[100] += 50 * chart.sigma  # a sensor spike
    for value in monitored[:1000]:
        chart.update(value)
        assert not chart.drift_detected
    before = chart.n
    for value in monitored[1000:] + 3 * float(np.std(x[:3000])):
        chart.update(value)
        if chart.drift_detected:
            break
    assert chart.drift_detected and chart.n - before < 300
    assert chart.magnitude == pytest.approx(3 * float(np.std(x[:3000])), rel=0.35)


def test_the_chart_resumes_from_its_state() -> None:
    x = ar1_t(np.random.default_rng(6), 4000)
    chart = ARCUSUM.calibrated(x[:3000], arl0=1e4)
    for value in x[3000:3500]:
        chart.update(value)
    state = {"kind": "arcusum", **chart.state()}
    restored = make_detector(state.pop("kind"), state["arl0"], state["mu"], state["sigma"])
    restored.load(state)
    for value in x[3500:]:
        chart.update(value)
        restored.update(value)
    assert restored.statistic == chart.statistic and restored.threshold == chart.threshold


def _press_line() -> LineDescription:
    """A step no model knows, two raw signals: the generic path."""
    return LineDescription.model_validate(
        {
            "site": "s",
            "area": "a",
            "line": "l",
            "steps": [
                {
                    "id": "press9",
                    "kind": "isostatic_press",
                    "signals": [{"name": "pressure", "unit": "MPa"}, {"name": "temperature", "unit": "Cel"}],
                }
            ],
        }
    )


def test_the_generic_path_stays_quiet_on_autocorrelated_heavy_tailed_data_and_finds_a_shift() -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    pressure, temperature = 200 + ar1_t(rng, n), 80 + 0.5 * ar1_t(rng, n)
    pressure[25_000:] += 3 * float(np.std(pressure[:3000]))  # a sustained shift after 22,000 quiet ticks
    model = LineModel("l", description=_press_line(), calibration_s=3000)
    findings = []
    for t in range(n):
        values = {"press9.pressure": pressure[t], "press9.temperature": temperature[t]}
        findings += model.update_tick((t + 1) * 10**9, values)
    assert findings, "the shift is found"
    first = findings[0]
    assert (first.signal, first.cause) == ("pressure", "signal_drift")
    assert first.time_ns >= 25_000 * 10**9, "no alarm in 22,000 in-control ticks (stated ARL₀ 10⁶)"


def test_backtest_plain_columns_use_the_prewhitened_chart() -> None:
    rng = np.random.default_rng(8)
    n = 20_000
    frame = pd.DataFrame(
        {"kiln.temp": 900 + ar1_t(rng, n), "kiln.draft": 5 + 0.1 * ar1_t(rng, n)},
        index=pd.date_range("2026-01-01", periods=n, freq="s"),
    )
    training, history = frame.iloc[:3000], frame.iloc[3000:]
    quiet = backtest.run(history, training, arl0=1e5, pca=False)
    assert quiet == [], "no alarm on 17,000 in-control rows"
    raw = backtest.run(history, training, arl0=1e5, detector="shewhart", pca=False)
    assert raw, "the raw Shewhart chart on the same rows does alarm"
