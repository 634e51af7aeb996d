"""FastAPI dependencies shared by the routes: the server context, the caller's IP rate
limit, bearer-token authentication, and device control-token authentication.

Invariants: a route that touches account data depends on ``Auth`` or, for the few
routes a device must reach without a session, ``Control`` (there is no other way to
learn an account id); tokens are read only from headers (``Authorization: Bearer`` and
``Tacit-Control-Token``), never from a query string (which proxies log).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.sync import protocol
from app.sync.server import devices, ratelimit, sessions
from app.sync.server.context import ServerContext
from app.sync.server.devices import DeviceCaller
from app.sync.server.sessions import Principal

MAX_TOKEN_CHARS = 256


async def get_context(request: Request) -> ServerContext:
    # async: it does no I/O, and a sync dependency would cost a thread hop per request.
    ctx = request.app.state.ctx
    if not isinstance(ctx, ServerContext):
        raise RuntimeError("the app has no server context")
    return ctx


Ctx = Annotated[ServerContext, Depends(get_context)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_ip(request: Request, ctx: Ctx) -> None:
    """Count an unauthenticated auth request against the client IP's budget."""
    settings = ctx.settings
    with ctx.db.transaction(durable=False) as tx:
        wait = ratelimit.hit(
            tx,
            ctx.pseudonym("ip-requests", client_ip(request)),
            limit=settings.ip_request_limit,
            window_s=settings.ip_request_window_s,
            now_ms=ctx.now_ms(),
        )
    if wait is not None:
        raise protocol.RateLimitedError(retry_after=wait)


IpLimited = Depends(limit_ip)


def authenticate(request: Request, ctx: Ctx) -> Principal:
    header = request.headers.get("authorization")
    if header is None:
        raise protocol.UnauthorizedError("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise protocol.UnauthorizedError("malformed Authorization header")
    return sessions.authenticate(ctx, token)


Auth = Annotated[Principal, Depends(authenticate)]


def authenticate_control(
    ctx: Ctx,
    control_token: Annotated[
        str | None,
        Header(
            alias=protocol.CONTROL_TOKEN_HEADER,
            description="the device control token from sign-up, login or escrow release",
        ),
    ] = None,
) -> DeviceCaller:
    return devices.authenticate_control(ctx, control_token)


Control = Annotated[DeviceCaller, Depends(authenticate_control)]
