"""Shared test set-up.

- Qt runs headless (offscreen platform) everywhere.
- New vaults use tiny Argon2id parameters through the one switch the app honours
  (TACIT_INSECURE_TEST_KDF=1); ``test_kdf_floor`` checks the production floor separately.
- No test touches the developer's real keychain: ``keyring`` is pointed at its null
  backend, and tests that want a keychain pass a MemoryKeychain (or, in the keychain
  tests, a real Secret Service on a private D-Bus session).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["TACIT_INSECURE_TEST_KDF"] = "1"
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService

PASSPHRASE = "correct horse battery staple 42"


@pytest.fixture
def passphrase() -> Passphrase:
    return Passphrase.from_str(PASSPHRASE)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def keychain() -> MemoryKeychain:
    return MemoryKeychain()


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def service(
    vault_dir: Path, clock: ManualClock, keychain: MemoryKeychain
) -> Iterator[VaultService]:
    """A fresh, unlocked vault."""
    svc = VaultService(vault_dir, clock=clock, keychain=keychain)
    svc.create(Passphrase.from_str(PASSPHRASE))
    yield svc
    svc.lock()
