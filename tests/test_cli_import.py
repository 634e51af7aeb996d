"""``tacit import``: the JSON contract, dry runs, re-imports, errors and the canary,
driven as a subprocess like every CLI test."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import Tacit

CANARIES = ["CANARYIMPNAME4711", "CANARYIMPTITLE4711", "CANARYIMPBODY4711", "CANARYSNBODY4711",
            "CANARYSNTAG4711"]  # fmt: skip


@pytest.fixture
def ready(tmp_path: Path) -> Tacit:
    tacit = Tacit(tmp_path)
    tacit.ok("init")
    return tacit


def make_folder(root: Path) -> Path:
    client = root / "notes" / CANARIES[0]
    client.mkdir(parents=True)
    (client / "2024-03-01 first.md").write_text(
        f"---\ntitle: {CANARIES[1]}\ntags: [grief]\n---\n{CANARIES[2]} said little.\n"
    )
    (client / "process.md").write_text(
        f"---\ndate: 2024-03-08\nkind: psychotherapy\n---\n# Process\n{CANARIES[2]} again\n"
    )
    (root / "notes" / "Ben").mkdir()
    (root / "notes" / "Ben" / "2024-04-01.txt").write_text("Short note.\n")
    (root / "notes" / "Ben" / "latin1.txt").write_bytes(f"{CANARIES[2]} caf\xe9".encode("latin-1"))
    outside = root / "outside.md"
    outside.write_text(f"{CANARIES[2]} outside\n")
    (root / "notes" / "Ben" / "link.md").symlink_to(outside)
    return root / "notes"


def make_backup(root: Path, items: list[Any] | None = None) -> Path:
    stamp = {"created_at": "2021-02-03T12:00:00.000Z", "updated_at": "2021-02-03T12:00:00Z"}
    items = items if items is not None else [
        {"uuid": "t1", "content_type": "Tag", **stamp,
         "content": {"title": CANARIES[4], "references": [{"uuid": "n1", "content_type": "Note"}]}},
        {"uuid": "n1", "content_type": "Note", **stamp,
         "content": {"title": "Tagged", "text": f"{CANARIES[3]} tagged", "references": []}},
        {"uuid": "n2", "content_type": "Note", **stamp,
         "content": {"title": "Untagged", "text": f"{CANARIES[3]} loose"}},
        {"uuid": "n3", "content_type": "Note", **stamp, "deleted": True, "content": None},
        {"uuid": "n4", "content_type": "Note", **stamp,
         "content": {"title": "Binned", "text": "x", "trashed": True}},
        {"uuid": "x1", "content_type": "SN|Theme", **stamp, "content": {}},
    ]  # fmt: skip
    path = root / "standardnotes-backup.txt"
    path.write_text(json.dumps({"version": "004", "items": items}))
    return path


def audit_count(tacit: Tacit) -> int:
    entries = tacit.ok("audit", "list")
    assert isinstance(entries, list)
    return len(entries)


def test_markdown_import_contract(ready: Tacit, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    result = ready.ok("import", "markdown", str(folder))
    assert isinstance(result, dict)
    assert (result["clients"], result["notes"], result["dry_run"]) == (2, 3, False)
    assert result["problems"] == {"not_utf8": 1, "outside_folder": 1}
    assert result["dates"] == {"file_name": 2, "front_matter": 1}
    clients = ready.ok("client", "list")
    assert isinstance(clients, list)
    ids = {c["name"]: c["id"] for c in clients}
    assert set(ids) == {CANARIES[0], "Ben"}
    notes = ready.ok("note", "list", "--client", ids[CANARIES[0]])
    assert isinstance(notes, list)
    assert [(n["session_date"], n["title"], n["kind"]) for n in notes] == [
        ("2024-03-08", "Process", "psychotherapy"), ("2024-03-01", CANARIES[1], "progress"),
    ]  # fmt: skip
    shown = ready.ok("note", "show", notes[1]["id"])
    assert isinstance(shown, dict)
    assert shown["body"] == f"{CANARIES[2]} said little." and shown["tags"] == ["grief"]
    imports = [e for e in ready.ok("audit", "list", "--action", "create")  # type: ignore[union-attr]
               if e["record_type"] == "import"]  # fmt: skip
    assert [e["detail"] for e in imports] == ["markdown: 2 clients, 3 notes, 0 skipped, 2 problems"]


def test_dry_run_writes_nothing_and_shows_the_plan(ready: Tacit, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    before_audit = audit_count(ready)
    before = ready.files()
    dry = ready.ok("import", "markdown", str(folder), "--dry-run")
    assert isinstance(dry, dict) and (dry["clients"], dry["notes"], dry["dry_run"]) == (2, 3, True)
    assert ready.files() == before  # not a byte changed: no record, no unlock entry
    human = ready("import", "markdown", str(folder), "--dry-run")
    assert human.code == 0 and human.err == ""  # no progress bar without a terminal
    assert ready.files() == before
    for text in (CANARIES[0], CANARIES[1], "2024-03-01", "date from file name", "new client",
                 "Would create 2 new clients and 3 notes", "Ben/latin1.txt", "not UTF-8 text",
                 "Nothing was written"):  # fmt: skip
        assert text in human.out
    assert CANARIES[2] not in human.out  # titles and dates, never the text
    # Only the first listing's lock and this listing's unlock: the dry runs left nothing.
    assert audit_count(ready) == before_audit + 2


def test_reimport_creates_nothing(ready: Tacit, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    ready.ok("import", "markdown", str(folder))
    again = ready.ok("import", "markdown", str(folder))
    assert isinstance(again, dict)
    assert (again["clients"], again["notes"], again["skipped"]) == (0, 0, {"duplicate": 3})
    status = ready.ok("status")
    assert isinstance(status, dict) and (status["clients"], status["notes"]) == (2, 3)
    human = ready("import", "markdown", str(folder), "--dry-run")
    assert "existing client" in human.out and "skip: already there" in human.out


def test_top_level_files_and_bad_folders(ready: Tacit, tmp_path: Path) -> None:
    folder = make_folder(tmp_path)
    (folder / "loose.md").write_text(f"{CANARIES[2]}\n")
    before = ready.files()
    refused = ready("--json", "import", "markdown", str(folder))
    assert refused.code == 2 and refused.error["code"] == "usage"
    assert "--client" in refused.error["message"]
    assert ready.files() == before
    done = ready.ok("import", "markdown", str(folder), "--client", "Top level")
    assert isinstance(done, dict) and (done["clients"], done["notes"]) == (3, 4)
    missing = ready("--json", "import", "markdown", str(tmp_path / "nope"))
    assert (missing.code, missing.error["code"]) == (2, "usage")
    before = ready.files()
    bad = ready("--json", "import", "markdown", str(folder), "--client", "T", "--template", "x")
    assert bad.code == 4 and bad.error["code"] == "not_found"
    assert ready.files() == before


def test_kind_and_template_options(ready: Tacit, tmp_path: Path) -> None:
    folder = tmp_path / "n" / "Ada"
    folder.mkdir(parents=True)
    (folder / "2024-01-02.md").write_text("Reflections.\n")
    (folder / "2024-01-03.md").write_text("---\nkind: progress\n---\nSOAP-ish.\n")
    ready.ok("import", "markdown", str(folder.parent), "--kind", "psychotherapy",
             "--template", "soap")  # fmt: skip
    notes = ready.ok("note", "list")
    assert isinstance(notes, list)
    assert sorted((n["session_date"], n["kind"], n["template"]) for n in notes) == [
        ("2024-01-02", "psychotherapy", "soap"), ("2024-01-03", "progress", "soap"),
    ]  # fmt: skip


def test_standardnotes_import(ready: Tacit, tmp_path: Path) -> None:
    backup = make_backup(tmp_path)
    dry = ready.ok("import", "standardnotes", str(backup), "--dry-run")
    assert isinstance(dry, dict) and (dry["clients"], dry["notes"]) == (2, 2)
    assert dry["skipped"] == {"deleted": 1, "not_a_note": 1, "trashed": 1}
    done = ready.ok("import", "standardnotes", str(backup), "--client", "Misc")
    assert isinstance(done, dict) and (done["clients"], done["notes"]) == (2, 2)
    clients = ready.ok("client", "list")
    assert isinstance(clients, list)
    assert sorted(c["name"] for c in clients) == [CANARIES[4], "Misc"]
    again = ready.ok("import", "standardnotes", str(backup), "--client", "Misc")
    assert isinstance(again, dict) and (again["clients"], again["notes"]) == (0, 0)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "encrypted_backup"), ("{not json", "malformed_json"),
     ('{"version": "004"}', "not_standard_notes")],
)  # fmt: skip
def test_bad_backups(ready: Tacit, tmp_path: Path, content: str | None, reason: str) -> None:
    if content is None:
        path = make_backup(tmp_path, [{
            "uuid": "n1", "content_type": "Note", "enc_item_key": "004:a:b:c",
            "content": f"004:nonce:{CANARIES[3]}:auth", "created_at": "2021-02-03T12:00:00Z",
        }])  # fmt: skip
    else:
        path = tmp_path / "bad.json"
        path.write_text(content)
    before = ready.files()
    result = ready("--json", "import", "standardnotes", str(path))
    assert result.code == 2
    assert result.error["code"] == "invalid_input" and result.error["reason"] == reason
    assert CANARIES[3] not in result.err and "Traceback" not in result.err
    if reason == "encrypted_backup":
        assert "Decrypted" in result.error["message"]
    assert ready.files() == before


def test_canary_never_leaves_the_vault(ready: Tacit, tmp_path: Path) -> None:
    """After imports, dry runs and refused inputs, no file under the vault folder or the
    temp folder holds a name or text from the imported notes, nor does stderr."""
    folder = make_folder(tmp_path)
    backup = make_backup(tmp_path)
    errors = ""
    for args in (("markdown", str(folder), "--dry-run"), ("markdown", str(folder)),
                 ("standardnotes", str(backup)), ("markdown", str(folder))):  # fmt: skip
        result = ready("--json", "import", *args)
        assert result.code == 0
        errors += result.err
    (folder / "loose.md").write_text(f"{CANARIES[2]}\n")
    errors += ready("--json", "import", "markdown", str(folder)).err
    ready.ok("check")
    scanned = 0
    for root in (ready.vault, ready.tmp):
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            scanned += 1
            for canary in CANARIES:
                for encoding in ("utf-8", "utf-16-le"):
                    assert canary.encode(encoding) not in data, f"{canary} found in {path}"
                assert canary.lower().encode() not in data.lower()
    assert scanned >= 2
    for canary in CANARIES:
        assert canary not in errors


def test_progress_bar_on_a_terminal(ready: Tacit, tmp_path: Path) -> None:
    """With stderr on a terminal, the bar is drawn there and cleared; stdout is the same."""
    folder = tmp_path / "many" / "Ada"
    folder.mkdir(parents=True)
    for i in range(30):
        (folder / f"2024-01-{1 + i % 28:02d} n{i}.md").write_text(f"note {i}\n")
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", "import", "markdown", str(folder.parent)],
            stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL,
            env=ready.env, timeout=60, check=False,
        )  # fmt: skip
        os.close(secondary)
        drawn = b""
        while select.select([main], [], [], 0.5)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert b"Importing [" in drawn and b"100% 30/30" in drawn and drawn.endswith(b"\r\x1b[K")
    assert b"note 1" not in drawn
    assert "Created 1 new clients and 30 notes." in proc.stdout.decode()
