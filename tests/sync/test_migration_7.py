"""Schema migration 7 (templates and signers sync) on a vault whose older Tacit refused
items of those kinds: the refusals go, the cursor is reset, and the next sync brings
them (items already known are skipped, so nothing is applied twice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.vault import db as dbmod
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.schema import MIGRATIONS
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.sync.devices import MASTER, Device, converge
from tests.sync.fakes import FakeServer, FakeTransport


class OlderDevice(Device):
    """A vault made at schema 6 (without the tables of migration 7)."""

    def __init__(self, directory: Path, clock: ManualClock, server: FakeServer) -> None:
        self.vault = VaultService(directory, clock=clock, keychain=MemoryKeychain())
        self.vault.create(Passphrase.from_str(PASSPHRASE))
        self.vault.sync_store().put({"master_key": MASTER.hex()})
        self.transport = FakeTransport(server)


def test_items_refused_before_the_upgrade_arrive_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, clock = FakeServer(), ManualClock()
    a = Device(tmp_path / "a", clock, server)
    a.engine().ensure_items_key()
    client = a.vault.add_client("Upgrade Client")
    a.vault.create_note(client.id, "soap", body="before the upgrade")
    template = a.vault.add_template("Upgrade template", "progress", ["One"])
    a.sync()

    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 6])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", 6)
    b = OlderDevice(tmp_path / "b", clock, server)
    # What the older Tacit left: the cursor past everything, the template refused.
    store = b.vault.sync_store()
    cursor = server.pull(None, 1000)["cursor"]
    assert b.vault._db is not None
    with b.vault._db.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('sync_cursor', ?)", (cursor,))
    store.refuse(template.id, "template", "could not be applied")
    b.vault.lock()
    monkeypatch.undo()

    b.vault = VaultService(tmp_path / "b", clock=clock, keychain=b.vault.keychain)
    b.vault.unlock(Passphrase.from_str(PASSPHRASE))
    assert b.vault.sync_store().refused() == []
    converge(a, b)
    assert b.vault.template(template.id).name == "Upgrade template"
    assert a.records() == b.records()
    assert b.vault.verify_audit().ok
