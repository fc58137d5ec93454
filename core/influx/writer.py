"""The one InfluxDB writer: batches by size and time, retries with backoff, spools when the database is down.

The connectors write samples with it and the twin its model and alert points, so neither loses data while
InfluxDB is down. It speaks the one write API every InfluxDB generation serves: ``POST
/write?db=&rp=&precision=ns`` with line protocol (1.x natively; 2.x and 3.x through their v1 compatibility
endpoint, authenticated with ``Authorization: Token ...``). influxdb-client's WriteApi is not used: it
targets the 2.x ``/api/v2/write`` endpoint, which 1.x does not serve, and its retry buffer lives in
memory, where a kill -9 loses it.

Delivery is at least once: a batch's ``acks`` (e.g. MQTT PUBACKs) run only once the batch is in the
database or fsynced in the spool. Points are idempotent (same measurement, tags and time overwrite), so
a replayed batch never doubles a point. While the spool holds anything, new batches go behind it, so the
database receives every source's points in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from core.backoff import wait_or_return
from core.errors import RejectedInput
from core.influx.spool import SourceCounts, Spool
from core.settings import InfluxSettings

log = logging.getLogger(__name__)

REPLAY_POLL_S = 0.2

Ack = Callable[[], object]


class Delivery(Protocol):
    """Told what became of the points; ``connectors.accounting.Accounting`` counts it for Prometheus."""

    def counted(self, name: str, counts: SourceCounts) -> None:
        """``name`` is ``written``, ``spooled`` or ``replayed``."""

    def rejected(self, counts: SourceCounts, error: RejectedInput) -> None: ...

    def spool_changed(self, depth: int) -> None: ...

    def latencies(self, connector: str, seconds: Sequence[float]) -> None:
        """Source timestamp to write acknowledged, one value per source and write (its oldest point)."""

    def waits(self, connector: str, seconds: Sequence[float]) -> None:
        """Receipt to write acknowledged on this host's clock, one value per source and write (its first
        point): what ingest itself adds, known at any plant speed and whatever the source's clock says."""


class Uncounted:
    """The delivery of a writer nobody accounts for (the twin): rejects are logged, the rest ignored."""

    def counted(self, name: str, counts: SourceCounts) -> None:
        pass

    def rejected(self, counts: SourceCounts, error: RejectedInput) -> None:
        log.warning("InfluxDB rejected a batch: %s", error, extra={"reason": error.reason})

    def spool_changed(self, depth: int) -> None:
        pass

    def latencies(self, connector: str, seconds: Sequence[float]) -> None:
        pass

    def waits(self, connector: str, seconds: Sequence[float]) -> None:
        pass


class WriteFailed(Exception):
    """The database did not take a batch (unreachable, 5xx, auth); the batch is retried or spooled."""


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    #: Per (connector, source), the source time of its oldest point in the batch.
    oldest: dict[tuple[str, str], int] = field(default_factory=dict)
    #: Per (connector, source), when its first point joined the batch (wall clock, ns).
    joined: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: SourceCounts = field(default_factory=Counter)
    acks: list[Ack] = field(default_factory=list)


