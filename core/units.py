"""Units: read what sources say and convert with pint.

Sources name units three ways: UCUM codes (``mg/cm2``, ``Cel``, ``um``: what linetwin stores), UNECE
Recommendation 20 common codes in OPC UA's EUInformation (``H63``, ``CEL``, ``4H``, packed into the Int32
UnitId), and display text from EUInformation's DisplayName or Sparkplug's ``engUnit`` (``mg/cm²``,
``°C``, ``µm``). pint does the arithmetic, offsets of temperatures included; it reads none of those three
spellings as such (``Cel`` is no pint unit, ``cm2`` no power), so this module translates them into pint
expressions first. The UNECE table is the codes a battery line reports, not the whole recommendation:
an unknown code is an error to fix in the table, never a guess.

Every conversion is affine (a scale and an offset), so :func:`converter` asks pint once and returns a
plain function for the hot path. An unknown or inconvertible unit raises :class:`UnitError` when the
converter is made, at start-up, never a wrong number later.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

import pint

from core.errors import ConfigError

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"

#: UNECE Rec 20 common code -> UCUM code
UNECE: dict[str, str] = {
    "C62": "1",
    "P1": "%",
    "59": "[ppm]",
    "MTR": "m",
    "CMT": "cm",
    "MMT": "mm",
    "4H": "um",
    "GRM": "g",
    "KGM": "kg",
    "MLT": "mL",
    "LTR": "L",
    "SEC": "s",
    "MIN": "min",
    "HUR": "h",
    "DAY": "d",
    "2X": "m/min",
    "41": "mL/min",
    "40": "mL/s",
    "2J": "cm3/s",
    "GM": "g/m2",
    "H63": "mg/cm2",
    "25": "g/cm2",
    "23": "g/cm3",
    "KMQ": "kg/m3",
    "F28": "g/min",
    "H81": "mm/min",
    "CEL": "Cel",
    "KEL": "K",
    "NEW": "N",
    "B47": "kN",
    "F47": "N/mm",
    "4P": "N/m",
    "PAL": "Pa",
    "KPA": "kPa",
    "BAR": "bar",
    "VLT": "V",
    "2Z": "mV",
    "AMP": "A",
    "4K": "mA",
    "AMH": "A.h",
    "E09": "mA.h",
    "WTT": "W",
    "KWT": "kW",
    "OHM": "Ohm",
}

# UCUM atoms and display symbols pint spells otherwise
_ATOMS = {
    "Cel": "degC",
    "°C": "degC",
    "℃": "degC",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "%": "percent",
    "[ppm]": "ppm",
    "ppm": "ppm",
    "Ohm": "ohm",
    "Ω": "ohm",
    "d": "day",
    "1": "dimensionless",
    "Ah": "ampere_hour",
    "mAh": "milliampere_hour",
}
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_ATOM = re.compile(r"(\[[^\]]+\]|[^./·*()\d\-][^./·*()]*?)(-?\d+)?(?=$|[./·*()])")

_REGISTRY: pint.UnitRegistry = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
#: symbols keep the factors in the order written (``mA·h``), not pint's alphabetical ``h·mA``
_REGISTRY.formatter.default_sort_func = None


class UnitError(ConfigError):
    """A unit this module cannot read, or two units one cannot be converted into the other."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """``target = scale · source + offset``."""

    source: str
    target: str
    scale: float
    offset: float

    def __call__(self, value: float) -> float:
        return self.scale * value + self.offset

    def inverse(self, value: float) -> float:
        """``value`` in ``target`` back in ``source``."""
        return (value - self.offset) / self.scale


def from_unece(code: str) -> str:
    """The UCUM code of a UNECE common code (``H63`` → ``mg/cm2``)."""
    try:
        return UNECE[code.strip().upper()]
    except KeyError:
        raise UnitError(f"unknown UNECE unit code {code!r}") from None


def unece_code(unit_id: int) -> str:
    """OPC UA Part 8, 5.6.3: the common code packed into EUInformation's Int32 UnitId, unpacked."""
    if unit_id <= 0:
        raise UnitError(f"EUInformation UnitId {unit_id} names no UNECE code")
    chars = []
    while unit_id:
        chars.append(chr(unit_id & 0xFF))
        unit_id >>= 8
    return "".join(reversed(chars))


