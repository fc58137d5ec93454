"""What several twin integration tests feed the engine."""

from __future__ import annotations

from twin.alerts import Occurrence


def pump_wear(line: str, onset_ns: int) -> Occurrence:
    """The alert condition of a wearing metering pump on ``line``'s coater, as the line model raises it."""
    return Occurrence(
        line=line,
        machine="coater1",
        signal="pump_flow",
        cause="pump_wear",
        title="Pump wear",
        text="flow -3 %",
        action="check the pump",
        magnitude=-3.0,
        unit="%",
        onset_ns=onset_ns,
    )
