"""Authentication over the WHOLE route list, table-driven (issue 9).

The route list is read from the app itself at test time (``app.routes``, including the
routes the OpenAPI document leaves out, such as the /account page), so a new route
fails ``test_every_route_is_classified`` until it is added to ``ROUTES`` with its access
class: ``public`` (no credential), ``session`` (a bearer access token) or ``control``
(the device control token header). Then, on every session and control route:

- every bad credential is refused with 401 before the request is looked at: none,
  malformed, forged, a refresh or control token where an access token belongs (and the
  reverse), an access token that expired, and tokens revoked every way the server
  revokes them (logout, refresh rotation, a newer login of the device, a lock order, the
  device's removal, a new account key epoch);
- account B's valid credentials never reveal or change anything of account A's;
- brute force on every verifier (login, device removal, escrow release) counts toward
  one lockout, and a TOTP code used once is refused everywhere after.

tests/sync/server/test_isolation.py checks the per-route statuses of cross-account
requests in detail; this file is the exhaustive credential matrix.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import httpx
import pyotp

from app.sync import protocol
from tests.sync.server.device_helpers import (
    Device,
    first_device,
    login_device,
    proof,
    reauth,
    register_signing_key,
    send_order,
)
from tests.sync.server.helpers import Account, Api, error_code, raw_public_key, weak_kdf

CANARY = b"A-ONLY-AUTH-TABLE-CIPHERTEXT"
CHUNK = b"A-ONLY-AUTH-TABLE-CHUNK"


@dataclass
class World:
    """Account A (an item, an attachment, a signing key, a second device with an escrow
    key and a pending order) and account B (a session and a control token)."""

    a: Account
    b: Account
    item_id: str
    attachment_id: str
    a_two: Device
    order_id: str
    b_body: dict[str, Any] = field(default_factory=dict)  # B's signing key and its proof


@dataclass(frozen=True)
class Route:
    access: str  # "public", "session" or "control"
    path: Callable[[World], str] = lambda w: ""
    body: Callable[[World], Any] | None = None
    content: bytes | None = None


def _put_item(w: World) -> dict[str, Any]:
    return {"kind": "note", "expected_etag": None, "deleted": False, "key_id": "k",
            "blob": protocol.b64encode(b"x")}  # fmt: skip


def _dummy_reauth(w: World) -> dict[str, Any]:
    return {"challenge_id": "c", "signature": protocol.b64encode(bytes(64)), "totp": "000000"}


def _static(path: str) -> Callable[[World], str]:
    return lambda w: path


PUBLIC = Route("public")
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/v1/openapi.json"): PUBLIC,
    ("GET", "/v1/health"): PUBLIC,
    ("POST", "/v1/accounts"): PUBLIC,  # sign-up
    ("GET", "/v1/auth/params"): PUBLIC,  # answers alike for unknown usernames
    ("POST", "/v1/auth/challenge"): PUBLIC,
    ("POST", "/v1/auth/login"): PUBLIC,  # a signed challenge and a second factor
    ("POST", "/v1/auth/refresh"): PUBLIC,  # the refresh token in the body (own test)
    ("GET", "/account"): PUBLIC,  # the web page and its static files
    ("GET", "/account/assets/account.js"): PUBLIC,
    ("GET", "/account/assets/account.css"): PUBLIC,
    ("GET", "/account/assets/argon2.umd.min.js"): PUBLIC,
    ("GET", "/account/assets/hash-wasm-LICENSE.txt"): PUBLIC,
    ("POST", "/v1/auth/logout"): Route("session", _static(protocol.PATH_AUTH_LOGOUT), lambda w: {}),
    ("GET", "/v1/devices"): Route("session", _static(protocol.PATH_DEVICES)),
    ("GET", "/v1/items"): Route("session", _static(protocol.PATH_ITEMS)),
    ("POST", "/v1/items:batch"): Route(
        "session",
        _static(protocol.PATH_ITEMS_BATCH),
        lambda w: {"items": [{"id": w.item_id, **_put_item(w)}]},
    ),
    ("GET", "/v1/items/{item_id}"): Route("session", lambda w: protocol.item_path(w.item_id)),
    ("PUT", "/v1/items/{item_id}"): Route(
        "session", lambda w: protocol.item_path(w.item_id), _put_item
    ),
    ("GET", "/v1/attachments/{attachment_id}"): Route(
        "session", lambda w: protocol.attachment_path(w.attachment_id)
    ),
    ("DELETE", "/v1/attachments/{attachment_id}"): Route(
        "session", lambda w: protocol.attachment_path(w.attachment_id)
    ),
    ("PUT", "/v1/attachments/{attachment_id}/chunks/{n}"): Route(
        "session", lambda w: protocol.chunk_path(w.attachment_id, 0), content=b"overwrite?"
    ),
    ("GET", "/v1/attachments/{attachment_id}/chunks/{n}"): Route(
        "session", lambda w: protocol.chunk_path(w.attachment_id, 0)
    ),
    ("GET", "/v1/account/signing-key"): Route("session", _static(protocol.PATH_SIGNING_KEY)),
    ("PUT", "/v1/account/signing-key"): Route(
        "session", _static(protocol.PATH_SIGNING_KEY), lambda w: w.b_body
    ),
    ("POST", "/v1/devices/{device_id}/orders"): Route(
        "session",
        lambda w: protocol.device_orders_path(w.a_two.id),
        lambda w: {
            "order": {
                "v": 1,
                "order_id": str(uuid.uuid4()),
                "account_id": w.a.account_id,
                "device_id": w.a_two.id,
                "action": "wipe",
                "issued_at": "2026-01-05T09:00:00.000Z",
            },
            "signature": protocol.b64encode(bytes(64)),
        },
    ),
    ("POST", "/v1/devices/{device_id}/remove"): Route(
        "session", lambda w: protocol.device_remove_path(w.a_two.id), _dummy_reauth
    ),
    ("POST", "/v1/devices/self/escrow"): Route(
        "session", _static(protocol.PATH_SELF_ESCROW), lambda w: {}
    ),
    ("GET", "/v1/account/key-epochs"): Route("session", _static(protocol.PATH_KEY_EPOCHS)),
    ("POST", "/v1/account/key-epochs"): Route(
        "session",
        _static(protocol.PATH_KEY_EPOCHS),
        lambda w: {"epoch": 2, "kdf": weak_kdf(b"E" * 16)},
    ),
    ("GET", "/v1/devices/self/order"): Route("control", _static(protocol.PATH_SELF_ORDER)),
    ("POST", "/v1/devices/self/order/ack"): Route(
        "control",
        _static(protocol.PATH_SELF_ORDER_ACK),
        lambda w: {"order_id": w.order_id, "state": "locked"},
    ),
    ("POST", "/v1/devices/self/escrow/release"): Route(
        "control", _static(protocol.PATH_SELF_ESCROW_RELEASE), _dummy_reauth
    ),
    # Practice mode (issue 8): an invite is looked up and redeemed before its holder has
    # an account; everything else is a member's session.
    ("GET", "/v1/practice/invites/{lookup}"): PUBLIC,
    ("POST", "/v1/practice/join"): PUBLIC,
}
_COLLECTION_PATH = "/v1/practice/collections/{c}"
_MEMBER_PATH = "/v1/practice/members/{a}"
_PRACTICE_SESSION = {
    ("GET", "/v1/practice"): "/v1/practice",
    ("POST", "/v1/practice"): "/v1/practice",
    ("PUT", "/v1/practice/policy"): "/v1/practice/policy",
    ("GET", "/v1/practice/audit"): "/v1/practice/audit",
    ("POST", "/v1/practice/audit"): "/v1/practice/audit",
    ("GET", "/v1/practice/invites"): "/v1/practice/invites",
    ("POST", "/v1/practice/invites"): "/v1/practice/invites",
    ("POST", "/v1/practice/collections"): "/v1/practice/collections",
    ("GET", "/v1/practice/collections/{collection_id}/items"): _COLLECTION_PATH + "/items",
    ("POST", "/v1/practice/collections/{collection_id}/items"): _COLLECTION_PATH + "/items",
    ("POST", "/v1/practice/collections/{collection_id}/grants"): _COLLECTION_PATH + "/grants",
    ("POST", "/v1/practice/collections/{collection_id}/rotate"): _COLLECTION_PATH + "/rotate",
    ("GET", "/v1/practice/members/{account_id}/devices"): _MEMBER_PATH + "/devices",
    ("POST", "/v1/practice/members/{account_id}/certificate"): _MEMBER_PATH + "/certificate",
    ("POST", "/v1/practice/members/{account_id}/remove"): _MEMBER_PATH + "/remove",
    ("GET", "/v1/practice/keyring"): "/v1/practice/keyring",
    ("PUT", "/v1/practice/keyring"): "/v1/practice/keyring",
}
COLLECTION = "00000000-0000-4000-8000-00000000c011"
for (_method, _template), _path in _PRACTICE_SESSION.items():
    ROUTES[(_method, _template)] = Route(
        "session",
        lambda w, p=_path: p.format(c=COLLECTION, a=w.a.account_id),
        None if _method == "GET" else (lambda w: {}),
    )
GUARDED = {key: r for key, r in ROUTES.items() if r.access != "public"}
IDS = [f"{m} {p}" for m, p in GUARDED]


def app_routes(api: Api) -> set[tuple[str, str]]:
    """Every (method, path template) the app serves, read from the app (HEAD, which
    Starlette adds to each GET of a plain route, is left out)."""
    app = api.client.app
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = list(iterate(app.routes)) if iterate is not None else list(app.routes)  # type: ignore[attr-defined]
    found: set[tuple[str, str]] = set()
    for route in routes:
        methods = getattr(route, "methods", None) or set()
        found |= {(m, route.path) for m in methods if m != "HEAD"}
    return found


def test_every_route_is_classified(api: Api) -> None:
    served = app_routes(api)
    assert len(served) >= len(ROUTES) - 1  # the route list was read at all
    missing = sorted(served - set(ROUTES))
    assert not missing, f"routes without an access class in ROUTES: {missing}"
    stale = sorted(set(ROUTES) - served)
    assert not stale, f"ROUTES names routes the app does not serve: {stale}"


# -- the world ---------------------------------------------------------------------------
def _world(api: Api) -> World:
    a, b = api.account("alice"), api.account("bob")
    item_id, attachment_id = str(uuid.uuid4()), str(uuid.uuid4())
    put = api.put(protocol.item_path(item_id), token=a.tokens["access_token"],
                  json={"kind": "note", "expected_etag": None, "deleted": False,
                        "key_id": "a-key", "blob": protocol.b64encode(CANARY)})  # fmt: skip
    assert put.status_code == 200, put.text
    chunk = api.put(protocol.chunk_path(attachment_id, 0), token=a.tokens["access_token"],
                    content=CHUNK)  # fmt: skip
    assert chunk.status_code == 200, chunk.text
    a_key = register_signing_key(api, a)
    a_two = login_device(api, a)
    assert api.post(protocol.PATH_SELF_ESCROW, token=a_two.access).status_code == 200
    assert send_order(api, a, first_device(a), a_two, "lock", a_key).status_code == 200
    pending = api.get(protocol.PATH_SELF_ORDER, headers=a_two.control).json()
    b_key = register_signing_key(api, b)
    b_body = {"public_key": protocol.b64encode(raw_public_key(b_key)),
              "proof": proof(b_key, b.account_id)}  # fmt: skip
    return World(a, b, item_id, attachment_id, a_two, pending["order"]["order_id"], b_body)


def _send(api: Api, key: tuple[str, str], w: World, headers: dict[str, Any]) -> httpx.Response:
    route = ROUTES[key]
    kwargs: dict[str, Any] = {"headers": headers}
    if route.body is not None:
        kwargs["json"] = route.body(w)
    if route.content is not None:
        kwargs["content"] = route.content
    return api.request(key[0], route.path(w), **kwargs)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _control(token: str) -> dict[str, str]:
    return {protocol.CONTROL_TOKEN_HEADER: token}


def _assert_refused(r: httpx.Response, why: str, codes: frozenset[str]) -> None:
    assert r.status_code == 401, (why, r.status_code, r.text)
    assert error_code(r) in codes, (why, r.text)
    assert r.headers.get("WWW-Authenticate") == "Bearer", why


UNAUTHORIZED = frozenset({"unauthorized"})


def _bad_credentials(api: Api, w: World) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """For each access class, named lists of header sets that must all be refused. Every
    revocation is done here, on account A's devices, before any request is sent."""
    forged = secrets.token_urlsafe(32)
    # Revoked by logout.
    out = login_device(api, w.a)
    assert api.post(protocol.PATH_AUTH_LOGOUT, token=out.access).status_code == 200
    # Revoked by refresh rotation: the old access token (and the old refresh token, once
    # reused, revokes the family; that is test_sessions' subject).
    rotated = login_device(api, w.a)
    r = api.post(
        protocol.PATH_AUTH_REFRESH, json={"refresh_token": rotated.tokens["refresh_token"]}
    )
    assert r.status_code == 200, r.text
    # Replaced by a newer login of the same device (the old session and control token).
    relog_old = login_device(api, w.a)
    login_device(api, w.a, relog_old.info)
    # Removed device.
    gone = login_device(api, w.a)
    r = api.post(protocol.device_remove_path(gone.id), token=w.a.tokens["access_token"],
                 json=reauth(api, w.a))  # fmt: skip
    assert r.status_code == 200, r.text
    # Locked device (its sessions end; its control token stays, by design: it must
    # still fetch its order), and A's second device, locked in the world.
    return {
        "session": {
            "none": [{}],
            "malformed": [
                {"Authorization": "Bearer"},
                {"Authorization": "Basic " + protocol.b64encode(b"alice:password")},
                {"Authorization": f"Token {w.b.tokens['access_token']}"},
                _bearer(w.b.tokens["access_token"] + "x"),
                _bearer(w.b.tokens["access_token"][:-1]),
                _bearer("x" * 5000),
                {"Authorization": ("Bearer " + "\u00e9" * 10).encode("latin-1")},  # not ASCII
            ],
            "forged": [_bearer(forged)],
            "wrong kind of token": [
                _bearer(w.b.tokens["refresh_token"]),
                _bearer(w.b.tokens["control_token"]),
                _control(w.b.tokens["access_token"]),
            ],
            "revoked: logout": [_bearer(out.access)],
            "revoked: refresh rotation": [_bearer(rotated.access)],
            "revoked: newer login": [_bearer(relog_old.access)],
            "revoked: device removed": [_bearer(gone.access)],
            "revoked: device locked": [_bearer(w.a_two.access)],
        },
        "control": {
            "none": [{}],
            "malformed": [
                _control(""),
                _control("x" * 5000),
                _control(w.b.tokens["control_token"] + "x"),
            ],
            "forged": [_control(forged)],
            "wrong kind of token": [
                _control(w.b.tokens["access_token"]),
                _control(w.b.tokens["refresh_token"]),
                _bearer(w.b.tokens["control_token"]),  # the right token, the wrong header
            ],
            "revoked: newer login": [_control(relog_old.tokens["control_token"])],
        },
    }  # fmt: skip


