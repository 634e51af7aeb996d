"""The vault side of sync: the outbox, per-item sync state, and the mapping between
records and the plaintext *content* of sync items.

What this module owns:
- ``sync_outbox``: records changed locally and not yet pushed, queued by triggers in the
  same transaction as the change (schema migration 4). Before a push, the *prepared
  state* of each row (the ``gen`` and ``rev`` it was sealed from, its items key id and
  the etag of the blob) is recorded; the blob itself is held in memory only (schema
  migration 6). The state is cleared when the server's answer is recorded, so a later
  run finds it only after a crash or a lost answer, and recognises that push as its
  own when the server reports the same etag;
- ``sync_state``: per item, the last etag known to be on the server and the highest
  ``rev`` seen (the rollback check of app/sync/items.py);
- record <-> content: clients; notes with their tags, signature and every superseded
  revision (one item per note, so a merge sees the whole history); addenda; audit
  entries (one immutable item each; entries of other vaults land in
  ``sync_remote_audit``, because this vault's hash chain cannot hold them);
- applying pulled content, one transaction per pulled page (with the page's cursor and
  refusals), under ``sync_apply_guard`` (the triggers stay quiet, so nothing pulled is
  queued back), with a merge callback for records that also changed here;
- sync settings in ``meta`` under the ``sync_`` prefix (server, account, keys).

Invariants: no crypto and no network here (app/sync does both, and this module never
imports app/sync); every write is one transaction; a page is applied without per-item
savepoints (each one makes FTS5 flush its buffered index, ~1 ms a note), and if an item
fails the page is rolled back and applied again with a savepoint per item, so the
failing item is reported and the others still apply; an item whose parent record has
not arrived yet is held back, never applied out of order, and the cursor is not stored
past it; content never appears in an exception message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from app.vault.audit import AuditLog
from app.vault.db import Database
from app.vault.models import NOTE_KINDS
from app.vault.signing import signer_id

KIND_ITEMS_KEY = "items_key"
KIND_CLIENT = "client"
KIND_NOTE = "note"
KIND_ADDENDUM = "addendum"
KIND_AUDIT = "audit"
KIND_TEMPLATE = "template"  # the clinician's own note templates (app/vault/usertemplates.py)
KIND_SIGNER = "signer"  # the signing public keys of the account's devices (immutable)
# Parents before children: a note needs its client, an addendum its note.
KIND_ORDER = {KIND_ITEMS_KEY: 0, KIND_SIGNER: 1, KIND_TEMPLATE: 1, KIND_CLIENT: 1,
              KIND_NOTE: 2, KIND_ADDENDUM: 3, KIND_AUDIT: 4}  # fmt: skip
RECORD_KINDS = (KIND_CLIENT, KIND_NOTE, KIND_ADDENDUM, KIND_AUDIT, KIND_TEMPLATE, KIND_SIGNER)
IMMUTABLE_KINDS = (KIND_ADDENDUM, KIND_AUDIT, KIND_SIGNER)
# Audit item ids are derived from (vault id, seq): stable across retries.
AUDIT_NAMESPACE = uuid.UUID("5d0c3c1e-7a52-4b6e-9a61-3f1d2b8e0a44")

Content = dict[str, Any]
# What makes one pulled item unusable (malformed content, a constraint it breaks): it is
# refused and the rest applies. Anything else (a full disk, a busy or damaged database)
# rolls the page back and propagates: the cursor is not stored, so the page is pulled
# again next time instead of its items being refused for good.
_BAD_ITEM = (KeyError, ValueError, TypeError, AttributeError, sqlcipher.IntegrityError)
_State = tuple[str, str, str | None, int]  # a sync_state row: item id, kind, etag, rev
Merge = Callable[[str, Content, Content], tuple[Content, int]]

_CLIENT_FIELDS = ("name", "dob", "email", "phone", "status", "created_at", "updated_at")
_NOTE_FIELDS = (
    "client_id", "kind", "template", "title", "session_date", "body", "author", "revision",
    "created_at", "updated_at", "signed_at",
)  # fmt: skip
_AUDIT_FIELDS = ("seq", "at", "actor", "device", "action", "record_type", "record_id",
                 "client_id", "detail")  # fmt: skip
_SELECT_CLIENTS = f"SELECT {', '.join(_CLIENT_FIELDS)} FROM clients WHERE id = ?"  # noqa: S608
_SELECT_NOTES = f"SELECT {', '.join(_NOTE_FIELDS)} FROM notes WHERE id = ?"  # noqa: S608
_SELECT_AUDIT = f"SELECT {', '.join(_AUDIT_FIELDS)} FROM audit WHERE seq = ?"  # noqa: S608
_SELECT_PENDING = (
    "SELECT o.kind, o.ref, o.gen, o.prepared_gen, o.prepared_rev, o.prepared_key_id, "
    "o.prepared_etag FROM sync_outbox o "
    "ORDER BY CASE o.kind WHEN 'items_key' THEN 0 WHEN 'client' THEN 1 "
    "WHEN 'note' THEN 2 WHEN 'addendum' THEN 3 ELSE 4 END, "
    "CASE WHEN o.kind = 'audit' THEN CAST(o.ref AS INTEGER) ELSE 0 END, o.ref LIMIT ?"
)
_UPSERT_STATE = (
    "INSERT INTO sync_state (item_id, kind, etag, rev) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (item_id) DO UPDATE SET etag = excluded.etag, "
    "rev = max(sync_state.rev, excluded.rev)"
)
_UPSERT_REFUSED = (
    "INSERT INTO sync_refused (item_id, kind, reason, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (item_id) DO UPDATE SET reason = excluded.reason, at = excluded.at"
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One sealed version of a queued record, made from its ``gen`` with ``rev``. The
    ``blob`` exists in memory only, for the push; read back from the outbox it is None
    (only the state is kept: enough to recognise the push as ours)."""

    gen: int
    rev: int
    key_id: str
    etag: str
    blob: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Pending:
    """One outbox row with what the server is known to hold for it."""

    kind: str
    ref: str
    item_id: str
    gen: int
    known_etag: str | None
    known_rev: int
    prepared: Prepared | None
    # A push recorded by an earlier run whose answer never arrived (a crash, a lost
    # response); set by the engine when it seals the row again.
    earlier: Prepared | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """A pulled (or conflicting) item, decrypted and checked by app/sync."""

    item_id: str
    kind: str
    etag: str
    rev: int
    content: Content = field(repr=False)


