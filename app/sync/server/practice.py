"""Practices: creation, the practice view, owner-signed statements (member certificates,
the policy), and who the caller is in their practice (docs/PRACTICE.md).

The server stores public keys, owner-signed statements and opaque blobs; it cannot read
or forge any of them. It still checks what it can (defence in depth; clients never rely
on it): the owner's self-signed certificate, first policy and first grants against the
``sign_public`` sent with them; later certificates, policies and grants against the
stored owner key; and that a certificate's practice, account, role, e-mail and keys
match the member row. A refused statement is ``invalid_request``.

Invariants:
- an account is in at most one practice (``practice_members.account_id`` is UNIQUE);
  the caller's membership always comes from that row, never from the request: no row →
  ``not_in_practice`` (404), ``removed`` → ``member_removed`` (403), ``pending`` → only
  ``GET /v1/practice`` (``forbidden`` elsewhere); owner routes → ``forbidden`` to others;
- every query is scoped by the caller's practice: another practice's collections,
  members and invites are ``not_found``, exactly like ones that do not exist;
- statements are stored as the canonical JSON of ``{"doc","signature"}`` (signature in
  base64), so they are served back byte for byte as signed;
- writes that must be serialized per practice lock the practice row (``FOR UPDATE`` on
  PostgreSQL; SQLite has a single writer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server import crypto
from app.sync.server.context import ServerContext
from app.sync.server.db import Row, Tx, UniqueViolation
from app.sync.server.practice_schemas import (
    CertificateDoc,
    CertificateIn,
    CollectionCreateIn,
    GrantIn,
    PolicyDoc,
    PolicyIn,
    PracticeCreateIn,
    SignedIn,
)
from app.sync.server.sessions import Principal

CERTIFICATE_DOMAIN = b"tacit/v1/practice/member\x00"
GRANT_DOMAIN = b"tacit/v1/practice/grant\x00"
POLICY_DOMAIN = b"tacit/v1/practice/policy\x00"

OWNER, PENDING, ACTIVE, REMOVED = "owner", "pending", "active", "removed"

MEMBER_SELECT = """SELECT account_id, role, email, status, enc_public, sign_public,
    certificate, proof, lookup, joined_at, removed_at FROM practice_members"""


@dataclass(frozen=True, slots=True)
class Membership:
    """The caller's place in their practice (from ``practice_members``)."""

    practice_id: str
    account_id: str
    role: str
    status: str
    owner_account_id: str
    owner_sign_public: bytes

    @property
    def is_owner(self) -> bool:
        return self.account_id == self.owner_account_id


def membership(tx: Tx, account_id: str, *, allow_pending: bool = False) -> Membership:
    """The caller's membership. Raises NotInPracticeError, MemberRemovedError, and
    ForbiddenError for a pending member unless ``allow_pending``."""
    row = tx.one(
        """SELECT m.practice_id, m.role, m.status, p.owner_account_id, p.owner_sign_public
        FROM practice_members m JOIN practices p ON p.id = m.practice_id
        WHERE m.account_id = ?""",
        (account_id,),
    )
    if row is None:
        raise protocol.NotInPracticeError()
    status = str(row[2])
    if status == REMOVED:
        raise protocol.MemberRemovedError()
    if status == PENDING and not allow_pending:
        raise protocol.ForbiddenError("the owner has not approved this member yet")
    return Membership(str(row[0]), account_id, str(row[1]), status, str(row[3]), bytes(row[4]))


def owner_membership(tx: Tx, account_id: str) -> Membership:
    """The caller's membership, which must be the practice owner's. Raises what
    ``membership`` raises, and ForbiddenError for any other member."""
    member = membership(tx, account_id)
    if not member.is_owner:
        raise protocol.ForbiddenError("only the practice owner may do this")
    return member


def lock_practice(tx: Tx, practice_id: str) -> Row:
    """Lock the practice row (serializes owner writes and audit seq allocation)."""
    row = tx.one_for_update(
        "SELECT id, policy, audit_seq FROM practices WHERE id = ?", (practice_id,)
    )
    if row is None:  # pragma: no cover - the membership row references it
        raise protocol.NotInPracticeError()
    return row


