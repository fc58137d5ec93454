"""Which worker serves a line: decided from the statuses on the broker, the same way by every worker."""

from __future__ import annotations

import pytest

from twin.membership import Membership, WorkerStatus


def _status(
    worker: str, online: bool, owns: set[str], serving: set[str], standby: frozenset[str] = frozenset()
) -> WorkerStatus:
    return WorkerStatus(worker, online, frozenset(owns), frozenset(serving), standby)


def test_a_standby_takes_a_line_only_when_its_owner_is_gone() -> None:
    standby = Membership("b", frozenset({"y"}), frozenset({"x"}))
    assert standby.to_adopt({"y"}) == {"x"}, "no status seen: nobody cares for x"
    standby.seen(_status("a", True, {"x"}, {"x"}))
    assert standby.to_adopt({"y"}) == set()
    standby.seen(_status("a", False, {"x"}, set()))  # its last will
    assert standby.to_adopt({"y"}) == {"x"}
    assert standby.to_adopt({"x", "y"}) == set(), "already serving it"


def test_a_taker_hands_the_line_back_when_the_owner_returns_and_the_owner_waits_for_it() -> None:
    taker = Membership("b", frozenset({"y"}), frozenset({"x"}))
    owner = Membership("a", frozenset({"x"}), frozenset())
    taker.seen(_status("a", True, {"x"}, set()))  # back, x deferred
    assert taker.to_release({"x", "y"}) == {"x"}
    owner.seen(_status("b", True, {"y"}, {"x", "y"}, frozenset({"x"})))
    assert owner.served_elsewhere("x")
    owner.seen(_status("b", True, {"y"}, {"y"}, frozenset({"x"})))  # released
    assert not owner.served_elsewhere("x")
    assert taker.to_release({"y"}) == set(), "its own line stays"


def test_of_two_standbys_only_the_first_by_name_takes_the_line() -> None:
    b = Membership("b", frozenset({"y"}), frozenset({"x"}))
    c = Membership("c", frozenset({"z"}), frozenset({"x"}))
    for m in (b, c):
        m.seen(_status("a", False, {"x"}, set()))
    b.seen(_status("c", True, {"z"}, {"z"}, frozenset({"x"})))
    c.seen(_status("b", True, {"y"}, {"y"}, frozenset({"x"})))
    assert b.to_adopt({"y"}) == {"x"} and c.to_adopt({"z"}) == set()
    c.seen(_status("b", False, {"y"}, set()))
    assert c.to_adopt({"z"}) == {"x"}, "the first standby died too"


def test_a_worker_ignores_its_own_retained_status() -> None:
    me = Membership("a", frozenset({"x"}), frozenset())
    me.seen(_status("a", True, {"x"}, {"x"}))
    assert not me.served_elsewhere("x")


def test_a_status_round_trips_and_bad_ones_are_refused() -> None:
    status = _status("a", True, {"x"}, {"x"}, frozenset({"y"}))
    assert WorkerStatus.decode(status.encode()) == status
    for bad in (b"", b"[]", b'{"online": true}', b'{"worker": "a", "owns": "x"}', b"\xff"):
        with pytest.raises(ValueError):
            WorkerStatus.decode(bad)