@dataclass(slots=True)
class ApplyReport:
    applied: int = 0
    conflicts: int = 0
    failed: list[str] = field(default_factory=list)  # item ids
    held: list[Incoming] = field(default_factory=list)  # their parent is not here yet


def without_rev(content: Mapping[str, Any]) -> Content:
    return {k: v for k, v in content.items() if k != "rev"}


# An applied page's audit entry: (report, rows queued) -> (action, detail, settings).
PageRecord = Callable[[ApplyReport, int], tuple[str, str, Mapping[str, str | None] | None]]


class SyncStore:
    def __init__(
        self, db: Database, audit: AuditLog | None, vault_id: str, now: Callable[[], str]
    ) -> None:
        self._db = db
        self._audit = audit
        self.vault_id = vault_id
        self._now = now

    # -- settings (meta, prefixed) -----------------------------------------------------
    def get(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM meta WHERE key = ?", (f"sync_{key}",))
        return None if row is None else str(row[0])

    def put(self, values: Mapping[str, str | None]) -> None:
        """Set (or, with None, remove) several settings in one transaction."""
        with self._db.transaction() as conn:
            _put_settings(conn, values)

    def record(
        self, action: str, detail: str, settings: Mapping[str, str | None] | None = None
    ) -> None:
        """An audit entry (``account``/``sync``, counts only), written at once, with
        ``settings`` (as in ``put``) in the same transaction."""
        with self._db.transaction() as conn:
            _put_settings(conn, settings or {})
            if self._audit is not None:
                self._audit.append(conn, action, detail=detail)

    # -- ids ---------------------------------------------------------------------------
    def item_id(self, kind: str, ref: str) -> str:
        if kind == KIND_AUDIT:
            return str(uuid.uuid5(AUDIT_NAMESPACE, f"{self.vault_id}:{ref}"))
        return ref

    # -- outbox ------------------------------------------------------------------------
    def enqueue(self, kind: str, ref: str) -> None:
        with self._db.transaction() as conn:
            _touch(conn, kind, ref)

    def enqueue_all(self) -> int:
        """Queue every record (first sign-in of a vault that has data, or a server that
        lost its data). Returns how many rows the outbox holds afterwards."""
        with self._db.transaction() as conn:
            for kind, column, table in (
                (KIND_CLIENT, "id", "clients"),
                (KIND_NOTE, "id", "notes"),
                (KIND_ADDENDUM, "id", "addenda"),
                (KIND_AUDIT, "CAST(seq AS TEXT)", "audit"),
                (KIND_TEMPLATE, "id", "user_templates"),
                (KIND_SIGNER, "id", "signers"),
            ):
                conn.execute(
                    f"INSERT INTO sync_outbox (kind, ref) SELECT '{kind}', {column} "  # noqa: S608
                    f"FROM {table} WHERE true ON CONFLICT (kind, ref) DO NOTHING"
                )
        return self.pending_count()

    def only_audit_queued_since(self, oldest: str) -> bool:
        """Whether the outbox holds nothing but audit entries (or nothing), none of them
        written before ``oldest`` (an ISO time): bookkeeping that can wait for the next
        push (docs/PROTOCOL.md, "Deferred audit entries")."""
        others, first = self._db.one(
            "SELECT coalesce(sum(o.kind != 'audit'), 0), min(a.at) FROM sync_outbox o "
            "LEFT JOIN audit a ON o.kind = 'audit' AND a.seq = CAST(o.ref AS INTEGER)"
        )
        return int(others) == 0 and (first is None or str(first) >= oldest)

    def pending_count(self) -> int:
        return int(self._db.one("SELECT count(*) FROM sync_outbox")[0])

    def pending_by_kind(self) -> dict[str, int]:
        rows = self._db.query("SELECT kind, count(*) FROM sync_outbox GROUP BY kind")
        return {str(k): int(n) for k, n in rows}

    def pending(
        self, limit: int, *, record: Callable[[int], tuple[str, str]] | None = None
    ) -> list[Pending]:
        """Outbox rows, parents first (clients, notes, addenda, audit), oldest refs first.

        With ``record``, an audit entry ``(action, detail) = record(queued)`` (``queued``:
        the rows queued before it) is written first, in the same transaction, so it is
        among the rows returned and this push carries it: a sync leaves nothing queued
        behind it."""
        if record is None or self._audit is None:
            rows = self._db.query(_SELECT_PENDING, (limit,))
        else:
            with self._db.transaction() as conn:
                queued = int(conn.execute("SELECT count(*) FROM sync_outbox").fetchone()[0])
                action, detail = record(queued)
                self._audit.append(conn, action, detail=detail)
                rows = conn.execute(_SELECT_PENDING, (limit,)).fetchall()
        ids = [self.item_id(str(r[0]), str(r[1])) for r in rows]
        known = self.known(ids)
        out: list[Pending] = []
        for row, item_id in zip(rows, ids, strict=True):
            kind, ref, gen, p_gen, p_rev, p_key, p_etag = row
            prepared = None
            if p_etag is not None:
                prepared = Prepared(int(p_gen), int(p_rev), str(p_key), str(p_etag))
            etag, rev = known.get(item_id, (None, 0))
            out.append(Pending(str(kind), str(ref), item_id, int(gen), etag, rev, prepared))
        return out

    def save_prepared(self, rows: Iterable[tuple[Pending, Prepared]]) -> None:
        """Record the state of pushes about to be sent (never the blobs)."""
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE sync_outbox SET prepared_gen = ?, prepared_rev = ?, "
                "prepared_key_id = ?, prepared_etag = ? WHERE kind = ? AND ref = ?",
                [(p.gen, p.rev, p.key_id, p.etag, pending.kind, pending.ref)
                 for pending, p in rows],
            )  # fmt: skip

    def acknowledge(
        self, acks: Iterable[tuple[Pending, str]],
        settings: Mapping[str, str | None] | None = None,
    ) -> None:  # fmt: skip
        """The server holds ``pending.prepared`` (etag given): remember it, and drop the
        outbox row unless the record changed again since it was sealed. ``settings`` (as
        in ``put``) are written in the same transaction."""
        states: list[_State] = []
        settled: list[tuple[str, str, int]] = []
        for pending, etag in acks:
            p = pending.prepared
            if p is None:
                continue
            states.append((pending.item_id, pending.kind, etag, p.rev))
            settled.append((pending.kind, pending.ref, p.gen))
        with self._db.transaction() as conn:
            conn.executemany(_UPSERT_STATE, states)
            _settle_many(conn, settled)
            _put_settings(conn, settings or {})

    def rebase(self, pending: Pending, etag: str | None, rev: int) -> None:
        """Forget the prepared blob and expect ``etag`` on the server (a stale etag, or
        a server that lost the item); the row stays queued."""
        with self._db.transaction() as conn:
            _set_state(conn, pending.item_id, pending.kind, etag, max(rev, pending.known_rev))
            _clear_prepared(conn, pending.kind, pending.ref)

    # -- state -------------------------------------------------------------------------
    def known(self, item_ids: Iterable[str]) -> dict[str, tuple[str | None, int]]:
        ids = list(item_ids)
        out: dict[str, tuple[str | None, int]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for item_id, etag, rev in self._db.query(
                f"SELECT item_id, etag, rev FROM sync_state WHERE item_id IN ({marks})",  # noqa: S608
                tuple(chunk),
            ):
                out[str(item_id)] = (None if etag is None else str(etag), int(rev))
        return out

    def forget_etags(self) -> None:
        """The server lost its data (a restore): keep the revs, forget the etags."""
        with self._db.transaction() as conn:
            conn.execute("UPDATE sync_state SET etag = NULL")
            conn.execute("DELETE FROM meta WHERE key = 'sync_cursor'")

    def refuse(self, item_id: str, kind: str, reason: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(_UPSERT_REFUSED, (item_id, kind, reason, self._now()))

    def forget_refused(self, reason: str) -> int:
        """Drop the refusals with this reason (they may apply now: pull them again).
        Returns how many there were."""
        with self._db.transaction() as conn:
            return int(
                conn.execute("DELETE FROM sync_refused WHERE reason = ?", (reason,)).rowcount
            )

    def refused(self) -> list[dict[str, str]]:
        rows = self._db.query("SELECT item_id, kind, reason, at FROM sync_refused ORDER BY at")
        return [{"item_id": r[0], "kind": r[1], "reason": r[2], "at": r[3]} for r in rows]

    def conflicts(self, note_id: str | None = None) -> list[dict[str, Any]]:
        """Conflict revisions: the losing texts of concurrent edits (shown in history)."""
        sql = (
            "SELECT note_id, revision, saved_at, author FROM note_revisions WHERE conflict = 1"  # noqa: S608
            + (" AND note_id = ?" if note_id else "")
            + " ORDER BY note_id, revision"
        )
        rows = self._db.query(sql, (note_id,) if note_id else ())
        return [{"note_id": r[0], "revision": r[1], "saved_at": r[2], "author": r[3]}
                for r in rows]  # fmt: skip

    def remote_audit(self) -> list[dict[str, Any]]:
        rows = self._db.query(
            f"SELECT {', '.join(_AUDIT_FIELDS)} FROM sync_remote_audit ORDER BY at, seq"  # noqa: S608
        )
        return [dict(zip(_AUDIT_FIELDS, r, strict=True)) for r in rows]

    # -- record -> content ---------------------------------------------------------------
    def content(self, kind: str, ref: str) -> Content | None:
        """The item content of a record (without ``rev``), or None if it does not exist."""
        with self._db.lock:
            return _read(self._db.conn, kind, ref, self.vault_id)

    # -- content -> record ---------------------------------------------------------------
    def apply(
        self, incoming: Sequence[Incoming], merge: Merge, *, cursor: str | None = None,
        refusals: Sequence[tuple[str, str, str]] = (), hold: bool = False,
        record: PageRecord | None = None,
    ) -> ApplyReport:  # fmt: skip
        """Apply pulled items (parents first), record ``refusals`` (item id, kind, reason)
        and store ``cursor``, all in one transaction (one pulled page).

        A record with a local change not yet pushed (or a signed note) is merged with
        ``merge(kind, local, remote) -> (content, conflicts)``; when the result differs
        from the server's, it stays queued to be pushed. An item whose parent record is
        missing fails, or with ``hold`` (more pages follow, which may bring the parent) is
        returned in ``report.held`` untouched, and then the cursor is *not* stored: it
        would pass an item not yet applied. Failed items are recorded as refused. With
        ``record``, an audit entry ``(action, detail, settings) = record(report,
        queued)`` is written last, outside the guard, so it is queued to be pushed
        (``queued``: the rows queued before it), with ``settings`` (as in ``put``; None:
        none) in the same transaction."""
        ordered = sorted(incoming, key=lambda i: KIND_ORDER.get(i.kind, 9))
        args = (ordered, merge, cursor, refusals, hold, record)
        try:
            return self._apply_page(*args, isolate=False)
        except _IsolateItems:
            # An item failed part-way: the page was rolled back; apply it again with a
            # savepoint per item, so only the failing item is left out.
            return self._apply_page(*args, isolate=True)

    def _apply_page(
        self, ordered: list[Incoming], merge: Merge, cursor: str | None,
        refusals: Sequence[tuple[str, str, str]], hold: bool,
        record: PageRecord | None, *, isolate: bool,
    ) -> ApplyReport:  # fmt: skip
        report = ApplyReport()
        states: list[_State] = []
        fresh: list[str] = []  # notes inserted here, indexed (FTS) in bulk at the end
        refused = list(refusals)
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO sync_apply_guard (one) VALUES (1)")
            conn.execute("INSERT INTO notes_fts_defer (one) VALUES (1)")
            for n, item in enumerate(ordered):
                if _parent_missing(conn, item):
                    if hold:
                        report.held.append(item)
                    else:
                        report.failed.append(item.item_id)
                        refused.append((item.item_id, item.kind, _PARENT_MISSING))
                    continue
                if not isolate:
                    try:
                        report.conflicts += self._apply_one(conn, item, merge, states, fresh)
                    except _BAD_ITEM:
                        raise _IsolateItems() from None
                    report.applied += 1
                    continue
                conn.execute(f"SAVEPOINT item{n}")
                mark, fresh_mark = len(states), len(fresh)
                try:
                    report.conflicts += self._apply_one(conn, item, merge, states, fresh)
                    conn.execute(f"RELEASE item{n}")
                    report.applied += 1
                except _BAD_ITEM:  # reported; the rest still applies
                    conn.execute(f"ROLLBACK TO item{n}")
                    conn.execute(f"RELEASE item{n}")
                    del states[mark:], fresh[fresh_mark:]
                    if hold:
                        report.held.append(item)
                    else:
                        report.failed.append(item.item_id)
                        refused.append((item.item_id, item.kind, "could not be applied"))
            conn.execute("DELETE FROM sync_apply_guard")
            conn.execute("DELETE FROM notes_fts_defer")
            # Each note is written at most once per page (an id appears once), so each
            # new note is indexed exactly once, here, before the transaction commits.
            for i in range(0, len(fresh), 2000):  # a page is at most 1000 items
                chunk = fresh[i : i + 2000]
                conn.execute(
                    "INSERT INTO notes_fts (rowid, title, body) SELECT -seq, title, body "  # noqa: S608
                    f"FROM notes WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
            conn.executemany(_UPSERT_STATE, states)
            now = self._now()
            conn.executemany(_UPSERT_REFUSED, [(i, k, r, now) for i, k, r in refused])
            if cursor is not None and not report.held:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('sync_cursor', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (cursor,),
                )
            if record is not None and self._audit is not None:
                queued = int(conn.execute("SELECT count(*) FROM sync_outbox").fetchone()[0])
                action, detail, settings = record(report, queued)
                self._audit.append(conn, action, detail=detail)
                _put_settings(conn, settings or {})
        return report

    def _apply_one(
        self, conn: Any, item: Incoming, merge: Merge, states: list[_State], fresh: list[str]
    ) -> int:
        """Apply one item; its new sync state is appended to ``states`` (written by the
        caller in one statement), and the id of a note it inserts to ``fresh`` (the
        caller indexes those: the FTS trigger is deferred while it applies)."""
        kind = item.kind
        state = (item.item_id, kind, item.etag, item.rev)
        if kind == KIND_AUDIT:
            if item.content.get("vault_id") != self.vault_id:
                _write_remote_audit(conn, item.item_id, item.content)
            states.append(state)
            return 0
        ref = item.item_id
        row = conn.execute(
            "SELECT gen, prepared_gen, prepared_etag FROM sync_outbox WHERE kind = ? AND ref = ?",
            (kind, ref),
        ).fetchone()
        states.append(state)
        if row is not None and row[2] == item.etag:
            _settle(conn, kind, ref, int(row[1]))  # our own push, acknowledged late
            return 0
        remote = without_rev(item.content)
        local = _read(conn, kind, ref, self.vault_id)
        signed = local is not None and kind == KIND_NOTE and local.get("signed_at") is not None
        if local is None or (row is None and not signed):
            _write(conn, kind, ref, remote, local)
            if local is None and kind == KIND_NOTE:
                fresh.append(ref)
            return 0
        if local == remote:
            if row is not None:
                conn.execute("DELETE FROM sync_outbox WHERE kind = ? AND ref = ?", (kind, ref))
            return 0
        merged, conflicts = merge(kind, local, remote)
        if merged != local:
            _write(conn, kind, ref, merged, local)
        if merged == remote:
            conn.execute("DELETE FROM sync_outbox WHERE kind = ? AND ref = ?", (kind, ref))
        else:
            _touch(conn, kind, ref)
            _clear_prepared(conn, kind, ref)
        return conflicts

    def merge_local(self, item: Incoming, merge: Merge) -> int:
        """A push conflict: merge the server's current version into the local record,
        expect its etag from now on, and keep the record queued. Returns conflicts."""
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO sync_apply_guard (one) VALUES (1)")
            ref = item.item_id if item.kind != KIND_AUDIT else str(item.content.get("seq"))
            local = _read(conn, item.kind, ref, self.vault_id)
            conflicts = 0
            remote = without_rev(item.content)
            merged: Content | None = None
            if local is not None and item.kind in (KIND_CLIENT, KIND_NOTE, KIND_TEMPLATE):
                merged, conflicts = merge(item.kind, local, remote)
                if merged != local:
                    _write(conn, item.kind, ref, merged, local)
            conn.execute("DELETE FROM sync_apply_guard")
            _set_state(conn, item.item_id, item.kind, item.etag, item.rev)
            if item.kind in IMMUTABLE_KINDS or merged == remote:
                # Immutable: the server's copy is the same record (ids are unique).
                conn.execute("DELETE FROM sync_outbox WHERE kind = ? AND ref = ?",
                             (item.kind, ref))  # fmt: skip
            else:
                _touch(conn, item.kind, ref)
                _clear_prepared(conn, item.kind, ref)
        return conflicts


# -- helpers (inside the caller's transaction) ------------------------------------------
def _touch(conn: Any, kind: str, ref: str) -> None:
    conn.execute(
        "INSERT INTO sync_outbox (kind, ref) VALUES (?, ?) "
        "ON CONFLICT (kind, ref) DO UPDATE SET gen = gen + 1",
        (kind, ref),
    )


_CLEAR_PREPARED = (
    "UPDATE sync_outbox SET prepared_gen = NULL, prepared_rev = NULL, prepared_key_id = NULL, "
    "prepared_etag = NULL WHERE kind = ? AND ref = ?"
)
_SETTLE = "DELETE FROM sync_outbox WHERE kind = ? AND ref = ? AND gen = ?"


def _clear_prepared(conn: Any, kind: str, ref: str) -> None:
    conn.execute(_CLEAR_PREPARED, (kind, ref))


def _settle(conn: Any, kind: str, ref: str, prepared_gen: int) -> None:
    conn.execute(_SETTLE, (kind, ref, prepared_gen))
    _clear_prepared(conn, kind, ref)


def _settle_many(conn: Any, rows: Sequence[tuple[str, str, int]]) -> None:
    """``_settle`` for many rows: drop each (kind, ref) still at the sealed ``gen``; a
    row changed since keeps its place, without the prepared state."""
    conn.executemany(_SETTLE, rows)
    conn.executemany(_CLEAR_PREPARED, [(kind, ref) for kind, ref, _ in rows])


def _put_settings(conn: Any, values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (f"sync_{key}",))
        else:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"sync_{key}", value),
            )


_PARENT_MISSING = "could not be applied (its parent record is missing)"
_PARENTS = {KIND_NOTE: ("client_id", "SELECT 1 FROM clients WHERE id = ?"),
            KIND_ADDENDUM: ("note_id", "SELECT 1 FROM notes WHERE id = ?")}  # fmt: skip


def _parent_missing(conn: Any, item: Incoming) -> bool:
    """A note whose client, or an addendum whose note, is not in the vault (yet)."""
    parent = _PARENTS.get(item.kind)
    if parent is None:
        return False
    ref = item.content.get(parent[0])
    return isinstance(ref, str) and conn.execute(parent[1], (ref,)).fetchone() is None


class _IsolateItems(Exception):
    """An item failed in a page applied without savepoints (internal)."""


def _set_state(conn: Any, item_id: str, kind: str, etag: str | None, rev: int) -> None:
    conn.execute(_UPSERT_STATE, (item_id, kind, etag, rev))


def _hex(value: Any) -> str:
    return bytes(value).hex()


def _read(conn: Any, kind: str, ref: str, vault_id: str) -> Content | None:
    if kind == KIND_CLIENT:
        row = conn.execute(
            _SELECT_CLIENTS,
            (ref,),
        ).fetchone()
        return None if row is None else dict(zip(_CLIENT_FIELDS, row, strict=True))
    if kind == KIND_NOTE:
        row = conn.execute(
            _SELECT_NOTES,
            (ref,),
        ).fetchone()
        if row is None:
            return None
        note: Content = dict(zip(_NOTE_FIELDS, row, strict=True))
        note["tags"] = [r[0] for r in conn.execute(
            "SELECT tag FROM note_tags WHERE note_id = ? ORDER BY tag", (ref,))]  # fmt: skip
        note["revisions"] = [
            {"revision": r[0], "title": r[1], "body": r[2], "author": r[3], "saved_at": r[4],
             "conflict": r[5]}
            for r in conn.execute(
                "SELECT revision, title, body, author, saved_at, conflict FROM note_revisions "
                "WHERE note_id = ? ORDER BY revision", (ref,))
        ]  # fmt: skip
        sig = conn.execute(
            "SELECT signed_at, signer, public_key, content_hash, signature FROM "
            "note_signatures WHERE note_id = ?", (ref,)
        ).fetchone()  # fmt: skip
        note["signature"] = None if sig is None else {
            "signed_at": sig[0], "signer": sig[1], "public_key": _hex(sig[2]),
            "content_hash": _hex(sig[3]), "signature": _hex(sig[4]),
        }  # fmt: skip
        return note
    if kind == KIND_ADDENDUM:
        row = conn.execute(
            "SELECT note_id, body, author, created_at, note_hash, content_hash, public_key, "
            "signature FROM addenda WHERE id = ?", (ref,)
        ).fetchone()  # fmt: skip
        if row is None:
            return None
        return {"note_id": row[0], "body": row[1], "author": row[2], "created_at": row[3],
                "note_hash": _hex(row[4]), "content_hash": _hex(row[5]),
                "public_key": _hex(row[6]), "signature": _hex(row[7])}  # fmt: skip
    if kind == KIND_AUDIT:
        row = conn.execute(
            _SELECT_AUDIT,
            (int(ref),),
        ).fetchone()
        if row is None:
            return None
        return {"vault_id": vault_id, **dict(zip(_AUDIT_FIELDS, row, strict=True))}
    if kind == KIND_TEMPLATE:
        row = conn.execute(
            "SELECT name, kind, description, sections, archived, created_at, updated_at "
            "FROM user_templates WHERE id = ?", (ref,)
        ).fetchone()  # fmt: skip
        if row is None:
            return None
        return {"name": row[0], "kind": row[1], "description": row[2],
                "sections": json.loads(row[3]), "archived": bool(row[4]),
                "created_at": row[5], "updated_at": row[6]}  # fmt: skip
    if kind == KIND_SIGNER:
        row = conn.execute(
            "SELECT public_key, device, added_at FROM signers WHERE id = ?", (ref,)
        ).fetchone()
        if row is None:
            return None
        return {"public_key": _hex(row[0]), "device": row[1], "added_at": row[2]}
    return None


def _write(conn: Any, kind: str, ref: str, c: Content, local: Content | None) -> None:
    if kind == KIND_CLIENT:
        values = tuple(c[f] for f in _CLIENT_FIELDS)
        conn.execute(
            f"INSERT INTO clients (id, {', '.join(_CLIENT_FIELDS)}) VALUES (?, ?, ?, ?, ?, ?, "  # noqa: S608
            "?, ?) ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{f} = excluded.{f}" for f in _CLIENT_FIELDS),
            (ref, *values),
        )
    elif kind == KIND_NOTE:
        _write_note(conn, ref, c, local)
    elif kind == KIND_ADDENDUM:
        conn.execute(
            "INSERT INTO addenda (id, note_id, body, author, created_at, note_hash, "
            "content_hash, public_key, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (ref, c["note_id"], c["body"], c["author"], c["created_at"],
             bytes.fromhex(c["note_hash"]), bytes.fromhex(c["content_hash"]),
             bytes.fromhex(c["public_key"]), bytes.fromhex(c["signature"])),
        )  # fmt: skip
    elif kind == KIND_TEMPLATE:
        _write_template(conn, ref, c)
    elif kind == KIND_SIGNER:
        public = bytes.fromhex(c["public_key"])
        if len(public) != 32 or signer_id(public) != ref:
            raise ValueError("a signer item must carry the key its id is derived from")
        conn.execute(
            "INSERT INTO signers (id, public_key, device, added_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (ref, public, str(c["device"]), str(c["added_at"])),
        )
    else:
        raise ValueError("unknown item kind")


