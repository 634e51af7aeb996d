"""The practice audit trail (docs/PRACTICE.md "Audit"): members forward their vaults'
audit entries, each signed by the member and sealed to the owner's ``enc_public``; the
owner reads them back by seq.

Invariants: the server stores sealed entries it cannot read, stamped with the author
(the caller's account, never the request's say-so) and a per-practice ``seq`` taken from
the practice row's counter under its lock, so seqs never clash or go backwards; an entry
id is stored once per author (repeats are no-ops, not counted in ``stored``); only
active members write, only the owner reads.
"""

from __future__ import annotations

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server.context import ServerContext
from app.sync.server.practice import lock_practice, membership, owner_membership
from app.sync.server.practice_collections import page_limit, parse_cursor
from app.sync.server.practice_schemas import AuditPushIn
from app.sync.server.sessions import Principal


def push(ctx: ServerContext, principal: Principal, req: AuditPushIn) -> dict[str, int]:
    """Store new entries; return how many were new. Raises TooLargeError."""
    for entry in req.entries:
        if len(entry.sealed) > pp.MAX_AUDIT_SEALED_BYTES:
            raise protocol.TooLargeError(
                f"a sealed audit entry exceeds {pp.MAX_AUDIT_SEALED_BYTES} bytes"
            )
    now = ctx.now_ms()
    stored = 0
    with ctx.db.transaction() as tx:
        member = membership(tx, principal.account_id)
        seq = int(lock_practice(tx, member.practice_id)[2])
        seen: set[str] = set()
        for entry in req.entries:
            if entry.entry_id in seen or tx.one(
                """SELECT 1 FROM practice_audit
                WHERE practice_id = ? AND author_account_id = ? AND entry_id = ?""",
                (member.practice_id, member.account_id, entry.entry_id),
            ):
                continue
            seen.add(entry.entry_id)
            seq += 1
            tx.execute(
                """INSERT INTO practice_audit (practice_id, seq, author_account_id, entry_id,
                    sealed, received_at) VALUES (?, ?, ?, ?, ?, ?)""",
                (member.practice_id, seq, member.account_id, entry.entry_id, entry.sealed, now),
            )
            stored += 1
        tx.execute("UPDATE practices SET audit_seq = ? WHERE id = ?", (seq, member.practice_id))
    return {"stored": stored}


def pull(
    ctx: ServerContext, principal: Principal, cursor: str | None, limit: int | None
) -> pp.AuditPage:
    """Entries after the cursor, by seq (the owner only). Raises InvalidCursorError."""
    after = parse_cursor(cursor)
    count = page_limit(limit, pp.MAX_ITEMS_PER_PULL)
    with ctx.db.transaction(write=False) as tx:
        member = owner_membership(tx, principal.account_id)
        rows = tx.all(
            """SELECT seq, author_account_id, entry_id, sealed, received_at
            FROM practice_audit WHERE practice_id = ? AND seq > ? ORDER BY seq LIMIT ?""",
            (member.practice_id, after, count + 1),
        )
    more = len(rows) > count
    entries: list[pp.AuditEntryOut] = [
        {
            "seq": int(r[0]),
            "author_account_id": str(r[1]),
            "entry_id": str(r[2]),
            "sealed": protocol.b64encode(bytes(r[3])),
            "received_at": protocol.format_time(int(r[4])),
        }
        for r in rows[:count]
    ]
    return {
        "entries": entries,
        "cursor": str(entries[-1]["seq"]) if entries else cursor,
        "more": more,
    }
