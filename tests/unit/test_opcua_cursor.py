"""The on-disk cursor a restarted OPC UA connector backfills from."""

from __future__ import annotations

from pathlib import Path

from connectors.opcua.cursor import Cursor


def test_a_cursor_survives_a_restart_and_is_written_at_most_once_a_second(tmp_path: Path) -> None:
    cursor = Cursor(tmp_path, "opc.tcp://press:4840")
    assert cursor.load() == 0, "no cursor yet: nothing to backfill from"
    cursor.save(100, now=10.0)
    cursor.save(200, now=10.5)
    assert Cursor(tmp_path, "opc.tcp://press:4840").load() == 100, "the second write waits its second"
    cursor.save(300, now=11.0)
    assert Cursor(tmp_path, "opc.tcp://press:4840").load() == 300
    cursor.save(250, now=20.0)
    assert cursor.load() == 300, "a cursor never moves back"
    assert Cursor(tmp_path, "opc.tcp://coater:4840").load() == 0, "each endpoint has its own"


def test_an_unreadable_cursor_means_no_backfill(tmp_path: Path) -> None:
    cursor = Cursor(tmp_path, "opc.tcp://press:4840")
    cursor.path.write_text("not a number")
    assert cursor.load() == 0