# --- signed statements ---------------------------------------------------------------
def store_signed(signed: SignedIn) -> str:
    return pp.canonical(
        {"doc": signed.doc, "signature": protocol.b64encode(signed.signature)}
    ).decode("ascii")


def load_signed(text: object) -> pp.Signed | None:
    if text is None:
        return None
    raw = json.loads(str(text))
    return {"doc": dict(raw["doc"]), "signature": str(raw["signature"])}


def _verified(signed: SignedIn, what: str, domain: bytes, key: bytes) -> None:
    if not crypto.ed25519_verify_statement(key, domain, pp.canonical(signed.doc), signed.signature):
        raise protocol.InvalidRequestError(f"{what}: the signature does not verify")


def check_certificate(
    signed: SignedIn,
    owner_sign_public: bytes,
    *,
    practice_id: str,
    account_id: str,
    role: str,
    email: str,
    enc_public: bytes,
    sign_public: bytes,
) -> None:
    """A certificate signed by the owner key whose doc matches the member. Raises
    InvalidRequestError."""
    try:
        doc = CertificateDoc.model_validate(signed.doc)
        protocol.parse_time(doc.issued_at)
    except (ValidationError, ValueError):
        raise protocol.InvalidRequestError("certificate: not a member certificate") from None
    _verified(signed, "certificate", CERTIFICATE_DOMAIN, owner_sign_public)
    expected = (practice_id, account_id, role, email, enc_public, sign_public)
    got = (doc.practice_id, doc.account_id, doc.role, doc.email, doc.enc_public, doc.sign_public)
    if got != expected:
        raise protocol.InvalidRequestError("certificate: does not match the member")


def check_policy(signed: SignedIn, owner_sign_public: bytes, practice_id: str) -> int:
    """A policy signed by the owner key for this practice; returns its issued_at (ms).
    Raises InvalidRequestError."""
    try:
        doc = PolicyDoc.model_validate(signed.doc)
        issued = protocol.parse_time(doc.issued_at)
    except (ValidationError, ValueError, OverflowError):
        raise protocol.InvalidRequestError("policy: not a practice policy") from None
    _verified(signed, "policy", POLICY_DOMAIN, owner_sign_public)
    if doc.practice_id != practice_id:
        raise protocol.InvalidRequestError("policy: is for another practice")
    return issued


# --- shapes --------------------------------------------------------------------------
def member_entry(row: Row, *, owner_view: bool) -> pp.Member:
    """A ``MEMBER_SELECT`` row as the wire shape (proof and lookup for the owner only)."""
    entry: pp.Member = {
        "account_id": str(row[0]),
        "role": str(row[1]),
        "email": str(row[2]),
        "status": str(row[3]),
        "enc_public": protocol.b64encode(bytes(row[4])),
        "sign_public": protocol.b64encode(bytes(row[5])),
        "certificate": load_signed(row[6]),
        "joined_at": protocol.format_time(int(row[9])),
        "removed_at": None if row[10] is None else protocol.format_time(int(row[10])),
    }
    if owner_view:
        entry["proof"] = None if row[7] is None else protocol.b64encode(bytes(row[7]))
        entry["lookup"] = None if row[8] is None else str(row[8])
    return entry


def collection_view(tx: Tx, member: Membership, collection_id: str) -> pp.Collection:
    """One collection as the caller sees it: its own grants; every holder for the owner."""
    row = tx.one(
        """SELECT id, kind, subject, key_version FROM practice_collections
        WHERE id = ? AND practice_id = ?""",
        (collection_id, member.practice_id),
    )
    if row is None:
        raise protocol.ResourceNotFoundError("no such collection")
    return _collection(tx, member, row)


