"""Process physics of the pilot line: pure functions, no state, no randomness, no I/O.

Units are those a process engineer writes on the whiteboard (mL/min, m/min, mm, wt fraction, g/cm3,
mg/cm2, N/mm, Cel, um); each function converts internally, so callers never juggle cgs factors.
Sources: DOMAIN.md (slot-die mass balance, Meyer et al. 2017 compaction law, C = m_A·A·x·q).
"""

from __future__ import annotations

import math

NMP_DENSITY = 1.028  # g/cm3, N-methyl-2-pyrrolidone at 25 Cel
SOLIDS_DENSITY = 4.4  # g/cm3, skeletal density of the NMC cathode composite (rho_true)


def slurry_density(solids: float, solids_density: float = SOLIDS_DENSITY) -> float:
    """Density (g/cm3) of an NMP slurry with ``solids`` mass fraction: volumes of the two phases add."""
    return 1.0 / (solids / solids_density + (1.0 - solids) / NMP_DENSITY)


def wet_thickness_um(flow_ml_min: float, width_mm: float, speed_m_min: float) -> float:
    """Slot-die mass balance h_wet = Q / (W · v): all metered slurry lands on the web."""
    return flow_ml_min / (width_mm * 0.1 * speed_m_min * 100.0) * 1e4


def dry_loading_mg_cm2(
    flow_ml_min: float, width_mm: float, speed_m_min: float, density_g_cm3: float, solids: float
) -> float:
    """Dry areal mass loading m_A = h_wet · rho_sl · w_s."""
    return wet_thickness_um(flow_ml_min, width_mm, speed_m_min) * 1e-4 * density_g_cm3 * solids * 1e3


def flow_for_loading(
    loading_mg_cm2: float, width_mm: float, speed_m_min: float, density_g_cm3: float, solids: float
) -> float:
    """Inverse mass balance: the pump flow (mL/min) that coats ``loading_mg_cm2``."""
    return loading_mg_cm2 / dry_loading_mg_cm2(1.0, width_mm, speed_m_min, density_g_cm3, solids)


def drying_dose(zone_temperatures: tuple[float, ...], zone_length_m: float, speed_m_min: float) -> float:
    """Drying dose (Cel·min): time in each zone times its temperature above the 50 Cel onset of NMP loss."""
    minutes_per_zone = zone_length_m / speed_m_min
    return sum(max(t - 50.0, 0.0) for t in zone_temperatures) * minutes_per_zone


def residual_solvent_pct(dose: float, solids: float, dose_constant: float) -> float:
    """Residual NMP (wt% of dry film) after drying: first-order evaporation, exp(-dose / dose_constant)."""
    return 100.0 * (1.0 - solids) / solids * math.exp(-dose / dose_constant)


def compaction_resistance(gamma_ref: float, roll_temperature: float, t_ref: float, beta: float) -> float:
    """gamma_c (N/mm): a warmer roll softens the binder, so the coating compacts more easily."""
    return gamma_ref * math.exp(-beta * (roll_temperature - t_ref))


def porosity(line_load: float, eps_0: float, eps_min: float, gamma_c: float) -> float:
    """Meyer et al. (2017): eps(q_L) = eps_min + (eps_0 - eps_min) · exp(-q_L / gamma_c), fractions.

    The law lies in [eps_min, eps_0]; the sum can round one ulp past eps_0 at q_L = 0, so it is held there.
    """
    eps = eps_min + (eps_0 - eps_min) * math.exp(-max(line_load, 0.0) / gamma_c)
    return min(max(eps, eps_min), eps_0)


def coating_thickness_um(loading_mg_cm2: float, porosity_fraction: float, rho_true: float) -> float:
    """Thickness of a coating of given loading and porosity: h = m_A / (rho_true · (1 - eps))."""
    return loading_mg_cm2 * 1e-3 / (rho_true * (1.0 - porosity_fraction)) * 1e4


def porosity_from_thickness(loading_mg_cm2: float, thickness_um: float, rho_true: float) -> float:
    """What a calender computes from its own gauges: eps = 1 - m_A / (h · rho_true)."""
    return 1.0 - loading_mg_cm2 * 1e-3 / (thickness_um * 1e-4 * rho_true)


def roll_expansion_um(roll_temperature: float, t_calibration: float, radius_mm: float, alpha: float) -> float:
    """Radial thermal expansion of a steel roll relative to its gap calibration temperature."""
    return alpha * radius_mm * 1e3 * (roll_temperature - t_calibration)


def cell_capacity_ah(loading_mg_cm2: float, area_cm2: float, x_active: float, q_spec_mah_g: float) -> float:
    """Reversible capacity of a cathode-limited cell: C = m_A · A · x_active · q_spec."""
    return loading_mg_cm2 * 1e-3 * area_cm2 * x_active * q_spec_mah_g * 1e-3


def open_circuit_voltage(state_of_charge: float) -> float:
    """OCV (V) of an NMC/graphite cell: monotonic, 3.0 V empty, 4.2 V full."""
    soc = min(max(state_of_charge, 0.0), 1.0)
    return 3.0 + 1.2 * soc**0.6
