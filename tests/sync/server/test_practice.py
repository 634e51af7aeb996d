"""Practice mode on the server: creating a practice and what each member sees of it,
invites and joining (one-time codes, identical refusals, the join race), certificates,
collections, grants, key rotation and items, the policy, and isolation between
practices. Removal and the audit trail are in ``test_practice_members.py``. Every test
runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import practice_protocol as pp
from tests.sync.server.helpers import Api, error_code
from tests.sync.server.practice_helpers import (
    Member,
    add_member,
    b64,
    certificate,
    certify,
    create_body,
    create_practice,
    grant,
    invite,
    join,
    join_response,
    new_collection,
    policy,
    push,
)


def _view(api: Api, token: str) -> dict[str, Any]:
    r = api.get(pp.PATH_PRACTICE, token=token)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- creating and viewing ---------------------------------------------------------------
def test_create_then_the_owner_sees_everything(api: Api) -> None:
    p = create_practice(api)
    view = _view(api, p.owner.token)
    assert view["practice_id"] == p.id and view["name"] == "Harbour Therapy"
    assert view["owner_account_id"] == p.owner.id
    assert view["you"] == {"account_id": p.owner.id, "role": "owner", "status": "active"}
    assert view["policy"]["doc"]["max_idle_minutes"] == 15
    [me] = view["members"]
    assert me["status"] == "active" and me["certificate"]["doc"]["role"] == "owner"
    assert me["sign_public"] == b64(p.owner.sign_public) and me["proof"] is None
    assert {c["kind"]: c["collection_id"] for c in view["collections"]} == p.collections
    for c in view["collections"]:
        assert c["key_version"] == 1 and len(c["grants"]) == 1
        assert c["holders"] == [{"account_id": p.owner.id, "key_version": 1}]


def test_create_refusals(api: Api) -> None:
    owner = Member(api.account(), "owner", "o@example.org")
    practice_id = str(uuid.uuid4())
    # A certificate signed by a key other than the one sent as sign_public.
    body = create_body(api, owner, practice_id)
    body["certificate"] = certificate(api, Ed25519PrivateKey.generate(), practice_id, owner)
    r = api.post(pp.PATH_PRACTICE, token=owner.token, json=body)
    assert (r.status_code, error_code(r)) == (400, "invalid_request")
    # A certificate for another account.
    body = create_body(api, owner, practice_id)
    body["certificate"] = certificate(
        api, owner.sign, practice_id, owner, account_id=str(uuid.uuid4())
    )
    assert error_code(api.post(pp.PATH_PRACTICE, token=owner.token, json=body)) == "invalid_request"
    # A forged policy, and one for another practice.
    body = create_body(api, owner, practice_id)
    body["policy"] = policy(api, Ed25519PrivateKey.generate(), practice_id)
    assert error_code(api.post(pp.PATH_PRACTICE, token=owner.token, json=body)) == "invalid_request"
    body["policy"] = policy(api, owner.sign, str(uuid.uuid4()))
    assert error_code(api.post(pp.PATH_PRACTICE, token=owner.token, json=body)) == "invalid_request"
    # Nothing was created by the refusals.
    r = api.get(pp.PATH_PRACTICE, token=owner.token)
    assert (r.status_code, error_code(r)) == (404, "not_in_practice")
    p = create_practice(api, owner)
    # Already in a practice, or the id is taken by someone else's.
    body = create_body(api, owner, str(uuid.uuid4()))
    r = api.post(pp.PATH_PRACTICE, token=owner.token, json=body)
    assert (r.status_code, error_code(r)) == (409, "practice_exists")
    other = Member(api.account(), "owner", "x@example.org")
    r = api.post(pp.PATH_PRACTICE, token=other.token, json=create_body(api, other, p.id))
    assert (r.status_code, error_code(r)) == (409, "practice_exists")


def test_a_non_member_gets_not_in_practice_everywhere(api: Api) -> None:
    p = create_practice(api)
    stranger = api.account().tokens["access_token"]
    cid = p.collections["clinical"]
    for method, path in [
        ("GET", pp.PATH_PRACTICE),
        ("GET", pp.PATH_INVITES),
        ("GET", pp.collection_path(cid, "items")),
        ("GET", pp.PATH_AUDIT),
        ("GET", pp.member_path(p.owner.id, "devices")),
    ]:
        r = api.request(method, path, token=stranger)
        assert (r.status_code, error_code(r)) == (404, "not_in_practice"), path
    r = api.get(pp.PATH_PRACTICE)
    assert r.status_code == 401


# --- invites and joining ----------------------------------------------------------------
def test_invite_join_and_what_a_pending_member_sees(api: Api) -> None:
    p = create_practice(api)
    lookup = invite(api, p, "clinician", "c@example.org")
    r = api.get(pp.invite_path(lookup))  # open: no token
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"envelope", "role", "email", "expires_at"}
    assert (r.json()["role"], r.json()["email"]) == ("clinician", "c@example.org")
    listed = api.get(pp.PATH_INVITES, token=p.owner.token).json()["invites"]
    assert [(i["invite_id"], i["used_at"]) for i in listed] == [(lookup, None)]

    r, m = join_response(api, lookup)
    assert r.status_code == 201, r.text
    assert m is not None
    doc = r.json()
    assert set(doc) == {"account_id", "totp_uri", "recovery_codes", "control_token", "practice_id"}
    assert doc["practice_id"] == p.id
    api.login(m.acct)

    pending = _view(api, m.token)
    assert pending["you"] == {"account_id": m.id, "role": "clinician", "status": "pending"}
    assert pending["collections"] == []
    assert {x["account_id"] for x in pending["members"]} == {p.owner.id, m.id}
    assert all("proof" not in x and "lookup" not in x for x in pending["members"])
    # Pending members may only read the practice.
    for method, path, body in [
        ("GET", pp.collection_path(p.collections["clinical"], "items"), None),
        ("POST", pp.PATH_AUDIT, {"entries": [{"entry_id": "e1", "sealed": b64(b"x")}]}),
        ("GET", pp.PATH_INVITES, None),
    ]:
        r = api.request(method, path, token=m.token, json=body)
        assert (r.status_code, error_code(r)) == (403, "forbidden"), path

    owner_view = _view(api, p.owner.token)
    [joined] = [x for x in owner_view["members"] if x["account_id"] == m.id]
    assert joined["status"] == "pending" and joined["certificate"] is None
    assert joined["lookup"] == lookup and joined["proof"] is not None
    assert (joined["role"], joined["email"]) == ("clinician", "c@example.org")
    listed = api.get(pp.PATH_INVITES, token=p.owner.token).json()["invites"]
    assert listed[0]["account_id"] == m.id and listed[0]["used_at"] is not None


def test_used_expired_and_unknown_invites_get_one_identical_answer(api: Api) -> None:
    p = create_practice(api)
    used = invite(api, p, "admin", "a@example.org")
    assert join_response(api, used)[0].status_code == 201
    expiring = invite(api, p, "admin", "b@example.org", expires_at=None or _in(api, 60))
    api.clock.advance(61)
    answers = []
    for lookup in (used, expiring, "ab" * 32, "not-a-lookup"):
        r = api.get(pp.invite_path(lookup))
        answers.append((r.status_code, r.json()))
        if lookup != "not-a-lookup":
            j, _ = join_response(api, lookup)
            answers.append((j.status_code, j.json()))
    assert answers[0][0] == 404 and answers[0][1]["error"]["code"] == "invite_invalid"
    assert all(a == answers[0] for a in answers)


def _in(api: Api, seconds: float) -> str:
    from tests.sync.server.practice_helpers import now_text

    return now_text(api, seconds)


def test_the_open_routes_are_rate_limited_per_ip(make_client: Any) -> None:
    api = make_client(ip_request_limit=3)
    lookup = "ef" * 32
    codes = [api.get(pp.invite_path(lookup)).status_code for _ in range(3)]
    assert codes == [404, 404, 404]
    r = api.get(pp.invite_path(lookup))
    assert (r.status_code, error_code(r)) == (429, "rate_limited")
    r, _ = join_response(api, lookup)
    assert (r.status_code, error_code(r)) == (429, "rate_limited")


def test_invite_refusals(api: Api) -> None:
    p = create_practice(api)
    member = add_member(api, p, "clinician")
    base = {
        "lookup": "cd" * 32,
        "role": "admin",
        "email": "e@example.org",
        "envelope": b64(b"e" * 50),
        "expires_at": _in(api, 3600),
    }
    r = api.post(pp.PATH_INVITES, token=member.token, json=base)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    for bad in (
        {"expires_at": _in(api, 8 * 86400)},
        {"expires_at": _in(api, -1)},
        {"role": "owner"},
        {"lookup": "CD" * 32},
        {"envelope": b64(b"e" * (pp.MAX_ENVELOPE_BYTES + 1))},
    ):
        r = api.post(pp.PATH_INVITES, token=p.owner.token, json={**base, **bad})
        assert (r.status_code, error_code(r)) == (400, "invalid_request"), bad
    assert api.post(pp.PATH_INVITES, token=p.owner.token, json=base).status_code == 201
    r = api.post(pp.PATH_INVITES, token=p.owner.token, json=base)
    assert (r.status_code, error_code(r)) == (409, "conflict")


def test_a_join_with_a_taken_username_spends_nothing(api: Api) -> None:
    p = create_practice(api)
    lookup = invite(api, p, "admin", "a@example.org")
    from tests.sync.server.practice_helpers import join_body

    body, _ = join_body(lookup, Ed25519PrivateKey.generate(), b"\x01" * 32)
    body["signup"]["username"] = api.account("taken-name").username
    r = api.post(pp.PATH_JOIN, json=body)
    assert (r.status_code, error_code(r)) == (409, "account_exists")
    assert api.get(pp.invite_path(lookup)).status_code == 200


def test_two_joins_racing_with_one_code_make_one_member(make_client: Any) -> None:
    one, two = make_client(), make_client()
    p = create_practice(one)
    lookup = invite(one, p, "clinician", "c@example.org")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def go(client: Api) -> None:
        barrier.wait()
        r, _ = join_response(client, lookup)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=go, args=(c,)) for c in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 404]
    members = _view(one, p.owner.token)["members"]
    assert len(members) == 2


# --- certificates -------------------------------------------------------------------------
def test_certificates_are_checked_and_activate_the_member(api: Api) -> None:
    p = create_practice(api)
    m = join(api, p, "clinician", "c@example.org")
    # Signed by the member's own key, not the owner's.
    forged = certificate(api, m.sign, p.id, m)
    r = api.post(
        pp.member_path(m.id, "certificate"), token=p.owner.token, json={"certificate": forged}
    )
    assert (r.status_code, error_code(r)) == (400, "invalid_request")
    for wrong in (
        {"role": "supervisor"},
        {"email": "x@example.org"},
        {"practice_id": str(uuid.uuid4())},
    ):
        r = certify(api, p, m, **wrong)
        assert (r.status_code, error_code(r)) == (400, "invalid_request"), wrong
    r = certify(api, p, m, enc_public=b64(b"\x02" * 32))
    assert error_code(r) == "invalid_request"
    r = api.post(
        pp.member_path(str(uuid.uuid4()), "certificate"),
        token=p.owner.token,
        json={"certificate": certificate(api, p.owner.sign, p.id, m)},
    )
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = certify(api, p, m)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["certificate"]["doc"]["account_id"] == m.id

    # Another member sees active members with certificates, never proofs or lookups,
    # and no pending members.
    pending = join(api, p, "admin", "a@example.org")
    view = _view(api, m.token)
    assert view["you"]["status"] == "active"
    assert {x["account_id"] for x in view["members"]} == {p.owner.id, m.id}
    assert pending.id not in {x["account_id"] for x in view["members"]}
    assert all("proof" not in x and "lookup" not in x for x in view["members"])
    # Only the owner certifies.
    r = api.post(
        pp.member_path(pending.id, "certificate"),
        token=m.token,
        json={"certificate": certificate(api, p.owner.sign, p.id, pending)},
    )
    assert (r.status_code, error_code(r)) == (403, "forbidden")


# --- collections, grants, rotation, items -------------------------------------------------
def test_items_flow_with_grants_and_refusals(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    admin = add_member(api, p, "admin")
    cid = new_collection(api, p, "clinical", clin.id, [p.owner.id, clin.id])
    # The clinician sees the collection with its own grant, no holders.
    [col] = _view(api, clin.token)["collections"]
    assert col["collection_id"] == cid and "holders" not in col
    assert [g["account_id"] for g in col["grants"]] == [clin.id]
    assert _view(api, admin.token)["collections"] == []

    r = push(api, clin.token, cid, 1, n=3)
    assert r.status_code == 200, r.text
    assert [i["seq"] for i in r.json()["items"]] == [1, 2, 3]
    first_id = r.json()["items"][0]["item_id"]
    # A clinical item has one author: another holder of the key may not replace it...
    r = push(api, p.owner.token, cid, 1, item_id=first_id)
    assert (r.status_code, error_code(r)) == (409, "conflict")
    # ...its author may (last writer wins, new seq).
    r = push(api, clin.token, cid, 1, item_id=first_id)
    assert r.json()["items"] == [{"item_id": first_id, "seq": 4}]

    page = api.get(pp.collection_path(cid, "items"), token=clin.token, params={"limit": 2}).json()
    assert [i["seq"] for i in page["items"]] == [2, 3] and page["more"] is True
    assert page["cursor"] == "3"
    assert page["items"][0]["author_account_id"] == clin.id
    rest = api.get(
        pp.collection_path(cid, "items"), token=clin.token, params={"cursor": page["cursor"]}
    ).json()
    assert [(i["item_id"], i["seq"]) for i in rest["items"]] == [(first_id, 4)]
    assert rest["more"] is False and rest["items"][0]["author_account_id"] == clin.id
    r = api.get(pp.collection_path(cid, "items"), token=clin.token, params={"cursor": "x1"})
    assert (r.status_code, error_code(r)) == (400, "invalid_cursor")

    # The admin holds no grant: refused both ways.
    r = api.get(pp.collection_path(cid, "items"), token=admin.token)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    assert error_code(push(api, admin.token, cid, 1)) == "forbidden"
    # Only the owner creates and grants; grants go to active members, existing versions.
    r = api.post(
        pp.collection_path(cid, "grants"),
        token=clin.token,
        json={"grants": [grant(clin.sign, p.id, cid, admin.id, 1)]},
    )
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    pending = join(api, p, "admin", "late@example.org")
    for bad in (
        grant(p.owner.sign, p.id, cid, pending.id, 1),
        grant(p.owner.sign, p.id, cid, admin.id, 2),
    ):
        r = api.post(pp.collection_path(cid, "grants"), token=p.owner.token, json={"grants": [bad]})
        assert (r.status_code, error_code(r)) == (400, "invalid_request")
    # A grant the owner's key did not sign, or signed for another collection.
    for forged in (
        grant(Ed25519PrivateKey.generate(), p.id, cid, admin.id, 1),
        grant(p.owner.sign, p.id, str(uuid.uuid4()), admin.id, 1),
    ):
        forged["account_id"] = admin.id
        r = api.post(
            pp.collection_path(cid, "grants"), token=p.owner.token, json={"grants": [forged]}
        )
        assert (r.status_code, error_code(r)) == (400, "invalid_request")
    r = api.post(
        pp.collection_path(str(uuid.uuid4()), "grants"),
        token=p.owner.token,
        json={"grants": [grant(p.owner.sign, p.id, cid, admin.id, 1)]},
    )
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.post(
        pp.collection_path(cid, "grants"),
        token=p.owner.token,
        json={"grants": [grant(p.owner.sign, p.id, cid, admin.id, 1)]},
    )
    assert r.status_code == 200, r.text
    assert {h["account_id"] for h in r.json()["holders"]} == {p.owner.id, clin.id, admin.id}
    assert api.get(pp.collection_path(cid, "items"), token=admin.token).status_code == 200
    # Size and id checks.
    big = {
        "item_id": str(uuid.uuid4()),
        "key_version": 1,
        "ciphertext": b64(b"x" * (pp.MAX_ITEM_BYTES + 1)),
    }
    r = api.post(pp.collection_path(cid, "items"), token=clin.token, json={"items": [big]})
    assert (r.status_code, error_code(r)) == (413, "too_large")
    r = api.post(
        pp.collection_path(cid, "items"),
        token=clin.token,
        json={"items": [{"item_id": "nope", "key_version": 1, "ciphertext": ""}]},
    )
    assert error_code(r) == "invalid_request"


def test_rotation_and_stale_keys(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    cid = new_collection(api, p, "clinical", clin.id, [p.owner.id, clin.id])
    assert push(api, clin.token, cid, 1).status_code == 200
    path = pp.collection_path(cid, "rotate")
    owner_v2 = grant(p.owner.sign, p.id, cid, p.owner.id, 2)
    r = api.post(path, token=p.owner.token, json={"key_version": 3, "grants": [owner_v2]})
    assert (r.status_code, error_code(r)) == (409, "conflict")
    r = api.post(path, token=clin.token, json={"key_version": 2, "grants": [owner_v2]})
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.post(path, token=p.owner.token, json={"key_version": 2, "grants": [owner_v2]})
    assert r.status_code == 200, r.text
    assert r.json()["key_version"] == 2
    assert [g["key_version"] for g in r.json()["grants"]] == [1, 2]
    r = api.post(path, token=p.owner.token, json={"key_version": 2, "grants": [owner_v2]})
    assert (r.status_code, error_code(r)) == (409, "conflict")

    # Writes under the old key are stale; the clinician without a v2 grant cannot write.
    r = push(api, p.owner.token, cid, 1)
    assert (r.status_code, error_code(r)) == (409, "stale_key")
    assert push(api, p.owner.token, cid, 2).status_code == 200
    r = push(api, clin.token, cid, 2)
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    # ...but it still reads (old items need its v1 key), and after a v2 grant it writes.
    assert api.get(pp.collection_path(cid, "items"), token=clin.token).status_code == 200
    r = api.post(
        pp.collection_path(cid, "grants"),
        token=p.owner.token,
        json={"grants": [grant(p.owner.sign, p.id, cid, clin.id, 2)]},
    )
    assert r.status_code == 200, r.text
    assert push(api, clin.token, cid, 2).status_code == 200
    [col] = _view(api, clin.token)["collections"]
    assert [g["key_version"] for g in col["grants"]] == [1, 2] and col["key_version"] == 2


def test_create_collection_refusals(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")

    def post(token: str, **kw: Any) -> Any:
        cid = str(uuid.uuid4())
        body = {"collection_id": cid, "kind": "clinical", "subject": clin.id, "grants": [], **kw}
        return api.post(pp.PATH_COLLECTIONS, token=token, json=body)

    assert error_code(post(clin.token)) == "forbidden"
    assert error_code(post(p.owner.token, kind="billing")) == "invalid_request"
    assert error_code(post(p.owner.token, subject=None)) == "invalid_request"
    assert error_code(post(p.owner.token, subject=str(uuid.uuid4()))) == "invalid_request"
    assert error_code(post(p.owner.token, kind="diary")) == "invalid_request"
    r = post(p.owner.token, collection_id=p.collections["clinical"])
    assert (r.status_code, error_code(r)) == (409, "conflict")
    r = post(p.owner.token)
    assert r.status_code == 201 and r.json()["holders"] == [] and r.json()["key_version"] == 1


# --- policy -----------------------------------------------------------------------------------
def test_policy_updates_are_owner_signed_and_never_older(api: Api) -> None:
    p = create_practice(api)
    clin = add_member(api, p, "clinician")
    newer = policy(api, p.owner.sign, p.id, 60, max_idle_minutes=5)
    r = api.put(pp.PATH_POLICY, token=clin.token, json={"policy": newer})
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    for bad in (
        policy(api, clin.sign, p.id, 60),
        policy(api, p.owner.sign, str(uuid.uuid4()), 60),
        policy(api, p.owner.sign, p.id, 60, max_idle_minutes=pp.MAX_IDLE_MINUTES + 1),
    ):
        r = api.put(pp.PATH_POLICY, token=p.owner.token, json={"policy": bad})
        assert (r.status_code, error_code(r)) == (400, "invalid_request")
    r = api.put(pp.PATH_POLICY, token=p.owner.token, json={"policy": newer})
    assert (r.status_code, r.json()) == (200, {"policy": newer})
    assert _view(api, clin.token)["policy"] == newer
    older = policy(api, p.owner.sign, p.id, 30)
    r = api.put(pp.PATH_POLICY, token=p.owner.token, json={"policy": older})
    assert (r.status_code, error_code(r)) == (409, "conflict")


# --- isolation --------------------------------------------------------------------------------
def test_practices_are_isolated(api: Api) -> None:
    a = create_practice(api)
    b = create_practice(api)
    a_clin = add_member(api, a, "clinician")
    b_clin = add_member(api, b, "clinician")
    b_col = b.collections["clinical"]
    assert push(api, b.owner.token, b_col, 1).status_code == 200
    for token in (a.owner.token, a_clin.token):
        r = api.get(pp.collection_path(b_col, "items"), token=token)
        assert (r.status_code, error_code(r)) == (404, "not_found")
        assert error_code(push(api, token, b_col, 1)) == "not_found"
    r = api.post(
        pp.collection_path(b_col, "grants"),
        token=a.owner.token,
        json={"grants": [grant(a.owner.sign, a.id, b_col, a_clin.id, 1)]},
    )
    assert (r.status_code, error_code(r)) == (404, "not_found")
    # A's owner cannot grant B's member, certify or list B's members, or see B's invites.
    cid = a.collections["billing"]
    r = api.post(
        pp.collection_path(cid, "grants"),
        token=a.owner.token,
        json={"grants": [grant(a.owner.sign, a.id, cid, b_clin.id, 1)]},
    )
    assert error_code(r) == "invalid_request"
    r = api.get(pp.member_path(b_clin.id, "devices"), token=a.owner.token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    b_lookup = invite(api, b, "admin", "b@example.org")
    listed = api.get(pp.PATH_INVITES, token=a.owner.token).json()["invites"]
    assert b_lookup not in {i["invite_id"] for i in listed}
    r = api.post(
        pp.PATH_INVITES,
        token=a.owner.token,
        json={
            "lookup": b_lookup,
            "role": "admin",
            "email": "e@example.org",
            "envelope": b64(b"e"),
            "expires_at": _in(api, 60),
        },
    )
    assert (r.status_code, error_code(r)) == (409, "conflict")
    assert {c["collection_id"] for c in _view(api, a.owner.token)["collections"]} == set(
        a.collections.values()
    )


@pytest.mark.parametrize("path", [pp.PATH_JOIN])
def test_join_body_is_strict(api: Api, path: str) -> None:
    r = api.post(path, json={"lookup": "ab" * 32})
    assert (r.status_code, error_code(r)) == (400, "invalid_request")
