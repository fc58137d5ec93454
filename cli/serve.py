"""``twin serve``: the twin service (engine, HTTP API and UI) for the lines this worker owns."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.context import run_guarded, settings_from


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address (twin.host)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (twin.port)")] = None,
    line: Annotated[
        list[str] | None,
        typer.Option("--line", help="a line this worker owns; repeat for several (twin.lines)"),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="without twin.api_token, accept changes from anyone who reaches the API"
        ),
    ] = False,
) -> None:
    """Run the twin: plant bus in, live state, models and alerts, HTTP API and web UI."""
    overrides = {"twin.host": host, "twin.port": port, "twin.lines": line or None}
    settings = settings_from(ctx, **overrides, **({"twin.insecure": True} if insecure else {}))

    def run() -> None:
        from twin.modeladapter import analyser_factory, whatif_models
        from twin.service import build_twin, serve

        twin = build_twin(settings, analyser_factory(settings), whatif_models(settings))
        typer.echo(f"twin UI and API on http://{settings.twin.host}:{settings.twin.port}/ (OpenAPI: /docs)")
        serve(twin)

    run_guarded(run)
