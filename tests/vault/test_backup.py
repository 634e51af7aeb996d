"""Encrypted backups (app/vault/backup.py): round trips, damage and tampering, restore
safety, crash safety, and what never reaches a backup or a temp file."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.errors import (
    IntegrityError,
    InvalidInputError,
    StorageError,
    VaultExistsError,
    WeakPassphraseError,
    WrongPassphraseError,
    WrongRecoveryKeyError,
)
from app.vault import backup, backup_restore, crypto, header, keyslots
from app.vault.backup_restore import check_target, restore_backup, verify_backup
from app.vault.clock import ManualClock
from app.vault.crypto import DbKey, Passphrase, SymmetricKey
from app.vault.db import connect
from app.vault.keychain import MemoryKeychain, NoKeychain
from app.vault.practicestore import PracticeAuditRow, PracticeRow
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE

NEW_PASSPHRASE = "violet lantern orbit 77 cascade"
CANARIES = (
    "CANARYNAME4711",
    "canary-mail-4711@example.org",
    "CANARYBODY4711",
    "CANARYTITLE4711",
    "CANARYEDIT4711",
    "CANARYADDENDUM4711",
)
# The tables a restore must bring back row for row (audit: see _assert_same).
TABLES = (
    "clients",
    "notes",
    "note_revisions",
    "note_tags",
    "note_signatures",
    "addenda",
    "signers",
    "user_templates",
    "practice_state",
    "practice_keys",
    "practice_items",
    "practice_outbox",
    "practice_published",
    "practice_audit",
)


@dataclass
class Vault:
    svc: VaultService
    recovery: str
    keychain: MemoryKeychain
    clock: ManualClock

    @property
    def directory(self) -> Path:
        return self.svc.paths.directory


def _populate(svc: VaultService) -> None:
    """Clients, notes with revisions and tags, signed notes with addenda, and the audit
    entries all that leaves (views, lists, searches too)."""
    cid = svc.add_client(CANARIES[0], email=CANARIES[1], dob="1980-02-03").id
    other = svc.add_client("Second Client").id
    for i in range(12):
        note = svc.create_note(
            cid if i % 2 else other,
            "soap",
            title=f"{CANARIES[3]} {i}",
            body=f"{CANARIES[2]} session {i}\n" * 20,
            tags=["sleep"] if i % 3 else [],
        )
        if i % 4 == 0:
            svc.edit_note(note.id, body=f"{CANARIES[4]} rewritten {i}\n" * 10)
        if i % 3 == 0:
            svc.sign_note(note.id)
            svc.add_addendum(note.id, f"{CANARIES[5]} {i}")
        svc.get_note(note.id)
    svc.add_template("Own template", "progress", ["Part one", "Part two"])
    practice = svc.practice_store()  # practice mode's tables (schema 8) come back too
    practice.put({"membership": "active"})
    practice.put_key("collection-1", 1, SymmetricKey.generate())
    body = {"text": CANARIES[2]}
    practice.upsert_items([PracticeRow("collection-1", "item-1", "note", body, "a", "2026", 1, 1)])
    practice.enqueue("collection-1", "item-2", "note", {"text": CANARIES[3]}, "2026-01-02")
    practice.set_published("collection-1", "item-1", "digest")
    practice.add_audit([PracticeAuditRow("e1", "member", "view", "note", "r", None, "2026")])
    svc.search(CANARIES[2], audit=True)
    svc.list_notes(audit=True)
    svc.flush_audit()


@pytest.fixture
def vault(tmp_path: Path, clock: ManualClock, keychain: MemoryKeychain) -> Iterator[Vault]:
    svc = VaultService(tmp_path / "vault", clock=clock, keychain=keychain)
    recovery = svc.create(Passphrase.from_str(PASSPHRASE))
    _populate(svc)
    yield Vault(svc, recovery, keychain, clock)
    svc.lock()


@pytest.fixture
def original(vault: Vault) -> dict[str, list[Any]]:
    """The populated vault's tables just before the backup (read through a second
    connection while it is open; nothing is waiting to be written)."""
    return _tables(vault.directory, _db_key(vault.directory, PASSPHRASE, vault.keychain))


@pytest.fixture
def made(vault: Vault, tmp_path: Path, original: dict[str, list[Any]]) -> Path:
    """A backup of the populated vault (the vault is locked afterwards)."""
    report = backup.create_backup(vault.svc, tmp_path / "backups")
    vault.svc.lock()
    return report.file


def _db_key(directory: Path, passphrase: str, keychain: MemoryKeychain | NoKeychain) -> DbKey:
    hdr = header.read(directory / "vault.header")
    return keyslots.open_with_passphrase(hdr, Passphrase.from_str(passphrase), keychain)


def _tables(directory: Path, db_key: DbKey) -> dict[str, list[tuple[Any, ...]]]:
    conn = connect(directory / "vault.db", db_key, create=False)
    try:
        rows = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}  # noqa: S608
        rows["audit"] = conn.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        rows["meta"] = conn.execute(
            "SELECT key, value FROM meta WHERE key <> 'audit_head' ORDER BY key"
        ).fetchall()
        return rows
    finally:
        conn.close()


def _assert_same(original: dict[str, list[Any]], restored: dict[str, list[Any]]) -> None:
    for table in (*TABLES, "meta"):
        assert restored[table] == original[table], table
    # Every original audit entry, unchanged, then the restore's own (unlock, restore, lock).
    n = len(original["audit"])
    assert restored["audit"][:n] == original["audit"]
    assert [r[4] for r in restored["audit"][n:]] == ["unlock", "restore", "lock"]


def _no_leftovers(parent: Path) -> None:
    names = [p.name for p in parent.iterdir()]
    assert not [n for n in names if ".restoring-" in n], names


# -- round trips ------------------------------------------------------------------------
def test_round_trip_with_the_passphrase(
    vault: Vault, made: Path, tmp_path: Path, original: dict[str, list[Any]]
) -> None:
    for table in TABLES:
        assert original[table], table  # every table has rows to compare
    assert len(original["notes"]) == 12
    after = _tables(vault.directory, _db_key(vault.directory, PASSPHRASE, vault.keychain))
    assert [r[4] for r in after["audit"][len(original["audit"]) :]] == ["backup", "lock"]
    target = tmp_path / "restored"
    report = restore_backup(
        made,
        target,
        passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=vault.keychain,
        clock=vault.clock,
    )
    assert (report.vault, report.notes, report.moved_aside) == (target, 12, None)
    assert sorted(p.name for p in target.iterdir()) == ["vault.db", "vault.header"]
    restored = _tables(target, _db_key(target, PASSPHRASE, vault.keychain))
    _assert_same(original, restored)
    # Opens as a vault on this machine, with the passphrase and with the recovery key.
    svc = VaultService(target, clock=vault.clock, keychain=vault.keychain)
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    assert svc.verify_audit().ok and svc.check() == []
    assert all(svc.verify_note(r[0]).ok for r in original["note_signatures"])
    svc.lock()
    svc.unlock_with_recovery_key(vault.recovery)
    assert svc.status()["notes"] == 12
    svc.lock()
    _no_leftovers(tmp_path)


def test_round_trip_with_the_recovery_key(
    vault: Vault, made: Path, tmp_path: Path, original: dict[str, list[Any]]
) -> None:
    target = tmp_path / "restored"
    other_machine = MemoryKeychain()
    restore_backup(
        made,
        target,
        recovery_key=vault.recovery,
        new_passphrase=Passphrase.from_str(NEW_PASSPHRASE),
        keychain=other_machine,
        clock=vault.clock,
    )
    restored = _tables(target, _db_key(target, NEW_PASSPHRASE, other_machine))
    _assert_same(original, restored)
    hdr = header.read(target / "vault.header")
    assert hdr.keychain_bound and other_machine.load(hdr.vault_id) is not None
    with pytest.raises(WrongPassphraseError):  # the new passphrase, not the old one
        _db_key(target, PASSPHRASE, other_machine)
    svc = VaultService(target, clock=vault.clock, keychain=other_machine)
    svc.unlock_with_recovery_key(vault.recovery)  # the recovery kit still works
    svc.lock()


def test_restore_with_the_recovery_key_needs_a_strong_new_passphrase(
    vault: Vault, made: Path, tmp_path: Path
) -> None:
    with pytest.raises(WeakPassphraseError):
        restore_backup(
            made,
            tmp_path / "r",
            recovery_key=vault.recovery,
            new_passphrase=Passphrase.from_str("short"),
            keychain=vault.keychain,
        )
    assert not (tmp_path / "r").exists()


def test_verify_reports_counts_with_either_secret(vault: Vault, made: Path) -> None:
    by_passphrase = verify_backup(made, passphrase=Passphrase.from_str(PASSPHRASE))
    by_recovery = verify_backup(made, recovery_key=vault.recovery)
    assert by_passphrase == by_recovery
    assert (by_passphrase.notes, by_passphrase.clients, by_passphrase.signed_notes) == (12, 2, 4)
    assert by_passphrase.audit_entries > 30
    assert by_passphrase.to_dict().keys() == {"ok", "notes", "clients", "audit_entries"}


def test_a_backup_opens_on_another_machine(tmp_path: Path, clock: ManualClock) -> None:
    """The vault's passphrase slot needs this machine's keychain; the backup does not."""
    here = MemoryKeychain()
    svc = VaultService(tmp_path / "vault", clock=clock, keychain=here)
    svc.create(Passphrase.from_str(PASSPHRASE))
    assert svc.read_header().keychain_bound
    made = backup.create_backup(svc, tmp_path / "b").file
    svc.lock()
    found = verify_backup(made, passphrase=Passphrase.from_str(PASSPHRASE))
    assert found.clients == 0
    restore_backup(
        made,
        tmp_path / "there",
        passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=NoKeychain(),
        clock=clock,
    )
    assert not header.read(tmp_path / "there" / "vault.header").keychain_bound


def test_restore_on_the_same_machine_keeps_the_device_secret(
    vault: Vault, made: Path, tmp_path: Path
) -> None:
    vault_id = header.read(vault.directory / "vault.header").vault_id
    secret_before = vault.keychain.load(vault_id)
    restore_backup(
        made,
        tmp_path / "copy",
        passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=vault.keychain,
        clock=vault.clock,
    )
    assert vault.keychain.load(vault_id) == secret_before
    # Both the original and the copy open with the passphrase.
    for directory in (vault.directory, tmp_path / "copy"):
        _db_key(directory, PASSPHRASE, vault.keychain).wipe()


def test_wrong_secrets(vault: Vault, made: Path, tmp_path: Path) -> None:
    with pytest.raises(WrongPassphraseError):
        verify_backup(made, passphrase=Passphrase.from_str(NEW_PASSPHRASE))
    from app.vault import recoverykey

    other, key = recoverykey.generate()
    key.wipe()
    with pytest.raises(WrongRecoveryKeyError):
        verify_backup(made, recovery_key=other)
    with pytest.raises(WrongPassphraseError):
        restore_backup(
            made,
            tmp_path / "r",
            keychain=vault.keychain,
            passphrase=Passphrase.from_str(NEW_PASSPHRASE),
        )
    assert not (tmp_path / "r").exists()
    _no_leftovers(tmp_path)


def test_a_backup_needs_the_passphrase_unlock(vault: Vault, tmp_path: Path) -> None:
    vault.svc.lock()
    vault.svc.unlock_with_recovery_key(vault.recovery)
    with pytest.raises(InvalidInputError):
        backup.create_backup(vault.svc, tmp_path / "b")
    assert not list((tmp_path / "b").iterdir())
    vault.svc.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    made = backup.create_backup(vault.svc, tmp_path / "b").file
    verify_backup(made, passphrase=Passphrase.from_str(NEW_PASSPHRASE))


def test_default_folder_and_file_mode(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    report = backup.create_backup(vault.svc)
    assert report.file.parent == tmp_path / "data" / "tacit" / "backups"
    assert report.file.parent == backup.default_backup_dir()
    assert report.file.stat().st_mode & 0o777 == 0o600
    assert report.bytes == report.file.stat().st_size
    second = backup.create_backup(vault.svc)  # same second: a new name, never overwritten
    assert second.file != report.file and report.file.exists()


def test_backup_labels_are_pinned() -> None:
    assert keyslots.LABEL_BACKUP_PASSPHRASE_KEK == "tacit/v1/backup/passphrase-kek"
    assert keyslots.LABEL_BACKUP_FILE_MAC == "tacit/v1/backup/file-mac"
    assert backup.MAGIC == b"TACITBAK"
    key = DbKey(bytes(range(32)))
    mac_key = keyslots.backup_mac_key(key, "00000000-0000-4000-8000-000000000000")
    assert mac_key != crypto.hkdf(
        key, salt=b"00000000-0000-4000-8000-000000000000", label=crypto.LABEL_HEADER_MAC
    )
    assert mac_key.hex() == (
        crypto.hkdf(
            key, salt=b"00000000-0000-4000-8000-000000000000", label="tacit/v1/backup/file-mac"
        ).hex()
    )


# -- damage and tampering ---------------------------------------------------------------
def _layout(data: bytes) -> dict[str, int]:
    """Offsets of the parts of a backup file."""
    (header_len,) = struct.unpack(">I", data[8:12])
    body_at = 12 + header_len + 8
    doc = json.loads(data[12 : 12 + header_len])

    def at(text: str) -> int:
        return 12 + data[12:].index(text.encode())

    slots = doc["slots"]
    return {
        "magic": 0,
        "header_len": 9,
        "kdf": at('"kdf"') + 8,
        "kdf_salt": at(doc["kdf"]["salt"]) + 3,
        "passphrase_slot": at(slots["passphrase"]["ciphertext"]) + 5,
        "recovery_slot": at(slots["recovery"]["ciphertext"]) + 5,
        "vault_id": at(doc["vault_id"]) + 2,
        "version": at('"format_version":') + 17,
        "body_len": body_at - 2,
        "body_start": body_at,
        "body_middle": body_at + (len(data) - 64 - body_at) // 2,
        "body_end": len(data) - 65,
        "tag": len(data) - 50,
        "checksum": len(data) - 1,
    }


def _refused(path: Path, tmp_path: Path, keychain: MemoryKeychain, code: str) -> None:
    with pytest.raises(IntegrityError) as err:
        verify_backup(path, passphrase=Passphrase.from_str(PASSPHRASE))
    assert err.value.code == code
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError) as err:
        restore_backup(path, target, passphrase=Passphrase.from_str(PASSPHRASE), keychain=keychain)
    assert err.value.code == code
    assert not target.exists()
    _no_leftovers(tmp_path)


@pytest.mark.parametrize("cut", [1, 2, 33, 64, 65, 4096, "half", "header", 12, 8, "all"])
def test_truncated_backups_are_refused(
    vault: Vault, made: Path, tmp_path: Path, cut: int | str
) -> None:
    data = made.read_bytes()
    if cut == "half":
        keep = len(data) // 2
    elif cut == "header":
        keep = 40
    elif cut == "all":
        keep = 0
    else:
        keep = len(data) - int(cut) if int(cut) > 12 or cut in (1, 2) else int(cut)
    bad = tmp_path / "cut.tacitbackup"
    bad.write_bytes(data[:keep])
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


def test_a_longer_file_is_refused(vault: Vault, made: Path, tmp_path: Path) -> None:
    bad = tmp_path / "long.tacitbackup"
    bad.write_bytes(made.read_bytes() + b"\0")
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


@pytest.mark.parametrize(
    "where",
    [
        "magic",
        "header_len",
        "kdf",
        "kdf_salt",
        "passphrase_slot",
        "recovery_slot",
        "vault_id",
        "version",
        "body_len",
        "body_start",
        "body_middle",
        "body_end",
        "tag",
        "checksum",
    ],
)
def test_flipped_bytes_are_refused(vault: Vault, made: Path, tmp_path: Path, where: str) -> None:
    data = bytearray(made.read_bytes())
    data[_layout(bytes(data))[where]] ^= 0x04
    bad = tmp_path / "flipped.tacitbackup"
    bad.write_bytes(bytes(data))
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


def _recheck(data: bytearray) -> bytes:
    """Recompute the (unkeyed) checksum, as a deliberate attacker would."""
    d = hashlib.sha256(bytes(data[:-64])).digest()
    data[-32:] = hashlib.sha256(backup.CHECKSUM_DOMAIN + d + bytes(data[-64:-32])).digest()
    return bytes(data)


@pytest.mark.parametrize("where", ["body_start", "body_middle", "body_end", "tag"])
def test_deliberate_changes_fail_the_mac(
    vault: Vault, made: Path, tmp_path: Path, where: str
) -> None:
    data = bytearray(made.read_bytes())
    data[_layout(bytes(data))[where]] ^= 0x01
    bad = tmp_path / "forged.tacitbackup"
    bad.write_bytes(_recheck(data))
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


def test_a_forged_slot_is_a_wrong_passphrase(vault: Vault, made: Path, tmp_path: Path) -> None:
    """An edit to a slot (or its parameters) with the checksum fixed up cannot be told
    from a wrong passphrase by that slot: it simply does not open (as with the vault
    header). Opened by the other slot, the whole-file MAC catches the edit."""
    data = bytearray(made.read_bytes())
    at = _layout(bytes(data))["passphrase_slot"]
    data[at] = ord("A") if data[at] != ord("A") else ord("B")  # still valid base64
    bad = tmp_path / "forged.tacitbackup"
    bad.write_bytes(_recheck(data))
    with pytest.raises(WrongPassphraseError):
        verify_backup(bad, passphrase=Passphrase.from_str(PASSPHRASE))
    with pytest.raises(IntegrityError) as err:  # the other slot opens; the MAC then refuses
        verify_backup(bad, recovery_key=vault.recovery)
    assert err.value.code == "integrity_error"


def test_a_database_from_another_vault_is_refused(
    vault: Vault, made: Path, tmp_path: Path, clock: ManualClock
) -> None:
    """The body is bound to the header by the MAC; even one under the right key but with
    another vault's id inside is refused."""
    found = verify_backup(made, passphrase=Passphrase.from_str(PASSPHRASE))
    assert found.notes == 12
    other = VaultService(tmp_path / "other", clock=clock, keychain=vault.keychain)
    other.create(Passphrase.from_str(PASSPHRASE))
    other_file = backup.create_backup(other, tmp_path / "b2").file
    other.lock()
    a, b = bytearray(made.read_bytes()), other_file.read_bytes()
    (ha,) = struct.unpack(">I", a[8:12])
    (hb,) = struct.unpack(">I", b[8:12])
    spliced = bytearray(a[: 12 + ha] + b[12 + hb :])  # this header, the other body
    bad = tmp_path / "spliced.tacitbackup"
    bad.write_bytes(_recheck(spliced))
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


