"""Passport records as Asset Administration Shells, through the Eclipse BaSyx Python SDK.

Each cell and each roll becomes one AAS (an asset instance whose global asset id is the record's IRI)
with submodels: the digital nameplate (IDTA-02035-1's semantic id; serial number, date of manufacture,
facility), the material lineage (one collection per upstream step: its window, quality signals,
setpoints and parameters), the formation results, and the alerts that touched the material. The SDK
serialises them (JSON, and an AASX package that AAS tools open); nothing here writes AAS by hand.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from basyx.aas import model
from basyx.aas.adapter import aasx
from basyx.aas.adapter.json import read_aas_json_file, write_aas_json_file

from twin.fair import LT
from twin.passport import IDTA_NAMEPLATE

ID_SHORT = re.compile(r"[^A-Za-z0-9_]")


def id_short(text: str) -> str:
    """An idShort from any name: letters, digits and underscores, starting with a letter."""
    cleaned = ID_SHORT.sub("_", text).strip("_") or "x"
    return cleaned if cleaned[0].isalpha() else f"x_{cleaned}"


def _semantic(iri: str) -> model.ExternalReference:
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, iri),))


def _value(name: str, value: Any) -> model.Property:
    if isinstance(value, bool):
        return model.Property(id_short(name), model.datatypes.Boolean, value)
    if isinstance(value, int):
        return model.Property(id_short(name), model.datatypes.Long, value)
    if isinstance(value, float):
        return model.Property(id_short(name), model.datatypes.Double, value)
    return model.Property(id_short(name), model.datatypes.String, "" if value is None else str(value))


def _collection(name: str, data: Mapping[str, Any]) -> model.SubmodelElementCollection:
    return model.SubmodelElementCollection(id_short(name), _elements(data))


def _elements(data: Mapping[str, Any]) -> list[model.SubmodelElement]:
    """A record's mapping as elements: scalars as properties, mappings and lists as collections."""
    elements: list[model.SubmodelElement] = []
    for key, value in data.items():
        if key.startswith("@"):
            continue
        if isinstance(value, Mapping):
            elements.append(_collection(key, value))
        elif isinstance(value, list):
            elements.append(_list(key, value))
        else:
            elements.append(_value(key, value))
    return elements


def _list(name: str, items: Iterable[Any]) -> model.SubmodelElementCollection:
    entries: list[model.SubmodelElement] = []
    for i, item in enumerate(items):
        label = f"{name}_{i:03d}"
        entries.append(_collection(label, item) if isinstance(item, Mapping) else _value(label, item))
    return model.SubmodelElementCollection(id_short(name), entries)


def shell(record: Mapping[str, Any]) -> tuple[model.AssetAdministrationShell, list[model.Submodel]]:
    """The AAS and submodels of one passport record (cell or roll)."""
    iri = str(record["@id"])
    identification = record["identification"]
    name = identification.get("cellId") or identification.get("roll") or iri
    nameplate = model.Submodel(
        f"{iri}:sm:nameplate",
        [
            _value("SerialNumber", name),
            _value("DateOfManufacture", identification.get("manufacturingDate", "")),
            _value("UniqueFacilityIdentifier", identification.get("facility", "")),
            _value("ManufacturerProductDesignation", identification.get("lineName", "")),
        ],
        id_short="Nameplate",
        semantic_id=_semantic(IDTA_NAMEPLATE + "BatteryNameplate"),
    )
    submodels = [nameplate]
    lineage = [
        _collection(f"{i:02d}_{step['step']}", step) for i, step in enumerate(record["materialLineage"])
    ]
    submodels.append(
        model.Submodel(
            f"{iri}:sm:lineage",
            lineage,
            id_short="MaterialLineage",
            semantic_id=_semantic(LT + "materialLineage"),
        )
    )
    if "formation" in record:
        submodels.append(
            model.Submodel(
                f"{iri}:sm:formation",
                _elements(record["formation"]),
                id_short="FormationResults",
                semantic_id=_semantic(LT + "formation"),
            )
        )
    alerts = [_collection(f"alert_{a['@id'].rsplit(':', 1)[-1]}", a) for a in record.get("alerts", [])]
    submodels.append(
        model.Submodel(f"{iri}:sm:alerts", alerts, id_short="Alerts", semantic_id=_semantic(LT + "alert"))
    )
    aas = model.AssetAdministrationShell(
        model.AssetInformation(model.AssetKind.INSTANCE, global_asset_id=iri),
        f"{iri}:aas",
        id_short=id_short(name),
        submodel={model.ModelReference.from_referable(s) for s in submodels},
    )
    return aas, submodels


def store_of(
    records: Iterable[Mapping[str, Any]],
) -> tuple[model.DictIdentifiableStore[model.Identifiable], list[str]]:
    objects: model.DictIdentifiableStore[model.Identifiable] = model.DictIdentifiableStore()
    ids = []
    for record in records:
        aas, submodels = shell(record)
        objects.add(aas)
        for submodel in submodels:
            objects.add(submodel)
        ids.append(aas.id)
    return objects, ids


def write_json(records: Iterable[Mapping[str, Any]], path: Path) -> None:
    objects, _ = store_of(records)
    with path.open("w", encoding="utf-8") as out:
        write_aas_json_file(out, objects)


def write_aasx(records: Iterable[Mapping[str, Any]], path: Path) -> None:
    objects, ids = store_of(records)
    files = aasx.DictSupplementaryFileContainer()
    with aasx.AASXWriter(str(path)) as writer:
        writer.write_aas(ids, objects, files)


def read_json(path: Path) -> list[model.Identifiable]:
    """An AAS JSON file read back by the SDK's deserialiser (strict: its errors raise)."""
    with path.open(encoding="utf-8") as source:
        return list(read_aas_json_file(io.StringIO(source.read()), failsafe=False))


def read_aasx(path: Path) -> list[model.Identifiable]:
    """An AASX package read back by the SDK."""
    objects: model.DictIdentifiableStore[model.Identifiable] = model.DictIdentifiableStore()
    with aasx.AASXReader(str(path)) as reader:
        reader.read_into(objects, aasx.DictSupplementaryFileContainer())
    return list(objects)


def as_json(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The AAS environment as the SDK serialises it, for the API."""
    buffer = io.StringIO()
    objects, _ = store_of(records)
    write_aas_json_file(buffer, objects)
    return dict(json.loads(buffer.getvalue()))
