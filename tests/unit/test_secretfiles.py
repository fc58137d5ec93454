"""Secrets in files: keys written readable by their owner only, and keys others can read refused."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua import Client
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from connectors.opcua import trust
from connectors.opcua.security import configure
from core import pki
from core.errors import ConfigError
from core.secretfiles import SecretFileExposed, check_private, write_private
from core.settings import OpcUaSettings


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: what is written 0600 must be so by itself."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_private_file_is_readable_by_its_owner_only_even_under_an_open_umask(
    tmp_path: Path, open_umask: None
) -> None:
    key = tmp_path / "new" / "key.pem"
    write_private(key, b"secret")
    assert key.read_bytes() == b"secret" and _mode(key) == 0o600


def test_rewriting_a_private_file_that_others_could_read_leaves_it_owner_only(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(b"old")
    key.chmod(0o644)
    write_private(key, b"new")
    assert key.read_bytes() == b"new" and _mode(key) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"], "no temporary file is left"


def test_a_file_open_to_group_or_others_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    key = tmp_path / "client.pem"
    key.write_bytes(b"k")
    key.chmod(0o640)
    with pytest.raises(SecretFileExposed, match=rf"OPC UA private key {key} .*mode 0640.*chmod 600 {key}"):
        check_private(key, "OPC UA private key")
    assert isinstance(SecretFileExposed("x"), ConfigError), "reported as a configuration error, one line"
    check_private(key, "OPC UA private key", allowed=True)
    key.chmod(0o600)
    check_private(key, "OPC UA private key")


def test_created_certificates_have_owner_only_keys_and_are_made_once(
    tmp_path: Path, open_umask: None
) -> None:
    cert, key, made = pki.identity(tmp_path, "sim", "urn:x", ExtendedKeyUsageOID.SERVER_AUTH)
    assert made and _mode(key) == 0o600 and _mode(cert) == 0o644
    first = pki.thumbprint(pki.load(cert))
    again = pki.identity(tmp_path, "sim", "urn:x", ExtendedKeyUsageOID.SERVER_AUTH)
    assert again == (cert, key, False) and pki.thumbprint(pki.load(cert)) == first


def test_twin_certs_create_writes_the_key_owner_only_and_keeps_an_existing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    from cli.main import app

    monkeypatch.chdir(tmp_path)
    env = {"LINETWIN_OPCUA__PKI_DIR": str(tmp_path / "pki")}
    result = CliRunner().invoke(app, ["certs", "create"], env=env)
    assert result.exit_code == 0, result.output
    cert, key = pki.paths(tmp_path / "pki" / "own", trust.CLIENT_NAME)
    assert _mode(key) == 0o600 and "readable by you only" in result.output
    assert cert.is_file()
    identity = cert.read_bytes()
    again = CliRunner().invoke(app, ["certs", "create"], env=env)
    assert again.exit_code == 2 and "--replace" in again.output, again.output
    assert cert.read_bytes() == identity, "servers that trust it keep trusting ingest"
    replaced = CliRunner().invoke(app, ["certs", "create", "--replace"], env=env)
    assert replaced.exit_code == 0 and "replaces the previous one" in replaced.output, replaced.output
    assert cert.read_bytes() != identity


def _pinned(tmp_path: Path, **opcua: object) -> OpcUaSettings:
    """Client settings that pin a server certificate, so configuring connects nowhere."""
    server, _ = pki.create(tmp_path / "server", "server", "urn:server", ExtendedKeyUsageOID.SERVER_AUTH)
    return OpcUaSettings(pki_dir=tmp_path / "pki", server_certificate=server, **opcua)  # type: ignore[arg-type]


async def test_ingest_makes_its_identity_on_first_start_logs_it_and_keeps_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _pinned(tmp_path)
    with caplog.at_level(logging.WARNING, "connectors.opcua.trust"):
        await configure(Client("opc.tcp://127.0.0.1:4840"), settings)
    cert, key = pki.paths(tmp_path / "pki" / "own", trust.CLIENT_NAME)
    assert _mode(key) == 0o600
    assert f"OPC UA client certificate created: give {cert}" in caplog.text
    caplog.clear()
    client = Client("opc.tcp://127.0.0.1:4840")
    await configure(client, settings)
    assert "created" not in caplog.text, "the second start uses the same identity"
    assert client.application_uri == trust.CLIENT_URI


async def test_a_private_key_others_can_read_is_refused_unless_allowed(tmp_path: Path) -> None:
    cert, key = trust.create(tmp_path / "own", "client", "urn:client")
    key.chmod(0o644)
    settings = _pinned(tmp_path, certificate=cert, private_key=key)
    with pytest.raises(SecretFileExposed, match=f"chmod 600 {key}"):
        await configure(Client("opc.tcp://127.0.0.1:4840"), settings)
    await configure(Client("opc.tcp://127.0.0.1:4840"), settings, readable_key=True)


async def test_half_an_identity_is_a_configuration_error(tmp_path: Path) -> None:
    cert, _ = trust.create(tmp_path / "own", "client", "urn:client")
    with pytest.raises(ConfigError, match=r"both opcua\.certificate and opcua\.private_key"):
        await configure(Client("opc.tcp://127.0.0.1:4840"), _pinned(tmp_path, certificate=cert))
