"""``tacit export client|open``: the JSON contract, consent for plaintext, the audit
entry, psychotherapy notes left out by default, and no plaintext in an archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import Tacit

CANARY = "canary-cli-export-9183 disclosed a relapse"
EXPORT_PASSPHRASE = "umbrella quartz meadow 93 lantern"


@pytest.fixture
def ready(tmp_path: Path) -> Tacit:
    (tmp_path / "home").mkdir()
    tacit = Tacit(tmp_path / "home")
    tacit.ok("init")
    return tacit


def _client_with_notes(ready: Tacit) -> tuple[str, str]:
    cid = str(ready.ok("client", "add", "Export Person")["id"])  # type: ignore[index]
    nid = str(ready.ok("note", "new", "--client", cid, "--template", "soap",
                       "--session-date", "2026-03-01", stdin=f"Subjective: {CANARY}")["id"])  # type: ignore[index]  # fmt: skip
    ready.ok("note", "sign", nid)
    ready.ok("note", "new", "--client", cid, "--template", "process",
             stdin="process-only text canary-process-2231")  # fmt: skip
    return cid, nid


def test_archive_export_and_open(ready: Tacit, tmp_path: Path) -> None:
    cid, nid = _client_with_notes(ready)
    out = tmp_path / "record.tacitexport"
    env = {"TACIT_EXPORT_PASSPHRASE": EXPORT_PASSPHRASE}
    result = ready("--json", "export", "client", cid[:8], "--out", str(out), env=env)
    assert result.code == 0, result.err
    doc = result.json
    assert isinstance(doc, dict) and {"file", "notes"} <= set(doc)
    assert doc["file"] == str(out) and doc["notes"] == 1  # the process note left out
    data = out.read_bytes()
    for needle in (CANARY, "Export Person", "canary-process"):
        assert needle.encode() not in data
    assert not list(ready.tmp.iterdir())  # no temp file
    opened = ready("--json", "export", "open", str(out), env=env)
    assert opened.code == 0, opened.err
    content = opened.json
    assert isinstance(content, dict)
    assert content["client"]["name"] == "Export Person"
    assert [n["id"] for n in content["notes"]] == [nid]
    assert CANARY in content["notes"][0]["body"]
    assert content["signatures"] == {nid: True}
    wrong = ready("--json", "export", "open", str(out),
                  env={"TACIT_EXPORT_PASSPHRASE": "not the passphrase at all 77"})  # fmt: skip
    assert wrong.code == 3 and wrong.error["code"] == "wrong_passphrase"
    entries = ready.ok("audit", "list", "--action", "export")
    assert isinstance(entries, list) and len(entries) == 1
    assert entries[0]["record_id"] == cid and "archive, 1 notes" in entries[0]["detail"]
    # An existing file is never overwritten.
    again = ready("--json", "export", "client", cid, "--out", str(out), env=env)
    assert again.code != 0 and out.read_bytes() == data


def test_psychotherapy_notes_only_when_asked(ready: Tacit, tmp_path: Path) -> None:
    cid, _ = _client_with_notes(ready)
    out = tmp_path / "all.tacitexport"
    env = {"TACIT_EXPORT_PASSPHRASE": EXPORT_PASSPHRASE}
    done = ready("--json", "export", "client", cid, "--out", str(out),
                 "--include-psychotherapy-notes", env=env)  # fmt: skip
    assert done.code == 0 and done.json["notes"] == 2  # type: ignore[index]
    content = ready("--json", "export", "open", str(out), env=env).json
    assert sorted(n["kind"] for n in content["notes"]) == ["progress", "psychotherapy"]  # type: ignore[index]
    entry = ready.ok("audit", "list", "--action", "export")[0]  # type: ignore[index]
    assert "psychotherapy notes included" in entry["detail"]


def test_a_weak_export_passphrase_is_refused(ready: Tacit, tmp_path: Path) -> None:
    cid, _ = _client_with_notes(ready)
    out = tmp_path / "weak.tacitexport"
    result = ready("--json", "export", "client", cid, "--out", str(out),
                   env={"TACIT_EXPORT_PASSPHRASE": "password1"})  # fmt: skip
    assert result.code != 0 and result.error["code"] == "weak_passphrase"
    assert not out.exists()


def test_pdf_needs_explicit_consent_and_is_audited(ready: Tacit, tmp_path: Path) -> None:
    cid, _ = _client_with_notes(ready)
    out = tmp_path / "record.pdf"
    refused = ready("--json", "export", "client", cid, "--out", str(out), "--format", "pdf")
    assert refused.code == 2 and refused.error["code"] == "usage"
    assert not out.exists()
    assert ready.ok("audit", "list", "--action", "export") == []
    done = ready("--json", "export", "client", cid, "--out", str(out), "--format", "pdf",
                 "--i-understand-plaintext")  # fmt: skip
    assert done.code == 0, done.err
    assert done.json["notes"] == 1  # type: ignore[index]
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-64:]
    assert out.stat().st_mode & 0o777 == 0o600
    entries = ready.ok("audit", "list", "--action", "export")
    assert isinstance(entries, list) and "pdf plaintext, 1 notes" in entries[0]["detail"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
