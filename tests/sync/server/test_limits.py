"""Request limits and robustness: body size (declared and streamed), malformed input never
yields a 5xx (hand-picked cases and hypothesis-generated bodies), every error is the
envelope, the catch-all leaks nothing, and the OpenAPI document is served."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.sync import protocol
from tests.sync.server.helpers import SQLITE_ONLY, Account, Api, error_code


@SQLITE_ONLY
def test_health_and_openapi(api: Api) -> None:
    r = api.get(protocol.PATH_HEALTH)
    assert r.json() == {"ok": True, "version": protocol.APP_VERSION, "protocol": 1}
    doc = api.get(protocol.PATH_OPENAPI).json()
    assert doc["info"]["title"] == "Tacit sync"
    assert "/v1/items:batch" in doc["paths"]
    text = json.dumps(doc)
    assert '"422"' not in text  # our validation errors are 400 invalid_request
    assert doc["paths"]["/v1/items"]["get"]["responses"]["401"]["content"]


@SQLITE_ONLY
def test_declared_body_over_the_limit_is_refused_unread(make_client: Callable[..., Api]) -> None:
    api = make_client(max_body_bytes=10_000)
    r = api.post(
        protocol.PATH_AUTH_CHALLENGE,
        content=b"{" + b" " * 20_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, error_code(r)) == (413, "too_large")


@SQLITE_ONLY
def test_streamed_body_over_the_limit_is_cut_off(make_client: Callable[..., Api]) -> None:
    api = make_client(max_body_bytes=10_000)
    acct = api.account("alice")

    def body() -> Iterator[bytes]:
        yield b'{"items": ['
        for _ in range(100):
            yield b" " * 500

    r = api.post(
        protocol.PATH_ITEMS_BATCH,
        token=acct.tokens["access_token"],
        content=body(),
        headers={"content-type": "application/json"},
    )
    assert (r.status_code, error_code(r)) == (413, "too_large")
    # The limit applies before authentication too.
    r = api.post(
        protocol.PATH_ITEMS_BATCH, content=body(), headers={"content-type": "application/json"}
    )
    assert r.status_code in {401, 413}


@SQLITE_ONLY
def test_push_at_the_protocol_limits_fits_in_a_body(api: Api) -> None:
    acct = api.account("bob")
    big = {
        "id": str(uuid.uuid4()),
        "kind": "note",
        "expected_etag": None,
        "deleted": False,
        "key_id": "k",
        "blob": protocol.b64encode(b"\0" * protocol.MAX_ITEM_BLOB_BYTES),
    }
    r = api.post(
        protocol.PATH_ITEMS_BATCH, token=acct.tokens["access_token"], json={"items": [big]}
    )
    assert r.status_code == 200, r.text[:200]
    over = {
        **big,
        "id": str(uuid.uuid4()),
        "blob": protocol.b64encode(b"\0" * (protocol.MAX_ITEM_BLOB_BYTES + 1)),
    }
    r = api.post(
        protocol.PATH_ITEMS_BATCH, token=acct.tokens["access_token"], json={"items": [over]}
    )
    assert (r.status_code, error_code(r)) == (413, "too_large")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", protocol.PATH_ACCOUNTS, b"not json"),
        ("POST", protocol.PATH_ACCOUNTS, b"[]"),
        ("POST", protocol.PATH_ACCOUNTS, b"null"),
        ("POST", protocol.PATH_ACCOUNTS, b'{"username": ["x"]}'),
        ("POST", protocol.PATH_AUTH_CHALLENGE, b'{"username": "\\ud800"}'),
        ("POST", protocol.PATH_AUTH_LOGIN, b"\xff\xfe\x00"),
        ("POST", protocol.PATH_AUTH_REFRESH, b'{"refresh_token": 5}'),
        ("POST", protocol.PATH_AUTH_CHALLENGE, b"{" * 5000),
        ("POST", protocol.PATH_AUTH_CHALLENGE, b"[" * 200_000 + b"]" * 200_000),
        ("POST", protocol.PATH_AUTH_CHALLENGE, b'{"username": "a", "username": "b"}'),
        ("POST", protocol.PATH_AUTH_CHALLENGE, b'{"username": 1e999}'),
    ],
)
def test_malformed_bodies_are_400(api: Api, method: str, path: str, content: bytes) -> None:
    r = api.request(method, path, content=content, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code != 200:  # duplicate keys: JSON keeps the last one
        assert error_code(r) == "invalid_request"


@SQLITE_ONLY
def test_unknown_route_and_method(api: Api) -> None:
    r = api.get("/v1/nope")
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.get("/v2/items")
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.delete(protocol.PATH_HEALTH)
    assert (r.status_code, error_code(r)) == (405, "method_not_allowed")


@SQLITE_ONLY
def test_unexpected_errors_are_opaque_500s(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.sync.server import accounts

    def boom(*args: object, **kwargs: object) -> object:
        # Built at run time: the logged stack shows source lines, which are ours.
        raise RuntimeError("token=" + "abc" + "123" + " note " + "text")

    monkeypatch.setattr(accounts, "kdf_params", boom)
    with caplog.at_level(logging.ERROR, logger="tacit.server"):
        r = api.get(protocol.PATH_AUTH_PARAMS, params={"username": "someone"})
    assert (r.status_code, error_code(r)) == (500, "internal_error")
    assert "abc123" not in r.text and "RuntimeError" not in r.text
    assert "RuntimeError" in caplog.text
    assert "abc123" not in caplog.text and "note text" not in caplog.text


# --- hypothesis: arbitrary JSON bodies never produce a 5xx ------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _mutated(template: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Bodies near the valid shape: each field kept, dropped or replaced by junk."""
    fields = {key: st.one_of(st.just(value), json_values) for key, value in template.items()}
    return st.fixed_dictionaries({}, optional=fields) | json_values


