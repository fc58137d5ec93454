"""``twin bench ...``: benchmarks that print their figures as tables."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Run a benchmark and print its figures.", no_args_is_help=True)
