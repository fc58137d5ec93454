"""Units as sources write them (UCUM, UNECE codes in OPC UA, display text) convert through pint, and
anything else is refused before a single value is converted."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import units
from core.units import UnitError

# (UNECE common code, UCUM, display text, one of it in a reference unit, that reference unit)
CASES = [
    ("GM", "g/m2", "g/m²", 0.1, "mg/cm2"),
    ("H63", "mg/cm2", "mg/cm²", 10.0, "g/m2"),
    ("4H", "um", "µm", 1e-3, "mm"),
    ("CEL", "Cel", "°C", 274.15, "K"),
    ("KEL", "K", "K", -272.15, "Cel"),
    ("41", "mL/min", "mL/min", 1 / 60, "cm3/s"),
    ("2J", "cm3/s", "cm³/s", 60.0, "mL/min"),
    ("F47", "N/mm", "N/mm", 1000.0, "N/m"),
    ("B47", "kN", "kN", 1000.0, "N"),
    ("AMH", "A.h", "A·h", 3600.0, "A.s"),
]
FAMILIES = [
    ["g/m2", "mg/cm2", "kg/m2", "g/cm2"],
    ["um", "mm", "m", "cm"],
    ["Cel", "K"],
    ["mL/min", "cm3/s", "L/h", "mL/s"],
    ["N/mm", "N/m", "kN/m"],
    ["kN", "N"],
]


@pytest.mark.parametrize(("code", "ucum", "display", "one", "reference"), CASES)
def test_unece_ucum_and_display_spellings_name_one_unit_and_convert(
    code: str, ucum: str, display: str, one: float, reference: str
) -> None:
    assert units.from_unece(code) == ucum
    assert units.unece_code(units.unece_unit_id(code)) == code
    assert units.same(ucum, display)
    assert units.to_unece(display) == code
    assert units.converter(ucum, reference)(1.0) == pytest.approx(one)
    assert units.converter(display, reference)(1.0) == pytest.approx(one)


def test_symbols_are_readable_utf8() -> None:
    assert [units.symbol(u) for u in ("mg/cm2", "Cel", "um", "cm3/s", "1", "mL/min", "L", "mA.h", "N.m")] == [
        "mg/cm²",
        "°C",
        "µm",
        "cm³/s",
        "1",
        "mL/min",
        "L",
        "mA·h",
        "N·m",
    ]


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("g/m2", "mL/min", "cannot convert"),
        ("Cel", "N/mm", "cannot convert"),
        ("bananas", "m", "unknown unit"),
        ("", "m", "empty unit"),
        ("mg/cm2", "mg/cm", "cannot convert"),
    ],
)
def test_an_unknown_or_inconvertible_unit_is_refused_when_the_converter_is_made(
    source: str, target: str, why: str
) -> None:
    with pytest.raises(UnitError, match=why):
        units.converter(source, target)


def test_an_unknown_unece_code_or_unit_id_is_refused() -> None:
    with pytest.raises(UnitError, match="unknown UNECE unit code"):
        units.from_unece("ZZZ")
    with pytest.raises(UnitError, match="names no UNECE code"):
        units.unece_code(-1)


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[str, str]:
    family = draw(st.sampled_from(FAMILIES))
    return draw(st.sampled_from(family)), draw(st.sampled_from(family))


@given(pair=_pairs(), value=st.floats(-1e6, 1e6, allow_nan=False))
def test_conversions_round_trip(pair: tuple[str, str], value: float) -> None:
    there, back = units.converter(*pair), units.converter(pair[1], pair[0])
    assert math.isclose(back(there(value)), value, rel_tol=1e-9, abs_tol=1e-9)
