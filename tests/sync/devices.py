"""Two (or more) vaults syncing through the in-memory server of tests/sync/fakes.py: the
engine's unit tests and the tests built on them share these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.sync.engine import SyncEngine, SyncResult
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.sync.fakes import FakeServer, FakeTransport

MASTER = bytes(range(32))


class Device:
    def __init__(self, directory: Path, clock: ManualClock, server: FakeServer) -> None:
        self.vault = VaultService(directory, clock=clock, keychain=MemoryKeychain())
        self.vault.create(Passphrase.from_str(PASSPHRASE))
        self.vault.sync_store().put({"master_key": MASTER.hex()})
        self.vault.sync_store().enqueue_all()
        self.transport = FakeTransport(server)

    def engine(self, **kwargs: Any) -> SyncEngine:
        return SyncEngine(self.vault.sync_store(), self.transport, SymmetricKey(MASTER), **kwargs)

    def sync(self, **kwargs: Any) -> SyncResult:
        return self.engine(**kwargs).sync()

    def records(self) -> dict[str, Any]:
        store = self.vault.sync_store()
        clients = {c.id: store.content("client", c.id) for c in self.vault.list_clients()}
        notes = {n.id: store.content("note", n.id) for n in self.vault.list_notes(limit=1000)}
        addenda = {a.id for n in notes for a in self.vault.addenda(n)}
        return {"clients": clients, "notes": notes, "addenda": addenda}


def converge(*devices: Device) -> None:
    for _ in range(2):
        for d in devices:
            d.sync()


def server_items(server: FakeServer, kind: str) -> int:
    return sum(1 for i in server.items.values() if i["kind"] == kind)
