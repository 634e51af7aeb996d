"""Encrypted backups: the versioned file format, writing one, and reading one back
(verify and restore are in app/vault/backup_restore.py).

File format, version 1 (docs/SECURITY.md, "Backups"):

    magic      8 bytes   b"TACITBAK"
    H          4 bytes   big-endian length of the header
    header     H bytes   canonical JSON: format, format_version, vault_id, created_at,
                         kdf {params, salt}, slots {passphrase, recovery}   (no counts,
                         no names: nothing but what opening the file needs)
    B          8 bytes   big-endian length of the body
    body       B bytes   a snapshot of the SQLCipher database: its pages, encrypted under
                         the vault's DB key as they are in the vault
    tag       32 bytes   HMAC-SHA256(K_mac, "tacit/v1/backup/file\\0" || D)
    checksum  32 bytes   SHA-256("tacit/v1/backup/checksum\\0" || D || tag)

where D = SHA-256 of every byte before the tag (so the lengths too) and
K_mac = HKDF(DB key, vault id, "tacit/v1/backup/file-mac"). The slots wrap the DB key:
``passphrase`` under a KEK from the passphrase's Argon2id output *without* the keychain
device secret (a backup must open on another machine), ``recovery`` is a copy of the
vault's recovery slot (app/vault/keyslots.py).

Invariants:
- the file never holds plaintext: the body is SQLCipher ciphertext, the header holds
  only the format, the vault id, times, KDF parameters, salts and wrapped keys;
- a file is written under a temporary name in the target folder, fsynced, renamed and
  the folder fsynced: the final name holds a whole file or nothing; a failure removes
  the temporary file and the snapshot, and what a hard crash left (hidden, ciphertext;
  a partial file never verifies) is swept by a later backup into the same folder;
- nothing in a file is trusted before its size and checksum (accidental damage, and
  truncation at any byte: ``integrity_error`` before any key is derived) and, once a
  slot opened, its MAC (a deliberate change: ``integrity_error``) check out; a slot that
  does not open is ``wrong_passphrase`` / ``wrong_recovery_key``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import platformdirs

from app.errors import (
    IntegrityError,
    InvalidInputError,
    StorageError,
    UnsupportedVersionError,
)
from app.vault import crypto, header, keyslots
from app.vault.clock import Clock, iso
from app.vault.crypto import DbKey, KdfParams, Passphrase
from app.vault.fsutil import fsync_dir, private_dir
from app.vault.service import VaultService

MAGIC = b"TACITBAK"
FORMAT = "tacit-backup"
FORMAT_VERSION = 1
SUFFIX = ".tacitbackup"
MAX_HEADER_BYTES = 64 * 1024
TAG_DOMAIN = b"tacit/v1/backup/file\x00"
CHECKSUM_DOMAIN = b"tacit/v1/backup/checksum\x00"
_PREFIX = struct.Struct(">8sI")
_BODY_LEN = struct.Struct(">Q")
_TRAILER = 64  # tag + checksum
_CHUNK = 1024 * 1024
STALE_SECONDS = 3600.0  # a crashed backup's leftovers are removed after this

# Called with a step name ("snapshot", "written", "verified") so tests can inject a
# crash between the steps.
Fault = Callable[[str], None]
# Called with the fraction done (0..1) at each MiB and each step, for a progress bar.
ProgressFn = Callable[[float], None]


def default_backup_dir() -> Path:
    """``backups`` beside the default vault, in the platform's user data folder."""
    return Path(platformdirs.user_data_dir("tacit", appauthor=False)) / "backups"


