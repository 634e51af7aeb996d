"""Signed device orders (lock, wipe, restore) and the account signing key they verify
against.

The client derives an Ed25519 **account signing key** from the account master key
(``protocol.SIGNING_KEY_HKDF_INFO``) and registers its public half here once, proving
possession with a signature over ``protocol.signing_key_proof_message``. Replacing a
registered key with a different one needs full re-authentication in the same request.

An order is canonical JSON signed with that key (``protocol.order_message``). Devices
verify it against the public key they derive themselves, so a server cannot forge one;
the server verifies it too, against the registered key, and refuses forgeries (defence
in depth, and it keeps a compromised session from locking the owner's devices).

Checks on ``POST /v1/devices/{id}/orders``, in order: the device is in the caller's
account (else 404); it is not the calling device (``forbidden``); the order names this
account and device and a time within the allowed skew (``order_invalid``); a signing key
is registered (``signing_key_missing``); the signature verifies (``order_signature_invalid``);
the order id is new and the order is later than the device's last one (``order_replayed``);
the action is allowed in the device's state (``device_state``).

Transitions: lock: active → lost; wipe: active, lost (lock) or locked → lost, and the
escrow key is deleted; restore: lost (lock) or locked → active. Lock and wipe end all the
device's sessions in the same transaction. The device acknowledges with ``locked`` /
``wiped``; a removed device may still fetch and acknowledge a pending order.

Invariants: the device row is locked for the whole order transaction (as at login), so
orders for one device are serialized and no login can slip a session in between;
``device_orders`` keeps every accepted order id, so an id is never accepted twice.
"""

from __future__ import annotations

from app.sync import protocol
from app.sync.server import crypto, devices, login, sessions
from app.sync.server.context import ServerContext
from app.sync.server.db import Row, Tx, UniqueViolation
from app.sync.server.devices import ACTIVE, LOCKED, LOST, REMOVED, WIPED, DeviceCaller
from app.sync.server.schemas import OrderAckIn, SignedOrderIn, SigningKeyIn
from app.sync.server.sessions import Principal

_ACK_STATE = {"lock": LOCKED, "wipe": WIPED}


# --- the account signing key ----------------------------------------------------------
def get_signing_key(ctx: ServerContext, principal: Principal) -> protocol.SigningKeyResponse:
    """Raises SigningKeyMissingError when none is registered."""
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            "SELECT signing_public_key, signing_key_registered_at FROM accounts WHERE id = ?",
            (principal.account_id,),
        )
    if row is None or row[0] is None:
        raise protocol.SigningKeyMissingError()
    return {
        "public_key": protocol.b64encode(bytes(row[0])),
        "registered_at": protocol.format_time(int(row[1])),
    }


def set_signing_key(
    ctx: ServerContext, principal: Principal, req: SigningKeyIn, client_ip: str
) -> protocol.SigningKeyResponse:
    """Register the account signing key. The same key again is a no-op; a different key
    than the registered one needs ``req.reauth`` (checked as a login). Raises
    InvalidRequestError (not a key, or the proof does not verify), ReauthRequiredError,
    and what ``login.verify_owner`` raises."""
    key = req.public_key
    message = protocol.signing_key_proof_message(principal.account_id)
    if not crypto.ed25519_public_key_valid(key) or not crypto.ed25519_verify(
        key, message, req.proof
    ):
        raise protocol.InvalidRequestError(
            "proof: not a signature by public_key over the signing-key proof message"
        )
    now = ctx.now_ms()

    def store(tx: Tx, account_id: str, *, replace: bool) -> protocol.SigningKeyResponse:
        if account_id != principal.account_id:
            raise protocol.UnauthorizedError()
        row = tx.one_for_update(
            "SELECT signing_public_key, signing_key_registered_at FROM accounts WHERE id = ?",
            (account_id,),
        )
        if row is None:
            raise protocol.UnauthorizedError()
        if row[0] is not None and bytes(row[0]) == key:
            return {
                "public_key": protocol.b64encode(key),
                "registered_at": protocol.format_time(int(row[1])),
            }
        if row[0] is not None and not replace:
            raise protocol.ReauthRequiredError(
                "a different signing key is registered; replacing it needs reauth"
            )
        tx.execute(
            """UPDATE accounts SET signing_public_key = ?, signing_key_registered_at = ?
            WHERE id = ?""",
            (key, now, account_id),
        )
        return {"public_key": protocol.b64encode(key), "registered_at": protocol.format_time(now)}

    if req.reauth is None:
        with ctx.db.transaction() as tx:
            return store(tx, principal.account_id, replace=False)
    reauth = req.reauth
    creds = login.Credentials(
        reauth.challenge_id, reauth.signature, reauth.totp, reauth.recovery_code
    )
    username = devices.account_username(ctx, principal.account_id)
    return login.verify_owner(
        ctx,
        username,
        creds,
        client_ip,
        lambda tx, account_id: store(tx, account_id, replace=True),
        now_ms=now,
    )


