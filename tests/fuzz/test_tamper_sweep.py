"""Tamper sweep: random bytes flipped in the vault database, the vault header, a backup
file and synced item blobs; every change must be detected.

"Detected" means what the user would see: the vault refuses to unlock or ``tacit check``
reports a problem (database, header), ``tacit backup verify`` fails (backup), the client
refuses the item (blob) — each with the project's own error, never another exception.
The one exception allowed is a change that is no change at all after parsing: JSON
whitespace in the header that becomes other whitespace, or the unused low bits of the
last base64 character of a blob field. Those decode to exactly the original value (the
test proves it) and are counted apart as "no-op".

Positions and values come from a seeded generator: the same sweep in every CI run; the
soak run (``pytest -m soak``) uses a fresh seed, printed so a failure can be replayed
with TACIT_TAMPER_SEED.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.errors import TacitError
from app.sync.items import (
    ItemRefusedError,
    ItemsKey,
    decrypt_item,
    encrypt_item,
    unwrap_items_key,
    wrap_items_key,
)
from app.vault import backup, header
from app.vault.backup_restore import verify_backup
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.fuzz.conftest import Budget, ceiling

PASS = Passphrase.from_str(PASSPHRASE)


@dataclass
class Tally:
    """What one sweep did: bytes flipped, changes detected, no-op changes."""

    name: str
    flipped: int = 0
    detected: int = 0
    no_op: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return json.dumps({"sweep": self.name, "flipped": self.flipped,
                           "detected": self.detected, "no_op": self.no_op,
                           "errors": self.errors}, sort_keys=True)  # fmt: skip


def _seed(budget: Budget) -> int:
    if "TACIT_TAMPER_SEED" in os.environ:
        return int(os.environ["TACIT_TAMPER_SEED"])
    return int(time.time()) if budget.soak else 9


def _record(tally: Tally, budget: Budget, seed: int) -> None:
    print(f"tamper sweep (seed {seed}):", tally.line())
    target = os.environ.get("TACIT_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(tally.line() + "\n")
    assert tally.flipped == tally.detected + tally.no_op
    assert tally.detected > 0


def _flip(
    data: bytes, rng: random.Random, span: tuple[int, int] | None = None
) -> tuple[int, bytes]:
    """One byte XORed with a random non-zero value (a real change, always)."""
    low, high = span or (0, len(data))
    index = rng.randrange(low, high)
    raw = bytearray(data)
    raw[index] ^= rng.randrange(1, 256)
    return index, bytes(raw)


def _detected(tally: Tally, attempt: Callable[[], object]) -> bool:
    """Run ``attempt``; True when it raised a TacitError (counted by code)."""
    with ceiling(30):
        try:
            attempt()
        except TacitError as err:
            tally.errors[err.code] = tally.errors.get(err.code, 0) + 1
            return True
    return False


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="tacit-tamper-", dir=shm) as name:
        yield Path(name)


@dataclass(frozen=True)
class Files:
    directory: Path
    keychain: MemoryKeychain
    backup: Path
    recovery: str


@pytest.fixture(scope="module")
def vault_files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A locked vault with records, signatures and an audit trail, and a backup of it."""
    base = tmp_path_factory.mktemp("tamper")
    keychain = MemoryKeychain()
    svc = VaultService(base / "vault", keychain=keychain)
    recovery = svc.create(PASS)
    for c in range(3):
        client = svc.add_client(f"Tamper Client {c}", email=f"c{c}@example.org").id
        for n in range(6):
            note = svc.create_note(client, "soap", title=f"T{c}.{n}", body=f"body {c} {n}\n" * 40)
            if n % 3 == 0:
                svc.sign_note(note.id)
                svc.add_addendum(note.id, "addendum")
    made = backup.create_backup(svc, base / "backups").file
    svc.lock()
    assert not (base / "vault" / "vault.db-wal").exists() or (
        (base / "vault" / "vault.db-wal").stat().st_size == 0
    )
    return Files(base / "vault", keychain, made, recovery)


def _open_and_check(directory: Path, keychain: MemoryKeychain) -> None:
    """Unlock, then everything ``tacit check`` and ``tacit audit verify`` look at.
    Raises TacitError on anything found."""
    svc = VaultService(directory, keychain=keychain)
    svc.unlock(PASS)
    try:
        problems = svc.check()
        if problems:
            from app.errors import IntegrityError

            raise IntegrityError(f"{len(problems)} problem(s)")
        verdict = svc.verify_audit()
        if not verdict.ok:
            from app.errors import IntegrityError

            raise IntegrityError("audit chain broken")
    finally:
        svc.lock()