@dataclass(frozen=True, slots=True)
class BackupReport:
    file: Path
    notes: int
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "notes": self.notes, "bytes": self.bytes,
                "seconds": round(self.seconds, 3)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class BackupHeader:
    """The plaintext header of a backup file (parsed, not yet authenticated)."""

    vault_id: str
    created_at: str
    kdf: KdfParams
    kdf_salt: bytes
    passphrase: header.Slot
    recovery: header.Slot

    def encode(self) -> bytes:
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vault_id": self.vault_id,
            "created_at": self.created_at,
            "kdf": {**self.kdf.to_dict(), "salt": _b64(self.kdf_salt)},
            "slots": {
                "passphrase": {"nonce": _b64(self.passphrase.nonce),
                               "ciphertext": _b64(self.passphrase.ciphertext)},
                "recovery": {"salt": _b64(self.recovery.salt),
                             "nonce": _b64(self.recovery.nonce),
                             "ciphertext": _b64(self.recovery.ciphertext)},
            },
        }  # fmt: skip
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


# -- create ------------------------------------------------------------------------------
def create_backup(
    svc: VaultService, directory: Path | None = None, *, clock: Clock | None = None,
    fault: Fault | None = None, progress: ProgressFn | None = None,
) -> BackupReport:  # fmt: skip
    """Write a backup of the unlocked vault into ``directory`` (default:
    ``default_backup_dir()``) and audit it. ``progress`` gets the fraction done (the
    snapshot counts as the first 40 %, writing the file per MiB as the next 55 %).
    Raises VaultLockedError, InvalidInputError (no backup key: unlocked without the
    passphrase), IntegrityError, StorageError."""
    report = progress or _ignore
    report(0.0)
    start = time.perf_counter()
    now = (clock or svc.clock).now()
    folder = Path(directory) if directory is not None else default_backup_dir()
    _make_folder(folder)
    sweep_stale(folder)
    final = _free_name(folder, f"tacit-backup-{now.strftime('%Y%m%dT%H%M%SZ')}")
    token = secrets.token_hex(4)
    snapshot = folder / f".{final.name}.snapshot-{token}"
    tmp = folder / f".{final.name}.tmp-{token}"
    try:
        source = svc.backup_snapshot(snapshot)
        report(0.4)
        try:
            inject(fault, "snapshot")
            hdr = BackupHeader(source.vault_id, iso(now), source.kdf, source.kdf_salt,
                               source.keys.passphrase, source.keys.recovery)  # fmt: skip
            size = _write_file(tmp, hdr, snapshot, source.keys.mac_key,
                               scaled(report, 0.4, 0.95))  # fmt: skip
        finally:
            source.keys.mac_key.wipe()
        inject(fault, "written")
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise StorageError(f"could not write {final.name}: {exc.strerror}") from None
        fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _remove_sqlite_files(snapshot)
    try:  # a backup that cannot be audited does not stay
        svc.record_event("backup", record_type="vault",
                         detail=f"{source.notes} notes, {size} bytes")  # fmt: skip
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    report(1.0)
    return BackupReport(final, source.notes, size, time.perf_counter() - start)


def _ignore(_fraction: float) -> None:
    return None


def scaled(progress: ProgressFn | None, low: float, high: float) -> ProgressFn:
    """``progress`` for a step that covers ``low``..``high`` of the whole: the step
    reports its own 0..1."""
    if progress is None:
        return _ignore
    span = high - low
    return lambda fraction: progress(low + span * max(0.0, min(1.0, fraction)))


def inject(fault: Fault | None, step: str) -> None:
    """Call the test hook ``fault`` (if any) at ``step``."""
    if fault is not None:
        fault(step)


def _make_folder(folder: Path) -> None:
    try:
        if not folder.exists():
            private_dir(folder)
        elif not folder.is_dir():
            raise InvalidInputError(f"{folder} is not a folder")
    except StorageError:
        raise StorageError(f"could not create the backup folder {folder}") from None


def _free_name(folder: Path, stem: str) -> Path:
    candidate = folder / f"{stem}{SUFFIX}"
    while candidate.exists():
        candidate = folder / f"{stem}-{secrets.token_hex(2)}{SUFFIX}"
    return candidate


