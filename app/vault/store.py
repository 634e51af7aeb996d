"""Records in the open vault: clients, notes, revisions, tags, full-text search.

``RecordStore`` speaks SQL and returns typed records; it does no key handling and no
policy (that is the service's job). Every write is one transaction: it commits whole or
not at all. Input is validated here so a bad value is an InvalidInputError, never a
half-applied change.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import date
from typing import Any, TypeVar

from app.errors import AmbiguousIdError, InvalidInputError, NoteSignedError, NotFoundError
from app.vault.audit import AuditLog
from app.vault.db import Database
from app.vault.models import (
    CLIENT_STATUSES,
    CONFLICT_OPEN,
    CONFLICT_RESOLVED,
    MARK_END,
    MARK_START,
    NOTE_KINDS,
    Client,
    Conflict,
    Note,
    NoteSummary,
    Revision,
    SearchHit,
)

MAX_NAME = 200
MAX_TITLE = 300
MAX_BODY = 2_000_000  # characters; a note is prose, not an attachment
MAX_TAG = 64
MIN_PREFIX = 3
_TOKEN = re.compile(r"\w+", re.UNICODE)
_PHRASE = re.compile(r'"([^"]*)"')

_CLIENT_COLS = "id, name, dob, email, phone, status, created_at, updated_at"
_SUMMARY_COLS = (
    "id, client_id, kind, template, title, session_date, author, revision, created_at, "
    "updated_at, signed_at"
)
_NOTE_COLS = (
    "id, client_id, kind, template, title, session_date, body, author, revision, "
    "created_at, updated_at, signed_at"
)


_T = TypeVar("_T")
_FULL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _make(cls: Callable[..., _T], row: Sequence[Any], *extra: Any) -> _T:
    """A record from a row whose columns are in the record's field order."""
    return cls(*row, *extra)


