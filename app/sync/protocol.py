"""The sync wire protocol, shared by the server (app/sync/server) and the client.

This module owns what both sides must agree on, and nothing else:

- the paths under ``/v1`` and the protocol limits;
- the JSON shapes of requests and responses, as ``TypedDict``s (the server validates them
  with its own pydantic models, which a test keeps in step with these);
- the stable error codes, their HTTP statuses, and one ``ApiError`` class per code so a
  client can turn an error envelope back into a typed ``TacitError``;
- the byte strings both sides must build identically: the login message that the account
  login key signs, the canonical origin it is bound to, an item's etag, and a device
  order (canonical JSON) that the account signing key signs;
- the HKDF labels the client uses for the account signing key and the escrow slot (the
  server never derives them; they are here so the label is written once).

Invariants: no crypto and no I/O here (only ``hashlib`` for the etag), no import of
``app.vault`` or of a web framework, so the client installs without the server's extras.
Binary values travel as standard base64 with padding (RFC 4648 section 4), never
url-safe. Times travel as ISO-8601 UTC strings with milliseconds (``...T09:00:00.000Z``).
docs/PROTOCOL.md is the prose version of this module; change both together.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal, NotRequired, TypedDict
from urllib.parse import urlsplit

from app import __version__
from app.errors import TacitError

PROTOCOL_VERSION = 1
APP_VERSION: str = __version__  # reported by /v1/health
API_PREFIX = "/v1"

# --- paths --------------------------------------------------------------------------
PATH_HEALTH = "/v1/health"
PATH_OPENAPI = "/v1/openapi.json"
PATH_ACCOUNTS = "/v1/accounts"
PATH_AUTH_PARAMS = "/v1/auth/params"
PATH_AUTH_CHALLENGE = "/v1/auth/challenge"
PATH_AUTH_LOGIN = "/v1/auth/login"
PATH_AUTH_REFRESH = "/v1/auth/refresh"
PATH_AUTH_LOGOUT = "/v1/auth/logout"
PATH_DEVICES = "/v1/devices"
PATH_ITEMS = "/v1/items"
PATH_ITEMS_BATCH = "/v1/items:batch"
PATH_ATTACHMENTS = "/v1/attachments"
PATH_SIGNING_KEY = "/v1/account/signing-key"
PATH_KEY_EPOCHS = "/v1/account/key-epochs"
PATH_SELF_ORDER = "/v1/devices/self/order"
PATH_SELF_ORDER_ACK = "/v1/devices/self/order/ack"
PATH_SELF_ESCROW = "/v1/devices/self/escrow"
PATH_SELF_ESCROW_RELEASE = "/v1/devices/self/escrow/release"
# The device control token travels in this header (never a query string), and only to
# the PATH_SELF_* routes above that say so.
CONTROL_TOKEN_HEADER = "Tacit-Control-Token"  # noqa: S105 - a header name


def item_path(item_id: str) -> str:
    return f"{PATH_ITEMS}/{item_id}"


def attachment_path(attachment_id: str) -> str:
    return f"{PATH_ATTACHMENTS}/{attachment_id}"


def chunk_path(attachment_id: str, n: int) -> str:
    return f"{PATH_ATTACHMENTS}/{attachment_id}/chunks/{n}"


def device_orders_path(device_id: str) -> str:
    return f"{PATH_DEVICES}/{device_id}/orders"


def device_remove_path(device_id: str) -> str:
    return f"{PATH_DEVICES}/{device_id}/remove"


# --- limits (the server may be configured lower for body/quota, never higher) --------
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ITEM_BLOB_BYTES = 4 * 1024 * 1024
MAX_PUSH_ITEMS = 500
DEFAULT_PULL_LIMIT = 500
MAX_PULL_LIMIT = 1000
MAX_CHUNK_BYTES = 1024 * 1024
MAX_CHUNK_INDEX = 9999  # chunks are numbered 0..MAX_CHUNK_INDEX
RECOVERY_CODE_COUNT = 10
TOTP_DIGITS = 6
TOTP_PERIOD_S = 30
CHALLENGE_BYTES = 32
ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
DEVICE_PUBLIC_KEY_BYTES = 32
KDF_SALT_MIN_BYTES = 16
KDF_SALT_MAX_BYTES = 64
KDF_ALGORITHM = "argon2id"
KDF_VERSION = 19  # Argon2 version 0x13
ESCROW_KEY_BYTES = 32
MAX_ORDER_WAIT_S = 25  # GET PATH_SELF_ORDER?wait=N, N in 0..25
ORDER_VERSION = 1
# An order's issued_at (the issuer's clock) must be within this window of the server's
# clock when it is posted: a signed order cannot be held back and used much later.
ORDER_MAX_AGE_S = 15 * 60
ORDER_MAX_FUTURE_S = 5 * 60
# Account key epochs: epoch 1 is the sign-up KDF (GET /v1/auth/params), never listed;
# each new epoch is exactly the highest one + 1, and no epoch number exceeds this.
FIRST_KEY_EPOCH = 1
MAX_KEY_EPOCH = 1000

# --- identifiers ---------------------------------------------------------------------
# Ids are lowercase canonical UUID strings, as str(uuid.uuid4()) writes them.
# Check these patterns with fullmatch(): "$" alone would also accept a trailing newline.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Usernames are compared and stored lowercased; the server lowercases what it receives.
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,63}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
ETAG_RE = re.compile(r"^[0-9a-f]{64}$")
TOTP_RE = re.compile(r"^[0-9]{6}$")
DEVICE_NAME_MAX = 100


def is_uuid(value: str) -> bool:
    return UUID_RE.fullmatch(value) is not None


def normalize_username(value: str) -> str:
    """The stored form of a username (ASCII lowercase). Validate with USERNAME_RE after."""
    return value.lower()


# --- base64 --------------------------------------------------------------------------
def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str) -> bytes:
    """Strict standard base64. Raises ValueError on anything else (whitespace, url-safe
    alphabet, missing padding)."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not standard base64") from None


