"""``twin bench ...``: benchmarks that print their figures as tables."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Run a benchmark and print its figures.", no_args_is_help=True)


def _register() -> None:
    from bench.arl import arl_command
    from bench.chaos import chaos_command
    from bench.detection_report import detection_command
    from bench.e2e import e2e_command
    from bench.hall import hall_command
    from bench.ingest import ingest_command
    from bench.scaleout import scaleout_command
    from bench.soak import soak_command
    from bench.twinworkers import twin_workers_command
    from bench.whatif import whatif_command

    bench_app.command("arl")(arl_command)
    bench_app.command("chaos")(chaos_command)
    bench_app.command("detection")(detection_command)
    bench_app.command("e2e")(e2e_command)
    bench_app.command("hall")(hall_command)
    bench_app.command("ingest")(ingest_command)
    bench_app.command("scaleout")(scaleout_command)
    bench_app.command("soak")(soak_command)
    bench_app.command("twin-workers")(twin_workers_command)
    bench_app.command("whatif")(whatif_command)


_register()
