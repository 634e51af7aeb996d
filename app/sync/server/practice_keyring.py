"""A member's practice keyring: one opaque blob per member, so the member's other
devices get their practice keys (docs/PRACTICE.md, "A member's other devices").

The member's client seals its practice identity and the owner keys it pinned under a key
only the member's account can derive (HKDF of the account key of its newest key epoch);
the server stores and returns the bytes and can neither read nor usefully alter them (the
client's AEAD refuses any change).

Invariants: only the member's own account reads or writes its keyring; a removed member
gets ``member_removed`` and the blob is deleted with the removal's grants; pending members
may store theirs (their devices need it before the owner approves them).
"""

from __future__ import annotations

from app.sync import protocol
from app.sync.server.context import ServerContext
from app.sync.server.practice import membership
from app.sync.server.practice_schemas import KeyringIn
from app.sync.server.sessions import Principal


def get_keyring(ctx: ServerContext, principal: Principal) -> dict[str, str]:
    """Raises NotInPracticeError, MemberRemovedError, ResourceNotFoundError (none yet)."""
    with ctx.db.transaction(write=False) as tx:
        member = membership(tx, principal.account_id, allow_pending=True)
        row = tx.one(
            "SELECT keyring FROM practice_members WHERE practice_id = ? AND account_id = ?",
            (member.practice_id, principal.account_id),
        )
    if row is None or row[0] is None:
        raise protocol.ResourceNotFoundError("no keyring stored yet")
    return {"keyring": protocol.b64encode(bytes(row[0]))}


def put_keyring(ctx: ServerContext, principal: Principal, req: KeyringIn) -> dict[str, str]:
    with ctx.db.transaction() as tx:
        member = membership(tx, principal.account_id, allow_pending=True)
        tx.execute(
            "UPDATE practice_members SET keyring = ? WHERE practice_id = ? AND account_id = ?",
            (req.keyring, member.practice_id, principal.account_id),
        )
    return {"keyring": protocol.b64encode(req.keyring)}
