"""The vault header: a small, versioned, self-describing envelope of key slots.

The header sits next to the database (``vault.header``) and holds the random DB key only
wrapped. Format (UTF-8 JSON, documented in docs/SECURITY.md):

    {"magic": "tacit-vault-header", "format_version": 1, "vault_id": UUID,
     "created_at": ISO-8601, "keychain_bound": bool,
     "kdf": {"algorithm", "version", "memory_kib", "iterations", "parallelism", "salt"},
     "slots": {"passphrase": {"nonce", "ciphertext"}, "recovery": {"salt", "nonce",
               "ciphertext"}, "escrow": {"nonce", "ciphertext"}},
     "account": {"account_id", "device_id", "signing_public_key"},   (optional)
     "lease_days": int,                                               (optional)
     "practice_order_key": base64,                                    (optional)
     "device_state": {"remote_lock", "last_order", "last_checkin",    (optional)
                      "max_seen", "pending_audit", "sync_control"},
     "mac": base64, "mac_locked": base64, "checksum": hex}

The optional fields came with remote lock (docs/SECURITY.md, "Lost device"); a header
without them is a header from before and opens as before (nothing was bumped).
``practice_order_key`` (practice mode, docs/PRACTICE.md) is the practice owner's Ed25519
public key, whose device orders this vault also obeys; under the MAC like the account.

Integrity is layered so each failure has one honest name:
- ``checksum`` (SHA-256 over the rest) catches accidental corruption -> integrity_error
  before any key is derived;
- each slot is AEAD-wrapped with the header's identity, KDF parameters and binding as
  associated data, so a deliberate edit to them makes the slot refuse to open;
- ``mac`` (HMAC under a key derived from the DB key) authenticates the whole header once
  a slot has opened, so an edit to any other slot is caught too -> integrity_error;
- ``mac_locked`` (same key, its own domain prefix) authenticates the header as it is
  once the passphrase slot is gone: a remote lock received while the vault is locked
  destroys that slot without the DB key, and the recovery and escrow slots must still
  open with an authenticated header afterwards. It is accepted only for a header that
  has no passphrase slot, so all it ever allows is "the passphrase slot was removed".
- ``device_state`` is NOT authenticated (it is written while locked, when no key is at
  hand): the remote-lock marker, the last order acted on, check-in times, audit
  notes waiting for the next unlock, and (without an OS keychain) the sync client's
  control record, an opaque string. Whoever can edit the header can edit it; what that
  buys them is written down in docs/SECURITY.md ("Lost device").

Parsers here never raise anything but IntegrityError / UnsupportedVersionError.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.errors import IntegrityError, UnsupportedVersionError, VaultMissingError
from app.vault import crypto
from app.vault.crypto import KdfParams, SymmetricKey
from app.vault.fsutil import atomic_write

MAGIC = "tacit-vault-header"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
SLOT_PASSPHRASE = "passphrase"  # noqa: S105 - a slot name
SLOT_RECOVERY = "recovery"
SLOT_ESCROW = "escrow"
# What ``mac_locked`` covers starts with this prefix; canonical JSON starts with "{", so
# the two MACs can never be swapped for one another.
LOCKED_MAC_DOMAIN = b"tacit/v1/vault/header-mac-locked\x00"
ORDER_ACTIONS = ("lock", "wipe", "restore")
MAX_PENDING_AUDIT = 100
_MAX_TEXT = 200
MAX_SYNC_CONTROL = 4096
PUBLIC_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class AccountLink:
    """The sync account this vault is linked to, readable while locked (authenticated by
    the header MAC at the next unlock): the account signing public key that orders must
    verify against, and this vault's device id."""

    account_id: str
    device_id: str
    signing_public_key: bytes


@dataclass(frozen=True, slots=True)
class OrderMark:
    """A device order this vault acted on."""

    order_id: str
    action: str
    issued_at: str
    applied_at: str


