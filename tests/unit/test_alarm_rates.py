"""The alarm-system figures (EEMUA 191, ISA-18.2): rate, peak, floods, standing, stale, chattering."""

from __future__ import annotations

from pathlib import Path

from twin.alarmrates import NS, rates
from twin.alerts import AlertStore, Occurrence, open_database

MINUTE = 60 * NS
HOUR = 60 * MINUTE


def test_steady_alarms_give_their_rate_and_no_flood() -> None:
    raises = [(f"k{i}", i * 20 * MINUTE) for i in range(6)]  # one every 20 minutes over 2 h
    figures = rates(raises, [], 0, 2 * HOUR)
    assert figures.raised == 6 and figures.per_10_min == 0.5
    assert (figures.peak_per_10_min, figures.floods, figures.chattering) == (1, 0, [])


def test_eleven_alarms_in_ten_minutes_are_one_flood_however_long_it_lasts() -> None:
    burst = [(f"a{i}", HOUR + i * 30 * NS) for i in range(25)]  # 25 alarms in 12 minutes
    later = [(f"b{i}", 5 * HOUR + i * 50 * NS) for i in range(11)]  # 11 in 8.3 minutes
    figures = rates(burst + later + [("c", 3 * HOUR)], [], 0, 8 * HOUR)
    assert figures.floods == 2 and figures.peak_per_10_min == 20


def test_ten_alarms_in_ten_minutes_are_no_flood() -> None:
    assert rates([(f"a{i}", i * MINUTE) for i in range(10)], [], 0, HOUR).floods == 0


def test_a_condition_raised_three_times_in_a_minute_chatters() -> None:
    chatter = [("coater1/pump_flow", HOUR + s * NS) for s in (0, 25, 55)]
    slow = [("calender1/thickness", HOUR + m * MINUTE) for m in (0, 2, 4)]
    figures = rates(chatter + slow, [], 0, 2 * HOUR)
    assert figures.chattering == ["coater1/pump_flow"]


def test_standing_and_stale_alarms() -> None:
    now = 48 * HOUR
    figures = rates([], [now - HOUR, now - 30 * HOUR], 24 * HOUR, now)
    assert (figures.standing, figures.stale) == (2, 1)


def test_the_store_counts_every_raise_of_a_line_returns_to_active_included() -> None:
    store = AlertStore(open_database(Path(":memory:")))
    occurrence = Occurrence("l1", "coater1", "pump_flow", "pump_wear", "t", "x", "a", -1.0, "%", 0)
    for t in (10, 20, 30):
        store.raise_condition(occurrence, now_ns=t * NS)
        store.clear_condition(occurrence.key, now_ns=(t + 5) * NS)
    other = Occurrence("l2", "coater1", "pump_flow", "pump_wear", "t", "x", "a", -1.0, "%", 0)
    store.raise_condition(other, now_ns=40 * NS)
    assert [at for _, at in store.raises("l1", 0, 100 * NS)] == [10 * NS, 20 * NS, 30 * NS]
    assert store.active_raised("l1") == [] and store.active_raised("l2") == [40 * NS]
    figures = rates(store.raises("l1", 0, 100 * NS), [], 0, 100 * NS)
    assert figures.chattering == [occurrence.key]
