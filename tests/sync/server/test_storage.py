"""Storage: migrations on both backends, database URLs, and statelessness (two app
instances on one database behave as one server)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.sync import protocol
from app.sync.server.asgi import create_app
from app.sync.server.db import (
    PostgresDatabase,
    SqliteDatabase,
    UniqueViolation,
    open_database,
    sqlite_path_from_url,
)
from app.sync.server.migrations import LATEST_VERSION, load_server_secret, migrate, schema_version
from app.sync.server.settings import TEST_KDF_FLOOR, Settings
from tests.sync.server.conftest import PgCluster
from tests.sync.server.helpers import ManualClock, make_api


def _now() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        return cluster.create_database(f"empty_{abs(hash(tmp_path)) % 10**8}")
    return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"


def test_migrate_is_idempotent_and_keeps_the_secret(empty_db_url: str) -> None:
    db = open_database(empty_db_url)
    try:
        assert schema_version(db) == 0
        with pytest.raises(RuntimeError, match="migrate"):
            create_app(Settings(db_url=empty_db_url, origin="https://x"), db=db)
        db = open_database(empty_db_url)  # create_app closed the one it refused
        assert migrate(db, now_ms=_now()) == list(range(1, LATEST_VERSION + 1))
        secret = load_server_secret(db)
        assert len(secret) == 32
        assert migrate(db, now_ms=_now()) == []
        assert schema_version(db) == LATEST_VERSION
        assert load_server_secret(db) == secret
    finally:
        db.close()


def test_concurrent_migrators_do_not_collide(empty_db_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        db = open_database(empty_db_url)
        try:
            results.append(migrate(db, now_ms=_now()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [[], [], [], list(range(1, LATEST_VERSION + 1))]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        migrate(db, now_ms=_now())
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (LATEST_VERSION + 1, "from the future", 0),
            )
        with pytest.raises(RuntimeError, match="newer"):
            migrate(db, now_ms=_now())
    finally:
        db.close()


def test_database_urls(tmp_path: Path) -> None:
    assert sqlite_path_from_url("sqlite:///abs/file.db") == Path("/abs/file.db")
    assert sqlite_path_from_url("sqlite:rel/file.db") == Path("rel/file.db")
    assert sqlite_path_from_url("/plain/path.db") == Path("/plain/path.db")
    assert sqlite_path_from_url("mysql://x") is None
    db = open_database(f"sqlite:///{tmp_path / 'deep' / 'dir' / 's.db'}")
    assert isinstance(db, SqliteDatabase)
    assert (tmp_path / "deep" / "dir").is_dir()
    db.close()
    pg = open_database("postgresql://user:hunter2@db.example:5433/tacit")
    assert isinstance(pg, PostgresDatabase)
    assert "hunter2" not in pg.describe() and "db.example:5433/tacit" in pg.describe()
    with pytest.raises(ValueError, match="sqlite"):
        open_database("mysql://x/y")


def test_unique_violations_surface_as_ours(db_url: str) -> None:
    db = open_database(db_url)
    try:

        def insert_twice() -> None:
            with db.transaction() as tx:
                for _ in range(2):
                    tx.execute(
                        "INSERT INTO challenges (id, username, challenge, expires_at) "
                        "VALUES ('same', 'u', ?, 0)",
                        (b"x",),
                    )

        with pytest.raises(UniqueViolation):
            insert_twice()
        # The failed transaction left nothing behind and the connection is usable.
        with db.transaction(write=False) as tx:
            assert tx.one("SELECT COUNT(*) FROM challenges") == (0,)
    finally:
        db.close()


def test_two_app_instances_are_one_server(db_url: str) -> None:
    """Statelessness: a challenge from one process, the login on another, the token used
    on the first; fake KDF params agree (the server secret lives in the database)."""
    clock = ManualClock()
    settings: dict[str, Any] = {
        "kdf_floor": TEST_KDF_FLOOR,
        "ip_request_limit": 0,
        "account_request_limit": 0,
    }
    with make_api(db_url, clock, **settings) as one, make_api(db_url, clock, **settings) as two:
        acct = one.signup("shared")
        ch = one.challenge(acct.username)
        r = two.post(
            protocol.PATH_AUTH_LOGIN,
            json={
                "challenge_id": ch["challenge_id"],
                "username": acct.username,
                "signature": acct.sign(ch["challenge"]),
                "device": acct.device,
                "totp": one.fresh_totp(acct),
            },
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert one.get(protocol.PATH_DEVICES, token=token).status_code == 200
        params = {"username": "nobody-at-all"}
        assert (
            one.get(protocol.PATH_AUTH_PARAMS, params=params).json()
            == two.get(protocol.PATH_AUTH_PARAMS, params=params).json()
        )
