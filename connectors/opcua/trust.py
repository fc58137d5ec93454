"""The OPC UA client's trust store: the servers it accepts, and those it refused, for an engineer to review.

``<opcua.pki_dir>/trusted`` holds the server (or CA) certificates ingest trusts, ``<pki_dir>/rejected``
the ones it was shown and refused, each file named by the certificate's SHA-1 thumbprint as OPC UA tools
show it. A server whose certificate is not pinned (``opcua.server_certificate``) is checked against it
by asyncua's own ``CertificateValidator`` and ``TrustStore`` (validity period, application URI, key
usage, trust and revocation); a refused certificate lands in ``rejected/`` and ``twin certs trust`` moves
it to ``trusted/``. What is written here is only the folder bookkeeping asyncua leaves to its user.

The client's own identity lives in ``<pki_dir>/own`` unless ``opcua.certificate`` and
``opcua.private_key`` name another: ``twin certs create`` makes it, and ``twin ingest`` makes it on its
first start when it is missing (logged with the path to hand to the server's administrator), as OPC UA
clients do at installation (Part 6, 6.2.2).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.errors import ConfigError
from core.pki import OWN, REJECTED, TRUSTED
from core.settings import OpcUaSettings

log = logging.getLogger(__name__)

#: the client identity ``twin certs create`` and a first ``twin ingest`` make: file name and ApplicationUri
CLIENT_NAME, CLIENT_URI = pki.INGEST_NAME, pki.INGEST_URI
Validator = Callable[[x509.Certificate, ua.ApplicationDescription], Awaitable[None]]


class ServerUntrusted(ServiceError):
    """This client refused the server's certificate (not the server this client's)."""


folders = pki.folders
thumbprint = pki.thumbprint
load = pki.load


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
    """A self-signed client certificate (DER) and its key (PEM, 0600) for ``uri``: the client's identity."""
    return pki.create(directory, name, uri, ExtendedKeyUsageOID.CLIENT_AUTH)


def identity(settings: OpcUaSettings) -> tuple[Path, Path]:
    """The client's certificate and key (``pki.ingest_identity``); the default one is made on first use."""
    if settings.certificate is not None or settings.private_key is not None:
        return pki.ingest_identity(settings)
    cert, key, made = pki.identity(
        settings.pki_dir / OWN, CLIENT_NAME, CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH
    )
    if made:
        log.warning(
            "OPC UA client certificate created: give %s to each server's administrator to trust "
            "(its key %s is readable by this user only)",
            cert,
            key,
            extra={"thumbprint": thumbprint(load(cert)), "uri": CLIENT_URI},
        )
    return cert, key
