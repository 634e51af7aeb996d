"""Items: opaque encrypted records, pulled by cursor and pushed with an expected etag.

Every account has a change counter (``accounts.seq``). Each stored change takes the next
value and stamps it on the item (``items.seq``); a pull returns items whose seq is above
the cursor, in seq order, so a client that keeps the last cursor sees every change
exactly once (an item changed twice between pulls appears once, in its latest state).

Push rules, per item (``push`` applies a whole batch in one transaction):
- stored etag == etag of what is pushed → ``ok`` without a write (a retry after a crash
  or a lost response; pushing is idempotent);
- else expected_etag == stored etag (or both absent: a new item) → write, next seq;
- else → ``conflict`` with the current stored item (or null if there is none).

Invariants: every query is scoped by ``account_id`` (the primary key is
``(account_id, id)``), so one account can never read or overwrite another's item, even
with the same id; per-account seq assignment is race-free because the account row is
locked (``FOR UPDATE`` on PostgreSQL, the single writer on SQLite) before it is read;
quota usage is adjusted in the same transaction as the write.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from app.sync import protocol
from app.sync.server.context import ServerContext
from app.sync.server.db import Row, Tx
from app.sync.server.schemas import PushItemIn, PutItemIn
from app.sync.server.sessions import Principal

_ITEM_COLUMNS = "id, kind, etag, deleted, key_id, ciphertext, seq, size, modified_at"
_CURSOR_PREFIX = "v1:"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises InvalidCursorError on anything ``encode_cursor`` did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise protocol.InvalidCursorError() from None
    digits = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise protocol.InvalidCursorError()
    return int(digits)


def _item(row: Row) -> protocol.Item:
    return {
        "id": str(row[0]),
        "kind": str(row[1]),
        "etag": str(row[2]),
        "deleted": bool(row[3]),
        "key_id": str(row[4]),
        "blob": protocol.b64encode(bytes(row[5])),
        "seq": int(row[6]),
        "size": int(row[7]),
        "modified_at": protocol.format_time(int(row[8])),
    }


def pull(
    ctx: ServerContext, principal: Principal, cursor: str | None, limit: int
) -> protocol.PullResponse:
    """One page of changes after ``cursor`` (from the start when None).
    Raises InvalidCursorError for a cursor past the account's last change (the server's
    data was reset or restored: the client must pull from the start)."""
    after = 0 if cursor is None else decode_cursor(cursor)
    with ctx.db.transaction(write=False) as tx:
        account = tx.one("SELECT seq FROM accounts WHERE id = ?", (principal.account_id,))
        if account is None:
            raise protocol.UnauthorizedError()
        if after > int(account[0]):
            raise protocol.InvalidCursorError()
        rows = tx.all(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE account_id = ? AND seq > ? "  # noqa: S608 - constant columns
            "ORDER BY seq LIMIT ?",
            (principal.account_id, after, limit + 1),
        )
    more = len(rows) > limit
    page = [_item(r) for r in rows[:limit]]
    last = page[-1]["seq"] if page else after
    return {"items": page, "cursor": encode_cursor(last), "more": more}


def get_item(ctx: ServerContext, principal: Principal, item_id: str) -> protocol.Item:
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            f"SELECT {_ITEM_COLUMNS} FROM items WHERE account_id = ? AND id = ?",  # noqa: S608 - constant columns
            (principal.account_id, item_id),
        )
    if row is None:
        raise protocol.ResourceNotFoundError("no such item")
    return _item(row)


@dataclass(frozen=True, slots=True)
class _Change:
    id: str
    kind: str
    expected_etag: str | None
    deleted: bool
    key_id: str
    blob: bytes

    @property
    def etag(self) -> str:
        return protocol.item_etag(
            kind=self.kind, key_id=self.key_id, deleted=self.deleted, blob=self.blob
        )


def push(
    ctx: ServerContext, principal: Principal, items: Sequence[PushItemIn]
) -> protocol.PushResponse:
    """Apply a batch atomically. Raises InvalidRequestError (an id twice), TooLargeError,
    QuotaExceededError; per-item conflicts are results, not errors."""
    changes = [_Change(i.id, i.kind, i.expected_etag, i.deleted, i.key_id, i.blob) for i in items]
    if len({c.id for c in changes}) != len(changes):
        raise protocol.InvalidRequestError("an item id appears twice in one batch")
    with ctx.db.transaction() as tx:
        return {"results": _apply(ctx, tx, principal.account_id, changes)}


def put_item(
    ctx: ServerContext, principal: Principal, item_id: str, body: PutItemIn
) -> protocol.PushResultOk:
    """Write one item. Raises ConflictError (HTTP 409) carrying ``current``."""
    change = _Change(item_id, body.kind, body.expected_etag, body.deleted, body.key_id, body.blob)
    with ctx.db.transaction() as tx:
        (result,) = _apply(ctx, tx, principal.account_id, [change])
    if result["status"] == "conflict":
        raise protocol.ConflictError(current=result["current"])
    return result


def _apply(
    ctx: ServerContext, tx: Tx, account_id: str, changes: Sequence[_Change]
) -> list[protocol.PushResult]:
    max_bytes = ctx.settings.max_item_bytes
    if any(len(c.blob) > max_bytes for c in changes):
        raise protocol.TooLargeError(f"an item blob exceeds {max_bytes} bytes")
    account = tx.one_for_update("SELECT seq, used_bytes FROM accounts WHERE id = ?", (account_id,))
    if account is None:
        raise protocol.UnauthorizedError()
    seq, used = int(account[0]), int(account[1])
    stored: dict[str, tuple[str, int, int]] = {}
    if changes:
        marks = ", ".join("?" for _ in changes)
        for row in tx.all(
            f"SELECT id, etag, size, seq FROM items WHERE account_id = ? AND id IN ({marks})",  # noqa: S608 - only placeholders
            (account_id, *(c.id for c in changes)),
        ):
            stored[str(row[0])] = (str(row[1]), int(row[2]), int(row[3]))
    now = ctx.now_ms()
    results: list[protocol.PushResult] = []
    writes: list[tuple[object, ...]] = []
    conflicts: list[str] = []
    for change in changes:
        current = stored.get(change.id)
        etag = change.etag
        if current is not None and current[0] == etag:
            results.append({"id": change.id, "status": "ok", "etag": etag, "seq": current[2]})
            continue
        expected_ok = (
            change.expected_etag is None if current is None else change.expected_etag == current[0]
        )
        if not expected_ok:
            conflicts.append(change.id)
            results.append({"id": change.id, "status": "conflict", "current": None})
            continue
        seq += 1
        used += len(change.blob) - (current[1] if current else 0)
        writes.append(
            (
                account_id,
                change.id,
                change.kind,
                change.key_id,
                int(change.deleted),
                change.blob,
                etag,
                len(change.blob),
                seq,
                now,
            )
        )
        results.append({"id": change.id, "status": "ok", "etag": etag, "seq": seq})
    if writes and used > ctx.settings.quota_bytes and used > int(account[1]):
        raise protocol.QuotaExceededError()
    tx.executemany(
        """INSERT INTO items (account_id, id, kind, key_id, deleted, ciphertext, etag, size,
            seq, modified_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (account_id, id) DO UPDATE SET
            kind = excluded.kind, key_id = excluded.key_id, deleted = excluded.deleted,
            ciphertext = excluded.ciphertext, etag = excluded.etag, size = excluded.size,
            seq = excluded.seq, modified_at = excluded.modified_at""",
        writes,
    )
    if writes:
        tx.execute(
            "UPDATE accounts SET seq = ?, used_bytes = ? WHERE id = ?", (seq, used, account_id)
        )
    if conflicts:
        marks = ", ".join("?" for _ in conflicts)
        current_items = {
            str(row[0]): _item(row)
            for row in tx.all(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE account_id = ? AND id IN ({marks})",  # noqa: S608 - constant columns
                (account_id, *conflicts),
            )
        }
        for i, result in enumerate(results):
            if result["status"] == "conflict":
                results[i] = {
                    "id": result["id"],
                    "status": "conflict",
                    "current": current_items.get(result["id"]),
                }
    return results
