"""Crash-safe file writes for the few files Tacit writes outside SQLite.

Invariant: ``atomic_write`` leaves either the old file or the complete new one at
``path``, never a partial file, whatever happens (crash, full disk, power loss after the
directory fsync). Only ciphertext or wrapped keys are ever written this way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from app.errors import StorageError


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically. Raises StorageError (old file kept)."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"could not write {path.name}: {exc.strerror or 'I/O error'}") from None


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) readable by the owner only."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise StorageError(f"could not create the vault folder: {exc.strerror}") from None


def lock_file(path: Path) -> int:
    """Open (creating, mode 0600) and exclusively lock ``path``; returns the descriptor
    for ``unlock_file``. Blocks until another process releases it. Where there is no
    ``fcntl`` (Windows) the descriptor is returned unlocked: one process per vault there.
    Raises StorageError."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError("cannot open the vault's lock file") from exc
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        os.close(fd)
        raise StorageError("cannot lock the vault's lock file") from exc
    return fd


def unlock_file(fd: int) -> None:
    """Release and close a descriptor from ``lock_file`` (closing releases the lock)."""
    with contextlib.suppress(OSError):
        os.close(fd)
