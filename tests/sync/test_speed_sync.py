"""What the sync speed work changed, checked for correctness: pulled pages applied one
transaction each (a crash between pages loses and duplicates nothing; a child whose
parent comes in a later page waits for it), pushes recognised as our own without the
blob kept, a sync that leaves nothing queued, and one transport kept across syncs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from app.errors import OfflineError
from app.sync import protocol
from app.sync.client import Session
from app.sync.engine import SyncResult
from app.sync.service import DEFER_AUDIT_S, SyncService
from app.vault.clock import ManualClock
from tests.sync.devices import MASTER, Device, converge, server_items
from tests.sync.fakes import Boom, FakeServer, FakeTransport


def test_a_crash_between_page_applies_loses_and_duplicates_nothing(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Paged Client")
    ids = {a.vault.create_note(client.id, "soap", body=f"paged words {i}").id for i in range(10)}
    a.sync()
    applied = {"n": 0}

    def crash_after_second_page(step: str) -> None:
        if step == "applied":
            applied["n"] += 1
            if applied["n"] == 2:
                raise Boom(step)

    with pytest.raises(Boom):
        b.sync(fault=crash_after_second_page, pull_page=4)
    store = b.vault.sync_store()
    cursor = store.get("cursor")
    assert cursor is not None  # the second page's cursor was stored with its items
    assert 0 < len(b.records()["notes"]) < len(ids)
    assert b.vault.check() == []  # notes indexed (FTS) in the same transaction
    result = b.sync(pull_page=4)
    assert result.refused == [] and result.conflicts == 0
    assert set(b.records()["notes"]) == ids
    assert a.records() == b.records()
    assert server_items(server, "note") == len(ids)
    assert b.vault.check() == []
    assert len(b.vault.search("paged")) == len(ids)


def test_a_note_whose_client_comes_in_a_later_page_waits_for_it(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Late Client")
    ids = {a.vault.create_note(client.id, "soap", body=f"early note {i}").id for i in range(5)}
    a.sync()
    a.vault.update_client(client.id, phone="555-0100")  # the client now sorts last
    a.sync()
    applied = {"n": 0}

    def crash_after_first_page(step: str) -> None:
        if step == "applied":
            applied["n"] += 1
            if applied["n"] == 1:
                raise Boom(step)

    with pytest.raises(Boom):
        b.sync(fault=crash_after_first_page, pull_page=3)
    # The first page held notes back (their client had not arrived): its cursor was
    # not stored, and nothing was refused.
    assert b.vault.sync_store().get("cursor") is None
    assert b.vault.sync_store().refused() == []
    result = b.sync(pull_page=3)
    assert result.refused == []
    assert set(b.records()["notes"]) == ids
    assert a.records() == b.records()


def test_a_push_whose_answer_was_lost_is_recognised_without_its_blob(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Lost Answer")
    note = a.vault.create_note(client.id, "soap", body="sent once")
    a.transport.lose_push_response = 1
    with pytest.raises(Boom):
        a.sync()
    a.transport.lose_push_response = None
    seq = server.seq
    result = SyncResult()
    a.engine().push(result)  # no pull first: the server answers "conflict" with our etag
    assert result.conflicts == 0 and result.pushed >= 3
    assert server.seq == seq  # recognised: nothing written twice
    assert a.vault.sync_store().pending_count() == 0
    converge(a, b)
    assert b.vault.get_note(note.id).body == "sent once"
    assert server_items(server, "note") == 1


class _Http:
    """The SyncService's view of an HttpTransport, over the in-memory server."""

    made: ClassVar[list[_Http]] = []

    def __init__(self, server: FakeServer, url: str, **kwargs: Any) -> None:
        self.fake = FakeTransport(server)
        self.session: Session | None = kwargs.get("session")
        self.closed = False
        _Http.made.append(self)

    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        if self.closed:
            raise RuntimeError("closed")
        return self.fake.pull(cursor, limit)

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        if self.closed:
            raise RuntimeError("closed")
        return self.fake.push(items)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def service(devices: tuple[Device, Device], server: FakeServer) -> Iterator[SyncService]:
    a, _ = devices
    _Http.made = []
    svc = SyncService(a.vault, transport_factory=lambda url, **kw: _Http(server, url, **kw))  # type: ignore[arg-type, return-value]
    svc.store.put({"server": "https://sync.example.org", "master_key": MASTER.hex()})
    svc.sessions.save(Session("access", 2**62, "refresh", 2**62))
    yield svc
    svc.close()


