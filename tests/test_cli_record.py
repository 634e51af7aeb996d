"""The clinical-record CLI contract: sign, addenda, verify, and the audit trail entries
each command leaves."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from app.vault.crypto import Passphrase
from app.vault.keychain import NoKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.test_cli import Tacit


@pytest.fixture
def ready(tmp_path: Any) -> Tacit:
    tacit = Tacit(tmp_path)
    tacit.ok("init")
    return tacit


@contextmanager
def keyed_connection(tacit: Tacit) -> Iterator[Any]:
    """Reach into the SQLCipher database with the key, as an attacker holding it would."""
    svc = VaultService(tacit.vault, keychain=NoKeychain())
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    assert svc._db is not None
    try:
        yield svc._db.conn
    finally:
        svc.lock(record=False)


def _note(tacit: Tacit, body: str = "Plan: weekly sessions.") -> tuple[str, str]:
    cid = str(tacit.ok("client", "add", "Record Client")["id"])  # type: ignore[index]
    nid = str(
        tacit.ok("note", "new", "--client", cid, "--template", "soap", stdin=body)["id"]  # type: ignore[index]
    )
    return cid, nid


def test_sign_addendum_verify(ready: Tacit) -> None:
    _, nid = _note(ready)
    signed = ready.ok("note", "sign", nid)
    assert isinstance(signed, dict) and set(signed) == {"id", "signed_at", "signature"}
    assert signed["id"] == nid
    refused = ready("--json", "note", "edit", nid, stdin="changed")
    assert refused.code != 0 and refused.error["code"] == "note_signed"
    added = ready.ok("note", "addendum", nid, stdin="Addendum: client asked for a copy.")
    assert isinstance(added, dict) and set(added) == {"id"}
    shown = ready.ok("note", "show", nid)
    assert isinstance(shown, dict)
    assert shown["body"] == "Plan: weekly sessions."
    assert shown["signed_at"] == signed["signed_at"]
    assert [a["body"] for a in shown["addenda"]] == ["Addendum: client asked for a copy."]
    assert ready.ok("note", "verify", nid) == {"ok": True, "addenda": 1}


def test_addendum_needs_a_signed_note(ready: Tacit) -> None:
    _, nid = _note(ready)
    result = ready("--json", "note", "addendum", nid, stdin="x")
    assert result.code == 2 and result.error["code"] == "note_not_signed"


def test_verify_fails_after_tampering(ready: Tacit) -> None:
    _, nid = _note(ready)
    ready.ok("note", "sign", nid)
    with keyed_connection(ready) as conn:
        conn.execute("DROP TRIGGER notes_signed_no_update")
        conn.execute("UPDATE notes SET body = 'Plan: none.' WHERE id = ?", (nid,))
    result = ready("--json", "note", "verify", nid)
    assert result.code == 5
    assert result.error["code"] == "integrity_error"
    assert result.error["problems"]


def test_audit_verify_and_first_bad_seq(ready: Tacit) -> None:
    _note(ready)
    verdict = ready.ok("audit", "verify")
    assert isinstance(verdict, dict) and verdict["ok"] is True and verdict["entries"] > 3
    with keyed_connection(ready) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("UPDATE audit SET record_id = 'someone-else' WHERE seq = 3")
    result = ready("--json", "audit", "verify")
    assert result.code == 5
    assert result.error["code"] == "integrity_error"
    assert result.error["first_bad_seq"] == 3


def _entries(tacit: Tacit) -> list[dict[str, Any]]:
    entries = tacit.ok("audit", "list")
    assert isinstance(entries, list)
    for entry in entries:
        assert {"seq", "at", "action", "record_id", "device"} <= set(entry)
    return entries


def _new_entries(tacit: Tacit, *args: str, stdin: str | None = None) -> list[tuple[Any, ...]]:
    """Run one command; return (action, record_type, record_id) of the entries it added.
    Each `audit list` shows its own unlock last; its lock is written after it."""
    before = len(_entries(tacit))
    tacit.ok(*args, stdin=stdin)
    after = _entries(tacit)
    assert after[before]["action"] == "lock"  # the first listing's lock
    assert after[-1]["action"] == "unlock"  # the second listing's own unlock
    return [(e["action"], e["record_type"], e["record_id"]) for e in after[before + 1 : -1]]


def test_every_command_leaves_the_right_entries(ready: Tacit) -> None:
    cid, nid = _note(ready)
    u, lk = ("unlock", None, None), ("lock", None, None)
    assert _new_entries(ready, "client", "list") == [u, ("list", "client", None), lk]
    assert _new_entries(ready, "client", "show", cid) == [u, ("view", "client", cid), lk]
    assert _new_entries(ready, "client", "edit", cid, "--phone", "555") == [
        u, ("edit", "client", cid), lk,
    ]  # fmt: skip
    assert _new_entries(ready, "note", "list") == [u, ("list", "note", None), lk]
    assert _new_entries(ready, "note", "show", nid) == [u, ("view", "note", nid), lk]
    assert _new_entries(ready, "note", "history", nid) == [u, ("view", "note", nid), lk]
    assert _new_entries(ready, "note", "search", "weekly") == [u, ("search", "note", None), lk]
    assert _new_entries(ready, "note", "edit", nid, stdin="Plan: fortnightly.") == [
        u, ("edit", "note", nid), lk,
    ]  # fmt: skip
    added = _new_entries(ready, "note", "new", "--client", cid, "--template", "dap", stdin="x")
    assert [a[:2] for a in added] == [u[:2], ("create", "note"), lk[:2]]
    assert _new_entries(ready, "note", "sign", nid) == [u, ("sign", "note", nid), lk]
    assert _new_entries(ready, "note", "addendum", nid, stdin="more") == [
        u, ("addendum", "note", nid), lk,
    ]  # fmt: skip
    assert _new_entries(ready, "note", "verify", nid) == [u, ("verify", "note", nid), lk]
    assert _new_entries(ready, "client", "add", "New")[1][:2] == ("create", "client")
    assert ready.ok("audit", "verify")["ok"] is True  # type: ignore[index]


def test_failed_commands_leave_no_entries_but_failed_unlocks_are_kept(ready: Tacit) -> None:
    _, _nid = _note(ready)
    before = len(_entries(ready))
    assert ready("--json", "note", "show", "ffffffff").code == 4
    assert len(_entries(ready)) == before + 2  # only the listings' own lock and unlock
    bad = ready("--json", "status", env={"TACIT_PASSPHRASE": "wrong horse battery staple 42"})
    assert bad.code == 3
    entries = _entries(ready)
    assert [e["action"] for e in entries[-3:]] == ["lock", "failed_unlock", "unlock"]


def test_audit_list_filters(ready: Tacit) -> None:
    cid, nid = _note(ready)
    ready.ok("note", "show", nid)
    by_record = ready.ok("audit", "list", "--record", nid)
    assert isinstance(by_record, list)
    assert {e["record_id"] for e in by_record} == {nid}
    assert [e["action"] for e in by_record] == ["create", "view"]
    views = ready.ok("audit", "list", "--action", "view")
    assert isinstance(views, list) and [e["record_id"] for e in views] == [nid]
    by_client = ready.ok("audit", "list", "--record", cid[:8])
    assert isinstance(by_client, list) and by_client
    future = ready.ok("audit", "list", "--since", "2999-01-01")
    assert future == []
    bad = ready("--json", "audit", "list", "--since", "soon")
    assert bad.code == 2


def test_public_key_export(ready: Tacit) -> None:
    key = ready.ok("key")
    assert isinstance(key, dict) and key["algorithm"] == "ed25519"
    assert len(bytes.fromhex(str(key["public_key"]))) == 32


def test_audit_csv_export_needs_consent_and_is_audited(ready: Tacit, tmp_path: Any) -> None:
    _note(ready)
    out = tmp_path / "audit.csv"
    refused = ready("--json", "audit", "export", "--out", str(out))
    assert refused.code == 2
    assert not out.exists()
    done = ready.ok("audit", "export", "--out", str(out), "--i-understand-plaintext")
    assert isinstance(done, dict)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("seq,at,actor,device,action")
    assert len(lines) == done["entries"] + 1
    assert "Record Client" not in out.read_text()  # ids and actions only
    exports = ready.ok("audit", "list", "--action", "export")
    assert isinstance(exports, list)
    assert [e["record_type"] for e in exports] == ["audit"]
    again = ready("--json", "audit", "export", "--out", str(out), "--i-understand-plaintext")
    assert again.code == 2  # never overwrites


def test_own_templates(ready: Tacit) -> None:
    added = ready.ok("template", "add", "Couples session", "--kind", "progress",
                     "--section", "Presenting issue", "--section", "Plan")  # fmt: skip
    assert isinstance(added, dict) and added["custom"] is True
    tid = str(added["id"])
    listed = ready.ok("template", "list")
    assert isinstance(listed, list) and listed[-1]["id"] == tid
    shipped = ready.ok("templates")  # no unlock: the shipped ones only
    assert isinstance(shipped, list) and all(not t["custom"] for t in shipped)
    cid = str(ready.ok("client", "add", "Template Client")["id"])  # type: ignore[index]
    note = ready.ok("note", "new", "--client", cid, "--template", "couples session")
    shown = ready.ok("note", "show", str(note["id"]))  # type: ignore[index]
    assert isinstance(shown, dict) and shown["template"] == tid
    assert shown["body"].startswith("## Presenting issue")
    edited = ready.ok("template", "edit", tid[:8], "--section", "Only")
    assert isinstance(edited, dict) and edited["sections"] == ["Only"]
    assert ready.ok("template", "archive", tid)["archived"] is True  # type: ignore[index]
    refused = ready("--json", "note", "new", "--client", cid, "--template", tid)
    assert refused.code == 2 and refused.error["code"] == "invalid_input"
    archived = ready.ok("template", "list", "--archived")
    assert isinstance(archived, list) and archived[-1]["archived"] is True
    clash = ready("--json", "template", "add", "SOAP", "--kind", "progress", "--section", "A")
    assert clash.code == 2
