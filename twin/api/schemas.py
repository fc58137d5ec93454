"""Pydantic models of every request and response of the API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from twin.alerts import AlertState

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
"""Line, machine, signal, roll and cell names: safe in SQL, InfluxQL and topics by construction."""

Operator = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Strict):
    """Every 4xx/5xx body."""

    detail: str


class SignalValue(Strict):
    value: float
    unit: str
    time_ns: int
    quality: str
    channel: str | None = None
    roll_id: str | None = None
    cell_id: str | None = None
    bad_since_ns: int | None = Field(None, description="since when it has had no good value")


class NotMonitored(Strict):
    """A step the twin cannot judge now: one of its key signals has no good value, a signal stopped
    changing (``quality`` "frozen") and its model withholds it, or a feature's level wanders on a scale
    the calibration was too short to know (``quality`` "level_unresolved", ``signal`` the feature)."""

    machine: str
    signal: str
    quality: str
    since_ns: int


class MachineState(Strict):
    line: str
    machine: str
    signals: dict[str, SignalValue]
    open_alerts: int


class LineState(Strict):
    line: str
    machines: dict[str, dict[str, SignalValue]]
    processed_samples: int
    last_sample_ns: int | None
    open_alerts: int
    not_monitored: list[NotMonitored] = Field(
        default_factory=list, description="steps whose key signal is bad or uncertain, and since when"
    )


class AlertOut(Strict):
    id: int
    key: str
    state: AlertState
    line: str
    machine: str
    signal: str
    cause: str = Field(description="likely cause, e.g. pump_wear")
    title: str
    text: str = Field(description="what drifted, by how much, since when")
    action: str = Field(description="suggested action")
    magnitude: float
    unit: str
    onset_ns: int = Field(description="when the drift began (plant time, ns)")
    detector: str
    rolls: list[str] = Field(description="affected rolls")
    cells: list[str] = Field(description="affected cells")
    raised_ns: int
    updated_ns: int
    condition_active: bool
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_ns: int | None
    shelved_until_ns: int | None
    shelved_by: str | None
    cleared_ns: int | None


class AlertEventOut(Strict):
    at_ns: int
    action: str
    who: str
    note: str


class AlertDetail(AlertOut):
    events: list[AlertEventOut]


class AcknowledgeRequest(Strict):
    by: Operator = Field(description="who acknowledges")
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class ShelveRequest(Strict):
    by: Operator
    duration_s: float = Field(gt=0, le=7 * 86400, description="shelved until now + duration (at most a week)")
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class RebaselineRequest(Strict):
    by: Operator = Field(description="who re-baselines")
    note: Annotated[str, StringConstraints(max_length=500)] = Field(
        "", description="e.g. the maintenance done"
    )


class ModelEventOut(Strict):
    line: str
    step: str
    action: Literal["rebaseline"]
    by: str
    note: str
    at_ns: int


class UnshelveRequest(Strict):
    by: Operator


class HistoryPoint(Strict):
    time_ns: int
    value: float | None
    sigma: float | None = None


class SignalHistory(Strict):
    line: str
    machine: str
    signal: str
    measurement: Literal["process", "model"]
    kind: str | None
    points: list[HistoryPoint]


class ParameterOut(Strict):
    machine: str
    name: str
    value: float
    sigma: float | None = Field(description="standard uncertainty")
    unit: str
    source: Literal["data", "prior"] = Field(
        description="data: calibrated from the line; prior: a domain value the data could not identify"
    )


class ModelParameters(Strict):
    line: str
    parameters: list[ParameterOut]


class CellOut(Strict):
    cell_id: str
    roll_id: str | None
    line: str
    machine: str
    channel: str | None
    first_ns: int
    last_ns: int


class RollStep(Strict):
    machine: str
    line: str
    first_ns: int
    last_ns: int


class RollGenealogy(Strict):
    roll_id: str
    steps: list[RollStep]
    cells: list[CellOut]


class CellGenealogy(Strict):
    cell: CellOut
    roll: RollGenealogy | None


CLOSED: dict[str, Any] = {"additionalProperties": False}  # keys only as patternProperties allows
WhatIfName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}(\.[a-z][a-z0-9_]{0,63})?$")]
"""A what-if input or quantity: ``pump_flow``, or ``<step>.pump_flow`` where two steps share a kind."""
Finite = Annotated[float, Field(allow_inf_nan=False)]
Setpoints = Annotated[
    dict[WhatIfName, Finite],
    Field(
        description="what-if input -> value in the unit GET /whatif/inputs gives; those left out stay at "
        "the line's current ones; a writable setpoint must be within its limits in the line description",
        json_schema_extra=CLOSED,
    ),
]


class InputOut(Strict):
    """A what-if input: the signal it starts from, its unit, its limits as a setpoint and its value now."""

    name: str
    machine: str
    signal: str
    unit: str
    symbol: str
    setpoint: bool = Field(description="a writable setpoint of the line (the others are plant conditions)")
    low: float | None
    high: float | None
    current: float | None


class QuantityOut(Strict):
    """A predicted quality: the measured signal it is read as, its unit and the description's limits."""

    name: str
    machine: str
    signal: str
    unit: str
    symbol: str
    lower_spec: float | None
    upper_spec: float | None


