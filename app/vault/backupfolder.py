"""A folder of backups (the app's automatic backups): which files in it are this vault's,
how old the newest is, keeping the last N, and whether the folder can take a backup.

Invariants:
- a file counts as one of this vault's backups only if its plaintext header parses (the
  parser of app/vault/backup.py), names this vault and the file is exactly as long as its
  header says: the file name is never trusted (a renamed file, another vault's backup, a
  truncated copy or anything else is ignored);
- ``prune_backups`` deletes only this vault's backups, oldest first, never the newest
  and never a file it did not read as one; anything it cannot delete is left;
- nothing here creates a folder: a folder that is missing (an unplugged external drive)
  is reported, never made again on the internal disk under the drive's mount point;
- no Qt, no keys: the header is read, never opened.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.errors import IntegrityError, InvalidInputError, StorageError, TacitError
from app.vault import backup


class BackupFolderMissingError(StorageError):
    code = "backup_folder_missing"
    default_message = "the backup folder is not there (is the drive plugged in?)"


class BackupFolderUnwritableError(StorageError):
    code = "backup_folder_unwritable"
    default_message = "the backup folder cannot be written to"


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    vault_id: str
    created_at: datetime
    size: int


def read_info(path: Path) -> BackupInfo:
    """The header of one backup file, checked for shape and length (not the checksum:
    ``tacit backup verify`` does that). Raises IntegrityError, UnsupportedVersionError,
    StorageError."""
    hdr, size = backup.read_header(path)  # the one frame reader and header parser
    try:
        created = datetime.fromisoformat(hdr.created_at)
    except ValueError:
        raise IntegrityError("the backup header has a malformed time") from None
    if created.tzinfo is None:
        raise IntegrityError("the backup header has a malformed time")
    return BackupInfo(path, hdr.vault_id, created, size)


def list_backups(folder: Path, vault_id: str) -> list[BackupInfo]:
    """This vault's backups in ``folder``, newest first (by the time in their header).
    Files that are not readable backups of this vault are skipped. Raises
    BackupFolderMissingError."""
    if not folder.is_dir():
        raise BackupFolderMissingError()
    found: list[BackupInfo] = []
    try:
        candidates = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        raise BackupFolderMissingError() from None
    for path in candidates:
        if not path.name.endswith(backup.SUFFIX) or path.is_symlink() or not path.is_file():
            continue
        try:
            info = read_info(path)
        except TacitError:
            continue
        if info.vault_id == vault_id:
            found.append(info)
    found.sort(key=lambda i: (i.created_at, i.path.name), reverse=True)
    return found


def prune_backups(folder: Path, vault_id: str, keep: int) -> list[Path]:
    """Delete this vault's backups beyond the newest ``keep`` (at least 1). Returns the
    files deleted. Raises InvalidInputError, BackupFolderMissingError."""
    if keep < 1:
        raise InvalidInputError("keep at least one backup")
    removed: list[Path] = []
    for info in list_backups(folder, vault_id)[keep:]:
        with contextlib.suppress(OSError):
            info.path.unlink()
            removed.append(info.path)
    return removed


def newest_backup_age(folder: Path, vault_id: str, now: datetime) -> float | None:
    """Seconds since this vault's newest backup in ``folder`` was made (None: none).
    Raises BackupFolderMissingError."""
    backups = list_backups(folder, vault_id)
    return (now - backups[0].created_at).total_seconds() if backups else None


def check_folder(folder: Path) -> None:
    """Raise BackupFolderMissingError or BackupFolderUnwritableError unless ``folder``
    is a folder this process can write to."""
    if not folder.is_dir():
        raise BackupFolderMissingError()
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackupFolderUnwritableError()
