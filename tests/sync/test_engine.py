"""The sync engine against an in-memory server: convergence, conflicts that keep both
texts, crash-at-every-step idempotency, refusal of tampered, swapped and rolled-back
items, pagination, offline."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.errors import OfflineError
from app.sync.engine import SyncResult
from app.sync.merge import merge_note
from app.vault.clock import ManualClock
from tests.sync.devices import Device, converge, server_items
from tests.sync.fakes import Boom, FakeServer


def test_offline_edits_on_both_sides_converge(devices: tuple[Device, Device]) -> None:
    a, b = devices
    ca = a.vault.add_client("Alex Example")
    a.vault.create_note(ca.id, "soap", body="A's words")
    cb = b.vault.add_client("Blake Example")
    nb = b.vault.create_note(cb.id, "soap", body="B's words")
    b.vault.edit_note(nb.id, body="B's second words")
    converge(a, b)
    assert a.records() == b.records()
    assert len(a.records()["notes"]) == 2
    assert b.vault.note_history(nb.id)[0].body == "B's words"
    assert a.vault.sync_store().pending_by_kind().get("note") is None


def test_concurrent_edit_keeps_both_texts(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    note = a.vault.create_note(client.id, "soap", body="original")
    converge(a, b)
    a.vault.edit_note(note.id, body="alpha text from A")
    clock.advance(60)
    b.vault.edit_note(note.id, body="beta text from B (newer)")
    a.sync()
    result = b.sync()
    assert result.conflicts == 1
    converge(a, b)
    assert a.records() == b.records()
    current = a.vault.get_note(note.id)
    assert current.body == "beta text from B (newer)"
    history = {r.body for r in a.vault.note_history(note.id)}
    assert {"original", "alpha text from A", "beta text from B (newer)"} <= history
    conflicts = a.vault.sync_store().conflicts(note.id)
    assert len(conflicts) == 1


def test_conflict_found_at_push_is_merged(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    note = a.vault.create_note(client.id, "soap", body="original")
    converge(a, b)
    b.vault.edit_note(note.id, body="B wrote this first")
    b.engine().pull(SyncResult())  # B pulls (nothing new) ...
    clock.advance(60)
    a.vault.edit_note(note.id, body="A wrote this later")
    a.sync()  # ... then A pushes before B does
    result = SyncResult()
    b.engine().push(result)
    assert result.conflicts == 1
    converge(a, b)
    assert a.records() == b.records()
    assert a.vault.get_note(note.id).body == "A wrote this later"
    assert "B wrote this first" in {r.body for r in a.vault.note_history(note.id)}


def test_signed_note_never_conflicts_and_keeps_the_other_text(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    note = a.vault.create_note(client.id, "soap", body="to be signed")
    converge(a, b)
    b.vault.edit_note(note.id, body="an unsigned edit on B")
    clock.advance(60)
    a.vault.sign_note(note.id)
    a.vault.add_addendum(note.id, "a later addendum")
    converge(a, b)
    assert a.records() == b.records()
    on_b = b.vault.get_note(note.id)
    assert on_b.signed_at is not None and on_b.body == "to be signed"
    assert "an unsigned edit on B" in {r.body for r in b.vault.note_history(note.id)}
    assert len(b.vault.addenda(note.id)) == 1


STEPS = ["pull_page", "pulled", "applied", "prepared", "pushed", "acked"]


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_loses_and_duplicates_nothing(
    devices: tuple[Device, Device], server: FakeServer, step: str
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    for i in range(7):
        a.vault.create_note(client.id, "soap", body=f"note {i}")
    a.sync()
    b_client = b.vault.add_client("Blake Example")
    b.vault.create_note(b_client.id, "soap", body="from B")

    def crash(name: str) -> None:
        if name == step:
            raise Boom(name)

    with pytest.raises(Boom):
        b.sync(fault=crash, push_batch=3, pull_page=3)
    converge(b, a)
    assert a.records() == b.records()
    assert len(b.records()["notes"]) == 8
    assert server_items(server, "note") == 8
    assert server_items(server, "client") == 2


@pytest.mark.parametrize("mode", ["fail_push_before", "lose_push_response"])
def test_lost_push_is_retried_with_the_same_bytes(
    devices: tuple[Device, Device], server: FakeServer, mode: str
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    a.vault.create_note(client.id, "soap", body="one")
    setattr(a.transport, mode, 1)
    with pytest.raises(Boom):
        a.sync()
    seq = server.seq
    setattr(a.transport, mode, None)
    result = a.sync()
    assert result.conflicts == 0
    if mode == "lose_push_response":
        assert server.seq == seq  # the retry was recognised: nothing written twice
    converge(a, b)
    assert a.records() == b.records()
    assert server_items(server, "note") == 1


def _flip(blob_b64: str) -> str:
    raw = bytearray(base64.b64decode(blob_b64))
    raw[-5] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_tampered_swapped_and_rolled_back_items_are_refused(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    n1 = a.vault.create_note(client.id, "soap", body="first")
    n2 = a.vault.create_note(client.id, "soap", body="second")
    n3 = a.vault.create_note(client.id, "soap", body="third")
    a.sync()
    b.sync()
    old_n3 = dict(server.items[n3.id])
    a.vault.edit_note(n1.id, body="first, edited")
    a.vault.edit_note(n2.id, body="second, edited")
    a.vault.edit_note(n3.id, body="third, edited")
    a.sync()
    b.sync()  # B has seen rev 2 of all three
    a.vault.edit_note(n1.id, body="first, edited again")
    a.vault.edit_note(n2.id, body="second, edited again")
    a.sync()
    server.tamper(n1.id, blob=_flip(server.items[n1.id]["blob"]))
    server.tamper(n2.id, blob=server.items[n3.id]["blob"])  # n3's blob under n2's id
    server.tamper(n3.id, blob=old_n3["blob"], etag=old_n3["etag"])  # rolled back
    result = b.sync()
    assert set(result.refused) == {n1.id, n2.id, n3.id}
    assert b.vault.get_note(n1.id).body == "first, edited"
    assert b.vault.get_note(n2.id).body == "second, edited"
    assert b.vault.get_note(n3.id).body == "third, edited"
    reasons = {r["item_id"]: r["reason"] for r in b.vault.sync_store().refused()}
    assert "rolled back" in reasons[n3.id]


def test_pull_pages_through_a_large_change_set(devices: tuple[Device, Device]) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    for i in range(12):
        a.vault.create_note(client.id, "soap", body=f"note {i}")
    a.sync(push_batch=5)
    result = b.sync(pull_page=4)
    assert b.transport.pulls >= 4
    assert len(b.records()["notes"]) == 12
    assert result.pulled >= 13


def test_offline_leaves_the_outbox_intact(devices: tuple[Device, Device]) -> None:
    a, _ = devices
    client = a.vault.add_client("Alex Example")
    a.vault.create_note(client.id, "soap", body="offline words")
    before = a.vault.sync_store().pending_count()
    a.transport.offline = True
    with pytest.raises(OfflineError):
        a.sync()
    assert a.vault.sync_store().pending_count() == before


def test_pulled_changes_are_not_queued_back(devices: tuple[Device, Device]) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    a.vault.create_note(client.id, "soap", body="words")
    a.sync()
    b.sync()
    kinds = b.vault.sync_store().pending_by_kind()
    assert "note" not in kinds and "client" not in kinds


def _note(
    body: str, updated: str, revisions: list[tuple[str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "client_id": "c",
        "kind": "progress",
        "template": "soap",
        "title": "T",
        "session_date": None,
        "body": body,
        "author": "Dr",
        "revision": len(revisions) + 1,
        "created_at": "t0",
        "updated_at": updated,
        "signed_at": None,
        "tags": [],
        "signature": None,
        "revisions": [
            {
                "revision": i + 1,
                "title": "T",
                "body": b,
                "author": "Dr",
                "saved_at": s,
                "conflict": False,
            }
            for i, (b, s) in enumerate(revisions)
        ],
        **extra,
    }


def test_merge_rules() -> None:
    base = [("v1", "t1")]
    local = _note("local", "t3", base)
    remote = _note("remote", "t2", base)
    merged, conflicts = merge_note(local, remote)
    assert conflicts == 1 and merged["body"] == "local"
    assert [r["body"] for r in merged["revisions"]] == ["v1", "remote"]
    assert merged["revisions"][-1]["conflict"] == 1
    assert merged["revision"] > max(r["revision"] for r in merged["revisions"])
    # the other side already saw our text: no conflict
    ahead = _note("remote2", "t2", [("v1", "t1"), ("local", "t3")])
    merged, conflicts = merge_note(local, ahead)
    assert conflicts == 0 and merged["body"] == "remote2"
    # merging twice changes nothing
    again, conflicts = merge_note(merged, ahead)
    assert conflicts == 0 and again == merged
