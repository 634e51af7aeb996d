"""End to end, practice mode (docs/PRACTICE.md): a real ``python -m app.sync.server``
over TLS and five vaults — the owner, two clinicians, a supervisor and admin staff —
driven through the ``tacit`` CLI as subprocesses.

The module builds one practice and walks it through a working week, in order: joining,
charting, booking, supervising, policies, the owner's audit view, and offboarding. The
checks are the issue's acceptance: admin staff and the server hold no clinical text and
no key that opens it; a clinician cannot read another's clients; a supervisor co-signs; a
removed member can read nothing written after removal; policies take effect on the
members' next sync."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.sync.practice_protocol import canonical
from app.vault import crypto
from app.vault.crypto import Passphrase
from app.vault.keychain import NoKeychain
from app.vault.service import VaultService
from tests.sync.server.helpers import RunningServer, running_server
from tests.sync.test_e2e import Device as SyncDevice

C1_CLIENT = "Ada Canary-Firstclient"
C1_NOTE = "C1 clinical canary-7001 panic attacks improving"
C1_PROCESS = "C1 process canary-7002 my countertransference"
C2_CLIENT = "Bo Canary-Secondclient"
C2_NOTE = "C2 clinical canary-7003 sleep diary reviewed"
AFTER_REMOVAL = "C1 after removal canary-7004"
CLINICAL = (C1_NOTE, C1_PROCESS, C2_NOTE, AFTER_REMOVAL)


class Member(SyncDevice):
    email: str = ""
    account_id: str = ""
    username: str = ""
    recovery: list[str]

    def run_ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.code == 0, result.err
        return result.json

    def note_with(self, client_id: str, body: str, template: str) -> str:
        doc = self.ok("note", "new", "--client", client_id, "--template", template, stdin=body)
        assert isinstance(doc, dict)
        return str(doc["id"])

    def open_vault(self) -> VaultService:
        vault = VaultService(self.vault, keychain=NoKeychain())
        vault.unlock(Passphrase.from_str(self.env["TACIT_PASSPHRASE"]))
        return vault


def _dump(member: Member) -> str:
    """Every row of the member's (decrypted) vault, as text."""
    vault = member.open_vault()
    try:
        conn = vault._db._conn  # type: ignore[union-attr]  # the raw SQLCipher connection
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        lines = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the schema
                lines.append(repr(row))
        return "\n".join(lines)
    finally:
        vault.lock()


def _server_blob(srv: RunningServer) -> bytes:
    path = Path(srv.db_url.removeprefix("sqlite:///"))
    data = b""
    for suffix in ("", "-wal", "-shm"):
        file = Path(str(path) + suffix)
        if file.exists():
            data += file.read_bytes()
    return data


def _opens(key: crypto.SymmetricKey, practice_id: str, row: tuple[Any, ...]) -> bool:
    """Whether ``key`` opens a stored practice item (collection, item, version, blob)."""
    cid, item_id, version, blob = row
    raw = bytes(blob)
    aad = canonical({"practice_id": practice_id, "collection_id": cid, "item_id": item_id,
                     "key_version": int(version)})  # fmt: skip
    try:
        crypto.open_sealed(key, raw[: crypto.NONCE_BYTES], raw[crypto.NONCE_BYTES :], aad)
    except crypto.CryptoError:
        return False
    return True


def _keys(member: Member) -> tuple[str, dict[str, dict[int, crypto.SymmetricKey]]]:
    """A member's practice id and every collection key their vault holds."""
    vault = member.open_vault()
    try:
        store = vault.practice_store()
        practice_id = str(store.get_json("practice")["practice_id"])
        return practice_id, {cid: store.keys(cid) for cid in store.get_json("collections") or {}}
    finally:
        vault.lock()


_ITEMS = """SELECT i.collection_id, i.item_id, i.key_version, i.ciphertext
    FROM practice_items i JOIN practice_collections c ON c.id = i.collection_id"""


