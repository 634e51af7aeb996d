"""Schema migration 6 (the outbox keeps no blobs) on a vault created at schema 5 whose
last push reached the server but whose answer was lost: after the upgrade the next sync
recognises those pushes as its own (nothing written twice, no conflict), and a second
device converges with every record exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.sync import protocol
from app.sync.items import encrypt_item, wrap_items_key
from app.vault import db as dbmod
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.keychain import MemoryKeychain
from app.vault.schema import MIGRATIONS
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.sync.devices import MASTER, Device
from tests.sync.fakes import FakeServer, FakeTransport


class Schema5Device(Device):
    """A device whose vault is made by this release's code at schema 5. The triggers of
    schema 4 queue every record, so nothing else is queued by hand."""

    def __init__(self, directory: Path, clock: ManualClock, server: FakeServer) -> None:
        self.keychain = MemoryKeychain()
        self.vault = VaultService(directory, clock=clock, keychain=self.keychain)
        self.vault.create(Passphrase.from_str(PASSPHRASE))
        self.vault.sync_store().put({"master_key": MASTER.hex()})
        self.transport = FakeTransport(server)


def _push_as_schema_5_did(vault: VaultService, server: FakeServer, device: Device) -> set[str]:
    """Seal every queued row, store the blob with it (the schema-5 outbox) and push the
    lot to the server, then "crash" before the acknowledgement. Returns the item ids."""
    store = vault.sync_store()
    engine = device.engine()
    key_id = engine.ensure_items_key()
    keys = engine.keys()
    rows = vault._db.query("SELECT kind, ref, gen FROM sync_outbox")  # type: ignore[union-attr]
    request: list[protocol.PushItem] = []
    for kind, ref, gen in rows:
        item_id = store.item_id(kind, ref)
        if kind == "items_key":
            blob, kid, rev = wrap_items_key(SymmetricKey(MASTER), keys[ref]), "master", 0
        else:
            content = store.content(kind, ref)
            assert content is not None
            blob = encrypt_item(keys[key_id], item_id, kind, {**content, "rev": 1})
            kid, rev = key_id, 1
        etag = protocol.item_etag(kind=kind, key_id=kid, deleted=False, blob=blob)
        with vault._db.transaction() as conn:  # type: ignore[union-attr]
            conn.execute(
                "UPDATE sync_outbox SET prepared_gen = ?, prepared_rev = ?, prepared_key_id = ?, "
                "prepared_blob = ?, prepared_etag = ? WHERE kind = ? AND ref = ?",
                (gen, rev, kid, blob, etag, kind, ref),
            )
        request.append({"id": item_id, "kind": kind, "expected_etag": None, "deleted": False,
                        "key_id": kid, "blob": protocol.b64encode(blob)})  # fmt: skip
    results = server.push(request)["results"]
    assert all(r["status"] == "ok" for r in results)
    return {r["id"] for r in results}


def test_migration_6_keeps_pending_pushes_recognisable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer()
    clock = ManualClock()
    monkeypatch.setattr(dbmod, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= 5])
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", 5)
    a = Schema5Device(tmp_path / "a", clock, server)
    client = a.vault.add_client("Schema Five")
    notes = {a.vault.create_note(client.id, "soap", body=f"written at schema 5, {i}").id
             for i in range(3)}  # fmt: skip
    assert a.vault._db is not None and a.vault._db.one("PRAGMA user_version")[0] == 5
    pushed = _push_as_schema_5_did(a.vault, server, a)
    seqs = {item_id: server.items[item_id]["seq"] for item_id in pushed}
    a.vault.lock()
    monkeypatch.undo()

    a.vault = VaultService(tmp_path / "a", clock=clock, keychain=a.keychain)
    a.vault.unlock(Passphrase.from_str(PASSPHRASE))
    db = a.vault._db
    assert db is not None and db.one("PRAGMA user_version")[0] == MIGRATIONS[-1][0]
    columns = {r[1] for r in db.query("PRAGMA table_info(sync_outbox)")}
    assert "prepared_blob" not in columns
    kept = db.query("SELECT count(*) FROM sync_outbox WHERE prepared_etag IS NOT NULL")[0][0]
    assert kept >= len(notes) + 1  # the prepared state survived the upgrade

    result = a.sync()
    assert result.conflicts == 0 and result.refused == []
    # every push of the schema-5 run was recognised: not one of them written again
    assert {i: server.items[i]["seq"] for i in pushed} == seqs
    queued = {r[0] for r in db.query("SELECT ref FROM sync_outbox WHERE kind = 'note'")}
    assert not queued & notes
    assert a.vault.check() == []

    b = Device(tmp_path / "b", clock, server)
    for _ in range(2):
        a.sync()
        b.sync()
    assert a.records() == b.records()
    assert set(b.records()["notes"]) == notes
    assert sum(1 for i in server.items.values() if i["kind"] == "note") == len(notes)
    a.vault.lock()
    b.vault.lock()
