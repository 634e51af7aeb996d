"""Sign & lock: note signatures, addenda, and their verification.

A note's content hash is SHA-256 over the canonical JSON of every field that makes the
record (id, client, kind, template, title, session date, body, author, revision,
signed_at). Signing stores that hash and an Ed25519 signature over it by the vault's
signing key, and sets ``signed_at``; from then on database triggers refuse any update or
deletion of the note. The only way to add to a signed note is an addendum: a separate,
dated entry that commits to the note's hash and is signed on creation.

Invariants: signing, adding an addendum and their audit entries commit in one
transaction; ``verify`` recomputes every hash from the stored fields, so any change to
the stored content, signature, key or addendum is reported.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidInputError, NoteNotSignedError, NoteSignedError
from app.vault import crypto
from app.vault.audit import AuditLog
from app.vault.crypto import SigningKey
from app.vault.db import Database
from app.vault.models import Note
from app.vault.store import RecordStore, _body

_HASH_VERSION = 1


@dataclass(frozen=True, slots=True)
class NoteSignature:
    note_id: str
    signed_at: str
    signer: str = field(repr=False)
    public_key: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.note_id, "signed_at": self.signed_at, "signer": self.signer,
                "public_key": self.public_key, "signature": self.signature}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Addendum:
    id: str
    note_id: str
    body: str = field(repr=False)
    author: str = field(repr=False)
    created_at: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "note_id": self.note_id, "body": self.body,
                "author": self.author, "created_at": self.created_at,
                "signature": self.signature}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    problems: tuple[str, ...]
    addenda: int


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def note_hash(note: Note, signed_at: str) -> bytes:
    return crypto.sha256(
        _canonical(
            {
                "v": _HASH_VERSION, "id": note.id, "client_id": note.client_id,
                "kind": note.kind, "template": note.template, "title": note.title,
                "session_date": note.session_date, "body": note.body, "author": note.author,
                "revision": note.revision, "signed_at": signed_at,
            }
        )
    )  # fmt: skip


def addendum_hash(
    addendum_id: str, note_id: str, note_digest: bytes, body: str, author: str, created_at: str
) -> bytes:
    return crypto.sha256(
        _canonical(
            {
                "v": _HASH_VERSION, "id": addendum_id, "note_id": note_id,
                "note_hash": note_digest.hex(), "body": body, "author": author,
                "created_at": created_at,
            }
        )
    )  # fmt: skip


# Signer ids are derived from the public key: every device names a key alike.
SIGNER_NAMESPACE = uuid.UUID("0b6f3f0e-2f4d-4c55-8f3c-6a7e1d9b2c10")


def signer_id(public_key: bytes) -> str:
    return str(uuid.uuid5(SIGNER_NAMESPACE, public_key.hex()))


class SigningStore:
    def __init__(
        self, db: Database, records: RecordStore, audit: AuditLog, now: Callable[[], str],
        author: Callable[[], str],
    ) -> None:  # fmt: skip
        self._db = db
        self._records = records
        self._audit = audit
        self._now = now
        self._author = author

    def sign(self, note_id: str, key: SigningKey) -> NoteSignature:
        note = self._records.get_note(note_id)
        if note.signed_at is not None:
            raise NoteSignedError("the note is already signed")
        signed_at = self._now()
        digest = note_hash(note, signed_at)
        signature = crypto.sign(key, crypto.SIGN_DOMAIN_NOTE, digest)
        public = key.public_key()
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE notes SET signed_at = ? WHERE id = ? AND revision = ? "
                "AND signed_at IS NULL",
                (signed_at, note.id, note.revision),
            ).rowcount
            if changed != 1:
                raise NoteSignedError("the note changed while it was being signed; try again")
            conn.execute(
                "INSERT INTO note_signatures (note_id, signed_at, signer, public_key, "
                "content_hash, signature) VALUES (?, ?, ?, ?, ?, ?)",
                (note.id, signed_at, self._author(), public, digest, signature),
            )
            self._audit.append(conn, "sign", "note", note.id, note.client_id,
                               detail=f"revision {note.revision}")  # fmt: skip
        return NoteSignature(note.id, signed_at, self._author(), public.hex(), signature.hex())

    def signature(self, note_id: str) -> NoteSignature | None:
        row = self._db.one(
            "SELECT note_id, signed_at, signer, public_key, signature FROM note_signatures "
            "WHERE note_id = ?",
            (note_id,),
        )
        if row is None:
            return None
        return NoteSignature(row[0], row[1], row[2], bytes(row[3]).hex(), bytes(row[4]).hex())

    def add_addendum(self, note_id: str, body: str, key: SigningKey) -> Addendum:
        note = self._records.get_note(note_id)
        if note.signed_at is None:
            raise NoteNotSignedError()
        text = _body(body)
        if not text.strip():
            raise InvalidInputError("an addendum needs some text")
        addendum_id = str(uuid.uuid4())
        created_at = self._now()
        author = self._author()
        note_digest = note_hash(note, note.signed_at)
        digest = addendum_hash(addendum_id, note.id, note_digest, text, author, created_at)
        signature = crypto.sign(key, crypto.SIGN_DOMAIN_ADDENDUM, digest)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO addenda (id, note_id, body, author, created_at, note_hash, "
                "content_hash, public_key, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (addendum_id, note.id, text, author, created_at, note_digest, digest,
                 key.public_key(), signature),
            )  # fmt: skip
            self._audit.append(conn, "addendum", "note", note.id, note.client_id,
                               detail=f"addendum {addendum_id}")  # fmt: skip
        return Addendum(addendum_id, note.id, text, author, created_at, signature.hex())

    def addenda(self, note_id: str) -> list[Addendum]:
        rows = self._db.query(
            "SELECT id, note_id, body, author, created_at, signature FROM addenda "
            "WHERE note_id = ? ORDER BY created_at, id",
            (note_id,),
        )
        return [Addendum(r[0], r[1], r[2], r[3], r[4], bytes(r[5]).hex()) for r in rows]

    # -- trusted signers ---------------------------------------------------------------
    def ensure_signer(self, public_key: bytes, device: str) -> None:
        """Register this vault's own signing key as one of the clinician's (once; synced
        to the account's other devices, so they verify what this one signs)."""
        sid = signer_id(public_key)
        if self._db.one("SELECT 1 FROM signers WHERE id = ?", (sid,)) is not None:
            return
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO signers (id, public_key, device, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (sid, public_key, device, self._now()),
            )

    def trusted_keys(self) -> frozenset[bytes]:
        """The clinician's signing keys: this vault's and those of the account's other
        devices (learned through authenticated sync items)."""
        return frozenset(bytes(r[0]) for r in self._db.query("SELECT public_key FROM signers"))

    def verify(self, note_id: str, trusted: Collection[bytes]) -> Verification:
        """Check the note's signature and every addendum; the signing key must be one of
        ``trusted`` (the clinician's keys). Never raises for a bad record: reports it."""
        note = self._records.get_note(note_id)
        problems: list[str] = []
        row = self._db.one(
            "SELECT signed_at, public_key, content_hash, signature FROM note_signatures "
            "WHERE note_id = ?",
            (note.id,),
        )
        if note.signed_at is None and row is None:
            return Verification(False, ("the note is not signed",), 0)
        if row is None or note.signed_at is None or row[0] != note.signed_at:
            return Verification(False, ("the signature record does not match the note",), 0)
        public, stored_hash, signature = bytes(row[1]), bytes(row[2]), bytes(row[3])
        digest = note_hash(note, note.signed_at)
        if not crypto.constant_time_equal(digest, stored_hash):
            problems.append("the note's content changed after it was signed")
        if not _trusted(public, trusted):
            problems.append("the note was signed with a key that is not the clinician's")
        if not crypto.signature_ok(public, crypto.SIGN_DOMAIN_NOTE, stored_hash, signature):
            problems.append("the note's signature is not valid")
        rows = self._db.query(
            "SELECT id, body, author, created_at, note_hash, content_hash, public_key, "
            "signature FROM addenda WHERE note_id = ? ORDER BY created_at, id",
            (note.id,),
        )
        for a_id, body, author, created_at, a_note_hash, a_hash, a_public, a_sig in rows:
            expected = addendum_hash(a_id, note.id, digest, body, author, created_at)
            if not crypto.constant_time_equal(bytes(a_note_hash), digest):
                problems.append(f"addendum {a_id} does not belong to this version of the note")
            if not crypto.constant_time_equal(expected, bytes(a_hash)):
                problems.append(f"addendum {a_id} changed after it was signed")
            if not _trusted(bytes(a_public), trusted):
                problems.append(f"addendum {a_id} was signed with another key")
            if not crypto.signature_ok(
                bytes(a_public), crypto.SIGN_DOMAIN_ADDENDUM, bytes(a_hash), bytes(a_sig)
            ):
                problems.append(f"addendum {a_id} has an invalid signature")
        return Verification(not problems, tuple(problems), len(rows))


def _trusted(public: bytes, trusted: Collection[bytes]) -> bool:
    # Public keys are not secret; the comparison still runs over every key alike.
    return any([crypto.constant_time_equal(public, key) for key in trusted])
