"""Invariants of the physics models and the online calibration (hypothesis where a law is at stake)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hall import hall_day, ou
from models.calibration import RecursiveLeastSquares
from models.ml import ResidualRegressor
from models.physics import CalenderModel, FormationModel, k_value_threshold, mass_balance_loading

positive = st.floats(0.1, 1e3, allow_nan=False)


@given(
    flow=positive,
    density=st.floats(1, 3),
    solids=st.floats(30, 90),
    width=positive,
    speed=positive,
    k=st.floats(1.01, 5),
)
def test_mass_balance_is_linear_in_flow_and_inverse_in_speed(flow, density, solids, width, speed, k) -> None:
    base = mass_balance_loading(flow, density, solids, width, speed)
    assert base > 0
    assert mass_balance_loading(k * flow, density, solids, width, speed) == pytest.approx(k * base)
    assert mass_balance_loading(flow, density, solids, width, k * speed) == pytest.approx(base / k)


def test_mass_balance_units_give_a_typical_cathode_loading() -> None:
    # 77 mL/min of 70 wt% NMC slurry (2.2 g/cm3) on a 300 mm web at 2 m/min ≈ 20 mg/cm2
    assert mass_balance_loading(77.3, 2.217, 70.0, 300.0, 2.0) == pytest.approx(20.0, rel=0.01)


def _calibrated_calender() -> CalenderModel:
    rng = np.random.default_rng(0)
    model = CalenderModel()
    for _ in range(500):
        load, temp = 800 + rng.normal(0, 50), 50 + rng.normal(0, 5)
        gamma = 700 * math.exp(-0.01 * (temp - 50))
        eps = 0.15 + 0.35 * math.exp(-load / gamma)
        model.calibrate(
            {
                "line_load": load,
                "roll_temperature": temp,
                "incoming_loading": 20.0,
                "porosity": 100 * eps,
                "thickness": 10 * 20.0 / (4.4 * (1 - eps)),
            }
        )
    return model


CALENDER = _calibrated_calender()


@settings(max_examples=60, deadline=None)
@given(load=st.floats(100, 3000), more=st.floats(1, 500), temp=st.floats(20, 100), loading=st.floats(5, 40))
def test_compaction_never_leaves_its_bounds_and_more_load_compacts_more(load, more, temp, loading) -> None:
    low = CALENDER.predict({"line_load": load, "roll_temperature": temp, "incoming_loading": loading})
    high = CALENDER.predict({"line_load": load + more, "roll_temperature": temp, "incoming_loading": loading})
    assert 15 <= high["porosity"][0] <= low["porosity"][0] <= 50
    assert high["thickness"][0] <= low["thickness"][0]


@settings(max_examples=60, deadline=None)
@given(load=st.floats(100, 3000), temp=st.floats(20, 100), loading=st.floats(5, 40), k=st.floats(1.01, 2))
def test_thickness_scales_with_incoming_loading_at_the_same_porosity(load, temp, loading, k) -> None:
    one = CALENDER.predict({"line_load": load, "roll_temperature": temp, "incoming_loading": loading})
    two = CALENDER.predict({"line_load": load, "roll_temperature": temp, "incoming_loading": k * loading})
    assert two["porosity"][0] == pytest.approx(one["porosity"][0])
    assert two["thickness"][0] == pytest.approx(k * one["thickness"][0])


def test_calender_learns_compaction_resistance_and_its_temperature_dependence() -> None:
    p = {e.name: e for e in CALENDER.parameters()}
    assert p["compaction_resistance"].value == pytest.approx(700, rel=0.01)
    assert p["compaction_temperature_coefficient"].value == pytest.approx(0.01, abs=0.001)
    assert p["rho_true"].value == pytest.approx(4.4, rel=1e-6)


def test_rls_converges_and_its_uncertainty_covers_the_truth() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([0.975, 0.3, -2.0])
    rls = RecursiveLeastSquares(3)
    for _ in range(3000):
        phi = np.array([rng.uniform(50, 100), 1.0, rng.normal()])
        rls.update(phi, float(truth @ phi) + rng.normal(0, 0.2))
    assert np.all(np.abs(rls.theta - truth) < 4 * rls.sigmas)
    assert math.sqrt(rls.noise_var) == pytest.approx(0.2, rel=0.1)
    restored = RecursiveLeastSquares.from_state(rls.state())
    assert restored.predict([70, 1, 0]) == rls.predict([70, 1, 0])


def test_rls_with_forgetting_tracks_a_changed_parameter() -> None:
    rng = np.random.default_rng(2)
    rls = RecursiveLeastSquares(1, forget=0.99)
    for gain in (1.0, 1.1):
        for _ in range(1000):
            x = rng.uniform(1, 2)
            rls.update([x], gain * x + rng.normal(0, 0.01))
    assert rls.theta[0] == pytest.approx(1.1, abs=0.005)


def test_formation_capacity_is_proportional_to_loading() -> None:
    rng = np.random.default_rng(3)
    model = FormationModel()
    for _ in range(64):
        loading = rng.normal(20, 0.2)
        discharge = 0.0752 * loading * rng.normal(1, 0.003)
        model.calibrate(loading, discharge, discharge / 0.885)
    assert model.predict(21.0)[0] == pytest.approx(0.0752 * 21.0, rel=0.005)
    assert model.parameters()[1].value == pytest.approx(0.885, abs=1e-6)


@given(st.lists(st.floats(0.5, 1.2), min_size=20, max_size=200), st.floats(5, 20))
def test_k_value_threshold_is_not_pulled_by_a_tail_of_shorted_cells(good, bad) -> None:
    threshold = k_value_threshold(good)
    assert threshold >= float(np.median(good))
    tail = good + [bad] * (len(good) // 5)
    assert k_value_threshold(tail) < bad


def test_residual_regressor_stays_silent_when_the_context_explains_nothing() -> None:
    rng = np.random.default_rng(4)
    tension = rng.normal(120, 1, (3000, 1))
    model = ResidualRegressor(["web_tension"]).fit(tension, rng.normal(0, 0.03, 3000))
    assert not model.active
    assert model.predict({"web_tension": 130.0}) == 0.0


def test_residual_regressor_removes_what_a_context_signal_explains() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, 2))
    residual = 0.2 * x[:, 0] - 0.1 * x[:, 1] + rng.normal(0, 0.05, 3000)
    model = ResidualRegressor(["a", "b"]).fit(x, residual)
    restored = ResidualRegressor.from_state(model.state())
    assert model.active and model.r2 > 0.9
    assert restored.predict({"a": 1.0, "b": -1.0}) == pytest.approx(0.3, abs=0.01)


def _hall_day(rng: np.random.Generator) -> np.ndarray:
    """Six hours of the hall's air at 1 s: a quarter of its day around the warmest, with sensor noise."""
    return hall_day(rng, np.pi / 4)


