"""Discovery reads a server's engineering units as UCUM codes and writes a readable tag map."""

from __future__ import annotations

from asyncua import ua

from connectors.opcua.discover import render, unit_of
from connectors.tagmap import OpcUaMachine, OpcUaTag
from core import units


def _eu(unit_id: int, display: str, namespace: str = units.UNECE_NAMESPACE) -> ua.EUInformation:
    return ua.EUInformation(NamespaceUri=namespace, UnitId=unit_id, DisplayName=ua.LocalizedText(display))


def test_the_unece_unit_id_names_the_unit_whatever_the_display_name_says() -> None:
    assert unit_of(_eu(units.unece_unit_id("GM"), "g/m²")) == "g/m2"
    assert unit_of(_eu(units.unece_unit_id("CEL"), "deg C")) == "Cel"


def test_without_a_unit_id_the_display_name_is_read_and_an_unknown_one_kept_for_the_user() -> None:
    assert unit_of(_eu(-1, "µm")) == "um"
    assert unit_of(_eu(-1, "cm³/s", namespace="")) == "cm3/s"
    assert unit_of(_eu(-1, "Schmidt-Einheit")) == "Schmidt-Einheit"


def test_the_rendered_tag_map_keeps_unit_symbols_readable() -> None:
    machine = OpcUaMachine(machine="coater9", tags=[OpcUaTag(node="ns=2;s=Gap", signal="gap", unit="µm")])
    text = render([machine], "opc.tcp://vendor:4840")
    assert 'unit = "µm"' in text and "\\u00b5" not in text
