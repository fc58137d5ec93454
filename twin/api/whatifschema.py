"""The what-if request schemas as the served lines make them: each line's inputs, limits and quantities.

The request models (``twin.api.schemas``) accept any well-formed name, because which names exist depends
on the line description a twin is started with, not on code. The OpenAPI document a client reads is made
when the app starts, when the lines are known; this fills it in: the inputs with their setpoint limits,
the writable setpoints a push may send, the quantities an inverse may aim at. A name two served lines
share gets the wider of their limits; each request is still checked against its own line.
"""

from __future__ import annotations

from typing import Any

from core.prediction import Catalogue

CLOSED = {"type": "object", "additionalProperties": False}


def _number(low: float | None, high: float | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    if low is not None and high is not None:
        schema |= {"minimum": low, "maximum": high}
    return schema


def _widest(one: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    if "minimum" not in one or "minimum" not in other:
        return {"type": "number"}
    return {
        "type": "number",
        "minimum": min(one["minimum"], other["minimum"]),
        "maximum": max(one["maximum"], other["maximum"]),
    }


def _merge(into: dict[str, dict[str, Any]], name: str, schema: dict[str, Any]) -> None:
    into[name] = _widest(into[name], schema) if name in into else schema


def document(schema: dict[str, Any], catalogues: list[Catalogue]) -> None:
    """Replace the open name patterns of the what-if requests in ``schema`` by the served lines' names."""
    inputs: dict[str, dict[str, Any]] = {}
    writable: dict[str, dict[str, Any]] = {}
    quantities: dict[str, dict[str, Any]] = {}
    for catalogue in catalogues:
        for i in catalogue.inputs:
            _merge(inputs, i.name, _number(i.low, i.high))
            if i.setpoint:
                _merge(writable, i.name, _number(i.low, i.high))
        for q in catalogue.quantities:
            _merge(quantities, q.name, {"type": "number"})
    components = schema.get("components", {}).get("schemas", {})
    fields = {
        ("WhatIfRequest", "setpoints"): inputs,
        ("SetpointPush", "setpoints"): writable,
        ("InverseRequest", "targets"): quantities,
        ("InverseRequest", "bounds"): {name: {"$ref": "#/components/schemas/Bounds"} for name in inputs},
    }
    for (model, field), names in fields.items():
        target = components.get(model, {}).get("properties", {}).get(field)
        if target is None:
            continue
        target.pop("patternProperties", None)
        target.update(CLOSED, properties=names)
