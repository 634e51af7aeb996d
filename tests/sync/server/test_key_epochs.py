"""Account key epochs: listing and adding them (dense numbering, ``epoch_conflict``), the
sign-up's KDF checks applied to each epoch, the other sessions of the account ending in
the same transaction while control tokens keep working, account isolation, the OpenAPI
document, and migration 3 upgrading a database that already holds data. Every test runs
on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import typing
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.sync import protocol
from app.sync.server import asgi, crypto, migrations, schemas
from app.sync.server.db import Dialect, open_database
from app.sync.server.settings import Settings
from tests.sync.server.conftest import TEST_SETTINGS, PgCluster
from tests.sync.server.device_helpers import (
    first_device,
    login_device,
    order,
    post_order,
    register_signing_key,
    signed,
)
from tests.sync.server.helpers import Api, ManualClock, error_code, make_api, weak_kdf

EPOCHS = protocol.PATH_KEY_EPOCHS


def _kdf(fill: int, **overrides: Any) -> dict[str, Any]:
    """Parameters with a salt of its own (a new epoch always has a fresh salt)."""
    return {**weak_kdf(bytes([fill]) * 24), **overrides}


def _post(api: Api, token: str | None, epoch: Any, kdf: Any) -> httpx.Response:
    return api.post(EPOCHS, token=token, json={"epoch": epoch, "kdf": kdf})


def _epochs(api: Api, token: str) -> list[dict[str, Any]]:
    r = api.get(EPOCHS, token=token)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"epochs"}
    return list(r.json()["epochs"])


def _now_text(api: Api) -> str:
    return protocol.format_time(int(api.clock() * 1000))


# --- listing and adding ---------------------------------------------------------------
def test_a_new_account_lists_no_epochs(api: Api) -> None:
    acct = api.account("fresh")
    r = api.get(EPOCHS, token=acct.tokens["access_token"])
    assert (r.status_code, r.json()) == (200, {"epochs": []})


def test_epochs_are_added_one_after_another_and_listed_in_order(api: Api) -> None:
    acct = api.account("rotor")
    token = acct.tokens["access_token"]
    second, third = _kdf(2), _kdf(3, memory_kib=64, iterations=2, parallelism=4)

    r = _post(api, token, 2, second)
    assert r.status_code == 200, r.text
    added_2 = _now_text(api)
    # Only the caller's session existed: nothing else to end.
    assert r.json() == {"epoch": 2, "kdf": second, "created_at": added_2, "sessions_ended": 0}

    api.clock.advance(61.5)
    r = _post(api, token, 3, third)
    assert r.status_code == 200, r.text
    added_3 = _now_text(api)
    assert r.json() == {"epoch": 3, "kdf": third, "created_at": added_3, "sessions_ended": 0}

    assert _epochs(api, token) == [
        {"epoch": 2, "kdf": second, "created_at": added_2},
        {"epoch": 3, "kdf": third, "created_at": added_3},
    ]


@pytest.mark.parametrize("wrong", [1, 2, 5, 1000])
def test_anything_but_the_next_epoch_is_a_conflict(api: Api, wrong: int) -> None:
    acct = api.account("counter")
    other = login_device(api, acct)
    token = acct.tokens["access_token"]
    assert _post(api, token, 2, _kdf(2)).status_code == 200
    other = login_device(api, acct, other.info)  # signed out by epoch 2: sign in again

    r = _post(api, token, wrong, _kdf(9))
    assert (r.status_code, error_code(r)) == (409, "epoch_conflict")
    assert "3" in r.json()["error"]["message"]  # says which epoch is next
    # A refused epoch changes nothing: no row, and no session ended.
    assert [e["epoch"] for e in _epochs(api, token)] == [2]
    assert api.get(protocol.PATH_DEVICES, token=other.access).status_code == 200


def test_the_first_added_epoch_must_be_2(api: Api) -> None:
    acct = api.account("starter")
    token = acct.tokens["access_token"]
    for wrong in (1, 3):
        r = _post(api, token, wrong, _kdf(1))
        assert (r.status_code, error_code(r)) == (409, "epoch_conflict")
    assert _epochs(api, token) == []


def test_epoch_conflict_maps_to_its_error_class() -> None:
    err = protocol.error_from_envelope(
        409, {"error": {"code": "epoch_conflict", "message": "next is 3"}}
    )
    assert isinstance(err, protocol.EpochConflictError)
    assert protocol.HTTP_STATUS["epoch_conflict"] == 409


MALFORMED: list[dict[str, Any]] = [
    {"epoch": 2, "kdf": _kdf(1, salt=protocol.b64encode(b"s" * 15))},  # salt too short
    {"epoch": 2, "kdf": _kdf(1, salt=protocol.b64encode(b"s" * 65))},  # salt too long
    {"epoch": 2, "kdf": _kdf(1, salt="c2FsdHNhbHRzYWx0c2FsdA")},  # unpadded base64
    {"epoch": 2, "kdf": _kdf(1, salt="-_-_-_-_-_-_-_-_-_-_-_-_")},  # url-safe alphabet
    {"epoch": 2, "kdf": _kdf(1, algorithm="argon2i")},
    {"epoch": 2, "kdf": _kdf(1, version=16)},
    {"epoch": 2, "kdf": _kdf(1, memory_kib=0)},
    {"epoch": 2, "kdf": _kdf(1, memory_kib=4 * 1024 * 1024 + 1)},
    {"epoch": 2, "kdf": _kdf(1, iterations=1001)},
    {"epoch": 2, "kdf": _kdf(1, parallelism=256)},
    {"epoch": 2, "kdf": _kdf(1, iterations="3")},  # strict types
    {"epoch": 2, "kdf": {**_kdf(1), "pepper": "x"}},  # unknown field
    {"epoch": 2, "kdf": {k: v for k, v in _kdf(1).items() if k != "salt"}},
    {"epoch": "2", "kdf": _kdf(1)},
    {"epoch": True, "kdf": _kdf(1)},
    {"epoch": 0, "kdf": _kdf(1)},
    {"epoch": 2},
    {"epoch": 2, "kdf": _kdf(1), "sessions_ended": 0},
]


def test_malformed_epochs_are_invalid_requests(api: Api) -> None:
    acct = api.account("sloppy")
    other = login_device(api, acct)
    for body in MALFORMED:
        r = api.post(EPOCHS, token=acct.tokens["access_token"], json=body)
        assert (r.status_code, error_code(r)) == (400, "invalid_request"), body
    # Nothing was stored, and no session ended.
    assert _epochs(api, acct.tokens["access_token"]) == []
    assert api.get(protocol.PATH_DEVICES, token=other.access).status_code == 200
    # The well-formed version of the same request is accepted.
    assert _post(api, acct.tokens["access_token"], 2, _kdf(1)).status_code == 200


def test_parameters_below_the_server_floor_are_too_weak(api: Api) -> None:
    acct = api.account("weakling")
    token = acct.tokens["access_token"]
    # The test floor is m=8 KiB, t=1, p=1 (as at sign-up).
    r = _post(api, token, 2, _kdf(1, memory_kib=4))
    assert (r.status_code, error_code(r)) == (400, "kdf_too_weak")
    assert _epochs(api, token) == []


def test_both_routes_need_a_session(api: Api) -> None:
    acct = api.account("locked-out")
    for token in (None, "not-a-token"):
        for r in (api.get(EPOCHS, token=token), _post(api, token, 2, _kdf(1))):
            assert (r.status_code, error_code(r)) == (401, "unauthorized")
            assert r.headers["WWW-Authenticate"] == "Bearer"
    # A control token is not a session.
    control = {protocol.CONTROL_TOKEN_HEADER: acct.tokens["control_token"]}
    assert api.get(EPOCHS, headers=control).status_code == 401
    assert _epochs(api, acct.tokens["access_token"]) == []


def test_accounts_see_and_number_only_their_own_epochs(api: Api) -> None:
    alice = api.account("alice")
    alice_two = login_device(api, alice)
    bob = api.account("bob")
    assert _post(api, alice.tokens["access_token"], 2, _kdf(2)).status_code == 200
    alice_two = login_device(api, alice, alice_two.info)
    assert _post(api, alice.tokens["access_token"], 3, _kdf(3)).status_code == 200
    alice_two = login_device(api, alice, alice_two.info)

    assert _epochs(api, bob.tokens["access_token"]) == []
    # Bob's numbering starts at 2 whatever Alice did, and his epoch ends none of her sessions.
    r = _post(api, bob.tokens["access_token"], 2, _kdf(7))
    assert (r.status_code, r.json()["sessions_ended"]) == (200, 0)
    assert [e["kdf"]["salt"] for e in _epochs(api, bob.tokens["access_token"])] == [_kdf(7)["salt"]]
    assert [e["epoch"] for e in _epochs(api, alice.tokens["access_token"])] == [2, 3]
    assert api.get(protocol.PATH_DEVICES, token=alice_two.access).status_code == 200


# --- the effect on sessions -----------------------------------------------------------
def test_adding_an_epoch_signs_out_every_other_device(api: Api) -> None:
    acct = api.account("owner")
    one = first_device(acct)
    two = login_device(api, acct)
    three = login_device(api, acct)
    key = register_signing_key(api, acct)

    r = _post(api, one.access, 2, _kdf(2))
    assert r.status_code == 200, r.text
    assert r.json()["sessions_ended"] == 2

    # The caller keeps its session (access and refresh).
    assert api.get(protocol.PATH_DEVICES, token=one.access).status_code == 200
    # The others are signed out: access token and refresh token alike.
    for device in (two, three):
        r = api.get(protocol.PATH_DEVICES, token=device.access)
        assert (r.status_code, error_code(r)) == (401, "unauthorized")
        r = api.post(
            protocol.PATH_AUTH_REFRESH, json={"refresh_token": device.tokens["refresh_token"]}
        )
        assert (r.status_code, error_code(r)) == (401, "unauthorized")
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": one.tokens["refresh_token"]})
    assert r.status_code == 200, r.text
    one_access = r.json()["access_token"]

    # Their control tokens still work, so they still hear of orders.
    assert api.get(protocol.PATH_SELF_ORDER, headers=two.control).status_code == 204
    lock = signed(order(api, acct, two.id, "lock"), key)
    assert post_order(api, one_access, two.id, lock).status_code == 200
    r = api.get(protocol.PATH_SELF_ORDER, headers=two.control)
    assert r.status_code == 200, r.text
    assert r.json()["order"] == lock["order"]

    # A signed-out device signs in again with the password and sees the new epoch.
    back = login_device(api, acct, three.info)
    assert [e["epoch"] for e in _epochs(api, back.access)] == [2]


def test_other_sessions_of_the_callers_own_device_end_too(api: Api, db_url: str) -> None:
    """Only the calling session survives, not the calling device (a login from a device
    ends its older sessions, so a second one is made here directly in the database)."""
    acct = api.account("twin")
    spare = crypto.new_token()
    now = int(api.clock() * 1000)
    db = open_database(db_url)
    try:
        with db.transaction() as tx:
            tx.execute(
                """INSERT INTO sessions (id, account_id, device_id, access_hash,
                    access_expires_at, refresh_hash, refresh_expires_at, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    crypto.new_id(),
                    acct.account_id,
                    acct.device["id"],
                    crypto.token_hash(spare),
                    now + 3600_000,
                    crypto.token_hash(crypto.new_token()),
                    now + 86400_000,
                    now,
                ),
            )
    finally:
        db.close()
    assert api.get(protocol.PATH_DEVICES, token=spare).status_code == 200

    r = _post(api, acct.tokens["access_token"], 2, _kdf(2))
    assert (r.status_code, r.json()["sessions_ended"]) == (200, 1)
    assert error_code(api.get(protocol.PATH_DEVICES, token=spare)) == "unauthorized"
    assert api.get(protocol.PATH_DEVICES, token=acct.tokens["access_token"]).status_code == 200


