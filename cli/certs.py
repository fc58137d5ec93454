"""``twin certs``: the OPC UA client's identity and its trust store (``opcua.pki_dir``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.context import run_guarded, settings_from
from connectors.opcua import trust
from core import pki
from core.errors import LinetwinError

certs_app = typer.Typer(
    help="OPC UA certificates: the client's own, and the servers it trusts.", no_args_is_help=True
)
console = Console()


@certs_app.command("create")
def create(
    ctx: typer.Context,
    uri: Annotated[str, typer.Option(help="the client's application URI")] = trust.CLIENT_URI,
    name: Annotated[str, typer.Option(help="file name (and common name)")] = trust.CLIENT_NAME,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace an existing identity (servers must trust the new one)")
    ] = False,
) -> None:
    """Make the client's self-signed certificate and key in PKI folder own/ (twin ingest uses the default
    name there while opcua.certificate is unset; set opcua.certificate and opcua.private_key for another),
    and give the certificate to the server's administrator to trust. An existing identity is kept unless
    ``--replace``: every server that trusts it would refuse ingest until it trusts the new one."""
    settings = settings_from(ctx)

    def job() -> None:
        existing = pki.paths(settings.opcua.pki_dir / trust.OWN, name)[0]
        replaced = existing.exists()
        if replaced and not replace:
            raise LinetwinError(
                f"{existing} exists, and servers may trust it; --replace makes a new one in its place"
            )
        cert, key = trust.create(settings.opcua.pki_dir / trust.OWN, name, uri)
        console.print(f"certificate {cert}\nprivate key {key} (readable by you only)")
        if replaced:
            console.print("it replaces the previous one: servers that trusted that must trust this one")

    run_guarded(job)


@certs_app.command("list")
def list_(ctx: typer.Context) -> None:
    """The trusted and the rejected server certificates."""
    settings = settings_from(ctx)

    def job() -> None:
        table = Table(title=f"OPC UA trust store {settings.opcua.pki_dir}")
        for column in ("state", "thumbprint", "subject", "valid until"):
            table.add_column(column)
        for entry in trust.listed(settings.opcua.pki_dir):
            table.add_row(entry.state, entry.thumbprint, entry.subject, f"{entry.not_after:%Y-%m-%d}")
        console.print(table)

    run_guarded(job)


@certs_app.command("trust")
def trust_(
    ctx: typer.Context, certificate: Annotated[str, typer.Argument(help="thumbprint, or a file")]
) -> None:
    """Trust a rejected server certificate (by thumbprint or its start), or import one from a file."""
    settings = settings_from(ctx)
    run_guarded(lambda: console.print(f"trusted: {trust.trust(settings.opcua.pki_dir, certificate)}"))


@certs_app.command("reject")
def reject(ctx: typer.Context, certificate: Annotated[str, typer.Argument(help="thumbprint")]) -> None:
    """Stop trusting a server certificate: it moves to rejected/."""
    settings = settings_from(ctx)
    run_guarded(lambda: console.print(f"rejected: {trust.reject(settings.opcua.pki_dir, certificate)}"))
