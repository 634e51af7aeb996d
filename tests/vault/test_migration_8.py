"""Schema migration 8 (practice mode): a vault written at schema 7 opens, keeps every
record, gains the practice tables, and none of them is queued for the member's own
sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.vault import db as dbmod
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.keychain import NoKeychain
from app.vault.practicestore import PracticeRow
from app.vault.schema import MIGRATIONS
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE

PRACTICE_TABLES = {
    "practice_state", "practice_keys", "practice_items", "practice_outbox",
    "practice_published", "practice_audit",
}  # fmt: skip


def test_vault_from_schema_7_upgrades_and_keeps_its_data(
    vault_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 7])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", 7)
    svc = VaultService(vault_dir, keychain=NoKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    cid = svc.add_client("Before Eight", email="b8@example.org").id
    notes = [svc.create_note(cid, "free", body=f"entry {i} about orchards") for i in range(4)]
    svc.sign_note(notes[0].id)
    svc.add_addendum(notes[0].id, "later thought")
    svc.add_template("Mine", "progress", ["One", "Two"])
    assert svc._db is not None
    assert svc._db.one("PRAGMA user_version")[0] == 7
    tables_7 = {r[0] for r in svc._db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not tables_7 & PRACTICE_TABLES
    kept = ("clients", "notes", "addenda", "audit", "sync_outbox", "user_templates")
    counts = {t: svc._db.one(f"SELECT count(*) FROM {t}")[0] for t in kept}  # noqa: S608
    svc.lock()
    monkeypatch.undo()

    svc = VaultService(vault_dir, keychain=NoKeychain())
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    assert svc._db is not None
    assert svc._db.one("PRAGMA user_version")[0] == 8 == MIGRATIONS[-1][0]
    for table, count in counts.items():
        got = svc._db.one(f"SELECT count(*) FROM {table}")[0]  # noqa: S608
        # The unlock (and its audit entry) adds to the trail and its queue only.
        assert got >= count if table in ("audit", "sync_outbox") else got == count, table
    assert svc.get_client(cid).email == "b8@example.org"
    assert [h.id for h in svc.search("orchards")] == [n.id for n in reversed(notes)]
    assert svc.verify_note(notes[0].id).ok
    assert svc.check() == [] and svc.verify_audit().ok

    tables = {r[0] for r in svc._db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables >= PRACTICE_TABLES
    triggers = svc._db.query("SELECT name, tbl_name FROM sqlite_master WHERE type='trigger'")
    assert not [name for name, table in triggers if table in PRACTICE_TABLES]
    store = svc.practice_store()
    store.put_key("c1", 1, SymmetricKey.generate())
    store.upsert_items([PracticeRow("c1", "i1", "note", {"t": "x"}, "a", "2026-01-01", 1, 1)])
    assert [r.item_id for r in store.items(kind="note")] == ["i1"]
    svc.lock()
