"""Account key material and session storage on this device.

What it owns:
- the account KDF parameters: fresh ones at sign-up (calibrated like a vault's, never
  below the production floor; tiny only under ``TACIT_INSECURE_TEST_KDF=1``), and the
  client's own floor on what a server hands out at login (a malicious server must not
  be able to make us derive a cheaply guessable login key);
- where the session lives: the refresh token in the OS keychain through ``keyring``
  (service ``tacit``, account ``sync-refresh:<vault id>``) when one works, otherwise
  inside the vault (SQLCipher, ``meta``); the short-lived access token inside the vault.
  Never in a plaintext file: a keyring backend that is not an OS keychain (e.g.
  keyrings.alt's file backends) counts as none.

Everything else the account needs (server URL, username, account id, KDF parameters,
the master key and the device key) is kept inside the vault too: encrypted at rest, and
available whenever the vault is unlocked, so sync can run without asking for the account
password (docs/SECURITY.md, "Sync").
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from app.sync import protocol
from app.sync.client import Session
from app.vault import crypto
from app.vault.crypto import KdfParams
from app.vault.keychain import is_os_keychain
from app.vault.syncstore import SyncStore

if TYPE_CHECKING:
    import keyring.backend

KEYCHAIN_SERVICE = "tacit"


def keychain_account(vault_id: str) -> str:
    return f"sync-refresh:{vault_id}"


def new_kdf() -> tuple[KdfParams, bytes]:
    """Parameters and a random salt for a new account."""
    return crypto.new_creation_params(), crypto.random_bytes(crypto.SALT_BYTES)


def kdf_to_wire(params: KdfParams, salt: bytes) -> protocol.KdfParams:
    return {
        "algorithm": "argon2id", "version": params.version, "memory_kib": params.memory_kib,
        "iterations": params.iterations, "parallelism": params.parallelism,
        "salt": protocol.b64encode(salt),
    }  # fmt: skip


MAX_KDF_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB: sixteen times the floor
MAX_KDF_PARALLELISM = 16


def _wire_int(doc: Any, key: str) -> int:
    """A JSON integer, exactly: not a bool, not a float (``int()`` would truncate 1.9,
    take ``true`` for 1 and raise OverflowError on the ``Infinity`` Python's json
    module accepts; found by the soak fuzzing)."""
    value = doc[key]
    if type(value) is not int:
        raise ValueError(f"{key}: not an integer")
    return value


def _wire_str(doc: Any, key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise ValueError(f"{key}: not a string")
    return value


def kdf_from_wire(doc: Any) -> tuple[KdfParams, bytes]:
    """Parse and check what a server says. Raises KdfTooWeakError below this client's
    floor, InvalidRequestError on anything malformed."""
    try:
        params = KdfParams(
            memory_kib=_wire_int(doc, "memory_kib"), iterations=_wire_int(doc, "iterations"),
            parallelism=_wire_int(doc, "parallelism"), algorithm=_wire_str(doc, "algorithm"),
            version=_wire_int(doc, "version"),
        )  # fmt: skip
        salt = protocol.b64decode(_wire_str(doc, "salt"))
    except (KeyError, TypeError, ValueError):
        raise protocol.InvalidRequestError("the server sent malformed KDF parameters") from None
    # Upper bounds too: a server must not make this client run out of memory or spin.
    if (
        not params.at_least(crypto.kdf_floor())
        or params.iterations > 1000
        or params.memory_kib > MAX_KDF_MEMORY_KIB
        or params.parallelism > MAX_KDF_PARALLELISM
    ):
        raise protocol.KdfTooWeakError(
            "the server asks for key-derivation parameters outside this client's limits"
        )
    if not protocol.KDF_SALT_MIN_BYTES <= len(salt) <= protocol.KDF_SALT_MAX_BYTES:
        raise protocol.InvalidRequestError("the server sent a malformed KDF salt")
    return params, salt


class _Keyring:
    """The OS keychain through keyring (the pattern of app.vault.keychain.OsKeychain):
    failures mean "no keychain", never an error; so does a backend that is not an OS
    keychain (``is_os_keychain``)."""

    def _backend(self) -> keyring.backend.KeyringBackend | None:
        try:
            import keyring

            backend = keyring.get_keyring()
        except Exception:
            return None
        return backend if is_os_keychain(backend) else None

    def get(self, account: str) -> str | None:
        backend = self._backend()
        if backend is None:
            return None
        try:
            return backend.get_password(KEYCHAIN_SERVICE, account)
        except Exception:
            return None

    def set(self, account: str, value: str) -> bool:
        backend = self._backend()
        if backend is None:
            return False
        try:
            backend.set_password(KEYCHAIN_SERVICE, account, value)
            return backend.get_password(KEYCHAIN_SERVICE, account) == value
        except Exception:
            return False

    def delete(self, account: str) -> None:
        backend = self._backend()
        if backend is None:
            return
        try:
            backend.delete_password(KEYCHAIN_SERVICE, account)
        except Exception:
            return


class SessionStore:
    """Load and save the tokens of this vault's sync session."""

    def __init__(self, store: SyncStore, *, keychain: _Keyring | None = None) -> None:
        self._store = store
        self._keychain = keychain or _Keyring()
        self._account = keychain_account(store.vault_id)

    def where(self) -> str | None:
        """``keychain`` or ``vault`` (where the refresh token is), or None."""
        return self._store.get("refresh_in")

    def load(self) -> Session | None:
        raw = self._store.get("session")
        if raw is None:
            return None
        doc = json.loads(raw)
        if self.where() == "keychain":
            refresh = self._keychain.get(self._account)
        else:
            refresh = self._store.get("refresh_token")
        if refresh is None:
            return None
        return Session(str(doc["access_token"]), int(doc["access_expires_ms"]), refresh,
                       int(doc["refresh_expires_ms"]))  # fmt: skip

    def save(self, session: Session) -> None:
        in_keychain = self._keychain.set(self._account, session.refresh_token)
        doc = {"access_token": session.access_token,
               "access_expires_ms": session.access_expires_ms,
               "refresh_expires_ms": session.refresh_expires_ms}  # fmt: skip
        self._store.put({
            "session": json.dumps(doc),
            "refresh_in": "keychain" if in_keychain else "vault",
            "refresh_token": None if in_keychain else session.refresh_token,
        })  # fmt: skip

    def clear(self) -> None:
        self._keychain.delete(self._account)
        self._store.put({"session": None, "refresh_in": None, "refresh_token": None})
