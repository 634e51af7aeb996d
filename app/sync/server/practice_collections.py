"""Practice collections: creating them, granting and rotating their keys, and their
items (docs/PRACTICE.md "Collections").

The server holds wrapped keys and ciphertext only. It refuses to serve a collection to a
member without a grant on it (defence in depth: without the key the ciphertext is
useless anyway), and refuses writes sealed under anything but the current key version,
so that after a rotation nothing new is readable with a removed member's old key.

Invariants:
- only the owner creates collections, grants and rotates; grants go only to active
  members of the same practice, for versions 1..current; a rotation is exactly
  current + 1, and older versions' grants stay (old items stay readable to holders);
- readers must be active members holding a grant of any version; writers a grant of the
  current version, and every pushed item must be sealed under it (``stale_key``);
- ``seq`` is per collection, strictly increasing, taken from the collection row's
  counter under its lock (``FOR UPDATE`` on PostgreSQL), so concurrent pushes never
  share or skip-order a seq; writes are last-writer-wins per item;
- a collection of another practice is ``not_found``, exactly like a missing one.
"""

from __future__ import annotations

from typing import Any

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server.context import ServerContext
from app.sync.server.db import Row, Tx, UniqueViolation
from app.sync.server.practice import (
    Membership,
    collection_view,
    insert_collection,
    membership,
    owner_membership,
    store_grants,
)
from app.sync.server.practice_schemas import (
    CollectionCreateIn,
    GrantsIn,
    ItemsPushIn,
    RotateIn,
)
from app.sync.server.sessions import Principal

_MAX_CURSOR_DIGITS = 18


def _lock_collection(tx: Tx, member: Membership, collection_id: str) -> Row:
    """The collection's ``(key_version, seq)`` under its row lock. Raises
    ResourceNotFoundError."""
    row = tx.one_for_update(
        "SELECT key_version, seq FROM practice_collections WHERE id = ? AND practice_id = ?",
        (collection_id, member.practice_id),
    )
    if row is None:
        raise protocol.ResourceNotFoundError("no such collection")
    return row


def create_collection(
    ctx: ServerContext, principal: Principal, req: CollectionCreateIn
) -> pp.Collection:
    """Raises InvalidRequestError, ConflictError (the id exists)."""
    now = ctx.now_ms()
    try:
        with ctx.db.transaction() as tx:
            member = owner_membership(tx, principal.account_id)
            insert_collection(tx, member.practice_id, member.owner_sign_public, req, now)
            return collection_view(tx, member, req.collection_id)
    except UniqueViolation:
        raise protocol.ConflictError("a collection with this id exists") from None


def add_grants(
    ctx: ServerContext, principal: Principal, collection_id: str, req: GrantsIn
) -> pp.Collection:
    """Upsert grants of existing versions. Raises ResourceNotFoundError,
    InvalidRequestError."""
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        member = owner_membership(tx, principal.account_id)
        row = _lock_collection(tx, member, collection_id)
        store_grants(
            tx,
            member.practice_id,
            member.owner_sign_public,
            collection_id,
            int(row[0]),
            list(req.grants),
            now,
        )
        return collection_view(tx, member, collection_id)


def rotate(
    ctx: ServerContext, principal: Principal, collection_id: str, req: RotateIn
) -> pp.Collection:
    """Make ``key_version`` (current + 1) current, with its grants. Raises
    ResourceNotFoundError, ConflictError (not current + 1), InvalidRequestError."""
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        member = owner_membership(tx, principal.account_id)
        row = _lock_collection(tx, member, collection_id)
        current = int(row[0])
        if req.key_version != current + 1:
            raise protocol.ConflictError(
                f"the collection's next key version is {current + 1}; fetch the practice again"
            )
        if any(g.key_version != req.key_version for g in req.grants):
            raise protocol.InvalidRequestError("grants: must all be for the new key_version")
        tx.execute(
            "UPDATE practice_collections SET key_version = ? WHERE id = ?",
            (req.key_version, collection_id),
        )
        store_grants(
            tx,
            member.practice_id,
            member.owner_sign_public,
            collection_id,
            req.key_version,
            list(req.grants),
            now,
        )
        return collection_view(tx, member, collection_id)


def _held_versions(tx: Tx, account_id: str, collection_id: str) -> set[int]:
    rows = tx.all(
        "SELECT key_version FROM practice_grants WHERE collection_id = ? AND account_id = ?",
        (collection_id, account_id),
    )
    return {int(r[0]) for r in rows}


