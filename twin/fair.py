"""FAIR metadata of a line's series: what each stored value means, in its unit, from where, by what.

Another pilot line loading linetwin's data should not have to ask what a column means. Each series gets
an IRI, its step and the role the step's model gives it (from the line description), its unit as a
UCUM code and a QUDT IRI, its source (OPC UA endpoint and node, or MQTT topic and Sparkplug metric, from
the tag map or the built-in map), and how its quality is carried; each step gets the model class and
version that produce its model outputs. ``twin export data`` writes the same records as a DCAT dataset
with its distributions, CSVW columns and the PROV activities that made it (``dataset``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors import tagmap
from core.linedesc import LineDescription, SignalSpec, Step
from core.qudt import unit_terms
from core.settings import Settings

LT = "https://w3id.org/linetwin/ns#"

CONTEXT: dict[str, Any] = {
    "lt": LT,
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "csvw": "http://www.w3.org/ns/csvw#",
    "qudt": "http://qudt.org/schema/qudt/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "title": "dct:title",
    "description": "dct:description",
    "issued": {"@id": "dct:issued", "@type": "xsd:dateTime"},
    "temporal": "dct:temporal",
    "startDate": {"@id": "dcat:startDate", "@type": "xsd:dateTime"},
    "endDate": {"@id": "dcat:endDate", "@type": "xsd:dateTime"},
    "distribution": {"@id": "dcat:distribution", "@container": "@set"},
    "mediaType": "dcat:mediaType",
    "downloadURL": {"@id": "dcat:downloadURL", "@type": "@id"},
    "wasGeneratedBy": {"@id": "prov:wasGeneratedBy", "@container": "@set"},
    "used": {"@id": "prov:used", "@container": "@set"},
    "startedAtTime": {"@id": "prov:startedAtTime", "@type": "xsd:dateTime"},
    "endedAtTime": {"@id": "prov:endedAtTime", "@type": "xsd:dateTime"},
    "columns": {"@id": "csvw:column", "@container": "@list"},
    "name": "csvw:name",
    "unit": {"@id": "qudt:hasUnit", "@type": "@id"},
    "ucum": "qudt:ucumCode",
    "line": "lt:line",
    "step": "lt:step",
    "stepKind": "lt:stepKind",
    "role": "lt:role",
    "signal": "lt:signal",
    "quality": "lt:quality",
    "source": "lt:source",
    "protocol": "lt:protocol",
    "endpoint": "lt:endpoint",
    "node": "lt:node",
    "topic": "lt:topic",
    "metric": "lt:metric",
    "modelClass": "lt:modelClass",
    "modelVersion": "lt:modelVersion",
    "calibrated": "lt:calibrated",
    "rebaselined": "lt:rebaselined",
}

QUALITY = (
    "OPC UA StatusCode severity (or a Sparkplug/JSON bad flag) folded to good, uncertain or bad; "
    "only good values enter the models"
)


def iso(ns: int) -> str:
    """A wall or plant time (ns) as xsd:dateTime in UTC, to the millisecond."""
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def identified(description: LineDescription, settings: Settings) -> LineDescription:
    """The description under the site, area and line the settings run it as (a test or a second
    instance of a shipped line runs it under a name of its own)."""
    return description.model_copy(
        update={"site": settings.site, "area": settings.area, "line": settings.line}
    )


def line_iri(description: LineDescription) -> str:
    return f"urn:linetwin:{description.site}:{description.area}:{description.line}"


def series_iri(description: LineDescription, step: str, signal: str) -> str:
    return f"{line_iri(description)}:{step}:{signal}"


def _opcua_sources(settings: Settings) -> dict[tuple[str, str], str]:
    """(machine, signal) -> node of a tag map file; empty for the built-in map (nodes discovered)."""
    if settings.ingest.tag_map is None:
        return {}
    mapped = tagmap.load(settings.ingest.tag_map, settings)
    return {(m.machine, tag.signal): tag.node for m in mapped.opcua for tag in m.tags}


def _source(settings: Settings, step: Step, signal: SignalSpec, nodes: Mapping[tuple[str, str], str]) -> dict:
    if step.kind == "formation":
        namespace = settings.namespace()
        return {
            "protocol": "mqtt",
            "endpoint": f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
            "topic": f"{namespace.step(step.id)}/<channel>/(data|result|ocv)",
            "metric": f"spBv1.0/{namespace.sparkplug_group}/DDATA/{step.id}/<channel>: {signal.name}",
        }
    return {
        "protocol": "opcua",
        "endpoint": " ".join(settings.opcua.endpoints),
        "node": nodes.get(
            (step.id, signal.name), f"AnalogItem {signal.name} of {step.id}, browsed at connect"
        ),
    }


def series(settings: Settings, description: LineDescription) -> list[dict[str, Any]]:
    """One record per described signal (see module)."""
    nodes = _opcua_sources(settings)
    records = []
    for step in description.steps:
        for signal in step.signals:
            record: dict[str, Any] = {
                "@id": series_iri(description, step.id, signal.name),
                "name": f"{step.id}.{signal.name}",
                "line": description.line,
                "step": step.id,
                "stepKind": step.kind,
                "signal": signal.name,
                "role": signal.role or signal.name,
                "description": signal.description,
                **unit_terms(signal.unit),
                "quality": QUALITY,
                "source": _source(settings, step, signal, nodes),
            }
            records.append(record)
    return records


def models(
    description: LineDescription,
    classes: Mapping[str, str],
    calibrated: Mapping[str, bool],
    version: int,
    rebaselined: Mapping[str, int],
) -> list[dict[str, Any]]:
    """One record per step: the model class and version behind its ``model`` outputs, whether it is
    calibrated, and when it was last re-baselined (plant-independent wall time, ns)."""
    return [
        {
            "@id": f"{line_iri(description)}:{step.id}:model",
            "step": step.id,
            "stepKind": step.kind,
            "modelClass": classes.get(step.id, ""),
            "modelVersion": str(version),
            "calibrated": bool(calibrated.get(step.id, False)),
            **({"rebaselined": rebaselined[step.id]} if step.id in rebaselined else {}),
        }
        for step in description.steps
    ]


def dataset(
    description: LineDescription,
    columns: Iterable[dict[str, Any]],
    distributions: Iterable[dict[str, Any]],
    model_records: list[dict[str, Any]],
    start: str,
    end: str,
    issued: str,
) -> dict[str, Any]:
    """A DCAT dataset of exported samples: its files, columns and the activities that made it (PROV)."""
    line = line_iri(description)
    return {
        "@context": CONTEXT,
        "@id": f"{line}:export:{start}/{end}",
        "@type": "dcat:Dataset",
        "title": f"{description.name or description.line}: process samples {start} to {end}",
        "issued": issued,
        "temporal": {"@type": "dct:PeriodOfTime", "startDate": start, "endDate": end},
        "distribution": list(distributions),
        "columns": list(columns),
        "wasGeneratedBy": activities(description, model_records),
    }


def activities(description: LineDescription, model_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PROV activities behind a line's data: ingest, and each step's model."""
    line = line_iri(description)
    return [
        {
            "@id": f"{line}:ingest",
            "@type": "prov:Activity",
            "description": "twin ingest: OPC UA and MQTT values normalised (unit, source time, quality)",
        },
        *({"@type": "prov:Activity", "used": [{"@id": line}], **m} for m in model_records),
    ]


def line_metadata(
    settings: Settings,
    description: LineDescription,
    step_models: Mapping[str, tuple[str, bool]],
    version: int,
    rebaselined: Mapping[str, int],
) -> dict[str, Any]:
    """``GET /lines/{line}/metadata``: the line's series and models as one JSON-LD document."""
    classes = {step: name for step, (name, _) in step_models.items()}
    calibrated = {step: done for step, (_, done) in step_models.items()}
    return {
        "@context": CONTEXT,
        "@id": line_iri(description),
        "@type": "dcat:Dataset",
        "title": description.name or description.line,
        "columns": series(settings, description),
        "wasGeneratedBy": activities(
            description, models(description, classes, calibrated, version, rebaselined)
        ),
    }