class InfluxWriter:
    """Collect points into batches and deliver them; run ``run()`` as a task, ``close()`` at the end."""

    def __init__(
        self,
        settings: InfluxSettings,
        delivery: Delivery | None = None,
        spool_dir: Path | None = None,
        attempts: int = 3,
    ) -> None:
        self.settings = settings
        self.delivery: Delivery = delivery or Uncounted()
        self.spool = Spool(spool_dir or settings.spool_dir)
        self._attempts = attempts
        self._batch = Batch()
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._http = httpx.AsyncClient(timeout=settings.timeout_s)
        #: Called with (written time, source times) after each direct write: latency measurement hook.
        self.on_written: Callable[[int, list[int]], None] | None = None
        self._params = {"db": settings.database, "rp": settings.retention_policy, "precision": "ns"}
        if settings.username:
            self._params["u"] = settings.username
            self._params["p"] = settings.password.get_secret_value() if settings.password else ""
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if settings.token:
            self._headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        self.delivery.spool_changed(len(self.spool))

    @property
    def pending(self) -> int:
        """Points waiting for the next flush (the spool's segments are on disk, see ``spool``)."""
        return len(self._batch.lines)

    def add(
        self,
        lines: Sequence[str],
        source: tuple[str, str] | None = None,
        times: Sequence[int] = (),
        ack: Ack | None = None,
    ) -> None:
        """Queue points; ``source`` (connector, source) accounts for them, ``times`` are their source
        timestamps (ns) for the latency, ``ack`` runs once they are durable."""
        batch = self._batch
        batch.lines.extend(lines)
        if source is not None and lines:
            batch.counts[source] += len(lines)
            if source not in batch.joined:
                batch.joined[source] = time.time_ns()
        if times:
            key = source or ("", "")
            first = min(times)
            if first < batch.oldest.get(key, first + 1):
                batch.oldest[key] = first
            if self.on_written is not None:  # every point's time only for the benchmark's hook
                batch.times.extend(times)
        if ack is not None:
            batch.acks.append(ack)
        if len(batch.lines) >= self.settings.batch_size:
            self._full.set()

    async def run(self) -> None:
        """Flush on size or interval, and drain the spool whenever the database answers again."""
        replay = asyncio.create_task(self._replay_forever())
        try:
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that arrives as
                # the batch fills, and the stopping twin then waits for this loop forever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.flush_interval_ms / 1000):
                        await self._full.wait()
                await self.flush()
        finally:
            replay.cancel()

    async def flush(self) -> None:
        """Deliver the current batch: to the database, else (after retries) to the spool."""
        async with self._lock:
            batch, self._batch = self._batch, Batch()
            self._full.clear()
            if not batch.lines:
                self._acknowledge(batch.acks)
                return
            body = ("\n".join(batch.lines) + "\n").encode()
            if not len(self.spool) and await self._deliver(body, batch.counts):
                self._written(batch)
            else:
                self._to_spool(body, batch.counts)
            self._acknowledge(batch.acks)

    async def close(self) -> None:
        """Flush what is left (to the spool if need be) and release the HTTP client."""
        await self.flush()
        await self._http.aclose()

    async def replay(self) -> bool:
        """Replay spooled segments oldest first; True when the spool is empty."""
        async with self._lock:
            while (segment := self.spool.oldest()) is not None:
                try:
                    await self._post(segment.body)
                except WriteFailed:
                    return False
                except RejectedInput as exc:
                    self.delivery.rejected(segment.counts, exc)
                else:
                    self.delivery.counted("replayed", segment.counts)
                    self.delivery.counted("written", segment.counts)
                self.spool.remove(segment)
                self.delivery.spool_changed(len(self.spool))
            return True

    async def _replay_forever(self) -> None:
        """Replay the spool while it holds anything; after a failed replay the back-off doubles, but
        the wait ends as soon as the database's port accepts again (``core.backoff``)."""
        delay = REPLAY_POLL_S
        url = httpx.URL(self.settings.url)
        host, port = url.host or "127.0.0.1", url.port or (443 if url.scheme == "https" else 8086)
        while True:
            if delay > REPLAY_POLL_S:  # a replay failed: the database is away, watch for its return
                await wait_or_return(delay, host, port)
            else:
                await asyncio.sleep(delay)
            if not len(self.spool):
                delay = REPLAY_POLL_S
                continue
            delay = REPLAY_POLL_S if await self.replay() else min(delay * 2, self.settings.retry_max_s)

    def _written(self, batch: Batch) -> None:
        now = time.time_ns()
        self.delivery.counted("written", batch.counts)
        by_connector: dict[str, list[float]] = {}
        for (connector, _), oldest in batch.oldest.items():
            by_connector.setdefault(connector, []).append((now - oldest) / 1e9)
        for connector, seconds in by_connector.items():
            self.delivery.latencies(connector, seconds)
        waited: dict[str, list[float]] = {}
        for (connector, _), joined in batch.joined.items():
            waited.setdefault(connector, []).append((now - joined) / 1e9)
        for connector, seconds in waited.items():
            self.delivery.waits(connector, seconds)
        if self.on_written is not None:
            self.on_written(now, batch.times)

    async def _deliver(self, body: bytes, counts: SourceCounts) -> bool:
        delay = 0.1
        for attempt in range(self._attempts):
            try:
                await self._post(body)
                return True
            except WriteFailed as exc:
                if attempt + 1 == self._attempts:
                    log.warning(
                        "InfluxDB write failed, spooling: %s", exc, extra={"points": body.count(b"\n")}
                    )
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
            except RejectedInput as exc:
                self.delivery.rejected(counts, exc)
                return True
        return False

    async def _post(self, body: bytes) -> None:
        try:
            response = await self._http.post(
                f"{self.settings.url}/write", params=self._params, content=body, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise WriteFailed(f"{self.settings.url}: {exc!r}") from None
        if response.status_code == 204:
            return
        if response.status_code == 404 and "database not found" in response.text:
            await self._create_database()
            raise WriteFailed(f"{self.settings.url}: created database {self.settings.database!r}; retrying")
        if response.status_code == 400:
            raise RejectedInput("database_rejected", response.text[:200])
        raise WriteFailed(f"{self.settings.url}: HTTP {response.status_code} {response.text[:200]}")

    async def _create_database(self) -> None:
        """InfluxDB 1.x on first use: create the database (idempotent). 2.x/3.x buckets are provisioned."""
        params = {k: v for k, v in self._params.items() if k in ("u", "p")}
        params["q"] = f'CREATE DATABASE "{self.settings.database}"'
        with contextlib.suppress(httpx.HTTPError):
            await self._http.post(f"{self.settings.url}/query", params=params, headers=self._headers)

    def _to_spool(self, body: bytes, counts: SourceCounts) -> None:
        self.spool.append(body, counts)
        self.delivery.spool_changed(len(self.spool))
        self.delivery.counted("spooled", counts)

    @staticmethod
    def _acknowledge(acks: list[Ack]) -> None:
        for ack in acks:
            ack()