def test_bad_credentials_are_refused_on_every_route(api: Api, db_url: str) -> None:
    w = _world(api)
    matrix = _bad_credentials(api, w)
    refused = 0
    for key, route in GUARDED.items():
        for why, header_sets in matrix[route.access].items():
            if why == "malformed" and not db_url.startswith("sqlite"):
                continue  # refused before any query: once (on SQLite) is enough
            for headers in header_sets:
                _assert_refused(_send(api, key, w, headers), f"{key} {why}", UNAUTHORIZED)
                refused += 1
    assert refused >= len(GUARDED) * 6


def test_expired_tokens_and_new_key_epochs_end_sessions_everywhere(api: Api) -> None:
    w = _world(api)
    # A new account key epoch ends every session of the account but the caller's.
    caller, other = login_device(api, w.b), login_device(api, w.b)
    r = api.post(protocol.PATH_KEY_EPOCHS, token=caller.access,
                 json={"epoch": 2, "kdf": weak_kdf(b"N" * 16)})  # fmt: skip
    assert r.status_code == 200, r.text
    for key, route in GUARDED.items():
        if route.access == "session":
            _assert_refused(_send(api, key, w, _bearer(other.access)), f"{key} epoch", UNAUTHORIZED)
    # Expired: an hour later no access token is good anywhere.
    fresh = login_device(api, w.b)
    api.clock.advance(3601)
    for key, route in GUARDED.items():
        if route.access == "session":
            r = _send(api, key, w, _bearer(fresh.access))
            _assert_refused(r, f"{key} expired", frozenset({"token_expired"}))


