"""The vault side of practice mode (docs/PRACTICE.md): what a member's vault keeps of the
practice, for the practice client (app/sync/practice.py) to read and write.

What this module owns (schema migration 8):
- ``practice_state``: settings and small documents (membership, the member's identity
  private keys, the owner's public keys, the policy, cursors, the owner's invite
  secrets), as text (JSON where ``put_json`` wrote it);
- ``practice_keys``: the collection keys granted to this member, one row per version;
- ``practice_items``: the practice items this member can read, as opened and verified
  by the client (last writer wins per item: a row is only replaced by one with an equal
  or higher ``seq``);
- ``practice_outbox``: items written here and not yet accepted by the server;
  ``ack`` moves one into ``practice_items`` in the same transaction;
- ``practice_published``: the digest of what was last published per item (so an
  unchanged record is not published again);
- ``practice_audit``: (owner) the members' audit entries merged into this vault,
  idempotent on ``(member, entry_id)``.

Invariants: no crypto and no network here, and this module never imports app.sync; every
write is one transaction; none of these tables is queued for the member's own sync (no
triggers) or read by an export; every method raises VaultLockedError once the vault is
locked; bodies and keys never appear in a ``repr`` or an exception message. Reading a
practice item is audited in this vault's own trail through ``record_view``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidInputError, VaultLockedError
from app.vault.audit import AuditLog
from app.vault.crypto import KEY_BYTES, SymmetricKey
from app.vault.db import Database

Body = dict[str, Any]
_ITEM_FIELDS = "collection_id, item_id, kind, body, author, at, seq, key_version"
_AUDIT_FIELDS = "seq, entry_id, member, action, record_type, record_id, client_id, at"
_PRACTICE_TABLES = (
    "practice_state", "practice_keys", "practice_items", "practice_outbox",
    "practice_published", "practice_audit",
)  # fmt: skip
_UPSERT_ITEM = (
    f"INSERT INTO practice_items ({_ITEM_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
    "ON CONFLICT (collection_id, item_id) DO UPDATE SET kind = excluded.kind, "
    "body = excluded.body, author = excluded.author, at = excluded.at, seq = excluded.seq, "
    "key_version = excluded.key_version WHERE excluded.seq >= practice_items.seq"
)


@dataclass(frozen=True, slots=True)
class PracticeRow:
    """One practice item as this vault keeps it (opened and verified by the client)."""

    collection_id: str
    item_id: str
    kind: str
    body: Body = field(repr=False)
    author: str
    at: str
    seq: int
    key_version: int


@dataclass(frozen=True, slots=True)
class PracticeOutboxRow:
    """An item written here, waiting for the server to accept it."""

    collection_id: str
    item_id: str
    kind: str
    body: Body = field(repr=False)
    at: str


@dataclass(frozen=True, slots=True)
class PracticeAuditRow:
    """One member's audit entry as merged into the owner's vault (no text, ids only).
    ``record_type`` may be empty (an entry about no record, e.g. an unlock). ``seq`` is
    this vault's order of arrival (None before it is stored)."""

    entry_id: str
    member: str
    action: str
    record_type: str
    record_id: str | None
    client_id: str | None
    at: str
    seq: int | None = None


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"practice {name} must be non-empty text")
    return value


def _any_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"practice {name} must be text")
    return value


