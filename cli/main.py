"""Entry point of the ``twin`` console script."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.context import CliState

app = typer.Typer(
    name="twin",
    help="linetwin: live digital twin for lithium-ion battery cell pilot lines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="TOML settings file (default: $LINETWIN_CONFIG or ./linetwin.toml)"
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config=config)


def _register() -> None:
    """Attach every subcommand; each lives in its own module of cli/."""
    from cli.backtest import backtest_command
    from cli.bench import bench_app
    from cli.certs import certs_app
    from cli.export import export_app
    from cli.ingest import ingest
    from cli.sim import sim
    from cli.token import token_command

    app.add_typer(bench_app, name="bench")
    app.add_typer(export_app, name="export")
    app.add_typer(certs_app, name="certs")
    app.command("backtest")(backtest_command)
    app.command()(ingest)
    app.command()(sim)
    app.command("token")(token_command)

    from cli.demo import demo
    from cli.serve import serve

    app.command("serve")(serve)
    app.command("demo")(demo)


_register()
