"""The signed and sealed statements of practice mode (docs/PRACTICE.md, "Keys").

What this module owns: building and checking every statement a practice client makes or
trusts — member certificates, key grants, collection items, policies, audit entries,
the invite envelope and the join proof — from ``practice_protocol.canonical`` and the
primitives in ``app.vault.crypto``.

Invariants:
- nothing is trusted without the owner's signature: a certificate, a grant and a policy
  verify against the owner's signing key learned from the invite (or made at creation);
  an item or an audit entry verifies against its author's owner-signed certificate;
- every seal binds its context (practice, collection, item or recipient, key version)
  as associated data, so a ciphertext moved elsewhere does not open;
- errors name the statement, never its content or a key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.errors import TacitError
from app.sync import practice_protocol as pp
from app.sync.protocol import b64decode, b64encode
from app.vault import crypto
from app.vault.crypto import PracticeEncKey, SigningKey, SymmetricKey

ITEM_VERSION = 1


class PracticeTrustError(TacitError):
    """A practice statement did not verify (forged, altered, or from a stranger)."""

    code = "practice_untrusted"
    exit_status = 5  # as integrity_error: something did not verify
    default_message = "a practice statement did not verify"


def _b64(data: bytes) -> str:
    return b64encode(data)


def _unb64(text: object, what: str) -> bytes:
    try:
        return b64decode(str(text))
    except ValueError:
        raise PracticeTrustError(f"the {what} is not valid base64") from None


# -- member identity --------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """This member's own key pairs (private halves stay in the vault)."""

    enc: PracticeEncKey = field(repr=False)
    sign: SigningKey = field(repr=False)

    @classmethod
    def generate(cls) -> Identity:
        return cls(PracticeEncKey.generate(), crypto.new_device_key())

    @classmethod
    def from_state(cls, doc: Mapping[str, str]) -> Identity:
        return cls(
            PracticeEncKey(bytes.fromhex(doc["enc"])), SigningKey(bytes.fromhex(doc["sign"]))
        )

    def to_state(self) -> dict[str, str]:
        return {"enc": self.enc.hex(), "sign": self.sign.hex()}

    @property
    def enc_public(self) -> str:
        return _b64(self.enc.public_key())

    @property
    def sign_public(self) -> str:
        return _b64(self.sign.public_key())


def sign_doc(key: SigningKey, domain: bytes, doc: dict[str, Any]) -> pp.Signed:
    return {"doc": doc, "signature": _b64(crypto.sign(key, domain, pp.canonical(doc)))}


def signed_ok(public_key_b64: str, domain: bytes, signed: Mapping[str, Any]) -> bool:
    doc, signature = signed.get("doc"), signed.get("signature")
    if not isinstance(doc, dict) or not isinstance(signature, str):
        return False
    try:
        public = b64decode(public_key_b64)
        raw = b64decode(signature)
    except ValueError:
        return False
    return crypto.signature_ok(public, domain, pp.canonical(doc), raw)


# -- certificates -----------------------------------------------------------------------
def certificate(
    owner: SigningKey, *, practice_id: str, account_id: str, role: str, email: str,
    enc_public: str, sign_public: str, supervises: list[str], issued_at: str,
) -> pp.Signed:  # fmt: skip
    doc: dict[str, Any] = {
        "v": pp.PRACTICE_VERSION, "practice_id": practice_id, "account_id": account_id,
        "role": role, "email": email, "enc_public": enc_public, "sign_public": sign_public,
        "supervises": sorted(supervises), "issued_at": issued_at,
    }  # fmt: skip
    return sign_doc(owner, crypto.SIGN_DOMAIN_PRACTICE_MEMBER, doc)


