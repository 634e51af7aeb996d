"""Attachments: chunked, client-encrypted blobs, stored opaque.

An attachment is identified by a client-generated UUID and consists of chunks numbered
0..MAX_CHUNK_INDEX, each at most ``Settings.max_chunk_bytes``. The server knows nothing
of how chunks form a file (the client's encrypted item records that); it stores, lists,
returns and deletes them.

Invariants: every query is scoped by ``account_id``; re-putting identical chunk bytes is
a no-op (idempotent retries); the account row is locked before quota usage is read, and
usage changes in the same transaction as the chunk, so concurrent uploads cannot
overshoot the quota.
"""

from __future__ import annotations

from app.sync import protocol
from app.sync.server.context import ServerContext
from app.sync.server.sessions import Principal


def put_chunk(
    ctx: ServerContext, principal: Principal, attachment_id: str, n: int, data: bytes
) -> protocol.ChunkPutResponse:
    """Store (or replace) one chunk. Raises QuotaExceededError."""
    etag = protocol.chunk_etag(data)
    now = ctx.now_ms()
    with ctx.db.transaction() as tx:
        account = tx.one_for_update(
            "SELECT used_bytes FROM accounts WHERE id = ?",
            (principal.account_id,),
        )
        if account is None:
            raise protocol.UnauthorizedError()
        old = tx.one(
            """SELECT size, etag FROM attachment_chunks
            WHERE account_id = ? AND attachment_id = ? AND n = ?""",
            (principal.account_id, attachment_id, n),
        )
        if old is None or str(old[1]) != etag:
            delta = len(data) - (int(old[0]) if old else 0)
            if delta > 0 and int(account[0]) + delta > ctx.settings.quota_bytes:
                raise protocol.QuotaExceededError()
            tx.execute(
                """INSERT INTO attachment_chunks (account_id, attachment_id, n, data, size,
                    etag, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (account_id, attachment_id, n) DO UPDATE SET
                    data = excluded.data, size = excluded.size, etag = excluded.etag,
                    created_at = excluded.created_at""",
                (principal.account_id, attachment_id, n, data, len(data), etag, now),
            )
            tx.execute(
                "UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ?",
                (delta, principal.account_id),
            )
    return {"id": attachment_id, "n": n, "size": len(data), "etag": etag}


def get_chunk(
    ctx: ServerContext, principal: Principal, attachment_id: str, n: int
) -> tuple[bytes, str]:
    """The chunk's bytes and etag. Raises ResourceNotFoundError."""
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            """SELECT data, etag FROM attachment_chunks
            WHERE account_id = ? AND attachment_id = ? AND n = ?""",
            (principal.account_id, attachment_id, n),
        )
    if row is None:
        raise protocol.ResourceNotFoundError("no such chunk")
    return bytes(row[0]), str(row[1])


def describe(
    ctx: ServerContext, principal: Principal, attachment_id: str
) -> protocol.AttachmentInfo:
    """The chunk list. Raises ResourceNotFoundError when the attachment has no chunks."""
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            """SELECT n, size, etag FROM attachment_chunks
            WHERE account_id = ? AND attachment_id = ? ORDER BY n""",
            (principal.account_id, attachment_id),
        )
    if not rows:
        raise protocol.ResourceNotFoundError("no such attachment")
    chunks: list[protocol.ChunkInfo] = [
        {"n": int(r[0]), "size": int(r[1]), "etag": str(r[2])} for r in rows
    ]
    return {"id": attachment_id, "chunks": chunks, "size": sum(c["size"] for c in chunks)}


def delete(ctx: ServerContext, principal: Principal, attachment_id: str) -> None:
    """Delete every chunk and release the quota. Raises ResourceNotFoundError."""
    with ctx.db.transaction() as tx:
        account = tx.one_for_update(
            "SELECT used_bytes FROM accounts WHERE id = ?",
            (principal.account_id,),
        )
        if account is None:
            raise protocol.UnauthorizedError()
        total = tx.one(
            """SELECT COUNT(*), COALESCE(SUM(size), 0) FROM attachment_chunks
            WHERE account_id = ? AND attachment_id = ?""",
            (principal.account_id, attachment_id),
        )
        if total is None or int(total[0]) == 0:
            raise protocol.ResourceNotFoundError("no such attachment")
        tx.execute(
            "DELETE FROM attachment_chunks WHERE account_id = ? AND attachment_id = ?",
            (principal.account_id, attachment_id),
        )
        tx.execute(
            "UPDATE accounts SET used_bytes = used_bytes - ? WHERE id = ?",
            (int(total[1]), principal.account_id),
        )