def _opt_text(value: object, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInputError(f"practice {name} must be a non-negative integer")
    return value


def _dump(body: object) -> str:
    if not isinstance(body, dict):
        raise InvalidInputError("a practice item body must be a JSON object")
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        raise InvalidInputError("a practice item body must be plain JSON") from None


def _load(text: str) -> Body:
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("not an object")
    return body


def _row(r: Any) -> PracticeRow:
    return PracticeRow(str(r[0]), str(r[1]), str(r[2]), _load(r[3]), str(r[4]), str(r[5]),
                       int(r[6]), int(r[7]))  # fmt: skip


def _audit_row(r: Any) -> PracticeAuditRow:
    return PracticeAuditRow(
        seq=int(r[0]), entry_id=str(r[1]), member=str(r[2]), action=str(r[3]),
        record_type=str(r[4]), record_id=None if r[5] is None else str(r[5]),
        client_id=None if r[6] is None else str(r[6]), at=str(r[7]),
    )  # fmt: skip


class PracticeStore:
    """Built by ``VaultService.practice_store()`` from the unlocked vault; ``alive`` says
    whether that vault is still unlocked (with this database)."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog | None,
        now: Callable[[], str],
        alive: Callable[[], bool],
    ) -> None:
        self._db = db
        self._audit = audit
        self._now = now
        self._alive = alive

    def _open(self) -> Database:
        if not self._alive():
            raise VaultLockedError()
        return self._db

    # -- state (practice_state) --------------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._open().one("SELECT value FROM practice_state WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def put(self, values: Mapping[str, str | None]) -> None:
        """Set (or, with None, remove) several values in one transaction. Raises
        InvalidInputError, VaultLockedError."""
        checked = {_text(k, "state key"): v for k, v in values.items()}
        for value in checked.values():
            if value is not None and not isinstance(value, str):
                raise InvalidInputError("practice state values are text")
        with self._open().transaction() as conn:
            for key, value in checked.items():
                if value is None:
                    conn.execute("DELETE FROM practice_state WHERE key = ?", (key,))
                else:
                    conn.execute(
                        "INSERT INTO practice_state (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )

    def get_json(self, key: str) -> Any:
        """The value ``put_json`` stored, or None."""
        text = self.get(key)
        return None if text is None else json.loads(text)

    def put_json(self, key: str, value: Any) -> None:
        """Store ``value`` as JSON (None removes it). Raises InvalidInputError."""
        if value is None:
            self.put({key: None})
            return
        try:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            raise InvalidInputError("practice state must be plain JSON") from None
        self.put({key: text})

    # -- collection keys ---------------------------------------------------------------
    def put_key(self, collection_id: str, key_version: int, key: SymmetricKey) -> None:
        """Keep one version of a collection key (replacing that version if present).
        Raises InvalidInputError, VaultLockedError."""
        cid, version = _text(collection_id, "collection id"), _int(key_version, "key version")
        if not isinstance(key, SymmetricKey) or key.wiped:
            raise InvalidInputError("a collection key must be a SymmetricKey")
        with self._open().transaction() as conn:
            conn.execute(
                "INSERT INTO practice_keys (collection_id, key_version, key) VALUES (?, ?, ?) "
                "ON CONFLICT (collection_id, key_version) DO UPDATE SET key = excluded.key",
                (cid, version, key.reveal()),
            )

    def key(self, collection_id: str, key_version: int) -> SymmetricKey | None:
        row = self._open().one(
            "SELECT key FROM practice_keys WHERE collection_id = ? AND key_version = ?",
            (collection_id, key_version),
        )
        return None if row is None else SymmetricKey(bytes(row[0]))

    def keys(self, collection_id: str) -> dict[int, SymmetricKey]:
        rows = self._open().query(
            "SELECT key_version, key FROM practice_keys WHERE collection_id = ? "
            "ORDER BY key_version",
            (collection_id,),
        )
        return {int(r[0]): SymmetricKey(bytes(r[1])) for r in rows if len(r[1]) == KEY_BYTES}

    def latest_key(self, collection_id: str) -> tuple[int, SymmetricKey] | None:
        row = self._open().one(
            "SELECT key_version, key FROM practice_keys WHERE collection_id = ? "
            "ORDER BY key_version DESC LIMIT 1",
            (collection_id,),
        )
        return None if row is None else (int(row[0]), SymmetricKey(bytes(row[1])))

    # -- items -------------------------------------------------------------------------
    def upsert_items(self, rows: Iterable[PracticeRow]) -> int:
        """Store items in one transaction; an item is replaced only by one with an equal
        or higher ``seq``. Returns how many rows were given. Raises InvalidInputError,
        VaultLockedError."""
        params = [
            (
                _text(r.collection_id, "collection id"), _text(r.item_id, "item id"),
                _text(r.kind, "item kind"), _dump(r.body), _text(r.author, "author"),
                _text(r.at, "time"), _int(r.seq, "seq"), _int(r.key_version, "key version"),
            )
            for r in rows
        ]  # fmt: skip
        if params:
            with self._open().transaction() as conn:
                conn.executemany(_UPSERT_ITEM, params)
        return len(params)

    def items(self, collection_id: str | None = None, kind: str | None = None) -> list[PracticeRow]:
        """Items, oldest first (by ``at``, then ``seq``), optionally of one collection
        and/or kind."""
        sql = f"SELECT {_ITEM_FIELDS} FROM practice_items WHERE 1 = 1"  # noqa: S608
        params: list[Any] = []
        if collection_id is not None:
            sql += " AND collection_id = ?"
            params.append(collection_id)
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        rows = self._open().query(sql + " ORDER BY at, seq, item_id", tuple(params))
        return [_row(r) for r in rows]

    def item(self, collection_id: str, item_id: str) -> PracticeRow | None:
        row = self._open().one(
            f"SELECT {_ITEM_FIELDS} FROM practice_items "  # noqa: S608
            "WHERE collection_id = ? AND item_id = ?",
            (collection_id, item_id),
        )
        return None if row is None else _row(row)

    def delete_collection_items(self, collection_id: str) -> int:
        """Remove every item of one collection (a grant this member lost). Returns how
        many were removed."""
        with self._open().transaction() as conn:
            cur = conn.execute("DELETE FROM practice_items WHERE collection_id = ?",
                               (collection_id,))  # fmt: skip
            return int(cur.rowcount)

    # -- outbox ------------------------------------------------------------------------
    def enqueue(self, collection_id: str, item_id: str, kind: str, body: Body, at: str) -> None:
        """Queue an item to publish (replacing a queued version of the same item).
        Raises InvalidInputError, VaultLockedError."""
        values = (_text(collection_id, "collection id"), _text(item_id, "item id"),
                  _text(kind, "item kind"), _dump(body), _text(at, "time"))  # fmt: skip
        with self._open().transaction() as conn:
            conn.execute(
                "INSERT INTO practice_outbox (collection_id, item_id, kind, body, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection_id, item_id) DO UPDATE SET "
                "kind = excluded.kind, body = excluded.body, at = excluded.at",
                values,
            )

    def outbox(self) -> list[PracticeOutboxRow]:
        """Queued items, oldest first."""
        rows = self._open().query(
            "SELECT collection_id, item_id, kind, body, at FROM practice_outbox "
            "ORDER BY at, collection_id, item_id"
        )
        return [PracticeOutboxRow(str(r[0]), str(r[1]), str(r[2]), _load(r[3]), str(r[4]))
                for r in rows]  # fmt: skip

    def ack(
        self, collection_id: str, item_id: str, seq: int, key_version: int, author: str
    ) -> PracticeRow | None:
        """The server accepted a queued item as ``seq``: move it into ``practice_items``
        and out of the outbox in one transaction. Returns the stored row, or None when
        the item is no longer queued (already acknowledged). Raises InvalidInputError,
        VaultLockedError."""
        seq, key_version = _int(seq, "seq"), _int(key_version, "key version")
        author = _text(author, "author")
        with self._open().transaction() as conn:
            row = conn.execute(
                "SELECT kind, body, at FROM practice_outbox "
                "WHERE collection_id = ? AND item_id = ?",
                (collection_id, item_id),
            ).fetchone()
            if row is None:
                return None
            stored = PracticeRow(collection_id, item_id, str(row[0]), _load(row[1]), author,
                                 str(row[2]), seq, key_version)  # fmt: skip
            conn.execute(_UPSERT_ITEM, (collection_id, item_id, stored.kind, row[1], author,
                                        stored.at, seq, key_version))  # fmt: skip
            conn.execute(
                "DELETE FROM practice_outbox WHERE collection_id = ? AND item_id = ?",
                (collection_id, item_id),
            )
        return stored

    def publish_many(self, rows: Iterable[tuple[str, str, str, Body, str, str]]) -> int:
        """Queue many items and record their published digests in ONE transaction (one
        commit for a whole publish run, not two per item): rows of (collection id, item
        id, kind, body, time, digest). Returns how many. Raises InvalidInputError,
        VaultLockedError."""
        queued, digests = [], []
        for cid, item_id, kind, body, at, digest in rows:
            cid, item_id = _text(cid, "collection id"), _text(item_id, "item id")
            queued.append((cid, item_id, _text(kind, "item kind"), _dump(body),
                           _text(at, "time")))  # fmt: skip
            digests.append((cid, item_id, _text(digest, "digest")))
        if not queued:
            return 0
        with self._open().transaction() as conn:
            conn.executemany(
                "INSERT INTO practice_outbox (collection_id, item_id, kind, body, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection_id, item_id) DO UPDATE SET "
                "kind = excluded.kind, body = excluded.body, at = excluded.at",
                queued,
            )
            conn.executemany(
                "INSERT INTO practice_published (collection_id, item_id, digest) "
                "VALUES (?, ?, ?) ON CONFLICT (collection_id, item_id) DO UPDATE SET "
                "digest = excluded.digest",
                digests,
            )
        return len(queued)

    def ack_many(
        self, collection_id: str, acked: Mapping[str, int], key_version: int, author: str
    ) -> int:
        """``ack`` for a whole pushed batch (item id -> seq) in one transaction. Returns
        how many moved. Raises InvalidInputError, VaultLockedError."""
        key_version, author = _int(key_version, "key version"), _text(author, "author")
        moved = 0
        with self._open().transaction() as conn:
            for item_id, seq in acked.items():
                row = conn.execute(
                    "SELECT kind, body, at FROM practice_outbox "
                    "WHERE collection_id = ? AND item_id = ?",
                    (collection_id, item_id),
                ).fetchone()
                if row is None:
                    continue
                values = (collection_id, item_id, str(row[0]), row[1], author, str(row[2]),
                          _int(seq, "seq"), key_version)  # fmt: skip
                conn.execute(_UPSERT_ITEM, values)
                conn.execute(
                    "DELETE FROM practice_outbox WHERE collection_id = ? AND item_id = ?",
                    (collection_id, item_id),
                )
                moved += 1
        return moved

    def seqs(self, collection_id: str) -> dict[str, int]:
        """Item id -> stored seq, for one collection (a pull skips what it already has)."""
        rows = self._open().query(
            "SELECT item_id, seq FROM practice_items WHERE collection_id = ?", (collection_id,)
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def published_all(self, collection_id: str) -> dict[str, str]:
        """Item id -> published digest, for one collection."""
        rows = self._open().query(
            "SELECT item_id, digest FROM practice_published WHERE collection_id = ?",
            (collection_id,),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    # -- published digests -------------------------------------------------------------
    def published(self, collection_id: str, item_id: str) -> str | None:
        row = self._open().one(
            "SELECT digest FROM practice_published WHERE collection_id = ? AND item_id = ?",
            (collection_id, item_id),
        )
        return None if row is None else str(row[0])

    def set_published(self, collection_id: str, item_id: str, digest: str) -> None:
        values = (_text(collection_id, "collection id"), _text(item_id, "item id"),
                  _text(digest, "digest"))  # fmt: skip
        with self._open().transaction() as conn:
            conn.execute(
                "INSERT INTO practice_published (collection_id, item_id, digest) "
                "VALUES (?, ?, ?) ON CONFLICT (collection_id, item_id) DO UPDATE SET "
                "digest = excluded.digest",
                values,
            )

    # -- practice audit (owner) ----------------------------------------------------------
    def add_audit(self, rows: Iterable[PracticeAuditRow]) -> int:
        """Merge members' audit entries (an entry already held is skipped). Returns how
        many were new. Raises InvalidInputError, VaultLockedError."""
        params = [
            (
                _text(r.entry_id, "audit entry id"), _text(r.member, "member"),
                _text(r.action, "audit action"), _any_text(r.record_type, "record type"),
                _opt_text(r.record_id, "record id"), _opt_text(r.client_id, "client id"),
                _text(r.at, "time"),
            )
            for r in rows
        ]  # fmt: skip
        added = 0
        if params:
            with self._open().transaction() as conn:
                for p in params:
                    cur = conn.execute(
                        "INSERT INTO practice_audit (entry_id, member, action, record_type, "
                        "record_id, client_id, at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (member, entry_id) DO NOTHING",
                        p,
                    )
                    added += int(cur.rowcount)
        return added

    def audit(
        self, limit: int | None = None, member: str | None = None, record_id: str | None = None
    ) -> list[PracticeAuditRow]:
        """Merged entries, newest last (by time, then arrival); with ``limit``, the newest
        ``limit`` of them."""
        sql = f"SELECT {_AUDIT_FIELDS} FROM practice_audit WHERE 1 = 1"  # noqa: S608
        params: list[Any] = []
        if member is not None:
            sql += " AND member = ?"
            params.append(member)
        if record_id is not None:
            sql += " AND record_id = ?"
            params.append(record_id)
        sql += " ORDER BY at DESC, seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(_int(limit, "limit"))
        rows = self._open().query(sql, tuple(params))
        return [_audit_row(r) for r in reversed(rows)]

    def last_audit_seq(self) -> int:
        """The highest arrival ``seq`` (0 when there is none)."""
        row = self._open().one("SELECT coalesce(max(seq), 0) FROM practice_audit")
        return int(row[0])

    # -- audit of this vault -------------------------------------------------------------
    def record_view(
        self, record_type: str, record_id: str, client_id: str | None = None, *,
        now: bool = False,
    ) -> None:  # fmt: skip
        """Audit that a practice record was read, in this vault's own trail (action
        ``view``), as the service audits its own reads: deferred to the next write, flush
        or lock unless ``now``. Raises VaultLockedError."""
        db = self._open()
        if self._audit is None:
            return
        rtype, rid = _text(record_type, "record type"), _text(record_id, "record id")
        cid = _opt_text(client_id, "client id")
        if not now:
            self._audit.defer("view", rtype, rid, cid)
            return
        with db.transaction() as conn:
            self._audit.append(conn, "view", rtype, rid, cid)

    # -- leaving ---------------------------------------------------------------------------
    def forget_practice(self) -> None:
        """Delete every practice row and every collection key (this member left or was
        removed), with an audit entry, in one transaction. secure_delete zeroes the freed
        pages. Raises VaultLockedError."""
        with self._open().transaction() as conn:
            for table in _PRACTICE_TABLES:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names
            if self._audit is not None:
                self._audit.append(conn, "practice", detail="practice data removed")
