"""Routes for the account signing key, device orders, removal and escrow (``/v1``).

Owner-side routes (a normal session, ``Auth``): register the signing key, post a signed
order for another device, remove another device, create the calling device's escrow key.
Device-side routes (the device control token, ``Control``): fetch the pending order
(long-poll), acknowledge it, release the escrow key. Routes that demand full
re-authentication also count against the client IP like the login (``IpLimited``).

Invariant: the long-poll never blocks the event loop: each look at the database runs in
the thread pool, and the waits between looks are ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.sync import protocol
from app.sync.server import devices, escrow, orders
from app.sync.server.deps import Auth, Control, Ctx, IpLimited, client_ip
from app.sync.server.schemas import (
    DeviceOut,
    ErrorOut,
    EscrowKeyOut,
    EscrowReleaseOut,
    OkOut,
    OrderAckIn,
    ReauthIn,
    SignedOrderIn,
    SignedOrderOut,
    SigningKeyIn,
    SigningKeyOut,
)

router = APIRouter(prefix=protocol.API_PREFIX)


def _errors(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut, "description": text} for status, text in pairs}


_REAUTH_ERRORS = _errors(
    (423, "account_locked (with Retry-After)"),
)


def _uuid(value: str, what: str) -> str:
    if not protocol.is_uuid(value):
        raise protocol.InvalidRequestError(f"{what}: not a lowercase UUID")
    return value


@router.get(
    "/account/signing-key",
    response_model=SigningKeyOut,
    tags=["devices"],
    responses=_errors((409, "signing_key_missing")),
)
def get_signing_key(principal: Auth, ctx: Ctx) -> protocol.SigningKeyResponse:
    """The account signing key's registered public half (clients compare it with the
    key they derive, to notice a replaced registration)."""
    return orders.get_signing_key(ctx, principal)


@router.put(
    "/account/signing-key",
    response_model=SigningKeyOut,
    dependencies=[IpLimited],
    tags=["devices"],
    responses={**_REAUTH_ERRORS, **_errors((403, "reauth_required"))},
)
def put_signing_key(
    body: SigningKeyIn, principal: Auth, ctx: Ctx, request: Request
) -> protocol.SigningKeyResponse:
    """Register the account signing key (public half, with a proof of possession). The
    same key again is a no-op; replacing a different key needs ``reauth``."""
    return orders.set_signing_key(ctx, principal, body, client_ip(request))


@router.post(
    "/devices/{device_id}/orders",
    response_model=DeviceOut,
    tags=["devices"],
    responses=_errors(
        (403, "forbidden (own device) / order_signature_invalid"),
        (404, "not_found: no such device in the caller's account"),
        (409, "order_replayed / device_state / signing_key_missing"),
    ),
)
def post_order(device_id: str, body: SignedOrderIn, principal: Auth, ctx: Ctx) -> protocol.Device:
    """A signed lock, wipe or restore order for another device. Lock and wipe end all of
    that device's sessions at once. Returns the device as the list shows it."""
    return orders.post_order(ctx, principal, _uuid(device_id, "device id"), body)


@router.post(
    "/devices/{device_id}/remove",
    response_model=DeviceOut,
    dependencies=[IpLimited],
    tags=["devices"],
    responses={
        **_REAUTH_ERRORS,
        **_errors((403, "forbidden (own device)"), (404, "not_found"), (409, "device_state")),
    },
)
def remove_device(
    device_id: str, body: ReauthIn, principal: Auth, ctx: Ctx, request: Request
) -> protocol.Device:
    """Remove another device for good (needs full re-authentication)."""
    return devices.remove_device(
        ctx, principal, _uuid(device_id, "device id"), body, client_ip(request)
    )


@router.get(
    "/devices/self/order",
    response_model=SignedOrderOut,
    tags=["devices"],
    responses={204: {"description": "no pending order (within the wait)"}},
)
async def self_order(
    request: Request,
    caller: Control,
    ctx: Ctx,
    wait: Annotated[int, Query(ge=0, le=protocol.MAX_ORDER_WAIT_S)] = 0,
) -> Any:
    """The calling device's pending lock or wipe order, as signed by the account, or 204.
    With ``wait=N`` (≤ 25 s) the request is held until an order arrives or N seconds
    pass. Authenticated by the control token, so it works after a revocation and while
    the vault is locked."""
    deadline = time.monotonic() + wait
    interval = ctx.settings.order_poll_interval_s
    while True:
        # The database is the only channel between app processes: look, then sleep.
        order = await run_in_threadpool(orders.pending_order, ctx, caller)
        if order is not None:
            return order
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            return Response(status_code=204)
        await asyncio.sleep(min(interval, remaining))


@router.post(
    "/devices/self/order/ack",
    response_model=OkOut,
    tags=["devices"],
    responses=_errors((404, "not_found"), (409, "device_state")),
)
def ack_order(body: OrderAckIn, caller: Control, ctx: Ctx) -> protocol.OkResponse:
    """Report that the order took effect (``locked`` or ``wiped``)."""
    orders.ack_order(ctx, caller, body)
    return {"ok": True}


@router.post(
    "/devices/self/escrow",
    response_model=EscrowKeyOut,
    tags=["devices"],
)
def create_escrow(principal: Auth, ctx: Ctx) -> protocol.EscrowKeyResponse:
    """A new random escrow key for the calling device, returned once (replaces any)."""
    return escrow.create(ctx, principal)


@router.post(
    "/devices/self/escrow/release",
    response_model=EscrowReleaseOut,
    dependencies=[IpLimited],
    tags=["devices"],
    responses={
        **_REAUTH_ERRORS,
        **_errors((403, "device_lost / device_removed"), (404, "no escrow key")),
    },
)
def release_escrow(
    body: ReauthIn, caller: Control, ctx: Ctx, request: Request
) -> protocol.EscrowReleaseResponse:
    """The calling device's escrow key, with full re-authentication and the control
    token, while the device is not lost; also opens a session (release is a login)."""
    return escrow.release(ctx, caller, body, client_ip(request))
