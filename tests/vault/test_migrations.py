"""Schema migrations: a vault written by an older schema opens, keeps its records, and
searches after the upgrade; a newer schema is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import UnsupportedVersionError
from app.vault import db as dbmod
from app.vault.crypto import Passphrase
from app.vault.keychain import NoKeychain
from app.vault.schema import MIGRATIONS
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE


def test_vault_from_schema_2_upgrades_and_searches(
    vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Create the vault as the schema-2 release did (its migrations and nothing newer).
    old = [m for m in MIGRATIONS if m[0] <= 2]
    monkeypatch.setattr(dbmod, "MIGRATIONS", old)
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", 2)
    svc = VaultService(vault_dir, keychain=NoKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    cid = svc.add_client("Upgrade").id
    notes = [svc.create_note(cid, "free", body=f"entry {i} about gardening") for i in range(5)]
    assert svc._db is not None
    assert svc._db.one("PRAGMA user_version")[0] == 2
    svc.lock()
    monkeypatch.undo()

    svc = VaultService(vault_dir, keychain=NoKeychain())
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    assert svc._db is not None
    assert svc._db.one("PRAGMA user_version")[0] == MIGRATIONS[-1][0]
    hits = svc.search("gardening")
    assert [h.id for h in hits] == [n.id for n in reversed(notes)]  # newest first
    assert svc.check() == []
    assert svc.verify_audit().ok
    svc.lock()


def test_newer_schema_is_refused(service: VaultService) -> None:
    assert service._db is not None
    service._db.conn.execute("PRAGMA user_version = 999")
    service.lock()
    with pytest.raises(UnsupportedVersionError):
        service.unlock(Passphrase.from_str(PASSPHRASE))
