"""The shared protocol module: the bytes both sides must build identically, the error
codes, and the server's pydantic models staying in step with the protocol TypedDicts."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from app.sync import practice_protocol, protocol
from app.sync.server import practice_schemas, schemas
from app.sync.server.items import decode_cursor, encode_cursor


def test_login_message_layout_is_pinned() -> None:
    msg = protocol.login_message("https://127.0.0.1:8443", b"\x01" * 32)
    assert msg == b"tacit/v1/login\x00https://127.0.0.1:8443\x00" + b"\x01" * 32
    with pytest.raises(ValueError, match="NUL"):
        protocol.login_message("https://a\x00b", b"")


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("HTTPS://Sync.Example.ORG:443/v1/items?x=1", "https://sync.example.org"),
        ("http://localhost:80", "http://localhost"),
        ("https://user:pw@host:9000/", "https://host:9000"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_canonical_origin(url: str, origin: str) -> None:
    assert protocol.canonical_origin(url) == origin


@pytest.mark.parametrize("url", ["ftp://host", "host:8443", "https://", "https://h:99999"])
def test_canonical_origin_refuses_non_http_urls(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is for humans
        protocol.canonical_origin(url)


def test_item_etag_binds_every_stored_field() -> None:
    base = {"kind": "note", "key_id": "k1", "deleted": False, "blob": b"abc"}
    etag = protocol.item_etag(**base)  # type: ignore[arg-type]
    assert protocol.ETAG_RE.fullmatch(etag)
    # Known answer: changing the etag breaks every stored etag; never do it silently.
    assert etag == protocol.item_etag(kind="note", key_id="k1", deleted=False, blob=b"abc")
    variants = [
        {**base, "kind": "notes"},
        {**base, "key_id": "k2"},
        {**base, "deleted": True},
        {**base, "blob": b"abd"},
        # length prefixes: moving a byte between kind and key_id changes the etag
        {**base, "kind": "notek", "key_id": "1"},
    ]
    assert len({protocol.item_etag(**v) for v in variants} | {etag}) == 6  # type: ignore[arg-type]


def test_base64_is_strict() -> None:
    assert protocol.b64decode(protocol.b64encode(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ["//7", "__4=", " //4=", "//4=\n", "é"]:
        with pytest.raises(ValueError, match="base64"):
            protocol.b64decode(bad)


def test_time_format_round_trips() -> None:
    for ms in (0, 1, 1_767_603_600_123):
        assert protocol.parse_time(protocol.format_time(ms)) == ms
    assert protocol.format_time(1_767_603_600_123) == "2026-01-05T09:00:00.123Z"
    with pytest.raises(ValueError, match="zone"):
        protocol.parse_time("2026-01-05T09:00:00")


def test_cursor_round_trip_and_garbage() -> None:
    for seq in (0, 1, 10**12):
        assert decode_cursor(encode_cursor(seq)) == seq
    for bad in ["", "x", "djE6", "djE6LTE", "AAAA", "djI6MQ", "é"]:
        with pytest.raises(protocol.InvalidCursorError):
            decode_cursor(bad)


def test_error_codes_are_stable_and_unique() -> None:
    assert set(protocol.ERROR_CLASSES) == {c.value for c in protocol.ErrorCode}
    assert protocol.HTTP_STATUS["conflict"] == 409
    assert protocol.HTTP_STATUS["rate_limited"] == 429
    assert protocol.HTTP_STATUS["account_locked"] == 423


def test_error_from_envelope_maps_codes_back_to_classes() -> None:
    err = protocol.error_from_envelope(
        409, {"error": {"code": "conflict", "message": "stale", "current": None}}
    )
    assert isinstance(err, protocol.ConflictError)
    assert err.details == {"http_status": 409, "current": None}
    unknown = protocol.error_from_envelope(418, {"error": {"code": "teapot", "message": "x"}})
    assert type(unknown) is protocol.ApiError
    garbage = protocol.error_from_envelope(502, "<html>bad gateway</html>")
    assert "502" in garbage.message


def _fields(td: type) -> set[str]:
    hints = typing.get_type_hints(td)
    return set(hints)


@pytest.mark.parametrize(
    ("typed_dict", "model"),
    [
        (protocol.KdfParams, schemas.KdfParamsIn),
        (protocol.KdfParams, schemas.KdfParamsOut),
        (protocol.DeviceInfo, schemas.DeviceIn),
        (protocol.SignupRequest, schemas.SignupIn),
        (protocol.SignupResponse, schemas.SignupOut),
        (protocol.KdfParamsResponse, schemas.KdfParamsResponseOut),
        (protocol.ChallengeRequest, schemas.ChallengeIn),
        (protocol.ChallengeResponse, schemas.ChallengeOut),
        (protocol.LoginRequest, schemas.LoginIn),
        (protocol.SessionTokens, schemas.SessionTokensOut),
        (protocol.RefreshRequest, schemas.RefreshIn),
        (protocol.OkResponse, schemas.OkOut),
        (protocol.Device, schemas.DeviceOut),
        (protocol.Item, schemas.ItemOut),
        (protocol.PullResponse, schemas.PullOut),
        (protocol.PushItem, schemas.PushItemIn),
        (protocol.PushRequest, schemas.PushIn),
        (protocol.PutItemRequest, schemas.PutItemIn),
        (protocol.PushResultOk, schemas.PushResultOkOut),
        (protocol.PushResultConflict, schemas.PushResultConflictOut),
        (protocol.PushResponse, schemas.PushOut),
        (protocol.ChunkInfo, schemas.ChunkInfoOut),
        (protocol.AttachmentInfo, schemas.AttachmentOut),
        (protocol.ChunkPutResponse, schemas.ChunkPutOut),
        (protocol.HealthResponse, schemas.HealthOut),
        (protocol.ErrorBody, schemas.ErrorBodyOut),
    ],
)
def test_server_models_match_protocol_shapes(typed_dict: type, model: type[BaseModel]) -> None:
    assert _fields(typed_dict) == set(model.model_fields)


@pytest.mark.parametrize(
    ("typed_dict", "model"),
    [
        (practice_protocol.Signed, practice_schemas.SignedIn),
        (practice_protocol.Signed, practice_schemas.SignedOut),
        (practice_protocol.Certificate, practice_schemas.CertificateDoc),
        (practice_protocol.Policy, practice_schemas.PolicyDoc),
        (practice_protocol.Grant, practice_schemas.GrantIn),
        (practice_protocol.Grant, practice_schemas.GrantOut),
        (practice_protocol.Collection, practice_schemas.CollectionOut),
        (practice_protocol.CollectionCreate, practice_schemas.CollectionCreateIn),
        (practice_protocol.Member, practice_schemas.MemberOut),
        (practice_protocol.PracticeView, practice_schemas.PracticeViewOut),
        (practice_protocol.PracticeCreate, practice_schemas.PracticeCreateIn),
        (practice_protocol.InviteCreate, practice_schemas.InviteCreateIn),
        (practice_protocol.InviteView, practice_schemas.InviteViewOut),
        (practice_protocol.JoinRequest, practice_schemas.JoinIn),
        (practice_protocol.PracticeItem, practice_schemas.PracticeItemOut),
        (practice_protocol.ItemsPage, practice_schemas.ItemsPageOut),
        (practice_protocol.PushedItem, practice_schemas.PushedItemIn),
        (practice_protocol.AuditEntryIn, practice_schemas.AuditEntryIn),
        (practice_protocol.AuditEntryOut, practice_schemas.AuditEntryOut),
        (practice_protocol.AuditPage, practice_schemas.AuditPageOut),
        (practice_protocol.Removal, practice_schemas.RemovalOut),
    ],
)
def test_server_models_match_practice_shapes(typed_dict: type, model: type[BaseModel]) -> None:
    assert _fields(typed_dict) == set(model.model_fields)


def test_practice_error_codes_are_pinned() -> None:
    expected = {
        "not_in_practice": 404,
        "member_removed": 403,
        "practice_exists": 409,
        "invite_invalid": 404,
        "stale_key": 409,
    }
    assert {code: protocol.HTTP_STATUS[code] for code in expected} == expected