# --- times ---------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(ms: int) -> str:
    """Milliseconds since the epoch as ISO-8601 UTC, e.g. ``2026-01-05T09:00:00.000Z``."""
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(value: str) -> int:
    """The inverse of ``format_time`` (accepts any ISO-8601 with a zone). Raises
    ValueError on a string without a time zone or otherwise malformed."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# --- the bytes both sides build identically ------------------------------------------
LOGIN_SIGN_DOMAIN = b"tacit/v1/login\x00"
ETAG_DOMAIN = b"tacit/v1/etag\x00"
ORDER_SIGN_DOMAIN = b"tacit/v1/device-order\x00"
SIGNING_KEY_PROOF_DOMAIN = b"tacit/v1/signing-key\x00"

# HKDF-SHA256 labels (``info``) for keys the CLIENT derives from the account master key.
# The server never sees these keys; only the signing key's public half is registered.
SIGNING_KEY_HKDF_INFO = b"tacit/v1/account-signing-key"  # 32-byte Ed25519 seed
ESCROW_ACCOUNT_HKDF_INFO = b"tacit/v1/escrow-account"  # 32 bytes, the account's escrow half
ESCROW_SLOT_HKDF_INFO = b"tacit/v1/escrow-slot\x00"  # + device id: the escrow slot's key

_DEFAULT_PORTS = {"https": 443, "http": 80}


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` of a server URL: scheme and host lowercased, the default
    port dropped, any path, query or credentials removed. IPv6 hosts keep their brackets.

    The client MUST compute the origin it signs from the server URL it was configured
    with, never from what a server says: that is what makes a login signature useless to
    a phishing server that relays it elsewhere. Raises ValueError on a URL without an
    http(s) scheme or host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("a server URL needs an http or https scheme and a host")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the server URL has an invalid port") from None
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def login_message(origin: str, challenge: bytes) -> bytes:
    """What the account login key signs: domain label, canonical origin, challenge.

    ``b"tacit/v1/login\\x00" + origin + b"\\x00" + challenge``. The origin must already be
    canonical (``canonical_origin``); a NUL cannot occur inside it.
    """
    if "\x00" in origin:
        raise ValueError("origin contains NUL")
    return LOGIN_SIGN_DOMAIN + origin.encode("utf-8") + b"\x00" + challenge


def item_etag(*, kind: str, key_id: str, deleted: bool, blob: bytes) -> str:
    """The etag the server assigns to a stored item version (64 lowercase hex chars).

    SHA-256 over a domain label, the deleted flag, the length-prefixed kind and key_id,
    then the blob. Equal etags mean equal stored state, so a client that retries a push
    can recognise its own write, and the server answers such a retry with ``ok``.
    """
    h = hashlib.sha256(ETAG_DOMAIN)
    h.update(b"\x01" if deleted else b"\x00")
    for text in (kind, key_id):
        raw = text.encode("utf-8")
        h.update(len(raw).to_bytes(2, "big"))
        h.update(raw)
    h.update(blob)
    return h.hexdigest()


def chunk_etag(data: bytes) -> str:
    """The etag of an attachment chunk: hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


