"""Routes for health, accounts, login, sessions and devices (``/v1``).

Handlers are thin: validate (pydantic models in ``schemas``), call the owning module,
return a protocol TypedDict. Every unauthenticated route that can be used for guessing or
spamming is counted against the client IP (``IpLimited``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.sync import protocol
from app.sync.server import accounts, devices, login, sessions
from app.sync.server.deps import Auth, Ctx, IpLimited, client_ip
from app.sync.server.schemas import (
    ChallengeIn,
    ChallengeOut,
    DeviceOut,
    HealthOut,
    KdfParamsResponseOut,
    LoginIn,
    LoginOut,
    OkOut,
    RefreshIn,
    SessionTokensOut,
    SignupIn,
    SignupOut,
)

router = APIRouter(prefix=protocol.API_PREFIX)


@router.get("/health", response_model=HealthOut, tags=["meta"])
def health(ctx: Ctx) -> protocol.HealthResponse:
    """Liveness and database reachability (no authentication)."""
    with ctx.db.transaction(write=False) as tx:
        tx.one("SELECT 1")
    return {"ok": True, "version": protocol.APP_VERSION, "protocol": protocol.PROTOCOL_VERSION}


@router.post(
    "/accounts",
    status_code=201,
    response_model=SignupOut,
    dependencies=[IpLimited],
    tags=["accounts"],
)
def create_account(body: SignupIn, ctx: Ctx) -> protocol.SignupResponse:
    """Sign up. Returns the TOTP enrollment URI and ten one-time recovery codes, once."""
    return accounts.signup(ctx, body)


@router.get(
    "/auth/params", response_model=KdfParamsResponseOut, dependencies=[IpLimited], tags=["auth"]
)
def auth_params(
    ctx: Ctx, username: Annotated[str, Query(min_length=1, max_length=64)]
) -> protocol.KdfParamsResponse:
    """The KDF parameters and salt for a username (fake but stable when unknown)."""
    name = protocol.normalize_username(username)
    if protocol.USERNAME_RE.fullmatch(name) is None:
        raise protocol.InvalidRequestError("username: not a valid username")
    return accounts.kdf_params(ctx, name)


@router.post(
    "/auth/challenge", response_model=ChallengeOut, dependencies=[IpLimited], tags=["auth"]
)
def auth_challenge(body: ChallengeIn, ctx: Ctx) -> protocol.ChallengeResponse:
    """A single-use login challenge, valid for at most 60 seconds."""
    return login.create_challenge(ctx, body.username)


@router.post("/auth/login", response_model=LoginOut, dependencies=[IpLimited], tags=["auth"])
def auth_login(body: LoginIn, ctx: Ctx, request: Request) -> protocol.LoginResponse:
    """Signed challenge + TOTP (or a recovery code) → a session for the device, and a new
    device control token. 403 ``device_lost`` / ``device_removed`` for such a device."""
    return login.login(ctx, body, client_ip(request))


@router.post(
    "/auth/refresh", response_model=SessionTokensOut, dependencies=[IpLimited], tags=["auth"]
)
def auth_refresh(body: RefreshIn, ctx: Ctx) -> protocol.SessionTokens:
    """Rotate the session's tokens; the presented refresh token dies."""
    return sessions.refresh(ctx, body.refresh_token)


@router.post("/auth/logout", response_model=OkOut, tags=["auth"])
def auth_logout(principal: Auth, ctx: Ctx) -> protocol.OkResponse:
    """End the calling session."""
    sessions.logout(ctx, principal)
    return {"ok": True}


@router.get("/devices", response_model=list[DeviceOut], tags=["devices"])
def list_devices(principal: Auth, ctx: Ctx) -> list[protocol.Device]:
    """The account's registered devices, with their state and latest order."""
    return devices.list_devices(ctx, principal)
