"""Synthetic sources for the ingest benchmark and the connector tests.

Small stand-ins with the protocol shapes of the simulated line (docs/interfaces.md): an OPC UA server
whose machines tick all their AnalogItems at one SourceTimestamp and increment a ``ScanCounter``, and a
cycler publisher that sends JSON records with a gap-free per-channel ``seq``. They let the benchmark
measure the connectors alone, with known sample counts, independent of the plant's physics.

Run one as its own process (so tests can kill -9 it): ``python -m bench.ingest_sources opcua --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from paho.mqtt.enums import CallbackAPIVersion

from core.settings import Settings

NAMESPACE = "urn:linetwin:bench"
UNITS = {"PumpFlow": "mL/min", "WebSpeed": "m/min", "DryLoading": "mg/cm2", "Thickness": "um"}


class PasswordUsers(UserManager):
    """An asyncua user manager with one user and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


@dataclass
class Machine:
    name: str
    counter: ua.NodeId
    nodes: list[ua.NodeId] = field(default_factory=list)
    ticks: int = 0


class OpcUaSource:
    """An asyncua server with ``machines`` folders of ``signals`` AnalogItems each, plus a ScanCounter."""

    def __init__(
        self,
        port: int,
        machines: int = 2,
        signals: int = 4,
        certificate: Path | None = None,
        private_key: Path | None = None,
        trusted: Path | None = None,
        users: PasswordUsers | None = None,
        history: bool = False,
    ) -> None:
        self.port = port
        #: keep every node's changes (asyncua's in-memory history) for a client's HistoryRead
        self.history = history
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/bench"
        self.machine_count = machines
        self.signal_count = signals
        self.certificate = certificate
        self.private_key = private_key
        self.trusted = trusted
        self.users = users
        self.server: Server | None = None
        self.machines: list[Machine] = []
        self.ticks: dict[str, int] = {}

    async def start(self, resume_at: datetime | None = None) -> None:
        """Serve; with ``resume_at``, the nodes hold the counters' tick (``ticks``) at that time from the
        first connection on, as the server served it before it was stopped or killed."""
        server = Server(user_manager=self.users) if self.users else Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.certificate and self.private_key:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
            if self.trusted:
                store = TrustStore([self.trusted], [])
                await store.load()
                server.set_certificate_validator(
                    CertificateValidator(
                        CertificateValidatorOptions.TRUSTED_VALIDATION
                        | CertificateValidatorOptions.PEER_CLIENT,
                        store,
                    )
                )
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        ns = await server.register_namespace(NAMESPACE)
        self.machines = []
        names = list(UNITS) + [f"Signal{i}" for i in range(len(UNITS), self.signal_count)]
        for m in range(self.machine_count):
            folder = await server.nodes.objects.add_object(ns, f"Machine{m + 1}")
            counter = await folder.add_variable(ns, "ScanCounter", ua.Variant(0, ua.VariantType.UInt64))
            machine = Machine(f"machine{m + 1}", counter.nodeid, ticks=self.ticks.get(f"machine{m + 1}", 0))
            for name in names[: self.signal_count]:
                var = await folder.add_variable(ns, name, 0.0)
                await var.add_property(
                    0,
                    "EngineeringUnits",
                    ua.EUInformation(DisplayName=ua.LocalizedText(UNITS.get(name, "1")), UnitId=-1),
                )
                machine.nodes.append(var.nodeid)
            self.machines.append(machine)
        self.server = server
        if self.history:
            for machine in self.machines:
                for node in (machine.counter, *machine.nodes):
                    await server.historize_node_data_change(
                        server.get_node(node), timedelta(hours=1), 1_000_000
                    )
        if resume_at is not None:
            await self.serve(resume_at)
        await server.start()

    async def stop(self) -> None:
        """Stop serving; a later start() continues each ScanCounter where it stopped."""
        if self.server is not None:
            self.ticks = {machine.name: machine.ticks for machine in self.machines}
            await self.server.stop()
            self.server = None

    async def tick(self, at: datetime | None = None) -> None:
        """One scan of every machine: all values at one SourceTimestamp (``at``, default now), then the
        ScanCounter."""
        for machine in self.machines:
            machine.ticks += 1
        await self.serve(at or ua.DateTime.now(UTC))

    async def serve(self, when: datetime) -> None:
        """Write every machine's current tick (its values are a function of the counter) at ``when``."""
        assert self.server is not None
        at = cast(ua.DateTime, when)  # asyncua annotates with its marker subclass of datetime
        for machine in self.machines:
            for i, node in enumerate(machine.nodes):
                value = ua.DataValue(ua.Variant(float(machine.ticks + i / 10)), SourceTimestamp=at)
                await self.server.write_attribute_value(node, value)
            counter = ua.DataValue(ua.Variant(machine.ticks, ua.VariantType.UInt64), SourceTimestamp=at)
            await self.server.write_attribute_value(machine.counter, counter)

    async def run(self, ticks: int | None, interval_s: float) -> None:
        done = 0
        while ticks is None or done < ticks:
            await self.tick()
            done += 1
            await asyncio.sleep(interval_s)


