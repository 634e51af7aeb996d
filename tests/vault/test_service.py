"""VaultService: lifecycle, key slots, tampering, the idle state machine and events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from app.errors import (
    DeviceSecretMissingError,
    IntegrityError,
    InvalidInputError,
    VaultExistsError,
    VaultLockedError,
    VaultMissingError,
    WeakKdfError,
    WeakPassphraseError,
    WrongPassphraseError,
    WrongRecoveryKeyError,
)
from app.vault import crypto, hardening
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain, NoKeychain
from app.vault.models import LockReason, LockState, RecordChanged, VaultLocked, VaultUnlocked
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE

NEW_PASSPHRASE = "violet lantern orbit 77 cascade"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(vault_dir: Path) -> dict[str, str]:
    """The vault's data: everything but the note of failed unlocks (timestamps only,
    kept for the audit trail until the next unlock)."""
    return {
        p.name: digest(p)
        for p in sorted(vault_dir.iterdir())
        if p.is_file() and p.name != "vault.failures"
    }


def reopen(svc: VaultService, **kw: object) -> VaultService:
    svc.lock()
    return VaultService(svc.paths.directory, clock=svc.clock, keychain=svc.keychain, **kw)  # type: ignore[arg-type]


def test_create_unlock_lock_round_trip(service: VaultService, passphrase: Passphrase) -> None:
    client = service.add_client("Ada Canary", dob="1980-02-03", email="ada@example.org")
    note = service.create_note(client.id, "soap", body="Sleeps badly since the move.")
    assert service.state is LockState.UNLOCKED
    service.lock()
    assert service.state is LockState.LOCKED
    with pytest.raises(VaultLockedError):
        service.get_note(note.id)
    service.unlock(passphrase)
    again = service.get_note(note.id)
    assert again.body == "Sleeps badly since the move."
    assert service.get_client(client.id).dob == "1980-02-03"


def test_new_vault_files_and_permissions(service: VaultService) -> None:
    service.lock()
    names = {p.name for p in service.paths.directory.iterdir()}
    assert names == {"vault.header", "vault.db"}
    assert service.paths.directory.stat().st_mode & 0o777 == 0o700
    assert service.paths.header.stat().st_mode & 0o777 == 0o600


def test_database_is_encrypted(service: VaultService) -> None:
    service.add_client("Plaintext Probe")
    service.lock()
    raw = service.paths.database.read_bytes()
    assert not raw.startswith(b"SQLite format 3")
    assert b"Plaintext Probe" not in raw


def test_create_twice_refused(service: VaultService, passphrase: Passphrase) -> None:
    with pytest.raises(VaultExistsError):
        VaultService(service.paths.directory, keychain=NoKeychain()).create(passphrase)


def test_weak_passphrase_refused(vault_dir: Path) -> None:
    svc = VaultService(vault_dir, keychain=NoKeychain())
    for weak in ("short", "password1234", "aaaaaaaaaaaaaaaa"):
        with pytest.raises(WeakPassphraseError):
            svc.create(Passphrase.from_str(weak))
    assert not vault_dir.exists() or not any(vault_dir.iterdir())


def test_missing_vault(tmp_path: Path, passphrase: Passphrase) -> None:
    with pytest.raises(VaultMissingError):
        VaultService(tmp_path / "nothing", keychain=NoKeychain()).unlock(passphrase)


def test_wrong_passphrase_leaves_files_untouched(service: VaultService) -> None:
    service.add_client("Someone")
    service.lock()
    before = files(service.paths.directory)
    with pytest.raises(WrongPassphraseError) as err:
        service.unlock(Passphrase.from_str("not the right passphrase at all"))
    assert err.value.exit_status == 3
    assert files(service.paths.directory) == before
    assert service.state is LockState.LOCKED
    assert (service.paths.directory / "vault.failures").exists()


def test_change_passphrase_rewraps_without_reencrypting(service: VaultService) -> None:
    client = service.add_client("Bea")
    note = service.create_note(client.id, "dap", body="Data: calm today.")
    for i in range(30):
        service.create_note(client.id, "free", body=f"filler {i} " * 200)
    service.lock()
    before = service.paths.database.read_bytes()
    service.unlock(Passphrase.from_str(PASSPHRASE))
    key_before = service._db_key.hex()  # type: ignore[union-attr]
    service.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    assert service._db_key.hex() == key_before  # type: ignore[union-attr]
    service.lock()
    after = service.paths.database.read_bytes()
    # Not re-encrypted: the same file salt, and every page but the few the audit
    # entries (unlock, passphrase change, lock) touched is byte-for-byte the same.
    assert after[:16] == before[:16]
    pages = range(0, len(before), 4096)
    changed = [i for i in pages if before[i : i + 4096] != after[i : i + 4096]]
    assert len(changed) <= 5 < len(pages) // 2
    with pytest.raises(WrongPassphraseError):
        service.unlock(Passphrase.from_str(PASSPHRASE))
    service.unlock(Passphrase.from_str(NEW_PASSPHRASE))
    assert service.get_note(note.id).body == "Data: calm today."


def test_change_passphrase_refuses_weak(service: VaultService) -> None:
    header_before = digest(service.paths.header)
    with pytest.raises(WeakPassphraseError):
        service.change_passphrase(Passphrase.from_str("weakweak"))
    assert digest(service.paths.header) == header_before


def test_recovery_key_then_new_passphrase(vault_dir: Path, keychain: MemoryKeychain) -> None:
    svc = VaultService(vault_dir, keychain=keychain)
    recovery = svc.create(Passphrase.from_str(PASSPHRASE))
    cid = svc.add_client("Cal").id
    svc.lock()
    with pytest.raises(WrongRecoveryKeyError):
        svc.unlock_with_recovery_key("TACIT-" + "0000-" * 13 + "0000")
    svc.unlock_with_recovery_key(recovery)
    svc.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    svc.lock()
    with pytest.raises(WrongPassphraseError):
        svc.unlock(Passphrase.from_str(PASSPHRASE))
    svc.unlock(Passphrase.from_str(NEW_PASSPHRASE))
    assert svc.get_client(cid).name == "Cal"
    svc.lock()
    svc.unlock_with_recovery_key(recovery)  # the recovery key keeps working
    svc.lock()


def test_keychain_binding(vault_dir: Path, keychain: MemoryKeychain) -> None:
    svc = VaultService(vault_dir, keychain=keychain)
    recovery = svc.create(Passphrase.from_str(PASSPHRASE))
    assert svc.status()["keychain_bound"] is True
    svc.lock()
    # The passphrase alone (a copy of the files on another machine) is not enough.
    other_machine = VaultService(vault_dir, keychain=MemoryKeychain())
    with pytest.raises(DeviceSecretMissingError) as err:
        other_machine.unlock(Passphrase.from_str(PASSPHRASE))
    assert err.value.code == "device_secret_missing"
    # The recovery key still opens it, and setting a passphrase re-binds to that keychain.
    other_machine.unlock_with_recovery_key(recovery)
    other_machine.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    other_machine.lock()
    other_machine.unlock(Passphrase.from_str(NEW_PASSPHRASE))
    assert other_machine.status()["keychain_bound"] is True
    other_machine.lock()


def test_no_keychain_means_binding_off(vault_dir: Path) -> None:
    svc = VaultService(vault_dir, keychain=NoKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    status = svc.status()
    assert status["keychain_bound"] is False
    assert status["keychain_available"] is False
    svc.lock()


def test_weak_kdf_refused_without_the_test_switch(
    service: VaultService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.lock()
    monkeypatch.delenv(crypto.INSECURE_TEST_KDF_ENV)
    with pytest.raises(WeakKdfError) as err:
        service.unlock(Passphrase.from_str(PASSPHRASE))
    assert err.value.exit_status == 5


def test_header_tamper_detected(service: VaultService) -> None:
    service.lock()
    raw = bytearray(service.paths.header.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    service.paths.header.write_bytes(bytes(raw))
    before = files(service.paths.directory)
    with pytest.raises(IntegrityError):
        service.unlock(Passphrase.from_str(PASSPHRASE))
    assert files(service.paths.directory) == before


def test_unknown_format_version(service: VaultService) -> None:
    service.lock()
    doc = json.loads(service.paths.header.read_bytes())
    doc["format_version"] = 2
    service.paths.header.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError) as err:
        service.unlock(Passphrase.from_str(PASSPHRASE))
    assert err.value.code in ("unsupported_version", "integrity_error")


def _fill(service: VaultService, n: int = 40) -> None:
    cid = service.add_client("Filler").id
    for i in range(n):
        service.create_note(cid, "soap", body=f"entry {i} " + "lorem ipsum dolor " * 40)


@pytest.mark.parametrize("page", [0, 1, 2, 5, -1])
def test_flipped_byte_in_database_detected(service: VaultService, page: int) -> None:
    _fill(service)
    service.lock()
    db = service.paths.database
    raw = bytearray(db.read_bytes())
    pages = len(raw) // 4096
    offset = (page % pages) * 4096 + 2000
    raw[offset] ^= 0x40
    db.write_bytes(bytes(raw))
    tampered = digest(db)
    try:
        service.unlock(Passphrase.from_str(PASSPHRASE))
    except IntegrityError:
        assert digest(db) == tampered
        return
    problems = service.check()
    service.lock()
    assert problems, "a flipped byte went unnoticed"
    assert digest(db) == tampered


def test_swapped_database_from_another_vault(tmp_path: Path) -> None:
    a = VaultService(tmp_path / "a", keychain=NoKeychain())
    a.create(Passphrase.from_str(PASSPHRASE))
    a.lock()
    b = VaultService(tmp_path / "b", keychain=NoKeychain())
    b.create(Passphrase.from_str(PASSPHRASE))
    b.lock()
    (tmp_path / "a" / "vault.db").write_bytes((tmp_path / "b" / "vault.db").read_bytes())
    with pytest.raises(IntegrityError):
        a.unlock(Passphrase.from_str(PASSPHRASE))


def test_truncated_database(service: VaultService) -> None:
    _fill(service, 10)
    service.lock()
    raw = service.paths.database.read_bytes()
    service.paths.database.write_bytes(raw[:100])
    with pytest.raises(IntegrityError):
        service.unlock(Passphrase.from_str(PASSPHRASE))


def test_interrupted_create_leaves_no_half_vault(vault_dir: Path) -> None:
    vault_dir.mkdir(mode=0o700)
    (vault_dir / "vault.db.creating").write_bytes(b"leftover from a crash")
    svc = VaultService(vault_dir, keychain=NoKeychain())
    assert not svc.exists()
    svc.create(Passphrase.from_str(PASSPHRASE))  # the leftover is replaced
    svc.lock()
    assert not (vault_dir / "vault.db.creating").exists()
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    svc.lock()


def test_events_are_typed(service: VaultService, passphrase: Passphrase) -> None:
    seen: list[object] = []
    unsubscribe = service.subscribe(seen.append)
    cid = service.add_client("Eve").id
    service.lock()
    service.unlock(passphrase)
    unsubscribe()
    service.lock()
    assert seen[0] == RecordChanged("client", cid)
    assert seen[1] == VaultLocked(LockReason.USER)
    assert isinstance(seen[2], VaultUnlocked)
    assert len(seen) == 3


def test_idle_state_machine(service: VaultService, clock: ManualClock) -> None:
    events: list[object] = []
    service.subscribe(events.append)
    service.idle_timeout = 120
    clock.advance(100)
    assert not service.check_idle()
    service.record_activity()
    clock.advance(100)
    assert not service.check_idle()  # activity reset the timer
    assert service.idle_remaining() == pytest.approx(20)
    clock.advance(20)
    assert service.check_idle()
    assert service.state is LockState.LOCKED
    assert events[-1] == VaultLocked(LockReason.IDLE)
    assert not service.check_idle()  # already locked: nothing more


def test_idle_timeout_bounds(service: VaultService) -> None:
    assert service.idle_timeout == 300  # five minutes by default
    for bad in (0, 59, 3601):
        with pytest.raises(InvalidInputError):
            service.idle_timeout = bad
    service.idle_timeout = 60
    service.idle_timeout = 3600


def test_lock_is_idempotent_and_wipes_the_key(service: VaultService) -> None:
    key = service._db_key
    assert key is not None and not key.wiped
    service.lock()
    service.lock()
    assert key.wiped


def test_every_record_method_refuses_when_locked(service: VaultService) -> None:
    service.lock()
    calls = [
        lambda: service.add_client("x"),
        lambda: service.list_clients(),
        lambda: service.get_client("abcd"),
        lambda: service.list_notes(),
        lambda: service.get_note("abcd"),
        lambda: service.search("x"),
        lambda: service.note_history("abcd"),
        lambda: service.edit_note("abcd", body="x"),
        lambda: service.create_note("abcd", "soap"),
        lambda: service.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE)),
        lambda: service.check(),
    ]
    for call in calls:
        with pytest.raises(VaultLockedError):
            call()


def test_process_is_hardened_while_open(service: VaultService) -> None:
    state = hardening.status()
    assert state["core_dumps_off"] is True
    if state["dumpable"] is not None:
        assert state["dumpable"] is False


def test_status_facts(service: VaultService) -> None:
    status = service.status()
    assert status["format_version"] == 1
    assert set(status["kdf"]) == {"algorithm", "memory_kib", "iterations", "parallelism"}
    assert status["insecure_test_kdf"] is True
    assert status["clients"] == 0 and status["notes"] == 0


def test_failed_unlocks_are_counted_until_the_next_unlock(
    service: VaultService, passphrase: Passphrase
) -> None:
    service.lock()
    assert service.failed_unlocks() == 0
    for _ in range(3):
        with pytest.raises(WrongPassphraseError):
            service.unlock(Passphrase.from_str("wrong horse battery staple 42"))
    fresh = VaultService(service.paths.directory, keychain=service.keychain)
    assert fresh.failed_unlocks() == 3  # survives a restart of the app
    fresh.unlock(passphrase)
    fresh.lock()
    assert fresh.failed_unlocks() == 0
