"""No shipped line is code: its step ids, and the signal names it stores under another role, appear in
no file of ``models/`` or ``twin/`` (the role names are the models' vocabulary, not a line's)."""

from __future__ import annotations

import re
from pathlib import Path

from core import linedesc

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "lines").glob("*.toml"))


def _names() -> set[str]:
    names = set()
    for path in SHIPPED:
        description = linedesc.load(path)
        for step in description.steps:
            names.add(step.id)
            names |= {s.name for s in step.signals if s.role != s.name}
    return names


def test_no_machine_or_vendor_signal_name_of_a_shipped_line_is_written_in_models_or_twin() -> None:
    assert SHIPPED, "lines/ ships line descriptions"
    names = _names()
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names))) + r")\b")
    found = []
    for package in ("models", "twin"):
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix not in {".py", ".html", ".js", ".css"}:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if match := pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
    assert not found, "line names in code:\n" + "\n".join(found)
