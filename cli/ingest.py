"""``twin ingest``: read the plant over OPC UA and MQTT into InfluxDB and the plant bus.

``--discover opc.tcp://...`` prints a tag map built from the server's AnalogItems instead (with
``--describe``, a starting line description of its machines);
``--stats`` prints the counters of a running ingest from its Prometheus endpoint.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer
from asyncua import Client
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from cli.context import run_guarded, settings_from, user_errors
from connectors.opcua.discover import discover, render, render_description
from connectors.opcua.security import configure, refusal
from connectors.service import IngestService
from core.errors import LinetwinError
from core.settings import Settings

console = Console()


class StatsUnavailable(LinetwinError):
    """No ingest process answers on the metrics port."""


def ingest(
    ctx: typer.Context,
    discover_url: Annotated[
        str | None, typer.Option("--discover", help="browse this OPC UA endpoint and print a tag map")
    ] = None,
    describe: Annotated[
        bool, typer.Option("--describe", help="with --discover: print a starting line description instead")
    ] = False,
    stats: Annotated[bool, typer.Option("--stats", help="print the counters of a running ingest")] = False,
    tag_map: Annotated[Path | None, typer.Option("--tag-map", help="tag map TOML file")] = None,
    partition: Annotated[int | None, typer.Option(help="this process's share of the MQTT sources")] = None,
    partitions: Annotated[
        int | None, typer.Option(help="how many ingest processes split the sources")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics port")] = None,
) -> None:
    """Ingest OPC UA and MQTT data into InfluxDB and the plant bus, with nothing lost."""
    settings = settings_from(
        ctx,
        **{
            "ingest.tag_map": tag_map,
            "ingest.partition": partition,
            "ingest.partitions": partitions,
            "ingest.metrics_port": metrics_port,
        },
    )
    if discover_url:
        run_guarded(lambda: asyncio.run(_discover(discover_url, settings, describe)))
    elif stats:
        with user_errors():
            _print_stats(settings)
    else:
        run_guarded(lambda: asyncio.run(_run(settings)))


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await IngestService(settings).run(stop)


async def _discover(endpoint: str, settings: Settings, describe: bool) -> None:
    client = Client(endpoint, timeout=10)
    try:
        await configure(client, settings.opcua, readable_key=settings.allow_readable_secrets)
        await client.connect()
    except LinetwinError:
        raise
    except Exception as exc:
        raise refusal(exc) or LinetwinError(f"cannot connect to {endpoint}: {exc!r}") from None
    try:
        machines = await discover(client)
        if describe:
            print(render_description(machines, endpoint, settings.site, settings.area, settings.line))
        else:
            print(render(machines, endpoint))
    finally:
        await client.disconnect()


def _print_stats(settings: Settings) -> None:
    port = settings.ingest.metrics_port
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError as exc:
        raise StatsUnavailable(f"no ingest process answers on {url}: {exc}") from None
    rows: dict[tuple[str, str], dict[str, float]] = {}
    latency: dict[str, dict[str, float]] = {}
    depth = other = 0.0
    for family in text_string_to_metric_families(text):
        name = family.name.removeprefix("linetwin_ingest_")
        for sample in family.samples:
            if name == "latency_seconds":
                bucket = sample.labels.get("le", sample.name.rsplit("_", 1)[1])
                latency.setdefault(sample.labels["connector"], {})[bucket] = sample.value
            elif name == "spool_depth":
                depth = sample.value
            elif name == "other_partition_messages":
                other += sample.value if sample.name.endswith("_total") else 0.0
            elif sample.name.endswith("_total"):
                key = (sample.labels["connector"], sample.labels["source"])
                label = f"rejected:{sample.labels['reason']}" if "reason" in sample.labels else name
                rows.setdefault(key, {})[label] = sample.value
    columns = ["received", "written", "spooled", "replayed", "seq_gaps"]
    table = Table(title=f"twin ingest counters ({url}), spool depth {depth:.0f} batches")
    for column in ["connector", "source", *columns, "rejected"]:
        table.add_column(column, justify="left" if column in ("connector", "source", "rejected") else "right")
    for (connector, source), values in sorted(rows.items()):
        rejects = ", ".join(
            f"{key.split(':', 1)[1]}={value:.0f}"
            for key, value in values.items()
            if key.startswith("rejected:")
        )
        table.add_row(connector, source, *(f"{values.get(c, 0):.0f}" for c in columns), rejects)
    console.print(table)
    if other:
        console.print(f"MQTT messages received for other ingest processes and skipped: {other:.0f}")
    if latency:
        console.print(_latency_table(latency))


def _latency_table(latency: dict[str, dict[str, float]]) -> Table:
    """Source timestamp → InfluxDB write acknowledged, from the histogram's cumulative buckets."""
    table = Table(title="ingest latency (source timestamp → InfluxDB write acknowledged)")
    for column in ("connector", "hand-overs", "mean ms", "p50 ≤ ms", "p99 ≤ ms"):
        table.add_column(column, justify="left" if column == "connector" else "right")
    for connector, values in sorted(latency.items()):
        count = values.get("count", 0.0)
        buckets = sorted((float(le), n) for le, n in values.items() if le not in ("count", "sum"))

        def bound(quantile: float, buckets: list[tuple[float, float]] = buckets, count: float = count) -> str:
            upper = next((le for le, n in buckets if n >= quantile * count), float("inf"))
            return "∞" if upper == float("inf") else f"{upper * 1000:.0f}"

        mean = values.get("sum", 0.0) / count * 1000 if count else float("nan")
        table.add_row(connector, f"{count:.0f}", f"{mean:.0f}", bound(0.5), bound(0.99))
    return table