def _collection(tx: Tx, member: Membership, row: Row) -> pp.Collection:
    grants = tx.all(
        """SELECT account_id, key_version, wrapped_key, signature FROM practice_grants
        WHERE collection_id = ? AND account_id = ? ORDER BY key_version""",
        (str(row[0]), member.account_id),
    )
    view: pp.Collection = {
        "collection_id": str(row[0]),
        "kind": str(row[1]),
        "subject": None if row[2] is None else str(row[2]),
        "key_version": int(row[3]),
        "grants": [
            {
                "account_id": str(g[0]),
                "key_version": int(g[1]),
                "wrapped_key": protocol.b64encode(bytes(g[2])),
                "signature": protocol.b64encode(bytes(g[3])),
            }
            for g in grants
        ],
    }
    if member.is_owner:
        holders = tx.all(
            """SELECT account_id, key_version FROM practice_grants WHERE collection_id = ?
            ORDER BY account_id, key_version""",
            (str(row[0]),),
        )
        view["holders"] = [{"account_id": str(h[0]), "key_version": int(h[1])} for h in holders]
    return view


# --- grants and collections (shared with practice_collections) ------------------------
def grant_message(
    practice_id: str, collection_id: str, kind: str, subject: str | None, grant: GrantIn
) -> bytes:
    """What the owner signs for a grant (docs/PRACTICE.md "Keys"): the collection's kind
    and subject are bound too, so a relabelled collection's grants stop verifying."""
    return pp.canonical(
        {
            "practice_id": practice_id,
            "collection_id": collection_id,
            "kind": kind,
            "subject": subject,
            "key_version": grant.key_version,
            "account_id": grant.account_id,
            "wrapped_sha256": crypto.sha256(grant.wrapped_key).hex(),
        }
    )


def store_grants(
    tx: Tx,
    practice_id: str,
    owner_sign_public: bytes,
    collection_id: str,
    current: int,
    grants: list[GrantIn],
    now: int,
) -> None:
    """Upsert owner-signed grants of versions 1..current to active members of the
    practice. Raises InvalidRequestError."""
    label = tx.one("SELECT kind, subject FROM practice_collections WHERE id = ?", (collection_id,))
    if label is None:
        raise protocol.ResourceNotFoundError("no such collection")
    kind, subject = str(label[0]), None if label[1] is None else str(label[1])
    for grant in grants:
        if not crypto.ed25519_verify_statement(
            owner_sign_public,
            GRANT_DOMAIN,
            grant_message(practice_id, collection_id, kind, subject, grant),
            grant.signature,
        ):
            raise protocol.InvalidRequestError("grants: a signature does not verify")
        if not 1 <= grant.key_version <= current:
            raise protocol.InvalidRequestError(
                f"grants: key_version must be between 1 and {current}"
            )
        # Locked: a removal committing meanwhile must not leave a grant behind.
        row = tx.one_for_update(
            "SELECT status FROM practice_members WHERE practice_id = ? AND account_id = ?",
            (practice_id, grant.account_id),
        )
        if row is None or str(row[0]) != ACTIVE:
            raise protocol.InvalidRequestError(
                "grants: the recipient is not an active member of the practice"
            )
        tx.execute(
            """INSERT INTO practice_grants (collection_id, account_id, key_version,
                wrapped_key, signature, granted_at) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (collection_id, account_id, key_version) DO UPDATE SET
                wrapped_key = excluded.wrapped_key, signature = excluded.signature,
                granted_at = excluded.granted_at""",
            (
                collection_id,
                grant.account_id,
                grant.key_version,
                grant.wrapped_key,
                grant.signature,
                now,
            ),
        )


def insert_collection(
    tx: Tx, practice_id: str, owner_sign_public: bytes, req: CollectionCreateIn, now: int
) -> None:
    """Create a collection at key version 1 with its first grants. Raises
    InvalidRequestError (subject, versions, recipients) and ConflictError (the id is
    taken)."""
    if (req.kind == "billing") != (req.subject is None):
        raise protocol.InvalidRequestError(
            "subject: a billing collection has none; clinical and schedule ones name a member"
        )
    if req.subject is not None:
        row = tx.one(
            "SELECT status FROM practice_members WHERE practice_id = ? AND account_id = ?",
            (practice_id, req.subject),
        )
        if row is None or str(row[0]) == REMOVED:
            raise protocol.InvalidRequestError("subject: not a member of the practice")
    if tx.one("SELECT 1 FROM practice_collections WHERE id = ?", (req.collection_id,)):
        raise protocol.ConflictError("a collection with this id exists")
    tx.execute(
        """INSERT INTO practice_collections (id, practice_id, kind, subject, key_version, seq,
            created_at) VALUES (?, ?, ?, ?, 1, 0, ?)""",
        (req.collection_id, practice_id, req.kind, req.subject, now),
    )
    store_grants(tx, practice_id, owner_sign_public, req.collection_id, 1, list(req.grants), now)


