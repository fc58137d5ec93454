"""OPC UA over Basic256Sha256 SignAndEncrypt with test-made certificates; refusals are clear, no data.
The simulator and ingest with their default security: each makes its certificate and they trust each
other; a client the simulator does not trust, or one without security, gets no session."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from bench.ingest_sources import OpcUaSource, PasswordUsers
from connectors.opcua.security import OpcUaRefused
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from core.settings import OpcUaSettings, PlantSettings, Settings
from tests.integration.ingest_support import count, ingest_settings, wait_for

pytestmark = pytest.mark.integration


def _certificate(directory: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "linetwin tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname()), x509.DNSName("localhost")],
        [usage],
    )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    key_path.chmod(0o600)  # a key others can read is refused
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    server_cert, server_key = _certificate(
        tmp_path, "server", "urn:freeopcua:python:server", ExtendedKeyUsageOID.SERVER_AUTH
    )
    client_cert, client_key = _certificate(
        tmp_path, "client", "urn:linetwin:ingest", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    (trusted / "client.der").write_bytes(client_cert.read_bytes())
    rogue_cert, rogue_key = _certificate(
        tmp_path, "rogue", "urn:linetwin:rogue", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return {
        "trusted": trusted,
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "rogue_cert": rogue_cert,
        "rogue_key": rogue_key,
    }


@pytest.fixture
async def secure_source(pki: dict[str, Path]) -> AsyncIterator[OpcUaSource]:
    source = OpcUaSource(
        free_port(),
        machines=1,
        signals=2,
        certificate=pki["server_cert"],
        private_key=pki["server_key"],
        trusted=pki["trusted"],
        users=PasswordUsers("operator", "s3cret"),
    )
    await source.start()
    yield source
    await source.stop()


def _settings(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    source: OpcUaSource,
    pki: dict[str, Path],
    *,
    cert: str = "client",
    password: str = "s3cret",
) -> Settings:
    return ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={
            "endpoints": [source.endpoint],
            "security_policy": "Basic256Sha256",
            "security_mode": "SignAndEncrypt",
            "certificate": str(pki[f"{cert}_cert"]),
            "private_key": str(pki[f"{cert}_key"]),
            "server_certificate": str(pki["server_cert"]),
            "username": "operator",
            "password": password,
        },
    )


async def test_ingest_over_sign_and_encrypt_with_certificate_and_password(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, secure_source: OpcUaSource, pki: dict[str, Path]
) -> None:
    settings = _settings(tmp_path, mosquitto, influxd, secure_source, pki)
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="secure session")
    await secure_source.run(10, 0.01)
    await wait_for(lambda: count(influxd, settings.influx.database) >= 20, what="20 points")
    stop.set()
    await task


@pytest.mark.parametrize(("cert", "password"), [("client", "wrong"), ("rogue", "s3cret")])
async def test_a_wrong_password_or_untrusted_certificate_is_refused_with_a_clear_error_and_no_data(
    tmp_path: Path,
    mosquitto: Mosquitto,
    influxd: Influxd,
    secure_source: OpcUaSource,
    pki: dict[str, Path],
    cert: str,
    password: str,
) -> None:
    settings = _settings(tmp_path, mosquitto, influxd, secure_source, pki, cert=cert, password=password)
    with pytest.raises(OpcUaRefused, match="refused the connection: Bad"):
        await asyncio.wait_for(IngestService(settings).run(), 30)
    await secure_source.run(3, 0.01)
    assert count(influxd, settings.influx.database) == 0


async def test_an_unpinned_server_is_checked_against_the_trust_store_and_trusted_once_reviewed(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, secure_source: OpcUaSource, pki: dict[str, Path]
) -> None:
    """No server_certificate pinned: the first connection is refused and the server's certificate kept in
    rejected/; `twin certs trust <thumbprint>` as an engineer runs it; then the session and data flow."""
    import os
    import subprocess
    import sys

    from connectors.opcua import trust

    settings = _settings(tmp_path, mosquitto, influxd, secure_source, pki)
    store = tmp_path / "pki"
    opcua = settings.opcua.model_copy(update={"server_certificate": None, "pki_dir": store})
    settings = settings.model_copy(update={"opcua": opcua})
    with pytest.raises(OpcUaRefused, match=r"not trusted.*twin certs trust"):
        await asyncio.wait_for(IngestService(settings).run(), 30)
    [entry] = trust.listed(store)
    assert entry.state == "rejected" and entry.thumbprint == trust.thumbprint(trust.load(pki["server_cert"]))
    twin = str(Path(sys.executable).with_name("twin"))
    env = {**os.environ, "LINETWIN_OPCUA__PKI_DIR": str(store)}
    done = await asyncio.to_thread(
        subprocess.run,
        [twin, "certs", "trust", entry.thumbprint[:12]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [e.state for e in trust.listed(store)] == ["trusted"]
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(
        lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="trusted session"
    )
    await secure_source.run(10, 0.01)
    await wait_for(lambda: count(influxd, settings.influx.database) >= 20, what="20 points")
    stop.set()
    await task


def test_certs_create_makes_a_client_identity_readable_by_its_owner_only(tmp_path: Path) -> None:
    from connectors.opcua import trust

    cert, key = trust.create(tmp_path, "ingest", "urn:linetwin:ingest")
    uri = trust.load(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "urn:linetwin:ingest" in uri.get_values_for_type(x509.UniformResourceIdentifier)
    assert key.stat().st_mode & 0o777 == 0o600


def _paired(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, **opcua: object) -> Settings:
    """``twin sim`` and ``twin ingest`` settings with the default OPC UA security and their PKI folders
    in ``tmp_path``: nothing configured but the endpoint."""
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/linetwin"
    defaults = OpcUaSettings()
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={
            "endpoints": [endpoint],
            "pki_dir": str(tmp_path / "pki"),
            "security_policy": defaults.security_policy,
            "security_mode": defaults.security_mode,
            **opcua,
        },
        plant={
            "opcua_endpoint": endpoint,
            "opcua_pki_dir": str(tmp_path / "pki-sim"),
            "opcua_security_modes": PlantSettings().opcua_security_modes,
            "speed": 20.0,
            "cycler_channels": 1,
            "ground_truth_file": str(tmp_path / "truth.jsonl"),
        },
    )
    return settings.model_copy(update={"site": f"sec{free_port()}"})  # its own cycler topics


async def test_the_simulator_and_ingest_with_default_security_trust_each_other_and_data_flows(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, caplog: pytest.LogCaptureFixture
) -> None:
    from connectors.opcua import trust
    from plant.runtime import running

    settings = _paired(tmp_path, mosquitto, influxd)
    assert (settings.opcua.security_mode, settings.plant.opcua_security_modes) == (
        "SignAndEncrypt",
        ["SignAndEncrypt"],
    )
    async with running(settings):
        service = IngestService(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await wait_for(
            lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="SignAndEncrypt session"
        )
        await wait_for(lambda: count(influxd, settings.influx.database) >= 20, what="20 points")
        stop.set()
        await task
    own = tmp_path / "pki" / "own"
    assert (own / "linetwin-ingest.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pki-sim" / "own" / "linetwin-sim.pem").stat().st_mode & 0o777 == 0o600
    assert "OPC UA client certificate created" in caplog.text
    assert str(own / "linetwin-ingest.der") in caplog.text, "the log names the certificate to hand over"
    server = trust.load(tmp_path / "pki-sim" / "own" / "linetwin-sim.der")
    client = trust.load(own / "linetwin-ingest.der")
    assert [(e.state, e.thumbprint) for e in trust.listed(tmp_path / "pki")] == [
        ("trusted", trust.thumbprint(server))
    ]
    assert [(e.state, e.thumbprint) for e in trust.listed(tmp_path / "pki-sim")] == [
        ("trusted", trust.thumbprint(client))
    ]


async def test_the_simulator_refuses_a_client_it_does_not_trust_until_an_engineer_trusts_it(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, pki: dict[str, Path]
) -> None:
    """A client certificate other than the paired ingest's is refused and kept in the simulator's
    rejected/; `twin certs trust` on the simulator's PKI folder lets it in."""
    from connectors.opcua import trust
    from plant.runtime import running

    settings = _paired(
        tmp_path, mosquitto, influxd, certificate=str(pki["rogue_cert"]), private_key=str(pki["rogue_key"])
    )
    settings.plant.opcua_pair_with_ingest = False
    simulator = tmp_path / "pki-sim"
    async with running(settings):
        trust.trust(settings.opcua.pki_dir, str(simulator / "own" / "linetwin-sim.der"))  # the client side
        with pytest.raises(OpcUaRefused, match=r"BadCertificateUntrusted.*server must trust"):
            await asyncio.wait_for(IngestService(settings).run(), 30)
        [entry] = trust.listed(simulator)
        rogue = trust.thumbprint(trust.load(pki["rogue_cert"]))
        assert (entry.state, entry.thumbprint) == ("rejected", rogue)
        trust.trust(simulator, entry.thumbprint)
        service = IngestService(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        await wait_for(lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="session")
        stop.set()
        await task


async def test_a_client_without_security_gets_no_session_on_the_default_simulator(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest configured without security is told the server offers no such endpoint; a client that
    skips its own endpoint check (asyncua would let it open a session on the unsecured discovery
    channel) is refused by the server itself."""
    from asyncua import Client, ua

    from plant.runtime import running

    settings = _paired(tmp_path, mosquitto, influxd, security_policy="None", security_mode="None")
    async with running(settings):
        with pytest.raises(OpcUaRefused, match="offers no endpoint without security"):
            await asyncio.wait_for(IngestService(settings).run(), 30)

        def any_endpoint(endpoints: object, mode: ua.MessageSecurityMode, uri: str) -> ua.EndpointDescription:
            anonymous = ua.UserTokenPolicy(PolicyId="anonymous", TokenType=ua.UserTokenType.Anonymous)
            return ua.EndpointDescription(
                SecurityMode=mode, SecurityPolicyUri=uri, UserIdentityTokens=[anonymous]
            )

        monkeypatch.setattr(Client, "find_endpoint", staticmethod(any_endpoint))
        with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
            async with Client(settings.plant.opcua_endpoint, timeout=5) as bare:
                await bare.nodes.objects.get_children()


async def test_the_twin_pushes_a_setpoint_to_the_default_simulator_over_sign_and_encrypt(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    """The twin's setpoint push connects with the ``[opcua]`` security, so a plant that only takes
    signed and encrypted sessions takes the push."""
    from asyncua import Client

    from connectors.opcua.security import configure
    from core import linedesc
    from plant.runtime import running
    from twin.setpoints import NAMESPACE_URI, push_setpoints

    settings = _paired(tmp_path, mosquitto, influxd)
    async with running(settings):
        endpoint = settings.plant.opcua_endpoint
        await push_setpoints(endpoint, {"pump_flow": 85.0}, "ana", linedesc.load(None), settings.opcua)
        reader = Client(endpoint, timeout=5)
        await configure(reader, settings.opcua)
        async with reader:
            index = await reader.get_namespace_index(NAMESPACE_URI)
            node = reader.get_node(f"ns={index};s=coater1.pump_flow_setpoint")
            assert await node.read_value() == 85.0
