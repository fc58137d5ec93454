"""Dependencies shared by the routers: the engine, the what-if models and token authentication.

A request's ``Authorization: Bearer <token>`` is matched against ``twin.tokens`` (kept as SHA-256
hashes, each with its scopes: read, acknowledge, whatif, push, rebaseline) and ``twin.api_token`` (every
scope). Every change needs a token with its scope; reads need one with ``read`` unless
``twin.read_only_without_token``. Without any token configured every change is refused, unless the twin
was started insecure (``--insecure``, the demo on one machine): then anyone may do anything.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.linedesc import LineDescription
from core.settings import SCOPES, ApiToken, Settings
from twin.engine import TwinEngine
from twin.ports import WhatIf

_bearer = HTTPBearer(auto_error=False, description="the twin's API token (twin.api_token)")


@dataclass
class Twin:
    """What the routers reach through ``app.state.twin``."""

    settings: Settings
    engine: TwinEngine
    whatif: WhatIf | None

    @property
    def description(self) -> LineDescription:
        return self.engine.description


def get_twin(request: Request) -> Twin:
    twin: Twin = request.app.state.twin
    return twin


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _configured(twin: Twin) -> bool:
    return twin.settings.twin.api_token is not None or bool(twin.settings.twin.tokens)


def _hashed(twin: Twin, credentials: HTTPAuthorizationCredentials | None) -> ApiToken | None:
    """The ``twin.tokens`` entry the presented token hashes to, if any."""
    if credentials is None:
        return None
    digest = token_hash(credentials.credentials)
    return next((t for t in twin.settings.twin.tokens if secrets.compare_digest(digest, t.sha256)), None)


def scopes_of(twin: Twin, credentials: HTTPAuthorizationCredentials | None) -> frozenset[str] | None:
    """What the request may do: the scopes of its token; every scope on an insecure twin without tokens;
    None for a token that matches none (a wrong token is refused, not taken as no token)."""
    settings = twin.settings.twin
    if not _configured(twin):
        return frozenset(SCOPES) if settings.insecure else frozenset()
    if credentials is None:
        return frozenset()
    if settings.api_token is not None and secrets.compare_digest(
        credentials.credentials.encode(), settings.api_token.get_secret_value().encode()
    ):
        return frozenset(SCOPES)
    token = _hashed(twin, credentials)
    return frozenset(token.scopes) if token is not None else None


def _refuse(message: str, code: int = status.HTTP_401_UNAUTHORIZED) -> HTTPException:
    return HTTPException(code, message, headers={"WWW-Authenticate": "Bearer"})


def require(scope: str) -> Callable[..., None]:
    """A dependency: the request's token must carry ``scope``."""

    def check(
        twin: Annotated[Twin, Depends(get_twin)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        scopes = scopes_of(twin, credentials)
        if not _configured(twin) and not twin.settings.twin.insecure:
            raise _refuse(
                "this twin accepts no changes: it has no API token (set twin.tokens or twin.api_token, or "
                "start it with --insecure on a machine of your own)"
            )
        if scopes is None:
            raise _refuse("the API token is wrong")
        if scope not in scopes:
            if credentials is None:
                raise _refuse("this change needs the API token: Authorization: Bearer <token>")
            raise _refuse(f"this token may not {scope}", status.HTTP_403_FORBIDDEN)

    return check


def authenticated(
    twin: Annotated[Twin, Depends(get_twin)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> frozenset[str]:
    """The request's scopes (empty without a valid token), for a route that decides itself."""
    return scopes_of(twin, credentials) or frozenset()


require_writer = require("acknowledge")


def token_holder(
    twin: Annotated[Twin, Depends(get_twin)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The name of the ``twin.tokens`` entry the request's token matches (None for api_token or none)."""
    token = _hashed(twin, credentials)
    return token.name if token is not None else None


def who(by: str, holder: str | None) -> str:
    """The name a change is recorded under: as given, and the token's holder when that is someone else
    (a shared terminal's token names the terminal, the body names the person)."""
    return by if holder is None or holder == by else f"{by} (token {holder})"


HolderDep = Annotated[str | None, Depends(token_holder)]


def require_reader(
    twin: Annotated[Twin, Depends(get_twin)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Reads are open when configured so, but a wrong token is refused rather than ignored."""
    scopes = scopes_of(twin, credentials)
    if credentials is not None and scopes is None:
        raise _refuse("the API token is wrong")
    if "read" not in (scopes or frozenset()) and not twin.settings.twin.read_only_without_token:
        raise _refuse("reading needs the API token: Authorization: Bearer <token>")


TwinDep = Annotated[Twin, Depends(get_twin)]
