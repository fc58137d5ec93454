"""The sample Mosquitto ACL (deploy/mosquitto/acl) on a real broker: each role may publish and read only
its own topics, and a client without a user is refused."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from core.localservices import Mosquitto, start_mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS = {"sim": "sim-pw", "ingest": "ingest-pw", "twin": "twin-pw", "audit": "audit-pw"}
PLANT = "site1/electrodes/line1/cycler1/ch01/data"
SPARKPLUG = "spBv1.0/site1.electrodes.line1/NDATA/cycler1"
REBIRTH = "spBv1.0/site1.electrodes.line1/NCMD/cycler1"
BUS = "linetwin/bus/site1/electrodes/line1/coater1"
ALERTS = "linetwin/alerts/site1/electrodes/line1"
WORKER = "linetwin/twin/workers/lt-twin-line1"


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    """In a directory others may read: Mosquitto started as root reads its files as its own user."""
    directory = Path(tempfile.mkdtemp(prefix="lt-acl-"))
    directory.chmod(0o755)
    passwords = directory / "passwords"
    for n, (user, password) in enumerate(USERS.items()):
        subprocess.run(
            ["mosquitto_passwd", "-b", *(["-c"] if n == 0 else []), str(passwords), user, password],
            check=True,
        )
    acl = directory / "acl"
    acl.write_text((ROOT / "deploy/mosquitto/acl").read_text() + "\nuser audit\ntopic read #\n")
    for path in (passwords, acl):
        path.chmod(0o644)
    service = start_mosquitto(secure=(f"password_file {passwords}", f"acl_file {acl}"))
    yield service
    service.cleanup()
    shutil.rmtree(directory, ignore_errors=True)


def _client(broker: Mosquitto, user: str | None) -> tuple[mqtt.Client, list[str], threading.Event]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if user is not None:
        client.username_pw_set(user, USERS[user])
    received: list[str] = []
    connected = threading.Event()
    client.on_message = lambda _c, _u, message: received.append(message.topic)
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.set() if not reason.is_failure else None
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client, received, connected


def _published(broker: Mosquitto, user: str, topics: list[str]) -> set[str]:
    """Which of ``topics`` ``user`` could publish, as a reader of everything saw them."""
    audit, seen, ready = _client(broker, "audit")
    assert ready.wait(10)
    audit.subscribe("#", qos=1)
    publisher, _, up = _client(broker, user)
    assert up.wait(10)
    time.sleep(0.3)
    for topic in topics:
        publisher.publish(topic, b"{}", qos=1).wait_for_publish(5)
    time.sleep(0.5)
    for client in (audit, publisher):
        client.loop_stop()
        client.disconnect()
    return set(seen) & set(topics)


ALL = [PLANT, SPARKPLUG, REBIRTH, BUS, ALERTS, WORKER]


@pytest.mark.parametrize(
    ("user", "allowed"),
    [("sim", {PLANT, SPARKPLUG}), ("ingest", {REBIRTH, BUS}), ("twin", {ALERTS, WORKER})],
)
def test_each_role_publishes_only_its_own_topics(broker: Mosquitto, user: str, allowed: set[str]) -> None:
    assert _published(broker, user, ALL) == allowed


def test_the_twin_reads_the_bus_but_not_the_plant(broker: Mosquitto) -> None:
    twin, seen, ready = _client(broker, "twin")
    assert ready.wait(10)
    twin.subscribe([(PLANT, 1), (BUS, 1)])
    time.sleep(0.3)
    ingest, _, up = _client(broker, "ingest")
    sim, _, sim_up = _client(broker, "sim")
    assert up.wait(10) and sim_up.wait(10)
    sim.publish(PLANT, b"{}", qos=1).wait_for_publish(5)
    ingest.publish(BUS, b"{}", qos=1).wait_for_publish(5)
    time.sleep(0.5)
    for client in (twin, ingest, sim):
        client.loop_stop()
        client.disconnect()
    assert seen == [BUS]


def test_a_client_without_a_user_is_refused(broker: Mosquitto) -> None:
    anonymous, _, connected = _client(broker, None)
    assert not connected.wait(2)
    anonymous.loop_stop()