def parse_cursor(cursor: str | None) -> int:
    """A page cursor: the last seq seen, as a decimal string. Raises InvalidCursorError."""
    if cursor is None:
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > _MAX_CURSOR_DIGITS:
        raise protocol.InvalidCursorError()
    return int(cursor)


def page_limit(limit: int | None, maximum: int) -> int:
    if limit is None:
        return maximum
    if not 1 <= limit <= maximum:
        raise protocol.InvalidRequestError(f"limit: must be 1..{maximum}")
    return limit


def pull_items(
    ctx: ServerContext,
    principal: Principal,
    collection_id: str,
    cursor: str | None,
    limit: int | None,
) -> pp.ItemsPage:
    """Items after the cursor, by seq. Raises ResourceNotFoundError, ForbiddenError (no
    grant), InvalidCursorError, InvalidRequestError."""
    after = parse_cursor(cursor)
    count = page_limit(limit, pp.MAX_ITEMS_PER_PULL)
    with ctx.db.transaction(write=False) as tx:
        member = membership(tx, principal.account_id)
        if not tx.one(
            "SELECT 1 FROM practice_collections WHERE id = ? AND practice_id = ?",
            (collection_id, member.practice_id),
        ):
            raise protocol.ResourceNotFoundError("no such collection")
        if not _held_versions(tx, member.account_id, collection_id):
            raise protocol.ForbiddenError("you hold no grant on this collection")
        rows = tx.all(
            """SELECT item_id, seq, key_version, ciphertext, author_account_id, updated_at
            FROM practice_items WHERE collection_id = ? AND seq > ?
            ORDER BY seq LIMIT ?""",
            (collection_id, after, count + 1),
        )
    more = len(rows) > count
    rows = rows[:count]
    items: list[pp.PracticeItem] = [
        {
            "item_id": str(r[0]),
            "seq": int(r[1]),
            "key_version": int(r[2]),
            "ciphertext": protocol.b64encode(bytes(r[3])),
            "author_account_id": str(r[4]),
            "updated_at": protocol.format_time(int(r[5])),
        }
        for r in rows
    ]
    next_cursor = str(items[-1]["seq"]) if items else cursor
    return {"items": items, "cursor": next_cursor, "more": more}


def push_items(
    ctx: ServerContext, principal: Principal, collection_id: str, req: ItemsPushIn
) -> dict[str, list[dict[str, Any]]]:
    """Upsert items (last writer wins), each under a new seq. Raises
    ResourceNotFoundError, ForbiddenError (no current-version grant), StaleKeyError,
    TooLargeError."""
    for item in req.items:
        if len(item.ciphertext) > pp.MAX_ITEM_BYTES:
            raise protocol.TooLargeError(f"an item ciphertext exceeds {pp.MAX_ITEM_BYTES} bytes")
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        member = membership(tx, principal.account_id)
        row = _lock_collection(tx, member, collection_id)
        current, seq = int(row[0]), int(row[1])
        held = _held_versions(tx, member.account_id, collection_id)
        if not held:
            raise protocol.ForbiddenError("you hold no grant on this collection")
        if any(item.key_version != current for item in req.items):
            raise protocol.StaleKeyError()
        if current not in held:
            raise protocol.ForbiddenError("you hold no grant of the collection's current key")
        kind_row = tx.one("SELECT kind FROM practice_collections WHERE id = ?", (collection_id,))
        if kind_row is not None and str(kind_row[0]) == "clinical":
            # A clinical item has one author (the clinician's notes, a supervisor's own
            # co-signatures): another holder of the key may not replace it.
            for item in req.items:
                owner_row = tx.one(
                    """SELECT author_account_id FROM practice_items
                    WHERE collection_id = ? AND item_id = ?""",
                    (collection_id, item.item_id),
                )
                if owner_row is not None and str(owner_row[0]) != member.account_id:
                    raise protocol.ConflictError("another member wrote that clinical item")
        results: list[dict[str, Any]] = []
        for item in req.items:
            seq += 1
            tx.execute(
                """INSERT INTO practice_items (collection_id, item_id, seq, key_version,
                    ciphertext, author_account_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (collection_id, item_id) DO UPDATE SET seq = excluded.seq,
                    key_version = excluded.key_version, ciphertext = excluded.ciphertext,
                    author_account_id = excluded.author_account_id,
                    updated_at = excluded.updated_at""",
                (
                    collection_id,
                    item.item_id,
                    seq,
                    item.key_version,
                    item.ciphertext,
                    member.account_id,
                    now,
                ),
            )
            results.append({"item_id": item.item_id, "seq": seq})
        tx.execute("UPDATE practice_collections SET seq = ? WHERE id = ?", (seq, collection_id))
    return {"items": results}
