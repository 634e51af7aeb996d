"""Cross-account isolation on every authenticated route, table-driven: account B's token
never reads, changes or deletes anything of account A's, and without a token every such
route is 401. A test keeps the table in step with the app's route list."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from app.sync import protocol
from tests.sync.server.helpers import Account, Api, error_code

CANARY = b"A-ONLY-CIPHERTEXT-7f3a"
CHUNK_CANARY = b"A-ONLY-CHUNK-91c2"


@dataclass
class World:
    a: Account
    b: Account
    item_id: str
    etag: str
    attachment_id: str


@dataclass(frozen=True)
class Case:
    method: str
    template: str  # the route's path template
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None = None
    content: bytes | None = None
    allowed: frozenset[int] = frozenset({404})  # statuses B may see


def _push_item(w: World, expected: str | None) -> dict[str, Any]:
    return {
        "id": w.item_id,
        "kind": "note",
        "expected_etag": expected,
        "deleted": False,
        "key_id": "b-key",
        "blob": protocol.b64encode(b"B's own bytes"),
    }


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
    Case("POST", "/v1/auth/logout", lambda w: protocol.PATH_AUTH_LOGOUT, allowed=frozenset({200})),
]

UNAUTHENTICATED = {
    ("GET", "/v1/health"),
    ("POST", "/v1/accounts"),
    ("GET", "/v1/auth/params"),
    ("POST", "/v1/auth/challenge"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
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
    return World(a, b, item_id, r.json()["etag"], attachment_id)


def _snapshot(api: Api, w: World) -> tuple[Any, ...]:
    token = w.a.tokens["access_token"]
    return (
        api.get(protocol.PATH_ITEMS, token=token).json()["items"],
        api.get(protocol.attachment_path(w.attachment_id), token=token).json(),
        api.get(protocol.chunk_path(w.attachment_id, 0), token=token).content,
        [d["id"] for d in api.get(protocol.PATH_DEVICES, token=token).json()],
    )


def _send(api: Api, case: Case, w: World, token: str | None) -> Any:
    kwargs: dict[str, Any] = {"token": token}
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
        r = _send(api, case, w, w.b.tokens["access_token"])
        assert r.status_code in case.allowed, (case, r.status_code, r.text)
        assert CANARY not in r.content and protocol.b64encode(CANARY).encode() not in r.content
        assert CHUNK_CANARY not in r.content
        assert w.a.device["id"] not in r.text
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
