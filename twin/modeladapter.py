"""Fit ``models/`` to the twin's ports: the streaming ``LineModel`` as an ``Analyser``, and what-if on it.

The line model says when a drift is found but not when it is over; ISA-18.2 needs both. A condition is
taken as returned to normal when its detector has been quiet for ``QUIET_MEMORIES`` times the model's
memory, measured in plant time so the rule holds at any simulator speed. Only plant time the machine's
data covered counts: a gap in its data (values lost at the source, a connector down) is no evidence of
anything, so it leaves the condition as it stood. Quiet means none of the
detectors of the features that were moving when it was found has alarmed again: the model raises a
finding once per shift, but those detectors, reset after each alarm, alarm again and again while the
drift lasts, so a pump that keeps wearing stays one active alarm instead of returning to normal on a
timer, whichever of its features (flow against setpoint, or loading against the mass balance) alarmed
first.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace

from core import linedesc
from core.linedesc import LineDescription
from core.prediction import Answer, Catalogue, Input, Quantity
from core.records import ModelOutput, Parameter
from core.sample import Quality, Sample
from core.settings import Settings
from models.line import SNAPSHOT_VERSION, LineModel
from models.rootcause import Finding
from models.scraprisk import ScrapRisk
from models.whatif import WhatIf, WhatIfError, measured_signals, names
from twin.alerts import Occurrence
from twin.engine import TwinEngine
from twin.ports import Analyser, Verdict, WhatIfUnavailable

log = logging.getLogger(__name__)

QUIET_MEMORIES = 2.0
#: a machine's samples further apart than this many of its usual intervals are a gap in its data
GAP_INTERVALS = 10.0
RISK_WINDOW = 300
Specs = dict[str, tuple[float, float]]


def described_specs(description: LineDescription, model: LineModel) -> Specs:
    """What-if quantity -> the spec limits its measured signal has in the line description."""
    specs = {}
    for quantity, (machine, name) in measured_signals(model).items():
        step = description.step(machine)
        signal = step.signal(name) if step is not None else None
        if signal is not None and signal.spec_low is not None and signal.spec_high is not None:
            specs[quantity] = (signal.spec_low, signal.spec_high)
    return specs


def occurrence(finding: Finding) -> Occurrence:
    return Occurrence(
        line=finding.line,
        machine=finding.machine,
        signal=finding.signal,
        cause=finding.cause,
        title=finding.title,
        text=finding.text,
        action=finding.action,
        magnitude=finding.magnitude,
        unit=finding.unit,
        onset_ns=finding.onset_ns,
        detector=finding.detector,
        rolls=list(finding.rolls),
        cells=list(finding.cells),
    )


def _finite_sigma(sigma: float | None) -> float | None:
    """A σ the models could not give (NaN) is no σ."""
    return sigma if sigma is not None and math.isfinite(sigma) else None


def _output(value: ModelOutput) -> ModelOutput:
    return value if value.sigma is None else replace(value, sigma=_finite_sigma(value.sigma))


def _source_time(sample: Sample) -> int:
    return sample.source_time_ns


GOOD = Quality.GOOD


def _measurement(sample: Sample) -> Sample:
    """A sample as the models may use it: a value whose quality is not good (an OPC UA status other than
    Good, a value flagged bad) is no measurement, so it reaches calibration, features and detectors as
    missing (NaN) and is held as missing until a good value arrives, never as the last good one."""
    return sample if sample.quality is GOOD else replace(sample, value=math.nan)


class LineModelAnalyser:
    """One line's ``LineModel``, fed sample by sample so no tick's outputs are missed.

    OPC UA reports by exception: a value that does not change (a setpoint, the coating width) arrives
    once and then never again. The model wants every signal of a machine in every tick, so each tick is
    completed with the last value of the signals it lacks (sample-and-hold, the OPC UA reading of an
    unreported value); the held values are part of the snapshot, since after a restart nobody resends them.
    A bus message keeps the order of an OPC UA publish response, which is per monitored item (A@t1, A@t2,
    B@t1, B@t2); it is put in source-time order (stable) so that ticks arrive whole.
    """

    def __init__(self, line: str, model: LineModel | None = None, specs: Specs | None = None) -> None:
        self.line = line
        self.model = model if model is not None else LineModel(line)
        #: spec limits from the line description; a quantity it leaves open gets ± tolerance of the recipe
        self.specs = dict(specs) if specs is not None else described_specs(self.model.description, self.model)
        self.last_found_ns: dict[str, int] = {}
        #: condition key -> the model detector (``<machine>.<feature>``) whose alarms keep it active
        self.condition_detector: dict[str, list[str]] = {}
        #: machine -> its newest source time: a condition's quiet time runs on its own machine's clock,
        #: since one connector may deliver plant hours behind another (an OPC UA backlog behind MQTT)
        self.now_ns: dict[str, int] = {}
        #: machine -> the plant time its data covered (gaps left out), and its usual sample interval
        self.watched_ns: dict[str, int] = {}
        self.interval_ns: dict[str, float] = {}
        #: condition key -> ((its finding, its detectors' newest alarm), the machine's watched time when
        #: either last changed): where its quiet time starts
        self.quiet_from: dict[str, tuple[tuple[int, int], int]] = {}
        self.held: dict[str, dict[str, Sample]] = {}
        self.tick: dict[str, tuple[int, set[str]]] = {}
        #: what-if quantity -> the measured (machine, signal) its spec limits and scrap risk apply to
        self.quality = measured_signals(self.model)
        self.risk = {measured: ScrapRisk(RISK_WINDOW) for measured in self.quality.values()}

    def _completed(self, sample: Sample) -> list[Sample]:
        """``sample`` preceded, when it opens a new tick, by the held values the previous tick lacked."""
        if sample.channel is not None:
            return [sample]
        fill: list[Sample] = []
        current = self.tick.get(sample.machine)
        if current is not None and current[0] != sample.source_time_ns:
            time_ns, seen = current
            held = self.held.get(sample.machine, {})
            fill = [replace(h, source_time_ns=time_ns) for name, h in held.items() if name not in seen]
            current = None
        if current is None:
            current = (sample.source_time_ns, set())
            self.tick[sample.machine] = current
        current[1].add(sample.signal)
        self.held.setdefault(sample.machine, {})[sample.signal] = sample
        return [*fill, sample]

    def hold(self, samples: Sequence[Sample]) -> None:
        """Know these last values for the ticks that lack them; a value held already and newer stays."""
        for sample in samples:
            if sample.channel is None:
                held = self.held.setdefault(sample.machine, {})
                old = held.get(sample.signal)
                if old is None or old.source_time_ns <= sample.source_time_ns:
                    held[sample.signal] = _measurement(sample)

    def observe(self, samples: Sequence[Sample]) -> Verdict:
        verdict = Verdict()
        model = self.model
        for incoming in sorted(samples, key=_source_time):
            self._track_quality(incoming)
            for sample in self._completed(_measurement(incoming)):
                before = model.outputs
                findings = model.observe([sample])
                if model.outputs is not before:
                    verdict.outputs += [_output(v) for v in model.outputs if math.isfinite(v.value)]
                for finding in findings:
                    verdict.occurrences.append(occurrence(finding))
                    self.last_found_ns[finding.key] = max(finding.time_ns, sample.source_time_ns)
                    feature = finding.detector.partition(":")[2]
                    features = finding.moving or (feature,)
                    self.condition_detector[finding.key] = [f"{finding.machine}.{f}" for f in features]
            self._advance(incoming.machine, incoming.source_time_ns)
        quiet_ns = QUIET_MEMORIES * model.memory_s * 1e9
        for key, found in list(self.last_found_ns.items()):
            alarmed = model.last_alarm_ns
            # whichever clock the alarms were stamped on, a new one restarts the quiet time
            latest = max((alarmed.get(d, -1) for d in self.condition_detector.get(key, [])), default=-1)
            watched = self.watched_ns.get(key.split("/")[1], 0)
            marker, since = self.quiet_from.get(key, ((-1, -1), watched))
            if (found, latest) != marker:
                self.quiet_from[key] = ((found, latest), watched)
                since = watched
            if watched - since > quiet_ns:
                verdict.cleared.append(key)
                self._forget(key)
        return verdict

    def _advance(self, machine: str, time_ns: int) -> None:
        """Move ``machine``'s clocks to a sample at ``time_ns``: a step within ``GAP_INTERVALS`` of its
        usual interval is watched time, a longer one (a gap in its data) counts as one usual interval."""
        last = self.now_ns.get(machine)
        self.now_ns[machine] = time_ns if last is None else max(last, time_ns)
        if last is None or time_ns <= last:
            return
        step = time_ns - last
        usual = self.interval_ns.get(machine, float(step))
        self.watched_ns[machine] = self.watched_ns.get(machine, 0) + int(
            step if step <= GAP_INTERVALS * usual else usual
        )
        # a slower rate for good is learnt within a few samples; one gap moves it by half at most
        self.interval_ns[machine] = usual + 0.05 * (min(step, GAP_INTERVALS * usual) - usual)

    def _forget(self, key: str) -> None:
        del self.last_found_ns[key]
        self.condition_detector.pop(key, None)
        self.quiet_from.pop(key, None)

    def _track_quality(self, sample: Sample) -> None:
        tracker = self.risk.get((sample.machine, sample.signal))
        if tracker is not None and sample.quality is GOOD:
            tracker.update(sample.value)

    def step_models(self) -> dict[str, tuple[str, bool]]:
        return {m: (type(s).__name__, s.calibrated) for m, s in self.model.steps.items()}

    def frozen(self) -> list[tuple[str, str, int]]:
        return self.model.frozen()

    def unresolved_levels(self) -> list[tuple[str, str, int]]:
        return self.model.unresolved_levels()

    def rebaseline(self, step: str) -> list[str]:
        self.model.rebaseline(step)
        gone = [key for key in self.last_found_ns if key.split("/")[1] == step]
        for key in gone:
            self._forget(key)
        return gone

    def parameters(self) -> list[Parameter]:
        return [
            replace(p, sigma=_finite_sigma(p.sigma))
            for p in self.model.parameters()
            if math.isfinite(p.value)
        ]

    def status(self, time_ns: int) -> list[ModelOutput]:
        """Calibrated parameters, spec limits around the current recipe, scrap risk per machine and what
        the step models chart between ticks (a cycler channel's capacity offset against the others).

        The risk windows are not in the snapshot: they refill within minutes."""
        outputs = [
            ModelOutput(p.machine, p.name, "parameter", p.value, time_ns, p.sigma) for p in self.parameters()
        ]
        try:
            derived = WhatIf(self.model).specs
        except WhatIfError:
            derived = {}
        specs = derived | self.specs
        risk: dict[str, float] = {}
        for quantity, (low, high) in specs.items():
            machine, signal = self.quality[quantity]
            outputs += [
                ModelOutput(machine, signal, "target", (low + high) / 2, time_ns),
                ModelOutput(machine, signal, "spec_low", low, time_ns),
                ModelOutput(machine, signal, "spec_high", high, time_ns),
            ]
            share = self.risk[(machine, signal)].risk(low, high)
            if share is not None:
                risk[machine] = max(share, risk.get(machine, 0.0))
        outputs += [ModelOutput(m, "scrap_risk", "risk", share, time_ns) for m, share in risk.items()]
        return outputs + [_output(v) for v in self.model.status(time_ns)]

    def snapshot(self) -> bytes:
        held = {m: {name: asdict(h) for name, h in signals.items()} for m, signals in self.held.items()}
        state = {
            "model": self.model.snapshot(),
            "last_found_ns": self.last_found_ns,
            "condition_detector": self.condition_detector,
            "now_ns": self.now_ns,
            "watched_ns": self.watched_ns,
            "interval_ns": self.interval_ns,
            "quiet_from": self.quiet_from,
            "held": held,
        }
        return json.dumps(state).encode()

    def restore(self, blob: bytes) -> None:
        """Resume from a snapshot; a model calibrated under other model settings is calibrated afresh.

        The snapshot's limits were derived from its settings (ARL₀, calibration period, detector), so
        keeping them would silently ignore what the operator just configured. A snapshot of an older
        model version lacks state the current detectors need, and is calibrated afresh too.
        """
        state = json.loads(blob)
        saved, wanted = state["model"]["config"], self.model.config()
        version = state["model"].get("version")
        if version != SNAPSHOT_VERSION:
            log.warning(
                "the snapshot is of model version %s, this twin runs %s: the line model calibrates afresh",
                version,
                SNAPSHOT_VERSION,
                extra={"line": self.line},
            )
        elif state["model"]["layout"] != self.model.layout():
            log.warning(
                "the line description's steps or roles changed since the snapshot: the line model "
                "calibrates afresh",
                extra={"line": self.line},
            )
        elif saved == wanted:
            self.model = LineModel.restore(state["model"], self.model.description)
        else:
            changed = ", ".join(f"{k} {saved.get(k)} -> {v}" for k, v in wanted.items() if saved.get(k) != v)
            log.warning(
                "model settings changed since the snapshot (%s): the line model calibrates afresh",
                changed,
                extra={"line": self.line},
            )
        self.last_found_ns = {k: int(v) for k, v in state["last_found_ns"].items()}
        # a snapshot from before conditions followed their detector: they return to normal by the timer
        self.condition_detector = {
            key: [detectors] if isinstance(detectors, str) else list(detectors)
            for key, detectors in state.get("condition_detector", {}).items()
        }
        now = state["now_ns"]  # one clock for the line before clocks were per machine
        self.now_ns = {m: int(t) for m, t in now.items()} if isinstance(now, dict) else {}
        # a snapshot from before gaps were told apart: quiet times start afresh at the next sample
        self.watched_ns = {m: int(t) for m, t in state.get("watched_ns", {}).items()}
        self.interval_ns = {m: float(t) for m, t in state.get("interval_ns", {}).items()}
        self.quiet_from = {
            key: ((int(found), int(latest)), int(since))
            for key, ((found, latest), since) in state.get("quiet_from", {}).items()
        }
        self.held = {
            m: {name: Sample(**{**h, "quality": Quality(h["quality"])}) for name, h in signals.items()}
            for m, signals in state["held"].items()
        }


def analyser_factory(settings: Settings) -> Callable[[str], Analyser]:
    """A fresh analyser per line, configured by ``settings.models`` and judged against the spec limits of
    ``line_description`` (restored from its snapshot by the engine when there is one)."""

    description = linedesc.load(settings.line_description)

    def make(line: str) -> Analyser:
        model = LineModel(line, description=description, **settings.models.model_dump())
        for step, reason in model.unmodelled.items():
            log.warning("step %s runs without its model: %s", step, reason, extra={"line": line})
        return LineModelAnalyser(line, model)

    return make


class LiveWhatIf:
    """What-if on the live, calibrated ``LineModel`` of a line this twin serves."""

    def __init__(self, engine: TwinEngine) -> None:
        self.engine = engine

    def _analyser(self, line: str) -> LineModelAnalyser:
        worker = self.engine.workers.get(line)
        if worker is None:
            raise ValueError(f"this twin does not serve line {line!r}; it serves {self.engine.lines}")
        analyser = worker.analyser
        if not isinstance(analyser, LineModelAnalyser):
            raise WhatIfUnavailable(f"line {line} runs no line model")
        return analyser

    def catalogue(self, line: str) -> Catalogue:
        """From the line model's step kinds (what each forecasts and takes) and the line description
        (names, units, setpoint limits, spec limits): known before anything is calibrated."""
        model = self._analyser(line).model
        inputs, quantities = names(model)
        writable = model.description.setpoints()
        specs = self._specs(line)
        catalogue = Catalogue()
        for name, i in inputs.items():
            machine = i.step.machine
            setpoint = writable[name][1].setpoint if name in writable else None
            now = i.step.current.get(i.held, math.nan)
            catalogue.inputs.append(
                Input(
                    name,
                    machine,
                    i.step.signal_name(i.held),
                    model.unit(machine, i.held),
                    setpoint is not None,
                    setpoint.low if setpoint is not None else None,
                    setpoint.high if setpoint is not None else None,
                    model.stored(machine, i.held, now) if math.isfinite(now) else None,
                )
            )
        for name, q in quantities.items():
            machine = q.step.machine
            low, high = specs.get(name, (None, None))
            signal, unit = q.step.signal_name(q.measured), model.unit(machine, q.measured)
            catalogue.quantities.append(Quantity(name, machine, signal, unit, low, high))
        return catalogue

    def _whatif(self, line: str) -> WhatIf:
        analyser = self._analyser(line)
        try:
            return WhatIf(analyser.model)
        except WhatIfError as exc:
            raise WhatIfUnavailable(str(exc)) from None

    def predict(self, line: str, setpoints: Mapping[str, float]) -> Answer:
        try:
            found = self._whatif(line).predict(setpoints)
        except WhatIfError as exc:
            raise WhatIfUnavailable(str(exc)) from None
        specs = self._specs(line)
        found.predictions = [
            replace(p, lower_spec=specs[p.quantity][0], upper_spec=specs[p.quantity][1])
            if p.quantity in specs
            else p
            for p in found.predictions
        ]
        return found

    def _specs(self, line: str) -> Specs:
        analyser = self.engine.workers[line].analyser
        return analyser.specs if isinstance(analyser, LineModelAnalyser) else {}

    def inverse(
        self, line: str, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]]
    ) -> dict[str, float]:
        try:
            return self._whatif(line).inverse(targets, bounds or None)
        except WhatIfError as exc:
            raise WhatIfUnavailable(str(exc)) from None


def whatif_models(settings: Settings) -> Callable[[TwinEngine], LiveWhatIf]:
    del settings
    return LiveWhatIf