# --- routes' work ----------------------------------------------------------------------
def create(ctx: ServerContext, principal: Principal, req: PracticeCreateIn) -> dict[str, str]:
    """Create a practice with the caller as its active owner, its policy and first
    collections. Raises PracticeExistsError, InvalidRequestError, ConflictError."""
    if not crypto.ed25519_public_key_valid(req.sign_public):
        raise protocol.InvalidRequestError("sign_public is not an Ed25519 public key")
    check_certificate(
        req.certificate,
        req.sign_public,
        practice_id=req.practice_id,
        account_id=principal.account_id,
        role=OWNER,
        email=req.email,
        enc_public=req.enc_public,
        sign_public=req.sign_public,
    )
    check_policy(req.policy, req.sign_public, req.practice_id)
    now = ctx.now_ms()
    try:
        with ctx.db.transaction() as tx:
            tx.one_for_update("SELECT id FROM accounts WHERE id = ?", (principal.account_id,))
            row = tx.one(
                "SELECT status FROM practice_members WHERE account_id = ?",
                (principal.account_id,),
            )
            if row is not None and str(row[0]) != REMOVED:
                raise protocol.PracticeExistsError()
            if tx.one("SELECT 1 FROM practices WHERE id = ?", (req.practice_id,)):
                raise protocol.PracticeExistsError("a practice with this id exists")
            if row is not None:
                # A member removed from another practice starts afresh (one row per
                # account); the old practice's owner loses only the removed entry.
                tx.execute(
                    "DELETE FROM practice_members WHERE account_id = ?", (principal.account_id,)
                )
            tx.execute(
                """INSERT INTO practices (id, name, owner_account_id, owner_sign_public,
                    owner_enc_public, policy, audit_seq, created_at)
                VALUES (?, ?, ?, ?, ?, ?, 0, ?)""",
                (
                    req.practice_id,
                    req.name,
                    principal.account_id,
                    req.sign_public,
                    req.enc_public,
                    store_signed(req.policy),
                    now,
                ),
            )
            tx.execute(
                """INSERT INTO practice_members (practice_id, account_id, role, email, status,
                    enc_public, sign_public, certificate, proof, lookup, joined_at, removed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL)""",
                (
                    req.practice_id,
                    principal.account_id,
                    OWNER,
                    req.email,
                    ACTIVE,
                    req.enc_public,
                    req.sign_public,
                    store_signed(req.certificate),
                    now,
                ),
            )
            for collection in req.collections:
                insert_collection(tx, req.practice_id, req.sign_public, collection, now)
    except UniqueViolation:
        # A racing create for the same account or id won.
        raise protocol.PracticeExistsError() from None
    return {"practice_id": req.practice_id}


def view(ctx: ServerContext, principal: Principal) -> pp.PracticeView:
    """The practice as the caller may see it (docs/PRACTICE.md "Routes")."""
    with ctx.db.transaction(write=False) as tx:
        member = membership(tx, principal.account_id, allow_pending=True)
        practice = tx.one("SELECT name, policy FROM practices WHERE id = ?", (member.practice_id,))
        if practice is None:  # pragma: no cover - the membership row references it
            raise protocol.NotInPracticeError()
        if member.is_owner:
            rows = tx.all(
                MEMBER_SELECT + " WHERE practice_id = ? ORDER BY joined_at, account_id",
                (member.practice_id,),
            )
        elif member.status == PENDING:
            rows = tx.all(
                MEMBER_SELECT
                + " WHERE practice_id = ? AND account_id IN (?, ?) ORDER BY joined_at, account_id",
                (member.practice_id, member.owner_account_id, member.account_id),
            )
        else:
            rows = tx.all(
                MEMBER_SELECT
                + " WHERE practice_id = ? AND status = ? ORDER BY joined_at, account_id",
                (member.practice_id, ACTIVE),
            )
        collections: list[pp.Collection] = []
        if member.status == ACTIVE:
            held = tx.all(
                """SELECT c.id, c.kind, c.subject, c.key_version FROM practice_collections c
                WHERE c.practice_id = ? AND EXISTS (SELECT 1 FROM practice_grants g
                    WHERE g.collection_id = c.id AND g.account_id = ?)
                ORDER BY c.created_at, c.id""",
                (member.practice_id, member.account_id),
            )
            collections = [_collection(tx, member, row) for row in held]
        return {
            "practice_id": member.practice_id,
            "name": str(practice[0]),
            "owner_account_id": member.owner_account_id,
            "you": {"account_id": member.account_id, "role": member.role, "status": member.status},
            "policy": load_signed(practice[1]),
            "members": [member_entry(r, owner_view=member.is_owner) for r in rows],
            "collections": collections,
        }


