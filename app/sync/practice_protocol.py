"""The practice-mode wire protocol (docs/PRACTICE.md), shared by the server and the client.

What both sides must agree on for practices: paths, roles, collection and item kinds,
limits, the JSON shapes (``TypedDict``s; the server validates with its own pydantic
models), and ``canonical`` — the one JSON spelling every signed or MACed statement is
built from (certificates, grants, items, policies, audit entries, join proofs).

Invariants: plain data like ``app.sync.protocol`` (no crypto, no I/O, no vault, no web
framework); binary values travel as standard base64, times as ISO-8601 UTC with
milliseconds; ids are lowercase UUIDs; the error classes live in ``app.sync.protocol``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, NotRequired, TypedDict

from app.sync.protocol import API_PREFIX

PRACTICE_VERSION = 1

PATH_PRACTICE = f"{API_PREFIX}/practice"
PATH_POLICY = f"{PATH_PRACTICE}/policy"
PATH_INVITES = f"{PATH_PRACTICE}/invites"
PATH_JOIN = f"{PATH_PRACTICE}/join"
PATH_COLLECTIONS = f"{PATH_PRACTICE}/collections"
PATH_AUDIT = f"{PATH_PRACTICE}/audit"
PATH_KEYRING = f"{PATH_PRACTICE}/keyring"


def invite_path(lookup: str) -> str:
    return f"{PATH_INVITES}/{lookup}"


def member_path(account_id: str, what: Literal["certificate", "devices", "remove"]) -> str:
    return f"{PATH_PRACTICE}/members/{account_id}/{what}"


def collection_path(collection_id: str, what: Literal["grants", "rotate", "items"]) -> str:
    return f"{PATH_COLLECTIONS}/{collection_id}/{what}"


# --- vocabulary ----------------------------------------------------------------------
Role = Literal["owner", "clinician", "supervisor", "admin"]
ROLES: tuple[str, ...] = ("owner", "clinician", "supervisor", "admin")
INVITE_ROLES: tuple[str, ...] = ("clinician", "supervisor", "admin")
CLINICAL_ROLES: frozenset[str] = frozenset({"owner", "clinician", "supervisor"})

CollectionKind = Literal["clinical", "schedule", "billing"]
COLLECTION_KINDS: tuple[str, ...] = ("clinical", "schedule", "billing")
# Which item kinds each collection holds, and which roles may author them (readers check
# this against the author's certificate; an item outside it is refused).
ITEM_KINDS: dict[str, tuple[str, ...]] = {
    "clinical": ("client", "note", "cosign"),
    "schedule": ("contact", "appointment"),
    "billing": ("fee",),
}
APPOINTMENT_STATUSES: tuple[str, ...] = ("scheduled", "attended", "cancelled", "no_show")

MemberStatus = Literal["pending", "active", "removed"]

# --- limits --------------------------------------------------------------------------
MAX_NAME_CHARS = 120
MAX_EMAIL_CHARS = 254
MAX_ENVELOPE_BYTES = 4096
MAX_ITEM_BYTES = 1024 * 1024
MAX_ITEMS_PER_PUSH = 500
MAX_ITEMS_PER_PULL = 1000
MAX_AUDIT_PER_PUSH = 500
MAX_AUDIT_SEALED_BYTES = 8192
MAX_KEYRING_BYTES = 64 * 1024
MAX_GRANTS_PER_REQUEST = 200
MAX_ORDERS_PER_REMOVAL = 100
INVITE_TTL_DAYS = 7
MAX_IDLE_MINUTES = 24 * 60
MAX_LEASE_DAYS = 365

LOOKUP_RE = re.compile(r"[0-9a-f]{64}")
ENTRY_ID_RE = re.compile(r"[A-Za-z0-9:._-]{1,80}")


def canonical(doc: Any) -> bytes:
    """The one spelling of a statement: JSON, sorted keys, no whitespace, ASCII only."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# --- signed statements (the ``doc`` of ``Signed``) -----------------------------------
class Signed(TypedDict):
    doc: dict[str, Any]
    signature: str  # base64 Ed25519 over canonical(doc), with the statement's domain


class Certificate(TypedDict):
    v: int
    practice_id: str
    account_id: str
    role: str
    email: str
    enc_public: str  # base64 X25519
    sign_public: str  # base64 Ed25519
    supervises: list[str]
    issued_at: str


class Policy(TypedDict):
    v: int
    practice_id: str
    require_totp: bool
    max_idle_minutes: int | None
    offline_lease_days: int | None
    issued_at: str


# --- shapes --------------------------------------------------------------------------
class Grant(TypedDict):
    account_id: str
    key_version: int
    wrapped_key: str  # base64 seal_to(member enc key, collection key)
    signature: str  # base64, the owner's grant signature


class Collection(TypedDict):
    collection_id: str
    kind: str
    subject: str | None
    key_version: int  # the current version; writes must use it
    grants: list[Grant]  # the caller's grants, every version they hold
    holders: NotRequired[list[dict[str, Any]]]  # owner only: [{"account_id","key_version"}]


class CollectionCreate(TypedDict):
    collection_id: str
    kind: str
    subject: str | None
    grants: list[Grant]  # key_version 1


class Member(TypedDict):
    account_id: str
    role: str
    email: str
    status: str
    enc_public: str
    sign_public: str
    certificate: Signed | None  # None while pending
    proof: NotRequired[str | None]  # owner only, while pending: the join proof (base64)
    lookup: NotRequired[str | None]  # owner only: which invite it came from
    joined_at: str
    removed_at: str | None


class PracticeView(TypedDict):
    practice_id: str
    name: str
    owner_account_id: str
    you: dict[str, Any]  # {"account_id","role","status"}
    policy: Signed | None
    members: list[Member]
    collections: list[Collection]


class PracticeCreate(TypedDict):
    practice_id: str
    name: str
    email: str
    enc_public: str
    sign_public: str
    certificate: Signed  # self-signed owner certificate
    policy: Signed
    collections: list[CollectionCreate]


class InviteCreate(TypedDict):
    lookup: str
    role: str
    email: str
    envelope: str  # base64
    expires_at: str


class InviteView(TypedDict):
    envelope: str
    role: str
    email: str
    expires_at: str


class JoinRequest(TypedDict):
    lookup: str
    signup: dict[str, Any]  # the sign-up body of POST /v1/accounts
    enc_public: str
    sign_public: str
    proof: str  # base64 HMAC-SHA256


class PracticeItem(TypedDict):
    item_id: str
    seq: int
    key_version: int
    ciphertext: str
    author_account_id: str
    updated_at: str


class ItemsPage(TypedDict):
    items: list[PracticeItem]
    cursor: str | None
    more: bool


class PushedItem(TypedDict):
    item_id: str
    key_version: int
    ciphertext: str


class AuditEntryIn(TypedDict):
    entry_id: str
    sealed: str


class AuditEntryOut(TypedDict):
    seq: int
    author_account_id: str
    entry_id: str
    sealed: str
    received_at: str


class AuditPage(TypedDict):
    entries: list[AuditEntryOut]
    cursor: str | None
    more: bool


class Removal(TypedDict):
    removed_at: str
    sessions_ended: int
    orders_queued: int
    collections: list[str]
