"""MQTT over TLS with a password, against a real Mosquitto; refusals are clear errors with no data."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from bench.ingest_sources import CyclerSource
from connectors.mqtt.client import MqttRefused
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, start_mosquitto
from core.settings import Settings
from tests.integration.ingest_support import count, ingest_settings, wait_for

pytestmark = pytest.mark.integration

USER, PASSWORD = "cycler-ingest", "s3cret"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path, key, cert


@pytest.fixture
def pki() -> Iterator[dict[str, Path]]:
    """A CA that signed the broker's certificate (for 127.0.0.1), and a rogue CA that did not.

    In a directory others may read: Mosquitto started as root reads them as its own user."""
    directory = Path(tempfile.mkdtemp(prefix="lt-pki-"))
    directory.chmod(0o755)
    try:
        yield _make_pki(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _make_pki(directory: Path) -> dict[str, Path]:
    ca_path, ca_key, ca_cert = _authority(directory, "plant-ca")
    rogue_path, _, _ = _authority(directory, "rogue-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("broker"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "broker.crt", directory / "broker.key"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    passwords = directory / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True)
    for path in (key_path, passwords):
        path.chmod(0o644)
    return {"ca": ca_path, "rogue_ca": rogue_path, "cert": cert_path, "key": key_path, "passwords": passwords}


@pytest.fixture
def secure_broker(pki: dict[str, Path]) -> Iterator[Mosquitto]:
    broker = start_mosquitto(
        secure=(
            f"password_file {pki['passwords']}",
            f"cafile {pki['ca']}",
            f"certfile {pki['cert']}",
            f"keyfile {pki['key']}",
        )
    )
    yield broker
    broker.cleanup()


def _settings(
    tmp_path: Path, broker: Mosquitto, influxd: Influxd, ca_file: Path, password: str = PASSWORD
) -> Settings:
    tls = {"tls": True, "ca_file": str(ca_file), "username": USER, "password": password}
    return ingest_settings(tmp_path, broker, influxd, mqtt=tls, ingest={"bus_enabled": False})


def _publish(broker: Mosquitto, pki: dict[str, Path], rounds: int) -> int:
    source = CyclerSource(
        broker.host, broker.port, channels=2, signals=5, username=USER, password=PASSWORD, ca_file=pki["ca"]
    )
    for _ in range(rounds):
        source.publish_round()
    source.close()
    return source.published


async def test_ingest_over_tls_with_a_password(
    tmp_path: Path, secure_broker: Mosquitto, influxd: Influxd, pki: dict[str, Path]
) -> None:
    settings = _settings(tmp_path, secure_broker, influxd, pki["ca"])
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    published = await asyncio.to_thread(_publish, secure_broker, pki, 20)
    await wait_for(lambda: count(influxd, settings.influx.database) == published, what=f"{published} points")
    stop.set()
    await task
    assert service.accounting.total("rejected") == 0


@pytest.mark.parametrize(
    ("ca", "password", "message"),
    [
        ("ca", "wrong", r"refused the connection: (Not authorized|Bad user name or password); check mqtt\."),
        ("rogue_ca", PASSWORD, "TLS certificate is not trusted .*; check mqtt.ca_file"),
    ],
)
async def test_a_wrong_password_or_untrusted_broker_certificate_stops_ingest_with_a_clear_error_and_no_data(
    tmp_path: Path,
    secure_broker: Mosquitto,
    influxd: Influxd,
    pki: dict[str, Path],
    ca: str,
    password: str,
    message: str,
) -> None:
    settings = _settings(tmp_path, secure_broker, influxd, pki[ca], password)
    with pytest.raises(MqttRefused, match=message):
        await asyncio.wait_for(IngestService(settings).run(), 30)
    await asyncio.to_thread(_publish, secure_broker, pki, 3)
    assert count(influxd, settings.influx.database) == 0