def _write_template(conn: Any, ref: str, c: Content) -> None:
    sections = c["sections"]
    if (
        c["kind"] not in NOTE_KINDS
        or not isinstance(sections, list)
        or not all(isinstance(x, str) for x in sections)
    ):
        raise ValueError("malformed template item")
    conn.execute(
        "INSERT INTO user_templates (id, name, kind, description, sections, archived, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
        "SET name = excluded.name, kind = excluded.kind, description = excluded.description, "
        "sections = excluded.sections, archived = excluded.archived, "
        "updated_at = excluded.updated_at",
        (ref, str(c["name"]), c["kind"], str(c["description"]), json.dumps(sections),
         int(bool(c["archived"])), str(c["created_at"]), str(c["updated_at"])),
    )  # fmt: skip


def _write_note(conn: Any, ref: str, c: Content, local: Content | None) -> None:
    values = tuple(c[f] for f in _NOTE_FIELDS)
    if local is None:
        conn.execute(
            f"INSERT INTO notes (id, {', '.join(_NOTE_FIELDS)}) "  # noqa: S608
            f"VALUES (?, {', '.join('?' * len(_NOTE_FIELDS))})",
            (ref, *values),
        )
    elif local.get("signed_at") is None:
        conn.execute(
            "UPDATE notes SET " + ", ".join(f"{f} = ?" for f in _NOTE_FIELDS) + " WHERE id = ?",  # noqa: S608
            (*values, ref),
        )
    elif any(local[f] != c[f] for f in _NOTE_FIELDS):
        raise ValueError("a signed note cannot change")
    if local is not None:  # a new note has none (a no-op DELETE still costs ~0.2 ms)
        conn.execute("DELETE FROM note_revisions WHERE note_id = ?", (ref,))
    conn.executemany(
        "INSERT INTO note_revisions (note_id, revision, title, body, author, saved_at, "
        "conflict) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(ref, r["revision"], r["title"], r["body"], r["author"], r["saved_at"],
          _conflict_state(r)) for r in c["revisions"]],
    )  # fmt: skip
    if local is None or local.get("tags") != c["tags"]:
        if local is not None:
            conn.execute("DELETE FROM note_tags WHERE note_id = ?", (ref,))
        conn.executemany("INSERT INTO note_tags (note_id, tag) VALUES (?, ?)",
                         [(ref, t) for t in c["tags"]])  # fmt: skip
    sig = c.get("signature")
    if sig is not None and (local is None or local.get("signature") is None):
        conn.execute(
            "INSERT INTO note_signatures (note_id, signed_at, signer, public_key, "
            "content_hash, signature) VALUES (?, ?, ?, ?, ?, ?)",
            (ref, sig["signed_at"], sig["signer"], bytes.fromhex(sig["public_key"]),
             bytes.fromhex(sig["content_hash"]), bytes.fromhex(sig["signature"])),
        )  # fmt: skip


def _write_remote_audit(conn: Any, item_id: str, c: Content) -> None:
    conn.execute(
        f"INSERT INTO sync_remote_audit (item_id, {', '.join(_AUDIT_FIELDS)}) "  # noqa: S608
        f"VALUES (?, {', '.join('?' * len(_AUDIT_FIELDS))}) ON CONFLICT (item_id) DO NOTHING",
        (item_id, *(c[f] for f in _AUDIT_FIELDS)),
    )


def _conflict_state(rev: Mapping[str, Any]) -> int:
    """0 none, 1 open, 2 resolved (app/vault/models.py); a boolean reads as 0 or 1."""
    value = int(rev.get("conflict") or 0)
    return value if value in (0, 1, 2) else 0


def dumps(content: Mapping[str, Any]) -> str:
    """Canonical JSON, for comparing contents."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"))
