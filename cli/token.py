"""``twin token``: a new API token and the hashed entry that grants it its scopes.

The token is printed once and never stored: the twin keeps only its SHA-256 (``twin.tokens``).
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from rich.console import Console

from cli.context import run_guarded
from core.errors import ConfigError
from core.settings import SCOPES
from twin.api.deps import token_hash

console = Console()


def token_command(
    name: Annotated[str, typer.Argument(help="who holds it (recorded with what it changes)")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help=f"what it may do: {', '.join(SCOPES)}; repeat")
    ] = None,
) -> None:
    """Print a new random API token and the ``[[twin.tokens]]`` entry to add to the settings file."""

    def job() -> None:
        scopes = scope or ["read"]
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ConfigError(f"unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
        token = secrets.token_urlsafe(32)
        listed = ", ".join(f'"{s}"' for s in dict.fromkeys(scopes))
        console.print(f"token (give it to {name}; it is not kept anywhere):\n{token}\n", highlight=False)
        console.print(
            f'add to the settings file:\n[[twin.tokens]]\nname = "{name}"\nsha256 = "{token_hash(token)}"\n'
            f"scopes = [{listed}]",
            highlight=False,
            markup=False,
        )

    run_guarded(job)
