"""Clients, notes, revisions, templates and search through the service."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import AmbiguousIdError, InvalidInputError, NotFoundError
from app.vault.clock import ManualClock
from app.vault.models import MARK_END, MARK_START
from app.vault.service import VaultService
from app.vault.store import fts_query


def test_clients_crud(service: VaultService) -> None:
    a = service.add_client("  Zoe Quill ", dob="1990-04-01", phone="+44 1632 960000")
    b = service.add_client("adam Brook")
    assert a.name == "Zoe Quill"
    assert [c.name for c in service.list_clients()] == ["adam Brook", "Zoe Quill"]
    assert [c.id for c in service.list_clients(query="quil")] == [a.id]
    edited = service.update_client(a.id, email="zoe@example.org", name="Zoë Quill")
    assert (edited.name, edited.email, edited.phone) == ("Zoë Quill", "zoe@example.org",
                                                         "+44 1632 960000")  # fmt: skip
    service.discharge_client(b.id)
    assert [c.id for c in service.list_clients(status="active")] == [a.id]
    assert [c.id for c in service.list_clients(status="discharged")] == [b.id]


def test_client_validation(service: VaultService) -> None:
    with pytest.raises(InvalidInputError):
        service.add_client("   ")
    with pytest.raises(InvalidInputError):
        service.add_client("X", dob="31/12/1990")
    with pytest.raises(InvalidInputError):
        service.add_client("X" * 201)
    cid = service.add_client("Valid").id
    with pytest.raises(InvalidInputError):
        service.update_client(cid, status="deceased")
    with pytest.raises(InvalidInputError):
        service.update_client(cid, nickname="x")
    assert len(service.list_clients()) == 1


def test_id_prefixes(service: VaultService) -> None:
    cid = service.add_client("Prefix").id
    assert service.get_client(cid[:8]).id == cid
    assert service.get_client(cid.upper()).id == cid
    with pytest.raises(NotFoundError):
        service.get_client("ffffffff")
    with pytest.raises(NotFoundError):
        service.get_client("x' OR 1=1 --")
    with pytest.raises(NotFoundError):
        service.get_client("ab")


def test_ambiguous_prefix(service: VaultService, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    fixed = iter([uuid.UUID("abcd0000-0000-4000-8000-000000000001"),
                  uuid.UUID("abcd0000-0000-4000-8000-000000000002")])  # fmt: skip
    monkeypatch.setattr("app.vault.store.uuid.uuid4", lambda: next(fixed))
    one = service.add_client("One").id
    service.add_client("Two")
    with pytest.raises(AmbiguousIdError) as err:
        service.get_client("abcd")
    assert err.value.exit_status == 4
    assert service.get_client(one).name == "One"


def test_note_from_template_starts_with_sections(service: VaultService) -> None:
    cid = service.add_client("T").id
    note = service.create_note(cid, "birp", session_date="2026-03-04")
    assert note.body.startswith("## Behavior\n")
    for section in ("Behavior", "Intervention", "Response", "Plan"):
        assert f"## {section}" in note.body
    assert note.kind == "progress"
    assert note.title == "BIRP 2026-03-04"
    assert note.session_date == "2026-03-04"
    process = service.create_note(cid, "process")
    assert process.kind == "psychotherapy"
    free = service.create_note(cid, "free", kind="intake", title="Phone screen", body="Hi")
    assert (free.kind, free.title, free.body) == ("intake", "Phone screen", "Hi")


def test_every_shipped_template_loads(service: VaultService) -> None:
    ids = {t.id for t in service.templates()}
    assert {"soap", "dap", "birp", "girp", "intake", "mse", "treatment_plan", "free"} <= ids
    with pytest.raises(NotFoundError):
        service.template("nope")


def test_note_validation(service: VaultService) -> None:
    cid = service.add_client("V").id
    with pytest.raises(InvalidInputError):
        service.create_note(cid, "soap", kind="diary")
    with pytest.raises(NotFoundError):
        service.create_note("00000000", "soap")
    with pytest.raises(InvalidInputError):
        service.create_note(cid, "soap", session_date="yesterday")
    with pytest.raises(InvalidInputError):
        service.create_note(cid, "soap", body="nul\x00byte")
    assert service.count_notes() == 0


def test_revisions_are_kept(service: VaultService, clock: ManualClock) -> None:
    cid = service.add_client("R").id
    note = service.create_note(cid, "free", body="first")
    clock.advance(60)
    service.edit_note(note.id, body="second")
    clock.advance(60)
    service.edit_note(note.id, body="third", title="Renamed")
    assert service.edit_note(note.id, body="third").revision == 3  # no-op edit: no revision
    history = service.note_history(note.id)
    assert [(r.revision, r.body, r.current) for r in history] == [
        (1, "first", False),
        (2, "second", False),
        (3, "third", True),
    ]
    assert history[-1].title == "Renamed"
    assert history[0].saved_at < history[1].saved_at < history[2].saved_at
    with pytest.raises(InvalidInputError):
        service.edit_note(note.id, body="stale", expected_revision=1)


def test_autosave_amends_one_revision_per_editing_session(service: VaultService) -> None:
    cid = service.add_client("A").id
    note = service.create_note(cid, "free", body="v1")
    for text in ("v1 a", "v1 ab", "v1 abc"):
        service.edit_note(note.id, body=text, autosave=True)
    assert [r.body for r in service.note_history(note.id)] == ["v1", "v1 abc"]
    service.finish_editing(note.id)
    service.edit_note(note.id, body="v1 abc d", autosave=True)
    assert [r.body for r in service.note_history(note.id)] == ["v1", "v1 abc", "v1 abc d"]
    service.edit_note(note.id, body="v1 abc de")  # explicit save: a revision of its own
    assert len(service.note_history(note.id)) == 4


def test_list_notes_newest_first_and_paged(service: VaultService) -> None:
    a = service.add_client("A").id
    b = service.add_client("B").id
    for day in range(1, 8):
        service.create_note(a, "soap", session_date=f"2026-02-0{day}")
    service.create_note(b, "dap", session_date="2026-02-05")
    dates = [n.session_date for n in service.list_notes(a, limit=3)]
    assert dates == ["2026-02-07", "2026-02-06", "2026-02-05"]
    assert [n.session_date for n in service.list_notes(a, limit=3, offset=6)] == ["2026-02-01"]
    assert service.count_notes(a) == 7
    assert service.count_notes() == 8
    with pytest.raises(InvalidInputError):
        service.list_notes(a, limit=0)


def test_tags(service: VaultService) -> None:
    cid = service.add_client("Tagged").id
    note = service.create_note(cid, "free", body="x", tags=["Risk", "risk", " CBT "])
    assert service.get_note(note.id).tags == ("cbt", "risk")


def test_search_ranks_title_matches_and_highlights(service: VaultService) -> None:
    cid = service.add_client("S").id
    body_hit = service.create_note(
        cid, "free", title="Session", body="We talked about insomnia and work stress."
    )
    title_hit = service.create_note(cid, "free", title="Insomnia review", body="Follow-up.")
    service.create_note(cid, "free", title="Other", body="Nothing relevant here.")
    hits = service.search("insomnia")
    assert [h.id for h in hits] == [title_hit.id, body_hit.id]
    body_snippet = next(h for h in hits if h.id == body_hit.id).snippet
    assert f"{MARK_START}insomnia{MARK_END}" in body_snippet
    assert [h.id for h in service.search("insom")] == [title_hit.id, body_hit.id]  # prefix
    assert service.search("insomnia stress")[0].id == body_hit.id  # all words must match
    assert service.search('"work stress"')[0].id == body_hit.id
    assert service.search("   ") == []


def test_search_follows_edits(service: VaultService) -> None:
    cid = service.add_client("E").id
    note = service.create_note(cid, "free", body="apple")
    service.edit_note(note.id, body="banana")
    assert service.search("apple") == []
    assert [h.id for h in service.search("banana")] == [note.id]


def test_search_ignores_accents(service: VaultService) -> None:
    cid = service.add_client("D").id
    note = service.create_note(cid, "free", body="Le client se sent déprimé.")
    assert [h.id for h in service.search("deprime")] == [note.id]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_fts_query_is_always_safe(text: str) -> None:
    query = fts_query(text, prefix_last=True)
    assert query is None or query.strip()


def test_hostile_search_input(service: VaultService) -> None:
    cid = service.add_client("H").id
    service.create_note(cid, "free", body="plain text")
    for q in ['"', "NEAR(", "a AND OR", "*", "col:x", "-x", "'; DROP TABLE notes; --", "^x"]:
        service.search(q)  # never raises
    assert service.count_notes() == 1


def test_reprs_hold_no_client_data_or_note_text(service: VaultService) -> None:
    canary = "CANARY-7c1e"
    client = service.add_client(f"Name {canary}", email=f"{canary}@example.org", phone=canary)
    note = service.create_note(client.id, "free", title=f"T {canary}", body=f"B {canary}")
    hit = service.search(canary)[0]
    records = [client, note, service.list_notes()[0], service.note_history(note.id)[0], hit]
    for record in records:
        assert canary not in repr(record)
        assert canary.lower() not in repr(record).lower()


def test_short_trailing_fragments_match_whole_words_only(service: VaultService) -> None:
    cid = service.add_client("P").id
    word = service.create_note(cid, "free", body="we talked at length")
    service.create_note(cid, "free", body="attachment patterns")
    assert fts_query("at", prefix_last=True) == '"at"'
    assert fts_query("att", prefix_last=True) == '"att"*'
    assert [h.id for h in service.search("at")] == [word.id]
    assert len(service.search("att")) == 1


def test_edit_returns_exactly_what_was_stored(service: VaultService, clock: ManualClock) -> None:
    cid = service.add_client("Stored").id
    note = service.create_note(cid, "free", body="one", tags=["x"])
    clock.advance(5)
    saved = service.edit_note(note.id, body="two", title="T2", session_date="2026-02-02")
    assert saved == service.get_note(note.id, record_view=False)
    clock.advance(5)
    first = service.edit_note(note.id, body="three", autosave=True)
    clock.advance(5)
    amended = service.edit_note(note.id, body="four", autosave=True)  # amends in place
    assert amended.revision == first.revision == saved.revision + 1
    assert amended == service.get_note(note.id, record_view=False)
