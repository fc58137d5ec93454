"""Load a TOML file into a pydantic model with errors a user can act on: file, line and field.

Shared by the tag map and the line descriptions. tomllib keeps no positions for values, so the line of a
field is found by walking the text: the n-th ``[[table]]`` header (nested ones too), then the key inside it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)


def load_toml(path: Path, model: type[Model], what: str) -> Model:
    """``model`` validated from the TOML file at ``path``; ``ConfigError`` naming file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start}): TOML files are") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(describe(path, text, err["loc"], err["msg"]) for err in exc.errors())
        raise ConfigError(f"invalid {what} {problems}") from None


def describe(path: Path, text: str, loc: tuple[int | str, ...], msg: str) -> str:
    field = ".".join(str(part) for part in loc)
    line = line_of(text, loc)
    where = f"{path}, line {line}" if line else str(path)
    return f"{where}, field {field}: {msg}"


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line number: the n-th ``[[table]]`` header, then the key inside it."""
    if not loc:  # a problem of the whole file
        return None
    lines = text.splitlines()
    start, end, located = 0, len(lines), False
    for depth in range(0, len(loc) - 1, 2):
        table, index = loc[depth], loc[depth + 1]
        if not isinstance(index, int):
            break
        header = re.compile(rf"^\s*\[\[(?:\S+\.)?{re.escape(str(table))}\]\]")
        hits = [n for n in range(start, end) if header.match(lines[n])]
        if index >= len(hits):
            break
        start, end = hits[index], hits[index + 1] if index + 1 < len(hits) else end
        located = True
    key = re.compile(rf"^\s*{re.escape(str(loc[-1]))}\s*=")
    for n in range(start, end):
        if key.match(lines[n]):
            return n + 1
    return start + 1 if located else None
