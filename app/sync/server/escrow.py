"""Per-device escrow keys: the server's half of a vault's escrow key slot.

``create`` (a normal session) makes 32 random bytes for the calling device, stores them
sealed under a key derived from the server secret (``crypto.seal_escrow``, bound to the
account and device ids) and returns them once; calling again replaces them. The client
does not wrap its database key with these bytes alone: it combines them with a key
derived from the account master key (docs/PROTOCOL.md, "Devices, orders and escrow"), so
what the server holds cannot open a stolen vault without the account password.

``release`` returns the key again, only to the device itself (its control token), only
with full re-authentication in the same request (``login.verify_owner``: signed fresh
challenge + TOTP or a recovery code, same counters and lockout as a login), and only
while the device is ``active`` (a lost device is refused; one the owner restored is
active again). Release is a login: it also opens a session and rotates the control
token, so the restoring client needs one TOTP code, not two.

Invariants: the plaintext escrow key exists only in the response; the device state is
checked under the device's row lock in the transaction that consumes the second factor;
a wipe order or a removal deletes the row.
"""

from __future__ import annotations

from app.sync import protocol
from app.sync.server import crypto, devices, login, sessions
from app.sync.server.context import ServerContext
from app.sync.server.db import Tx
from app.sync.server.devices import DeviceCaller
from app.sync.server.schemas import ReauthIn
from app.sync.server.sessions import Principal


def create(ctx: ServerContext, principal: Principal) -> protocol.EscrowKeyResponse:
    """A new escrow key for the calling device (replacing any older one)."""
    key = crypto.random_bytes(protocol.ESCROW_KEY_BYTES)
    sealed = crypto.seal_escrow(ctx.secret, principal.account_id, principal.device_id, key)
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        devices.require_usable(tx, principal.account_id, principal.device_id)
        tx.execute(
            """INSERT INTO escrow_keys (account_id, device_id, sealed, created_at)
            VALUES (?, ?, ?, ?)
            ON CONFLICT (account_id, device_id) DO UPDATE SET
                sealed = excluded.sealed, created_at = excluded.created_at""",
            (principal.account_id, principal.device_id, sealed, now),
        )
    return {"escrow_key": protocol.b64encode(key), "created_at": protocol.format_time(now)}


def _state_and_escrow(tx: Tx, caller: DeviceCaller, *, lock: bool) -> tuple[bytes, int]:
    """The sealed key and its creation time. Raises DeviceLostError / DeviceRemovedError
    for a device that is not active, ResourceNotFoundError when it has no escrow key."""
    select = tx.one_for_update if lock else tx.one
    row = select(
        "SELECT state FROM devices WHERE account_id = ? AND id = ?",
        (caller.account_id, caller.device_id),
    )
    if row is None:
        raise protocol.UnauthorizedError()
    devices.raise_for_state(str(row[0]))
    escrow = tx.one(
        "SELECT sealed, created_at FROM escrow_keys WHERE account_id = ? AND device_id = ?",
        (caller.account_id, caller.device_id),
    )
    if escrow is None:
        raise protocol.ResourceNotFoundError("this device has no escrow key")
    return bytes(escrow[0]), int(escrow[1])


def release(
    ctx: ServerContext, caller: DeviceCaller, reauth: ReauthIn, client_ip: str
) -> protocol.EscrowReleaseResponse:
    """The device's escrow key, plus a new session and control token. Raises
    DeviceLostError / DeviceRemovedError, ResourceNotFoundError (no escrow key), and what
    ``login.verify_owner`` raises."""
    # Checked first, before any credential: a lost device cannot even try (and so cannot
    # be used to guess the password through this route).
    with ctx.db.transaction(write=False) as tx:
        _state_and_escrow(tx, caller, lock=False)
    now = ctx.now_ms()

    def release_in(tx: Tx, account_id: str) -> protocol.EscrowReleaseResponse:
        if account_id != caller.account_id:
            raise protocol.UnauthorizedError()
        sealed, created_at = _state_and_escrow(tx, caller, lock=True)
        key = crypto.open_escrow(ctx.secret, caller.account_id, caller.device_id, sealed)
        if key is None:
            raise RuntimeError("a stored escrow key does not authenticate")
        control = devices.rotate_control_token(tx, caller.account_id, caller.device_id)
        tokens = sessions.open_session(ctx, tx, caller.account_id, caller.device_id, now_ms=now)
        return {
            "escrow_key": protocol.b64encode(key),
            "created_at": protocol.format_time(created_at),
            "session": {**tokens, "control_token": control},
        }

    username = devices.account_username(ctx, caller.account_id)
    creds = login.Credentials(
        reauth.challenge_id, reauth.signature, reauth.totp, reauth.recovery_code
    )
    return login.verify_owner(ctx, username, creds, client_ip, release_in, now_ms=now)
