"""Every Grafana panel, variable and annotation query returns data from a real influxd.

No Grafana runs here, so the test does what Grafana's InfluxDB datasource does with a raw InfluxQL
query: resolve the template variables by running their queries (multi-value "All" as a regex
alternation, as Grafana formats it), replace ``$timeFilter`` and ``$__interval``, and send the query to
``/query``. The database is filled by the real loop: simulator → connectors → twin, with a drifting
scenario so alerts exist too (``filled``, in conftest.py: the passport tests read the same loop).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.localservices import Influxd
from core.settings import Settings
from tests.integration.dashboard_support import empty_panels

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dashboard-queries")]

ROOT = Path(__file__).resolve().parents[2]
# the kind dashboards, and the generated dashboard of the line this loop runs (dashboards/lines.py)
DASHBOARDS = [
    *sorted((ROOT / "dashboards/json").glob("*.json")),
    ROOT / "dashboards/json/lines/pilot-nmc.json",
]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_and_annotation_query_returns_data(
    path: Path, filled: Settings, influxd: Influxd
) -> None:
    empty = empty_panels(path, influxd, filled)
    assert not empty, "panels without data:\n" + "\n".join(empty)