LOGIN_TEMPLATE = {
    "challenge_id": "abc",
    "username": "someone",
    "signature": protocol.b64encode(b"\0" * 64),
    "device": {"id": str(uuid.uuid4()), "name": "x", "public_key": protocol.b64encode(b"\1" * 32)},
    "totp": "123456",
}
ITEM_TEMPLATE = {
    "id": str(uuid.uuid4()),
    "kind": "note",
    "expected_etag": None,
    "deleted": False,
    "key_id": "k",
    "blob": "AAAA",
}


@pytest.fixture(scope="module")
def shared_api(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Any
) -> Iterator[tuple[Api, Account]]:
    import shutil

    from app.sync.server.settings import TEST_KDF_FLOOR
    from tests.sync.server.helpers import ManualClock, make_api

    path = tmp_path_factory.mktemp("fuzz") / "server.sqlite3"
    shutil.copyfile(sqlite_template, path)
    with make_api(
        f"sqlite:///{path}", ManualClock(), kdf_floor=TEST_KDF_FLOOR, ip_request_limit=0
    ) as api:
        yield api, api.account("fuzzer")


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=_mutated(LOGIN_TEMPLATE))
def test_fuzzed_login_bodies(shared_api: tuple[Api, Account], body: Any) -> None:
    api, _ = shared_api
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert r.status_code < 500, r.text
    assert error_code(r) in protocol.ERROR_CLASSES


@FUZZ
@given(
    body=st.fixed_dictionaries({"items": st.lists(_mutated(ITEM_TEMPLATE), max_size=3)})
    | json_values
)
def test_fuzzed_push_bodies(shared_api: tuple[Api, Account], body: Any) -> None:
    api, acct = shared_api
    r = api.post(protocol.PATH_ITEMS_BATCH, token=acct.tokens["access_token"], json=body)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert error_code(r) in protocol.ERROR_CLASSES


@FUZZ
@given(
    path=st.sampled_from(
        [
            protocol.PATH_ITEMS,
            protocol.PATH_AUTH_PARAMS,
            "/v1/items/{}",
            "/v1/attachments/{}/chunks/{}",
        ]
    ),
    params=st.dictionaries(
        st.sampled_from(["cursor", "limit", "username"]), st.text(max_size=80), max_size=3
    ),
    segment=st.text(max_size=40),
    n=st.text(max_size=6),
)
def test_fuzzed_query_and_path(
    shared_api: tuple[Api, Account], path: str, params: dict[str, str], segment: str, n: str
) -> None:
    from urllib.parse import quote

    api, acct = shared_api
    url = path.format(quote(segment, safe=""), quote(n, safe=""))
    r = api.get(url, token=acct.tokens["access_token"], params=params)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert error_code(r) in protocol.ERROR_CLASSES
