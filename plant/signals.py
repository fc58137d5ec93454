"""The catalogue of the plant's signals: name, unit, range and meaning of every value it publishes.

One table drives the OPC UA address space, the recorder's column units and docs/address-space.md, so the
three can never disagree. Names follow docs/interfaces.md (snake_case); OPC UA BrowseNames are their
CamelCase form. Units are UCUM codes; their UNECE Recommendation 20 common code for OPC UA's EUInformation
comes from ``core.units``.
"""

from __future__ import annotations

from dataclasses import dataclass


def browse_name(signal: str) -> str:
    """``dryer_zone1_temperature`` -> ``DryerZone1Temperature``."""
    return "".join(part[:1].upper() + part[1:] for part in signal.split("_"))


@dataclass(frozen=True, slots=True)
class Signal:
    """A process value or setpoint of one machine."""

    machine: str
    name: str
    unit: str
    low: float
    high: float
    meaning: str
    setpoint: bool = False

    @property
    def column(self) -> str:
        return f"{self.machine}.{self.name}"


def _coater() -> list[Signal]:
    m = "coater1"
    signals = [
        Signal(m, "pump_flow", "mL/min", 0, 200, "slurry flow of the metering pump to the slot die"),
        Signal(m, "web_speed", "m/min", 0, 10, "speed of the foil through the coater"),
        Signal(m, "coating_width", "mm", 0, 400, "width of the wet stripe leaving the die"),
        Signal(m, "slot_gap", "um", 0, 1000, "shim gap of the slot die"),
        Signal(m, "slurry_solids", "%", 40, 90, "solids content of the current batch (lab value, wt%)"),
        Signal(m, "slurry_density", "g/cm3", 1, 3.5, "slurry density from the inline densitometer"),
    ]
    signals += [
        Signal(m, f"dryer_zone{z}_temperature", "Cel", 20, 200, f"air temperature of dryer zone {z}")
        for z in (1, 2, 3)
    ]
    signals += [
        Signal(
            m, "residual_solvent", "%", 0, 50, "residual NMP after the dryer (NIR sensor, wt% of dry film)"
        ),
        Signal(m, "dry_loading", "mg/cm2", 0, 50, "dry areal mass loading from the beta gauge (lane mean)"),
    ]
    signals += [
        Signal(
            m, f"profile_lane{k}", "mg/cm2", 0, 50, f"dry loading of cross-web lane {k} (1 = operator side)"
        )
        for k in range(1, 6)
    ]
    signals += [
        Signal(m, "web_tension", "N", 0, 500, "web tension after the dryer"),
        Signal(m, "ambient_temperature", "Cel", -10, 50, "hall air at the dryer's intake"),
        Signal(m, "pump_flow_setpoint", "mL/min", 0, 200, "metering pump flow setpoint", setpoint=True),
        Signal(m, "web_speed_setpoint", "m/min", 0.2, 10, "web speed setpoint", setpoint=True),
    ]
    signals += [
        Signal(
            m,
            f"dryer_zone{z}_setpoint",
            "Cel",
            20,
            180,
            f"dryer zone {z} temperature setpoint",
            setpoint=True,
        )
        for z in (1, 2, 3)
    ]
    return signals


def _calender() -> list[Signal]:
    m = "calender1"
    return [
        Signal(m, "incoming_loading", "mg/cm2", 0, 50, "dry loading at the calender inlet gauge"),
        Signal(m, "line_load", "N/mm", 0, 3000, "line load from the roll load cells"),
        Signal(m, "roll_gap", "um", 0, 1000, "roll gap from the bearing displacement sensors"),
        Signal(m, "roll_temperature", "Cel", 10, 150, "work roll surface temperature"),
        Signal(m, "speed", "m/min", 0, 10, "web speed through the nip"),
        Signal(m, "thickness", "um", 0, 300, "coating thickness after the nip (foil subtracted)"),
        Signal(m, "porosity", "%", 0, 100, "porosity from the calender's own gauges: 1 - m_A/(h rho_true)"),
        Signal(m, "ambient_temperature", "Cel", -10, 50, "hall air at the roll stand"),
        Signal(m, "line_load_setpoint", "N/mm", 0, 2000, "line load setpoint (force control)", setpoint=True),
        Signal(m, "roll_temperature_setpoint", "Cel", 20, 120, "roll heating setpoint", setpoint=True),
    ]


SIGNALS: tuple[Signal, ...] = tuple(_coater() + _calender())
MACHINES: tuple[str, ...] = ("coater1", "calender1")
# machine -> OPC UA object BrowseName under Objects/PilotLine
OBJECT_NAMES: dict[str, str] = {"coater1": "Coater1", "calender1": "Calender1"}
GAUGE_SIGNALS: frozenset[str] = frozenset({"dry_loading"} | {f"profile_lane{k}" for k in range(1, 6)})


def signals_of(machine: str, *, setpoints: bool) -> list[Signal]:
    return [s for s in SIGNALS if s.machine == machine and s.setpoint == setpoints]
