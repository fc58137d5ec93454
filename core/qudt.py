"""Units as UCUM codes and as QUDT unit IRIs, for metadata another line's software can read.

A line description writes units the way pint and UCUM both read them (``mg/cm2``, ``Cel``, ``mA.h``); a
few common spellings are not UCUM (``µm``, ``Ah``, ``ppm``) and are normalised here. QUDT publishes one
IRI per unit, but no maintained Python package ships its vocabulary offline, so the units the shipped
lines and step kinds use are listed by hand, each checked against qudt.org/vocab/unit. A unit not
listed keeps its UCUM code and gets no IRI rather than a guessed one.
"""

from __future__ import annotations

QUDT_UNIT = "http://qudt.org/vocab/unit/"

#: spellings lines use -> the UCUM code
UCUM_SPELLINGS = {"µm": "um", "μm": "um", "Ah": "A.h", "mAh": "mA.h", "ppm": "[ppm]", "degC": "Cel"}

#: UCUM code -> QUDT unit local name
QUDT = {
    "1": "UNITLESS",
    "%": "PERCENT",
    "[ppm]": "PPM",
    "A": "A",
    "A.h": "A-HR",
    "mA.h": "MilliA-HR",
    "V": "V",
    "N": "N",
    "kW": "KiloW",
    "Cel": "DEG_C",
    "m": "M",
    "mm": "MilliM",
    "um": "MicroM",
    "d": "DAY",
    "s": "SEC",
    "m/min": "M-PER-MIN",
    "mm/min": "MilliM-PER-MIN",
    "mL/min": "MilliL-PER-MIN",
    "cm3/s": "CentiM3-PER-SEC",
    "g/min": "GM-PER-MIN",
    "mg/cm2": "MilliGM-PER-CentiM2",
    "g/m2": "GM-PER-M2",
    "g/cm3": "GM-PER-CentiM3",
    "kg/m3": "KiloGM-PER-M3",
    "N/mm": "N-PER-MilliM",
    "kN/m": "KiloN-PER-M",
}


def ucum(unit: str) -> str:
    """The UCUM code of a unit as a line writes it."""
    return UCUM_SPELLINGS.get(unit, unit)


def qudt_iri(unit: str) -> str | None:
    """The QUDT unit IRI, or None where this table has none."""
    name = QUDT.get(ucum(unit))
    return QUDT_UNIT + name if name else None


def unit_terms(unit: str) -> dict[str, str]:
    """A unit as JSON-LD terms: its UCUM code, and its QUDT IRI where this table has one."""
    terms = {"ucum": ucum(unit)}
    if (iri := qudt_iri(unit)) is not None:
        terms["unit"] = iri
    return terms