def test_not_a_backup_and_missing_file(vault: Vault, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(5000))
    _refused(junk, tmp_path, vault.keychain, "integrity_error")
    with pytest.raises(InvalidInputError):
        verify_backup(tmp_path / "nope", passphrase=Passphrase.from_str(PASSPHRASE))


# -- restore safety ---------------------------------------------------------------------
def test_restore_refuses_an_existing_vault_without_force(
    vault: Vault, made: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in vault.directory.iterdir() if p.is_file()}
    with pytest.raises(VaultExistsError):
        restore_backup(
            made,
            vault.directory,
            passphrase=Passphrase.from_str(PASSPHRASE),
            keychain=vault.keychain,
        )
    after = {p.name: p.read_bytes() for p in vault.directory.iterdir() if p.is_file()}
    assert after == before
    _no_leftovers(tmp_path)
    # Any non-empty folder is refused too; an empty one is fine.
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(VaultExistsError):
        check_target(tmp_path / "full", force=False)
    (tmp_path / "empty").mkdir()
    restore_backup(
        made,
        tmp_path / "empty",
        passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=vault.keychain,
    )
    assert (tmp_path / "empty" / "vault.header").exists()


def test_restore_with_force_moves_the_old_vault_aside(
    vault: Vault, made: Path, tmp_path: Path
) -> None:
    # The vault changes after the backup; the restore brings back the backed-up state.
    vault.svc.unlock(Passphrase.from_str(PASSPHRASE))
    vault.svc.add_client("After the backup")
    vault.svc.lock()
    before = {p.name: p.read_bytes() for p in vault.directory.iterdir() if p.is_file()}
    report = restore_backup(
        made,
        vault.directory,
        force=True,
        keychain=vault.keychain,
        passphrase=Passphrase.from_str(PASSPHRASE),
    )
    aside = report.moved_aside
    assert aside is not None and aside.parent == vault.directory.parent
    assert {p.name: p.read_bytes() for p in aside.iterdir() if p.is_file()} == before
    old = VaultService(aside, keychain=vault.keychain)
    old.unlock(Passphrase.from_str(PASSPHRASE))
    assert old.status()["clients"] == 3
    old.lock()
    new = VaultService(vault.directory, keychain=vault.keychain)
    new.unlock(Passphrase.from_str(PASSPHRASE))
    assert new.status()["clients"] == 2
    new.lock()


