"""Database access for the sync server: SQLite (embedded, default) or PostgreSQL.

One small interface, ``Database.transaction()``, yields a ``Tx`` whose ``execute``,
``one`` and ``all`` take SQL written once with ``?`` placeholders; the PostgreSQL
implementation rewrites them to ``%s``. Everything above this module is dialect-free
except ``Tx.one_for_update`` (a row lock on PostgreSQL; nothing on SQLite, where a write
transaction already holds the database's single write lock).

Invariants:
- every transaction either commits whole or rolls back whole; an exception inside the
  ``with`` block rolls back and propagates;
- driver errors surface as ``UniqueViolation`` (a unique key clashed) or
  ``StorageUnavailable`` (locked, busy, connection lost: the client should retry), never
  with the driver's text, which may quote row values;
- durable transactions (the default) survive a power cut once committed; bookkeeping
  transactions (``durable=False``) may be lost in one, never half-applied;
- SQLite: WAL, ``synchronous=FULL`` (an acknowledged push survives power loss),
  ``busy_timeout``; write transactions start with ``BEGIN IMMEDIATE`` and are serialized
  in-process by a lock, so writers never deadlock on lock upgrades and queue fairly;
  other processes on the same file wait on ``busy_timeout``;
- PostgreSQL: a small thread-safe pool of our own (psycopg_pool is a separate package);
  a connection that saw an error or is not idle is closed, not reused.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import psycopg

Row = tuple[Any, ...]
Params = Sequence[object]
C = TypeVar("C")

POOL_TIMEOUT_S = 30.0
SQLITE_BUSY_TIMEOUT_MS = 10_000


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class StorageError(Exception):
    """Base of storage failures (internal; the API layer maps them)."""


class UniqueViolation(StorageError):
    """An INSERT or UPDATE clashed with a unique key."""


class StorageUnavailable(StorageError):
    """The database is busy, locked or unreachable; retrying later may succeed."""


class Tx:
    """One open transaction. Not thread-safe; lives inside one ``with`` block."""

    def __init__(self, cursor: Any, dialect: Dialect, translate: Callable[[str], str]) -> None:
        self._cur = cursor
        self.dialect = dialect
        self._translate = translate

    def one_for_update(self, sql: str, params: Params = ()) -> Row | None:
        """``one`` for a row this transaction will update: row-locked on PostgreSQL
        (``FOR UPDATE``); on SQLite the write transaction already excludes other writers."""
        suffix = " FOR UPDATE" if self.dialect is Dialect.POSTGRES else ""
        return self.one(sql + suffix, params)

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        self._cur.execute(self._translate(sql), tuple(params))
        return int(self._cur.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._cur.executemany(self._translate(sql), [tuple(r) for r in rows])

    def one(self, sql: str, params: Params = ()) -> Row | None:
        self._cur.execute(self._translate(sql), tuple(params))
        row = self._cur.fetchone()
        # Drain the statement: on SQLite a RETURNING statement finishes only when read.
        if row is not None:
            self._cur.fetchall()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        self._cur.execute(self._translate(sql), tuple(params))
        return [tuple(r) for r in self._cur.fetchall()]


class _Pool(Generic[C]):
    """At most ``size`` connections, reused last-in first-out."""

    def __init__(
        self,
        size: int,
        connect: Callable[[], C],
        healthy: Callable[[C], bool],
        close: Callable[[C], None],
    ) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[C] = queue.LifoQueue()
        self._connect, self._healthy, self._close = connect, healthy, close
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[C]:
        """A connection for one transaction. The caller ends its transaction (commit or
        rollback) before leaving; a connection that is not then healthy is closed."""
        if self._closed:
            raise StorageUnavailable("the database is closed")
        if not self._slots.acquire(timeout=POOL_TIMEOUT_S):
            raise StorageUnavailable("no database connection free")
        conn: C | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if not self._closed and self._healthy(conn):
                    self._idle.put(conn)
                else:
                    with contextlib.suppress(Exception):
                        self._close(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                self._close(conn)


class Database(ABC):
    dialect: Dialect

    @abstractmethod
    def transaction(
        self, *, write: bool = True, durable: bool = True
    ) -> contextlib.AbstractContextManager[Tx]:
        """A transaction. ``write=False`` promises no writes (cheaper on SQLite).
        ``durable=False`` is for bookkeeping that may be lost in a power cut (rate
        counters, challenges, last-seen times): its commit does not wait for the disk."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for humans (never includes a password)."""