def test_database_bytes(budget: Budget, vault_files: Files) -> None:
    directory, keychain = vault_files.directory, vault_files.keychain
    _open_and_check(directory, keychain)  # the untouched vault passes
    data = (directory / "vault.db").read_bytes()
    seed, tally = _seed(budget), Tally("vault.db")
    rng = random.Random(seed)
    for _ in range(budget.examples(fast=20, soak=1500)):
        index, bad = _flip(data, rng)
        with _scratch() as tmp:
            copy = tmp / "vault"
            shutil.copytree(directory, copy)
            (copy / "vault.db").write_bytes(bad)
            tally.flipped += 1
            assert _detected(tally, lambda c=copy: _open_and_check(c, keychain)), (
                f"flipped byte {index} of vault.db went unnoticed (seed {seed})"
            )
            tally.detected += 1
    _record(tally, budget, seed)


def test_header_bytes(budget: Budget, vault_files: Files) -> None:
    directory, keychain = vault_files.directory, vault_files.keychain
    data = (directory / "vault.header").read_bytes()
    original = header.decode(data)
    seed, tally = _seed(budget), Tally("vault.header")
    rng = random.Random(seed)
    for _ in range(budget.examples(fast=40, soak=3000)):
        index, bad = _flip(data, rng)
        with _scratch() as tmp:
            copy = tmp / "vault"
            shutil.copytree(directory, copy)
            (copy / "vault.header").write_bytes(bad)
            tally.flipped += 1
            if _detected(tally, lambda c=copy: _open_and_check(c, keychain)):
                tally.detected += 1
                continue
            # Opened: only acceptable if the header says exactly what it said.
            assert header.decode(bad) == original, (
                f"flipped byte {index} of vault.header went unnoticed (seed {seed})"
            )
            assert chr(data[index]) in " \n" and chr(bad[index]) in " \t\n\r"
            tally.no_op += 1
    _record(tally, budget, seed)


def test_backup_bytes(budget: Budget, vault_files: Files) -> None:
    made, recovery = vault_files.backup, vault_files.recovery
    assert verify_backup(made, passphrase=PASS).notes == 18  # the untouched file verifies
    assert verify_backup(made, recovery_key=recovery).notes == 18
    data = made.read_bytes()
    seed, tally = _seed(budget), Tally("backup")
    rng = random.Random(seed)
    # Half the flips in the header and frame (the first bytes), half anywhere.
    head = 20 + int.from_bytes(data[8:12], "big")  # magic, length, header, body length
    for n in range(budget.examples(fast=20, soak=1500)):
        index, bad = _flip(data, rng, (0, head) if n % 2 else None)
        with _scratch() as tmp:
            path = tmp / made.name
            path.write_bytes(bad)
            tally.flipped += 1
            secret = {"recovery_key": recovery} if n % 3 == 0 else {"passphrase": PASS}
            assert _detected(tally, lambda p=path, s=secret: verify_backup(p, **s)), (  # type: ignore[arg-type]
                f"flipped byte {index} of the backup went unnoticed (seed {seed})"
            )
            tally.detected += 1
    _record(tally, budget, seed)


ITEM_ID = "00000000-0000-4000-8000-0000000000aa"


def test_synced_blobs(budget: Budget) -> None:
    items_key = ItemsKey("k1", SymmetricKey(bytes(range(32))), generation=2, created_at=7)
    master = SymmetricKey(bytes(32))
    content = {"rev": 3, "title": "t", "body": "synced body " * 20}
    blobs = {
        "note": encrypt_item(items_key, ITEM_ID, "note", content),
        "items_key": wrap_items_key(master, items_key),
    }
    opens: dict[str, Callable[[bytes], object]] = {
        "note": lambda b: decrypt_item({"k1": items_key}, ITEM_ID, "note", "k1", b),
        "items_key": lambda b: unwrap_items_key(master, "k1", b).key.reveal(),
    }
    seed, tally = _seed(budget), Tally("synced blobs")
    rng = random.Random(seed)
    for n in range(budget.examples(fast=400, soak=20000)):
        kind = "note" if n % 4 else "items_key"
        original = opens[kind](blobs[kind])
        index, bad = _flip(blobs[kind], rng)
        tally.flipped += 1
        try:
            with ceiling(10):
                got = opens[kind](bad)
        except ItemRefusedError as err:
            tally.errors[err.code] = tally.errors.get(err.code, 0) + 1
            tally.detected += 1
            continue
        # Accepted: only a change that decodes to the same bytes (base64 slack bits).
        assert got == original, f"flipped byte {index} of a {kind} blob accepted (seed {seed})"
        assert _decoded_fields(bad) == _decoded_fields(blobs[kind]), (index, seed)
        tally.no_op += 1
    _record(tally, budget, seed)


def _decoded_fields(blob: bytes) -> dict[str, object]:
    import base64

    doc = json.loads(blob)
    return {k: base64.b64decode(v) if k in ("wk", "c", "k") else v for k, v in doc.items()}
