"""Verifying and restoring encrypted backups (the file format is app/vault/backup.py).

Verification opens a backup with the passphrase or the recovery key and checks
everything with the vault's own code: the file's size, checksum and MAC (backup.py), then
the database copied out of it: every page (``cipher_integrity_check``,
``integrity_check``, the FTS index), that it belongs to the backup's vault, the audit hash
chain and every note signature with its addenda. It works on a private temporary copy of
the body (SQLCipher ciphertext) that is removed afterwards.

Invariants of a restore:
- the vault is built in a temporary folder beside the target (same file system, so the
  final step is a rename), verified, and unlocked once as any vault is (which proves its
  new passphrase slot opens on this machine), before it appears at the target;
- a failed restore removes its temporary folder: nothing is left behind;
- a target that holds anything is refused unless ``force``; then the old folder is
  renamed next to it (``<name>.replaced-<time>-<random>``), never deleted, and put back
  if the final rename fails;
- the restored vault keeps the vault id and DB key (so its audit chain and signatures
  verify), gets a normal passphrase slot bound to this machine's keychain where there is
  one, and the backup's recovery slot (the same recovery key opens it); the restore is
  recorded in its audit trail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import IntegrityError, InvalidInputError, StorageError, VaultExistsError
from app.vault import backup, crypto, header, keyslots
from app.vault.audit import AuditLog, audit_verify, chain_key
from app.vault.clock import Clock, SystemClock
from app.vault.crypto import DbKey, Passphrase
from app.vault.db import Database, connect
from app.vault.fsutil import fsync_dir, private_dir
from app.vault.keychain import Keychain, OsKeychain
from app.vault.passphrase import require_strong
from app.vault.service import VaultPaths, VaultService
from app.vault.signing import SigningStore
from app.vault.store import RecordStore


@dataclass(frozen=True, slots=True)
class Contents:
    """What verification found: counts only, never content."""

    notes: int
    clients: int
    audit_entries: int
    signed_notes: int
    vault_created_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "notes": self.notes, "clients": self.clients,
                "audit_entries": self.audit_entries}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RestoreReport:
    vault: Path
    notes: int
    seconds: float
    moved_aside: Path | None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"vault": str(self.vault), "notes": self.notes,
                               "seconds": round(self.seconds, 3)}  # fmt: skip
        if self.moved_aside is not None:
            doc["moved_aside"] = str(self.moved_aside)
        return doc


# -- verify ------------------------------------------------------------------------------
def verify_database(db: Database, db_key: DbKey, vault_id: str) -> Contents:
    """Check a database with the vault's own code: every page (SQLCipher HMACs, SQLite
    structure, FTS index), that it belongs to ``vault_id``, the audit hash chain and every
    note signature with its addenda. Writes nothing. Raises IntegrityError."""
    problems = db.check()
    if problems:
        raise IntegrityError(f"the backed-up database is damaged ({len(problems)} problem(s))")
    store = RecordStore(db, lambda: "", lambda: "")
    if store.get_meta("vault_id") != vault_id:
        raise IntegrityError("the backed-up database does not belong to this backup's vault")
    log = AuditLog(chain_key(db_key, vault_id), vault_id, lambda: "", lambda: "",
                   lambda: "")  # fmt: skip
    try:
        verdict = audit_verify(db, log)
        if not verdict.ok:
            raise IntegrityError(
                f"the backed-up audit trail is broken at entry {verdict.first_bad_seq}",
                first_bad_seq=verdict.first_bad_seq,
            )
        signing = SigningStore(db, store, log, lambda: "", lambda: "")
        trusted = set(signing.trusted_keys())
        own = store.get_meta("signing_public_key")
        if own:
            trusted.add(bytes.fromhex(own))
        signed = [str(r[0]) for r in db.query(
            "SELECT id FROM notes WHERE signed_at IS NOT NULL "
            "UNION SELECT note_id FROM note_signatures")]  # fmt: skip
        for note_id in signed:
            if not signing.verify(note_id, trusted).ok:
                raise IntegrityError(
                    f"note {note_id} in the backup fails its signature check", note_id=note_id
                )
    finally:
        log.wipe()
    return Contents(
        notes=store.count("notes"), clients=store.count("clients"),
        audit_entries=verdict.entries, signed_notes=len(signed),
        vault_created_at=store.get_meta("created_at"),
    )  # fmt: skip


def _check_body(path: Path, db_key: DbKey, vault_id: str) -> Contents:
    """Open the body copied to ``path`` (migrating it, as an unlock would) and verify it."""
    db = Database(connect(path, db_key, create=False))
    try:
        db.migrate()
        return verify_database(db, db_key, vault_id)
    finally:
        db.close()


def verify_backup(
    path: Path, *, passphrase: Passphrase | None = None, recovery_key: str | None = None,
    progress: backup.ProgressFn | None = None,
) -> Contents:  # fmt: skip
    """Open a backup with the passphrase or the recovery key and check everything (see
    the module docstring) on a private temporary copy of its body (ciphertext), removed
    afterwards. ``progress`` gets the fraction done: reading the file per MiB (the first
    half), then each stage (key, database check). Raises IntegrityError,
    UnsupportedVersionError, WeakKdfError, WrongPassphraseError, WrongRecoveryKeyError,
    InvalidInputError, StorageError."""
    _report(progress, 0.0)
    work = Path(tempfile.mkdtemp(prefix="tacit-verify-"))
    try:
        body = work / "backup.db"
        parsed = backup.read_backup(Path(path), body, backup.scaled(progress, 0.0, 0.5))
        db_key = backup.unlock_backup(parsed, passphrase, recovery_key)
        _report(progress, 0.6)
        try:
            found = _check_body(body, db_key, parsed.header.vault_id)
        finally:
            db_key.wipe()
        _report(progress, 1.0)
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- restore -----------------------------------------------------------------------------
def check_target(target: Path, *, force: bool) -> None:
    """Refuse a target folder that holds anything (a vault or not) unless ``force``: it
    is then moved aside, never deleted. Raises VaultExistsError, InvalidInputError."""
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{target} is a file, not a vault folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        what = "a vault" if (target / "vault.header").exists() else "files"
        raise VaultExistsError(
            f"{target} already holds {what}; add --force to move it aside and restore"
        )


def restore_backup(
    path: Path,
    target: Path,
    *,
    passphrase: Passphrase | None = None,
    recovery_key: str | None = None,
    new_passphrase: Passphrase | None = None,
    force: bool = False,
    keychain: Keychain | None = None,
    clock: Clock | None = None,
    fault: backup.Fault | None = None,
    progress: backup.ProgressFn | None = None,
) -> RestoreReport:
    """Restore a backup into a new vault at ``target``. With the passphrase the restored
    vault keeps it; with the recovery key it gets ``new_passphrase``. The vault gets a
    normal passphrase slot on this machine (keychain device secret where there is one)
    and the backup's recovery slot, and the restore is audited inside it. ``progress``
    gets the fraction done: reading the file per MiB (the first 40 %), then each stage
    (key, database check, new header, first unlock, rename). Raises
    VaultExistsError, IntegrityError, UnsupportedVersionError, WeakKdfError,
    WrongPassphraseError, WrongRecoveryKeyError, WeakPassphraseError, InvalidInputError,
    StorageError."""
    _report(progress, 0.0)
    start = time.perf_counter()
    target = Path(target)
    check_target(target, force=force)
    if recovery_key is not None:
        if new_passphrase is None:
            raise InvalidInputError("a restore with the recovery key needs a new passphrase")
        require_strong(new_passphrase)
    keychain = keychain if keychain is not None else OsKeychain()
    clock = clock or SystemClock()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {target.parent}: {exc.strerror}") from None
    work = target.with_name(f".{target.name}.restoring-{secrets.token_hex(4)}")
    try:
        private_dir(work)
        paths = VaultPaths(work)
        parsed = backup.read_backup(Path(path), paths.database,
                                    backup.scaled(progress, 0.0, 0.4))  # fmt: skip
        hdr = parsed.header
        db_key = backup.unlock_backup(parsed, passphrase, recovery_key)
        _report(progress, 0.5)
        try:
            contents = _check_body(paths.database, db_key, hdr.vault_id)
            _report(progress, 0.65)
            vault_pass = new_passphrase if recovery_key is not None else passphrase
            if vault_pass is None:  # unlock_backup needed one of them: not reached
                raise InvalidInputError("a restore needs a passphrase for the new vault")
            new_header = keyslots.restored_header(
                hdr.vault_id, contents.vault_created_at or hdr.created_at, db_key,
                vault_pass, keychain, crypto.new_creation_params(), hdr.recovery,
            )  # fmt: skip
        finally:
            db_key.wipe()
        header.write(paths.header, new_header)
        _report(progress, 0.8)
        _open_restored(work, vault_pass, keychain, clock, hdr.created_at)
        _report(progress, 0.95)
        backup.inject(fault, "verified")
        aside = _put_in_place(work, target, force=force, stamp=clock.now())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _report(progress, 1.0)
    return RestoreReport(target, contents.notes, time.perf_counter() - start, aside)


def _report(progress: backup.ProgressFn | None, fraction: float) -> None:
    if progress is not None:
        progress(fraction)


def _open_restored(
    work: Path, passphrase: Passphrase, keychain: Keychain, clock: Clock, backup_time: str
) -> None:
    """Unlock the restored vault as any vault is unlocked (proving the new passphrase
    slot opens on this machine) and record the restore in its audit trail."""
    svc = VaultService(work, clock=clock, keychain=keychain)
    try:
        svc.unlock(passphrase)
        svc.record_event("restore", record_type="vault",
                         detail=f"restored from a backup made {backup_time}")  # fmt: skip
    except BaseException:
        svc.close(record=False)
        raise
    svc.lock()
    (work / "vault.lock").unlink(missing_ok=True)


def _put_in_place(work: Path, target: Path, *, force: bool, stamp: datetime) -> Path | None:
    """Rename the verified vault to ``target``, first moving an existing folder aside
    (renamed next to it) when ``force``; the target is checked again here, since it may
    have changed while the restore ran. Returns where the old one went. Raises
    VaultExistsError, StorageError."""
    check_target(target, force=force)
    aside: Path | None = None
    try:
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        elif target.exists():
            name = f"{target.name}.replaced-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
            aside = target.with_name(f"{name}-{secrets.token_hex(2)}")
            os.rename(target, aside)
        try:
            os.rename(work, target)
        except OSError:
            if aside is not None:
                os.rename(aside, target)  # put the old vault back
                aside = None
            raise
    except OSError as exc:
        raise StorageError(f"could not put the restored vault in place: {exc.strerror}") from None
    fsync_dir(target.parent)
    return aside
