"""Helpers for the practice-mode server tests: members with their own practice keys,
owner-signed statements made with ``cryptography`` directly, and the steps a client takes
(create, invite, join, certify, grant)."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.sync import practice_protocol as pp
from app.sync import protocol
from tests.sync.server.helpers import Account, Api, new_device, raw_public_key, weak_kdf

CERT = b"tacit/v1/practice/member\x00"
GRANT = b"tacit/v1/practice/grant\x00"
POLICY = b"tacit/v1/practice/policy\x00"


def b64(raw: bytes) -> str:
    return protocol.b64encode(raw)


def sign_doc(key: Ed25519PrivateKey, domain: bytes, doc: dict[str, Any]) -> dict[str, Any]:
    return {"doc": doc, "signature": b64(key.sign(domain + pp.canonical(doc)))}


@dataclass
class Member:
    acct: Account
    role: str
    email: str
    sign: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    enc: bytes = field(
        default_factory=lambda: X25519PrivateKey.generate().public_key().public_bytes_raw()
    )

    @property
    def id(self) -> str:
        return self.acct.account_id

    @property
    def token(self) -> str:
        return self.acct.tokens["access_token"]

    @property
    def sign_public(self) -> bytes:
        return raw_public_key(self.sign)


@dataclass
class Practice:
    id: str
    owner: Member
    collections: dict[str, str]  # kind -> id (the owner's own)


def now_text(api: Api, offset_s: float = 0.0) -> str:
    return protocol.format_time(int((api.clock() + offset_s) * 1000))


def certificate(
    api: Api, owner_key: Ed25519PrivateKey, practice_id: str, m: Member, /, **overrides: Any
) -> dict[str, Any]:
    doc = {
        "v": 1,
        "practice_id": practice_id,
        "account_id": m.id,
        "role": m.role,
        "email": m.email,
        "enc_public": b64(m.enc),
        "sign_public": b64(m.sign_public),
        "supervises": [],
        "issued_at": now_text(api),
        **overrides,
    }
    return sign_doc(owner_key, CERT, doc)


def policy(
    api: Api, owner_key: Ed25519PrivateKey, practice_id: str, offset_s: float = 0.0, /, **kw: Any
) -> dict[str, Any]:
    doc = {
        "v": 1,
        "practice_id": practice_id,
        "require_totp": True,
        "max_idle_minutes": 15,
        "offline_lease_days": 30,
        "issued_at": now_text(api, offset_s),
        **kw,
    }
    return sign_doc(owner_key, POLICY, doc)


# The kind and subject of every collection these helpers made (a grant's signature binds
# them, as the owner's client does); an unknown collection signs as a billing one.
LABELS: dict[str, tuple[str, str | None]] = {}


def grant(
    owner_key: Ed25519PrivateKey, practice_id: str, collection_id: str, account_id: str, v: int
) -> dict[str, Any]:
    wrapped = os.urandom(92)
    kind, subject = LABELS.get(collection_id, ("billing", None))
    statement = {
        "practice_id": practice_id,
        "collection_id": collection_id,
        "kind": kind,
        "subject": subject,
        "key_version": v,
        "account_id": account_id,
        "wrapped_sha256": hashlib.sha256(wrapped).hexdigest(),
    }
    return {
        "account_id": account_id,
        "key_version": v,
        "wrapped_key": b64(wrapped),
        "signature": b64(owner_key.sign(GRANT + pp.canonical(statement))),
    }


def create_body(api: Api, owner: Member, practice_id: str) -> dict[str, Any]:
    cols = []
    for kind in ("clinical", "schedule", "billing"):
        cid = str(uuid.uuid4())
        LABELS[cid] = (kind, None if kind == "billing" else owner.id)
        cols.append(
            {
                "collection_id": cid,
                "kind": kind,
                "subject": None if kind == "billing" else owner.id,
                "grants": [grant(owner.sign, practice_id, cid, owner.id, 1)],
            }
        )
    return {
        "practice_id": practice_id,
        "name": "Harbour Therapy",
        "email": owner.email,
        "enc_public": b64(owner.enc),
        "sign_public": b64(owner.sign_public),
        "certificate": certificate(api, owner.sign, practice_id, owner),
        "policy": policy(api, owner.sign, practice_id),
        "collections": cols,
    }


def create_practice(api: Api, owner: Member | None = None) -> Practice:
    owner = owner or Member(api.account(), "owner", "owner@example.org")
    practice_id = str(uuid.uuid4())
    body = create_body(api, owner, practice_id)
    r = api.post(pp.PATH_PRACTICE, token=owner.token, json=body)
    assert r.status_code == 201, r.text
    assert r.json() == {"practice_id": practice_id}
    kinds = {c["kind"]: c["collection_id"] for c in body["collections"]}
    return Practice(practice_id, owner, kinds)


def invite(api: Api, p: Practice, role: str, email: str, **overrides: Any) -> str:
    lookup = os.urandom(32).hex()
    body = {
        "lookup": lookup,
        "role": role,
        "email": email,
        "envelope": b64(os.urandom(200)),
        "expires_at": now_text(api, 7 * 86400),
        **overrides,
    }
    r = api.post(pp.PATH_INVITES, token=p.owner.token, json=body)
    assert r.status_code == 201, r.text
    return lookup


def join_body(lookup: str, m_sign: Ed25519PrivateKey, enc: bytes) -> tuple[dict[str, Any], Any]:
    key = Ed25519PrivateKey.generate()
    username = f"member-{uuid.uuid4().hex[:10]}"
    device = new_device()
    signup = {
        "username": username,
        "login_public_key": b64(raw_public_key(key)),
        "kdf": weak_kdf(),
        "device": device,
    }
    body = {
        "lookup": lookup,
        "signup": signup,
        "enc_public": b64(enc),
        "sign_public": b64(raw_public_key(m_sign)),
        "proof": b64(os.urandom(32)),
    }
    return body, (username, key, device)


def join_response(api: Api, lookup: str) -> tuple[httpx.Response, Member | None]:
    sign = Ed25519PrivateKey.generate()
    enc = X25519PrivateKey.generate().public_key().public_bytes_raw()
    body, (username, key, device) = join_body(lookup, sign, enc)
    r = api.post(pp.PATH_JOIN, json=body)
    if r.status_code != 201:
        return r, None
    doc = r.json()
    secret = pyotp.parse_uri(doc["totp_uri"]).secret
    acct = Account(username, key, doc["account_id"], secret, doc["recovery_codes"], device)
    acct.tokens["control_token"] = doc["control_token"]
    return r, Member(acct, "", "", sign, enc)


def join(api: Api, p: Practice, role: str, email: str) -> Member:
    """Invite, join and log in: a pending member."""
    lookup = invite(api, p, role, email)
    r, m = join_response(api, lookup)
    assert r.status_code == 201, r.text
    assert m is not None
    m.role, m.email = role, email
    api.login(m.acct)  # the login's answer carries the device's new control token
    return m


def certify(api: Api, p: Practice, m: Member, **overrides: Any) -> httpx.Response:
    return api.post(
        pp.member_path(m.id, "certificate"),
        token=p.owner.token,
        json={"certificate": certificate(api, p.owner.sign, p.id, m, **overrides)},
    )


def add_member(api: Api, p: Practice, role: str, email: str | None = None) -> Member:
    """An active member: joined and certified by the owner."""
    m = join(api, p, role, email or f"{role}-{uuid.uuid4().hex[:6]}@example.org")
    r = certify(api, p, m)
    assert r.status_code == 200, r.text
    return m


def new_collection(
    api: Api, p: Practice, kind: str, subject: str | None, holders: list[str]
) -> str:
    cid = str(uuid.uuid4())
    LABELS[cid] = (kind, subject)
    r = api.post(
        pp.PATH_COLLECTIONS,
        token=p.owner.token,
        json={
            "collection_id": cid,
            "kind": kind,
            "subject": subject,
            "grants": [grant(p.owner.sign, p.id, cid, h, 1) for h in holders],
        },
    )
    assert r.status_code == 201, r.text
    return cid


def push(api: Api, token: str, cid: str, v: int, n: int = 1, **kw: Any) -> httpx.Response:
    items = [
        {
            "item_id": kw.get("item_id") or str(uuid.uuid4()),
            "key_version": v,
            "ciphertext": b64(os.urandom(40)),
        }
        for _ in range(n)
    ]
    return api.post(pp.collection_path(cid, "items"), token=token, json={"items": items})
