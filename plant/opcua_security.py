"""The simulator's OPC UA security: Basic256Sha256 endpoints, its own certificate, the clients it trusts.

``twin sim`` offers the endpoints of ``plant.opcua_security_modes``: Basic256Sha256 SignAndEncrypt by
default, Sign when listed, and None (no signing, no encryption) only when listed, as ``twin demo`` does.
Its application instance certificate and key are in ``<plant.opcua_pki_dir>/own``, made on the first
start and kept. A client is let in when its certificate is in ``<opcua_pki_dir>/trusted`` and passes
asyncua's ``CertificateValidator`` (validity, application URI, key usage, client role); a refused one is
kept in ``rejected/``, from where ``LINETWIN_OPCUA__PKI_DIR=<opcua_pki_dir> twin certs trust <thumbprint>``
moves it.

Paired with the ingest of the same settings (``plant.opcua_pair_with_ingest``, the default), the simulator
does for both sides what an engineer does with ``twin certs trust`` for a real server: it trusts the
ingest's client certificate (``opcua.certificate``, or the default one in ``opcua.pki_dir/own`` once
ingest has made it) by copying it into its trusted/, and puts its own certificate into
``opcua.pki_dir/trusted`` before it listens. Every check on either side stays the real one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import (
    CertificateValidator,
    CertificateValidatorMethod,
    CertificateValidatorOptions,
)
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.secretfiles import check_private, write_atomic
from core.settings import OpcUaSettings, Settings

log = logging.getLogger(__name__)

#: the simulator's certificate: file name in own/, and the ApplicationUri it carries and announces
SERVER_NAME, SERVER_URI = "linetwin-sim", "urn:linetwin:sim"
_POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class ServerSecurity:
    """What a simulated server offers and trusts (see module)."""

    modes: tuple[str, ...]
    pki_dir: Path = Path("var/pki-sim")
    #: the ingest this server pairs with: it trusts that client and is put into that trust store
    ingest: OpcUaSettings | None = None
    readable_key: bool = False

    @classmethod
    def of(cls, settings: Settings) -> ServerSecurity:
        plant = settings.plant
        return cls(
            tuple(plant.opcua_security_modes),
            plant.opcua_pki_dir,
            settings.opcua if plant.opcua_pair_with_ingest else None,
            settings.allow_readable_secrets,
        )

    @property
    def secure(self) -> bool:
        return any(mode != "None" for mode in self.modes)


#: no signing, no encryption: the demo's, and tests' that read the address space with a bare client
OPEN = ServerSecurity(("None",))


async def apply_security(server: Server, security: ServerSecurity) -> None:
    """Set ``server``'s endpoints, certificate and client check; call after ``init``, before ``start``."""
    server.set_security_policy([_POLICIES[mode] for mode in dict.fromkeys(security.modes)])
    if not security.secure:
        return
    if security.ingest is not None:
        pki.ingest_identity(security.ingest)  # half an identity configured: an error now, not per session
    cert, key, made = pki.identity(
        security.pki_dir / pki.OWN, SERVER_NAME, SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH
    )
    check_private(key, "OPC UA private key", allowed=security.readable_key)
    certificate = pki.load(cert)
    if made:
        log.info(
            "OPC UA server certificate created",
            extra={"certificate": str(cert), "thumbprint": pki.thumbprint(certificate)},
        )
    await server.set_application_uri(SERVER_URI)
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    server.set_certificate_validator(_client_check(security))
    server.set_identity_tokens([ua.AnonymousIdentityToken])  # no users: the channel's certificate decides
    server.iserver.set_user_manager(_ChannelCertificates("None" in security.modes))
    if security.ingest is not None:
        _put(certificate, security.ingest.pki_dir, "server certificate put into the ingest's trust store")


class _ChannelCertificates(UserManager):
    """Sessions only on a secure channel (one with the client's certificate) unless None is offered.

    asyncua opens an unsecured channel for GetEndpoints whatever endpoints are offered, and would let a
    client that skips its own endpoint check create and activate a session on it: the endpoint list alone
    does not keep None out.
    """

    def __init__(self, none_offered: bool) -> None:
        self.none_offered = none_offered

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if not certificate and not self.none_offered:  # an unsecured channel has b"" for a certificate
            log.warning("OPC UA session on an unsecured channel refused: only signed endpoints are offered")
            return None
        return User(role=UserRole.User)


def _client_check(security: ServerSecurity) -> CertificateValidatorMethod:
    """A client's certificate against trusted/ (read afresh each session); a refused one is kept."""
    trusted, rejected = pki.folders(security.pki_dir)
    options = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT

    async def validate(certificate: x509.Certificate, client: ua.ApplicationDescription) -> None:
        if security.ingest is not None:
            _trust_ingest(security.ingest, security.pki_dir)
        store = TrustStore([trusted], [])
        try:
            if not any(path.suffix in (".der", ".pem") for path in trusted.iterdir()):
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)
            await store.load()
            await CertificateValidator(options, store)(certificate, client)
        except ServiceError as refused:
            thumbprint = pki.thumbprint(certificate)
            write_atomic(rejected / f"{thumbprint}.der", certificate.public_bytes(Encoding.DER), 0o644)
            log.warning(
                "OPC UA client refused (%s), kept in %s; to accept it: "
                "LINETWIN_OPCUA__PKI_DIR=%s twin certs trust %s",
                ua.StatusCode(ua.UInt32(refused.code)).name,
                rejected,
                security.pki_dir,
                thumbprint[:12],
                extra={"uri": client.ApplicationUri},
            )
            raise

    return validate


def _trust_ingest(ingest: OpcUaSettings, pki_dir: Path) -> None:
    """Trust the paired ingest's client certificate, once it exists."""
    cert, _ = pki.ingest_identity(ingest)
    try:
        certificate = pki.load(cert)
    except (OSError, ValueError):
        return
    _put(certificate, pki_dir, "trusting the ingest's client certificate")


def _put(certificate: x509.Certificate, pki_dir: Path, what: str) -> None:
    """``certificate`` into ``pki_dir``'s trusted/ (out of its rejected/), as ``twin certs trust`` does."""
    trusted, rejected = pki.folders(pki_dir)
    name = f"{pki.thumbprint(certificate)}.der"
    (rejected / name).unlink(missing_ok=True)
    if not (trusted / name).is_file():
        write_atomic(trusted / name, certificate.public_bytes(Encoding.DER), 0o644)
        log.info(what, extra={"certificate": str(trusted / name)})