ORDER_ACTIONS = ("lock", "wipe", "restore")
_ORDER_KEYS = frozenset({"v", "order_id", "account_id", "device_id", "action", "issued_at"})


def canonical_order(order: DeviceOrder) -> bytes:
    """The canonical JSON of a device order: exactly its six keys, sorted, no whitespace,
    ASCII only. Raises ValueError on anything else (extra or missing keys, wrong types,
    ids that are not lowercase UUIDs, an unknown action, a time not in ``format_time``
    form), so that both sides sign and verify the same bytes or refuse."""
    raw: dict[str, object] = dict(order)
    if set(raw) != _ORDER_KEYS:
        raise ValueError("an order has exactly the keys " + ", ".join(sorted(_ORDER_KEYS)))
    version = raw["v"]
    if type(version) is not int or version != ORDER_VERSION:
        raise ValueError("unknown order version")
    for key in ("order_id", "account_id", "device_id"):
        value = raw[key]
        if not isinstance(value, str) or not is_uuid(value):
            raise ValueError(f"order {key} is not a lowercase UUID")
    if raw["action"] not in ORDER_ACTIONS:
        raise ValueError("unknown order action")
    issued = raw["issued_at"]
    try:
        canonical_time = isinstance(issued, str) and format_time(parse_time(issued)) == issued
    except (ValueError, OverflowError):
        canonical_time = False
    if not canonical_time:
        raise ValueError("order issued_at is not a time as format_time writes it")
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def order_message(order: DeviceOrder) -> bytes:
    """What the account signing key signs for an order (Ed25519):
    ``b"tacit/v1/device-order\\x00" + canonical_order(order)``. Raises ValueError as
    ``canonical_order`` does."""
    return ORDER_SIGN_DOMAIN + canonical_order(order)


def signing_key_proof_message(account_id: str) -> bytes:
    """What the account signing key signs to prove possession when it is registered:
    ``b"tacit/v1/signing-key\\x00" + account_id``."""
    return SIGNING_KEY_PROOF_DOMAIN + account_id.encode("ascii")


# --- wire shapes ---------------------------------------------------------------------
class KdfParams(TypedDict):
    algorithm: Literal["argon2id"]
    version: int  # 19
    memory_kib: int
    iterations: int
    parallelism: int
    salt: str  # base64, 16..64 bytes


class DeviceInfo(TypedDict):
    id: str  # uuid
    name: str  # 1..100 characters
    public_key: str  # base64, 32 bytes


class SignupRequest(TypedDict):
    username: str
    login_public_key: str  # base64 raw Ed25519 public key, 32 bytes
    kdf: KdfParams
    device: DeviceInfo


class SignupResponse(TypedDict):
    account_id: str
    totp_uri: str  # otpauth://totp/...; the app shows it as a QR code
    recovery_codes: list[str]  # RECOVERY_CODE_COUNT one-time codes, shown once
    control_token: str  # the device's control token (see LoginResponse), shown once


