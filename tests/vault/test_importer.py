"""Imports (app/vault/importer.py, app/vault/importformats.py): sample Markdown folders
and Standard Notes backups made here, planned and applied to a real vault."""

from __future__ import annotations

import io
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from app.cliio import Progress
from app.errors import InvalidInputError, StorageError, UsageError
from app.vault import importformats
from app.vault.importer import AUDIT_RECORD_TYPE, ImportPlan, apply_plan
from app.vault.importformats import (
    MAX_NOTE_BYTES,
    markdown_note,
    plan_markdown,
    plan_standardnotes,
    split_front_matter,
)
from app.vault.service import VaultService

CANARY = "CANARYIMPORT4711"
MTIME = datetime(2023, 5, 6, 12, 0).timestamp()  # a local noon: the same day anywhere


def write(path: Path, text: str | bytes, *, mtime: float = MTIME) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two clients, every way of giving a date and a title, and the files to refuse."""
    root = tmp_path / "notes"
    write(root / "Ada Example" / "2024-03-01 first.md", "# First session\n\nLow mood.\n")
    write(root / "Ada Example" / "process.md", (
        "---\n"
        'title: "Second: follow-up"\n'
        "date: 2024-03-08T10:30:00\n"
        "kind: psychotherapy\n"
        "template: soap\n"
        "tags: [Mood, 'sleep, late']\n"
        "aliases:\n  - ignored\n"
        "---\n\n"
        f"Process note {CANARY}.\n"
    ))  # fmt: skip
    write(root / "Ada Example" / "2024" / "later.txt", "Plain text in a deeper folder.\r\n")
    write(root / "Ben Other" / "notes.markdown", "No heading here.\n")
    write(root / "Ben Other" / "latin1.txt", "caf\xe9 au lait\n".encode("latin-1"))
    write(root / "Ben Other" / "binary.md", b"PK\x03\x04\x00\x00binary")
    write(root / "Ben Other" / "scan.pdf", b"%PDF-1.4")
    write(root / "Ben Other" / ".hidden.md", "hidden\n")
    outside = write(tmp_path / "elsewhere" / "secret.md", f"{CANARY} outside\n")
    (root / "Ben Other" / "escape.md").symlink_to(outside)
    (root / "Ben Other" / "escape-folder").symlink_to(outside.parent)
    (root / "Ada Example" / "copy.md").symlink_to(root / "Ada Example" / "process.md")
    return root


def notes_of(plan: ImportPlan, client: str) -> list[Any]:
    return next(c.notes for c in plan.clients if c.name == client)


# -- front matter and one file ---------------------------------------------------------
def test_front_matter_subset() -> None:
    fields, body = split_front_matter(
        "---\n# a comment\ntitle: 'It''s: here'\ntags:\n  - a\n  - \"b c\"\nnested:\n"
        "  deep: 1\nclient: Ada\nunknown: x\n---\nBody\n"
    )
    assert fields == {"title": "It's: here", "tags": ["a", "b c"], "client": "Ada"}
    assert body == "Body\n"
    # No closing line: no front matter, the whole text is the body.
    assert split_front_matter("---\ntitle: x\nBody") == ({}, "---\ntitle: x\nBody")
    assert split_front_matter("Body\n---\ntitle: x\n---\n")[0] == {}


def test_one_file_title_and_date_sources() -> None:
    note, client = markdown_note("# Heading\nBody", file_name="a/2024-02-29 x.md", mtime=MTIME)
    assert (note.title, note.session_date, note.date_from, client) == (
        "Heading", "2024-02-29", "file_name", None,
    )  # fmt: skip
    note, _ = markdown_note("Body only", file_name="a/notes.md", mtime=MTIME)
    assert (note.title, note.session_date, note.date_from) == ("notes", "2023-05-06", "modified")
    note, _ = markdown_note("Body", file_name="a/2024-13-45.md", mtime=MTIME)  # no such day
    assert note.date_from == "modified"
    note, client = markdown_note(
        "---\ndate: 2022-01-02\nclient: Cara\ntitle: T\n---\n# H\n", file_name="x.md", mtime=MTIME
    )
    assert (note.title, note.session_date, note.date_from, client) == (
        "T", "2022-01-02", "front_matter", "Cara",
    )  # fmt: skip
    assert note.body == "# H"


@pytest.mark.parametrize(
    "front", ["date: 02/03/2024", "date: 2024-02-30", "kind: psychotherapy-notes",
              "title: [a, b]"],
)  # fmt: skip
def test_bad_front_matter_is_a_problem_not_a_guess(tmp_path: Path, front: str) -> None:
    """A misspelt kind must never turn a process note into a releasable progress note."""
    write(tmp_path / "n" / "Ada" / "x.md", f"---\n{front}\n---\nBody\n")
    plan = plan_markdown(tmp_path / "n")
    assert plan.clients == []
    assert [p.reason for p in plan.problems] == ["bad_front_matter"]


# -- a folder ----------------------------------------------------------------------------
def test_markdown_folder_plan(folder: Path) -> None:
    plan = plan_markdown(folder)
    assert [c.name for c in plan.clients] == ["Ada Example", "Ben Other"]
    ada = notes_of(plan, "Ada Example")
    assert [(n.session_date, n.title, n.date_from) for n in ada] == [
        ("2023-05-06", "later", "modified"),
        ("2024-03-01", "First session", "file_name"),
        ("2024-03-08", "Second: follow-up", "front_matter"),
        ("2024-03-08", "Second: follow-up", "front_matter"),  # the link to it, read again
    ]
    assert [n.source for n in ada][2:] == ["Ada Example/copy.md", "Ada Example/process.md"]
    assert ada[0].body == "Plain text in a deeper folder."  # CRLF and trailing lines go
    process = ada[3]
    assert (process.kind, process.template, process.tags) == (
        "psychotherapy", "soap", ("Mood", "sleep, late"),
    )  # fmt: skip
    assert process.body == f"Process note {CANARY}."
    assert [n.title for n in notes_of(plan, "Ben Other")] == ["notes"]
    assert {(p.where, p.reason) for p in plan.problems} == {
        ("Ben Other/latin1.txt", "not_utf8"),
        ("Ben Other/binary.md", "binary"),
        ("Ben Other/escape.md", "outside_folder"),
        ("Ben Other/escape-folder", "outside_folder"),
    }
    assert plan.skipped == {"unsupported_file": 1}
    assert CANARY not in repr(plan)


def test_huge_fifo_and_linked_folder(tmp_path: Path) -> None:
    root = tmp_path / "n"
    write(root / "Ada" / "huge.md", b"a" * (MAX_NOTE_BYTES + 1))
    write(root / "Ada" / "ok.md", "fine\n")
    os.mkfifo(root / "Ada" / "pipe.md")  # reading it would hang forever
    (root / "Ada" / "again").symlink_to(root / "Ada")
    plan = plan_markdown(root)
    assert [n.title for n in notes_of(plan, "Ada")] == ["ok"]
    assert {(p.where, p.reason) for p in plan.problems} == {
        ("Ada/huge.md", "too_large"), ("Ada/pipe.md", "not_a_file"),
    }  # fmt: skip
    assert plan.skipped["linked_folder"] == 1


def test_top_level_files_need_a_client(tmp_path: Path) -> None:
    root = tmp_path / "n"
    write(root / "loose.md", f"{CANARY}\n")
    write(root / "named.md", "---\nclient: Cara\n---\nmine\n")
    with pytest.raises(UsageError, match="1 note file") as err:
        plan_markdown(root)
    assert CANARY not in str(err.value)
    plan = plan_markdown(root, client="Dee")
    assert [(c.name, [n.title for n in c.notes]) for c in plan.clients] == [
        ("Cara", ["named"]), ("Dee", ["loose"]),
    ]  # fmt: skip
    with pytest.raises(UsageError):
        plan_markdown(root, client=" ")


def test_unreadable_inputs_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no folder"):
        plan_markdown(tmp_path / "missing")
    write(tmp_path / "file.md", "x")
    with pytest.raises(UsageError, match="not a folder"):
        plan_markdown(tmp_path / "file.md")


# -- Standard Notes ----------------------------------------------------------------------
def sn_item(uuid: str, kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"uuid": uuid, "content_type": kind, "content": content,
            "created_at": "2021-02-03T12:00:00.000Z",
            "updated_at": "2021-02-04T12:00:00.000Z", **extra}  # fmt: skip


def note_ref(uuid: str, kind: str = "Note") -> dict[str, str]:
    return {"uuid": uuid, "content_type": kind}


def sn_backup(tmp_path: Path, items: list[Any], name: str = "sn.txt") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"version": "004", "items": items}), encoding="utf-8")
    return path


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    return sn_backup(tmp_path, [
        sn_item("t1", "Tag", {"title": "Cara", "references": [note_ref("n1"), note_ref("n2")]}),
        sn_item("t2", "Tag", {"title": "anxiety", "references": [note_ref("n2")]}),
        sn_item("t3", "Tag", {"title": "Dee", "references": []}),
        sn_item("n1", "Note", {"title": "Intake", "text": f"Body {CANARY}", "references": []}),
        sn_item("n2", "Note", {"title": "", "text": "\n# Heading two\nbody\n"}),
        sn_item("n3", "Note", {"title": "Loose", "text": "untagged"}),
        sn_item("n4", "Note", {"title": "Points at its tag", "text": "x",
                               "references": [note_ref("t3", "Tag")]}),
        sn_item("n5", "Note", {"title": "Gone", "text": "x", "trashed": True}),
        sn_item("n6", "Note", None, deleted=True),
        sn_item("n7", "Note", {"title": 3, "text": "x"}),
        sn_item("n8", "Note", {"title": "Undated", "text": "x"}, created_at=None,
                updated_at="yesterday"),
        sn_item("c1", "SN|Component", {"name": "editor"}),
        sn_item("p1", "SN|UserPreferences", {}),
        "not an item",
    ])  # fmt: skip


def test_standardnotes_plan(backup: Path) -> None:
    plan = plan_standardnotes(backup)
    shown = {c.name: [(n.title, n.session_date, n.tags) for n in c.notes] for c in plan.clients}
    assert shown == {
        # Two tags: the first by name (case-insensitive) is the client, the other a tag.
        "anxiety": [("Heading two", "2021-02-03", ("Cara",))],
        "Cara": [("Intake", "2021-02-03", ())],
        "Dee": [("Points at its tag", "2021-02-03", ())],
        "Imported notes": [("Loose", "2021-02-03", ())],
    }
    assert notes_of(plan, "Cara")[0].body == f"Body {CANARY}"
    assert notes_of(plan, "anxiety")[0].remark
    assert plan.remarks == {"several_tags": 1}
    assert plan.skipped == {"trashed": 1, "deleted": 1, "not_a_note": 2}
    assert sorted(p.reason for p in plan.problems) == ["malformed_item", "malformed_item",
                                                      "no_date"]  # fmt: skip
    assert [c.name for c in plan_standardnotes(backup, client="Misc").clients][-1] == "Misc"


def test_encrypted_backup_is_refused(tmp_path: Path) -> None:
    path = sn_backup(tmp_path, [
        {"uuid": "n1", "content_type": "Note", "content": "004:nonce:ciphertext:auth",
         "enc_item_key": "004:x:y:z", "items_key_id": "k"},
    ])  # fmt: skip
    with pytest.raises(InvalidInputError, match="Decrypted") as err:
        plan_standardnotes(path)
    assert err.value.details["reason"] == "encrypted_backup"


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b'{"items": [', "malformed_json"), (b"\xff\xfe{", "malformed_json"),
     (b'{"notes": []}', "not_standard_notes"), (b"[1, 2]", "not_standard_notes"),
     (b"[" * 100_000, "malformed_json")],
)  # fmt: skip
def test_bad_backups_are_invalid_input(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError) as err:
        plan_standardnotes(path)
    assert err.value.details["reason"] == reason


def test_unreadable_backup(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no file"):
        plan_standardnotes(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="is a folder"):
        plan_standardnotes(tmp_path)


# -- applying a plan ---------------------------------------------------------------------
def counts(svc: VaultService) -> tuple[int, int, int]:
    status = svc.status()
    return status["clients"], status["notes"], status["audit_entries"]


def test_apply_creates_records_with_audit_and_outbox(service: VaultService, folder: Path) -> None:
    service.flush_audit()
    audit_before = counts(service)[2]
    calls: list[tuple[int, int]] = []
    report = apply_plan(service, plan_markdown(folder), progress=lambda d, t: calls.append((d, t)))
    assert (report.clients, report.notes, report.clients_reused) == (2, 4, 0)
    assert report.skipped == {"duplicate": 1, "unsupported_file": 1}  # the link: a copy
    assert calls[-1] == (5, 5) and len(calls) == 5
    clients = {c.name: c for c in service.list_clients()}
    assert set(clients) == {"Ada Example", "Ben Other"}
    ada = {n.title: service.get_note(n.id) for n in service.list_notes(clients["Ada Example"].id)}
    first, process = ada["First session"], ada["Second: follow-up"]
    assert (first.session_date, first.kind, first.template) == ("2024-03-01", "progress", "free")
    assert first.body == "# First session\n\nLow mood."
    assert (process.session_date, process.kind, process.template, process.tags) == (
        "2024-03-08", "psychotherapy", "soap", ("mood", "sleep, late"),
    )  # fmt: skip
    assert ada["later"].session_date == "2023-05-06"
    # Process notes stay out of a release, imported or not.
    released = service.notes_for_release(clients["Ada Example"].id)
    assert [n.title for n in released] == ["later", "First session"]
    # Each record has its own audit entry and sync outbox row; the import one more entry.
    creates = service.audit_entries(action="create")
    assert sum(e.record_type == "note" for e in creates) == 4
    assert sum(e.record_type == "client" for e in creates) == 2
    (entry,) = [e for e in creates if e.record_type == AUDIT_RECORD_TYPE]
    assert entry.detail == "markdown: 2 clients, 4 notes, 2 skipped, 4 problems"
    assert counts(service)[2] > audit_before + 6
    pending = service.sync_store().pending_by_kind()
    assert (pending.get("note"), pending.get("client")) == (4, 2)


def test_dry_run_writes_nothing(service: VaultService, folder: Path) -> None:
    service.flush_audit()
    before = counts(service)
    report = apply_plan(service, plan_markdown(folder), dry_run=True)
    assert (report.clients, report.notes) == (2, 4)
    assert [(c.name, c.new, [o.status for o in c.notes]) for c in report.outcomes] == [
        ("Ada Example", True, ["created"] * 3 + ["duplicate"]), ("Ben Other", True, ["created"]),
    ]  # fmt: skip
    service.flush_audit()
    assert counts(service) == before
    assert service.sync_store().pending_by_kind().get("note") is None


def test_reimport_creates_nothing_and_reuses_clients(service: VaultService, folder: Path) -> None:
    existing = service.add_client("Ben Other")
    first = apply_plan(service, plan_markdown(folder))
    assert (first.clients, first.clients_reused, first.notes) == (1, 1, 4)
    assert service.count_notes(existing.id) == 1
    before = counts(service)
    again = apply_plan(service, plan_markdown(folder))
    assert (again.clients, again.clients_reused, again.notes) == (0, 0, 0)
    assert again.skipped["duplicate"] == 5
    assert counts(service)[:2] == before[:2]
    dry = apply_plan(service, plan_markdown(folder), dry_run=True)
    assert (dry.clients, dry.notes) == (0, 0)
    assert all(not c.new for c in dry.outcomes)


def test_changed_note_is_imported_again(service: VaultService, tmp_path: Path) -> None:
    root = tmp_path / "n"
    path = write(root / "Ada" / "2024-01-01.md", "first text\n")
    apply_plan(service, plan_markdown(root))
    write(path, "second text\n")
    report = apply_plan(service, plan_markdown(root))
    assert report.notes == 1  # same date and title, another body: another note


def test_empty_note_takes_the_template(service: VaultService, tmp_path: Path) -> None:
    write(tmp_path / "n" / "Ada" / "2024-01-01 empty.md", "")
    apply_plan(service, plan_markdown(tmp_path / "n"), template="soap", kind="intake")
    (summary,) = service.list_notes()
    note = service.get_note(summary.id)
    assert note.body.startswith("## Subjective") and note.kind == "intake"
    assert apply_plan(service, plan_markdown(tmp_path / "n"), template="soap").notes == 0


def test_unknown_template_in_front_matter(service: VaultService, tmp_path: Path) -> None:
    write(tmp_path / "n" / "Ada" / "a.md", "---\ntemplate: nosuch\n---\nx\n")
    write(tmp_path / "n" / "Ada" / "b.md", "y\n")
    report = apply_plan(service, plan_markdown(tmp_path / "n"))
    assert report.notes == 1
    assert [(p.where, p.reason) for p in report.problems] == [("Ada/a.md", "unknown_template")]


def test_standardnotes_apply_and_reimport(service: VaultService, backup: Path) -> None:
    report = apply_plan(service, plan_standardnotes(backup))
    assert (report.clients, report.notes) == (4, 4)
    assert report.to_dict()["remarks"] == {"several_tags": 1}
    assert report.dates == {"created_at": 4}
    again = apply_plan(service, plan_standardnotes(backup))
    assert (again.clients, again.notes, again.skipped["duplicate"]) == (0, 0, 4)


def test_a_failure_midway_keeps_what_was_made_and_says_so(
    service: VaultService, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = service.create_note
    made: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if len(made) == 2:
            raise StorageError()
        made.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "create_note", failing)
    with pytest.raises(StorageError, match="after creating 1 clients and 2 notes") as err:
        apply_plan(service, plan_markdown(folder))
    assert err.value.details["created_notes"] == 2
    (entry,) = service.audit_entries(action="create", limit=None)[-1:]
    assert entry.record_type == AUDIT_RECORD_TYPE and "stopped" in str(entry.detail)
    monkeypatch.setattr(service, "create_note", real)
    rest = apply_plan(service, plan_markdown(folder))
    assert (rest.notes, rest.skipped["duplicate"]) == (2, 3)


def test_bad_options(service: VaultService, folder: Path) -> None:
    plan = plan_markdown(folder)
    with pytest.raises(InvalidInputError):
        apply_plan(service, plan, kind="nonsense")
    with pytest.raises(Exception, match="no template"):
        apply_plan(service, plan, template="nosuch")
    assert counts(service)[:2] == (0, 0)


def test_many_files_are_quick_to_plan(tmp_path: Path) -> None:
    root = tmp_path / "n"
    for i in range(300):
        write(root / f"C{i % 3}" / f"{date(2024, 1, 1 + i % 28).isoformat()} n{i}.md", f"t{i}\n")
    plan = plan_markdown(root)
    assert plan.note_count == 300 and len(plan.clients) == 3


# -- the progress bar (app/cliio.py) -----------------------------------------------------
def test_progress_bar() -> None:
    now = [0.0]
    stream = io.StringIO()
    bar = Progress("Importing", enabled=True, stream=stream, clock=lambda: now[0])
    assert bar.line(0, 10, 0.0) == "Importing [------------------------]   0% 0/10"
    assert bar.line(5, 10, 10.0).endswith("50% 5/10  ~10 s left")
    assert bar.line(1, 1000, 1.0).endswith("~17 min left")
    with bar:
        for i in range(1, 11):
            now[0] += 0.01  # faster than a redraw: only the first and the last are drawn
            bar(i, 10)
    out = stream.getvalue()
    assert out.count("\r") == 3 and "100% 10/10" in out and out.endswith("\r\x1b[K")
    quiet = io.StringIO()
    with Progress("x", enabled=False, stream=quiet) as off:
        off(1, 2)
    assert quiet.getvalue() == ""


def test_module_refuses_nothing_it_should_read(tmp_path: Path) -> None:
    """A BOM and CRLF line ends are fine; so is a title made of control characters."""
    write(tmp_path / "n" / "Ada" / "x.md", "\ufeff# \x1b[31mRed\r\nbody\r\n".encode())
    (note,) = notes_of(plan_markdown(tmp_path / "n"), "Ada")
    assert note.title == "[31mRed" and note.body == "# \x1b[31mRed\nbody"
    assert importformats.UNTITLED == "Untitled note"


def test_super_notes_become_plain_text_and_zips_are_named(tmp_path: Path) -> None:
    def text(t: str) -> dict[str, Any]:
        return {"type": "text", "text": t, "format": 0, "version": 1}

    lexical = {"root": {"type": "root", "children": [
        {"type": "heading", "tag": "h2", "children": [text("Plan")]},
        {"type": "paragraph", "children": [text("Weekly"), {"type": "linebreak"}, text("CBT")]},
        {"type": "list", "listType": "bullet", "children": [
            {"type": "listitem", "children": [text("sleep diary")]}]},
    ]}}  # fmt: skip
    path = sn_backup(tmp_path, [
        sn_item("n1", "Note", {"title": "Super", "text": json.dumps(lexical), "noteType": "super"}),
        sn_item("n2", "Note", {"title": "Not JSON", "text": "{oops", "noteType": "super"}),
    ])  # fmt: skip
    plan = plan_standardnotes(path)
    bodies = {n.title: n.body for n in notes_of(plan, "Imported notes")}
    assert bodies == {"Super": "## Plan\nWeekly\nCBT\n- sleep diary", "Not JSON": "{oops"}
    zipped = tmp_path / "backup.zip"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(InvalidInputError, match="unzip"):
        plan_standardnotes(zipped)