def _rows(srv: RunningServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with sqlite3.connect(srv.db_url.removeprefix("sqlite:///"), timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


class Practice:
    def __init__(self, base: Path, srv: RunningServer) -> None:
        self.srv = srv
        self.owner = self._member(base, "owner", "owner@practice.test")
        created = self.owner.create(f"own-{uuid.uuid4().hex[:8]}")
        login = self.owner.login(self.owner_username, "--recovery-code",
                                 created["recovery_codes"][0])  # fmt: skip
        assert login.code == 0, login.err
        made = self.owner.run_ok("practice", "create", "Canary Practice", "--email",
                                 self.owner.email)  # fmt: skip
        assert made["role"] == "owner"
        self.c1 = self._join(base, "c1", "c1@practice.test", "clinician")
        self.c2 = self._join(base, "c2", "c2@practice.test", "clinician")
        self.sup = self._join(base, "sup", "sup@practice.test", "supervisor")
        self.admin = self._join(base, "admin", "admin@practice.test", "admin")
        self.owner.sync()  # approves the four, creates their collections, grants keys
        for m in (self.c1, self.c2, self.sup, self.admin):
            m.sync()
        self.owner.run_ok("practice", "supervise", self.sup.email, self.c1.email)
        self.owner.sync()

    @property
    def owner_username(self) -> str:
        return str(self.owner.ok("account", "status")["username"])  # type: ignore[index]

    def _member(self, base: Path, name: str, email: str) -> Member:
        m = Member(base / name, self.srv)
        m.email = email
        return m

    def _join(self, base: Path, name: str, email: str, role: str) -> Member:
        invite = self.owner.run_ok("practice", "invite", email, "--role", role)
        assert invite["code"].startswith("TP-")
        m = self._member(base, name, email)
        joined = m.run_ok("practice", "join", invite["code"], "--server", self.srv.url,
                          "--ca-file", str(self.srv.ca_file), "--username",
                          f"{name}-{uuid.uuid4().hex[:8]}")  # fmt: skip
        assert joined["role"] == role and joined["totp_uri"].startswith("otpauth://")
        assert len(joined["recovery_codes"]) > 1
        m.account_id = joined["account_id"]
        m.recovery = list(joined["recovery_codes"])
        status = m.ok("account", "status")
        assert isinstance(status, dict)
        m.username = str(status["username"])
        login = m.login(m.username, "--recovery-code", m.recovery.pop(0))
        assert login.code == 0, login.err
        # A spent code joins nobody else.
        again = Member(base / f"{name}-again", self.srv)
        refused = again.run("practice", "join", invite["code"], "--server", self.srv.url,
                            "--ca-file", str(self.srv.ca_file))  # fmt: skip
        assert refused.code != 0 and refused.error["code"] == "invite_invalid"
        return m


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def practice(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Practice:
    return Practice(tmp_path_factory.mktemp("practice"), server)


@pytest.fixture(scope="module")
def charted(practice: Practice) -> dict[str, str]:
    """The clinicians chart; everyone syncs."""
    p = practice
    c1_client = p.c1.client(C1_CLIENT)
    c1_note = p.c1.note_with(c1_client, C1_NOTE, "soap")
    c1_process = p.c1.note_with(c1_client, C1_PROCESS, "process")
    c2_client = p.c2.client(C2_CLIENT)
    c2_note = p.c2.note_with(c2_client, C2_NOTE, "dap")
    for m in (p.c1, p.c2, p.owner, p.sup, p.admin):
        m.sync()
    return {"c1_client": c1_client, "c1_note": c1_note, "c1_process": c1_process,
            "c2_client": c2_client, "c2_note": c2_note}  # fmt: skip


def test_members_join_with_codes_and_are_certified_by_the_owner(practice: Practice) -> None:
    rows = practice.owner.run_ok("practice", "members")
    by_email = {r["email"]: r for r in rows}
    assert set(by_email) == {"owner@practice.test", "c1@practice.test", "c2@practice.test",
                             "sup@practice.test", "admin@practice.test"}  # fmt: skip
    assert all(r["status"] == "active" and r["certified"] for r in rows)
    assert by_email["sup@practice.test"]["supervises"] == [practice.c1.account_id]
    status = practice.admin.run_ok("practice", "status")
    assert status["role"] == "admin" and status["status"] == "active"


def test_admin_staff_book_and_bill_but_hold_no_clinical_text_or_key(
    practice: Practice, charted: dict[str, str], server: RunningServer
) -> None:
    p = practice
    booked = p.admin.run_ok("appointment", "add", "--client", charted["c1_client"][:8],
                            "--clinician", p.c1.email, "--start", "2026-12-01T09:00",
                            "--duration", "50")  # fmt: skip
    assert booked["status"] == "scheduled"
    fee = p.admin.run_ok("fee", "add", "--client", charted["c1_client"][:8], "--appointment",
                         booked["appointment_id"][:8], "--amount", "120")  # fmt: skip
    assert fee["amount"] == "120.00" and fee["paid"] is False
    p.admin.run_ok("fee", "paid", fee["fee_id"][:8])
    p.admin.sync()
    p.c1.sync()
    [appt] = p.c1.run_ok("appointment", "list")
    assert appt["client"] == C1_CLIENT and appt["start"].startswith("2026-12-01T09:00")
    # The admin sees names and contacts for scheduling...
    listed = p.admin.run_ok("appointment", "list")
    assert [a["client"] for a in listed] == [C1_CLIENT]
    [fee_row] = p.admin.run_ok("fee", "list")
    assert fee_row["paid"] is True
    # ...a clinician keeps no fees.
    refused = p.c1.run("fee", "list")
    assert refused.code != 0 or refused.json == []

    # No clinical text in the admin's whole vault, nor anywhere in the server's database.
    dump = _dump(p.admin)
    assert C1_CLIENT in dump  # the contact is there (the check below can fail)
    for canary in CLINICAL:
        assert canary not in dump
    blob = _server_blob(server)
    for canary in (*CLINICAL, C1_CLIENT, C2_CLIENT):
        assert canary.encode() not in blob

    # Handed the clinical ciphertext, the admin's keys open none of it (the owner's do).
    practice_id, admin_keys = _keys(p.admin)
    keys = [k for versions in admin_keys.values() for k in versions.values()]
    assert keys  # the admin does hold keys (schedule, billing)
    _pid, owner_keys = _keys(p.owner)
    clinical = _rows(server, _ITEMS + " WHERE c.kind = 'clinical'")
    assert clinical
    for row in clinical:
        assert not any(_opens(key, practice_id, row) for key in keys)
        assert any(_opens(key, practice_id, row) for key in owner_keys[row[0]].values())
    # And the server refuses to serve a clinical collection to the admin at all.
    assert p.admin.run_ok("practice", "records") == []


def test_a_members_second_device_takes_their_practice_keys_at_sign_in(
    practice: Practice, charted: dict[str, str], tmp_path: Path
) -> None:
    p = practice
    before = Member(tmp_path / "c1-desktop", p.srv)
    assert before.run_ok("practice", "status") == {"in_practice": False}
    login = before.login(p.c1.username, "--recovery-code", p.c1.recovery.pop(0))
    assert login.code == 0, login.err
    status = before.run_ok("practice", "status")
    assert status["in_practice"] is True and status["role"] == "clinician"
    assert status["account_id"] == p.c1.account_id
    before.sync()
    [appt] = before.run_ok("appointment", "list")  # booked by the admin for this clinician
    assert appt["client"] == C1_CLIENT
    # The owner's lock orders are trusted on this device too.
    header = json.loads((before.vault / "vault.header").read_text())
    assert header["practice_order_key"]


def test_a_clinician_cannot_read_another_clinicians_clients(
    practice: Practice, charted: dict[str, str]
) -> None:
    p = practice
    assert p.c2.run_ok("practice", "records") == []
    dump = _dump(p.c2)
    assert C1_CLIENT not in dump and C1_NOTE not in dump
    assert C2_NOTE in dump  # its own (the check above can fail)
    shown = p.c2.run("practice", "records", "--note", charted["c1_note"][:8])
    assert shown.code != 0 and shown.error["code"] == "not_found"


def test_process_notes_stay_with_their_clinician(
    practice: Practice, charted: dict[str, str]
) -> None:
    for reader in (practice.owner, practice.sup):
        ids = {r["note_id"] for r in reader.run_ok("practice", "records")}
        assert charted["c1_note"] in ids and charted["c1_process"] not in ids
        assert C1_PROCESS not in _dump(reader)


def test_a_supervisor_reads_and_cosigns_and_the_owner_sees_it_verified(
    practice: Practice, charted: dict[str, str]
) -> None:
    p = practice
    rows = p.sup.run_ok("practice", "records", "--clinician", p.c1.email)
    assert [r["note_id"] for r in rows] == [charted["c1_note"]]
    note = p.sup.run_ok("practice", "records", "--note", charted["c1_note"][:8])
    assert note["body"] == C1_NOTE and note["clinician"] == p.c1.email
    signed = p.sup.run_ok("practice", "cosign", charted["c1_note"][:8])
    assert signed["queued"] is True
    refused = p.c2.run("practice", "cosign", charted["c1_note"][:8])
    assert refused.code != 0
    p.sup.sync()
    p.owner.sync()
    shown = p.owner.run_ok("practice", "records", "--note", charted["c1_note"][:8])
    [cosign] = shown["cosignatures"]
    assert cosign["supervisor"] == p.sup.email and cosign["matches"] is True
    # An edit after the co-signature: the co-signature no longer matches the note.
    p.c1.edit(charted["c1_note"], C1_NOTE + " (amended)")
    p.c1.sync()
    p.owner.sync()
    shown = p.owner.run_ok("practice", "records", "--note", charted["c1_note"][:8])
    assert shown["cosignatures"][0]["matches"] is False


def test_the_owner_sees_who_accessed_which_record(
    practice: Practice, charted: dict[str, str]
) -> None:
    p = practice
    p.sup.run_ok("practice", "records", "--note", charted["c1_note"][:8])
    p.sup.sync()
    p.owner.sync()
    rows = p.owner.run_ok("practice", "audit", "--member", p.sup.email)
    views = [r for r in rows if r["action"] == "view" and r["record_type"] == "practice_note"]
    assert views and views[-1]["record_id"] == charted["c1_note"]
    assert all(r["member_email"] == p.sup.email for r in rows)
    for canary in CLINICAL:
        assert canary not in json.dumps(rows)
    assert p.sup.run("practice", "audit").code != 0  # the owner's view only


def test_policies_take_effect_on_the_members_next_sync(practice: Practice) -> None:
    p = practice
    policy = p.owner.run_ok("practice", "policy", "--max-idle-minutes", "10",
                            "--offline-lease-days", "7")  # fmt: skip
    assert policy["max_idle_minutes"] == 10 and policy["offline_lease_days"] == 7
    before = p.c1.run_ok("practice", "status")["policy"]
    assert before["offline_lease_days"] is None
    p.c1.sync()
    after = p.c1.run_ok("practice", "status")["policy"]
    assert after["max_idle_minutes"] == 10 and after["offline_lease_days"] == 7
    header = json.loads((p.c1.vault / "vault.header").read_text())
    assert header["lease_days"] == 7
    assert p.c1.run("practice", "policy", "--max-idle-minutes", "60").code != 0  # owner only


def test_a_removed_member_reads_nothing_written_after_removal(
    practice: Practice, charted: dict[str, str], server: RunningServer
) -> None:
    p = practice
    # What a copy of the supervisor's vault holds, taken before the removal.
    practice_id, stolen = _keys(p.sup)
    assert any(stolen.values())

    removed = p.owner.run_ok("practice", "remove", p.sup.email)
    assert removed["sessions_ended"] >= 1 and removed["devices_locked"] == 1
    assert removed["rotated"]

    after = p.c1.note_with(charted["c1_client"], AFTER_REMOVAL, "soap")
    p.c1.sync()
    p.owner.sync()
    rows = _rows(server, _ITEMS + " WHERE c.kind = 'clinical' AND c.subject = ?",
                 (p.c1.account_id,))  # fmt: skip
    _pid, owner_keys = _keys(p.owner)
    fresh = [r for r in rows if int(r[2]) > 1]  # sealed under the rotated key
    assert fresh
    for row in fresh:
        assert not any(_opens(k, practice_id, row) for k in stolen.get(row[0], {}).values())
        assert _opens(owner_keys[row[0]][int(row[2])], practice_id, row)
    # The supervisor's device is locked by the owner's order, its sessions are gone.
    locked = p.sup.run("note", "list")
    assert locked.code != 0 and locked.error["code"] in ("device_locked", "device_wiped")
    # The owner reads what the clinician wrote after the removal.
    ids = {r["note_id"] for r in p.owner.run_ok("practice", "records")}
    assert after in ids
