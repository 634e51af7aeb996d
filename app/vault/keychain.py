"""The device secret in the OS keychain (Secret Service, macOS Keychain, Windows
Credential Manager, through ``keyring``).

The passphrase slot's key is derived from the passphrase *and* this random per-vault
secret, so a copy of the vault files alone is not enough to guess passphrases offline:
the attacker also needs the keychain entry. Where no keychain exists the vault still
works, with binding off, and ``tacit status`` says so.

Invariant: the secret is only ever stored in the keychain; nothing here logs it or puts
it in an exception message.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Protocol

from app.vault.crypto import DeviceSecret

if TYPE_CHECKING:
    import keyring.backend

SERVICE = "tacit"


def _account(vault_id: str) -> str:
    return f"vault-device-secret:{vault_id}"


class Keychain(Protocol):
    """Where device secrets live. Implementations swallow backend failures into
    ``None``/``False`` so a broken keychain never blocks the recovery path."""

    def available(self) -> bool: ...

    def load(self, vault_id: str) -> DeviceSecret | None: ...

    def store(self, vault_id: str, secret: DeviceSecret) -> bool: ...

    def delete(self, vault_id: str) -> None: ...


# The keyring backends that are an OS keychain (Secret Service, macOS Keychain, Windows
# Credential Manager, KWallet). keyring can also be set up (keyrings.alt installed, a
# keyringrc.cfg, PYTHON_KEYRING_BACKEND) with a backend that writes a plaintext file;
# anything not listed here counts as "no keychain", so the token stays inside the vault.
OS_KEYCHAIN_BACKENDS = (
    "keyring.backends.SecretService", "keyring.backends.libsecret", "keyring.backends.macOS",
    "keyring.backends.Windows", "keyring.backends.kwallet",
)  # fmt: skip


def is_os_keychain(backend: object) -> bool:
    """Whether a keyring backend keeps secrets in the OS keychain (a chain of backends
    only if every one of them does)."""
    name = type(backend).__module__
    if name == "keyring.backends.chainer":
        chained = list(getattr(backend, "backends", None) or ())
        return bool(chained) and all(is_os_keychain(b) for b in chained)
    return any(name == m or name.startswith(m + ".") for m in OS_KEYCHAIN_BACKENDS)


def describe_backend() -> tuple[str, bool]:
    """The configured keyring backend's name and whether it counts as an OS keychain,
    for ``tacit selftest``: names only; nothing is read from it or stored in it."""
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception:
        return "keyring failed to load", False
    chained = getattr(backend, "backends", None) or ()
    name = type(backend).__module__.removeprefix("keyring.backends.")
    if chained:
        name += " (" + ", ".join(type(b).__module__.split(".")[-1] for b in chained) + ")"
    return name, is_os_keychain(backend)


class OsKeychain:
    """The platform keychain through ``keyring``'s configured backend."""

    def _backend(self) -> keyring.backend.KeyringBackend | None:
        try:
            import keyring  # imported on first use: it costs ~70 ms at start-up

            backend = keyring.get_keyring()
        except Exception:  # a misconfigured backend must not stop the app
            return None
        # Only a real OS keychain counts: a backend that writes a plaintext file (or
        # the fail/null ones) means "no keychain here" (is_os_keychain).
        return backend if is_os_keychain(backend) else None

    def available(self) -> bool:
        return self._backend() is not None

    def load(self, vault_id: str) -> DeviceSecret | None:
        backend = self._backend()
        if backend is None:
            return None
        try:
            value = backend.get_password(SERVICE, _account(vault_id))
        except Exception:
            return None
        if value is None:
            return None
        try:
            return DeviceSecret(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            return None

    def store(self, vault_id: str, secret: DeviceSecret) -> bool:
        backend = self._backend()
        if backend is None:
            return False
        encoded = base64.b64encode(secret.reveal()).decode("ascii")
        try:
            backend.set_password(SERVICE, _account(vault_id), encoded)
            # Read it back: some backends accept a write and lose it.
            return backend.get_password(SERVICE, _account(vault_id)) == encoded
        except Exception:
            return False

    def delete(self, vault_id: str) -> None:
        backend = self._backend()
        if backend is None:
            return
        try:
            backend.delete_password(SERVICE, _account(vault_id))
        except Exception:  # already gone, or keychain locked: nothing else to do
            return


class NoKeychain:
    """A machine without a keychain: binding off."""

    def available(self) -> bool:
        return False

    def load(self, vault_id: str) -> DeviceSecret | None:
        return None

    def store(self, vault_id: str, secret: DeviceSecret) -> bool:
        return False

    def delete(self, vault_id: str) -> None:
        return None


class MemoryKeychain:
    """An in-process keychain for tests and benchmarks."""

    def __init__(self) -> None:
        self._items: dict[str, bytes] = {}

    def available(self) -> bool:
        return True

    def load(self, vault_id: str) -> DeviceSecret | None:
        raw = self._items.get(vault_id)
        return DeviceSecret(raw) if raw is not None else None

    def store(self, vault_id: str, secret: DeviceSecret) -> bool:
        self._items[vault_id] = secret.reveal()
        return True

    def delete(self, vault_id: str) -> None:
        self._items.pop(vault_id, None)