class KdfParamsResponse(TypedDict):
    kdf: KdfParams


class ChallengeRequest(TypedDict):
    username: str


class ChallengeResponse(TypedDict):
    challenge_id: str
    challenge: str  # base64, CHALLENGE_BYTES
    origin: str  # the server's configured canonical origin (informational; see above)
    expires_at: str


class LoginRequest(TypedDict):
    challenge_id: str
    username: str
    signature: str  # base64 Ed25519 signature over login_message(origin, challenge)
    device: DeviceInfo
    totp: NotRequired[str]  # exactly one of totp / recovery_code
    recovery_code: NotRequired[str]


class SessionTokens(TypedDict):
    account_id: str
    device_id: str
    access_token: str
    access_expires_at: str
    refresh_token: str
    refresh_expires_at: str


class LoginResponse(SessionTokens):
    # The device's control token: survives session revocation, good only for the
    # PATH_SELF_ORDER* and PATH_SELF_ESCROW_RELEASE routes; rotated by every login.
    control_token: str


class RefreshRequest(TypedDict):
    refresh_token: str


class OkResponse(TypedDict):
    ok: bool


DeviceState = Literal["active", "lost", "locked", "wiped", "removed"]
OrderAction = Literal["lock", "wipe", "restore"]


class DeviceOrderSummary(TypedDict):
    id: str  # the order_id
    action: OrderAction
    issued_at: str  # the issuer's clock, as signed
    received_at: str  # the server's clock, when the order was stored
    acked_at: str | None  # when the device reported that the order took effect


class Device(TypedDict):
    id: str
    name: str
    public_key: str
    created_at: str
    last_seen_at: str
    current: bool  # the device of the session making the request
    state: DeviceState
    order: DeviceOrderSummary | None  # the device's latest order


class DeviceOrder(TypedDict):
    """The signed statement: ``order_message(order)`` is what the signing key signs."""

    v: int  # ORDER_VERSION
    order_id: str  # uuid chosen by the issuer; never reused
    account_id: str
    device_id: str  # the device the order is for
    action: OrderAction
    issued_at: str  # the issuer's clock (format_time)


class SignedOrder(TypedDict):
    order: DeviceOrder
    signature: str  # base64 Ed25519 signature over order_message(order)


class OrderAckRequest(TypedDict):
    order_id: str
    state: Literal["locked", "wiped"]


class Reauth(TypedDict):
    """Full re-authentication inside one request: a fresh login challenge for the
    account's username signed with the login key, plus a second factor (exactly one of
    ``totp`` / ``recovery_code``). Checked, counted and locked out exactly as a login."""

    challenge_id: str
    signature: str  # base64 Ed25519 over login_message(origin, challenge)
    totp: NotRequired[str]
    recovery_code: NotRequired[str]


class SigningKeyRequest(TypedDict):
    public_key: str  # base64 raw Ed25519 public key, 32 bytes
    proof: str  # base64 signature by that key over signing_key_proof_message(account_id)
    reauth: NotRequired[Reauth | None]  # required to replace a different registered key


class SigningKeyResponse(TypedDict):
    public_key: str
    registered_at: str


class KeyEpoch(TypedDict):
    """One account key epoch after the first: the public KDF parameters and fresh salt the
    client stretches the account password with to derive that epoch's wrapping key. The
    server stores them; it never sees a key."""

    epoch: int  # 2, 3, ... (epoch 1 is the sign-up KDF and is not listed)
    kdf: KdfParams
    created_at: str  # the server's clock, when the epoch was added


class KeyEpochsResponse(TypedDict):
    epochs: list[KeyEpoch]  # ascending by epoch; empty when the account has only epoch 1


class KeyEpochRequest(TypedDict):
    epoch: int  # exactly (the highest stored epoch, or 1 if none) + 1
    kdf: KdfParams  # checked like the sign-up's (bounds, salt length, the server's floor)


class KeyEpochResponse(KeyEpoch):
    # How many sessions of the account ended: every one but the caller's (other devices
    # must sign in again with the password, which derives the new epoch's key).
    sessions_ended: int