def test_epoch_limit(api: Api, db_url: str) -> None:
    acct = api.account("restless")
    token = acct.tokens["access_token"]
    db = open_database(db_url)
    try:
        with db.transaction() as tx:
            tx.executemany(
                "INSERT INTO account_key_epochs (account_id, epoch, kdf, created_at) "
                "VALUES (?, ?, ?, 0)",
                [
                    (acct.account_id, n, json.dumps(_kdf(1), sort_keys=True))
                    for n in range(2, protocol.MAX_KEY_EPOCH + 1)
                ],
            )
    finally:
        db.close()
    assert len(_epochs(api, token)) == protocol.MAX_KEY_EPOCH - 1
    r = _post(api, token, protocol.MAX_KEY_EPOCH + 1, _kdf(2))
    assert (r.status_code, error_code(r)) == (409, "epoch_conflict")
    assert "limit" in r.json()["error"]["message"]


def test_racing_additions_store_one_epoch(make_client: Any) -> None:
    one_api, two_api = make_client(), make_client()
    acct = one_api.account("racer")
    one = first_device(acct)
    two = login_device(one_api, acct)
    statuses: list[tuple[int, str | None]] = []
    barrier = threading.Barrier(2)

    def add(client: Api, token: str, fill: int) -> None:
        barrier.wait()
        r = _post(client, token, 2, _kdf(fill))
        statuses.append((r.status_code, None if r.status_code == 200 else error_code(r)))

    threads = [
        threading.Thread(target=add, args=(one_api, one.access, 1)),
        threading.Thread(target=add, args=(two_api, two.access, 2)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The loser either saw epoch 2 taken or had already been signed out by the winner.
    assert sorted(statuses)[0] == (200, None)
    assert sorted(statuses)[1] in {(401, "unauthorized"), (409, "epoch_conflict")}
    alive = [d for d in (one, two) if one_api.get(protocol.PATH_DEVICES, token=d.access).is_success]
    assert len(alive) == 1  # the winner's session; the loser's was ended
    assert [e["epoch"] for e in _epochs(one_api, alive[0].access)] == [2]


# --- storage, documentation, shapes ---------------------------------------------------
def test_the_stored_row_is_the_canonical_json_of_the_parameters(api: Api, db_url: str) -> None:
    acct = api.account("archivist")
    kdf = _kdf(5)
    assert _post(api, acct.tokens["access_token"], 2, kdf).status_code == 200
    db = open_database(db_url)
    try:
        with db.transaction(write=False) as tx:
            rows = tx.all(
                "SELECT account_id, epoch, kdf, created_at FROM account_key_epochs "
                "WHERE account_id = ?",
                (acct.account_id,),
            )
    finally:
        db.close()
    canonical = json.dumps(kdf, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert rows == [(acct.account_id, 2, canonical, int(api.clock() * 1000))]


def test_openapi_documents_both_routes(api: Api) -> None:
    doc = api.get(protocol.PATH_OPENAPI).json()
    route = doc["paths"][EPOCHS]
    assert set(route) == {"get", "post"}
    assert route["get"]["responses"]["200"]["content"]
    assert route["get"]["responses"]["401"]["content"]
    assert "epoch_conflict" in route["post"]["responses"]["409"]["description"]
    assert route["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeyEpochIn"
    }
    created = doc["components"]["schemas"]["KeyEpochCreatedOut"]
    assert set(created["properties"]) == {"epoch", "kdf", "created_at", "sessions_ended"}


@pytest.mark.parametrize(
    ("typed_dict", "model"),
    [
        (protocol.KeyEpoch, schemas.KeyEpochOut),
        (protocol.KeyEpochsResponse, schemas.KeyEpochsOut),
        (protocol.KeyEpochRequest, schemas.KeyEpochIn),
        (protocol.KeyEpochResponse, schemas.KeyEpochCreatedOut),
    ],
)
def test_server_models_match_protocol_shapes(typed_dict: type, model: type[BaseModel]) -> None:
    assert set(typing.get_type_hints(typed_dict)) == set(model.model_fields)


# --- migration 3 ----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def old_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend, to be migrated by the test itself."""
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        yield cluster.create_database(f"epochs_{uuid.uuid4().hex[:12]}")
    else:
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"


def _table_exists(db_url: str, table: str) -> bool:
    db = open_database(db_url)
    try:
        with db.transaction(write=False) as tx:
            if db.dialect is Dialect.POSTGRES:
                row = tx.one("SELECT to_regclass(?) IS NOT NULL", (table,))
                return bool(row and row[0])
            return (
                tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
                is not None
            )
    finally:
        db.close()


def test_migration_3_upgrades_a_database_with_data(
    old_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert migrations.LATEST_VERSION >= 3  # later migrations are applied along
    clock = ManualClock()
    item_id = str(uuid.uuid4())
    # A server of the previous release: migrations 1-2 only, and data written through it.
    with monkeypatch.context() as old:
        old.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
        old.setattr(migrations, "LATEST_VERSION", 2)
        old.setattr(asgi, "LATEST_VERSION", 2)
        db = open_database(old_db_url)
        try:
            assert migrations.migrate(db, now_ms=int(time.time() * 1000)) == [1, 2]
            secret = migrations.load_server_secret(db)
        finally:
            db.close()
        with make_api(old_db_url, clock, **TEST_SETTINGS) as api:
            acct = api.account("veteran")
            two = login_device(api, acct)
            r = api.post(
                protocol.PATH_ITEMS_BATCH,
                token=acct.tokens["access_token"],
                json={
                    "items": [
                        {
                            "id": item_id,
                            "kind": "note",
                            "expected_etag": None,
                            "deleted": False,
                            "key_id": "items-1",
                            "blob": protocol.b64encode(b"sealed"),
                        }
                    ]
                },
            )
            assert r.json()["results"][0]["status"] == "ok", r.text
    assert not _table_exists(old_db_url, "account_key_epochs")
    # This release refuses to serve it until migrated.
    with pytest.raises(RuntimeError, match="migrate"):
        asgi.create_app(Settings(db_url=old_db_url, origin="https://tacit.test"))

    db = open_database(old_db_url)
    try:
        latest = migrations.LATEST_VERSION
        assert migrations.migrate(db, now_ms=int(time.time() * 1000)) == list(range(3, latest + 1))
        assert migrations.schema_version(db) == latest
        assert migrations.load_server_secret(db) == secret
    finally:
        db.close()

    with make_api(old_db_url, clock, **TEST_SETTINGS) as api:
        token = acct.tokens["access_token"]
        # Sessions, devices and items survived.
        pulled = api.get(protocol.PATH_ITEMS, token=token)
        assert [i["id"] for i in pulled.json()["items"]] == [item_id]
        assert api.get(protocol.PATH_DEVICES, token=two.access).status_code == 200
        assert _epochs(api, token) == []
        r = _post(api, token, 2, _kdf(2))
        assert (r.status_code, r.json()["sessions_ended"]) == (200, 1)
        assert error_code(api.get(protocol.PATH_DEVICES, token=two.access)) == "unauthorized"
        assert api.get(protocol.PATH_SELF_ORDER, headers=two.control).status_code == 204
