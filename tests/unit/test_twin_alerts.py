"""ISA-18.2 alert states, the audit trail, and persistence across a reopen of the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.alerts import AlertConflict, AlertNotFound, AlertState, AlertStore, Occurrence, open_database

S = 1_000_000_000


def occurrence(cause: str = "pump_wear", magnitude: float = -2.5) -> Occurrence:
    return Occurrence(
        line="line1",
        machine="coater1",
        signal="dry_loading",
        cause=cause,
        title="Loading drift",
        text="dry loading 2.5% low",
        action="check pump",
        magnitude=magnitude,
        unit="%",
        onset_ns=5 * S,
    )


@pytest.fixture
def store(tmp_path: Path) -> AlertStore:
    return AlertStore(open_database(tmp_path / "twin.sqlite"))


def test_a_new_condition_is_active_unacknowledged(store: AlertStore) -> None:
    alert, new = store.raise_condition(occurrence(), now_ns=10 * S)
    assert new
    assert alert.state(10 * S) is AlertState.ACTIVE_UNACKNOWLEDGED
    assert (alert.cause, alert.onset_ns, alert.raised_ns) == ("pump_wear", 5 * S, 10 * S)


def test_a_persisting_condition_stays_one_alert_with_the_latest_magnitude(store: AlertStore) -> None:
    first, _ = store.raise_condition(occurrence(magnitude=-2.0), now_ns=10 * S)
    again, new = store.raise_condition(occurrence(magnitude=-3.0), now_ns=11 * S)
    assert not new
    assert again.id == first.id
    assert again.magnitude == -3.0


def test_acknowledge_then_return_to_normal_closes_the_alert(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence(), now_ns=10 * S)
    acked = store.acknowledge(alert.id, "ana", now_ns=12 * S)
    assert acked.state(12 * S) is AlertState.ACKNOWLEDGED
    assert (acked.acknowledged_by, acked.acknowledged_ns) == ("ana", 12 * S)
    cleared = store.clear_condition(alert.key, now_ns=13 * S)
    assert cleared is not None and cleared.state(13 * S) is AlertState.NORMAL
    reopened, new = store.raise_condition(occurrence(), now_ns=14 * S)
    assert new and reopened.id != alert.id


def test_return_to_normal_unacknowledged_waits_for_the_operator(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence(), now_ns=10 * S)
    cleared = store.clear_condition(alert.key, now_ns=11 * S)
    assert cleared is not None and cleared.state(11 * S) is AlertState.RETURNED_UNACKNOWLEDGED
    again, reactivated = store.raise_condition(occurrence(), now_ns=12 * S)
    assert reactivated and again.id == alert.id
    assert again.state(12 * S) is AlertState.ACTIVE_UNACKNOWLEDGED


def test_acknowledging_twice_is_a_conflict(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence())
    store.acknowledge(alert.id, "ana")
    with pytest.raises(AlertConflict):
        store.acknowledge(alert.id, "ben")


def test_shelving_hides_the_alert_until_it_expires(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence(), now_ns=10 * S)
    shelved = store.shelve(alert.id, "ana", duration_s=60, now_ns=20 * S)
    assert shelved.state(21 * S) is AlertState.SHELVED
    assert shelved.state(81 * S) is AlertState.ACTIVE_UNACKNOWLEDGED
    assert store.find(states=[AlertState.SHELVED], now_ns=30 * S)[0].id == alert.id
    assert store.find(states=[AlertState.SHELVED], now_ns=90 * S) == []


def test_unshelve_and_unknown_ids(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence())
    with pytest.raises(AlertConflict):
        store.unshelve(alert.id, "ana")
    store.shelve(alert.id, "ana", 3600)
    assert store.unshelve(alert.id, "ben").state() is AlertState.ACTIVE_UNACKNOWLEDGED
    with pytest.raises(AlertNotFound):
        store.acknowledge(999, "ana")


def test_every_action_is_in_the_audit_trail_with_who_and_when(store: AlertStore) -> None:
    alert, _ = store.raise_condition(occurrence(), now_ns=10 * S)
    store.acknowledge(alert.id, "ana", "seen", now_ns=11 * S)
    store.shelve(alert.id, "ben", 60, now_ns=12 * S)
    trail = [(e.action, e.who, e.at_ns) for e in store.events(alert.id)]
    assert trail == [("raise", "twin", 10 * S), ("acknowledge", "ana", 11 * S), ("shelve", "ben", 12 * S)]


def test_alerts_and_their_state_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "twin.sqlite"
    first = AlertStore(open_database(path))
    alert, _ = first.raise_condition(occurrence(), now_ns=10 * S)
    first.acknowledge(alert.id, "ana", now_ns=11 * S)
    reopened = AlertStore(open_database(path))
    again = reopened.get(alert.id)
    assert again.state(12 * S) is AlertState.ACKNOWLEDGED
    assert again.acknowledged_by == "ana"
    assert reopened.active_keys("line1") == {alert.key}
