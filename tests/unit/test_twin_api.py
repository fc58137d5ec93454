"""The twin engine and its API with a fake analyser: no MQTT, no InfluxDB, no models needed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import bus
from core.prediction import Answer, Catalogue, Input, Prediction, Quantity, Unavailable
from core.records import ModelOutput, Parameter
from core.sample import Quality, Sample
from core.settings import ApiToken, Settings
from twin.alerts import Occurrence
from twin.api.app import create_app
from twin.ports import Verdict, WhatIfUnavailable
from twin.service import build_twin

TARGET = 20.0


class FakeAnalyser:
    """Flags dry_loading more than 2% off target; remembers how many samples it saw (its 'state')."""

    def __init__(self, line: str) -> None:
        self.line = line
        self.seen = 0
        self.frozen_signals: list[tuple[str, str, int]] = []
        self.unresolved: list[tuple[str, str, int]] = []

    def observe(self, samples: Sequence[Sample]) -> Verdict:
        verdict = Verdict()
        for s in samples:
            self.seen += 1
            if s.signal != "dry_loading":
                continue
            residual = s.value - TARGET
            verdict.outputs.append(
                ModelOutput(s.machine, s.signal, "residual", residual, s.source_time_ns, 0.1)
            )
            occ = Occurrence(
                line=s.line,
                machine=s.machine,
                signal=s.signal,
                cause="pump_wear",
                title="Loading low",
                text=f"dry loading {residual / TARGET:+.1%}",
                action="check the slurry pump",
                magnitude=100 * residual / TARGET,
                unit="%",
                onset_ns=s.source_time_ns,
            )
            if abs(residual) > 0.02 * TARGET:
                verdict.occurrences.append(occ)
            else:
                verdict.cleared.append(occ.key)
        return verdict

    def hold(self, samples: Sequence[Sample]) -> None:
        self.seen += 0 * len(samples)

    def frozen(self) -> list[tuple[str, str, int]]:
        return self.frozen_signals

    def unresolved_levels(self) -> list[tuple[str, str, int]]:
        return self.unresolved

    def step_models(self) -> dict[str, tuple[str, bool]]:
        return {"coater1": ("FakeAnalyser", True)}

    def parameters(self) -> list[Parameter]:
        return [
            Parameter("coater1", "solids_fraction", 0.7, 0.01, "1"),
            Parameter("calender1", "porosity_limit", 15.0, 2.0, "%", "prior"),
        ]

    def status(self, time_ns: int) -> list[ModelOutput]:
        return [ModelOutput("coater1", "solids_fraction", "parameter", 0.7, time_ns, 0.01)]

    def snapshot(self) -> bytes:
        return json.dumps({"seen": self.seen}).encode()

    def rebaseline(self, step: str) -> list[str]:
        if step not in ("coater1", "calender1"):
            raise ValueError(f"no step {step!r}")
        self.seen = 0
        return [f"{self.line}/{step}/dry_loading/pump_wear"]

    def restore(self, blob: bytes) -> None:
        self.seen = json.loads(blob)["seen"]


class FakeWhatIf:
    """dry_loading = pump_flow / web_speed, spec 20 ± 0.4."""

    def __init__(self, engine: object) -> None:
        self.engine = engine

    def catalogue(self, line: str) -> Catalogue:
        return Catalogue(
            [
                Input("pump_flow", "coater1", "pump_flow_setpoint", "mL/min", True, 0.0, 200.0, 100.0),
                Input("web_speed", "coater1", "web_speed_setpoint", "m/min", True, 0.2, 10.0, 5.0),
                Input("slurry_density", "coater1", "slurry_density", "g/cm3", False),
            ],
            [
                Quantity("dry_loading", "coater1", "dry_loading", "mg/cm2", 19.6, 20.4),
                Quantity("porosity", "calender1", "porosity", "%"),
            ],
        )

    def predict(self, line: str, setpoints: Mapping[str, float]) -> Answer:
        loading = setpoints.get("pump_flow", 100.0) / setpoints.get("web_speed", 5.0)
        prediction = Prediction("dry_loading", loading, 0.12, 0.16, "mg/cm2", 19.6, 20.4)
        return Answer([prediction], [Unavailable("porosity", "calender1 model calibrating: 3 of 45")])

    def inverse(
        self, line: str, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]]
    ) -> dict[str, float]:
        if "dry_loading" not in targets:
            raise WhatIfUnavailable("only dry_loading can be targeted")
        return {"pump_flow": targets["dry_loading"] * 5.0, "web_speed": 5.0}


def sample(value: float, t: int, signal: str = "dry_loading", roll: str = "R1") -> Sample:
    return Sample("line1", "coater1", signal, value, "mg/cm2", t * 10**9, t * 10**9, roll_id=roll, seq=t)


def settings(tmp_path: Path, token: str | None = "s3cret") -> Settings:
    return Settings.model_validate(
        {"twin": {"state_file": str(tmp_path / "twin.sqlite"), "api_token": token, "lines": ["line1"]}}
    )


@pytest.fixture
def twin_client(tmp_path: Path) -> Iterator[TestClient]:
    twin = build_twin(settings(tmp_path), FakeAnalyser, FakeWhatIf, influx_enabled=False)
    with TestClient(create_app(twin, run_engine=False)) as client:
        yield client


def feed(client: TestClient, *samples: Sample) -> None:
    engine = client.app.state.twin.engine  # type: ignore[attr-defined]
    worker = engine.workers["line1"]
    engine.dispatch(engine.settings.namespace().bus("coater1"), bus.encode(samples))
    worker.take(*worker.queue.get_nowait())


AUTH = {"Authorization": "Bearer s3cret"}


def test_live_state_shows_the_latest_value_of_each_signal(twin_client: TestClient) -> None:
    feed(twin_client, sample(20.0, 1), sample(20.1, 2), sample(100.0, 2, signal="pump_flow"))
    state = twin_client.get("/lines/line1/state").json()
    assert state["machines"]["coater1"]["dry_loading"]["value"] == 20.1
    assert state["processed_samples"] == 3
    machine = twin_client.get("/machines/coater1").json()
    assert machine["signals"]["pump_flow"]["value"] == 100.0


def test_a_drift_becomes_an_alert_that_names_cause_and_material(twin_client: TestClient) -> None:
    feed(twin_client, sample(19.0, 5, roll="R7"))
    [alert] = twin_client.get("/alerts").json()
    assert (alert["state"], alert["cause"], alert["machine"]) == (
        "active_unacknowledged",
        "pump_wear",
        "coater1",
    )
    assert alert["rolls"] == ["R7"]
    assert alert["magnitude"] == pytest.approx(-5.0)


def test_acknowledge_and_shelve_need_the_token_and_record_who(twin_client: TestClient) -> None:
    feed(twin_client, sample(19.0, 5))
    alert_id = twin_client.get("/alerts").json()[0]["id"]
    refused = twin_client.post(f"/alerts/{alert_id}/acknowledge", json={"by": "ana"})
    assert refused.status_code == 401 and "token" in refused.json()["detail"]
    acked = twin_client.post(f"/alerts/{alert_id}/acknowledge", json={"by": "ana"}, headers=AUTH).json()
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "ana")
    again = twin_client.post(f"/alerts/{alert_id}/acknowledge", json={"by": "ana"}, headers=AUTH)
    assert again.status_code == 409
    shelved = twin_client.post(
        f"/alerts/{alert_id}/shelve", json={"by": "ben", "duration_s": 600}, headers=AUTH
    )
    assert shelved.json()["state"] == "shelved"
    detail = twin_client.get(f"/alerts/{alert_id}").json()
    assert [(e["action"], e["who"]) for e in detail["events"]] == [
        ("raise", "twin"),
        ("acknowledge", "ana"),
        ("shelve", "ben"),
    ]
    assert [a["id"] for a in twin_client.get("/alerts", params={"state": "shelved"}).json()] == [alert_id]


def test_returning_to_normal_is_shown_until_acknowledged(twin_client: TestClient) -> None:
    feed(twin_client, sample(19.0, 5), sample(20.0, 6))
    [alert] = twin_client.get("/alerts").json()
    assert alert["state"] == "returned_unacknowledged"


def test_bad_requests_get_4xx_with_a_message(twin_client: TestClient) -> None:
    cases = [
        twin_client.get("/lines/nope/state"),
        twin_client.get("/lines/bad;drop/state"),
        twin_client.get("/alerts/0"),
        twin_client.get("/alerts/12345"),
        twin_client.post("/alerts/1/shelve", json={"by": "x", "duration_s": -1}, headers=AUTH),
        twin_client.post("/whatif", json={"setpoints": {"warp_drive": 1.0}}),
        twin_client.post("/whatif", json={"setpoints": {"web_speed": 0.0}}),
        twin_client.post("/whatif/inverse", json={"targets": {}}),
        twin_client.get("/signals/line1/coater1/x/history", params={"kind": "bogus"}),
        twin_client.get("/genealogy/rolls/R404"),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["detail"]


def test_whatif_lists_its_inputs_and_refuses_what_the_line_does_not_take(twin_client: TestClient) -> None:
    listed = twin_client.get("/whatif/inputs").json()
    assert listed["line"] == "line1"
    flow = next(i for i in listed["inputs"] if i["name"] == "pump_flow")
    assert (flow["unit"], flow["symbol"], flow["low"], flow["high"], flow["setpoint"]) == (
        "mL/min",
        "mL/min",
        0.0,
        200.0,
        True,
    )
    assert [q["symbol"] for q in listed["quantities"]] == ["mg/cm²", "%"]
    beyond = twin_client.post("/whatif", json={"setpoints": {"pump_flow": 250.0}})
    assert beyond.status_code == 422
    assert (
        beyond.json()["detail"]
        == "pump_flow = 250.0 is outside coater1 pump_flow_setpoint's limits 0.0 to 200.0 mL/min"
    )
    free = twin_client.post("/whatif", json={"setpoints": {"slurry_density": 5.0}})
    assert free.status_code == 200, "a plant condition has no setpoint limits"
    aimed = twin_client.post("/whatif/inverse", json={"targets": {"capacity_fade": 1.0}})
    assert aimed.status_code == 422 and "this line's are dry_loading, porosity" in aimed.json()["detail"]
    bounded = twin_client.post(
        "/whatif/inverse", json={"targets": {"dry_loading": 20.0}, "bounds": {"warp": {"low": 0, "high": 1}}}
    )
    assert bounded.status_code == 422


def test_whatif_predicts_against_spec_and_inverse_finds_setpoints(twin_client: TestClient) -> None:
    result = twin_client.post("/whatif", json={"setpoints": {"pump_flow": 110.0, "web_speed": 5.0}}).json()
    assert result["line"] == "line1"
    [prediction] = result["predictions"]
    assert prediction["value"] == pytest.approx(22.0)
    assert prediction["within_spec"] is False
    assert (prediction["interval_low"], prediction["interval_high"]) == pytest.approx((21.6, 22.4))
    assert result["unavailable"] == [
        {"quantity": "porosity", "reason": "calender1 model calibrating: 3 of 45"}
    ]
    current = twin_client.post("/whatif", json={})
    assert current.status_code == 200, "no setpoints at all asks for the current operating point"
    inverse = twin_client.post("/whatif/inverse", json={"targets": {"dry_loading": 20.0}}).json()
    assert inverse["setpoints"]["pump_flow"] == pytest.approx(100.0)
    assert inverse["predictions"][0]["within_spec"] is True
    unanswerable = twin_client.post("/whatif/inverse", json={"targets": {"porosity": 30.0}})
    assert unanswerable.status_code == 409 and "dry_loading" in unanswerable.json()["detail"]
    unsaved = twin_client.post("/whatif", json={"setpoints": {"pump_flow": 100.0}, "save": True})
    assert unsaved.status_code == 401
    saved = twin_client.post("/whatif", json={"setpoints": {"pump_flow": 100.0}, "save": True}, headers=AUTH)
    assert saved.json()["saved_id"] == 1


def test_genealogy_links_rolls_and_cells_both_ways(twin_client: TestClient) -> None:
    feed(twin_client, sample(20.0, 1, roll="R1"))
    cell = Sample(
        "line1",
        "cycler1",
        "voltage",
        3.7,
        "V",
        2 * 10**9,
        2 * 10**9,
        channel="ch01",
        roll_id="R1",
        cell_id="C42",
    )
    feed(twin_client, cell)
    roll = twin_client.get("/genealogy/rolls/R1").json()
    assert [c["cell_id"] for c in roll["cells"]] == ["C42"]
    assert {s["machine"] for s in roll["steps"]} == {"coater1", "cycler1"}
    back = twin_client.get("/genealogy/cells/C42").json()
    assert back["roll"]["roll_id"] == "R1"


def test_parameters_health_and_metrics(twin_client: TestClient) -> None:
    feed(twin_client, sample(20.0, 1))
    [params] = twin_client.get("/models/parameters").json()
    assert params["parameters"][0] == {
        "machine": "coater1",
        "name": "solids_fraction",
        "value": 0.7,
        "sigma": 0.01,
        "unit": "1",
        "source": "data",
    }
    assert params["parameters"][1]["source"] == "prior", "a domain value is told apart from a calibration"
    assert twin_client.get("/health").json()["lines"] == ["line1"]
    assert 'twin_samples_total{line="line1"} 1.0' in twin_client.get("/metrics").text


def test_health_says_degraded_with_503_while_the_broker_or_the_database_is_away(
    twin_client: TestClient,
) -> None:
    engine = twin_client.app.state.twin.engine  # type: ignore[attr-defined]
    away = twin_client.get("/health")
    assert away.status_code == 503 and away.json()["reasons"] == ["MQTT broker not connected"]
    engine.connected = True
    ok = twin_client.get("/health")
    assert ok.status_code == 200 and ok.json()["status"] == "ok" and ok.json()["reasons"] == []


def test_reads_need_the_token_when_configured(tmp_path: Path) -> None:
    config = settings(tmp_path)
    config.twin.read_only_without_token = False
    twin = build_twin(config, FakeAnalyser, None, influx_enabled=False)
    with TestClient(create_app(twin, run_engine=False)) as client:
        assert client.get("/alerts").status_code == 401
        assert client.get("/alerts", headers=AUTH).status_code == 200
        assert client.post("/whatif", json={"setpoints": {"pump_flow": 1.0}}, headers=AUTH).status_code == 409


def test_line_state_is_restored_from_the_snapshot(tmp_path: Path) -> None:
    first = build_twin(settings(tmp_path), FakeAnalyser, None, influx_enabled=False)
    worker = first.engine.workers["line1"]
    worker.process([sample(20.0, 1), sample(20.2, 2)])
    worker.save()
    second = build_twin(settings(tmp_path), FakeAnalyser, None, influx_enabled=False)
    restored = second.engine.workers["line1"]
    assert restored.restore()
    assert isinstance(restored.analyser, FakeAnalyser) and restored.analyser.seen == 2
    assert second.engine.live.lines["line1"]["coater1"]["dry_loading"].value == 20.2


def test_the_ui_page_is_served(twin_client: TestClient) -> None:
    page = twin_client.get("/")
    assert page.status_code == 200 and "EventSource" in page.text


async def test_stop_analyses_the_queued_backlog_within_its_time_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for budget, analysed in ((10.0, 3), (0.0, 0)):
        config = settings(tmp_path / str(budget))
        config.twin.stop_drain_s = budget
        engine = build_twin(config, FakeAnalyser, None, influx_enabled=False).engine
        for t in range(3):
            engine.dispatch(config.namespace().bus("coater1"), bus.encode([sample(20.0, t)]))
        with caplog.at_level(logging.WARNING):
            await engine.stop()
        assert engine.workers["line1"].processed == analysed
    assert "not analysed" in caplog.text and caplog.records[-1].messages == 3  # type: ignore[attr-defined]


def test_the_line_description_lists_steps_in_flow_order_with_units_and_limits(
    twin_client: TestClient,
) -> None:
    described = twin_client.get("/lines/line1/description").json()
    assert [s["id"] for s in described["steps"]] == ["coater1", "calender1", "cycler1"]
    coater = {s["name"]: s for s in described["steps"][0]["signals"]}
    assert (coater["dry_loading"]["unit"], coater["dry_loading"]["symbol"]) == ("mg/cm2", "mg/cm²")
    assert (coater["dry_loading"]["spec_low"], coater["dry_loading"]["spec_high"]) == (19.6, 20.4)
    assert coater["pump_flow_setpoint"]["setpoint"] == {"low": 0.0, "high": 200.0, "input": "pump_flow"}
    assert twin_client.get("/lines/line9/description").status_code == 404


def test_a_push_outside_the_described_limits_is_refused_before_the_plant_is_asked(tmp_path: Path) -> None:
    from core import linedesc

    narrower = (
        linedesc.builtin_path()
        .read_text()
        .replace('high = 2000.0, input = "line_load"', 'high = 1000.0, input = "line_load"')
    )
    (tmp_path / "line.toml").write_text(narrower)
    config = settings(tmp_path)
    config.line_description = tmp_path / "line.toml"
    config.twin.allow_setpoint_push = True
    config.plant.opcua_endpoint = "opc.tcp://127.0.0.1:9/nowhere"  # asked, it answers 502
    twin = build_twin(config, FakeAnalyser, FakeWhatIf, influx_enabled=False)
    with TestClient(create_app(twin, run_engine=False)) as client:
        within = {"by": "ana", "setpoints": {"line_load": 900.0}}
        assert client.post("/whatif/push", json=within, headers=AUTH).status_code == 502
        beyond = {"by": "ana", "setpoints": {"line_load": 1500.0}}
        refused = client.post("/whatif/push", json=beyond, headers=AUTH)
        assert refused.status_code == 422
        assert "outside calender1 line_load_setpoint's limits 0.0 to 1000.0 N/mm" in refused.json()["detail"]


def test_a_step_whose_key_signal_is_bad_shows_as_not_monitored_since_then(twin_client: TestClient) -> None:
    bad = Sample("line1", "coater1", "dry_loading", 999.0, "mg/cm2", 5 * 10**9, 5 * 10**9, Quality.BAD)
    feed(twin_client, sample(20.0, 4), bad, replace(bad, source_time_ns=6 * 10**9))
    state = twin_client.get("/lines/line1/state").json()
    assert state["not_monitored"] == [
        {"machine": "coater1", "signal": "dry_loading", "quality": "bad", "since_ns": 5 * 10**9}
    ]
    feed(twin_client, sample(20.1, 7))
    assert twin_client.get("/lines/line1/state").json()["not_monitored"] == []


def test_a_signal_its_model_withholds_as_frozen_shows_as_not_monitored(twin_client: TestClient) -> None:
    engine = twin_client.app.state.twin.engine  # type: ignore[attr-defined]
    engine.workers["line1"].analyser.frozen_signals = [("coater1", "dryer_zone1_temperature", 7 * 10**9)]
    state = twin_client.get("/lines/line1/state").json()
    assert state["not_monitored"] == [
        {
            "machine": "coater1",
            "signal": "dryer_zone1_temperature",
            "quality": "frozen",
            "since_ns": 7 * 10**9,
        }
    ]


def test_a_feature_whose_level_calibration_could_not_resolve_shows_as_not_monitored(
    twin_client: TestClient,
) -> None:
    engine = twin_client.app.state.twin.engine  # type: ignore[attr-defined]
    engine.workers["line1"].analyser.unresolved = [("coater1", "pump_flow_deviation", 9 * 10**9)]
    (entry,) = twin_client.get("/lines/line1/state").json()["not_monitored"]
    assert entry == {
        "machine": "coater1",
        "signal": "pump_flow_deviation",
        "quality": "level_unresolved",
        "since_ns": 9 * 10**9,
    }


def test_the_alarm_system_figures_are_served_per_line(twin_client: TestClient) -> None:
    engine = twin_client.app.state.twin.engine  # type: ignore[attr-defined]
    occurrence = Occurrence("line1", "coater1", "pump_flow", "pump_wear", "t", "x", "a", -1.0, "%", 0)
    for _ in range(3):  # raised and returned three times within a second: it chatters
        engine.raise_alert(occurrence)
        engine.clear_alert(occurrence.key)
    body = twin_client.get("/lines/line1/alarm-rates", params={"hours": 1}).json()
    assert (body["raised"], body["standing"], body["chattering"]) == (3, 0, [occurrence.key])
    assert body["per_10_min"] == pytest.approx(0.5) and body["window_s"] == 3600
    assert twin_client.get("/lines/nope/alarm-rates").status_code == 404


def test_a_step_is_rebaselined_with_the_token_only_and_its_open_condition_returns(
    twin_client: TestClient,
) -> None:
    feed(twin_client, sample(19.0, 1))
    [alert] = twin_client.get("/alerts").json()
    assert alert["state"] == "active_unacknowledged"
    body = {"by": "maintenance", "note": "new metering pump"}
    assert twin_client.post("/lines/line1/steps/coater1/rebaseline", json=body).status_code == 401
    done = twin_client.post("/lines/line1/steps/coater1/rebaseline", json=body, headers=AUTH)
    assert done.status_code == 200 and done.json()["by"] == "maintenance"
    [alert] = twin_client.get("/alerts").json()
    assert alert["state"] == "returned_unacknowledged", "the worn pump's condition is gone with it"
    [event] = twin_client.get("/lines/line1/model-events").json()
    assert (event["step"], event["action"], event["note"]) == ("coater1", "rebaseline", "new metering pump")
    missing = twin_client.post("/lines/line1/steps/oven9/rebaseline", json=body, headers=AUTH)
    assert missing.status_code == 404 and "oven9" in missing.json()["detail"]


def test_without_a_token_every_change_is_refused_unless_the_twin_is_insecure(tmp_path: Path) -> None:
    for insecure, expected in ((False, 401), (True, 200)):
        config = settings(tmp_path / str(insecure), token=None)
        config.twin.insecure = insecure
        twin = build_twin(config, FakeAnalyser, FakeWhatIf, influx_enabled=False)
        with TestClient(create_app(twin, run_engine=False)) as client:
            feed(client, sample(19.0, 1))
            [alert] = client.get("/alerts").json()
            acked = client.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "ana"})
            assert acked.status_code == expected, acked.text
            if not insecure:
                assert "no API token" in acked.json()["detail"]
                body = {"by": "x", "note": ""}
                assert client.post("/lines/line1/steps/coater1/rebaseline", json=body).status_code == 401
            assert client.get("/alerts").status_code == 200, "reads stay open"


def test_hashed_tokens_grant_only_their_scopes(tmp_path: Path) -> None:
    from twin.api.deps import token_hash

    config = settings(tmp_path, token=None)
    config.twin.tokens = [
        ApiToken(name="viewer", sha256=token_hash("view-123"), scopes=["read"]),
        ApiToken(name="lead", sha256=token_hash("lead-456"), scopes=["read", "acknowledge"]),
    ]
    config.twin.read_only_without_token = False
    config.twin.allow_setpoint_push = True
    twin = build_twin(config, FakeAnalyser, FakeWhatIf, influx_enabled=False)
    viewer, lead = ({"Authorization": f"Bearer {t}"} for t in ("view-123", "lead-456"))
    with TestClient(create_app(twin, run_engine=False)) as client:
        feed(client, sample(19.0, 1))
        assert client.get("/alerts").status_code == 401, "reads need a read token here"
        assert client.get("/alerts", headers={"Authorization": "Bearer guess"}).status_code == 401
        [alert] = client.get("/alerts", headers=viewer).json()
        path = f"/alerts/{alert['id']}/acknowledge"
        refused = client.post(path, json={"by": "vic"}, headers=viewer)
        assert refused.status_code == 403 and "may not acknowledge" in refused.json()["detail"]
        acked = client.post(path, json={"by": "lee"}, headers=lead)
        assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "lee (token lead)"
        push = client.post(
            "/whatif/push", json={"by": "lee", "setpoints": {"line_load": 900.0}}, headers=lead
        )
        assert push.status_code == 403 and "may not push" in push.json()["detail"]
        body = {"by": "lee", "note": "new pump"}
        assert (
            client.post("/lines/line1/steps/coater1/rebaseline", json=body, headers=lead).status_code == 403
        )
    assert "view-123" not in config.model_dump_json() and "lead-456" not in config.model_dump_json()