def _snapshot(api: Api, w: World) -> tuple[Any, ...]:
    token = w.a.tokens["access_token"]
    devices = api.get(protocol.PATH_DEVICES, token=token).json()
    return (
        api.get(protocol.PATH_ITEMS, token=token).json()["items"],
        api.get(protocol.attachment_path(w.attachment_id), token=token).json(),
        api.get(protocol.chunk_path(w.attachment_id, 0), token=token).content,
        sorted((d["id"], d["state"], d["name"], str(d["order"])) for d in devices),
        api.get(protocol.PATH_SIGNING_KEY, token=token).json(),
        api.get(protocol.PATH_KEY_EPOCHS, token=token).json(),
    )


def test_account_b_reads_and_changes_nothing_of_account_a(api: Api) -> None:
    w = _world(api)
    before = _snapshot(api, w)
    ids = (w.a.device["id"], w.a_two.id, w.order_id)
    secrets_of_a = [CANARY, protocol.b64encode(CANARY).encode(), CHUNK] + [i.encode() for i in ids]
    b_two = login_device(api, w.b)  # a control token of B's
    for key, route in sorted(GUARDED.items(), key=lambda kv: kv[0][1].endswith("logout")):
        headers = _control(b_two.tokens["control_token"]) if route.access == "control" else (
            _bearer(w.b.tokens["access_token"]))  # fmt: skip
        r = _send(api, key, w, headers)
        assert r.status_code < 500, (key, r.text)
        for secret in secrets_of_a:
            assert secret not in r.content, (key, secret)
    assert _snapshot(api, w) == before


