"""Pydantic models of the wire shapes: strict validation of requests, and the response
models the OpenAPI document shows.

The shapes themselves are defined in ``app.sync.protocol`` (TypedDicts the client uses);
these mirror them field for field, and a test keeps the two in step.

Invariants: requests are strict (JSON types must match exactly: no "5" for 5, no 1 for
true), unknown fields are refused (a typo such as ``expected_etg`` must not silently mean
"new item"), binary fields are strict standard base64 with their decoded length checked
before anything else sees them, and ids/usernames/kinds match the protocol's patterns.
Validation messages never echo the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from app.sync import protocol

_B64_SCHEMA = {"type": "string", "contentEncoding": "base64"}


def _b64(min_len: int, max_len: int) -> Callable[[object], bytes]:
    max_chars = 4 * ((max_len + 2) // 3)

    def decode(value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("must be a base64 string")
        if len(value) > max_chars:
            raise ValueError(f"must decode to at most {max_len} bytes")
        raw = protocol.b64decode(value)  # ValueError("not standard base64")
        if not min_len <= len(raw) <= max_len:
            if min_len == max_len:
                raise ValueError(f"must decode to exactly {max_len} bytes")
            raise ValueError(f"must decode to {min_len}..{max_len} bytes")
        return raw

    return decode


def _pattern(regex: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if regex.fullmatch(value) is None:
            raise ValueError(f"not a valid {what}")
        return value

    return check


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _device_name(value: str) -> str:
    if not 1 <= len(value) <= protocol.DEVICE_NAME_MAX:
        raise ValueError(f"must be 1..{protocol.DEVICE_NAME_MAX} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _str_schema(regex: re.Pattern[str]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": regex.pattern})


Uuid = Annotated[
    str,
    AfterValidator(_pattern(protocol.UUID_RE, "id (lowercase UUID)")),
    _str_schema(protocol.UUID_RE),
]
Username = Annotated[
    str,
    BeforeValidator(_lower),
    AfterValidator(_pattern(protocol.USERNAME_RE, "username")),
    _str_schema(protocol.USERNAME_RE),
]
Kind = Annotated[
    str, AfterValidator(_pattern(protocol.KIND_RE, "kind")), _str_schema(protocol.KIND_RE)
]
KeyId = Annotated[
    str, AfterValidator(_pattern(protocol.KEY_ID_RE, "key_id")), _str_schema(protocol.KEY_ID_RE)
]
Etag = Annotated[
    str, AfterValidator(_pattern(protocol.ETAG_RE, "etag")), _str_schema(protocol.ETAG_RE)
]
TotpCode = Annotated[
    str, AfterValidator(_pattern(protocol.TOTP_RE, "TOTP code")), _str_schema(protocol.TOTP_RE)
]
DeviceName = Annotated[str, AfterValidator(_device_name)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]
TokenText = Annotated[str, Field(min_length=1, max_length=256)]

PublicKey = Annotated[
    bytes,
    BeforeValidator(_b64(protocol.ED25519_PUBLIC_KEY_BYTES, protocol.ED25519_PUBLIC_KEY_BYTES)),
    WithJsonSchema(_B64_SCHEMA),
]
DevicePublicKey = Annotated[
    bytes,
    BeforeValidator(_b64(protocol.DEVICE_PUBLIC_KEY_BYTES, protocol.DEVICE_PUBLIC_KEY_BYTES)),
    WithJsonSchema(_B64_SCHEMA),
]
Signature = Annotated[
    bytes,
    BeforeValidator(_b64(protocol.ED25519_SIGNATURE_BYTES, protocol.ED25519_SIGNATURE_BYTES)),
    WithJsonSchema(_B64_SCHEMA),
]
Salt = Annotated[
    bytes,
    BeforeValidator(_b64(protocol.KDF_SALT_MIN_BYTES, protocol.KDF_SALT_MAX_BYTES)),
    WithJsonSchema(_B64_SCHEMA),
]
# Capped here only by the body limit (so decoding stays bounded); the per-item limit is
# checked by items.py, which answers 413 too_large like every other size refusal.
ItemBlob = Annotated[
    bytes, BeforeValidator(_b64(0, protocol.MAX_BODY_BYTES)), WithJsonSchema(_B64_SCHEMA)
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class KdfParamsIn(_In):
    algorithm: Literal["argon2id"]
    version: Literal[19]
    memory_kib: Annotated[int, Field(ge=1, le=4 * 1024 * 1024)]
    iterations: Annotated[int, Field(ge=1, le=1000)]
    parallelism: Annotated[int, Field(ge=1, le=255)]
    salt: Salt


class DeviceIn(_In):
    id: Uuid
    name: DeviceName
    public_key: DevicePublicKey


class SignupIn(_In):
    username: Username
    login_public_key: PublicKey
    kdf: KdfParamsIn
    device: DeviceIn


class ChallengeIn(_In):
    username: Username


class LoginIn(_In):
    challenge_id: ShortText
    username: Username
    signature: Signature
    device: DeviceIn
    totp: TotpCode | None = None
    recovery_code: ShortText | None = None


class RefreshIn(_In):
    refresh_token: TokenText


class ReauthIn(_In):
    challenge_id: ShortText
    signature: Signature
    totp: TotpCode | None = None
    recovery_code: ShortText | None = None


class SigningKeyIn(_In):
    public_key: PublicKey
    proof: Signature
    reauth: ReauthIn | None = None


class DeviceOrderIn(_In):
    v: Literal[1]
    order_id: Uuid
    account_id: Uuid
    device_id: Uuid
    action: Literal["lock", "wipe", "restore"]
    issued_at: Annotated[str, Field(min_length=1, max_length=40)]


class SignedOrderIn(_In):
    order: DeviceOrderIn
    signature: Signature


class OrderAckIn(_In):
    order_id: Uuid
    state: Literal["locked", "wiped"]


class KeyEpochIn(_In):
    # Any positive number is well formed; only the next one is accepted (409 otherwise).
    epoch: Annotated[int, Field(ge=1, le=2**31 - 1)]
    kdf: KdfParamsIn


class PushItemIn(_In):
    id: Uuid
    kind: Kind
    expected_etag: Etag | None
    deleted: bool
    key_id: KeyId
    blob: ItemBlob


class PushIn(_In):
    items: Annotated[list[PushItemIn], Field(max_length=protocol.MAX_PUSH_ITEMS)]


class PutItemIn(_In):
    kind: Kind
    expected_etag: Etag | None
    deleted: bool
    key_id: KeyId
    blob: ItemBlob


# --- responses (documentation; handlers return protocol TypedDicts) -------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KdfParamsOut(_Out):
    algorithm: Literal["argon2id"]
    version: int
    memory_kib: int
    iterations: int
    parallelism: int
    salt: str


class SignupOut(_Out):
    account_id: str
    totp_uri: str
    recovery_codes: list[str]
    control_token: str


class KdfParamsResponseOut(_Out):
    kdf: KdfParamsOut


class ChallengeOut(_Out):
    challenge_id: str
    challenge: str
    origin: str
    expires_at: str


class SessionTokensOut(_Out):
    account_id: str
    device_id: str
    access_token: str
    access_expires_at: str
    refresh_token: str
    refresh_expires_at: str


class LoginOut(SessionTokensOut):
    control_token: str


class OkOut(_Out):
    ok: bool


class DeviceOrderSummaryOut(_Out):
    id: str
    action: Literal["lock", "wipe", "restore"]
    issued_at: str
    received_at: str
    acked_at: str | None


class DeviceOut(_Out):
    id: str
    name: str
    public_key: str
    created_at: str
    last_seen_at: str
    current: bool
    state: Literal["active", "lost", "locked", "wiped", "removed"]
    order: DeviceOrderSummaryOut | None


class DeviceOrderOut(_Out):
    v: int
    order_id: str
    account_id: str
    device_id: str
    action: Literal["lock", "wipe", "restore"]
    issued_at: str


class SignedOrderOut(_Out):
    order: DeviceOrderOut
    signature: str


class SigningKeyOut(_Out):
    public_key: str
    registered_at: str


class EscrowKeyOut(_Out):
    escrow_key: str
    created_at: str


class EscrowReleaseOut(EscrowKeyOut):
    session: LoginOut


class KeyEpochOut(_Out):
    epoch: int
    kdf: KdfParamsOut
    created_at: str


class KeyEpochsOut(_Out):
    epochs: list[KeyEpochOut]


class KeyEpochCreatedOut(KeyEpochOut):
    sessions_ended: int


class ItemOut(_Out):
    id: str
    kind: str
    etag: str
    deleted: bool
    key_id: str
    blob: str
    seq: int
    size: int
    modified_at: str


class PullOut(_Out):
    items: list[ItemOut]
    cursor: str
    more: bool


class PushResultOkOut(_Out):
    id: str
    status: Literal["ok"]
    etag: str
    seq: int


class PushResultConflictOut(_Out):
    id: str
    status: Literal["conflict"]
    current: ItemOut | None


class PushOut(_Out):
    results: list[PushResultOkOut | PushResultConflictOut]


class ChunkInfoOut(_Out):
    n: int
    size: int
    etag: str


class AttachmentOut(_Out):
    id: str
    chunks: list[ChunkInfoOut]
    size: int


class ChunkPutOut(_Out):
    id: str
    n: int
    size: int
    etag: str


class HealthOut(_Out):
    ok: bool
    version: str
    protocol: int


class ErrorBodyOut(_Out):
    code: str
    message: str
    retry_after: int | None = None
    current: ItemOut | None = None


class ErrorOut(_Out):
    error: ErrorBodyOut
