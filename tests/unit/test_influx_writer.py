"""Line protocol encoding, the disk spool and the one InfluxDB writer's at-least-once delivery."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from connectors.accounting import Accounting
from core.influx.lineprotocol import connector_point, process_point, process_points
from core.influx.spool import Spool
from core.influx.writer import InfluxWriter
from core.localservices import free_port
from core.sample import Quality, Sample
from core.settings import InfluxSettings, TwinSettings
from twin.engine import spool_dir


def test_a_sample_is_one_process_point_at_its_source_time() -> None:
    sample = Sample(
        "line 1",
        "cycler1",
        "voltage",
        3.5,
        "V",
        1_700_000_000_000_000_007,
        0,
        Quality.UNCERTAIN,
        "s",
        42,
        "ch01",
        "R,1",
        'C"2',
    )
    assert process_point(sample) == (
        r"process,channel=ch01,line=line\ 1,machine=cycler1,quality=uncertain,signal=voltage,unit=V "
        r'value=3.5,seq=42i,roll_id="R,1",cell_id="C\"2" 1700000000000000007'
    )


def test_optional_fields_and_tags_are_left_out_when_unknown() -> None:
    sample = Sample("line1", "coater1", "pump_flow", 80.0, "mL/min", 5, 0)
    assert process_point(sample) == (
        "process,line=line1,machine=coater1,quality=good,signal=pump_flow,unit=mL/min value=80.0 5"
    )


def test_connector_points_carry_integer_counters() -> None:
    assert connector_point("mqtt", "cycler1/ch01", {"rejected": 3.0}, 9, "wrong_type") == (
        "connector,connector=mqtt,reason=wrong_type,source=cycler1/ch01 rejected=3i 9"
    )


def test_the_spool_replays_in_order_across_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(b"a 1\n", Counter({("mqtt", "s1"): 1}))
    spool.append(b"b 2\n", Counter({("mqtt", "s2"): 2}))
    (tmp_path / "000000000009.tmp").write_bytes(b"half-written")
    reopened = Spool(tmp_path)
    assert len(reopened) == 2
    first = reopened.oldest()
    assert first is not None and first.body == b"a 1\n" and first.counts == {("mqtt", "s1"): 1}
    reopened.remove(first)
    second = reopened.oldest()
    assert second is not None and second.body == b"b 2\n"
    assert not list(tmp_path.glob("*.tmp"))


async def test_an_unreachable_database_gets_the_batch_spooled_before_the_source_is_acknowledged(
    tmp_path: Path,
) -> None:
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path, retry_max_s=0.05, timeout_s=0.5
    )
    accounting = Accounting()
    writer = InfluxWriter(settings, accounting)
    acked: list[int] = []
    lines = process_points([Sample("line1", "cycler1", "voltage", 3.5, "V", t, 0) for t in (1, 2)])
    writer.add(lines, ("mqtt", "cycler1/ch01"), ack=lambda: acked.append(len(writer.spool)))
    await writer.close()
    assert acked == [1], "the ack must come after the batch is in the spool"
    assert accounting.value("spooled", "mqtt", "cycler1/ch01") == 2
    assert accounting.value("written", "mqtt", "cycler1/ch01") == 0


async def test_the_twin_s_points_go_to_its_own_spool_while_the_database_is_down(tmp_path: Path) -> None:
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path / "ingest", retry_max_s=0.05, timeout_s=0.5
    )
    writer = InfluxWriter(settings, spool_dir=tmp_path / "twin")
    writer.add(["model,line=line1 value=1.0 1"])
    await writer.close()
    assert len(Spool(tmp_path / "twin")) == 1
    assert not list((tmp_path / "ingest").glob("*"))


def test_the_twin_spools_beside_its_state_file(tmp_path: Path) -> None:
    assert spool_dir(TwinSettings(state_file=tmp_path / "twin.sqlite")) == tmp_path / "twin.spool"


async def test_the_spool_replays_within_a_second_of_the_database_returning(tmp_path: Path) -> None:
    """Replays failed for long enough to back off to 4 s; a database that answers /write again on the
    same port (a minimal HTTP 204 responder here) gets the spool within a second, not at the next 4 s."""
    import asyncio
    import time

    port = free_port()
    settings = InfluxSettings(
        url=f"http://127.0.0.1:{port}", spool_dir=tmp_path, retry_max_s=4.0, timeout_s=0.2
    )
    writer = InfluxWriter(settings, Accounting())
    writer.add(process_points([Sample("line1", "cycler1", "voltage", 3.5, "V", 1, 0)]), ("mqtt", "ch01"))
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(8.0)  # the first flush spools; replays fail and the back-off reaches 4 s
    assert len(writer.spool) == 1

    async def answer(reader: asyncio.StreamReader, writer_: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        writer_.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer_.drain()
        writer_.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    back = time.monotonic()
    for _ in range(200):  # at most 10 s
        if not len(writer.spool):
            break
        await asyncio.sleep(0.05)
    replayed_after = time.monotonic() - back
    task.cancel()
    server.close()
    await writer.close()
    assert len(writer.spool) == 0 and replayed_after < 1.5, (
        f"replayed {replayed_after:.1f} s after the return"
    )


async def test_journalled_points_survive_a_kill_before_the_writer_has_them(tmp_path: Path) -> None:
    """OPC UA cannot redeliver: what ingest received is on disk before it counts, and a restarted ingest
    moves what the killed one had not yet made durable into the spool."""
    from connectors.pipeline import Pipeline

    settings = InfluxSettings(
        url=f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path / "spool", retry_max_s=0.05, timeout_s=0.2
    )
    samples = [
        Sample("line1", "coater1", "pump_flow", 80.0 + t, "mL/min", t, 0, source="opc/coater1")
        for t in (1, 2, 3)
    ]

    def pipeline() -> Pipeline:
        return Pipeline(
            InfluxWriter(settings, Accounting()), Accounting(), journal=Spool(tmp_path / "spool" / "journal")
        )

    killed = pipeline()
    killed.submit("opcua", samples, journalled=True)
    assert len(killed.journal or []) == 1, "on disk before the writer even flushed"
    restarted = pipeline()  # the process died with the batch in memory
    assert restarted.recover() == 3
    assert len(restarted.journal or []) == 0 and len(restarted.writer.spool) == 1
    segment = restarted.writer.spool.oldest()
    assert segment is not None and segment.body.count(b"pump_flow") == 3
    kept = pipeline()
    kept.submit("opcua", samples, journalled=True)
    await kept.writer.close()  # the database is down: the batch goes to the spool, then the journal lets go
    assert len(kept.journal or []) == 0 and len(kept.writer.spool) == 2