def test_a_slow_context_is_learnt_from_a_quarter_of_its_day() -> None:
    """A dryer zone that follows the hall by 0.5 K/K under 0.3 K of sensor noise, trained on the six
    hours around the hall's warmest, when it moves least."""
    rng = np.random.default_rng(6)
    hall = _hall_day(rng)
    zone = 0.5 * (hall - 22.0) + rng.normal(0, 0.3, hall.size)
    model = ResidualRegressor(["hall"], slow=True).fit(hall[:, None], zone)
    restored = ResidualRegressor.from_state(model.state())
    assert model.active
    assert restored.predict({"hall": 20.0}) - restored.predict({"hall": 24.0}) == pytest.approx(-2.0, abs=0.2)


def test_a_slow_context_that_only_wandered_alongside_explains_nothing() -> None:
    """Two unrelated slow series (the hall's day and a zone's 40-minute wander) are correlated within
    any six hours by chance; the gate under autocorrelated errors keeps the regression off nearly always."""
    kept = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        hall = _hall_day(rng)
        wander = ou(rng, hall.size, 2400, 0.5)
        kept += (
            ResidualRegressor(["hall"], slow=True)
            .fit(hall[:, None], wander + rng.normal(0, 0.3, hall.size))
            .active
        )
    assert kept <= 2, f"{kept} of 40 trainings took a wander for the hall's effect"


def test_a_context_dropout_holds_its_last_reading() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 1))
    model = ResidualRegressor(["a"]).fit(x, 0.5 * x[:, 0] + rng.normal(0, 0.05, 3000))
    before = model.predict({"a": 2.0})
    assert before == pytest.approx(1.0, abs=0.05)
    assert model.predict({"a": float("nan")}) == before
    assert model.predict({}) == before
