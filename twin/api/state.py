"""Live line and machine state."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException

from twin.alerts import AlertState
from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import LineState, MachineState, Name, NotMonitored, Problem, SignalValue
from twin.live import SignalState

router = APIRouter(
    tags=["state"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)

OPEN = [AlertState.ACTIVE_UNACKNOWLEDGED, AlertState.ACKNOWLEDGED, AlertState.RETURNED_UNACKNOWLEDGED]


@router.get("/lines/{line}/state", response_model=LineState)
async def line_state(twin: TwinDep, line: Name) -> LineState:
    worker = twin.engine.workers.get(line)
    if worker is None:
        raise HTTPException(404, f"this twin does not serve line {line!r}; it serves {twin.engine.lines}")
    machines = twin.engine.live.lines.get(line, {})
    return LineState(
        not_monitored=_not_monitored(twin, machines)
        + _frozen(worker.analyser.frozen())
        + _unresolved(worker.analyser.unresolved_levels()),
        line=line,
        machines={m: {k: SignalValue(**asdict(v)) for k, v in sig.items()} for m, sig in machines.items()},
        processed_samples=worker.processed,
        last_sample_ns=worker.last_sample_ns,
        open_alerts=len(twin.engine.alerts.find(line=line, states=OPEN, limit=10_000)),
    )


def _not_monitored(twin: TwinDep, machines: dict[str, dict[str, SignalState]]) -> list[NotMonitored]:
    """Each described key signal whose latest value is not good: the twin does not judge that step now."""
    found = []
    for step in twin.description.steps:
        signals = machines.get(step.id, {})
        for spec in step.signals:
            state = signals.get(spec.name)
            if spec.key and state is not None and state.bad_since_ns is not None:
                found.append(
                    NotMonitored(
                        machine=step.id, signal=spec.name, quality=state.quality, since_ns=state.bad_since_ns
                    )
                )
    return found


def _frozen(frozen: list[tuple[str, str, int]]) -> list[NotMonitored]:
    """Each value the models withhold because it stopped changing, though its quality says good."""
    return [NotMonitored(machine=m, signal=s, quality="frozen", since_ns=t) for m, s, t in frozen]


def _unresolved(levels: list[tuple[str, str, int]]) -> list[NotMonitored]:
    """Each feature whose level wanders on a scale the calibration was too short to know: its drifts are
    not judged (only abrupt changes are) until the step is calibrated over a longer period."""
    return [NotMonitored(machine=m, signal=f, quality="level_unresolved", since_ns=t) for m, f, t in levels]


@router.get("/machines/{machine}", response_model=MachineState)
async def machine_state(twin: TwinDep, machine: Name) -> MachineState:
    for line, machines in twin.engine.live.lines.items():
        if machine in machines:
            return MachineState(
                line=line,
                machine=machine,
                signals={k: SignalValue(**asdict(v)) for k, v in machines[machine].items()},
                open_alerts=len(
                    twin.engine.alerts.find(line=line, machine=machine, states=OPEN, limit=10_000)
                ),
            )
    raise HTTPException(404, f"no live data for machine {machine!r}")
