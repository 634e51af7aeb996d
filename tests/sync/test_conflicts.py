"""Resolving sync conflicts: keep the current text or take the other; both texts stay in
the history, the resolution is audited and reaches the other devices, and a resolution
made on either device survives a later merge."""

from __future__ import annotations

import pytest

from app.errors import InvalidInputError, NoteSignedError, NotFoundError
from app.sync.merge import merge_note
from app.vault.clock import ManualClock
from tests.sync.devices import Device, converge


def make_conflict(a: Device, b: Device, clock: ManualClock, *, sign: bool = False) -> str:
    client = a.vault.add_client("Casey Example")
    note = a.vault.create_note(client.id, "soap", body="first words")
    converge(a, b)
    a.vault.edit_note(note.id, body="words from A")
    clock.advance(60)
    b.vault.edit_note(note.id, body="newer words from B")
    if sign:
        b.vault.sign_note(note.id)
    a.sync()
    assert b.sync().conflicts == 1
    converge(a, b)
    return note.id


def test_conflicts_are_listed_with_their_note_and_flagged_in_history(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    nid = make_conflict(a, b, clock)
    for device in (a, b):
        (conflict,) = device.vault.conflicts()
        assert conflict.note_id == nid
        assert conflict.client_id == device.vault.get_note(nid).client_id
        history = device.vault.note_history(nid)
        flagged = [r for r in history if r.conflict]
        assert [(r.revision, r.body) for r in flagged] == [(conflict.revision, "words from A")]
        assert "words from A" not in repr(conflict)  # note text stays out of reprs


def test_keep_current_resolves_everywhere_and_keeps_both_texts(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    nid = make_conflict(a, b, clock)
    (conflict,) = a.vault.conflicts(nid)
    note = a.vault.resolve_conflict(nid, conflict.revision, keep="current")
    assert note.body == "newer words from B"
    assert a.vault.conflicts() == []
    converge(a, b)
    assert b.vault.conflicts() == []
    assert b.vault.get_note(nid).body == "newer words from B"
    assert "words from A" in {r.body for r in b.vault.note_history(nid)}
    actions = [e.action for e in a.vault.audit_entries(record_id=nid)]
    assert "resolve_conflict" in actions
    with pytest.raises(NotFoundError):  # already resolved
        a.vault.resolve_conflict(nid, conflict.revision, keep="current")


def test_keep_conflict_makes_the_other_text_current(
    devices: tuple[Device, Device], clock: ManualClock
) -> None:
    a, b = devices
    nid = make_conflict(a, b, clock)
    (conflict,) = b.vault.conflicts(nid)
    before = b.vault.get_note(nid)
    note = b.vault.resolve_conflict(nid, conflict.revision, keep="conflict")
    assert (note.body, note.revision) == ("words from A", before.revision + 1)
    converge(a, b)
    for device in (a, b):
        assert device.vault.get_note(nid).body == "words from A"
        assert device.vault.conflicts() == []
        bodies = [r.body for r in device.vault.note_history(nid)]
        assert {"first words", "newer words from B", "words from A"} <= set(bodies)
    assert a.records() == b.records()


def test_a_signed_note_keeps_its_text(devices: tuple[Device, Device], clock: ManualClock) -> None:
    a, b = devices
    nid = make_conflict(a, b, clock, sign=True)
    (conflict,) = a.vault.conflicts(nid)
    assert a.vault.get_note(nid).signed_at is not None
    with pytest.raises(NoteSignedError):
        a.vault.resolve_conflict(nid, conflict.revision, keep="conflict")
    assert a.vault.conflicts(nid) != []  # the refused resolution changed nothing
    a.vault.resolve_conflict(nid, conflict.revision, keep="current")
    assert a.vault.conflicts() == []
    assert a.vault.verify_note(nid).ok  # signed on B, verified on A (synced signer key)


def test_bad_requests_are_refused(devices: tuple[Device, Device], clock: ManualClock) -> None:
    a, b = devices
    nid = make_conflict(a, b, clock)
    (conflict,) = a.vault.conflicts(nid)
    with pytest.raises(InvalidInputError):
        a.vault.resolve_conflict(nid, conflict.revision, keep="both")
    with pytest.raises(NotFoundError):
        a.vault.resolve_conflict(nid, 999, keep="current")
    assert len(a.vault.conflicts()) == 1


def test_a_resolution_on_either_side_wins_the_merge() -> None:
    rev = {"revision": 1, "title": "t", "body": "other", "author": "x", "saved_at": "s"}
    base = {"title": "t", "body": "b", "author": "x", "updated_at": "u", "revision": 2,
            "signed_at": None}  # fmt: skip
    open_ = {**base, "revisions": [{**rev, "conflict": True}]}  # as older contents wrote it
    resolved = {**base, "updated_at": "v", "body": "b2",
                "revisions": [{**rev, "conflict": 2}]}  # fmt: skip
    for local, remote in ((open_, resolved), (resolved, open_)):
        merged, _ = merge_note(local, remote)
        states = {r["body"]: r["conflict"] for r in merged["revisions"]}
        assert states["other"] == 2