# --- orders ---------------------------------------------------------------------------
def _check_transition(action: str, state: str, current_action: str | None) -> None:
    lost_by_lock = state == LOST and current_action == "lock"
    allowed = {
        "lock": state == ACTIVE,
        "wipe": state in (ACTIVE, LOCKED) or lost_by_lock,
        "restore": state == LOCKED or lost_by_lock,
    }[action]
    if not allowed:
        shown = f"{state} ({current_action})" if state == LOST else state
        raise protocol.DeviceStateError(f"cannot {action} a device that is {shown}")


def post_order(
    ctx: ServerContext, principal: Principal, device_id: str, req: SignedOrderIn
) -> protocol.Device:
    """Accept a signed order for another device of the caller's account and apply it.
    Raises the errors listed in the module docstring."""
    order: protocol.DeviceOrder = {
        "v": req.order.v,
        "order_id": req.order.order_id,
        "account_id": req.order.account_id,
        "device_id": req.order.device_id,
        "action": req.order.action,
        "issued_at": req.order.issued_at,
    }
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        row = tx.one_for_update(
            "SELECT state, order_id FROM devices WHERE account_id = ? AND id = ?",
            (principal.account_id, device_id),
        )
        if row is None:
            raise protocol.ResourceNotFoundError("no such device")
        if device_id == principal.device_id:
            raise protocol.ForbiddenError("a device cannot give an order to itself")
        issued = check_order_fields(ctx, order, principal.account_id, device_id, now)
        key_row = tx.one(
            "SELECT signing_public_key FROM accounts WHERE id = ?", (principal.account_id,)
        )
        if key_row is None or key_row[0] is None:
            raise protocol.SigningKeyMissingError()
        if not crypto.ed25519_verify(
            bytes(key_row[0]), protocol.order_message(order), req.signature
        ):
            raise protocol.OrderSignatureInvalidError()
        apply_order(tx, principal.account_id, device_id, row, order, issued, req.signature, now)
        return devices.get_device(tx, principal.account_id, device_id, principal.device_id)


def apply_order(
    tx: Tx,
    account_id: str,
    device_id: str,
    row: Row,
    order: protocol.DeviceOrder,
    issued: int,
    signature: bytes,
    now: int,
) -> None:
    """Queue a verified order for a device and apply its state change, inside the
    caller's transaction. ``row`` is the device's ``(state, order_id)``, read under its
    row lock (``one_for_update``); the signature was checked by the caller (against the
    account signing key, or a practice owner's key). Raises OrderReplayedError and
    DeviceStateError."""
    seen = tx.one(
        "SELECT 1 FROM device_orders WHERE account_id = ? AND id = ?",
        (account_id, order["order_id"]),
    )
    latest = tx.one(
        "SELECT MAX(issued_at) FROM device_orders WHERE account_id = ? AND device_id = ?",
        (account_id, device_id),
    )
    if seen is not None or (latest and latest[0] is not None and issued <= int(latest[0])):
        raise protocol.OrderReplayedError()
    current = (
        None
        if row[1] is None
        else tx.one(
            "SELECT action FROM device_orders WHERE account_id = ? AND id = ?",
            (account_id, str(row[1])),
        )
    )
    state, current_action = str(row[0]), None if current is None else str(current[0])
    if state == REMOVED:
        raise protocol.DeviceStateError("the device was removed")
    _check_transition(order["action"], state, current_action)
    try:
        tx.execute(
            """INSERT INTO device_orders (account_id, id, device_id, action, issued_at,
                signature, received_at, acked_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, NULL)""",
            (
                account_id,
                order["order_id"],
                device_id,
                order["action"],
                issued,
                signature,
                now,
            ),
        )
    except UniqueViolation:  # pragma: no cover - the row lock makes this a lost race
        raise protocol.OrderReplayedError() from None
    new_state = ACTIVE if order["action"] == "restore" else LOST
    tx.execute(
        "UPDATE devices SET state = ?, order_id = ? WHERE account_id = ? AND id = ?",
        (new_state, order["order_id"], account_id, device_id),
    )
    if order["action"] in ("lock", "wipe"):
        sessions.revoke_device(tx, account_id, device_id)
    if order["action"] == "wipe":
        # Wipe is a crypto-shred: the server's half of the escrow slot goes too.
        tx.execute(
            "DELETE FROM escrow_keys WHERE account_id = ? AND device_id = ?",
            (account_id, device_id),
        )