def unece_unit_id(code: str) -> int:
    """The UnitId that carries a UNECE common code in EUInformation (its ASCII characters, packed)."""
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return unit_id


def to_unece(ucum: str) -> str:
    """The UNECE common code of a unit in the table, however it is spelled (``mg/cm²`` → ``H63``); where
    two codes name one unit (``40`` mL/s, ``2J`` cm³/s), the one spelled alike wins."""
    spelled = str(parse(ucum))
    for code, unit in UNECE.items():
        if str(parse(unit)) == spelled:
            return code
    for code, unit in UNECE.items():
        if same(unit, ucum):
            return code
    raise UnitError(f"no UNECE code for {ucum!r} in linetwin's table")


def same(one: str, other: str) -> bool:
    """Whether two spellings name one unit (``A.h`` and ``Ah``, ``Cel`` and ``°C``)."""
    try:
        conversion = converter(one, other)
    except UnitError:
        return False
    return math.isclose(conversion.scale, 1.0, rel_tol=1e-12) and abs(conversion.offset) < 1e-12


@cache
def _pint_unit(text: str) -> pint.Unit:
    spelled = text.strip().translate(_SUPERSCRIPTS).replace("·", ".")
    if not spelled:
        raise UnitError("empty unit")
    spelled = _ATOMS[spelled] if spelled in _ATOMS else _ATOM.sub(_atom, spelled).replace(".", "*")
    try:
        return _REGISTRY.parse_units(spelled)
    except Exception as exc:  # pint's parser raises assorted errors on free text, all meaning "not a unit"
        raise UnitError(f"unknown unit {text!r}: {exc}") from None


def _atom(match: re.Match[str]) -> str:
    name, power = match.group(1), match.group(2)
    name = _ATOMS.get(name, name)
    return f"({name})**{power}" if power else name


def parse(text: str) -> pint.Unit:
    """The pint unit of a UCUM code or display symbol (``mg/cm2``, ``mg/cm²``, ``Cel``, ``°C``)."""
    return _pint_unit(text)


def converter(source: str, target: str) -> Conversion:
    """The conversion of values in ``source`` into ``target``; ``UnitError`` if there is none."""
    src, dst = parse(source), parse(target)
    if src.dimensionality != dst.dimensionality:
        raise UnitError(
            f"cannot convert {source!r} ({src.dimensionality}) into {target!r} ({dst.dimensionality})"
        )
    zero = float(_REGISTRY.Quantity(0.0, src).to(dst).magnitude)
    one = float(_REGISTRY.Quantity(1.0, src).to(dst).magnitude)
    conversion = Conversion(source, target, one - zero, zero)
    check = float(_REGISTRY.Quantity(1000.0, src).to(dst).magnitude)
    if not math.isclose(conversion(1000.0), check, rel_tol=1e-9, abs_tol=1e-12):
        raise UnitError(f"{source!r} to {target!r} is not a scale and an offset")
    return conversion


def conversion(source: str, target: str) -> Conversion | None:
    """The conversion from ``source`` into ``target``, or None when they are one unit spelled alike or not
    (``A.h`` and ``Ah``): nothing to convert. ``UnitError`` when there is none."""
    return None if same(source, target) else converter(source, target)


def symbol(text: str) -> str:
    """A readable UTF-8 symbol (``mg/cm2`` → ``mg/cm²``, ``Cel`` → ``°C``, ``mL/min``) for people and files.

    pint writes the litre ``l``; SI and UCUM write ``L`` (a lower-case l reads as a one).
    """
    unit = parse(text)
    if unit == _REGISTRY.dimensionless:
        return "1"
    return re.sub(r"(?<![A-Za-z])([mµn]?)l(?![A-Za-z])", r"\1L", f"{unit:~P}")