#: A formation cycler's data record carries these values (plant/cyclers.py), and the cell's id.
CYCLER_SIGNALS = ("voltage", "current", "temperature", "capacity", "step")


class CyclerSource:
    """Publish JSON cycler records (``seq`` per channel from 0, ``run`` id) on ``.../cycler1/chNN/data``.

    ``per_message`` records per message, each with the first ``signals`` of CYCLER_SIGNALS; with all five
    (and one record per message) a message has the shape the simulated cyclers publish.
    """

    def __init__(
        self,
        host: str,
        port: int,
        channels: int = 4,
        per_message: int = 1,
        run: str = "bench",
        signals: int = 1,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        root: str | None = None,
    ) -> None:
        #: the cyclers' topic root (default: the built-in line's, ``<site>/<area>/<line>/cycler1``)
        self.root = root or Settings().namespace().step("cycler1")
        self.channels = [f"ch{c + 1:02d}" for c in range(channels)]
        self.per_message = per_message
        self.signals = CYCLER_SIGNALS[:signals]
        self.run = run
        self.seq = dict.fromkeys(self.channels, 0)
        self._last: mqtt.MQTTMessageInfo | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=str(ca_file))
        self.client.connect(host, port)
        self.client.loop_start()

    def topic(self, channel: str) -> str:
        return f"{self.root}/{channel}/data"

    def publish_round(self) -> mqtt.MQTTMessageInfo:
        """One message per channel with ``per_message`` records each; returns the last message's info."""
        info = None
        now = time.time_ns()
        for channel in self.channels:
            records = []
            for _ in range(self.per_message):
                seq = self.seq[channel]
                record: dict[str, Any] = {"seq": seq, "run": self.run, "ts": now + seq}
                if len(self.signals) > 1:
                    record["cell_id"] = f"C-{channel}-{seq // 1000}"
                record.update((signal, 3.0 + seq % 100 / 100 + i) for i, signal in enumerate(self.signals))
                records.append(record)
                self.seq[channel] = seq + 1
            info = self.client.publish(self.topic(channel), json.dumps(records), qos=1)
        assert info is not None
        self._last = info
        return info

    @property
    def published(self) -> int:
        """Samples published so far (records × signals)."""
        return sum(self.seq.values()) * len(self.signals)

    def close(self) -> None:
        """Disconnect once everything published so far is acknowledged by the broker."""
        if self._last is not None:
            self._last.wait_for_publish(timeout=60)
        self.client.disconnect()
        self.client.loop_stop()


class TickState:
    """A restartable source's counters and last tick time on disk (atomic replace after every tick)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        saved = json.loads(path.read_text()) if path is not None and path.exists() else {}
        self.at = datetime.fromtimestamp(float(saved["at"]), UTC) if "at" in saved else None
        self.ticks: dict[str, int] = {name: int(n) for name, n in saved.get("ticks", {}).items()}

    def save(self, ticks: dict[str, int], at: datetime) -> None:
        if self.path is not None:
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps({"at": at.timestamp(), "ticks": ticks}))
            partial.replace(self.path)


async def _serve_opcua(
    port: int, machines: int, signals: int, interval_s: float, history: bool, state: TickState
) -> None:
    """Serve and tick until killed. Each tick's counters go to ``state`` once served; a restarted server
    holds the last of them at its time before it accepts a client (like a PLC's retained memory), so a
    tick read again after a kill is the same point, and goes on from there in real time."""
    source = OpcUaSource(port, machines, signals, history=history)
    source.ticks = dict(state.ticks)
    await source.start(resume_at=state.at if state.ticks else None)
    print(json.dumps({"endpoint": source.endpoint}), flush=True)
    while True:
        now = datetime.now(UTC)
        await source.tick(now)
        state.save({machine.name: machine.ticks for machine in source.machines}, now)
        await asyncio.sleep(interval_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["opcua"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--machines", type=int, default=2)
    parser.add_argument("--signals", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--history", action="store_true", help="keep history for HistoryRead")
    parser.add_argument("--state", type=Path, help="counters kept here; a restart goes on from them")
    args = parser.parse_args()
    asyncio.run(
        _serve_opcua(
            args.port, args.machines, args.signals, args.interval, args.history, TickState(args.state)
        )
    )


if __name__ == "__main__":
    main()
