"""Dependencies shared by the routers: the engine, the what-if models and token authentication.

With ``twin.api_token`` set, every change (acknowledge, shelve, saved what-if runs) needs
``Authorization: Bearer <token>``; reads need it too unless ``twin.read_only_without_token``.
Without a token configured the API is open (local demo), and the service logs that at start.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.linedesc import LineDescription
from core.settings import Settings
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


def _token_ok(twin: Twin, credentials: HTTPAuthorizationCredentials | None) -> bool:
    """A request with the configured token; without one configured, only on an explicitly insecure twin
    (secure by default: no token set must not mean every change is open)."""
    expected = twin.settings.twin.api_token
    if expected is None:
        return twin.settings.twin.insecure
    return credentials is not None and secrets.compare_digest(
        credentials.credentials.encode(), expected.get_secret_value().encode()
    )


def authenticated(
    twin: Annotated[Twin, Depends(get_twin)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    return _token_ok(twin, credentials)


def require_writer(
    twin: Annotated[Twin, Depends(get_twin)], authorised: Annotated[bool, Depends(authenticated)]
) -> None:
    if twin.settings.twin.api_token is None and not authorised:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this twin accepts no changes: it has no API token (set twin.api_token, or start it with "
            "--insecure on a machine of your own)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not authorised:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this change needs the API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


def require_reader(
    twin: Annotated[Twin, Depends(get_twin)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Reads are open when configured so, but a wrong token is refused rather than ignored."""
    authorised = _token_ok(twin, credentials)
    if credentials is not None and not authorised and twin.settings.twin.api_token is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "the API token is wrong", headers={"WWW-Authenticate": "Bearer"}
        )
    if not authorised and not twin.settings.twin.read_only_without_token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "reading needs the API token: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


TwinDep = Annotated[Twin, Depends(get_twin)]