class WhatIfCatalogue(Strict):
    line: str
    inputs: list[InputOut]
    quantities: list[QuantityOut]


class WhatIfRequest(Strict):
    line: Name | None = Field(None, description="default: the first line this twin serves")
    setpoints: Setpoints = Field(default_factory=dict)
    save: bool = Field(False, description="keep the run (needs the API token when one is configured)")


class PredictionOut(Strict):
    """A predicted quality once the line has settled at the setpoints."""

    quantity: str
    value: float
    sigma: float = Field(
        description="standard uncertainty of one reading after settling: sigma_model and sigma_noise "
        "combined (root sum of squares)"
    )
    sigma_model: float = Field(
        description="the model parameters' uncertainty, priors included; where a parameter is only a "
        "prior it is small at the calibrated operating point and grows away from it",
    )
    sigma_noise: float = Field(description="in-control scatter of a reading at a steady operating point")
    interval_low: float = Field(description="value − 2·sigma: a reading falls inside at ~95 %")
    interval_high: float = Field(description="value + 2·sigma")
    extrapolated: list[str] = Field(
        default_factory=list,
        description="inputs outside the range the model was calibrated on; the prediction extrapolates",
    )
    unit: str
    lower_spec: float | None
    upper_spec: float | None
    within_spec: bool | None


class UnavailableOut(Strict):
    """A quantity the models cannot predict now."""

    quantity: str
    reason: str = Field(description="e.g. a model still calibrating, or an input never reported")


class WhatIfResponse(Strict):
    line: str
    setpoints: dict[str, float]
    predictions: list[PredictionOut]
    unavailable: list[UnavailableOut] = Field(
        default_factory=list, description="what cannot be predicted now, each with its reason"
    )
    saved_id: int | None = None


class SetpointPush(Strict):
    """Approved setpoints to write to the simulated plant (needs ``twin.allow_setpoint_push``)."""

    by: Operator = Field(description="who approved the change")
    setpoints: Setpoints


class PushResult(Strict):
    pushed: dict[str, float]
    by: str
    endpoint: str


Targets = Annotated[
    dict[WhatIfName, Finite],
    Field(
        min_length=1,
        description="quantity -> the value to reach, in its unit (GET /whatif/inputs)",
        json_schema_extra=CLOSED,
    ),
]


class Bounds(Strict):
    """An interval for a setpoint; the two ends may come in either order."""

    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    def interval(self) -> tuple[float, float]:
        return (min(self.low, self.high), max(self.low, self.high))


class InverseRequest(Strict):
    line: Name | None = None
    targets: Targets
    bounds: dict[WhatIfName, Bounds] = Field(
        default_factory=dict,
        description="inputs to move and their limits (default: ±20 % of each step's usual handles: "
        "flow and speed of a coater, load and roll temperature of a calender)",
        json_schema_extra=CLOSED,
    )


class InverseResponse(Strict):
    line: str
    setpoints: dict[str, float]
    predictions: list[PredictionOut]
    unavailable: list[UnavailableOut] = Field(default_factory=list)


class SetpointOut(Strict):
    low: float
    high: float
    input: str = Field(description="the model input (what-if setpoint) it sets")


class SignalSpecOut(Strict):
    name: str
    role: str = Field(description="what the step's model calls the signal")
    unit: str = Field(description="UCUM code, as stored in InfluxDB")
    symbol: str = Field(description="the unit as people write it (mg/cm², °C)")
    description: str
    key: bool = Field(description="one of the step's key values, on the operator's view")
    target: float | None
    spec_low: float | None
    spec_high: float | None
    setpoint: SetpointOut | None


class StepOut(Strict):
    id: str = Field(description="the machine name its samples carry")
    kind: str
    name: str
    signals: list[SignalSpecOut]


class FlowOut(Strict):
    source: str
    target: str
    material: str


class LineDescriptionOut(Strict):
    """The line's ISA-95 identity, its steps in material-flow order and the material flow between them."""

    site: str
    area: str
    line: str
    name: str
    steps: list[StepOut]
    flow: list[FlowOut]


class AlarmRatesOut(Strict):
    line: str
    window_s: float = Field(description="the window the figures cover, back from now")
    raised: int = Field(description="alarms raised in the window, returns to active included")
    per_10_min: float = Field(description="alarms raised per 10 minutes, on average (EEMUA 191: about 1)")
    peak_per_10_min: int = Field(description="the most raised in any 10 minutes")
    floods: int = Field(description="periods with more than 10 alarms in 10 minutes (ISA-18.2)")
    standing: int = Field(description="alarms whose condition is active now")
    stale: int = Field(description="standing alarms active for more than 24 hours")
    chattering: list[str] = Field(description="conditions raised 3 or more times within one minute")


class Health(Strict):
    status: Literal["ok", "degraded"]
    #: why it is degraded: which dependency is away
    reasons: list[str] = Field(default_factory=list)
    mqtt_connected: bool
    lines: list[str]
    influx_pending_points: int
    influx_spooled_batches: int = 0
    uptime_s: float
