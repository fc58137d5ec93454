"""The marks that keep a replayed or redelivered sample from being analysed twice."""

from __future__ import annotations

from core.sample import Sample
from twin.catchup import Marks


def _s(machine: str, signal: str, t: int, channel: str | None = None) -> Sample:
    return Sample("l1", machine, signal, 1.0, "", t, t, channel=channel)


def test_admit_takes_each_signal_once_in_time_and_moves_its_mark() -> None:
    marks = Marks()
    first = [_s("coater1", "pump_flow", 10), _s("coater1", "web_speed", 10)]
    assert marks.admit(first) == first
    assert marks.admit(first) == [], "a redelivery is dropped"
    late = [_s("coater1", "pump_flow", 9), _s("coater1", "web_speed", 11), _s("calender1", "force", 5)]
    assert marks.admit(late) == late[1:], "only the older pump_flow sample was seen already"


def test_cycler_channels_have_marks_of_their_own() -> None:
    marks = Marks()
    marks.admit([_s("formation1", "capacity", 100, channel="ch01")])
    other = [_s("formation1", "capacity", 50, channel="ch02")]
    assert marks.admit(other) == other, "an earlier record of another channel is new"


def test_fresh_filters_without_moving_marks() -> None:
    marks = Marks()
    marks.admit([_s("coater1", "pump_flow", 10)])
    batch = [_s("coater1", "pump_flow", 10), _s("coater1", "pump_flow", 11)]
    assert marks.fresh(batch) == batch[1:]
    assert marks.fresh(batch) == batch[1:], "fresh leaves the marks where they were"


def test_replay_starts_at_a_machines_oldest_mark_or_the_lines() -> None:
    marks = Marks()
    assert marks.since("coater1") is None, "nothing analysed, nothing to replay"
    marks.admit([_s("coater1", "pump_flow", 30), _s("coater1", "web_speed", 20), _s("calender1", "f", 5)])
    assert marks.since("coater1") == 20
    assert marks.since("formation1") == 5, "a machine not seen yet replays from the line's oldest mark"
    assert marks.since("coater") == 5, "a name that is only a prefix of another is not that machine"


def test_marks_survive_the_snapshot() -> None:
    marks = Marks()
    marks.admit([_s("coater1", "pump_flow", 30), _s("formation1", "q", 7, channel="ch1")])
    again = Marks.load(marks.dump())
    assert again.admit([_s("coater1", "pump_flow", 30), _s("formation1", "q", 8, channel="ch1")]) == [
        _s("formation1", "q", 8, channel="ch1")
    ]
    assert len(Marks.load(None)) == 0 and len(Marks.load("{}")) == 0