def check_order_fields(
    ctx: ServerContext, order: protocol.DeviceOrder, account_id: str, device_id: str, now: int
) -> int:
    """The order's issued_at in ms. Raises OrderInvalidError."""
    if order["account_id"] != account_id or order["device_id"] != device_id:
        raise protocol.OrderInvalidError("the order is for another account or device")
    try:
        protocol.canonical_order(order)
        issued = protocol.parse_time(order["issued_at"])
    except (ValueError, OverflowError):
        raise protocol.OrderInvalidError("issued_at: not a time as format_time writes it") from None
    if issued < now - protocol.ORDER_MAX_AGE_S * 1000:
        raise protocol.OrderInvalidError("the order was issued too long ago")
    if issued > now + protocol.ORDER_MAX_FUTURE_S * 1000:
        raise protocol.OrderInvalidError("the order is dated in the future")
    return issued


def pending_order(ctx: ServerContext, caller: DeviceCaller) -> protocol.SignedOrder | None:
    """The device's pending (not yet acknowledged) lock or wipe order, as signed, or None.
    A read-only transaction: cheap enough to poll."""
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            """SELECT o.id, o.action, o.issued_at, o.signature FROM devices d
            JOIN device_orders o ON o.account_id = d.account_id AND o.id = d.order_id
            WHERE d.account_id = ? AND d.id = ? AND o.acked_at IS NULL
                AND o.action IN ('lock', 'wipe')""",
            (caller.account_id, caller.device_id),
        )
    if row is None:
        return None
    action = str(row[1])
    return {
        "order": {
            "v": protocol.ORDER_VERSION,
            "order_id": str(row[0]),
            "account_id": caller.account_id,
            "device_id": caller.device_id,
            "action": "lock" if action == "lock" else "wipe",
            "issued_at": protocol.format_time(int(row[2])),
        },
        "signature": protocol.b64encode(bytes(row[3])),
    }


def ack_order(ctx: ServerContext, caller: DeviceCaller, req: OrderAckIn) -> None:
    """Record that the device's order took effect. Repeating an acknowledgement is a
    no-op. Raises ResourceNotFoundError (no such order for this device) and
    DeviceStateError (not the device's current order, or the state does not match its
    action)."""
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        row = tx.one_for_update(
            """SELECT d.state, d.order_id, o.action, o.acked_at FROM devices d
            JOIN device_orders o ON o.account_id = d.account_id AND o.device_id = d.id
            WHERE d.account_id = ? AND d.id = ? AND o.id = ?""",
            (caller.account_id, caller.device_id, req.order_id),
        )
        if row is None:
            raise protocol.ResourceNotFoundError("no such order for this device")
        state, current_id, action, acked_at = str(row[0]), str(row[1]), str(row[2]), row[3]
        expected = _ACK_STATE.get(action)
        if current_id != req.order_id or expected != req.state:
            raise protocol.DeviceStateError(
                "that is not the device's current order, or not what it asked for"
            )
        if acked_at is not None:
            return
        tx.execute(
            "UPDATE device_orders SET acked_at = ? WHERE account_id = ? AND id = ?",
            (now, caller.account_id, req.order_id),
        )
        if state != REMOVED:
            tx.execute(
                "UPDATE devices SET state = ? WHERE account_id = ? AND id = ?",
                (req.state, caller.account_id, caller.device_id),
            )
