"""Fixtures for the sync server tests.

- ``db_url``: a fresh, migrated database, parametrized over SQLite and a real PostgreSQL.
  The PostgreSQL cluster is started once per session by ``pg_cluster`` (initdb + postgres
  on a free port, as the ``postgres`` user when the tests run as root) and stopped at the
  end, also after failures. Without PostgreSQL binaries the PostgreSQL half is skipped
  with a loud reason, or fails when the CI environment variable is set.
- ``clock``: a manual clock injected into the server's settings.
- ``make_client``: builds the app for ``db_url`` with test settings (weak KDF floor, high
  rate limits unless a test lowers them) and returns an ``Api`` test client.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.sync.server.db import open_database
from app.sync.server.migrations import migrate
from app.sync.server.settings import TEST_KDF_FLOOR
from tests.sync.server.helpers import Api, ManualClock, make_api

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
PG_USER = "postgres"
# Tables emptied between tests on the shared PostgreSQL database (not the schema
# bookkeeping or the server secret).
DATA_TABLES = (
    "device_orders",
    "escrow_keys",
    "attachment_chunks",
    "items",
    "sessions",
    "retired_refresh_tokens",
    "devices",
    "recovery_codes",
    "challenges",
    "lockouts",
    "rate_limits",
    "accounts",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PgCluster:
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)


def _pg_missing_reason() -> str | None:
    if not PG_BIN_DIRS or not (PG_BIN_DIRS[0] / "initdb").exists():
        return (
            "POSTGRESQL SERVER TESTS SKIPPED: no PostgreSQL binaries under "
            "/usr/lib/postgresql/*/bin (install the postgresql package; CI requires them)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return "POSTGRESQL SERVER TESTS SKIPPED: running as root but no 'postgres' user"
    return None


def _pg_user_kwargs() -> dict[str, Any]:
    """initdb and postgres refuse to run as root: drop to the postgres user. Done by
    Popen itself (not runuser/su) so that the child we signal is postgres itself."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    reason = _pg_missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason.replace("SKIPPED", "MISSING (CI is set)"))
        pytest.skip(reason)
    bin_dir = PG_BIN_DIRS[0]
    base = Path(tempfile.mkdtemp(prefix="tacit-pg-"))
    data, sock_dir, log = base / "data", base / "sock", base / "postgres.log"
    sock_dir.mkdir()
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        for path in (base, sock_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                *(str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust"),
                *("--no-sync", "-E", "UTF8", "--locale=C"),
            ],
            check=True,
            capture_output=True,
            cwd=base,
            **_pg_user_kwargs(),
        )
        port = _free_port()
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    *(str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)),
                    *("-k", str(sock_dir), "-c", "listen_addresses=127.0.0.1"),
                    # Durability is irrelevant for a throwaway test cluster; speed is not.
                    *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                    *("-c", "full_page_writes=off", "-c", "max_connections=200"),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=base,
                **_pg_user_kwargs(),
            )
        cluster = PgCluster(port)
        _wait_ready(cluster, proc, log)
        yield cluster
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # "immediate" shutdown: a throwaway cluster
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(cluster: PgCluster, proc: subprocess.Popen[bytes], log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"postgres exited at start:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with psycopg.connect(cluster.url("postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    pytest.fail("postgres did not become ready within 30 s")


@pytest.fixture(scope="session")
def pg_template_url(pg_cluster: PgCluster) -> str:
    """One migrated database shared by the PostgreSQL tests (emptied between tests)."""
    url = pg_cluster.create_database("tacit_test")
    db = open_database(url)
    try:
        migrate(db, now_ms=int(time.time() * 1000))
    finally:
        db.close()
    return url


def _empty(url: str) -> None:
    import psycopg

    # DELETE, not TRUNCATE: on a few rows it is ~50x faster (no new relation files).
    with psycopg.connect(url) as conn:
        for table in DATA_TABLES:
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 - constant table names


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database on each backend."""
    if request.param == "postgres":
        url = str(request.getfixturevalue("pg_template_url"))
        _empty(url)
        return url
    target = Path(request.getfixturevalue("fast_tmp")) / f"{uuid.uuid4().hex}.sqlite3"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def fast_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the SQLite test databases live: tmpfs when there is one (an fsync there
    costs nothing, and the server fsyncs every durable commit), else the pytest tmp."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="tacit-server-tests-", dir=shm))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("sqlite")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time).
    Every copy shares the server secret, which no test depends on."""
    path = tmp_path_factory.mktemp("sqlite-template") / "server.sqlite3"
    db = open_database(f"sqlite:///{path}")
    try:
        migrate(db, now_ms=int(time.time() * 1000))
    finally:
        db.close()  # closing the last connection checkpoints the WAL into the file
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


TEST_SETTINGS: dict[str, Any] = {
    "kdf_floor": TEST_KDF_FLOOR,
    "ip_request_limit": 10_000,
    "ip_failure_limit": 10_000,
    "account_request_limit": 0,
}


@pytest.fixture
def make_client(db_url: str, clock: ManualClock) -> Iterator[Callable[..., Api]]:
    """``make_client(client_ip="…", **settings_overrides)`` → an Api bound to ``db_url``."""
    with contextlib.ExitStack() as stack:

        def factory(*, client_ip: str = "198.51.100.7", **overrides: Any) -> Api:
            settings = {**TEST_SETTINGS, **overrides}
            return stack.enter_context(make_api(db_url, clock, client_ip=client_ip, **settings))

        yield factory


@pytest.fixture
def api(make_client: Callable[..., Api]) -> Api:
    return make_client()
