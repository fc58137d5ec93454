"""What several twin integration tests feed the engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from twin.alerts import Occurrence


def wait_for_api(url: str, path: str, found: Callable[[Any], Any], within_s: float) -> Any:
    """Poll ``url + path`` until ``found`` of its JSON body is truthy; returns that (AssertionError with
    the last body if it never is)."""
    deadline = time.monotonic() + within_s
    body: Any = None
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}{path}", timeout=10)
        if response.status_code == 200 and (hit := found(body := response.json())):
            return hit
        time.sleep(1.0)
    raise AssertionError(f"nothing found at {path} within {within_s} s: {body}")


def pump_wear(line: str, onset_ns: int) -> Occurrence:
    """The alert condition of a wearing metering pump on ``line``'s coater, as the line model raises it."""
    return Occurrence(
        line=line,
        machine="coater1",
        signal="pump_flow",
        cause="pump_wear",
        title="Pump wear",
        text="flow -3 %",
        action="check the pump",
        magnitude=-3.0,
        unit="%",
        onset_ns=onset_ns,
    )