def sweep_stale(folder: Path, *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove what a crashed backup left in ``folder`` (its hidden temporary file and
    snapshot, ciphertext either way) once untouched for ``older_than`` seconds, so a
    backup still being written by another process is left alone. Returns what went."""
    removed: list[Path] = []
    cutoff = time.time() - older_than
    for path in folder.glob(".tacit-backup-*"):
        if not (".tmp-" in path.name or ".snapshot-" in path.name):
            continue
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    return removed


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


def _write_file(
    tmp: Path, hdr: BackupHeader, snapshot: Path, mac_key: crypto.SymmetricKey,
    progress: ProgressFn,
) -> int:  # fmt: skip
    """Write the whole backup to ``tmp`` (new, 0600) and fsync it, reporting each MiB.
    Returns its size. Raises StorageError."""
    encoded = hdr.encode()
    try:
        body_len = snapshot.stat().st_size
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, snapshot.open("rb") as body:
            digest = hashlib.sha256()
            for part in (_PREFIX.pack(MAGIC, len(encoded)), encoded, _BODY_LEN.pack(body_len)):
                digest.update(part)
                out.write(part)
            copied = 0
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                copied += len(chunk)
                progress(copied / body_len)
            if copied != body_len:
                raise StorageError("the database snapshot changed while it was copied")
            d = digest.digest()
            tag = crypto.mac(mac_key, TAG_DOMAIN + d)
            out.write(tag)
            out.write(crypto.sha256(CHECKSUM_DOMAIN + d + tag))
            out.flush()
            os.fsync(out.fileno())
            return out.tell()
    except OSError as exc:
        raise StorageError(f"could not write the backup: {exc.strerror or 'I/O error'}") from None


# -- read --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParsedBackup:
    header: BackupHeader
    digest: bytes  # D: SHA-256 of everything before the tag
    tag: bytes


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise IntegrityError("the backup is truncated")
    return data


@dataclass(frozen=True, slots=True)
class _Layout:
    size: int
    header: bytes  # the encoded header
    raw_body_len: bytes
    body_len: int


def _read_layout(f: BinaryIO) -> _Layout:
    """Read and check a backup's frame up to its body: magic, header, body length, and
    that the file is exactly as long as they say. Raises IntegrityError."""
    size = os.fstat(f.fileno()).st_size
    if size < _PREFIX.size + _BODY_LEN.size + _TRAILER:
        raise IntegrityError("the backup is truncated")
    magic, header_len = _PREFIX.unpack(_read_exact(f, _PREFIX.size))
    if magic != MAGIC:
        raise IntegrityError("this is not a Tacit backup")
    if header_len > MAX_HEADER_BYTES:
        raise IntegrityError("the backup header is damaged")
    encoded = _read_exact(f, header_len)
    raw_len = _read_exact(f, _BODY_LEN.size)
    (body_len,) = _BODY_LEN.unpack(raw_len)
    if size != _PREFIX.size + header_len + _BODY_LEN.size + body_len + _TRAILER:
        raise IntegrityError("the backup is truncated or has bytes added")
    return _Layout(size, encoded, raw_len, body_len)


def read_header(path: Path) -> tuple[BackupHeader, int]:
    """A backup's header and file size, its frame checked but not its checksum or MAC
    (listing a folder: ``read_backup`` and verify do the rest). Raises IntegrityError,
    UnsupportedVersionError, StorageError."""
    try:
        with path.open("rb") as f:
            layout = _read_layout(f)
    except OSError as exc:
        raise StorageError(f"cannot read {path.name}: {exc.strerror}") from None
    return _decode_header(layout.header), layout.size


def read_backup(
    path: Path, body_dest: Path | None = None, progress: ProgressFn | None = None
) -> ParsedBackup:
    """Check a backup's structure, size and checksum, copying its body to ``body_dest``
    on the way (``progress`` gets the fraction of the body read, per MiB).
    Authenticates nothing yet (the MAC needs the DB key). Raises IntegrityError,
    UnsupportedVersionError, InvalidInputError (no such file)."""
    report = progress or _ignore
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InvalidInputError(f"no such backup file: {path.name}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path.name}: {exc.strerror}") from None
    with f:
        layout = _read_layout(f)
        encoded, raw_len, body_len = layout.header, layout.raw_body_len, layout.body_len
        digest = hashlib.sha256(_PREFIX.pack(MAGIC, len(encoded)) + encoded + raw_len)
        with _body_sink(body_dest) as sink:
            left = body_len
            while left:
                chunk = _read_exact(f, min(_CHUNK, left))
                digest.update(chunk)
                sink(chunk)
                left -= len(chunk)
                report(1.0 - left / body_len)
        d = digest.digest()
        tag = _read_exact(f, 32)
        checksum = _read_exact(f, 32)
    # The checksum before the header is even parsed: a damaged version number is damage
    # (integrity_error), not a newer format.
    if not crypto.constant_time_equal(crypto.sha256(CHECKSUM_DOMAIN + d + tag), checksum):
        raise IntegrityError("the backup is damaged (checksum mismatch)")
    return ParsedBackup(_decode_header(encoded), d, tag)


@contextlib.contextmanager
def _body_sink(dest: Path | None) -> Iterator[Callable[[bytes], object]]:
    if dest is None:
        yield lambda chunk: None
        return
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            yield out.write
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise StorageError(f"could not write the restored database: {exc.strerror}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise IntegrityError("the backup header has a malformed field")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("the backup header has a malformed field") from None


def _field(doc: object, key: str, kind: type) -> Any:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise IntegrityError(f"the backup header field '{key}' is missing or malformed")
    return value


def _decode_header(encoded: bytes) -> BackupHeader:
    try:
        doc = json.loads(encoded.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise IntegrityError("the backup header is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise IntegrityError("the backup header is damaged")
    version = _field(doc, "format_version", int)
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"backup format {version} is not one this Tacit reads ({FORMAT_VERSION})"
        )
    kdf_doc = _field(doc, "kdf", dict)
    slots = _field(doc, "slots", dict)
    p_doc, r_doc = _field(slots, "passphrase", dict), _field(slots, "recovery", dict)
    return BackupHeader(
        vault_id=_field(doc, "vault_id", str),
        created_at=_field(doc, "created_at", str),
        kdf=KdfParams(
            algorithm=_field(kdf_doc, "algorithm", str),
            version=_field(kdf_doc, "version", int),
            memory_kib=_field(kdf_doc, "memory_kib", int),
            iterations=_field(kdf_doc, "iterations", int),
            parallelism=_field(kdf_doc, "parallelism", int),
        ),
        kdf_salt=_unb64(kdf_doc.get("salt")),
        passphrase=header.Slot(_unb64(p_doc.get("nonce")), _unb64(p_doc.get("ciphertext"))),
        recovery=header.Slot(
            _unb64(r_doc.get("nonce")), _unb64(r_doc.get("ciphertext")), _unb64(r_doc.get("salt"))
        ),
    )


def unlock_backup(
    parsed: ParsedBackup, passphrase: Passphrase | None, recovery_key: str | None
) -> DbKey:
    """Unwrap the DB key and authenticate the whole file with it. Raises
    WrongPassphraseError, WrongRecoveryKeyError, WeakKdfError, IntegrityError."""
    hdr = parsed.header
    if recovery_key is not None:
        db_key = keyslots.open_backup_with_recovery_key(hdr.vault_id, hdr.recovery, recovery_key)
    elif passphrase is not None:
        db_key = keyslots.open_backup_with_passphrase(
            hdr.vault_id, hdr.kdf, hdr.kdf_salt, hdr.passphrase, passphrase
        )
    else:
        raise InvalidInputError("a backup opens with the passphrase or the recovery key")
    mac_key = keyslots.backup_mac_key(db_key, hdr.vault_id)
    try:
        ok = crypto.mac_ok(mac_key, TAG_DOMAIN + parsed.digest, parsed.tag)
    finally:
        mac_key.wipe()
    if not ok:
        db_key.wipe()
        raise IntegrityError("the backup was altered (authentication failed)")
    return db_key