class EscrowKeyResponse(TypedDict):
    escrow_key: str  # base64, ESCROW_KEY_BYTES; shown once per creation or release
    created_at: str


class EscrowReleaseResponse(EscrowKeyResponse):
    session: LoginResponse  # release is a full login: a new session and control token


class Item(TypedDict):
    id: str
    kind: str
    etag: str
    deleted: bool
    key_id: str
    blob: str  # base64 ciphertext; empty for most tombstones
    seq: int  # the account change sequence number of this version
    size: int  # len(blob) in bytes, decoded
    modified_at: str


class PullResponse(TypedDict):
    items: list[Item]
    cursor: str  # opaque; pass back as ?cursor= to continue
    more: bool  # true: call again with the new cursor right away


class PushItem(TypedDict):
    id: str
    kind: str
    expected_etag: str | None  # null: "this is a new item"
    deleted: bool
    key_id: str
    blob: str


class PushRequest(TypedDict):
    items: list[PushItem]


class PutItemRequest(TypedDict):
    kind: str
    expected_etag: str | None
    deleted: bool
    key_id: str
    blob: str


class PushResultOk(TypedDict):
    id: str
    status: Literal["ok"]
    etag: str
    seq: int


class PushResultConflict(TypedDict):
    id: str
    status: Literal["conflict"]
    current: Item | None  # null: the server has no such item (the client expected one)


PushResult = PushResultOk | PushResultConflict


class PushResponse(TypedDict):
    results: list[PushResult]


class ChunkInfo(TypedDict):
    n: int
    size: int
    etag: str


class AttachmentInfo(TypedDict):
    id: str
    chunks: list[ChunkInfo]
    size: int


class ChunkPutResponse(TypedDict):
    id: str
    n: int
    size: int
    etag: str


class HealthResponse(TypedDict):
    ok: bool
    version: str
    protocol: int


class ErrorBody(TypedDict):
    code: str
    message: str
    retry_after: NotRequired[int]  # rate_limited, account_locked, unavailable
    current: NotRequired[Item | None]  # conflict on PUT /v1/items/{id}


class ErrorEnvelope(TypedDict):
    error: ErrorBody


# --- errors --------------------------------------------------------------------------
class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_CURSOR = "invalid_cursor"
    KDF_TOO_WEAK = "kdf_too_weak"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an error code
    TOKEN_REUSED = "token_reused"  # noqa: S105 - an error code
    SIGNATURE_INVALID = "signature_invalid"
    CHALLENGE_EXPIRED = "challenge_expired"
    TOTP_REQUIRED = "totp_required"
    TOTP_INVALID = "totp_invalid"
    TOTP_REPLAYED = "totp_replayed"
    RECOVERY_CODE_INVALID = "recovery_code_invalid"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    ACCOUNT_EXISTS = "account_exists"
    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    ACCOUNT_LOCKED = "account_locked"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    DEVICE_LOST = "device_lost"
    DEVICE_REMOVED = "device_removed"
    DEVICE_STATE = "device_state"
    ORDER_INVALID = "order_invalid"
    ORDER_SIGNATURE_INVALID = "order_signature_invalid"
    ORDER_REPLAYED = "order_replayed"
    SIGNING_KEY_MISSING = "signing_key_missing"
    REAUTH_REQUIRED = "reauth_required"
    EPOCH_CONFLICT = "epoch_conflict"
    NOT_IN_PRACTICE = "not_in_practice"
    MEMBER_REMOVED = "member_removed"
    PRACTICE_EXISTS = "practice_exists"
    INVITE_INVALID = "invite_invalid"
    STALE_KEY = "stale_key"


class ApiError(TacitError):
    """An error the sync API returns (server side) or returned (client side).

    ``to_dict()`` is the ``error`` object of the envelope. ``details`` carry only ids,
    numbers and server-stored ciphertext (``current``), never secrets.
    """

    code: ClassVar[str] = ErrorCode.INTERNAL_ERROR
    http_status: ClassVar[int] = 500
    exit_status = 10
    default_message = "the sync server reported an error"


