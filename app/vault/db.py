"""The SQLCipher connection: keying, pragmas, transactions, error mapping, migrations.

Invariants:
- the database is keyed with the random DB key as a raw key (``x'…'``), never through
  SQLCipher's own passphrase KDF;
- ``secure_delete``, in-memory temp store and WAL are always on, so SQLite never spills
  plaintext to a temp file. SQLCipher always wipes and locks its own key and page-crypto
  buffers; ``cipher_memory_security`` (the same for *every* SQLite allocation, at about
  4x the cost of a sync) is opt-in with ``TACIT_MEMORY_SECURITY=on`` (docs/SECURITY.md,
  "Memory");
- every SQLCipher failure surfaces as a TacitError whose message is ours (never the
  engine's text, which could quote SQL): IntegrityError for undecryptable or malformed
  pages, StorageError for a full or unwritable disk;
- a transaction either commits whole or leaves the file as it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from app.errors import (
    IntegrityError,
    InternalError,
    InvalidInputError,
    NoteSignedError,
    StorageError,
    UnsupportedVersionError,
)
from app.vault.crypto import DbKey
from app.vault.schema import MIGRATIONS

SCHEMA_VERSION = MIGRATIONS[-1][0]

# Applied on every connection (the raw-engine baseline in bench/ uses the same list).
CONNECTION_PRAGMAS = (
    "PRAGMA foreign_keys = ON",
    "PRAGMA secure_delete = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
)

_CORRUPT_HINTS = ("not a database", "malformed", "corrupt", "hmac", "decrypt")
_STORAGE_HINTS = ("disk is full", "disk i/o", "readonly", "read-only", "unable to open")


def translate(exc: Exception) -> Exception:
    """Map a SQLCipher exception to a TacitError without leaking its text."""
    text = str(exc).lower()
    if "note_signed" in text:
        return NoteSignedError()
    if "audit_append_only" in text:
        return IntegrityError("the audit trail is append-only")
    if isinstance(exc, sqlcipher.IntegrityError):
        return InvalidInputError("that change breaks a rule of the record (missing client?)")
    if any(h in text for h in _STORAGE_HINTS):
        return StorageError()
    if "locked" in text or "busy" in text:
        return StorageError("the vault is busy in another Tacit process; try again")
    if isinstance(exc, sqlcipher.OperationalError) and "fts5" in text:
        return InvalidInputError("the search query could not be understood")
    if isinstance(exc, sqlcipher.OperationalError) and not any(h in text for h in _CORRUPT_HINTS):
        return InternalError()  # our SQL is wrong: a bug, not a damaged vault
    return IntegrityError("the vault database is corrupt or has been tampered with")


MEMORY_SECURITY_ENV = "TACIT_MEMORY_SECURITY"


def memory_security_wanted() -> bool:
    """Whether ``cipher_memory_security`` is asked for (``TACIT_MEMORY_SECURITY=on``; off
    by default). Process-wide in SQLCipher: once on, it stays on until the process ends."""
    return os.environ.get(MEMORY_SECURITY_ENV, "").strip().lower() in ("1", "on", "yes", "true")


MEMORY_SECURITY_PRAGMA = "PRAGMA cipher_memory_security"  # reads 1 when on (tacit status)


def key_pragma(db_key: DbKey) -> str:
    return f"PRAGMA key = \"x'{db_key.hex()}'\""


def connect(path: Path, db_key: DbKey, *, create: bool) -> sqlcipher.Connection:
    """Open and key the database and verify the key reads it. Raises IntegrityError,
    StorageError."""
    if not create and not path.exists():
        raise IntegrityError("the vault database file is missing")
    try:
        conn = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlcipher.Error as exc:
        raise translate(exc) from None
    try:
        if memory_security_wanted():
            conn.execute("PRAGMA cipher_memory_security = ON")
        conn.execute(key_pragma(db_key))
        # Reading the schema forces page 1 to be decrypted and its HMAC checked: a wrong
        # key or a damaged first page fails here, before anything is written.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        for pragma in CONNECTION_PRAGMAS:
            conn.execute(pragma)
    except sqlcipher.Error as exc:
        conn.close()
        raise translate(exc) from None
    return conn


class Database:
    """One keyed connection, serialised by a lock so the UI may use it from a worker
    thread while the main thread locks the vault."""

    def __init__(self, conn: sqlcipher.Connection) -> None:
        self._conn: sqlcipher.Connection | None = conn
        self.lock = threading.RLock()
        # Set once damage is seen: from then on nothing is written, so a damaged vault
        # is left exactly as it was found.
        self.damaged = False

    def _fail(self, exc: Exception) -> Exception:
        err = translate(exc)
        if type(err) is IntegrityError:
            self.damaged = True
        return err

    @property
    def conn(self) -> sqlcipher.Connection:
        if self._conn is None:
            raise IntegrityError("the vault database is closed")
        return self._conn

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Any]:
        with self.lock:
            try:
                rows: list[Any] = self.conn.execute(sql, params).fetchall()
                return rows
            except sqlcipher.Error as exc:
                raise self._fail(exc) from None

    def one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlcipher.Connection]:
        """BEGIN IMMEDIATE … COMMIT; ROLLBACK on any exception (which propagates)."""
        with self.lock:
            conn = self.conn
            if self.damaged:
                raise IntegrityError("the vault database is damaged; nothing more is written")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlcipher.Error as exc:
                raise self._fail(exc) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlcipher.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlcipher.Error):
                    raise self._fail(exc) from None
                raise

    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION. Raises UnsupportedVersionError for a
        database from a newer Tacit."""
        current = int(self.one("PRAGMA user_version")[0])
        if current > SCHEMA_VERSION:
            raise UnsupportedVersionError(
                f"the vault database has schema {current}; this Tacit knows {SCHEMA_VERSION}"
            )
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(version)}")
        return SCHEMA_VERSION

    def check(self) -> list[str]:
        """Full verification: every page's HMAC, then SQLite's structural check and the
        FTS index. Returns a list of problems (empty when sound)."""
        problems: list[str] = []
        with self.lock:
            try:
                for row in self.conn.execute("PRAGMA cipher_integrity_check"):
                    problems.append(str(row[0]))
                for row in self.conn.execute("PRAGMA integrity_check"):
                    if row[0] != "ok":
                        problems.append(str(row[0]))
                self.conn.execute("INSERT INTO notes_fts(notes_fts) VALUES ('integrity-check')")
            except sqlcipher.Error:
                problems.append("the database could not be read completely")
        if problems:
            self.damaged = True
        return problems

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                if not self.damaged:
                    with contextlib.suppress(sqlcipher.Error):
                        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                with contextlib.suppress(sqlcipher.Error):
                    self._conn.close()
                self._conn = None
