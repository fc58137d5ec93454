"""Physics invariants of the simulated line hold for any plausible operating point."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from plant import physics

flow = st.floats(5.0, 200.0)
width = st.floats(50.0, 400.0)
speed = st.floats(0.2, 10.0)
solids = st.floats(0.45, 0.8)
loading = st.floats(5.0, 40.0)
eps_0 = st.floats(0.40, 0.60)
eps_min = st.floats(0.10, 0.30)
line_load = st.floats(0.0, 3000.0)
gamma = st.floats(100.0, 3000.0)


@given(flow, width, speed, solids)
def test_dry_loading_is_the_slot_die_mass_balance(q: float, w: float, v: float, ws: float) -> None:
    rho = physics.slurry_density(ws)
    m_a = physics.dry_loading_mg_cm2(q, w, v, rho, ws)
    # all metered solids land on the web: solids mass flow = loading x coated area per minute
    solids_g_min = q * rho * ws
    coated_cm2_min = (w / 10) * (v * 100)
    assert math.isclose(m_a * 1e-3 * coated_cm2_min, solids_g_min, rel_tol=1e-9)


@given(flow, width, speed, solids, st.floats(1.01, 3.0))
def test_loading_scales_with_flow_and_inversely_with_speed(
    q: float, w: float, v: float, ws: float, k: float
) -> None:
    rho = physics.slurry_density(ws)
    base = physics.dry_loading_mg_cm2(q, w, v, rho, ws)
    assert math.isclose(physics.dry_loading_mg_cm2(k * q, w, v, rho, ws), k * base, rel_tol=1e-9)
    assert math.isclose(physics.dry_loading_mg_cm2(q, w, k * v, rho, ws), base / k, rel_tol=1e-9)


@given(loading, width, speed, solids)
def test_flow_for_loading_inverts_the_mass_balance(m_a: float, w: float, v: float, ws: float) -> None:
    rho = physics.slurry_density(ws)
    q = physics.flow_for_loading(m_a, w, v, rho, ws)
    assert math.isclose(physics.dry_loading_mg_cm2(q, w, v, rho, ws), m_a, rel_tol=1e-9)


@given(st.floats(0.4, 0.79), st.floats(0.001, 0.1))
def test_denser_slurry_when_solvent_evaporates(ws: float, d: float) -> None:
    assert physics.slurry_density(ws + d) > physics.slurry_density(ws)
    assert physics.NMP_DENSITY < physics.slurry_density(ws) < physics.SOLIDS_DENSITY


@given(line_load, eps_0, eps_min, gamma)
def test_porosity_stays_between_eps_min_and_eps_0(q: float, e0: float, emin: float, g: float) -> None:
    eps = physics.porosity(q, e0, emin, g)
    assert emin <= eps <= e0


@given(line_load, st.floats(1.0, 1000.0), eps_0, eps_min, gamma)
def test_porosity_falls_with_line_load(q: float, dq: float, e0: float, emin: float, g: float) -> None:
    assert physics.porosity(q + dq, e0, emin, g) <= physics.porosity(q, e0, emin, g)


@given(st.floats(100.0, 2000.0), st.floats(20.0, 90.0), st.floats(1.0, 30.0), st.floats(200.0, 1500.0))
def test_warmer_rolls_compact_more(q: float, t: float, dt: float, g_ref: float) -> None:
    cold = physics.porosity(q, 0.48, 0.2, physics.compaction_resistance(g_ref, t, 50.0, 0.01))
    warm = physics.porosity(q, 0.48, 0.2, physics.compaction_resistance(g_ref, t + dt, 50.0, 0.01))
    assert warm < cold


@given(loading, st.floats(0.15, 0.55))
def test_calender_porosity_from_its_gauges_recovers_the_true_porosity(m_a: float, eps: float) -> None:
    h = physics.coating_thickness_um(m_a, eps, physics.SOLIDS_DENSITY)
    assert math.isclose(physics.porosity_from_thickness(m_a, h, physics.SOLIDS_DENSITY), eps, rel_tol=1e-9)


@given(loading, st.floats(0.1, 5.0), st.floats(50.0, 2000.0))
def test_capacity_is_proportional_to_loading(m_a: float, k: float, area: float) -> None:
    c = physics.cell_capacity_ah(m_a, area, 0.955, 175.0)
    assert math.isclose(physics.cell_capacity_ah(k * m_a, area, 0.955, 175.0), k * c, rel_tol=1e-9)


def test_a_nominal_cathode_sheet_set_makes_a_1_5_ah_cell() -> None:
    assert 1.4 < physics.cell_capacity_ah(20.0, 450.0, 0.955, 175.0) < 1.6


@given(st.floats(0.0, 1.0), st.floats(0.001, 0.5))
def test_open_circuit_voltage_rises_with_state_of_charge(soc: float, d: float) -> None:
    assert physics.open_circuit_voltage(min(soc + d, 1.0)) >= physics.open_circuit_voltage(soc)
    assert 3.0 <= physics.open_circuit_voltage(soc) <= 4.2