@dataclass(frozen=True, slots=True)
class PendingAuditNote:
    """An audit event that happened while the database could not be written (a remote
    lock while locked); moved into the audit trail at the next unlock."""

    action: str
    detail: str
    at: str


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The unauthenticated part of the header (see the module docstring)."""

    remote_lock: OrderMark | None = None  # the lock or wipe order in effect
    last_order: OrderMark | None = None  # newest order acted on (replay protection)
    last_checkin: str | None = None  # last successful contact with the sync server
    max_seen: str | None = None  # latest wall-clock time seen (clock rollback check)
    pending_audit: tuple[PendingAuditNote, ...] = ()
    # Opaque to the vault: what the sync client needs while the vault is locked (server,
    # username, control token) when there is no OS keychain (docs/SECURITY.md).
    sync_control: str | None = field(default=None, repr=False)  # holds a token

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.remote_lock is not None:
            doc["remote_lock"] = _mark_dict(self.remote_lock)
        if self.last_order is not None:
            doc["last_order"] = _mark_dict(self.last_order)
        if self.last_checkin is not None:
            doc["last_checkin"] = self.last_checkin
        if self.max_seen is not None:
            doc["max_seen"] = self.max_seen
        if self.pending_audit:
            doc["pending_audit"] = [
                {"action": n.action, "detail": n.detail, "at": n.at} for n in self.pending_audit
            ]
        if self.sync_control is not None:
            doc["sync_control"] = self.sync_control
        return doc


@dataclass(frozen=True, slots=True)
class Slot:
    nonce: bytes
    ciphertext: bytes
    salt: bytes = b""


@dataclass(frozen=True, slots=True)
class VaultHeader:
    vault_id: str
    created_at: str
    kdf: KdfParams
    kdf_salt: bytes
    keychain_bound: bool
    slots: dict[str, Slot] = field(default_factory=dict)
    mac: bytes = b""
    format_version: int = FORMAT_VERSION
    account: AccountLink | None = None
    lease_days: int | None = None
    device: DeviceState = DeviceState()
    mac_locked: bytes = b""
    practice_order_key: bytes | None = None  # the practice owner's order key, if any

    @property
    def device_locked(self) -> bool:
        """A remote lock order is in effect (the passphrase no longer opens the vault)."""
        mark = self.device.remote_lock
        return mark is not None and mark.action == "lock"

    @property
    def wiped(self) -> bool:
        """A remote wipe order was carried out (or started: finish it)."""
        mark = self.device.remote_lock
        return mark is not None and mark.action == "wipe"

    def with_device(self, **changes: Any) -> VaultHeader:
        return replace(self, device=replace(self.device, **changes))

    def with_slot(self, name: str, slot: Slot) -> VaultHeader:
        return replace(self, slots={**self.slots, name: slot})

    def without_slot(self, name: str) -> VaultHeader:
        return replace(self, slots={k: v for k, v in self.slots.items() if k != name})

    def slot_aad(self, name: str) -> bytes:
        """Associated data that binds a wrapped key to this header's identity."""
        bound: dict[str, Any] = {
            "magic": MAGIC,
            "format_version": self.format_version,
            "vault_id": self.vault_id,
            "slot": name,
        }
        if name == SLOT_PASSPHRASE:
            bound["kdf"] = self.kdf.to_dict()
            bound["kdf_salt"] = _b64(self.kdf_salt)
            bound["keychain_bound"] = self.keychain_bound
        return _canonical(bound)

    def signed_bytes(self) -> bytes:
        """Everything the header MAC covers (all but the MAC and checksum)."""
        body = self._body()
        return _canonical(body)

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "magic": MAGIC,
            "format_version": self.format_version,
            "vault_id": self.vault_id,
            "created_at": self.created_at,
            "keychain_bound": self.keychain_bound,
            "kdf": {**self.kdf.to_dict(), "salt": _b64(self.kdf_salt)},
            "slots": {name: _slot_dict(slot) for name, slot in sorted(self.slots.items())},
        }
        # Only when set, so a header from before remote lock MACs exactly as it did.
        if self.account is not None:
            body["account"] = {
                "account_id": self.account.account_id,
                "device_id": self.account.device_id,
                "signing_public_key": _b64(self.account.signing_public_key),
            }
        if self.lease_days is not None:
            body["lease_days"] = self.lease_days
        if self.practice_order_key is not None:
            body["practice_order_key"] = _b64(self.practice_order_key)
        return body

    def _locked_bytes(self) -> bytes:
        return LOCKED_MAC_DOMAIN + self.without_slot(SLOT_PASSPHRASE).signed_bytes()

    def seal(self, mac_key: SymmetricKey) -> VaultHeader:
        return replace(
            self,
            mac=crypto.mac(mac_key, self.signed_bytes()),
            mac_locked=crypto.mac(mac_key, self._locked_bytes()),
        )

    def mac_ok(self, mac_key: SymmetricKey) -> bool:
        if crypto.mac_ok(mac_key, self.signed_bytes(), self.mac):
            return True
        # A remote lock removed the passphrase slot while no key was at hand.
        return (
            SLOT_PASSPHRASE not in self.slots
            and bool(self.mac_locked)
            and crypto.mac_ok(mac_key, self._locked_bytes(), self.mac_locked)
        )

    def encode(self) -> bytes:
        doc = self._body()
        doc["mac"] = _b64(self.mac)
        if self.mac_locked:
            doc["mac_locked"] = _b64(self.mac_locked)
        state = self.device.to_dict()
        if state:
            doc["device_state"] = state
        doc["checksum"] = crypto.sha256(_canonical(doc)).hex()
        return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def _slot_dict(slot: Slot) -> dict[str, str]:
    d = {"nonce": _b64(slot.nonce), "ciphertext": _b64(slot.ciphertext)}
    if slot.salt:
        d["salt"] = _b64(slot.salt)
    return d


