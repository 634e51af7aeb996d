"""Removing a member from a practice (docs/PRACTICE.md "Offboarding").

One transaction: queue the owner-signed lock (or wipe) orders for the member's devices,
mark the member removed, delete every grant they held, and end every session of their
account. The answer names the collections they held, which the owner's client rotates
next.

Invariants:
- only the owner removes, never themselves; the member must be pending or active;
- each order names the member's account and one of its devices, is fresh (the same
  checks as ``orders.post_order``), and verifies against the practice owner's signing
  key over ``protocol.order_message`` (the member's vault trusts that key for orders);
  it is then queued exactly as an account's own order is (``orders.apply_order``),
  except that a lock for a device that is no longer active (already lost, locked, wiped
  or removed) is verified but not queued: it is moot, and refusing it would make a
  member with a lost device impossible to remove (``orders_queued`` counts the queued);
- any refusal rolls everything back: a member is never half removed;
- device control tokens survive, so the lock orders reach the devices over the control
  long-poll although every session of the account has ended.
"""

from __future__ import annotations

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server import crypto, devices, orders, sessions
from app.sync.server.context import ServerContext
from app.sync.server.practice import REMOVED, owner_membership
from app.sync.server.practice_schemas import RemoveIn
from app.sync.server.sessions import Principal


def remove_member(
    ctx: ServerContext, principal: Principal, account_id: str, req: RemoveIn
) -> pp.Removal:
    """Raises ForbiddenError (self), ResourceNotFoundError (no such member),
    ConflictError (already removed), OrderInvalidError, OrderSignatureInvalidError,
    OrderReplayedError, DeviceStateError."""
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        member = owner_membership(tx, principal.account_id)
        if account_id == member.account_id:
            raise protocol.ForbiddenError("the owner cannot remove themselves")
        row = tx.one_for_update(
            "SELECT status FROM practice_members WHERE practice_id = ? AND account_id = ?",
            (member.practice_id, account_id),
        )
        if row is None:
            raise protocol.ResourceNotFoundError("no such member")
        if str(row[0]) == REMOVED:
            raise protocol.ConflictError("the member is already removed")
        # Lock orders end their devices' sessions first; count every session that ends.
        live = tx.one("SELECT COUNT(*) FROM sessions WHERE account_id = ?", (account_id,))
        queued = 0
        for signed in req.orders:
            order: protocol.DeviceOrder = {
                "v": signed.order.v,
                "order_id": signed.order.order_id,
                "account_id": signed.order.account_id,
                "device_id": signed.order.device_id,
                "action": signed.order.action,
                "issued_at": signed.order.issued_at,
            }
            if order["action"] not in ("lock", "wipe"):
                raise protocol.OrderInvalidError("a removal may only lock or wipe devices")
            device_id = order["device_id"]
            issued = orders.check_order_fields(ctx, order, account_id, device_id, now)
            device = tx.one_for_update(
                "SELECT state, order_id FROM devices WHERE account_id = ? AND id = ?",
                (account_id, device_id),
            )
            if device is None:
                raise protocol.OrderInvalidError("the order names a device the member lacks")
            if not crypto.ed25519_verify(
                member.owner_sign_public, protocol.order_message(order), signed.signature
            ):
                raise protocol.OrderSignatureInvalidError()
            if order["action"] == "lock" and str(device[0]) != devices.ACTIVE:
                # Already lost, locked, wiped or removed: the device holds no session and
                # will never get one, so a lock is moot; refusing it would block removal.
                continue
            queued += 1
            orders.apply_order(
                tx, account_id, device_id, device, order, issued, signed.signature, now
            )
        tx.execute(
            """UPDATE practice_members SET status = ?, removed_at = ?, keyring = NULL
            WHERE practice_id = ? AND account_id = ?""",
            (REMOVED, now, member.practice_id, account_id),
        )
        held = tx.all(
            """SELECT DISTINCT g.collection_id FROM practice_grants g
            JOIN practice_collections c ON c.id = g.collection_id
            WHERE c.practice_id = ? AND g.account_id = ? ORDER BY g.collection_id""",
            (member.practice_id, account_id),
        )
        collections = [str(r[0]) for r in held]
        for collection_id in collections:
            tx.execute(
                "DELETE FROM practice_grants WHERE collection_id = ? AND account_id = ?",
                (collection_id, account_id),
            )
        sessions.revoke_account(tx, account_id)
        ended = 0 if live is None else int(live[0])
    return {
        "removed_at": protocol.format_time(now),
        "sessions_ended": ended,
        "orders_queued": queued,
        "collections": collections,
    }
