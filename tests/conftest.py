"""Session-wide real services: one Mosquitto and one influxd on free ports, temporary data dirs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.localservices import Influxd, Mosquitto, start_influxd, start_mosquitto


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    service = start_mosquitto()
    yield service
    service.cleanup()


@pytest.fixture(scope="session")
def influxd() -> Iterator[Influxd]:
    service = start_influxd()
    yield service
    service.cleanup()
