"""A short chaos run: kill -9s of every component on a seeded schedule, nothing lost, nothing twice."""

from __future__ import annotations

import pytest

from bench.chaos import goals_met, run_chaos

pytestmark = pytest.mark.integration


@pytest.mark.xdist_group("chaos")
def test_kill_9s_on_a_schedule_lose_nothing_produced_while_a_connector_was_up() -> None:
    result = run_chaos(90.0, seed=3, gap_s=(12.0, 18.0), down_s=(2.0, 5.0), log=lambda _: None)
    killed = {t for e in result.events for t in e.targets}
    assert len(result.events) >= 4 and len(killed) >= 4, result.events
    assert goals_met(result) == [], goals_met(result)
    assert all(s.stored > 0 for s in result.streams)
    assert result.alerts_published > 0, "the pump steps raised alerts to count"
