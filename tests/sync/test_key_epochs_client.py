"""``SyncService.new_key_epoch`` and the sign-in side of key epochs, against a fake
transport: the password is checked first, the epoch number follows the server's list
(retrying after another device took one), the key is derived from the password and the
epoch's own salt, and signing in learns every epoch and pulls again what was refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app.errors import WrongPassphraseError
from app.sync import protocol
from app.sync.account import kdf_from_wire, kdf_to_wire
from app.sync.client import Session
from app.sync.engine import NEEDS_PASSWORD
from app.sync.service import SyncService
from app.vault import crypto
from app.vault.crypto import INSECURE_TEST_PARAMS, Passphrase
from app.vault.service import VaultService

PASSWORD = "orbit violet lantern 77 cascade"


class FakeEpochServer:
    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.steal_next = False  # another device registers the next number first

    def __call__(self, url: str, **_kw: Any) -> FakeEpochServer:
        return self

    def __enter__(self) -> FakeEpochServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def close(self) -> None:
        return None

    def key_epochs(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.epochs]

    def add_key_epoch(self, epoch: int, kdf: protocol.KdfParams) -> dict[str, Any]:
        if self.steal_next:
            self.steal_next = False
            self._add(epoch, _other_kdf())
        if epoch != len(self.epochs) + 2:
            raise protocol.EpochConflictError("that epoch exists")
        return {**self._add(epoch, kdf), "sessions_ended": 3}

    def _add(self, epoch: int, kdf: protocol.KdfParams) -> dict[str, Any]:
        entry = {"epoch": epoch, "kdf": kdf, "created_at": "2026-11-29T10:00:00.000Z"}
        self.epochs.append(entry)
        return entry


def _other_kdf() -> protocol.KdfParams:
    return kdf_to_wire(INSECURE_TEST_PARAMS, b"o" * 16)


@pytest.fixture
def fake() -> FakeEpochServer:
    return FakeEpochServer()


@pytest.fixture
def sync(service: VaultService, fake: FakeEpochServer) -> Iterator[SyncService]:
    svc = SyncService(service, transport_factory=fake)  # type: ignore[arg-type]
    salt = b"a" * 16
    master, _login = crypto.derive_account_keys(
        Passphrase.from_str(PASSWORD), salt, INSECURE_TEST_PARAMS
    )
    svc.store.put({"server": "https://sync.example.org", "account_id": "acc-1",
                   "kdf": json.dumps(kdf_to_wire(INSECURE_TEST_PARAMS, salt)),
                   "master_key": master.hex()})  # fmt: skip
    svc.sessions.save(Session("access", 2**62, "refresh", 2**62))
    svc._engine_for_keys().ensure_items_key()
    yield svc
    svc.close()


def test_a_wrong_password_makes_no_epoch(sync: SyncService, fake: FakeEpochServer) -> None:
    with pytest.raises(WrongPassphraseError):
        sync.new_key_epoch(Passphrase.from_str("not the account password 12"))
    assert fake.epochs == [] and sync._epochs() == {}


def test_a_new_epoch_wraps_the_new_items_key(sync: SyncService, fake: FakeEpochServer) -> None:
    made = sync.new_key_epoch(Passphrase.from_str(PASSWORD))
    assert made["epoch"] == 2 and made["generation"] == 1 and made["sessions_ended"] == 3
    (entry,) = fake.epochs
    params, salt = kdf_from_wire(entry["kdf"])
    assert salt != b"a" * 16  # a fresh salt, not the account's
    expected = crypto.derive_epoch_key(Passphrase.from_str(PASSWORD), salt, params)
    assert sync._epochs()[2].reveal() == expected.reveal()
    keys = sync._engine_for_keys().keys()
    assert keys[made["key_id"]].epoch == 2
    again = sync.new_key_epoch(Passphrase.from_str(PASSWORD))
    assert again["epoch"] == 3 and set(sync._epochs()) == {2, 3}


def test_another_device_taking_the_number_first_is_learned_then_passed(
    sync: SyncService, fake: FakeEpochServer
) -> None:
    fake.steal_next = True
    made = sync.new_key_epoch(Passphrase.from_str(PASSWORD))
    assert made["epoch"] == 3 and [e["epoch"] for e in fake.epochs] == [2, 3]
    other = crypto.derive_epoch_key(Passphrase.from_str(PASSWORD), b"o" * 16,
                                    INSECURE_TEST_PARAMS)  # fmt: skip
    assert sync._epochs()[2].reveal() == other.reveal()  # learned the other device's


def test_learning_epochs_pulls_again_what_needed_them(
    sync: SyncService, fake: FakeEpochServer
) -> None:
    fake._add(2, _other_kdf())
    sync.store.refuse("item-1", "items_key", NEEDS_PASSWORD)
    sync.store.refuse("item-2", "note", "malformed item")
    sync.store.put({"cursor": "c-42"})
    assert sync.learn_epochs(Passphrase.from_str(PASSWORD)) == 2
    assert 2 in sync._epochs()
    assert [r["item_id"] for r in sync.store.refused()] == ["item-2"]
    assert sync.store.get("cursor") is None
    # A server that lists a malformed epoch is refused, not trusted.
    fake.epochs.append({"epoch": "two", "kdf": {}, "created_at": "x"})
    with pytest.raises(protocol.ApiError):
        sync.learn_epochs(Passphrase.from_str(PASSWORD))
