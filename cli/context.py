"""What every subcommand shares: the loaded settings and clean error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import LinetwinError
from core.logging import setup_logging
from core.settings import Settings, load_settings

err_console = Console(stderr=True)


@dataclass
class CliState:
    config: Path | None = None


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """Load settings for a subcommand; flags given on the command line override file and environment."""
    state: CliState = ctx.obj
    with user_errors():
        settings = load_settings(state.config)
        if overrides:
            settings = _apply_overrides(settings, overrides)
    setup_logging(settings.log_level, settings.log_format)
    return settings


def _apply_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """Apply ``section.field`` overrides that are not None, re-validating the result. Only what was set
    is carried over, so what a line description supplies (its site, area and line) still comes from it."""
    data = settings.model_dump(exclude_unset=True)
    for dotted, value in overrides.items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return Settings.model_validate(data)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn linetwin's own errors into a one-line message and exit code 2, never a traceback."""
    try:
        yield
    except LinetwinError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except Exception as exc:  # pydantic validation of overrides
        if exc.__class__.__name__ == "ValidationError":
            err_console.print(f"[bold red]error:[/] invalid option: {exc}")
            sys.exit(2)
        raise


def run_guarded(func: Callable[[], Any]) -> Any:
    """Run a long-lived job; Ctrl-C ends it quietly, user errors become messages."""
    with user_errors():
        try:
            return func()
        except KeyboardInterrupt:
            err_console.print("stopped")
            return None
