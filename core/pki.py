"""OPC UA application instance certificates (OPC UA Part 6, 6.2.2): self-signed, made once, then kept.

Both ends of linetwin's OPC UA use them: ``twin ingest``'s client identity (``connectors.opcua.trust``)
and the simulator's server (``plant.opcua_security``). A certificate names the application's URI, which
must equal the ApplicationUri it announces (Part 4, 5.4.2.2), this host and ``localhost``, and the
extended key usage of its role. It is kept, not made per run: the peer's administrator trusts it once.
Its key is written readable by its owner only (``core.secretfiles``).
"""

from __future__ import annotations

import fcntl
import socket
from pathlib import Path

from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from core.errors import ConfigError
from core.secretfiles import write_atomic, write_private
from core.settings import OpcUaSettings

#: a PKI folder's parts: its own identity, the peers it trusts, those it refused (for review)
OWN, TRUSTED, REJECTED = "own", "trusted", "rejected"
#: the identity ``twin ingest`` uses when ``opcua.certificate`` is unset: file name and ApplicationUri
INGEST_NAME, INGEST_URI = "linetwin-ingest", "urn:linetwin:ingest"


def ingest_identity(settings: OpcUaSettings) -> tuple[Path, Path]:
    """Where ``twin ingest``'s certificate and key are: ``opcua.certificate``/``private_key`` when set,
    else the default identity in ``<pki_dir>/own`` (which may not exist yet)."""
    if (settings.certificate is None) != (settings.private_key is None):
        raise ConfigError("set both opcua.certificate and opcua.private_key, or neither (then pki_dir/own)")
    if settings.certificate is not None and settings.private_key is not None:
        return settings.certificate, settings.private_key
    return paths(settings.pki_dir / OWN, INGEST_NAME)


def paths(directory: Path, name: str) -> tuple[Path, Path]:
    """Where the certificate (DER) and the key (PEM) called ``name`` live in ``directory``."""
    return directory / f"{name}.der", directory / f"{name}.pem"


def folders(pki_dir: Path) -> tuple[Path, Path]:
    """``trusted/`` and ``rejected/`` of ``pki_dir``, made when missing."""
    trusted, rejected = pki_dir / TRUSTED, pki_dir / REJECTED
    for folder in (trusted, rejected):
        folder.mkdir(parents=True, exist_ok=True)
    return trusted, rejected


def create(directory: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
    """A new self-signed certificate and key for ``uri``, replacing any of that name in ``directory``."""
    key = generate_private_key()
    names = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
    ]
    cert = generate_self_signed_app_certificate(key, name, {"organizationName": "linetwin"}, names, [usage])
    cert_path, key_path = paths(directory, name)
    write_private(key_path, dump_private_key_as_pem(key))
    write_atomic(cert_path, cert.public_bytes(Encoding.DER), 0o644)
    return cert_path, key_path


def identity(directory: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path, bool]:
    """The certificate and key ``name`` in ``directory``, made now when either is missing (then the third
    item is True). Processes starting together (ingest partitions) make one identity, not one each. A
    folder it cannot write is a ``ConfigError``, not a connection problem to retry."""
    cert, key = paths(directory, name)
    if cert.is_file() and key.is_file():
        return cert, key, False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cert.is_file() and key.is_file():
                return cert, key, False
            create(directory, name, uri, usage)
    except OSError as exc:
        raise ConfigError(f"cannot make the OPC UA certificate {cert}: {exc.strerror or exc}") from None
    return cert, key, True


def load(path: Path) -> x509.Certificate:
    """A certificate from a DER or PEM file."""
    data = path.read_bytes()
    return (
        x509.load_pem_x509_certificate(data)
        if data.startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-1 thumbprint OPC UA tools show a certificate by (Part 6, 6.2.3)."""
    return certificate.fingerprint(hashes.SHA1()).hex()