def _text(value: str | None, field: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidInputError(f"{field} is required")
        return None
    value = value.strip()
    if required and not value:
        raise InvalidInputError(f"{field} is required")
    if len(value) > limit:
        raise InvalidInputError(f"{field} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidInputError(f"{field} contains a NUL character")
    return value or None


def _date(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidInputError(f"{field} must be a date as YYYY-MM-DD") from None


def _body(value: str) -> str:
    if len(value) > MAX_BODY:
        raise InvalidInputError(f"a note body is limited to {MAX_BODY} characters")
    if "\x00" in value:
        raise InvalidInputError("the note body contains a NUL character")
    return value


def fts_query(text: str, *, prefix_last: bool) -> str | None:
    """Turn what a person typed into a safe FTS5 query: quoted phrases stay phrases,
    every other word must match, the last word may be a prefix (search as you type).
    Never produces FTS5 syntax errors; returns None when nothing is searchable."""
    parts: list[str] = []
    for phrase in _PHRASE.findall(text):
        words = _TOKEN.findall(phrase)
        if words:
            parts.append('"' + " ".join(words) + '"')
    rest = _PHRASE.sub(" ", text)
    words = _TOKEN.findall(rest)
    for i, word in enumerate(words):
        # A trailing fragment is a prefix only from 3 characters: "s*" would expand to
        # every word starting with s (seconds, at any vault size), and the index keeps
        # 3-character prefixes.
        prefix = prefix_last and i == len(words) - 1 and not text.endswith(" ")
        parts.append(f'"{word}"' + ("*" if prefix and len(word) >= MIN_PREFIX else ""))
    return " ".join(parts) if parts else None


class RecordStore:
    def __init__(
        self, db: Database, now: Callable[[], str], author: Callable[[], str],
        audit: AuditLog | None = None,
    ) -> None:  # fmt: skip
        self._db = db
        self._now = now
        self._author = author
        self._audit = audit

    def _log(self, conn: Any, action: str, record_type: str, record_id: str | None,
             client_id: str | None, detail: str | None = None) -> None:  # fmt: skip
        if self._audit is not None:
            self._audit.append(conn, action, record_type, record_id, client_id, detail)

    def record(self, action: str, record_type: str | None = None, record_id: str | None = None,
               client_id: str | None = None, detail: str | None = None, *,
               now: bool = False) -> None:  # fmt: skip
        """An audit entry for something that changes nothing. Deferred (written with the
        next change or at lock) unless ``now``: exports and prints are written at once."""
        if self._audit is None:
            return
        if not now:
            self._audit.defer(action, record_type, record_id, client_id, detail)
            return
        with self._db.transaction() as conn:
            self._audit.append(conn, action, record_type, record_id, client_id, detail)

    def flush_audit(self) -> None:
        """Write deferred audit events now (no-op when there are none)."""
        if self._audit is None or not self._audit.pending:
            return
        audit = self._audit
        with self._db.transaction() as conn:
            audit.flush(conn)

    # -- ids ---------------------------------------------------------------------------
    def resolve_id(self, table: str, ident: str) -> str:
        """Full id, or a unique prefix of at least 4 characters (easier to type)."""
        if table not in ("clients", "notes"):
            raise ValueError("unknown table")
        ident = ident.strip().lower()
        if _FULL_ID.fullmatch(ident):
            return ident  # a whole id needs no lookup; the query that uses it checks it
        if len(ident) < 4 or not re.fullmatch(r"[0-9a-f-]+", ident):
            raise NotFoundError(f"no {table[:-1]} with id {ident!r}")
        rows = self._db.query(
            f"SELECT id FROM {table} WHERE id >= ? AND id < ? LIMIT 2",
            (ident, ident + "\uffff"),
        )
        if not rows:
            raise NotFoundError(f"no {table[:-1]} with id {ident!r}")
        if len(rows) > 1 and rows[0][0] != ident:
            raise AmbiguousIdError(f"{ident!r} matches more than one {table[:-1]}")
        return str(rows[0][0])

    # -- clients -----------------------------------------------------------------------
    def add_client(
        self, name: str, dob: str | None = None, email: str | None = None, phone: str | None = None
    ) -> Client:
        now = self._now()
        client = Client(
            id=str(uuid.uuid4()),
            name=_text(name, "name", MAX_NAME, required=True) or "",
            dob=_date(dob, "date of birth"),
            email=_text(email, "email", MAX_NAME),
            phone=_text(phone, "phone", MAX_NAME),
            status="active",
            created_at=now,
            updated_at=now,
        )
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT INTO clients ({_CLIENT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (client.id, client.name, client.dob, client.email, client.phone,
                 client.status, client.created_at, client.updated_at),
            )  # fmt: skip
            self._log(conn, "create", "client", client.id, client.id)
        return client

    def get_client(self, client_id: str) -> Client:
        cid = self.resolve_id("clients", client_id)
        row = self._db.one(f"SELECT {_CLIENT_COLS} FROM clients WHERE id = ?", (cid,))
        if row is None:
            raise NotFoundError(f"no client with id {client_id!r}")
        return _make(Client, row)

    def list_clients(self, *, status: str | None = None, query: str | None = None) -> list[Client]:
        sql = f"SELECT {_CLIENT_COLS} FROM clients"
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            if status not in CLIENT_STATUSES:
                raise InvalidInputError(f"status must be one of {', '.join(CLIENT_STATUSES)}")
            where.append("status = ?")
            params.append(status)
        if query:
            where.append("name LIKE ? ESCAPE '\\'")
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY name COLLATE NOCASE, id"
        return [_make(Client, row) for row in self._db.query(sql, tuple(params))]

    def update_client(self, client_id: str, **changes: str | None) -> Client:
        current = self.get_client(client_id)
        allowed = {"name", "dob", "email", "phone", "status"}
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInputError(f"unknown client field(s): {', '.join(sorted(unknown))}")
        values = {
            "name": current.name, "dob": current.dob, "email": current.email,
            "phone": current.phone, "status": current.status,
        }  # fmt: skip
        values.update(changes)
        name = _text(values["name"], "name", MAX_NAME, required=True)
        status = values["status"]
        if status not in CLIENT_STATUSES:
            raise InvalidInputError(f"status must be one of {', '.join(CLIENT_STATUSES)}")
        now = self._now()
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE clients SET name = ?, dob = ?, email = ?, phone = ?, status = ?, "
                "updated_at = ? WHERE id = ?",
                (name, _date(values["dob"], "date of birth"),
                 _text(values["email"], "email", MAX_NAME),
                 _text(values["phone"], "phone", MAX_NAME), status, now, current.id),
            )  # fmt: skip
            self._log(conn, "edit", "client", current.id, current.id,
                      detail="fields: " + ",".join(sorted(changes)))  # fmt: skip
        return self.get_client(current.id)

    def count(self, table: str) -> int:
        if table not in ("clients", "notes", "note_revisions", "audit", "note_signatures"):
            raise ValueError("unknown table")
        return int(self._db.one(f"SELECT count(*) FROM {table}")[0])

    # -- notes -------------------------------------------------------------------------
    def create_note(
        self,
        client_id: str,
        *,
        kind: str,
        template: str,
        title: str,
        body: str,
        session_date: str | None,
        tags: Iterable[str] = (),
    ) -> Note:
        if kind not in NOTE_KINDS:
            raise InvalidInputError(f"kind must be one of {', '.join(NOTE_KINDS)}")
        cid = self.get_client(client_id).id
        now = self._now()
        note = Note(
            id=str(uuid.uuid4()),
            client_id=cid,
            kind=kind,
            template=template,
            title=_text(title, "title", MAX_TITLE, required=True) or "",
            session_date=_date(session_date, "session date"),
            body=_body(body),
            author=self._author(),
            revision=1,
            created_at=now,
            updated_at=now,
            tags=self._clean_tags(tags),
        )
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO notes (id, client_id, kind, template, title, session_date, body, "
                "author, revision, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (note.id, note.client_id, note.kind, note.template, note.title,
                 note.session_date, note.body, note.author, note.revision, now, now),
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO note_tags (note_id, tag) VALUES (?, ?)",
                [(note.id, t) for t in note.tags],
            )
            self._log(conn, "create", "note", note.id, note.client_id, detail=note.kind)
        return note

    def _clean_tags(self, tags: Iterable[str]) -> tuple[str, ...]:
        cleaned: set[str] = set()
        for tag in tags:
            t = (_text(tag, "tag", MAX_TAG) or "").lower()
            if t:
                cleaned.add(t)
        return tuple(sorted(cleaned))

    def get_note(self, note_id: str) -> Note:
        nid = self.resolve_id("notes", note_id)
        row = self._db.one(
            f"SELECT {_NOTE_COLS}, (SELECT group_concat(tag, char(31)) FROM "
            "(SELECT tag FROM note_tags WHERE note_id = notes.id ORDER BY tag)) "
            "FROM notes WHERE id = ?",
            (nid,),
        )
        if row is None:
            raise NotFoundError(f"no note with id {note_id!r}")
        tags = tuple(row[-1].split("\x1f")) if row[-1] else ()
        return _make(Note, row[:-1], tags)

    def list_notes(
        self, client_id: str | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[NoteSummary]:
        """Newest session first; ``limit``/``offset`` page through large vaults."""
        if limit < 1 or offset < 0:
            raise InvalidInputError("limit must be positive and offset not negative")
        if client_id is not None:
            cid = self.resolve_id("clients", client_id)
            rows = self._db.query(
                f"SELECT {_SUMMARY_COLS} FROM notes WHERE client_id = ? "
                "ORDER BY session_date DESC, seq DESC LIMIT ? OFFSET ?",
                (cid, limit, offset),
            )
        else:
            rows = self._db.query(
                f"SELECT {_SUMMARY_COLS} FROM notes "
                "ORDER BY session_date DESC, seq DESC LIMIT ? OFFSET ?",
                (limit, offset),
            )
        if not rows and client_id is not None:
            self.get_client(client_id)  # an empty page of an unknown client is not_found
        return [_make(NoteSummary, row) for row in rows]

    def count_notes(self, client_id: str | None = None) -> int:
        if client_id is None:
            return self.count("notes")
        cid = self.resolve_id("clients", client_id)
        return int(self._db.one("SELECT count(*) FROM notes WHERE client_id = ?", (cid,))[0])

    def edit_note(
        self,
        note_id: str,
        *,
        body: str | None = None,
        title: str | None = None,
        session_date: str | None = None,
        expected_revision: int | None = None,
        amend_revision: int | None = None,
    ) -> Note:
        """Save a new revision; the superseded one moves to note_revisions. With
        ``expected_revision``, a concurrent save in between is refused. When the current
        revision is ``amend_revision`` it is overwritten instead (the service passes the
        revision an earlier autosave of the same editing session created).

        The note is read inside the write transaction, so a save from another thread in
        between cannot be lost."""
        with self._db.transaction() as conn:
            current = self.get_note(note_id)
            if current.signed_at is not None:
                raise NoteSignedError()
            if expected_revision is not None and expected_revision != current.revision:
                raise InvalidInputError("the note changed since it was opened; reload it")
            new_title = current.title
            if title is not None:  # required: _text raises on an empty title
                new_title = _text(title, "title", MAX_TITLE, required=True) or current.title
            new_body = _body(body) if body is not None else current.body
            new_date = (
                _date(session_date, "session date") if session_date is not None
                else current.session_date
            )  # fmt: skip
            if (new_title, new_body, new_date) == (
                current.title, current.body, current.session_date,
            ):  # fmt: skip
                return current  # nothing changed: no empty revision
            now = self._now()
            if amend_revision is not None and amend_revision == current.revision:
                conn.execute(
                    "UPDATE notes SET title = ?, body = ?, session_date = ?, updated_at = ? "
                    "WHERE id = ?",
                    (new_title, new_body, new_date, now, current.id),
                )
                return replace(current, title=new_title, body=new_body,
                               session_date=new_date, updated_at=now)  # fmt: skip
            note = self._new_revision(conn, current, new_title, new_body, new_date)
            self._log(conn, "edit", "note", current.id, current.client_id,
                      detail=f"revision {note.revision}")  # fmt: skip
        return note

    def _new_revision(
        self, conn: Any, current: Note, title: str, body: str, session_date: str | None
    ) -> Note:
        """Inside a transaction: the current text moves to the history and the given
        text becomes the next revision."""
        conn.execute(
            "INSERT INTO note_revisions (note_id, revision, title, body, author, saved_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (current.id, current.revision, current.title, current.body,
             current.author, current.updated_at),
        )  # fmt: skip
        author, now = self._author(), self._now()
        conn.execute(
            "UPDATE notes SET title = ?, body = ?, session_date = ?, revision = ?, "
            "author = ?, updated_at = ? WHERE id = ?",
            (title, body, session_date, current.revision + 1, author, now, current.id),
        )
        return replace(current, title=title, body=body, session_date=session_date,
                       revision=current.revision + 1, author=author, updated_at=now)  # fmt: skip

    def history(self, note_id: str) -> list[Revision]:
        """Every revision, oldest first; the last one is the current text."""
        note = self.get_note(note_id)
        rows = self._db.query(
            "SELECT note_id, revision, title, body, author, saved_at, conflict "
            "FROM note_revisions WHERE note_id = ? ORDER BY revision",
            (note.id,),
        )
        revisions = [_make(Revision, row[:6], False, row[6] == CONFLICT_OPEN) for row in rows]
        revisions.append(
            Revision(note.id, note.revision, note.title, note.body, note.author,
                     note.updated_at, current=True)
        )  # fmt: skip
        return revisions

    # -- sync conflicts ----------------------------------------------------------------
    def conflicts(self, note_id: str | None = None) -> list[Conflict]:
        """Open conflicts (oldest note first), of one note or of the whole vault."""
        where = "r.conflict = ?" + (" AND r.note_id = ?" if note_id else "")
        params: tuple[Any, ...] = (CONFLICT_OPEN,)
        if note_id:
            params += (self.resolve_id("notes", note_id),)
        rows = self._db.query(
            "SELECT r.note_id, n.client_id, r.revision, r.title, r.author, r.saved_at "
            "FROM note_revisions r JOIN notes n ON n.id = r.note_id "
            f"WHERE {where} ORDER BY n.created_at, r.note_id, r.revision",
            params,
        )
        return [_make(Conflict, row) for row in rows]

    def resolve_conflict(self, note_id: str, revision: int, *, keep: str) -> Note:
        """Resolve an open conflict. ``keep="current"``: the current text stays;
        ``keep="conflict"``: the conflicting text becomes a new current revision (the
        replaced text stays in the history, like any edit). Either way both texts remain
        in the history and the revision is no longer flagged. A signed note cannot take
        the other text (NoteSignedError)."""
        if keep not in ("current", "conflict"):
            raise InvalidInputError("keep must be 'current' or 'conflict'")
        with self._db.transaction() as conn:
            current = self.get_note(note_id)
            row = self._db.one(
                "SELECT title, body FROM note_revisions "
                "WHERE note_id = ? AND revision = ? AND conflict = ?",
                (current.id, revision, CONFLICT_OPEN),
            )
            if row is None:
                raise NotFoundError("no open conflict with that revision on this note")
            conn.execute(
                "UPDATE note_revisions SET conflict = ? WHERE note_id = ? AND revision = ?",
                (CONFLICT_RESOLVED, current.id, revision),
            )
            note = current
            if keep == "conflict":
                if current.signed_at is not None:
                    raise NoteSignedError()
                note = self._new_revision(conn, current, str(row[0]), str(row[1]),
                                          current.session_date)  # fmt: skip
            self._log(conn, "resolve_conflict", "note", current.id, current.client_id,
                      detail=f"revision {revision}: kept {keep}")  # fmt: skip
        return note

    def search(self, text: str, *, limit: int = 20, prefix_last: bool = True) -> list[SearchHit]:
        """Full-text search over titles and bodies: notes whose *title* matches come
        first, then notes matching in the body; within each, newest first.

        Why not bm25: ranking reads every match (tens of µs each under SQLCipher), so a
        common word in a 100,000-note vault costs seconds. Both queries here walk the
        index newest-first and stop after ``limit`` matches, so a search costs about the
        same at any vault size and for any word (docs/BENCHMARKS.md)."""
        query = fts_query(text, prefix_last=prefix_last)
        if query is None:
            return []
        limit = max(1, min(limit, 500))
        sql = (
            "SELECT n.id, n.client_id, n.kind, n.title, n.session_date, "
            "snippet(notes_fts, -1, ?, ?, '…', 12) "
            "FROM notes_fts JOIN notes n ON n.fts_key = notes_fts.rowid "
            "WHERE notes_fts MATCH ? ORDER BY notes_fts.rowid LIMIT ?"
        )
        title_rows = self._db.query(sql, (MARK_START, MARK_END, f"{{title}} : ({query})", limit))
        hits = [_make(SearchHit, row, 2.0) for row in title_rows]
        if len(hits) < limit:
            seen = {h.id for h in hits}
            for row in self._db.query(sql, (MARK_START, MARK_END, query, limit)):
                if row[0] not in seen and len(hits) < limit:
                    hits.append(_make(SearchHit, row, 1.0))
        return hits

    # -- meta --------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
