"""A folder of backups (app/vault/backupfolder.py): this vault's files by their header
(never by name), newest first; pruning the oldest beyond N and nothing else; the age of
the newest; a missing folder. And the backup settings kept in the vault."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from app.errors import InvalidInputError
from app.vault import backup
from app.vault.backupfolder import (
    BackupFolderMissingError,
    BackupFolderUnwritableError,
    check_folder,
    list_backups,
    newest_backup_age,
    prune_backups,
    read_info,
)
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import BackupSettings, VaultService
from tests.conftest import PASSPHRASE


def _vault_id(svc: VaultService) -> str:
    return svc.read_header().vault_id


def _make(svc: VaultService, folder: Path, clock: ManualClock, count: int) -> list[Path]:
    made = []
    for _ in range(count):
        made.append(backup.create_backup(svc, folder).file)
        clock.advance(3600)
    return made


@pytest.fixture
def other(tmp_path: Path, clock: ManualClock) -> VaultService:
    svc = VaultService(tmp_path / "other", clock=clock, keychain=MemoryKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    return svc


def test_lists_this_vaults_backups_newest_first_by_header(
    service: VaultService, other: VaultService, tmp_path: Path, clock: ManualClock
) -> None:
    folder = tmp_path / "backups"
    mine = _make(service, folder, clock, 3)
    theirs = _make(other, folder, clock, 1)
    # Names are not trusted: a renamed backup counts, look-alikes do not.
    renamed = mine[0].rename(folder / "zzz-renamed.tacitbackup")
    (folder / "tacit-backup-29990101T000000Z.tacitbackup").write_bytes(b"TACITBAK junk")
    truncated = folder / "tacit-backup-29990102T000000Z.tacitbackup"
    truncated.write_bytes(mine[1].read_bytes()[:-1])
    (folder / "notes.txt").write_text("hello")
    infos = list_backups(folder, _vault_id(service))
    assert [i.path for i in infos] == [mine[2], mine[1], renamed]
    assert infos[0].created_at - infos[1].created_at == timedelta(hours=1)
    assert [i.path for i in list_backups(folder, _vault_id(other))] == theirs
    assert read_info(mine[2]).vault_id == _vault_id(service)


def test_prune_keeps_the_newest_n_and_leaves_everything_else(
    service: VaultService, other: VaultService, tmp_path: Path, clock: ManualClock
) -> None:
    folder = tmp_path / "backups"
    mine = _make(service, folder, clock, 5)
    theirs = _make(other, folder, clock, 2)
    junk = folder / "tacit-backup-19990101T000000Z.tacitbackup"
    junk.write_bytes(b"not a backup at all")
    removed = prune_backups(folder, _vault_id(service), 2)
    assert sorted(removed) == sorted(mine[:3])
    assert all(not p.exists() for p in mine[:3])
    assert all(p.exists() for p in [*mine[3:], *theirs, junk])
    assert prune_backups(folder, _vault_id(service), 2) == []
    with pytest.raises(InvalidInputError):
        prune_backups(folder, _vault_id(service), 0)  # never the newest
    assert prune_backups(folder, _vault_id(service), 1) == [mine[3]]
    assert mine[4].exists()


def test_newest_age_and_missing_folder(
    service: VaultService, tmp_path: Path, clock: ManualClock
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    vid = _vault_id(service)
    assert newest_backup_age(folder, vid, clock.now()) is None
    _make(service, folder, clock, 2)  # the clock moves an hour after each
    assert newest_backup_age(folder, vid, clock.now()) == 3600
    shutil.rmtree(folder)
    with pytest.raises(BackupFolderMissingError):
        list_backups(folder, vid)
    with pytest.raises(BackupFolderMissingError):
        check_folder(folder)
    assert not folder.exists()  # never made again


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    check_folder(folder)
    if os.geteuid() == 0:  # root writes anywhere: a read-only mount, as the OS reports it
        monkeypatch.setattr(os, "access", lambda path, mode: False)
    folder.chmod(0o500)
    try:
        with pytest.raises(BackupFolderUnwritableError):
            check_folder(folder)
    finally:
        folder.chmod(0o700)


def test_backup_settings_round_trip_in_the_vault(
    vault_dir: Path, service: VaultService, clock: ManualClock, keychain: MemoryKeychain
) -> None:
    assert service.backup_settings() == BackupSettings(True, None, 30, 24)
    chosen = BackupSettings(enabled=True, folder="/media/Dr Jane Example/backups", keep=7,
                            interval_hours=12)  # fmt: skip
    service.set_backup_settings(chosen)
    service.lock()
    again = VaultService(vault_dir, clock=clock, keychain=keychain)
    again.unlock(Passphrase.from_str(PASSPHRASE))
    assert again.backup_settings() == chosen
    entry = again.audit_entries(action="settings_change")[-1]
    assert "keep 7" in (entry.detail or "") and "Jane" not in (entry.detail or "")
    for bad in (BackupSettings(keep=0), BackupSettings(interval_hours=0),
                BackupSettings(folder="")):  # fmt: skip
        with pytest.raises(InvalidInputError):
            again.set_backup_settings(bad)
    assert again.backup_settings() == chosen
    again.lock()
    # The path is inside the encrypted database, not in any file in plaintext.
    for path in vault_dir.iterdir():
        assert b"Jane Example" not in path.read_bytes()
