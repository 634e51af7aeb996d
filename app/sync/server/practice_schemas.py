"""Pydantic models of the practice-mode wire shapes (docs/PRACTICE.md "Routes").

The shapes are defined in ``app.sync.practice_protocol`` (TypedDicts the client uses);
these mirror them field for field (``tests/sync/server/test_protocol.py`` keeps the two
in step). Also the models of the signed documents the server checks (certificates,
policies): a ``Signed`` body carries its ``doc`` as a plain JSON object, whose canonical
spelling is what was signed, and the owning module validates it with these models.

Invariants: as in ``schemas``: requests are strict, unknown fields are refused, binary
fields are strict base64 with their decoded length checked first, ids are lowercase
UUIDs, lookups and entry ids match the protocol's patterns, and validation messages never
echo the input. Size refusals that the protocol answers with ``too_large`` (item
ciphertexts, sealed audit entries) are left to the owning module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server.schemas import (
    _B64_SCHEMA,
    PublicKey,
    Signature,
    SignedOrderIn,
    SignupIn,
    SignupOut,
    Uuid,
    _b64,
    _In,
    _Out,
    _pattern,
    _str_schema,
)

X25519_PUBLIC_KEY_BYTES = 32
JOIN_PROOF_BYTES = 32  # HMAC-SHA256
MAX_WRAPPED_KEY_BYTES = 512
MAX_PRACTICE_COLLECTIONS_AT_CREATE = 16

EncPublic = Annotated[
    bytes,
    BeforeValidator(_b64(X25519_PUBLIC_KEY_BYTES, X25519_PUBLIC_KEY_BYTES)),
    WithJsonSchema(_B64_SCHEMA),
]
JoinProof = Annotated[
    bytes, BeforeValidator(_b64(JOIN_PROOF_BYTES, JOIN_PROOF_BYTES)), WithJsonSchema(_B64_SCHEMA)
]
WrappedKey = Annotated[
    bytes, BeforeValidator(_b64(1, MAX_WRAPPED_KEY_BYTES)), WithJsonSchema(_B64_SCHEMA)
]
Envelope = Annotated[
    bytes, BeforeValidator(_b64(1, pp.MAX_ENVELOPE_BYTES)), WithJsonSchema(_B64_SCHEMA)
]
# Capped here only by the body limit; the per-item / per-entry limits answer too_large.
Blob = Annotated[
    bytes, BeforeValidator(_b64(0, protocol.MAX_BODY_BYTES)), WithJsonSchema(_B64_SCHEMA)
]
Keyring = Annotated[
    bytes, BeforeValidator(_b64(1, pp.MAX_KEYRING_BYTES)), WithJsonSchema(_B64_SCHEMA)
]
Lookup = Annotated[str, AfterValidator(_pattern(pp.LOOKUP_RE, "lookup")), _str_schema(pp.LOOKUP_RE)]
EntryId = Annotated[
    str, AfterValidator(_pattern(pp.ENTRY_ID_RE, "entry_id")), _str_schema(pp.ENTRY_ID_RE)
]
PracticeName = Annotated[str, Field(min_length=1, max_length=pp.MAX_NAME_CHARS)]
Email = Annotated[str, Field(min_length=1, max_length=pp.MAX_EMAIL_CHARS)]
TimeText = Annotated[str, Field(min_length=1, max_length=40)]
KeyVersion = Annotated[int, Field(ge=1, le=2**31 - 1)]
InviteRole = Literal["clinician", "supervisor", "admin"]
AnyRole = Literal["owner", "clinician", "supervisor", "admin"]
CollectionKindIn = Literal["clinical", "schedule", "billing"]


# --- requests ---------------------------------------------------------------------------
class SignedIn(_In):
    doc: dict[str, Any]
    signature: Signature


class CertificateDoc(_In):
    """A member certificate's ``doc`` (checked after the signature's bytes are taken)."""

    v: Literal[1]
    practice_id: Uuid
    account_id: Uuid
    role: AnyRole
    email: Email
    enc_public: EncPublic
    sign_public: PublicKey
    supervises: Annotated[list[Uuid], Field(max_length=pp.MAX_GRANTS_PER_REQUEST)]
    issued_at: TimeText


class PolicyDoc(_In):
    v: Literal[1]
    practice_id: Uuid
    require_totp: bool
    max_idle_minutes: Annotated[int, Field(ge=1, le=pp.MAX_IDLE_MINUTES)] | None
    offline_lease_days: Annotated[int, Field(ge=1, le=pp.MAX_LEASE_DAYS)] | None
    issued_at: TimeText


class GrantIn(_In):
    account_id: Uuid
    key_version: KeyVersion
    wrapped_key: WrappedKey
    signature: Signature


Grants = Annotated[list[GrantIn], Field(max_length=pp.MAX_GRANTS_PER_REQUEST)]


class CollectionCreateIn(_In):
    collection_id: Uuid
    kind: CollectionKindIn
    subject: Uuid | None
    grants: Grants


class PracticeCreateIn(_In):
    practice_id: Uuid
    name: PracticeName
    email: Email
    enc_public: EncPublic
    sign_public: PublicKey
    certificate: SignedIn
    policy: SignedIn
    collections: Annotated[
        list[CollectionCreateIn], Field(max_length=MAX_PRACTICE_COLLECTIONS_AT_CREATE)
    ]


class PolicyIn(_In):
    policy: SignedIn


class InviteCreateIn(_In):
    lookup: Lookup
    role: InviteRole
    email: Email
    envelope: Envelope
    expires_at: TimeText


class JoinIn(_In):
    lookup: Lookup
    signup: SignupIn
    enc_public: EncPublic
    sign_public: PublicKey
    proof: JoinProof


class CertificateIn(_In):
    certificate: SignedIn


class RemoveIn(_In):
    orders: Annotated[list[SignedOrderIn], Field(max_length=pp.MAX_ORDERS_PER_REMOVAL)]


class GrantsIn(_In):
    grants: Annotated[list[GrantIn], Field(min_length=1, max_length=pp.MAX_GRANTS_PER_REQUEST)]


class RotateIn(_In):
    key_version: KeyVersion
    grants: Annotated[list[GrantIn], Field(min_length=1, max_length=pp.MAX_GRANTS_PER_REQUEST)]


class PushedItemIn(_In):
    item_id: Uuid
    key_version: KeyVersion
    ciphertext: Blob


class ItemsPushIn(_In):
    items: Annotated[list[PushedItemIn], Field(min_length=1, max_length=pp.MAX_ITEMS_PER_PUSH)]


class AuditEntryIn(_In):
    entry_id: EntryId
    sealed: Blob


class KeyringIn(_In):
    keyring: Keyring


class KeyringOut(_Out):
    keyring: str


class AuditPushIn(_In):
    entries: Annotated[list[AuditEntryIn], Field(min_length=1, max_length=pp.MAX_AUDIT_PER_PUSH)]


# --- responses (documentation; handlers return protocol TypedDicts) ---------------------
class SignedOut(_Out):
    doc: dict[str, Any]
    signature: str


class GrantOut(_Out):
    account_id: str
    key_version: int
    wrapped_key: str
    signature: str


class HolderOut(_Out):
    account_id: str
    key_version: int


class CollectionOut(_Out):
    collection_id: str
    kind: str
    subject: str | None
    key_version: int
    grants: list[GrantOut]
    holders: list[HolderOut] | None = None  # owner only (absent for others)


class MemberOut(_Out):
    account_id: str
    role: str
    email: str
    status: Literal["pending", "active", "removed"]
    enc_public: str
    sign_public: str
    certificate: SignedOut | None
    proof: str | None = None  # owner only
    lookup: str | None = None  # owner only
    joined_at: str
    removed_at: str | None


class YouOut(_Out):
    account_id: str
    role: str
    status: str


class PracticeViewOut(_Out):
    practice_id: str
    name: str
    owner_account_id: str
    you: YouOut
    policy: SignedOut | None
    members: list[MemberOut]
    collections: list[CollectionOut]


class PracticeCreatedOut(_Out):
    practice_id: str


class PolicyOut(_Out):
    policy: SignedOut


class InviteCreatedOut(_Out):
    invite_id: str
    expires_at: str


class InviteEntryOut(_Out):
    invite_id: str
    role: str
    email: str
    created_at: str
    expires_at: str
    used_at: str | None
    account_id: str | None


class InvitesOut(_Out):
    invites: list[InviteEntryOut]


class InviteViewOut(_Out):
    envelope: str
    role: str
    email: str
    expires_at: str


class JoinOut(SignupOut):
    practice_id: str


class MemberDeviceOut(_Out):
    device_id: str
    name: str
    state: Literal["active", "lost", "locked", "wiped", "removed"]


class RemovalOut(_Out):
    removed_at: str
    sessions_ended: int
    orders_queued: int
    collections: list[str]


class PracticeItemOut(_Out):
    item_id: str
    seq: int
    key_version: int
    ciphertext: str
    author_account_id: str
    updated_at: str


class ItemsPageOut(_Out):
    items: list[PracticeItemOut]
    cursor: str | None
    more: bool


class PushedSeqOut(_Out):
    item_id: str
    seq: int


class ItemsPushedOut(_Out):
    items: list[PushedSeqOut]


class AuditStoredOut(_Out):
    stored: int


class AuditEntryOut(_Out):
    seq: int
    author_account_id: str
    entry_id: str
    sealed: str
    received_at: str


class AuditPageOut(_Out):
    entries: list[AuditEntryOut]
    cursor: str | None
    more: bool
