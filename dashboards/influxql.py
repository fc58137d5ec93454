"""InfluxQL queries and annotations for grafana-foundation-sdk dashboards.

The SDK models Grafana's core dashboard schema and many datasource plugins, but not the InfluxDB
plugin's query and annotation fields (``query``, ``rawQuery``, ``resultFormat``, ``textColumn``).
These two small models add exactly those, so the rest of every dashboard is built with the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

DATASOURCE = dashboard.DataSourceRef(type_val="influxdb", uid="linetwin-influx")


@dataclass
class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target: what Grafana's InfluxDB plugin stores for a query written as text."""

    ref_id: str
    query: str
    alias: str = ""
    result_format: Literal["time_series", "table"] = "time_series"

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        return payload


class Target(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, ref_id: str, query: str, alias: str = "", table: bool = False) -> None:
        self._query = InfluxQLQuery(ref_id, query, alias, "table" if table else "time_series")

    def build(self) -> cogvariants.Dataquery:
        return self._query


class InfluxAnnotationQuery(dashboard.AnnotationQuery):
    """An annotation drawn from InfluxQL rows: time, title, text and tags columns."""

    def __init__(self, name: str, query: str, color: str, tags_column: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, icon_color=color)
        self.query = query
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "query": self.query,
                "rawQuery": True,
                "titleColumn": "title",
                "textColumn": "text",
                "tagsColumn": self.tags_column,
            }
        )
        return payload


class Annotation(cogbuilder.Builder[dashboard.AnnotationQuery]):
    def __init__(self, name: str, query: str, color: str = "red", tags_column: str = "") -> None:
        self._annotation = InfluxAnnotationQuery(name, query, color, tags_column)

    def build(self) -> dashboard.AnnotationQuery:
        return self._annotation
