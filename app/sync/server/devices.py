"""The device registry: registration, states, the device list, control tokens, removal.

A device is registered at sign-up and at every login (id, name, public key). Its state
is one of ``active``, ``lost`` (a lock or wipe order is pending), ``locked`` / ``wiped``
(the device acknowledged the order), ``removed`` (the owner removed it; final). Orders
are ``orders.py``; escrow keys ``escrow.py``.

The **control token** is a second, per-device credential: 32 random bytes issued at every
registration (sign-up, login, escrow release), stored as its SHA-256, never expiring,
rotated by the next registration, and surviving session revocation. It is good only for
the device's own order and escrow-release routes, so a device whose sessions were
revoked (or whose vault is locked, so it cannot reach its refresh token) can still learn
of an order and report that it took effect.

Invariants:
- only an ``active`` device can hold a session or log in: login and escrow release call
  ``require_usable`` under a row lock (``FOR UPDATE`` on PostgreSQL, the single writer on
  SQLite), the same lock an order takes, so a login racing a lock order can never leave
  a live session behind; ``sessions.authenticate`` also refuses a non-active device;
- every query is scoped by the caller's account; a device of another account is 404;
- a control token never authenticates anything but the routes above, and a bearer token
  never authenticates those.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sync import protocol
from app.sync.server import crypto, sessions
from app.sync.server.context import ServerContext
from app.sync.server.db import Row, Tx
from app.sync.server.schemas import DeviceIn, ReauthIn
from app.sync.server.sessions import Principal

ACTIVE, LOST, LOCKED, WIPED, REMOVED = "active", "lost", "locked", "wiped", "removed"
MAX_CONTROL_TOKEN_CHARS = 256

# The device columns and its latest order (LEFT JOIN: a device may have none).
DEVICE_SELECT = """SELECT d.id, d.name, d.public_key, d.created_at, d.last_seen_at, d.state,
        o.id, o.action, o.issued_at, o.received_at, o.acked_at
    FROM devices d
    LEFT JOIN device_orders o ON o.account_id = d.account_id AND o.id = d.order_id"""


@dataclass(frozen=True, slots=True)
class DeviceCaller:
    """Who is calling with a control token: one device of one account."""

    account_id: str
    device_id: str


def upsert_device(tx: Tx, account_id: str, device: DeviceIn, *, now_ms: int) -> str:
    """Register a device, or refresh its name and public key (a device that re-keys), and
    issue it a new control token (the old one dies). Returns the token, to be shown
    once. The caller has checked ``require_usable``."""
    control = crypto.new_token()
    tx.execute(
        """INSERT INTO devices (account_id, id, name, public_key, created_at, last_seen_at,
            state, control_hash)
        VALUES (?, ?, ?, ?, ?, ?, 'active', ?)
        ON CONFLICT (account_id, id) DO UPDATE SET
            name = excluded.name,
            public_key = excluded.public_key,
            last_seen_at = excluded.last_seen_at,
            control_hash = excluded.control_hash""",
        (
            account_id,
            device.id,
            device.name,
            device.public_key,
            now_ms,
            now_ms,
            crypto.token_hash(control),
        ),
    )
    return control


def rotate_control_token(tx: Tx, account_id: str, device_id: str) -> str:
    """A new control token for an existing device (the old one dies)."""
    control = crypto.new_token()
    tx.execute(
        "UPDATE devices SET control_hash = ? WHERE account_id = ? AND id = ?",
        (crypto.token_hash(control), account_id, device_id),
    )
    return control


def raise_for_state(state: str) -> None:
    """Raises DeviceLostError (lost, locked, wiped) or DeviceRemovedError (removed)."""
    if state == REMOVED:
        raise protocol.DeviceRemovedError()
    if state != ACTIVE:
        raise protocol.DeviceLostError(
            "the account owner marked this device lost; it cannot sign in until restored"
        )


def require_usable(tx: Tx, account_id: str, device_id: str) -> None:
    """Lock the device's row and refuse a device that is not active. An unknown device
    passes (it is about to be registered)."""
    row = tx.one_for_update(
        "SELECT state FROM devices WHERE account_id = ? AND id = ?", (account_id, device_id)
    )
    if row is not None:
        raise_for_state(str(row[0]))


def authenticate_control(ctx: ServerContext, token: str | None) -> DeviceCaller:
    """The device behind a control token. Counts the request against the account's rate
    limit and refreshes the device's last-seen time (coarsely), so the owner also sees
    when a lost device last called. Raises UnauthorizedError, RateLimitedError."""
    if token is None or not token.strip() or len(token) > MAX_CONTROL_TOKEN_CHARS:
        raise protocol.UnauthorizedError(f"missing or malformed {protocol.CONTROL_TOKEN_HEADER}")
    now = ctx.now_ms()
    with ctx.db.transaction(durable=False) as tx:
        row = tx.one(
            "SELECT account_id, id, last_seen_at FROM devices WHERE control_hash = ?",
            (crypto.token_hash(token.strip()),),
        )
        if row is None:
            raise protocol.UnauthorizedError("unknown or replaced control token")
        account_id, device_id = str(row[0]), str(row[1])
        wait = sessions.note_request(ctx, tx, account_id, device_id, int(row[2]), now)
    if wait is not None:
        raise protocol.RateLimitedError(retry_after=wait)
    return DeviceCaller(account_id, device_id)


def device_entry(row: Row, current_device_id: str | None) -> protocol.Device:
    """A ``DEVICE_SELECT`` row as the wire shape."""
    order: protocol.DeviceOrderSummary | None = None
    if row[6] is not None:
        order = {
            "id": str(row[6]),
            "action": _action(str(row[7])),
            "issued_at": protocol.format_time(int(row[8])),
            "received_at": protocol.format_time(int(row[9])),
            "acked_at": None if row[10] is None else protocol.format_time(int(row[10])),
        }
    return {
        "id": str(row[0]),
        "name": str(row[1]),
        "public_key": protocol.b64encode(bytes(row[2])),
        "created_at": protocol.format_time(int(row[3])),
        "last_seen_at": protocol.format_time(int(row[4])),
        "current": str(row[0]) == current_device_id,
        "state": _state(str(row[5])),
        "order": order,
    }


def _action(value: str) -> protocol.OrderAction:
    if value == "lock":
        return "lock"
    if value == "wipe":
        return "wipe"
    if value == "restore":
        return "restore"
    raise RuntimeError("unknown order action in the database")


def _state(value: str) -> protocol.DeviceState:
    states: dict[str, protocol.DeviceState] = {
        ACTIVE: "active",
        LOST: "lost",
        LOCKED: "locked",
        WIPED: "wiped",
        REMOVED: "removed",
    }
    try:
        return states[value]
    except KeyError:
        raise RuntimeError("unknown device state in the database") from None


def list_devices(ctx: ServerContext, principal: Principal) -> list[protocol.Device]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            DEVICE_SELECT + " WHERE d.account_id = ? ORDER BY d.created_at, d.id",
            (principal.account_id,),
        )
    return [device_entry(r, principal.device_id) for r in rows]


def get_device(tx: Tx, account_id: str, device_id: str, current: str | None) -> protocol.Device:
    row = tx.one(DEVICE_SELECT + " WHERE d.account_id = ? AND d.id = ?", (account_id, device_id))
    if row is None:
        raise protocol.ResourceNotFoundError("no such device")
    return device_entry(row, current)


def account_username(ctx: ServerContext, account_id: str) -> str:
    """The username of an account (for re-authentication, which signs a challenge issued
    for it). Raises UnauthorizedError if the account is gone."""
    with ctx.db.transaction(write=False) as tx:
        row = tx.one("SELECT username FROM accounts WHERE id = ?", (account_id,))
    if row is None:
        raise protocol.UnauthorizedError()
    return str(row[0])


def remove_device(
    ctx: ServerContext, principal: Principal, device_id: str, reauth: ReauthIn, client_ip: str
) -> protocol.Device:
    """Mark another device of the account ``removed`` (final): its sessions end, its
    escrow key is deleted, and it can never sign in again. A pending lock or wipe order
    stays deliverable to it through its control token. Needs full re-authentication (a
    stolen session alone must not be able to cut the owner's other devices off).
    Raises ResourceNotFoundError (not in the caller's account), ForbiddenError (the
    calling device itself), DeviceStateError (already removed), and what
    ``login.verify_owner`` raises."""
    from app.sync.server import login  # login imports this module

    if device_id == principal.device_id:
        raise protocol.ForbiddenError("a device cannot remove itself")
    now = ctx.now_ms()
    with ctx.db.transaction(write=False) as tx:
        get_device(tx, principal.account_id, device_id, principal.device_id)

    def remove(tx: Tx, account_id: str) -> protocol.Device:
        if account_id != principal.account_id:  # the username maps to the caller's account
            raise protocol.UnauthorizedError()
        row = tx.one_for_update(
            "SELECT state FROM devices WHERE account_id = ? AND id = ?",
            (account_id, device_id),
        )
        if row is None:
            raise protocol.ResourceNotFoundError("no such device")
        if str(row[0]) == REMOVED:
            raise protocol.DeviceStateError("the device is already removed")
        tx.execute(
            "UPDATE devices SET state = ? WHERE account_id = ? AND id = ?",
            (REMOVED, account_id, device_id),
        )
        sessions.revoke_device(tx, account_id, device_id)
        tx.execute(
            "DELETE FROM escrow_keys WHERE account_id = ? AND device_id = ?",
            (account_id, device_id),
        )
        return get_device(tx, account_id, device_id, principal.device_id)

    username = account_username(ctx, principal.account_id)
    creds = login.Credentials(
        reauth.challenge_id, reauth.signature, reauth.totp, reauth.recovery_code
    )
    return login.verify_owner(ctx, username, creds, client_ip, remove, now_ms=now)