class SqliteDatabase(Database):
    dialect = Dialect.SQLITE

    def __init__(self, path: Path, pool_size: int = 8) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write_lock = threading.Lock()
        self._pool: _Pool[sqlite3.Connection] = _Pool(
            pool_size, self._connect, lambda c: not c.in_transaction, lambda c: c.close()
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.OperationalError:
            raise StorageUnavailable("cannot open the SQLite database") from None
        return conn

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True, durable: bool = True) -> Iterator[Tx]:
        lock = self._write_lock if write else contextlib.nullcontext()
        with lock, self._pool.connection() as conn:
            try:
                # In WAL mode NORMAL skips the fsync at commit; the next FULL commit makes
                # everything before it durable too. Set per transaction (not inside one).
                conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                cur = conn.cursor()
                try:
                    yield Tx(cur, Dialect.SQLITE, _identity)
                finally:
                    cur.close()
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                mapped = _map_sqlite_error(exc)
                if mapped is not None:
                    raise mapped from None
                raise

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        return f"SQLite {self.path}"


class PostgresDatabase(Database):
    dialect = Dialect.POSTGRES

    def __init__(self, url: str, pool_size: int = 10) -> None:
        import psycopg  # imported here so SQLite-only deployments need no libpq

        self._psycopg = psycopg
        self._url = url
        self._pool: _Pool[psycopg.Connection[Any]] = _Pool(
            pool_size, self._connect, self._healthy, lambda c: c.close()
        )

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return self._psycopg.connect(self._url, autocommit=False, connect_timeout=10)
        except self._psycopg.OperationalError:
            raise StorageUnavailable("cannot connect to PostgreSQL") from None

    def _healthy(self, conn: psycopg.Connection[Any]) -> bool:
        from psycopg.pq import TransactionStatus

        return not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE

    @contextlib.contextmanager
    def transaction(self, *, write: bool = True, durable: bool = True) -> Iterator[Tx]:
        with self._pool.connection() as conn:
            try:
                with conn.cursor() as cur:
                    if not durable:
                        cur.execute("SET LOCAL synchronous_commit = off")
                    yield Tx(cur, Dialect.POSTGRES, _to_pyformat)
                conn.commit()
            except BaseException as exc:
                # A broken connection fails this too; the pool then drops it.
                with contextlib.suppress(Exception):
                    conn.rollback()
                mapped = self._map_error(exc)
                if mapped is not None:
                    raise mapped from None
                raise

    def _map_error(self, exc: BaseException) -> StorageError | None:
        errors = self._psycopg.errors
        if isinstance(exc, errors.UniqueViolation):
            return UniqueViolation("unique key clash")
        retryable = (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
            errors.QueryCanceled,
            errors.AdminShutdown,
            self._psycopg.OperationalError,
        )
        if isinstance(exc, retryable):
            return StorageUnavailable("PostgreSQL is busy or unreachable")
        return None

    def close(self) -> None:
        self._pool.close()

    def describe(self) -> str:
        parts = urlsplit(self._url)
        host = parts.hostname or "local socket"
        port = f":{parts.port}" if parts.port else ""
        return f"PostgreSQL {host}{port}{parts.path}"


def _identity(sql: str) -> str:
    return sql


@functools.lru_cache(maxsize=256)
def _to_pyformat(sql: str) -> str:
    # Our SQL never contains '?' or '%' except as placeholders (checked here, cheaply,
    # once per distinct statement thanks to the cache).
    if "%" in sql:
        raise ValueError("SQL for PostgreSQL must not contain '%'")
    return sql.replace("?", "%s")


def sqlite_path_from_url(url: str) -> Path | None:
    """``sqlite:///abs/path``, ``sqlite:rel/path`` or a bare path → Path; else None."""
    if url.startswith("sqlite://"):
        return Path(url[len("sqlite://") :])
    if url.startswith("sqlite:"):
        return Path(url[len("sqlite:") :])
    if "://" not in url:
        return Path(url)
    return None


def open_database(url: str, *, pool_size: int | None = None) -> Database:
    """Open (lazily connect) the database a URL names. Raises ValueError on an unknown
    scheme. Nothing is created in PostgreSQL; the SQLite file's folder is created."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, pool_size or 10)
    path = sqlite_path_from_url(url)
    if path is None or not str(path):
        raise ValueError("database URL must be sqlite:///PATH, a path, or postgresql://…")
    return SqliteDatabase(path.expanduser(), pool_size or 8)


def _map_sqlite_error(exc: BaseException) -> StorageError | None:
    """Our error for a SQLite driver error, or None (programming errors stay as they are)."""
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return UniqueViolation("unique key clash")
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return StorageUnavailable("the SQLite database is busy")
    return None
