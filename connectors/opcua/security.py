"""Client security from ``[opcua]``: Basic256Sha256 Sign/SignAndEncrypt with X.509, user and password."""

from __future__ import annotations

import re
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509

from connectors.opcua import trust
from core.errors import ConfigError, LinetwinError
from core.secretfiles import check_private
from core.settings import OpcUaSettings

_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}

#: StatusCodes that mean "this client is not allowed in"; retrying cannot help, so they are not retried.
REFUSALS = frozenset(
    {
        ua.StatusCodes.BadUserAccessDenied,
        ua.StatusCodes.BadIdentityTokenInvalid,
        ua.StatusCodes.BadIdentityTokenRejected,
        ua.StatusCodes.BadSecurityChecksFailed,
        ua.StatusCodes.BadCertificateInvalid,
        ua.StatusCodes.BadCertificateUntrusted,
        ua.StatusCodes.BadCertificateRevoked,
        ua.StatusCodes.BadSecurityPolicyRejected,
        ua.StatusCodes.BadSecurityModeRejected,
    }
)


#: asyncua's ``Client.find_endpoint`` (its only sign): the server offers no endpoint of this mode and policy
_NO_ENDPOINT = re.compile(r"No matching endpoints: (\d+), \S*#(\w+)")


class OpcUaRefused(LinetwinError):
    """The server refused this client's certificate, security settings or user credentials."""


async def configure(client: Client, settings: OpcUaSettings, *, readable_key: bool = False) -> None:
    """Apply security policy, certificates and user identity to a client before it connects.

    Without ``opcua.certificate``/``private_key`` the client's identity is the one in ``pki_dir/own``, made
    on the first start (``trust.identity``). The key is refused while group or others can read it, unless
    ``readable_key`` (``allow_readable_secrets``). Without a pinned server certificate this asks the
    server for its endpoints first: one of the configured policy and mode must be among them
    (``refusal`` says so when none is).
    """
    if settings.username:
        client.set_user(settings.username)
        if settings.password:
            client.set_password(settings.password.get_secret_value())
    if settings.security_policy == "None":
        if settings.security_mode != "None":
            raise ConfigError("opcua.security_mode needs opcua.security_policy = 'Basic256Sha256'")
        return
    if settings.security_mode == "None":
        raise ConfigError("opcua.security_policy Basic256Sha256 needs security_mode Sign or SignAndEncrypt")
    for path in (settings.certificate, settings.private_key, settings.server_certificate):
        if path is not None and not path.is_file():
            raise ConfigError(f"OPC UA certificate file {path} does not exist")
    certificate, private_key = trust.identity(settings)
    check_private(private_key, "OPC UA private key", allowed=readable_key)
    client.application_uri = _application_uri(certificate) or client.application_uri
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(certificate),
        private_key=str(private_key),
        server_certificate=str(settings.server_certificate) if settings.server_certificate else None,
        mode=_MODES[settings.security_mode],
    )
    if settings.server_certificate is None:  # not pinned: the trust store decides (connectors.opcua.trust)
        client.certificate_validator = await trust.validator(settings.pki_dir)


def refusal(exc: BaseException) -> OpcUaRefused | None:
    """An ``OpcUaRefused`` when ``exc`` is the server saying no to this client, else None."""
    code = getattr(exc, "code", None)
    if isinstance(exc, ua.UaStatusCodeError) and isinstance(exc.__cause__, trust.ServerUntrusted):
        name = ua.StatusCode(ua.UInt32(exc.__cause__.code)).name
        return OpcUaRefused(
            f"the OPC UA server's certificate is not trusted ({name}): it is kept in the rejected folder; "
            "`twin certs list`, then `twin certs trust <thumbprint>` to accept it"
        )
    if isinstance(exc, ua.UaError) and (unoffered := _NO_ENDPOINT.match(str(exc))):
        mode, policy = ua.MessageSecurityMode(int(unoffered[1])).name.rstrip("_"), unoffered[2]
        wanted = "endpoint without security" if policy == "None" else f"{policy} {mode} endpoint"
        return OpcUaRefused(
            f"the OPC UA server offers no {wanted}: enable it on the server (twin sim: "
            "plant.opcua_security_modes), or set opcua.security_policy and opcua.security_mode to one "
            "it offers"
        )
    if isinstance(exc, ua.UaStatusCodeError) and code == ua.StatusCodes.BadCertificateUntrusted:
        return OpcUaRefused(
            f"OPC UA server refused the connection: {ua.StatusCode(code).name}; the server must trust this "
            "client's certificate (opcua.certificate, or the one in opcua.pki_dir/own): give it to the "
            "server's administrator (twin sim: its plant.opcua_pki_dir/trusted)"
        )
    if isinstance(exc, ua.UaStatusCodeError) and code in REFUSALS:
        return OpcUaRefused(f"OPC UA server refused the connection: {ua.StatusCode(code).name}")
    return None


def _application_uri(certificate: Path) -> str | None:
    """The client's ApplicationUri must equal the URI in its certificate (Part 4, 5.4.2.2)."""
    data = certificate.read_bytes()
    cert = (
        x509.load_pem_x509_certificate(data)
        if data.startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
