"""The vault header: a small, versioned, self-describing envelope of key slots.

The header sits next to the database (``vault.header``) and holds the random DB key only
wrapped. Format (UTF-8 JSON, documented in docs/SECURITY.md):

    {"magic": "tacit-vault-header", "format_version": 1, "vault_id": UUID,
     "created_at": ISO-8601, "keychain_bound": bool,
     "kdf": {"algorithm", "version", "memory_kib", "iterations", "parallelism", "salt"},
     "slots": {"passphrase": {"nonce", "ciphertext"}, "recovery": {"salt", "nonce",
               "ciphertext"}},
     "mac": base64, "checksum": hex}

Integrity is layered so each failure has one honest name:
- ``checksum`` (SHA-256 over the rest) catches accidental corruption -> integrity_error
  before any key is derived;
- each slot is AEAD-wrapped with the header's identity, KDF parameters and binding as
  associated data, so a deliberate edit to them makes the slot refuse to open;
- ``mac`` (HMAC under a key derived from the DB key) authenticates the whole header once
  a slot has opened, so an edit to any other slot is caught too -> integrity_error.

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
        return {
            "magic": MAGIC,
            "format_version": self.format_version,
            "vault_id": self.vault_id,
            "created_at": self.created_at,
            "keychain_bound": self.keychain_bound,
            "kdf": {**self.kdf.to_dict(), "salt": _b64(self.kdf_salt)},
            "slots": {name: _slot_dict(slot) for name, slot in sorted(self.slots.items())},
        }

    def seal(self, mac_key: SymmetricKey) -> VaultHeader:
        return replace(self, mac=crypto.mac(mac_key, self.signed_bytes()))

    def mac_ok(self, mac_key: SymmetricKey) -> bool:
        return crypto.mac_ok(mac_key, self.signed_bytes(), self.mac)

    def encode(self) -> bytes:
        doc = self._body()
        doc["mac"] = _b64(self.mac)
        doc["checksum"] = crypto.sha256(_canonical(doc)).hex()
        return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def _slot_dict(slot: Slot) -> dict[str, str]:
    d = {"nonce": _b64(slot.nonce), "ciphertext": _b64(slot.ciphertext)}
    if slot.salt:
        d["salt"] = _b64(slot.salt)
    return d


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
    return VaultHeader(
        format_version=version,
        vault_id=_get(doc, "vault_id", str),
        created_at=_get(doc, "created_at", str),
        kdf=kdf,
        kdf_salt=_unb64(kdf_doc.get("salt")),
        keychain_bound=_get(doc, "keychain_bound", bool),
        slots=slots,
        mac=_unb64(doc.get("mac")),
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