def _mark_dict(mark: OrderMark) -> dict[str, str]:
    return {
        "order_id": mark.order_id,
        "action": mark.action,
        "issued_at": mark.issued_at,
        "applied_at": mark.applied_at,
    }


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise IntegrityError("vault header has a malformed field")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("vault header has a malformed field") from None


def _get(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise IntegrityError(f"vault header field '{key}' is missing or malformed")
    return value


def _text(doc: dict[str, Any], key: str) -> str:
    value = _get(doc, key, str)
    if len(value) > _MAX_TEXT:
        raise IntegrityError(f"vault header field '{key}' is too long")
    return str(value)


def _opt_text(doc: dict[str, Any], key: str) -> str | None:
    return _text(doc, key) if key in doc else None


def _decode_mark(doc: object) -> OrderMark:
    if not isinstance(doc, dict):
        raise IntegrityError("vault header has a malformed order mark")
    mark = OrderMark(
        order_id=_text(doc, "order_id"),
        action=_text(doc, "action"),
        issued_at=_text(doc, "issued_at"),
        applied_at=_text(doc, "applied_at"),
    )
    if mark.action not in ORDER_ACTIONS:
        raise IntegrityError("vault header has an unknown order action")
    return mark


def _decode_account(doc: object) -> AccountLink:
    if not isinstance(doc, dict):
        raise IntegrityError("vault header has a malformed account link")
    return AccountLink(
        account_id=_text(doc, "account_id"),
        device_id=_text(doc, "device_id"),
        signing_public_key=_unb64(doc.get("signing_public_key")),
    )


def _decode_state(doc: object) -> DeviceState:
    if not isinstance(doc, dict):
        raise IntegrityError("vault header has a malformed device state")
    notes_doc = doc.get("pending_audit", [])
    if not isinstance(notes_doc, list) or len(notes_doc) > MAX_PENDING_AUDIT:
        raise IntegrityError("vault header has malformed pending audit notes")
    notes: list[PendingAuditNote] = []
    for note in notes_doc:
        if not isinstance(note, dict):
            raise IntegrityError("vault header has malformed pending audit notes")
        notes.append(
            PendingAuditNote(_text(note, "action"), _text(note, "detail"), _text(note, "at"))
        )
    return DeviceState(
        remote_lock=_decode_mark(doc["remote_lock"]) if "remote_lock" in doc else None,
        last_order=_decode_mark(doc["last_order"]) if "last_order" in doc else None,
        last_checkin=_opt_text(doc, "last_checkin"),
        max_seen=_opt_text(doc, "max_seen"),
        pending_audit=tuple(notes),
        sync_control=_sync_control(doc),
    )


def _sync_control(doc: dict[str, Any]) -> str | None:
    if "sync_control" not in doc:
        return None
    value = _get(doc, "sync_control", str)
    if len(value) > MAX_SYNC_CONTROL:
        raise IntegrityError("vault header field 'sync_control' is too long")
    return str(value)


def decode(data: bytes) -> VaultHeader:
    """Parse and checksum-verify a header. Raises IntegrityError or
    UnsupportedVersionError; never anything else."""
    if len(data) > MAX_HEADER_BYTES:
        raise IntegrityError("vault header is too large")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IntegrityError("vault header is corrupt (not valid JSON)") from None
    if not isinstance(doc, dict) or doc.get("magic") != MAGIC:
        raise IntegrityError("this is not a Tacit vault header")
    version = _get(doc, "format_version", int)
    if version != FORMAT_VERSION:
        if version > FORMAT_VERSION:
            raise UnsupportedVersionError(
                f"vault format {version} is newer than this Tacit supports ({FORMAT_VERSION})"
            )
        raise UnsupportedVersionError(f"unknown vault format version {version}")
    checksum = _get(doc, "checksum", str)
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    if not crypto.constant_time_equal(
        crypto.sha256(_canonical(rest)).hex().encode(), checksum.encode()
    ):
        raise IntegrityError("vault header is corrupt (checksum mismatch)")
    kdf_doc = _get(doc, "kdf", dict)
    kdf = KdfParams(
        algorithm=_get(kdf_doc, "algorithm", str),
        version=_get(kdf_doc, "version", int),
        memory_kib=_get(kdf_doc, "memory_kib", int),
        iterations=_get(kdf_doc, "iterations", int),
        parallelism=_get(kdf_doc, "parallelism", int),
    )
    slots: dict[str, Slot] = {}
    for name, slot_doc in _get(doc, "slots", dict).items():
        if not isinstance(slot_doc, dict):
            raise IntegrityError("vault header has a malformed key slot")
        slots[name] = Slot(
            nonce=_unb64(slot_doc.get("nonce")),
            ciphertext=_unb64(slot_doc.get("ciphertext")),
            salt=_unb64(slot_doc["salt"]) if "salt" in slot_doc else b"",
        )
    practice_order_key: bytes | None = None
    if "practice_order_key" in doc:
        practice_order_key = _unb64(doc["practice_order_key"])
        if len(practice_order_key) != PUBLIC_KEY_BYTES:
            raise IntegrityError("vault header has a malformed practice order key")
    lease_days: int | None = None
    if "lease_days" in doc:
        lease_days = _get(doc, "lease_days", int)
        if not 1 <= lease_days <= 3650:
            raise IntegrityError("vault header has an invalid offline lease")
    return VaultHeader(
        format_version=version,
        vault_id=_get(doc, "vault_id", str),
        created_at=_get(doc, "created_at", str),
        kdf=kdf,
        kdf_salt=_unb64(kdf_doc.get("salt")),
        keychain_bound=_get(doc, "keychain_bound", bool),
        slots=slots,
        mac=_unb64(doc.get("mac")),
        account=_decode_account(doc["account"]) if "account" in doc else None,
        lease_days=lease_days,
        device=_decode_state(doc["device_state"]) if "device_state" in doc else DeviceState(),
        mac_locked=_unb64(doc["mac_locked"]) if "mac_locked" in doc else b"",
        practice_order_key=practice_order_key,
    )


def read(path: Path) -> VaultHeader:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VaultMissingError() from None
    except OSError as exc:
        raise IntegrityError(f"vault header cannot be read: {exc.strerror}") from None
    return decode(data)


def write(path: Path, header: VaultHeader) -> None:
    atomic_write(path, header.encode())
