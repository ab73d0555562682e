"""The FastAPI dependencies that enforce :mod:`appliance.api.auth`'s rules on every route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from appliance.api.auth import CONSOLE_HEADER, COOKIE, TokenAuth

bearer = HTTPBearer(auto_error=False, description="The API token (api.token or <state_dir>/api_token)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def signed_in(auth: TokenAuth, request: Request, credentials: HTTPAuthorizationCredentials | None,
              control: bool) -> bool:  # fmt: skip
    """The bearer token, or the console's session cookie (for control: with the console's header)."""
    if (
        credentials is not None
        and credentials.scheme.lower() == "bearer"
        and auth.valid(credentials.credentials)
    ):
        return True
    if not auth.valid_session(request.cookies.get(COOKIE)):
        return False
    return not control or request.headers.get(CONSOLE_HEADER) == "1"


def require(auth: TokenAuth, request: Request, credentials: HTTPAuthorizationCredentials | None,
            control: bool) -> None:  # fmt: skip
    """401 unless the request carries the token (reads: only with ``protect_reads``)."""
    if not control and not auth.protect_reads:
        return
    if signed_in(auth, request, credentials, control):
        return
    raise HTTPException(
        status_code=401, detail="a valid API token is needed", headers={"WWW-Authenticate": "Bearer"}
    )


def read_access(request: Request, credentials: Credentials) -> None:
    """Dependency of every read endpoint."""
    require(request.app.state.auth, request, credentials, control=False)


def control_access(request: Request, credentials: Credentials) -> None:
    """Dependency of every control endpoint."""
    require(request.app.state.auth, request, credentials, control=True)