class InvalidRequestError(ApiError):
    code = ErrorCode.INVALID_REQUEST
    http_status = 400
    default_message = "the request is malformed"


class InvalidCursorError(ApiError):
    code = ErrorCode.INVALID_CURSOR
    http_status = 400
    default_message = "the sync cursor is not valid for this account; pull from the start"


class KdfTooWeakError(ApiError):
    code = ErrorCode.KDF_TOO_WEAK
    http_status = 400
    default_message = "the key-derivation parameters are below the server's floor"


class UnauthorizedError(ApiError):
    code = ErrorCode.UNAUTHORIZED
    http_status = 401
    default_message = "not signed in, or the session has ended"


class TokenExpiredError(ApiError):
    code = ErrorCode.TOKEN_EXPIRED
    http_status = 401
    default_message = "the token has expired"


class TokenReusedError(ApiError):
    code = ErrorCode.TOKEN_REUSED
    http_status = 401
    default_message = "a refresh token was used twice; the session has been revoked"


class SignatureInvalidError(ApiError):
    code = ErrorCode.SIGNATURE_INVALID
    http_status = 401
    default_message = "wrong username or password"


class ChallengeExpiredError(ApiError):
    code = ErrorCode.CHALLENGE_EXPIRED
    http_status = 401
    default_message = "the login challenge has expired or was already used"


class TotpRequiredError(ApiError):
    code = ErrorCode.TOTP_REQUIRED
    http_status = 401
    default_message = "a TOTP code or a recovery code is required"


class TotpInvalidError(ApiError):
    code = ErrorCode.TOTP_INVALID
    http_status = 401
    default_message = "wrong TOTP code"


class TotpReplayedError(ApiError):
    code = ErrorCode.TOTP_REPLAYED
    http_status = 401
    default_message = "that TOTP code was already used; wait for the next one"


class RecoveryCodeInvalidError(ApiError):
    code = ErrorCode.RECOVERY_CODE_INVALID
    http_status = 401
    default_message = "wrong or already used recovery code"


class ForbiddenError(ApiError):
    code = ErrorCode.FORBIDDEN
    http_status = 403
    default_message = "not allowed"


class ResourceNotFoundError(ApiError):
    code = ErrorCode.NOT_FOUND
    http_status = 404
    default_message = "no such resource"


class MethodNotAllowedError(ApiError):
    code = ErrorCode.METHOD_NOT_ALLOWED
    http_status = 405
    default_message = "method not allowed"


class ConflictError(ApiError):
    code = ErrorCode.CONFLICT
    http_status = 409
    default_message = "the item changed on the server (stale etag)"


class AccountExistsError(ApiError):
    code = ErrorCode.ACCOUNT_EXISTS
    http_status = 409
    default_message = "that username is taken"


class TooLargeError(ApiError):
    code = ErrorCode.TOO_LARGE
    http_status = 413
    default_message = "the request is too large"


class QuotaExceededError(ApiError):
    code = ErrorCode.QUOTA_EXCEEDED
    http_status = 413
    default_message = "the account's storage quota is full"


class AccountLockedError(ApiError):
    code = ErrorCode.ACCOUNT_LOCKED
    http_status = 423
    default_message = "too many failed logins; the account is locked for a while"


class RateLimitedError(ApiError):
    code = ErrorCode.RATE_LIMITED
    http_status = 429
    default_message = "too many requests; slow down"


class ServerInternalError(ApiError):
    code = ErrorCode.INTERNAL_ERROR
    http_status = 500
    default_message = "internal server error"


class UnavailableError(ApiError):
    code = ErrorCode.UNAVAILABLE
    http_status = 503
    default_message = "the server is temporarily unavailable; retry shortly"


class DeviceLostError(ApiError):
    code = ErrorCode.DEVICE_LOST
    http_status = 403
    default_message = "this device has been marked lost by the account owner"