def verified_certificate(
    owner_sign_public: str, practice_id: str, member: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The certificate doc of a member row if the owner signed it and it matches the row
    (keys, role, account, practice); None otherwise."""
    cert = member.get("certificate")
    if not isinstance(cert, dict):
        return None
    if not signed_ok(owner_sign_public, crypto.SIGN_DOMAIN_PRACTICE_MEMBER, cert):
        return None
    doc = cert["doc"]
    for key in ("account_id", "role", "enc_public", "sign_public"):
        if doc.get(key) != member.get(key):
            return None
    if doc.get("practice_id") != practice_id or not isinstance(doc.get("supervises"), list):
        return None
    return dict(doc)


# -- grants -------------------------------------------------------------------------------
def _grant_aad(practice_id: str, collection_id: str, key_version: int, account_id: str) -> bytes:
    return pp.canonical({"practice_id": practice_id, "collection_id": collection_id,
                         "key_version": key_version, "account_id": account_id})  # fmt: skip


def _grant_message(
    practice_id: str, collection_id: str, kind: str, subject: str | None, key_version: int,
    account_id: str, wrapped: bytes,
) -> bytes:  # fmt: skip
    """Binds the collection's kind and subject: a server that relabels a collection (a
    clinician's clinical records shown as a schedule) makes its grants stop verifying."""
    return pp.canonical({
        "practice_id": practice_id, "collection_id": collection_id, "kind": kind,
        "subject": subject, "key_version": key_version, "account_id": account_id,
        "wrapped_sha256": crypto.sha256(wrapped).hex(),
    })  # fmt: skip


def make_grant(
    owner: SigningKey, key: SymmetricKey, *, practice_id: str, collection_id: str, kind: str,
    subject: str | None, key_version: int, account_id: str, enc_public: str,
) -> pp.Grant:  # fmt: skip
    """Wrap one version of a collection key to one member's (certified) X25519 key."""
    aad = _grant_aad(practice_id, collection_id, key_version, account_id)
    wrapped = crypto.seal_to(_unb64(enc_public, "member key"), key.reveal(), aad)
    message = _grant_message(practice_id, collection_id, kind, subject, key_version, account_id,
                             wrapped)  # fmt: skip
    return {
        "account_id": account_id, "key_version": key_version, "wrapped_key": _b64(wrapped),
        "signature": _b64(crypto.sign(owner, crypto.SIGN_DOMAIN_PRACTICE_GRANT, message)),
    }  # fmt: skip


def open_grant(
    me: Identity, owner_sign_public: str, grant: Mapping[str, Any], *, practice_id: str,
    collection_id: str, kind: str, subject: str | None, account_id: str,
) -> tuple[int, SymmetricKey]:  # fmt: skip
    """The key version and key of a grant to this member, for a collection of this kind
    and subject. Raises PracticeTrustError when the owner did not sign it (for this
    collection, kind and subject) or it does not open."""
    version = grant.get("key_version")
    if not isinstance(version, int) or grant.get("account_id") != account_id:
        raise PracticeTrustError("a key grant is malformed")
    wrapped = _unb64(grant.get("wrapped_key"), "key grant")
    signature = _unb64(grant.get("signature"), "key grant signature")
    message = _grant_message(practice_id, collection_id, kind, subject, version, account_id,
                             wrapped)  # fmt: skip
    owner = _unb64(owner_sign_public, "owner key")
    if not crypto.signature_ok(owner, crypto.SIGN_DOMAIN_PRACTICE_GRANT, message, signature):
        raise PracticeTrustError("a key grant is not signed by the practice owner")
    try:
        raw = crypto.open_from(me.enc, wrapped, _grant_aad(practice_id, collection_id, version,
                                                           account_id))  # fmt: skip
    except crypto.CryptoError:
        raise PracticeTrustError("a key grant does not open with this member's key") from None
    if len(raw) != crypto.KEY_BYTES:
        raise PracticeTrustError("a key grant holds a key of the wrong length")
    return version, SymmetricKey(raw)


# -- items --------------------------------------------------------------------------------
def _item_aad(practice_id: str, collection_id: str, item_id: str, key_version: int) -> bytes:
    return pp.canonical({"practice_id": practice_id, "collection_id": collection_id,
                         "item_id": item_id, "key_version": key_version})  # fmt: skip


def _item_message(
    practice_id: str, collection_id: str, item_id: str, kind: str, body: Any, author: str,
    at: str,
) -> bytes:  # fmt: skip
    return pp.canonical({"practice_id": practice_id, "collection_id": collection_id,
                         "item_id": item_id, "kind": kind, "body": body, "author": author,
                         "at": at})  # fmt: skip


def seal_item(
    me: Identity, key: SymmetricKey, *, practice_id: str, collection_id: str, item_id: str,
    key_version: int, kind: str, body: dict[str, Any], author: str, at: str,
) -> str:  # fmt: skip
    message = _item_message(practice_id, collection_id, item_id, kind, body, author, at)
    inner = {
        "v": ITEM_VERSION, "kind": kind, "body": body, "author": author, "at": at,
        "signature": _b64(crypto.sign(me.sign, crypto.SIGN_DOMAIN_PRACTICE_ITEM, message)),
    }  # fmt: skip
    aad = _item_aad(practice_id, collection_id, item_id, key_version)
    nonce, ciphertext = crypto.seal(key, pp.canonical(inner), aad)
    return _b64(nonce + ciphertext)


@dataclass(frozen=True)
class OpenedItem:
    kind: str
    body: dict[str, Any] = field(repr=False)
    author: str
    at: str


def open_item(
    key: SymmetricKey, author_keys: Mapping[str, str], *, practice_id: str,
    collection_id: str, item_id: str, key_version: int, ciphertext: str, author_account: str,
) -> OpenedItem:  # fmt: skip
    """Decrypt and check an item. ``author_keys`` maps account id → certified Ed25519
    public key (base64) of members allowed to write this collection. Raises
    PracticeTrustError."""
    raw = _unb64(ciphertext, "item")
    if len(raw) <= crypto.NONCE_BYTES:
        raise PracticeTrustError("an item is truncated")
    aad = _item_aad(practice_id, collection_id, item_id, key_version)
    try:
        plain = crypto.open_sealed(key, raw[: crypto.NONCE_BYTES], raw[crypto.NONCE_BYTES :], aad)
        inner = json.loads(plain)
    except (crypto.CryptoError, ValueError):
        raise PracticeTrustError("an item does not open with its collection key") from None
    if not isinstance(inner, dict) or inner.get("v") != ITEM_VERSION:
        raise PracticeTrustError("an item has an unknown format")
    kind, body, author, at = (
        inner.get("kind"),
        inner.get("body"),
        inner.get("author"),
        inner.get("at"),
    )
    if not (isinstance(kind, str) and isinstance(body, dict) and isinstance(author, str)
            and isinstance(at, str)):  # fmt: skip
        raise PracticeTrustError("an item is malformed")
    if author != author_account or author not in author_keys:
        raise PracticeTrustError("an item's author may not write this collection")
    message = _item_message(practice_id, collection_id, item_id, kind, body, author, at)
    signature = _unb64(inner.get("signature"), "item signature")
    public = _unb64(author_keys[author], "author key")
    if not crypto.signature_ok(public, crypto.SIGN_DOMAIN_PRACTICE_ITEM, message, signature):
        raise PracticeTrustError("an item's signature does not verify")
    return OpenedItem(kind, body, author, at)


# -- policy -------------------------------------------------------------------------------
def make_policy(
    owner: SigningKey, *, practice_id: str, require_totp: bool, max_idle_minutes: int | None,
    offline_lease_days: int | None, issued_at: str,
) -> pp.Signed:  # fmt: skip
    doc: dict[str, Any] = {
        "v": pp.PRACTICE_VERSION, "practice_id": practice_id, "require_totp": require_totp,
        "max_idle_minutes": max_idle_minutes, "offline_lease_days": offline_lease_days,
        "issued_at": issued_at,
    }  # fmt: skip
    return sign_doc(owner, crypto.SIGN_DOMAIN_PRACTICE_POLICY, doc)


def verified_policy(
    owner_sign_public: str, practice_id: str, signed: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if signed is None or not signed_ok(owner_sign_public, crypto.SIGN_DOMAIN_PRACTICE_POLICY,
                                       signed):  # fmt: skip
        return None
    doc = dict(signed["doc"])
    if doc.get("practice_id") != practice_id:
        return None
    for key, limit in (("max_idle_minutes", pp.MAX_IDLE_MINUTES),
                       ("offline_lease_days", pp.MAX_LEASE_DAYS)):  # fmt: skip
        value = doc.get(key)
        if value is not None and not (isinstance(value, int) and 1 <= value <= limit):
            return None
    return doc


# -- audit --------------------------------------------------------------------------------
def _audit_aad(practice_id: str, author: str, entry_id: str) -> bytes:
    return pp.canonical({"practice_id": practice_id, "author": author, "entry_id": entry_id})


def seal_audit(
    me: Identity, owner_enc_public: str, *, practice_id: str, author: str, entry_id: str,
    entry: dict[str, Any],
) -> str:  # fmt: skip
    doc = {"entry_id": entry_id, "author": author, **entry}
    signed = sign_doc(me.sign, crypto.SIGN_DOMAIN_PRACTICE_AUDIT, doc)
    sealed = crypto.seal_to(_unb64(owner_enc_public, "owner key"), pp.canonical(signed),
                            _audit_aad(practice_id, author, entry_id))  # fmt: skip
    return _b64(sealed)


def open_audit(
    owner: Identity, author_keys: Mapping[str, str], *, practice_id: str, author: str,
    entry_id: str, sealed: str,
) -> dict[str, Any]:  # fmt: skip
    try:
        plain = crypto.open_from(owner.enc, _unb64(sealed, "audit entry"),
                                 _audit_aad(practice_id, author, entry_id))  # fmt: skip
        signed = json.loads(plain)
    except (crypto.CryptoError, ValueError):
        raise PracticeTrustError("an audit entry does not open") from None
    public = author_keys.get(author)
    if (public is None or not isinstance(signed, dict)
            or not signed_ok(public, crypto.SIGN_DOMAIN_PRACTICE_AUDIT, signed)):  # fmt: skip
        raise PracticeTrustError("an audit entry's signature does not verify")
    doc = dict(signed["doc"])
    if doc.get("author") != author or doc.get("entry_id") != entry_id:
        raise PracticeTrustError("an audit entry was moved")
    return doc


# -- invites ------------------------------------------------------------------------------
_ENVELOPE_AAD = b"tacit/v1/practice/invite-envelope"


def seal_envelope(key: SymmetricKey, doc: dict[str, Any]) -> str:
    nonce, ciphertext = crypto.seal(key, pp.canonical(doc), _ENVELOPE_AAD)
    return _b64(nonce + ciphertext)


def open_envelope(key: SymmetricKey, envelope: str) -> dict[str, Any]:
    raw = _unb64(envelope, "invite")
    try:
        plain = crypto.open_sealed(key, raw[: crypto.NONCE_BYTES], raw[crypto.NONCE_BYTES :],
                                   _ENVELOPE_AAD)  # fmt: skip
        doc = json.loads(plain)
    except (crypto.CryptoError, ValueError):
        raise PracticeTrustError("the invite does not open with this code") from None
    if not isinstance(doc, dict):
        raise PracticeTrustError("the invite is malformed")
    return doc


def proof_message(
    *, practice_id: str, enc_public: str, sign_public: str, role: str, email: str
) -> bytes:
    """What the joiner MACs with the invite's proof key: the keys the owner will certify
    (the server assigns the account id later, so it cannot be bound here; a server that
    moved these keys to another account gains nothing, the private halves stay with the
    joiner)."""
    return pp.canonical({"practice_id": practice_id, "enc_public": enc_public,
                         "sign_public": sign_public, "role": role, "email": email})  # fmt: skip


# -- the member's keyring (their other devices) -------------------------------------------
KEYRING_VERSION = 1


def _keyring_key(account_key: SymmetricKey) -> SymmetricKey:
    return crypto.hkdf_info(account_key, crypto.HKDF_INFO_PRACTICE_KEYRING)


def seal_keyring(
    account_key: SymmetricKey, epoch: int, account_id: str, doc: dict[str, Any]
) -> str:
    """The member's practice state, sealed under a key derived from one account key
    epoch; the epoch number travels in the clear so a device knows which key to use."""
    key = _keyring_key(account_key)
    try:
        aad = pp.canonical({"account_id": account_id, "epoch": epoch, "v": KEYRING_VERSION})
        nonce, ciphertext = crypto.seal(key, pp.canonical(doc), aad)
    finally:
        key.wipe()
    return _b64(epoch.to_bytes(2, "big") + nonce + ciphertext)


def keyring_epoch(sealed: str) -> int:
    raw = _unb64(sealed, "keyring")
    if len(raw) < 2 + crypto.NONCE_BYTES:
        raise PracticeTrustError("the keyring is truncated")
    return int.from_bytes(raw[:2], "big")


def open_keyring(account_key: SymmetricKey, account_id: str, sealed: str) -> dict[str, Any]:
    raw = _unb64(sealed, "keyring")
    epoch = keyring_epoch(sealed)
    key = _keyring_key(account_key)
    try:
        aad = pp.canonical({"account_id": account_id, "epoch": epoch, "v": KEYRING_VERSION})
        plain = crypto.open_sealed(key, raw[2 : 2 + crypto.NONCE_BYTES],
                                   raw[2 + crypto.NONCE_BYTES :], aad)  # fmt: skip
        doc = json.loads(plain)
    except (crypto.CryptoError, ValueError):
        raise PracticeTrustError("the practice keyring does not open") from None
    finally:
        key.wipe()
    if not isinstance(doc, dict):
        raise PracticeTrustError("the practice keyring is malformed")
    return doc
