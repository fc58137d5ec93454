"""Start real Mosquitto and influxd processes on free local ports with throw-away data dirs.

Used by the test fixtures, the benchmarks and ``twin demo`` (which falls back to these when no broker or
database is reachable). Each service is a plain subprocess: stop() terminates it, kill() sends SIGKILL,
start() brings it back on the same port and data dir, which is what the outage tests need.
"""

from __future__ import annotations

import contextlib
import getpass
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from core.errors import LinetwinError

FIRST_PORT = 20000  # the lowest port a test service is given: clear of well-known services


class ServiceError(LinetwinError):
    """A local service binary is missing or did not come up."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are picked, so none repeats.

    They are drawn below the kernel's ephemeral range: a port the kernel handed out (bind to port 0) is
    free again the moment it is released, and the next outgoing connection of any process may take it as
    its own local port before the service binds it ("Address already in use"). Below the range only
    another explicit bind can; a random draw from thousands makes that unlikely too.
    """
    low, _ = _ephemeral_range()
    draw = random.Random()
    with contextlib.ExitStack() as stack:
        picked: list[int] = []
        for _ in range(50 * count):
            if len(picked) == count:
                break
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind(("127.0.0.1", draw.randrange(FIRST_PORT, low) if low > FIRST_PORT else 0))
            except OSError:
                continue
            picked.append(int(sock.getsockname()[1]))
        if len(picked) < count:
            raise ServiceError(f"no {count} free ports below {low}")
        return picked


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux), or IANA's where it cannot be read."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def http_answers(url: str, status: int = 200, timeout: float = 0.5) -> bool:
    """Whether ``GET url`` answers ``status``: a readiness probe (influxd's /ping, the twin's /health)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == status
    except httpx.HTTPError:
        return False


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalService:
    """A server process owned by this Python process."""

    name: str
    port: int
    workdir: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return port_open(self.host, self.port)

    def start(self, timeout: float = 20.0) -> None:
        log = (self.workdir / f"{self.name}.log").open("ab")
        # A session of its own: Ctrl-C in the terminal stops linetwin in order (the twin's last points
        # still reach the database), then linetwin stops the service; it must not die first.
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited at start; see {self.workdir / (self.name + '.log')}")
            if self.ready():
                return
            time.sleep(0.05)
        raise ServiceError(f"{self.name} did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Mosquitto(LocalService):
    """Debian's mosquitto on one loopback port, persistence in the work dir. Anonymous access, unless
    ``secure`` gives configuration lines for the listener (TLS files, a password file)."""

    secure: tuple[str, ...] = ()

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        access = "\n".join(("allow_anonymous false", *self.secure)) if self.secure else "allow_anonymous true"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            f"{access}\n"
            # started as root, mosquitto drops to user mosquitto, which cannot write this work dir: it
            # then never saved its sessions, and a kill -9 lost everything it queued for its clients
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            "message_size_limit 0\n"
        )
        return [_binary("mosquitto"), "-c", str(conf)]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass
class Influxd(LocalService):
    """Debian's influxd 1.x, HTTP API on one loopback port, data in the work dir."""

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        rpc_port = _rpc_port_for(self)
        conf.write_text(
            "reporting-enabled = false\n"
            f'bind-address = "{self.host}:{rpc_port}"\n'
            f'[meta]\n  dir = "{self.workdir}/meta"\n'
            f'[data]\n  dir = "{self.workdir}/data"\n  wal-dir = "{self.workdir}/wal"\n'
            "  query-log-enabled = false\n"
            '  index-version = "inmem"\n'
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "{self.host}:{self.port}"\n  log-enabled = false\n'
            "  max-body-size = 0\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        return [_binary("influxd"), "-config", str(conf)]

    def ready(self) -> bool:
        return http_answers(f"{self.url}/ping", 204)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def query(self, influxql: str, database: str) -> list[dict[str, object]]:
        """Run an InfluxQL query and return the series of the first statement (test helper)."""
        response = httpx.post(f"{self.url}/query", params={"db": database, "q": influxql}, timeout=30)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise ServiceError(result["error"])
        return list(result.get("series", []))

    def create_database(self, database: str) -> None:
        httpx.post(f"{self.url}/query", params={"q": f'CREATE DATABASE "{database}"'}, timeout=10)

    def drop_database(self, database: str) -> None:
        httpx.post(f"{self.url}/query", params={"q": f'DROP DATABASE "{database}"'}, timeout=30)


_RPC_PORTS: dict[int, int] = {}


def _rpc_port_for(service: LocalService) -> int:
    """influxd also binds a backup/RPC port; keep it stable across restarts of one service."""
    return _RPC_PORTS.setdefault(service.port, free_port())


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise ServiceError(
        f"{name} is not installed (Debian package: {'influxdb' if name == 'influxd' else name})"
    )


def start_mosquitto(port: int | None = None, secure: tuple[str, ...] = ()) -> Mosquitto:
    workdir = Path(tempfile.mkdtemp(prefix="lt-mqtt-"))
    service = Mosquitto("mosquitto", port or free_port(), workdir, secure=secure)
    service.start()
    return service


def start_influxd(port: int | None = None) -> Influxd:
    service = Influxd("influxd", port or free_port(), Path(tempfile.mkdtemp(prefix="lt-influx-")))
    service.start()
    return service