class DeviceRemovedError(ApiError):
    code = ErrorCode.DEVICE_REMOVED
    http_status = 403
    default_message = "this device has been removed from the account"


class DeviceStateError(ApiError):
    code = ErrorCode.DEVICE_STATE
    http_status = 409
    default_message = "that is not possible in the device's current state"


class OrderInvalidError(ApiError):
    code = ErrorCode.ORDER_INVALID
    http_status = 400
    default_message = "the order does not match the request or the server's clock"


class OrderSignatureInvalidError(ApiError):
    code = ErrorCode.ORDER_SIGNATURE_INVALID
    http_status = 403
    default_message = "the order is not signed by the account's signing key"


class OrderReplayedError(ApiError):
    code = ErrorCode.ORDER_REPLAYED
    http_status = 409
    default_message = "the order id was already used, or the order is older than the last"


class SigningKeyMissingError(ApiError):
    code = ErrorCode.SIGNING_KEY_MISSING
    http_status = 409
    default_message = "the account has no signing key registered"


class ReauthRequiredError(ApiError):
    code = ErrorCode.REAUTH_REQUIRED
    http_status = 403
    default_message = "this needs full re-authentication (a signed challenge and TOTP)"


class EpochConflictError(ApiError):
    code = ErrorCode.EPOCH_CONFLICT
    http_status = 409
    default_message = "that is not the account's next key epoch; fetch the epochs again"


class NotInPracticeError(ApiError):
    code = ErrorCode.NOT_IN_PRACTICE
    http_status = 404
    default_message = "this account is not a member of a practice"


class MemberRemovedError(ApiError):
    code = ErrorCode.MEMBER_REMOVED
    http_status = 403
    default_message = "this account was removed from its practice"


class PracticeExistsError(ApiError):
    code = ErrorCode.PRACTICE_EXISTS
    http_status = 409
    default_message = "this account already belongs to a practice"


class InviteInvalidError(ApiError):
    code = ErrorCode.INVITE_INVALID
    http_status = 404
    default_message = "the invite code is unknown, used or expired"


class StaleKeyError(ApiError):
    code = ErrorCode.STALE_KEY
    http_status = 409
    default_message = "the collection has a newer key; fetch the practice again"


ERROR_CLASSES: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        InvalidCursorError,
        KdfTooWeakError,
        UnauthorizedError,
        TokenExpiredError,
        TokenReusedError,
        SignatureInvalidError,
        ChallengeExpiredError,
        TotpRequiredError,
        TotpInvalidError,
        TotpReplayedError,
        RecoveryCodeInvalidError,
        ForbiddenError,
        ResourceNotFoundError,
        MethodNotAllowedError,
        ConflictError,
        AccountExistsError,
        TooLargeError,
        QuotaExceededError,
        AccountLockedError,
        RateLimitedError,
        ServerInternalError,
        UnavailableError,
        DeviceLostError,
        DeviceRemovedError,
        DeviceStateError,
        OrderInvalidError,
        OrderSignatureInvalidError,
        OrderReplayedError,
        SigningKeyMissingError,
        ReauthRequiredError,
        EpochConflictError,
        NotInPracticeError,
        MemberRemovedError,
        PracticeExistsError,
        InviteInvalidError,
        StaleKeyError,
    )
}
HTTP_STATUS: dict[str, int] = {code: cls.http_status for code, cls in ERROR_CLASSES.items()}


def error_from_envelope(status: int, body: object) -> ApiError:
    """The typed error for a non-2xx response (client side). Never raises.

    An unknown or missing code becomes a plain ``ApiError`` carrying the HTTP status; the
    server's message is kept only if it is a short string (it is ours, not user content).
    """
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or len(message) > 500:
        message = None
    cls = ERROR_CLASSES.get(code) if isinstance(code, str) else None
    details: dict[str, object] = {"http_status": status}
    if isinstance(error, dict):
        for key in ("retry_after", "current"):
            if key in error:
                details[key] = error[key]
    if cls is None:
        return ApiError(message or f"the sync server answered HTTP {status}", **details)
    return cls(message, **details)