def put_policy(ctx: ServerContext, principal: Principal, req: PolicyIn) -> dict[str, pp.Signed]:
    """Replace the policy with a newer (or equally new) owner-signed one. Raises
    InvalidRequestError, ConflictError (older than the stored one)."""
    with ctx.db.transaction() as tx:
        member = owner_membership(tx, principal.account_id)
        issued = check_policy(req.policy, member.owner_sign_public, member.practice_id)
        row = lock_practice(tx, member.practice_id)
        stored = load_signed(row[1])
        if stored is not None and issued < protocol.parse_time(str(stored["doc"]["issued_at"])):
            raise protocol.ConflictError("the stored policy is newer; fetch the practice again")
        text = store_signed(req.policy)
        tx.execute("UPDATE practices SET policy = ? WHERE id = ?", (text, member.practice_id))
    return {
        "policy": {"doc": req.policy.doc, "signature": protocol.b64encode(req.policy.signature)}
    }


def _member_row(tx: Tx, practice_id: str, account_id: str, *, lock: bool = False) -> Row:
    sql = MEMBER_SELECT + " WHERE practice_id = ? AND account_id = ?"
    row = (
        tx.one_for_update(sql, (practice_id, account_id))
        if lock
        else tx.one(sql, (practice_id, account_id))
    )
    if row is None:
        raise protocol.ResourceNotFoundError("no such member")
    return row


def certify(
    ctx: ServerContext, principal: Principal, account_id: str, req: CertificateIn
) -> pp.Member:
    """Store an owner-signed certificate for a member; a pending member becomes active.
    Raises ResourceNotFoundError, ConflictError (removed), InvalidRequestError."""
    with ctx.db.transaction() as tx:
        member = owner_membership(tx, principal.account_id)
        row = _member_row(tx, member.practice_id, account_id, lock=True)
        if str(row[3]) == REMOVED:
            raise protocol.ConflictError("the member was removed")
        check_certificate(
            req.certificate,
            member.owner_sign_public,
            practice_id=member.practice_id,
            account_id=account_id,
            role=str(row[1]),
            email=str(row[2]),
            enc_public=bytes(row[4]),
            sign_public=bytes(row[5]),
        )
        tx.execute(
            """UPDATE practice_members SET certificate = ?, status = ?
            WHERE practice_id = ? AND account_id = ?""",
            (store_signed(req.certificate), ACTIVE, member.practice_id, account_id),
        )
        return member_entry(_member_row(tx, member.practice_id, account_id), owner_view=True)


def member_devices(
    ctx: ServerContext, principal: Principal, account_id: str
) -> list[dict[str, Any]]:
    """A member's devices (id, name, state), for the owner to sign lock orders.
    Raises ResourceNotFoundError."""
    with ctx.db.transaction(write=False) as tx:
        member = owner_membership(tx, principal.account_id)
        _member_row(tx, member.practice_id, account_id)
        rows = tx.all(
            "SELECT id, name, state FROM devices WHERE account_id = ? ORDER BY created_at, id",
            (account_id,),
        )
    return [{"device_id": str(r[0]), "name": str(r[1]), "state": str(r[2])} for r in rows]
