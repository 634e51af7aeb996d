"""Practice mode on the server, continued: a member's devices, removal (owner-signed lock
orders queued, sessions ended while control tokens keep working, grants dropped, all in
one transaction), the practice audit trail, the pydantic models matching the protocol
shapes, and migration 4 upgrading a database that holds data. Every test runs on SQLite
and on the real PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server import asgi, migrations
from app.sync.server.db import open_database
from tests.sync.server.conftest import TEST_SETTINGS, PgCluster
from tests.sync.server.device_helpers import (
    first_device,
    login_device,
    register_signing_key,
    send_order,
)
from tests.sync.server.helpers import Api, ManualClock, error_code, make_api
from tests.sync.server.practice_helpers import (
    Member,
    Practice,
    add_member,
    b64,
    create_practice,
    new_collection,
    push,
)


def _order(api: Api, m: Member, device_id: str, action: str = "lock") -> protocol.DeviceOrder:
    return {
        "v": 1,
        "order_id": str(uuid.uuid4()),
        "account_id": m.id,
        "device_id": device_id,
        "action": action,  # type: ignore[typeddict-item]
        "issued_at": protocol.format_time(int(api.clock() * 1000)),
    }


def _signed(order: protocol.DeviceOrder, key: Ed25519PrivateKey) -> dict[str, Any]:
    return {"order": order, "signature": b64(key.sign(protocol.order_message(order)))}


def _remove(api: Api, p: Practice, m: Member, orders: list[dict[str, Any]]) -> Any:
    return api.post(pp.member_path(m.id, "remove"), token=p.owner.token, json={"orders": orders})


# --- devices and removal ----------------------------------------------------------------------
def test_member_devices_are_listed_for_the_owner_only(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    second = login_device(api, clin.acct)
    r = api.get(pp.member_path(clin.id, "devices"), token=p.owner.token)
    assert r.status_code == 200, r.text
    assert {(d["device_id"], d["state"]) for d in r.json()} == {
        (clin.acct.device["id"], "active"),
        (second.id, "active"),
    }
    assert set(r.json()[0]) == {"device_id", "name", "state"}
    r = api.get(pp.member_path(p.owner.id, "devices"), token=clin.token)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.get(pp.member_path(str(uuid.uuid4()), "devices"), token=p.owner.token)
    assert (r.status_code, error_code(r)) == (404, "not_found")


def test_removal_locks_devices_ends_sessions_and_drops_grants(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    other = add_member(api, p, "admin")
    second = login_device(api, clin.acct)
    clinical = new_collection(api, p, "clinical", clin.id, [p.owner.id, clin.id])
    schedule = new_collection(api, p, "schedule", clin.id, [p.owner.id, clin.id, other.id])
    assert push(api, clin.token, clinical, 1).status_code == 200
    first_id = clin.acct.device["id"]
    orders = [_signed(_order(api, clin, d), p.owner.sign) for d in (first_id, second.id)]

    r = _remove(api, p, clin, orders)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sessions_ended"] == 2 and body["orders_queued"] == 2
    assert body["collections"] == sorted([clinical, schedule])
    assert body["removed_at"] == protocol.format_time(int(api.clock() * 1000))

    # Every session of the account ended at once...
    for token in (clin.token, second.access):
        r = api.get(pp.PATH_PRACTICE, token=token)
        assert (r.status_code, error_code(r)) == (401, "unauthorized")
    # ...while the control tokens still deliver the owner-signed lock orders.
    for control, device_id in (
        (clin.acct.tokens["control_token"], first_id),
        (second.tokens["control_token"], second.id),
    ):
        r = api.get(protocol.PATH_SELF_ORDER, headers={protocol.CONTROL_TOKEN_HEADER: control})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["order"]["device_id"] == device_id and got["order"]["action"] == "lock"
        p.owner.sign.public_key().verify(
            protocol.b64decode(got["signature"]), protocol.order_message(got["order"])
        )
    # The locked devices cannot sign in; a new device can, but the practice is closed.
    r = api.login_response(clin.acct)
    assert (r.status_code, error_code(r)) == (403, "device_lost")
    fresh = login_device(api, clin.acct)
    r = api.get(pp.PATH_PRACTICE, token=fresh.access)
    assert (r.status_code, error_code(r)) == (403, "member_removed")
    r = api.get(pp.collection_path(clinical, "items"), token=fresh.access)
    assert (r.status_code, error_code(r)) == (403, "member_removed")

    # The owner sees the member removed and no grant of theirs left.
    view = api.get(pp.PATH_PRACTICE, token=p.owner.token).json()
    [gone] = [x for x in view["members"] if x["account_id"] == clin.id]
    assert gone["status"] == "removed" and gone["removed_at"] == body["removed_at"]
    for col in view["collections"]:
        assert clin.id not in {h["account_id"] for h in col["holders"]}
    # Other members no longer see them.
    others = api.get(pp.PATH_PRACTICE, token=other.token).json()["members"]
    assert clin.id not in {x["account_id"] for x in others}
    r = _remove(api, p, clin, [])
    assert (r.status_code, error_code(r)) == (409, "conflict")


def test_removal_refusals_change_nothing(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    other = add_member(api, p, "admin")
    device = clin.acct.device["id"]
    # Not the owner; the owner themselves; an unknown member.
    r = api.post(pp.member_path(clin.id, "remove"), token=other.token, json={"orders": []})
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.post(pp.member_path(p.owner.id, "remove"), token=p.owner.token, json={"orders": []})
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.post(
        pp.member_path(str(uuid.uuid4()), "remove"), token=p.owner.token, json={"orders": []}
    )
    assert (r.status_code, error_code(r)) == (404, "not_found")
    # A forged order (the member's own key, not the owner's), and orders that name
    # another account's device, a restore, or a stale time.
    cases = [
        (_signed(_order(api, clin, device), clin.sign), "order_signature_invalid"),
        (_signed(_order(api, clin, other.acct.device["id"]), p.owner.sign), "order_invalid"),
        (
            _signed({**_order(api, clin, device), "account_id": other.id}, p.owner.sign),
            "order_invalid",
        ),
        (_signed(_order(api, clin, device, "restore"), p.owner.sign), "order_invalid"),
        (
            _signed(
                {
                    **_order(api, clin, device),
                    "issued_at": protocol.format_time(int((api.clock() - 3 * 86400) * 1000)),
                },
                p.owner.sign,
            ),
            "order_invalid",
        ),
    ]
    for bad, code in cases:
        r = _remove(api, p, clin, [bad])
        assert error_code(r) == code
    # Nothing happened: still active, still signed in, device still active.
    assert api.get(pp.PATH_PRACTICE, token=clin.token).json()["you"]["status"] == "active"
    devices = api.get(pp.member_path(clin.id, "devices"), token=p.owner.token).json()
    assert [d["state"] for d in devices] == ["active"]
    # A removal without orders (a member with no reachable device) still works.
    r = _remove(api, p, clin, [])
    assert r.status_code == 200 and r.json()["orders_queued"] == 0
    assert r.json()["sessions_ended"] == 1


def test_a_member_whose_device_is_already_locked_can_be_removed(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    second = login_device(api, clin.acct)
    first = first_device(clin.acct)
    key = register_signing_key(api, clin.acct)
    # The member locked their lost second device themselves (the lost-device feature).
    assert send_order(api, clin.acct, first, second, "lock", key).status_code == 200
    api.clock.advance(1)
    orders = [_signed(_order(api, clin, d.id), p.owner.sign) for d in (first, second)]
    r = _remove(api, p, clin, orders)
    assert r.status_code == 200, r.text
    assert r.json()["orders_queued"] == 1  # the second device's lock is moot
    # The second device keeps its own account's order; the first gets the owner's.
    got = api.get(protocol.PATH_SELF_ORDER, headers=second.control).json()
    key.public_key().verify(
        protocol.b64decode(got["signature"]), protocol.order_message(got["order"])
    )
    got = api.get(protocol.PATH_SELF_ORDER, headers=first.control).json()
    p.owner.sign.public_key().verify(
        protocol.b64decode(got["signature"]), protocol.order_message(got["order"])
    )


def test_a_pending_member_can_be_removed(api: Api) -> None:
    from tests.sync.server.practice_helpers import join

    p = create_practice(api)
    pending = join(api, p, "admin", "a@example.org")
    r = _remove(
        api, p, pending, [_signed(_order(api, pending, pending.acct.device["id"]), p.owner.sign)]
    )
    assert r.status_code == 200, r.text
    assert r.json()["collections"] == []


# --- audit --------------------------------------------------------------------------------
def test_audit_entries_are_stored_once_and_read_by_the_owner(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    admin = add_member(api, p, "admin")

    def entries(*ids: str) -> dict[str, Any]:
        return {"entries": [{"entry_id": i, "sealed": b64(i.encode() * 3)} for i in ids]}

    r = api.post(pp.PATH_AUDIT, token=clin.token, json=entries("a:1", "a:2", "a:2"))
    assert (r.status_code, r.json()) == (200, {"stored": 2})
    r = api.post(pp.PATH_AUDIT, token=clin.token, json=entries("a:2", "a:3"))
    assert r.json() == {"stored": 1}
    # The same entry id from another author is another entry.
    assert api.post(pp.PATH_AUDIT, token=admin.token, json=entries("a:1")).json() == {"stored": 1}
    assert api.post(pp.PATH_AUDIT, token=p.owner.token, json=entries("o.1")).json() == {"stored": 1}

    page = api.get(pp.PATH_AUDIT, token=p.owner.token, params={"limit": 3}).json()
    assert [(e["seq"], e["author_account_id"], e["entry_id"]) for e in page["entries"]] == [
        (1, clin.id, "a:1"),
        (2, clin.id, "a:2"),
        (3, clin.id, "a:3"),
    ]
    assert page["more"] is True and page["cursor"] == "3"
    assert protocol.b64decode(page["entries"][0]["sealed"]) == b"a:1" * 3
    rest = api.get(pp.PATH_AUDIT, token=p.owner.token, params={"cursor": "3"}).json()
    assert [(e["seq"], e["author_account_id"]) for e in rest["entries"]] == [
        (4, admin.id),
        (5, p.owner.id),
    ]
    assert rest["more"] is False
    empty = api.get(pp.PATH_AUDIT, token=p.owner.token, params={"cursor": "5"}).json()
    assert empty == {"entries": [], "cursor": "5", "more": False}

    r = api.get(pp.PATH_AUDIT, token=clin.token)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.get(pp.PATH_AUDIT, token=p.owner.token, params={"cursor": "-1"})
    assert (r.status_code, error_code(r)) == (400, "invalid_cursor")
    bad_bodies: list[dict[str, Any]] = [
        {"entries": [{"entry_id": "has space", "sealed": b64(b"x")}]},
        {"entries": []},
    ]
    for bad in bad_bodies:
        r = api.post(pp.PATH_AUDIT, token=clin.token, json=bad)
        assert (r.status_code, error_code(r)) == (400, "invalid_request")
    big = {"entries": [{"entry_id": "big", "sealed": b64(b"x" * (pp.MAX_AUDIT_SEALED_BYTES + 1))}]}
    r = api.post(pp.PATH_AUDIT, token=clin.token, json=big)
    assert (r.status_code, error_code(r)) == (413, "too_large")

    # A removed member's new device is refused.
    assert _remove(api, p, admin, []).status_code == 200
    fresh = login_device(api, admin.acct)
    r = api.post(pp.PATH_AUDIT, token=fresh.access, json=entries("late"))
    assert (r.status_code, error_code(r)) == (403, "member_removed")


# --- documentation -------------------------------------------------------------------------
def test_openapi_documents_the_practice_routes(api: Api) -> None:
    doc = api.get(protocol.PATH_OPENAPI).json()
    paths = doc["paths"]
    assert set(paths[pp.PATH_PRACTICE]) == {"get", "post"}
    assert set(paths[pp.PATH_AUDIT]) == {"get", "post"}
    assert "put" in paths[pp.PATH_POLICY]
    assert "post" in paths[pp.PATH_JOIN]


# --- migration 4 ----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def old_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        yield cluster.create_database(f"practice_{uuid.uuid4().hex[:12]}")
    else:
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"


def test_migration_4_upgrades_a_database_with_data(
    old_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    with monkeypatch.context() as old:
        old.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
        old.setattr(migrations, "LATEST_VERSION", 3)
        old.setattr(asgi, "LATEST_VERSION", 3)
        db = open_database(old_db_url)
        try:
            assert migrations.migrate(db, now_ms=int(time.time() * 1000)) == [1, 2, 3]
        finally:
            db.close()
        with make_api(old_db_url, clock, **TEST_SETTINGS) as api:
            owner_acct = api.account("veteran")
            r = api.post(
                protocol.PATH_KEY_EPOCHS,
                token=owner_acct.tokens["access_token"],
                json={"epoch": 2, "kdf": {**_kdf()}},
            )
            assert r.status_code == 200, r.text
    db = open_database(old_db_url)
    try:
        applied = migrations.migrate(db, now_ms=int(time.time() * 1000))
        assert applied[0] == 4 and applied[-1] == migrations.LATEST_VERSION
    finally:
        db.close()
    with make_api(old_db_url, clock, **TEST_SETTINGS) as api:
        assert (
            api.get(protocol.PATH_KEY_EPOCHS, token=owner_acct.tokens["access_token"]).json()[
                "epochs"
            ][0]["epoch"]
            == 2
        )
        owner = Member(owner_acct, "owner", "o@example.org")
        p = create_practice(api, owner)
        clin = add_member(api, p, "clinician")
        assert push(api, p.owner.token, p.collections["clinical"], 1).status_code == 200
        assert api.get(pp.PATH_PRACTICE, token=clin.token).json()["practice_id"] == p.id


def _kdf() -> dict[str, Any]:
    from tests.sync.server.helpers import weak_kdf

    return weak_kdf(b"\x07" * 24)


# --- the member's keyring ---------------------------------------------------------------------
def test_a_members_keyring_is_theirs_alone_and_goes_with_their_removal(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    other = add_member(api, p, "admin")
    r = api.get(pp.PATH_KEYRING, token=clin.token)
    assert (r.status_code, error_code(r)) == (404, "not_found")  # none stored yet
    sealed = protocol.b64encode(b"sealed by the member's client " + bytes(40))
    r = api.put(pp.PATH_KEYRING, token=clin.token, json={"keyring": sealed})
    assert r.status_code == 200, r.text
    assert api.get(pp.PATH_KEYRING, token=clin.token).json() == {"keyring": sealed}
    # Another member (the owner too) reads their own, never this one.
    r = api.get(pp.PATH_KEYRING, token=other.token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.get(pp.PATH_KEYRING, token=p.owner.token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    too_big = protocol.b64encode(bytes(pp.MAX_KEYRING_BYTES + 1))
    r = api.put(pp.PATH_KEYRING, token=clin.token, json={"keyring": too_big})
    assert r.status_code in (400, 413)
    # Removal deletes it with the grants.
    ctx = api.client.app.state.ctx  # type: ignore[attr-defined]
    query = "SELECT keyring FROM practice_members WHERE account_id = ?"
    with ctx.db.transaction(write=False) as tx:
        assert tx.one(query, (clin.id,))[0] is not None
    assert _remove(api, p, clin, []).status_code == 200
    with ctx.db.transaction(write=False) as tx:
        assert tx.one(query, (clin.id,))[0] is None
