"""The console's login (see :mod:`appliance.api.auth`); one method per path.

* ``GET /api/session`` (open): whether this browser is signed in and whether reads need it, and where the
  token is, so the first visit can say so;
* ``POST /api/login {"token": ...}``: a right token sets the ``HttpOnly``, ``SameSite=Strict`` session
  cookie (204); a wrong one is a 401 after a short pause (guessing stays slow);
* ``POST /api/logout``: signs out (the cookie is removed).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from appliance.api.access import signed_in
from appliance.api.auth import COOKIE

router = APIRouter(prefix="/api", tags=["session"])
WRONG_TOKEN_DELAY_S = 0.5
SESSION_DAYS = 30
#: where the token is, for the first visit (the page shows it as text). ``boot_partition``: the SD image
#: writes a copy of the token on first boot to that file on its FAT boot partition (labelled LWBOOT), readable
#: on the computer that flashed the card; a token written there instead is applied at the next boot.
WHERE = {
    "file": "/var/lib/layerwatch/api_token",
    "command": "sudo cat /var/lib/layerwatch/api_token",
    "credential": "/etc/layerwatch/credentials/api_token",
    "sd_card": "credentials/api_token",
    "boot_partition": "layerwatch-token.txt on the SD card's boot partition (LWBOOT)",
}


class Login(BaseModel):
    token: str = Field(min_length=1, max_length=512, description="The API token.")


@router.get("/session")
def session(request: Request) -> dict[str, Any]:
    """Signed in or not (never the token), whether reads need it, and where to find the token."""
    auth = request.app.state.auth
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip()) if value else None
    return {
        "signed_in": signed_in(auth, request, credentials, control=False),
        "protect_reads": auth.protect_reads,
        "token_at": WHERE,
    }


@router.post(
    "/login", status_code=204,
    responses={400: {"description": "Malformed body"}, 401: {"description": "Wrong token"}},
)  # fmt: skip
async def sign_in(request: Request, body: Login) -> Response:
    """Check the token and set the console's session cookie (HttpOnly, SameSite=Strict)."""
    auth = request.app.state.auth
    if not auth.valid(body.token.strip()):
        await asyncio.sleep(WRONG_TOKEN_DELAY_S)
        raise HTTPException(401, "wrong token", headers={"WWW-Authenticate": "Bearer"})
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE, auth.session(), max_age=SESSION_DAYS * 86400, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout", status_code=204)
def sign_out() -> Response:
    """Remove the session cookie."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
