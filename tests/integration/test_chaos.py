"""A short chaos run: kill -9s of every component on a seeded schedule, nothing twice, nothing left behind.

Losses are counted and printed, per protocol, not asserted to be 0. MQTT: a Mosquitto kill -9 loses what
it acknowledged within its last autosave second (issue 16). OPC UA (the simulated machines, whose server
keeps history, and the bench source): alone on the machine this run loses nothing, but once inside the
whole suite on 2 busy cores the bench source lost the 244 ticks of one ingest downtime, not yet
explained (issue 16). What holds is asserted: no duplicate, every alert kept, the twin resumed its
models and analysed up to every signal's newest sample, every component recovered.
"""

from __future__ import annotations

import pytest

from bench.chaos import goals_met, run_chaos

pytestmark = pytest.mark.integration


@pytest.mark.xdist_group("demo-and-chaos")  # never beside the demo's timing on the other worker
def test_kill_9s_on_a_schedule_duplicate_nothing_and_lose_no_alert_or_model_state() -> None:
    result = run_chaos(90.0, seed=3, gap_s=(12.0, 18.0), down_s=(2.0, 5.0), log=lambda _: None)
    killed = {t for e in result.events for t in e.targets}
    assert len(result.events) >= 4 and len(killed) >= 4, result.events
    lost = sum(s.lost_while_up for s in result.streams)
    holes = [(s.name, s.holes) for s in result.streams if s.holes]
    print(f"chaos: {lost} samples lost while a connector was up: {holes}")
    opcua = [
        (s.name, s.lost_while_up + s.lost_while_down, s.holes) for s in result.streams if "/" not in s.name
    ]
    print(f"chaos: OPC UA streams that lost ticks, ingest up or down: {[o for o in opcua if o[1]]}")
    held = [goal for goal in goals_met(result) if "lost while a connector was up" not in goal]
    assert held == [], held
    assert all(s.stored > 0 for s in result.streams)
    assert result.alerts_published > 0, "the pump steps raised alerts to count"
