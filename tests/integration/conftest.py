"""The integration suite's shared loop: one pump-wear run of simulator → connectors → twin into a real
influxd, until every measurement the dashboards read has data and cells have formed and aged. The
dashboard queries and the passport exports both read it (same xdist group, one fill per worker)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from bench.e2e import pipeline_settings, twin_process, upstream
from core.localservices import Influxd, Mosquitto, ServiceError
from core.settings import ModelSettings, Settings

FILL_DEADLINE_S = 150.0  # at 300x: 12.5 plant hours, inside the connectors' 24 h future-timestamp limit


def _count(influxd: Influxd, query: str, database: str) -> int:
    try:
        series = influxd.query(query, database)
    except ServiceError:  # the database is created by the first write
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def _fill(settings: Settings, influxd: Influxd) -> None:
    """Run the loop until every measurement the dashboards read has data, including cell results.

    Simulator, connectors and twin each run in a child process, as their commands do, so that whatever
    happens in one of them the fill ends at its deadline and stopping never hangs the test.
    """
    database = settings.influx.database
    line = f"\"line\" = '{settings.line}'"
    cycler = f"{line} AND \"machine\" = 'cycler1'"
    wanted = {
        "alerts": (f'SELECT count("title") FROM "alert" WHERE {line}', 1),
        "k-values": (f'SELECT count("value") FROM "process" WHERE {cycler} AND "signal" = \'k_value\'', 1),
        # counters are written every 10 s: three readings make a rate on the connector-health panels
        "connector": ('SELECT count("received") FROM "connector" GROUP BY "source" LIMIT 1', 3),
        "parameters": (f'SELECT count("value") FROM "model" WHERE {line} AND "kind" = \'parameter\'', 1),
        "expected capacity": (
            f'SELECT count("value") FROM "model" WHERE {cycler} AND "signal" = \'discharge_capacity\' '
            "AND \"kind\" = 'predicted'",
            1,
        ),
        # drift statistics exist once the twin has calibrated the calender and caught up with the bus
        "calender statistic": (
            f'SELECT count("value") FROM "model" WHERE {line} AND "machine" = \'calender1\' '
            "AND \"signal\" = 'thickness_residual' AND \"kind\" = 'statistic'",
            1,
        ),
        "K-value threshold": (
            f'SELECT count("value") FROM "model" WHERE {cycler} AND "signal" = \'k_value\' '
            "AND \"kind\" = 'threshold'",
            1,
        ),
    }
    with twin_process(settings), upstream(settings):
        _publish_garbage(settings)
        deadline = time.monotonic() + FILL_DEADLINE_S
        while missing := {
            name: count
            for name, (query, least) in wanted.items()
            if (count := _count(influxd, query, database)) < least
        }:
            if time.monotonic() > deadline:
                raise AssertionError(f"after {FILL_DEADLINE_S:.0f} s the loop had still written {missing}")
            time.sleep(2)


def _publish_garbage(settings: Settings) -> None:
    """One malformed cycler message, so the connector-health panel of rejects has a reason to show."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    topic = f"{settings.namespace().step('cycler1')}/ch01/data"
    client.publish(topic, b"{not json", qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.fixture(scope="session")
def filled(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    files = tmp_path_factory.mktemp("dashboard-loop")
    settings = pipeline_settings(
        mosquitto.port, influxd.url, files, scenario="pump-wear", speed=300.0, tick_s=2.0
    )
    # the cell models calibrate on 8 cells instead of 48, so their panels fill within the test's run
    settings = settings.model_copy(update={"models": ModelSettings(calibration_cells=8)})
    _fill(settings, influxd)
    yield settings
