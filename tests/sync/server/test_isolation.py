"""Cross-account isolation on every authenticated route, table-driven: account B's token
never reads, changes or deletes anything of account A's, and without a token every such
route is 401; expired and revoked credentials are refused on every route. A test keeps
the table in step with the app's route list. Routes a device reaches with its control
token (``auth="control"``) are in the same table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from app.sync import practice_protocol as pp
from app.sync import protocol
from tests.sync.server.device_helpers import (
    first_device,
    login_device,
    order,
    proof,
    register_signing_key,
    send_order,
    signed,
)
from tests.sync.server.helpers import Account, Api, error_code, raw_public_key, weak_kdf

CANARY = b"A-ONLY-CIPHERTEXT-7f3a"
# Well-formed practice bodies (B belongs to no practice, so none gets further).
_PRACTICE_ID = str(uuid.uuid4())
_SIGNED = {"doc": {}, "signature": protocol.b64encode(bytes(64))}
_INVITE = {
    "lookup": "ab" * 32,
    "role": "admin",
    "email": "e@example.org",
    "envelope": protocol.b64encode(b"envelope"),
    "expires_at": "2026-01-05T10:00:00.000Z",
}
_AUDIT = {"entries": [{"entry_id": "e1", "sealed": protocol.b64encode(b"x")}]}
_COLLECTION: dict[str, Any] = {
    "collection_id": _PRACTICE_ID,
    "kind": "billing",
    "subject": None,
    "grants": [],
}
_ITEMS = {"items": [{"item_id": _PRACTICE_ID, "key_version": 1, "ciphertext": ""}]}
_GRANT = {
    "account_id": _PRACTICE_ID,
    "key_version": 2,
    "wrapped_key": protocol.b64encode(b"k"),
    "signature": protocol.b64encode(bytes(64)),
}
CHUNK_CANARY = b"A-ONLY-CHUNK-91c2"


# A well-formed re-authentication body that verifies nothing.
DUMMY_REAUTH = {
    "challenge_id": "no-such-challenge",
    "signature": protocol.b64encode(bytes(64)),
    "totp": "000000",
}


@dataclass
class World:
    a: Account
    b: Account
    item_id: str
    etag: str
    attachment_id: str
    a_device_id: str = "00000000-0000-4000-8000-00000000000a"  # A's second device
    a_order_id: str = "00000000-0000-4000-8000-00000000000b"  # its pending lock order
    a_signing_key: str = ""  # base64 public key
    b_signing_body: dict[str, Any] | None = None  # B's own key, with its proof
    b_order_body: dict[str, Any] | None = None  # signed by B, for A's device
    b_control: str = ""


def _dummy_order(w: World) -> dict[str, Any]:
    body = {
        "v": 1,
        "order_id": w.a_order_id,
        "account_id": w.a_device_id,
        "device_id": w.a_device_id,
        "action": "lock",
        "issued_at": "2026-01-05T09:00:00.000Z",
    }
    return {"order": body, "signature": protocol.b64encode(bytes(64))}


@dataclass(frozen=True)
class Case:
    method: str
    template: str  # the route's path template
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None = None
    content: bytes | None = None
    allowed: frozenset[int] = frozenset({404})  # statuses B may see
    auth: str = "bearer"  # or "control": the device control token header


def _push_item(w: World, expected: str | None) -> dict[str, Any]:
    return {
        "id": w.item_id,
        "kind": "note",
        "expected_etag": expected,
        "deleted": False,
        "key_id": "b-key",
        "blob": protocol.b64encode(b"B's own bytes"),
    }


_Body = Callable[["World"], dict[str, Any]] | None


def _practice_case(method: str, template: str, path: str, body: _Body) -> Case:
    return Case(method, template, lambda w: path, body=body)


CASES = [
    Case("GET", "/v1/items", lambda w: protocol.PATH_ITEMS, allowed=frozenset({200})),
    Case("GET", "/v1/items/{item_id}", lambda w: protocol.item_path(w.item_id)),
    Case(
        "PUT",
        "/v1/items/{item_id}",
        lambda w: protocol.item_path(w.item_id),
        body=lambda w: {k: v for k, v in _push_item(w, w.etag).items() if k != "id"},
        allowed=frozenset({409}),  # B has no such item: conflict with current null
    ),
    Case(
        "PUT",
        "/v1/items/{item_id}",
        lambda w: protocol.item_path(w.item_id),
        body=lambda w: {k: v for k, v in _push_item(w, None).items() if k != "id"},
        allowed=frozenset({200}),  # creates B's own item with that id, in B's space
    ),
    Case(
        "POST",
        "/v1/items:batch",
        lambda w: protocol.PATH_ITEMS_BATCH,
        body=lambda w: {"items": [_push_item(w, w.etag)]},
        allowed=frozenset({200}),
    ),
    Case(
        "GET",
        "/v1/attachments/{attachment_id}",
        lambda w: protocol.attachment_path(w.attachment_id),
    ),
    Case(
        "GET",
        "/v1/attachments/{attachment_id}/chunks/{n}",
        lambda w: protocol.chunk_path(w.attachment_id, 0),
    ),
    Case(
        "DELETE",
        "/v1/attachments/{attachment_id}",
        lambda w: protocol.attachment_path(w.attachment_id),
    ),
    Case(
        "PUT",
        "/v1/attachments/{attachment_id}/chunks/{n}",
        lambda w: protocol.chunk_path(w.attachment_id, 0),
        content=b"B overwrites?",
        allowed=frozenset({200}),  # B's own chunk in B's space
    ),
    Case(
        "DELETE",
        "/v1/attachments/{attachment_id}",
        lambda w: protocol.attachment_path(w.attachment_id),
        allowed=frozenset({200}),  # deletes the chunk B put above in B's space, only that
    ),
    Case("GET", "/v1/devices", lambda w: protocol.PATH_DEVICES, allowed=frozenset({200})),
    Case(
        "GET",
        "/v1/account/signing-key",
        lambda w: protocol.PATH_SIGNING_KEY,
        allowed=frozenset({200}),  # B's own key
    ),
    Case(
        "PUT",
        "/v1/account/signing-key",
        lambda w: protocol.PATH_SIGNING_KEY,
        body=lambda w: w.b_signing_body or {"public_key": w.a_signing_key or "", "proof": ""},
        allowed=frozenset({200}),  # B's own key again: a no-op
    ),
    Case(
        "POST",
        "/v1/devices/{device_id}/orders",
        lambda w: protocol.device_orders_path(w.a_device_id),
        body=lambda w: w.b_order_body or _dummy_order(w),
    ),
    Case(
        "POST",
        "/v1/devices/{device_id}/remove",
        lambda w: protocol.device_remove_path(w.a_device_id),
        body=lambda w: DUMMY_REAUTH,
    ),
    Case(
        "GET",
        "/v1/devices/self/order",
        lambda w: protocol.PATH_SELF_ORDER,
        allowed=frozenset({204}),  # B's device has no order; A's is never shown
        auth="control",
    ),
    Case(
        "POST",
        "/v1/devices/self/order/ack",
        lambda w: protocol.PATH_SELF_ORDER_ACK,
        body=lambda w: {"order_id": w.a_order_id, "state": "locked"},
        auth="control",
    ),
    Case(
        "POST",
        "/v1/devices/self/escrow/release",
        lambda w: protocol.PATH_SELF_ESCROW_RELEASE,
        body=lambda w: DUMMY_REAUTH,
        auth="control",  # B's device has no escrow key (A's has one): 404
    ),
    Case(
        "POST",
        "/v1/devices/self/escrow",
        lambda w: protocol.PATH_SELF_ESCROW,
        allowed=frozenset({200}),  # B's own device's key
    ),
    Case(
        "GET",
        "/v1/account/key-epochs",
        lambda w: protocol.PATH_KEY_EPOCHS,
        allowed=frozenset({200}),  # B's own epochs
    ),
    Case(
        "POST",
        "/v1/account/key-epochs",
        lambda w: protocol.PATH_KEY_EPOCHS,
        body=lambda w: {"epoch": 2, "kdf": weak_kdf(b"B" * 16)},
        allowed=frozenset({200}),  # B's own epoch 2: A's epochs and sessions stay
    ),
    Case("POST", "/v1/auth/logout", lambda w: protocol.PATH_AUTH_LOGOUT, allowed=frozenset({200})),
    # Practice routes: B is in no practice, so each well-formed request is 404
    # not_in_practice; creating one with a malformed body is refused before anything is
    # stored. (test_practice*.py covers isolation between two practices.)
    *(
        _practice_case(method, template, path, body)
        for method, template, path, body in (
            ("GET", "/v1/practice", pp.PATH_PRACTICE, None),
            ("PUT", "/v1/practice/policy", pp.PATH_POLICY, lambda w: {"policy": _SIGNED}),
            ("GET", "/v1/practice/invites", pp.PATH_INVITES, None),
            ("POST", "/v1/practice/invites", pp.PATH_INVITES, lambda w: _INVITE),
            ("GET", "/v1/practice/keyring", pp.PATH_KEYRING, None),
            (
                "PUT",
                "/v1/practice/keyring",
                pp.PATH_KEYRING,
                lambda w: {"keyring": protocol.b64encode(b"sealed")},
            ),
            ("GET", "/v1/practice/audit", pp.PATH_AUDIT, None),
            ("POST", "/v1/practice/audit", pp.PATH_AUDIT, lambda w: _AUDIT),
            ("POST", "/v1/practice/collections", pp.PATH_COLLECTIONS, lambda w: _COLLECTION),
            (
                "POST",
                "/v1/practice/members/{account_id}/certificate",
                pp.member_path(_PRACTICE_ID, "certificate"),
                lambda w: {"certificate": _SIGNED},
            ),
            (
                "POST",
                "/v1/practice/members/{account_id}/remove",
                pp.member_path(_PRACTICE_ID, "remove"),
                lambda w: {"orders": []},
            ),
            (
                "GET",
                "/v1/practice/members/{account_id}/devices",
                pp.member_path(_PRACTICE_ID, "devices"),
                None,
            ),
            (
                "GET",
                "/v1/practice/collections/{collection_id}/items",
                pp.collection_path(_PRACTICE_ID, "items"),
                None,
            ),
            (
                "POST",
                "/v1/practice/collections/{collection_id}/items",
                pp.collection_path(_PRACTICE_ID, "items"),
                lambda w: _ITEMS,
            ),
            (
                "POST",
                "/v1/practice/collections/{collection_id}/grants",
                pp.collection_path(_PRACTICE_ID, "grants"),
                lambda w: {"grants": [_GRANT]},
            ),
            (
                "POST",
                "/v1/practice/collections/{collection_id}/rotate",
                pp.collection_path(_PRACTICE_ID, "rotate"),
                lambda w: {"key_version": 2, "grants": [_GRANT]},
            ),
        )
    ),
    Case(
        "POST",
        "/v1/practice",
        lambda w: pp.PATH_PRACTICE,
        body=lambda w: {"practice_id": _PRACTICE_ID},
        allowed=frozenset({400}),
    ),
]

UNAUTHENTICATED = {
    ("GET", "/v1/health"),
    ("POST", "/v1/accounts"),
    ("GET", "/v1/auth/params"),
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("GET", "/v1/practice/invites/{lookup}"),  # open, IP-limited (test_practice.py)
    ("POST", "/v1/practice/join"),
}


def _world(api: Api) -> World:
    a, b = api.account("alice"), api.account("bob")
    item_id = str(uuid.uuid4())
    r = api.put(
        protocol.item_path(item_id),
        token=a.tokens["access_token"],
        json={
            "kind": "note",
            "expected_etag": None,
            "deleted": False,
            "key_id": "a-key",
            "blob": protocol.b64encode(CANARY),
        },
    )
    attachment_id = str(uuid.uuid4())
    api.put(
        protocol.chunk_path(attachment_id, 0), token=a.tokens["access_token"], content=CHUNK_CANARY
    )
    # A: a signing key, a second device with an escrow key and a pending lock order.
    a_key = register_signing_key(api, a)
    a_two = login_device(api, a)
    assert api.post(protocol.PATH_SELF_ESCROW, token=a_two.access).status_code == 200
    assert send_order(api, a, first_device(a), a_two, "lock", a_key).status_code == 200
    pending = api.get(protocol.PATH_SELF_ORDER, headers=a_two.control).json()
    # B: its own signing key; an order it signed for A's device.
    b_key = register_signing_key(api, b)
    b_signing_body = {
        "public_key": protocol.b64encode(raw_public_key(b_key)),
        "proof": proof(b_key, b.account_id),
    }
    b_control = login_device(api, b, b.device).tokens
    b.tokens = b_control
    return World(
        a,
        b,
        item_id,
        r.json()["etag"],
        attachment_id,
        a_device_id=a_two.id,
        a_order_id=pending["order"]["order_id"],
        a_signing_key=protocol.b64encode(raw_public_key(a_key)),
        b_signing_body=b_signing_body,
        b_order_body=signed(order(api, b, a_two.id, "wipe"), b_key),
        b_control=b_control["control_token"],
    )


def _snapshot(api: Api, w: World) -> tuple[Any, ...]:
    token = w.a.tokens["access_token"]
    return (
        api.get(protocol.PATH_ITEMS, token=token).json()["items"],
        api.get(protocol.attachment_path(w.attachment_id), token=token).json(),
        api.get(protocol.chunk_path(w.attachment_id, 0), token=token).content,
        [
            (d["id"], d["state"], d["order"])
            for d in api.get(protocol.PATH_DEVICES, token=token).json()
        ],
        api.get(protocol.PATH_SIGNING_KEY, token=token).json(),
        api.get(protocol.PATH_KEY_EPOCHS, token=token).json(),
    )


def _send(api: Api, case: Case, w: World, token: str | None) -> Any:
    kwargs: dict[str, Any] = {}
    if case.auth == "control":
        if token is not None:
            kwargs["headers"] = {protocol.CONTROL_TOKEN_HEADER: token}
    else:
        kwargs["token"] = token
    if case.body is not None:
        kwargs["json"] = case.body(w)
    if case.content is not None:
        kwargs["content"] = case.content
    return api.request(case.method, case.path(w), **kwargs)


def test_table_covers_every_authenticated_route(api: Api) -> None:
    # The OpenAPI document lists every route the app serves.
    paths = api.get(protocol.PATH_OPENAPI).json()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {(c.method, c.template) for c in CASES}
    assert routes - UNAUTHENTICATED == covered


def test_account_b_cannot_touch_account_a(api: Api) -> None:
    w = _world(api)
    before = _snapshot(api, w)
    for case in CASES:
        if case.template == "/v1/auth/logout":
            continue  # run last: it ends B's session
        r = _send(api, case, w, _credential(case, w.b.tokens))
        assert r.status_code in case.allowed, (case, r.status_code, r.text)
        assert CANARY not in r.content and protocol.b64encode(CANARY).encode() not in r.content
        assert CHUNK_CANARY not in r.content
        assert w.a.device["id"] not in r.text
        assert w.a_device_id not in r.text and w.a_order_id not in r.text
        assert w.a_signing_key not in r.text
    # B's view of the world holds only B's things.
    b_items = api.get(protocol.PATH_ITEMS, token=w.b.tokens["access_token"]).json()["items"]
    assert [i["key_id"] for i in b_items] == ["b-key"]
    assert _snapshot(api, w) == before
    # B logging out ends B's session only.
    logout = next(c for c in CASES if c.template == "/v1/auth/logout")
    assert _send(api, logout, w, w.b.tokens["access_token"]).status_code == 200
    assert (
        error_code(api.get(protocol.PATH_DEVICES, token=w.b.tokens["access_token"]))
        == "unauthorized"
    )
    assert _snapshot(api, w) == before


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.template}")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_account_route_needs_a_token(api: Api, case: Case) -> None:
    w = World(
        a=None,  # type: ignore[arg-type]
        b=None,  # type: ignore[arg-type]
        item_id=str(uuid.uuid4()),
        etag="0" * 64,
        attachment_id=str(uuid.uuid4()),
    )
    for token in (None, "forged-token"):
        r = _send(api, case, w, token)
        assert (r.status_code, error_code(r)) == (401, "unauthorized"), case


def _credential(case: Case, tokens: dict[str, str]) -> str:
    return tokens["control_token"] if case.auth == "control" else tokens["access_token"]


def test_expired_and_revoked_credentials_are_refused_everywhere(api: Api) -> None:
    w = _world(api)
    old_b = dict(w.b.tokens)
    # Revoked: B's device signs in again (its control token and session are replaced),
    # then B logs out (the new session ends too).
    b_new = login_device(api, w.b, w.b.device)
    assert api.post(protocol.PATH_AUTH_LOGOUT, token=b_new.access).status_code == 200
    for case in CASES:
        credentials = [old_b] if case.auth == "control" else [old_b, b_new.tokens]
        for tokens in credentials:  # (a control token outlives a logout, by design)
            r = _send(api, case, w, _credential(case, tokens))
            assert (r.status_code, error_code(r)) == (401, "unauthorized"), (case, r.text)
    a_one = first_device(w.a)
    # Expired: every access token dies after an hour (control tokens have no expiry, so
    # a control route with an expired bearer token is still "no such control token").
    fresh = login_device(api, w.a, a_one.info)
    api.clock.advance(3601)
    for case in CASES:
        r = _send(api, case, w, fresh.access)
        expected = "unauthorized" if case.auth == "control" else "token_expired"
        assert (r.status_code, error_code(r)) == (401, expected), (case, r.text)


def test_a_locked_device_is_refused_on_every_session_route(api: Api) -> None:
    a = api.account("alice")
    key = register_signing_key(api, a)
    two = login_device(api, a)
    assert send_order(api, a, first_device(a), two, "lock", key).status_code == 200
    w = World(a, a, str(uuid.uuid4()), "0" * 64, str(uuid.uuid4()), a_device_id=two.id)
    for case in CASES:
        if case.auth == "control":
            continue
        r = _send(api, case, w, two.access)
        assert (r.status_code, error_code(r)) == (401, "unauthorized"), case
