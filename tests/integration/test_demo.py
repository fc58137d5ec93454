"""``twin demo``, the README's main command, as an operator runs it: first alert, the alert standing while
the pump wears, then Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core.localservices import free_port, port_open

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("demo-and-chaos")]


def test_demo_raises_the_pump_wear_alert_keeps_it_active_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # nothing listens on these: the demo starts its own Mosquitto and influxd
        "LINETWIN_MQTT__PORT": str(free_port()),
        "LINETWIN_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
        "COLUMNS": "200",
    }
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import app; app()", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("alert after") or time.monotonic() > deadline:
                break
        output = "".join(lines)
        assert "alert after" in output and "Metering pump wear" in output, output
        # at 300x, 30 s are 2.5 plant hours, longer than the 2 h a quiet condition takes to return to
        # normal: the pump keeps wearing, and it stays one active alarm, never closed and raised anew
        states, ids = set(), set()
        for _ in range(30):
            time.sleep(1.0)
            alerts = httpx.get(f"http://127.0.0.1:{port}/alerts", timeout=10).json()
            wear = [a for a in alerts if a["cause"] == "pump_wear"]
            states |= {a["state"] for a in wear}
            ids |= {a["id"] for a in wear}
        assert len(ids) == 1, f"the wear alert was raised anew: {ids}"
        assert states == {"active_unacknowledged"}, f"it returned to normal while the pump wore: {states}"
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    output += rest
    assert demo.returncode == 0, output
    assert not re.search(r"^error:| ERROR ", rest, re.MULTILINE) and "Traceback" not in output, rest
    assert rest.rstrip().endswith("stopped"), rest
    assert "spooling" not in output, "the twin's last points reach the database before it stops"
    started = re.findall(r"started (?:Mosquitto on port (\d+)|influxd at http://127.0.0.1:(\d+))", output)
    ports = [int(p) for pair in started for p in pair if p]
    assert len(ports) == 2, output
    assert not any(port_open("127.0.0.1", p) for p in ports), "the demo stops the services it started"