def test_a_failed_restore_over_a_vault_leaves_it_in_place(
    vault: Vault, made: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in vault.directory.iterdir() if p.is_file()}

    def crash(step: str) -> None:
        if step == "verified":
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        restore_backup(
            made,
            vault.directory,
            force=True,
            keychain=vault.keychain,
            passphrase=Passphrase.from_str(PASSPHRASE),
            fault=crash,
        )
    assert {p.name: p.read_bytes() for p in vault.directory.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backups", "vault"]


# -- crash safety while writing ---------------------------------------------------------
@pytest.mark.parametrize("step", ["snapshot", "written"])
def test_a_crash_mid_backup_leaves_no_file(vault: Vault, tmp_path: Path, step: str) -> None:
    folder = tmp_path / "b"

    def crash(at: str) -> None:
        if at == step:
            raise KeyboardInterrupt  # not even an Exception: a hard stop

    with pytest.raises(KeyboardInterrupt):
        backup.create_backup(vault.svc, folder, fault=crash)
    assert list(folder.iterdir()) == []
    entries = vault.svc.audit_entries(action="backup")
    assert entries == []  # nothing was made, so nothing is claimed


def test_a_failed_rename_leaves_no_file(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "b"
    seen: list[Path] = []

    def failing_replace(src: object, dst: object) -> None:
        seen.extend(Path(str(p)) for p in folder.iterdir())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup.os, "replace", failing_replace)
    with pytest.raises(StorageError):
        backup.create_backup(vault.svc, folder)
    assert seen and any(".tmp-" in p.name for p in seen)  # it got as far as the rename
    assert list(folder.iterdir()) == []


def test_a_partial_temp_file_never_verifies(vault: Vault, made: Path, tmp_path: Path) -> None:
    """Whatever prefix of a backup a crash leaves, it is refused as damaged."""
    data = made.read_bytes()
    partial = tmp_path / "partial"
    for keep in range(0, len(data), max(1, len(data) // 37)):
        partial.write_bytes(data[:keep])
        with pytest.raises(IntegrityError):
            backup.read_backup(partial)


# -- nothing readable leaves the vault --------------------------------------------------
def _scan(paths: list[Path], secrets: list[bytes]) -> int:
    scanned = 0
    for root in paths:
        for path in [root] if root.is_file() else root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            scanned += 1
            for canary in CANARIES:
                for encoding in ("utf-8", "utf-16-le"):
                    assert canary.encode(encoding) not in data, f"{canary} in {path}"
                assert canary.lower().encode() not in data.lower(), f"{canary} in {path}"
            for secret in secrets:
                assert secret not in data, f"key bytes in {path}"
                assert secret.hex().encode() not in data.lower(), f"key hex in {path}"
    return scanned


def test_canaries_and_keys_never_reach_a_backup_or_temp_file(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    db_key = _db_key(vault.directory, PASSPHRASE, vault.keychain)
    from app.vault import recoverykey

    rkey = recoverykey.parse(vault.recovery)
    assert vault.svc._backup_kek is not None
    secrets = [db_key.reveal(), rkey.reveal(), vault.svc._backup_kek.reveal()]
    folder = tmp_path / "b"
    scanned = [0]

    def look(step: str) -> None:  # the snapshot and the temp file, while they exist
        assert list(folder.iterdir())
        scanned[0] += _scan([folder], secrets)

    made = backup.create_backup(vault.svc, folder, fault=look).file
    vault.svc.lock()
    real_check = backup_restore._check_body

    def check_and_scan(path: Path, key: DbKey, vault_id: str) -> backup_restore.Contents:
        scanned[0] += _scan([path.parent, tmp], secrets)  # verify's private copy
        return real_check(path, key, vault_id)

    monkeypatch.setattr(backup_restore, "_check_body", check_and_scan)

    def look_all() -> None:  # the restore's work folder, before it is renamed
        scanned[0] += _scan([tmp_path], secrets)

    verify_backup(made, passphrase=Passphrase.from_str(PASSPHRASE))
    target = tmp_path / "restored"
    restore_backup(
        made,
        target,
        passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=vault.keychain,
        fault=lambda _: look_all(),
    )
    scanned[0] += _scan([made, tmp, target], secrets)
    assert scanned[0] >= 8
    assert "CANARY" in json.dumps(_tables(target, db_key)["clients"], default=str)  # test can fail


def test_a_backup_is_consistent_while_another_connection_writes(
    vault: Vault, tmp_path: Path
) -> None:
    """The snapshot is one read transaction (WAL): a writer on another connection, as the
    desktop app would be while the CLI backs up, neither blocks it nor tears it."""
    writer = VaultService(vault.directory, clock=vault.clock, keychain=vault.keychain)
    writer.unlock(Passphrase.from_str(PASSPHRASE))
    cid = writer.add_client("Writer").id
    stop = threading.Event()
    written = [0]

    def write() -> None:
        while not stop.is_set():
            note = writer.create_note(cid, "free", body="words " * 400)
            writer.edit_note(note.id, body="other words " * 300)
            written[0] += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        files = [backup.create_backup(vault.svc, tmp_path / "b").file for _ in range(6)]
    finally:
        stop.set()
        thread.join()
    writer.lock()
    assert written[0] > 0
    counts = [verify_backup(f, passphrase=Passphrase.from_str(PASSPHRASE)).notes for f in files]
    assert counts == sorted(counts) and counts[0] >= 12


def test_a_body_from_another_backup_of_the_same_vault_is_refused(
    vault: Vault, tmp_path: Path
) -> None:
    """Same key, same vault id, valid pages: only the whole-file MAC ties this header to
    this body (without it, an older body would pass for the newer backup)."""
    older = backup.create_backup(vault.svc, tmp_path / "b").file
    vault.svc.add_client("Added later")
    newer = backup.create_backup(vault.svc, tmp_path / "b").file
    vault.svc.lock()
    a, b = newer.read_bytes(), older.read_bytes()
    (ha,) = struct.unpack(">I", a[8:12])
    (hb,) = struct.unpack(">I", b[8:12])
    spliced = bytearray(a[: 12 + ha] + b[12 + hb :])
    bad = tmp_path / "spliced.tacitbackup"
    bad.write_bytes(_recheck(spliced))
    backup.read_backup(bad)  # structure and checksum are fine
    _refused(bad, tmp_path, vault.keychain, "integrity_error")


def test_leftovers_of_a_hard_crash_are_swept(vault: Vault, tmp_path: Path) -> None:
    """A process killed before its rename leaves hidden files (no cleanup ran); the next
    backup into the folder removes them once they are stale, and leaves young ones (a
    backup another process is writing) alone."""
    folder = tmp_path / "b"
    folder.mkdir()
    stale = folder / ".tacit-backup-20260101T000000Z.tacitbackup.tmp-0badf00d"
    stale_snapshot = folder / ".tacit-backup-20260101T000000Z.tacitbackup.snapshot-0badf00d"
    young = folder / ".tacit-backup-20260101T000001Z.tacitbackup.tmp-00c0ffee"
    for path in (stale, stale_snapshot, young):
        path.write_bytes(b"TACITBAK partial")
    old = os.stat(stale).st_mtime - 2 * backup.STALE_SECONDS
    os.utime(stale, (old, old))
    os.utime(stale_snapshot, (old, old))
    made = backup.create_backup(vault.svc, folder).file
    assert sorted(p.name for p in folder.iterdir()) == sorted([made.name, young.name])
