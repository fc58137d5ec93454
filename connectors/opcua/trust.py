"""The OPC UA client's trust store: the servers it accepts, and those it refused, for an engineer to review.

``<opcua.pki_dir>/trusted`` holds the server (or CA) certificates ingest trusts, ``<pki_dir>/rejected``
the ones it was shown and refused, each file named by the certificate's SHA-1 thumbprint as OPC UA tools
show it. A server whose certificate is not pinned (``opcua.server_certificate``) is checked against it
by asyncua's own ``CertificateValidator`` and ``TrustStore`` (validity period, application URI, key
usage, trust and revocation); a refused certificate lands in ``rejected/`` and ``twin certs trust`` moves
it to ``trusted/``. What is written here is only the folder bookkeeping asyncua leaves to its user.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.errors import ConfigError

TRUSTED, REJECTED = "trusted", "rejected"
Validator = Callable[[x509.Certificate, ua.ApplicationDescription], Awaitable[None]]


class ServerUntrusted(ServiceError):
    """This client refused the server's certificate (not the server this client's)."""


def folders(pki_dir: Path) -> tuple[Path, Path]:
    trusted, rejected = pki_dir / TRUSTED, pki_dir / REJECTED
    for folder in (trusted, rejected):
        folder.mkdir(parents=True, exist_ok=True)
    return trusted, rejected


def thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex()


def load(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return (
        x509.load_pem_x509_certificate(data)
        if data.startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )


async def validator(pki_dir: Path) -> Validator:
    """The check of a server's certificate against the trust store; a refused one is kept in rejected/."""
    trusted, rejected = folders(pki_dir)
    store = TrustStore([trusted], [])
    if any(trusted.iterdir()):
        await store.load()
    options = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_SERVER
    check = CertificateValidator(options, store)

    async def validate(certificate: x509.Certificate, server: ua.ApplicationDescription) -> None:
        try:
            if not any(trusted.iterdir()):
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
            await check(certificate, server)
        except ServiceError as refused:
            (rejected / f"{thumbprint(certificate)}.der").write_bytes(certificate.public_bytes(Encoding.DER))
            raise ServerUntrusted(refused.code) from refused

    return validate


@dataclass(frozen=True, slots=True)
class Entry:
    state: str
    thumbprint: str
    subject: str
    not_after: datetime
    path: Path


def listed(pki_dir: Path) -> list[Entry]:
    """Every certificate in trusted/ and rejected/."""
    entries = []
    for state, folder in zip((TRUSTED, REJECTED), folders(pki_dir), strict=True):
        for path in sorted(folder.iterdir()):
            try:
                cert = load(path)
            except ValueError:
                continue
            entries.append(
                Entry(state, thumbprint(cert), cert.subject.rfc4514_string(), cert.not_valid_after_utc, path)
            )
    return entries


def _move(pki_dir: Path, name: str, to: str) -> Path:
    """Move the certificate ``name`` (a thumbprint, or a file to import) into folder ``to``."""
    trusted, rejected = folders(pki_dir)
    target = trusted if to == TRUSTED else rejected
    given = Path(name)
    if given.is_file():
        cert = load(given)
        path = target / f"{thumbprint(cert)}.der"
        path.write_bytes(cert.public_bytes(Encoding.DER))
        return path
    for entry in listed(pki_dir):
        if entry.thumbprint.startswith(name.lower()):
            path = target / f"{entry.thumbprint}.der"
            if entry.path != path:
                path.write_bytes(entry.path.read_bytes())
                entry.path.unlink()
            return path
    raise ConfigError(
        f"no certificate {name!r} in {pki_dir}: give a thumbprint `twin certs list` shows, or a file"
    )


def trust(pki_dir: Path, name: str) -> Path:
    return _move(pki_dir, name, TRUSTED)


def reject(pki_dir: Path, name: str) -> Path:
    return _move(pki_dir, name, REJECTED)


def create(directory: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A self-signed client certificate (DER) and its key (PEM) for ``uri``, as the client's identity."""
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    names = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName(socket.gethostname()),
        x509.DNSName("localhost"),
    ]
    cert = generate_self_signed_app_certificate(
        key, name, {"organizationName": "linetwin"}, names, [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path