# -- brute force and TOTP replay, across every verifier ------------------------------------
def _wrong_login(api: Api, a: Account) -> httpx.Response:
    return api.login_response(a, totp="000000")


def _wrong_remove(api: Api, a: Account, device: Device) -> httpx.Response:
    body = reauth(api, a, totp="000000")
    return api.post(protocol.device_remove_path(device.id), token=a.tokens["access_token"],
                    json=body)  # fmt: skip


def _wrong_release(api: Api, a: Account, device: Device) -> httpx.Response:
    body = reauth(api, a, totp="000000")
    return api.post(protocol.PATH_SELF_ESCROW_RELEASE, headers=device.control, json=body)


def test_failures_on_every_verifier_count_toward_one_lockout(
    make_client: Callable[..., Api],
) -> None:
    api = make_client(lockout_failures=6, lockout_s=600)
    a = api.account("brute")
    two = login_device(api, a)
    assert api.post(protocol.PATH_SELF_ESCROW, token=two.access).status_code == 200
    attempts = [
        lambda: _wrong_login(api, a),
        lambda: _wrong_remove(api, a, two),
        lambda: _wrong_release(api, a, two),
    ] * 2
    for attempt in attempts:
        r = attempt()
        assert r.status_code == 401, r.text
    # Locked now: the right answers are refused too, on every verifier.
    for r in (
        api.login_response(a),
        api.post(protocol.device_remove_path(two.id), token=a.tokens["access_token"],
                 json=reauth(api, a)),
        api.post(protocol.PATH_SELF_ESCROW_RELEASE, headers=two.control, json=reauth(api, a)),
    ):  # fmt: skip
        assert (r.status_code, error_code(r)) == (423, "account_locked"), r.text
        assert 0 < int(r.headers["Retry-After"]) <= 600
    api.clock.advance(601)
    assert api.login_response(a).status_code == 200


def test_a_totp_code_is_good_once_across_every_verifier(api: Api) -> None:
    a = api.account("replay")
    two = login_device(api, a)
    three = login_device(api, a)
    api.clock.advance(30)
    code = pyotp.TOTP(a.totp_secret).at(api.clock())
    r = api.post(protocol.device_remove_path(three.id), token=a.tokens["access_token"],
                 json=reauth(api, a, totp=code))  # fmt: skip
    assert r.status_code == 200, r.text
    # The same code again: at login, at another removal, at an escrow release.
    assert api.post(protocol.PATH_SELF_ESCROW, token=two.access).status_code == 200
    for r in (
        api.login_response(a, totp=code),
        api.post(protocol.device_remove_path(two.id), token=a.tokens["access_token"],
                 json=reauth(api, a, totp=code)),
        api.post(protocol.PATH_SELF_ESCROW_RELEASE, headers=two.control,
                 json=reauth(api, a, totp=code)),
    ):  # fmt: skip
        assert (r.status_code, error_code(r)) == (401, "totp_replayed"), r.text
