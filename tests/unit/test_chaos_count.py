"""How the chaos benchmark counts a stream by its sequence numbers, and draws its schedule."""

from __future__ import annotations

from bench.chaos import TARGETS, _count, schedule


def test_holes_are_lost_and_one_seq_at_two_times_is_a_duplicate() -> None:
    signals = {"pump_flow": [(1, 10), (2, 20), (2, 25), (5, 50)], "web_speed": [(1, 10), (3, 30)]}
    stream = _count("coater1", signals, produced=None)
    assert (stream.produced, stream.stored, stream.duplicated) == (5, 4, 1)
    assert stream.lost_while_up == 1, "seq 4 is in no signal; 3 is in web_speed"


def test_the_sources_own_count_finds_a_lost_tail() -> None:
    stream = _count("machine1", {"pump_flow": [(1, 10), (2, 20)]}, produced=4)
    assert (stream.produced, stream.lost_while_up) == (4, 2)


def test_a_hole_while_ingest_was_down_on_a_server_without_history_is_told_apart() -> None:
    signals = {"pump_flow": [(1, 10), (2, 20), (6, 60), (8, 80)]}
    stream = _count("coater1", signals, produced=None, unsent=lambda t0, t1: t0 == 20 and t1 == 60)
    assert (stream.lost_while_down, stream.lost_while_up) == (3, 1)


def test_the_schedule_is_seeded_and_hits_every_component_sometimes_two_at_once() -> None:
    events = schedule(7, 600.0, (20.0, 50.0), (2.0, 20.0))
    assert events == schedule(7, 600.0, (20.0, 50.0), (2.0, 20.0)), "one seed, one schedule"
    assert {t for e in events for t in e.targets} == set(TARGETS)
    assert any(len(e.targets) == 2 for e in events)
    assert all(60.0 <= e.at_s <= 540.0 and 2.0 <= e.down_s <= 20.0 for e in events)