def test_a_sync_leaves_nothing_queued(service: SyncService, server: FakeServer) -> None:
    vault = service.vault
    vault.create_note(vault.add_client("Queued Client").id, "soap", body="to push")
    first = service.sync()
    assert first["pushed"] >= 3
    status = service.sync_status()
    assert status["pending"] == 0, status["pending_by_kind"]
    assert status["last_sync"] is not None and status["last_result"] == first
    # the run's audit entry is in the trail and went out with the push it describes
    entries = [e for e in vault.audit_entries() if e.action == "sync"]
    assert len(entries) == 1 and "pulled 0" in (entries[0].detail or "")
    assert server_items(server, "audit") >= 1
    service.sync()  # nothing else changed: still nothing left queued
    assert service.sync_status()["pending"] == 0


def test_the_transport_is_kept_across_syncs_and_closed(service: SyncService) -> None:
    service.sync()
    service.sync()
    assert len(_Http.made) == 1 and not _Http.made[0].closed
    service.close()
    assert _Http.made[0].closed
    service.sync()
    assert len(_Http.made) == 2
    # signing in again stores a new session: the same connection gets it
    service.sessions.save(Session("access-2", 2**62, "refresh-2", 2**62))
    service.sync()
    assert len(_Http.made) == 2 and _Http.made[1].session is not None
    assert _Http.made[1].session.access_token == "access-2"
    # a failed run ends the connection; the next run starts a fresh one
    _Http.made[1].fake.offline = True
    with pytest.raises(OfflineError):
        service.sync()
    assert _Http.made[1].closed
    service.sync()
    assert len(_Http.made) == 3


def test_an_app_sync_lets_fresh_audit_entries_wait_for_the_next_push(
    service: SyncService, devices: tuple[Device, Device], clock: ManualClock
) -> None:
    _, b = devices
    vault = service.vault
    service.sync()
    assert service.sync_status()["pending"] == 0
    client = b.vault.add_client("Deferred Client")
    b.vault.create_note(client.id, "soap", body="written on b")
    b.sync()

    # A pull-only run: its audit entry and settings are written, nothing is pushed.
    pulled = service.sync(defer_audit=True)
    assert pulled["pulled"] >= 2 and pulled["pushed"] == 0
    status = service.sync_status()
    assert status["pending_by_kind"] == {"audit": 1}
    assert status["last_result"] == pulled
    assert "pulled" in (vault.audit_entries()[-1].detail or "")
    # Nothing new: no push, no new entry; the last sync time still moves.
    clock.advance(30)
    idle = service.sync(defer_audit=True)
    assert idle["pushed"] == 0 and service.sync_status()["pending_by_kind"] == {"audit": 1}
    # Once the oldest waiting entry is older than DEFER_AUDIT_S, it goes out.
    clock.advance(DEFER_AUDIT_S)
    assert service.sync(defer_audit=True)["pushed"] >= 1
    assert service.sync_status()["pending"] == 0
    # A change of the clinician's is pushed at once, with whatever audit is waiting.
    b.vault.create_note(client.id, "soap", body="again from b")
    b.sync()
    assert service.sync(defer_audit=True)["pushed"] == 0
    vault.create_note(vault.list_clients()[0].id, "soap", body="written on a")
    assert service.sync(defer_audit=True)["pushed"] >= 3  # note, its pull's and its own entries
    assert service.sync_status()["pending"] == 0
    # The CLI (no defer_audit) pushes a pull-only run's entry at once, as before.
    b.vault.create_note(client.id, "soap", body="third from b")
    b.sync()
    assert service.sync()["pushed"] == 1
    assert service.sync_status()["pending"] == 0
