"""End to end: two vaults sync through a real ``python -m app.sync.server`` over TLS
(trustme certificates) on 127.0.0.1, driven through the real ``tacit`` CLI as
subprocesses, exactly as a user or a script would."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.sync.server.helpers import RunningServer, running_server
from tests.test_cli import Result, Tacit

ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"
# Every note text and client name written in this module; none may reach the server.
CANARIES: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


class Device(Tacit):
    def __init__(self, base: Path, srv: RunningServer) -> None:
        base.mkdir()
        super().__init__(base)
        self.srv = srv
        self.env["TACIT_ACCOUNT_PASSWORD"] = ACCOUNT_PASSWORD
        self.ok("init")

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self("--json", *args, env=env)

    def create(self, username: str) -> dict[str, Any]:
        doc = self.ok("account", "create", "--server", self.srv.url, "--ca-file",
                      str(self.srv.ca_file), "--username", username)  # fmt: skip
        assert isinstance(doc, dict)
        return doc

    def login(self, username: str, *factor: str) -> Result:
        return self.run("account", "login", "--server", self.srv.url, "--ca-file",
                        str(self.srv.ca_file), "--username", username, *factor)  # fmt: skip

    def client(self, name: str) -> str:
        CANARIES.append(name)
        doc = self.ok("client", "add", name)
        assert isinstance(doc, dict)
        return str(doc["id"])

    def note(self, client_id: str, body: str) -> str:
        CANARIES.append(body)
        doc = self.ok("note", "new", "--client", client_id, "--template", "soap", stdin=body)
        assert isinstance(doc, dict)
        return str(doc["id"])

    def edit(self, note_id: str, body: str) -> None:
        CANARIES.append(body)
        self.ok("note", "edit", note_id, stdin=body)

    def sync(self) -> dict[str, Any]:
        doc = self.ok("sync")
        assert isinstance(doc, dict)
        return doc

    def body(self, note_id: str) -> str:
        doc = self.ok("note", "show", note_id)
        assert isinstance(doc, dict)
        return str(doc["body"])

    def history(self, note_id: str) -> list[str]:
        doc = self.ok("note", "history", note_id)
        assert isinstance(doc, list)
        return [str(r["body"]) for r in doc]

    def state(self) -> tuple[list[str], dict[str, tuple[str, int]]]:
        """Client names, and each note's title and revision (bodies are checked where
        a test cares: each ``note show`` is a process)."""
        clients = self.ok("client", "list")
        notes = self.ok("note", "list", "--limit", "1000")
        assert isinstance(clients, list) and isinstance(notes, list)
        return (sorted(c["name"] for c in clients),
                {n["id"]: (n["title"], n["revision"]) for n in notes})  # fmt: skip


def _user() -> str:
    return f"dr-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> tuple[Device, Device]:
    """Two vaults signed in to one new account, shared by the tests of this module (each
    asserts on its own records): A with a TOTP code, B with a recovery code (a second
    TOTP login within the same 30 s step would be a replay)."""
    base = tmp_path_factory.mktemp("pair")
    a, b = Device(base / "a", server), Device(base / "b", server)
    user = _user()
    created = a.create(user)
    code = pyotp.parse_uri(created["totp_uri"]).now()
    assert a.login(user, "--totp", code).code == 0
    assert b.login(user, "--recovery-code", created["recovery_codes"][0]).code == 0
    return a, b


def server_rows(srv: RunningServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def test_offline_edits_converge_and_a_conflict_keeps_both_texts(
    pair: tuple[Device, Device],
) -> None:
    a, b = pair
    ca = a.client("Ada Canary-Lovelace")
    shared = a.note(ca, "Shared session text canary-1001")
    cb = b.client("Bo Canary-Brown")
    b.note(cb, "B's offline note canary-1002")
    a.sync()
    b.sync()
    a.sync()
    assert a.state() == b.state()
    assert b.body(shared) == "Shared session text canary-1001"
    # concurrent edits of one unsigned note, offline on both sides
    a.edit(shared, "A's edit canary-1003")
    b.edit(shared, "B's edit canary-1004")
    a.sync()
    assert b.sync()["conflicts"] == 1
    a.sync()
    assert a.state() == b.state()
    texts = set(a.history(shared))
    assert {"A's edit canary-1003", "B's edit canary-1004"} <= texts
    conflicts = a.ok("sync", "conflicts", "--note", shared)
    assert isinstance(conflicts, list) and len(conflicts) == 1
    # A settles it from the CLI by taking its own text back; B follows on its next sync.
    resolved = a.ok("note", "resolve", shared, str(conflicts[0]["revision"]), "--keep",
                    "conflict")  # fmt: skip
    assert isinstance(resolved, dict) and resolved["kept"] == "conflict"
    a.sync()
    b.sync()
    assert b.body(shared) == "A's edit canary-1003"
    assert b.ok("sync", "conflicts") == []
    assert "B's edit canary-1004" in set(b.history(shared))
    status = a.ok("sync", "status")
    assert isinstance(status, dict) and status["last_sync"] is not None
    audit = a.ok("audit", "list", "--action", "sync")
    assert isinstance(audit, list) and audit


@pytest.mark.parametrize("step", ["pushed", "prepared"])
def test_a_client_killed_mid_push_converges_without_duplicates(
    pair: tuple[Device, Device], server: RunningServer, step: str
) -> None:
    a, b = pair
    client = a.client("Kim Canary-Kill")
    ids = {a.note(client, f"kill test canary-2{step}{i}") for i in range(3)}
    killed = a.run("sync", env={"TACIT_TEST_SYNC_FAULT": f"{step}:1:kill"})
    assert killed.code == -9  # SIGKILL, mid-push
    assert a.sync()["conflicts"] == 0
    b.sync()
    assert ids <= set(b.state()[1])
    marks = ",".join("?" * len(ids))
    rows = server_rows(server, f"SELECT id FROM items WHERE id IN ({marks})", tuple(ids))  # noqa: S608
    assert len(rows) == 3  # one item per note (the primary key is (account, id))
    assert b.state() == a.state()


def test_tampered_swapped_and_rolled_back_blobs_are_refused(
    pair: tuple[Device, Device], server: RunningServer
) -> None:
    a, b = pair
    client = a.client("Tam Canary-Per")
    n1, n2, n3 = (a.note(client, f"tamper canary-30{i}") for i in range(3))
    a.edit(n3, "tamper canary-302 second")
    a.sync()
    b.sync()
    (old_blob, old_etag), = server_rows(server, "SELECT ciphertext, etag FROM items WHERE id = ?",
                                       (n3,))  # fmt: skip
    a.edit(n3, "tamper canary-303 edited")
    a.sync()
    b.sync()  # B has seen n3's third version
    a.edit(n1, "tamper canary-301 edited")
    a.edit(n2, "tamper canary-302 edited")
    a.sync()
    path = server.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        (account,) = conn.execute("SELECT account_id FROM items WHERE id = ?", (n1,)).fetchone()
        (seq,) = conn.execute("SELECT seq FROM accounts WHERE id = ?", (account,)).fetchone()
        blob1 = bytearray(conn.execute("SELECT ciphertext FROM items WHERE id = ?",
                                       (n1,)).fetchone()[0])  # fmt: skip
        blob1[-10] ^= 0x01
        (blob3,) = conn.execute("SELECT ciphertext FROM items WHERE id = ?", (n3,)).fetchone()
        for n, (item_id, blob) in enumerate(((n1, bytes(blob1)), (n2, blob3), (n3, old_blob))):
            etag = old_etag if item_id == n3 else uuid.uuid4().hex * 2
            conn.execute("UPDATE items SET ciphertext = ?, etag = ?, seq = ? WHERE id = ?",
                         (blob, etag, seq + 1 + n, item_id))  # fmt: skip
        conn.execute("UPDATE accounts SET seq = ? WHERE id = ?", (seq + 3, account))
    result = b.sync()
    assert result["refused"] == 3
    refused = b.ok("sync", "refused")
    assert isinstance(refused, list) and {r["item_id"] for r in refused} >= {n1, n2, n3}
    assert any("rolled back" in r["reason"] for r in refused)
    assert b.body(n1) == "tamper canary-300" and b.body(n2) == "tamper canary-301"
    assert b.body(n3) == "tamper canary-303 edited"


def test_one_account_never_sees_another_accounts_records(
    pair: tuple[Device, Device], tmp_path: Path, server: RunningServer
) -> None:
    a, _ = pair
    a.note(a.client("Iso Canary-Lated"), "isolation canary-401")
    a.sync()
    other = Device(tmp_path / "other", server)
    user = _user()
    created = other.create(user)
    assert other.login(user, "--totp", pyotp.parse_uri(created["totp_uri"]).now()).code == 0
    other.note(other.client("Oth Canary-Er"), "other account canary-402")
    other.sync()
    names, notes = other.state()
    assert names == ["Oth Canary-Er"] and len(notes) == 1
    refused = other.ok("sync", "refused")
    assert refused == []  # it was never even offered A's items
    a.sync()
    assert "Oth Canary-Er" not in a.state()[0]


def test_wrong_and_replayed_totp_codes_are_refused(tmp_path: Path, server: RunningServer) -> None:
    d = Device(tmp_path / "d", server)
    user = _user()
    created = d.create(user)
    totp = pyotp.parse_uri(created["totp_uri"])
    wrong = f"{(int(totp.now()) + 1) % 1_000_000:06d}"
    bad = d.login(user, "--totp", wrong)
    assert bad.code == 10 and bad.error["code"] == "totp_invalid"
    code = totp.now()
    assert d.login(user, "--totp", code).code == 0
    replay = d.login(user, "--totp", code)
    assert replay.code == 10 and replay.error["code"] == "totp_replayed"
    wrong_password = d("--json", "account", "login", "--totp", totp.now(),
                       env={"TACIT_ACCOUNT_PASSWORD": "not the password at all 123"})  # fmt: skip
    assert wrong_password.code == 10 and wrong_password.error["code"] == "signature_invalid"


def test_offline_sync_exits_with_the_offline_code(tmp_path: Path) -> None:
    (tmp_path / "gone").mkdir()
    with running_server(tmp_path / "gone") as srv:
        d = Device(tmp_path / "d", srv)
        user = _user()
        created = d.create(user)
        assert d.login(user, "--totp", pyotp.parse_uri(created["totp_uri"]).now()).code == 0
        d.note(d.client("Off Canary-Line"), "offline canary-501")
    before = d.ok("sync", "status")
    result = d.run("sync")
    assert result.code == 11 and result.error["code"] == "offline"
    after = d.ok("sync", "status")
    assert isinstance(before, dict) and isinstance(after, dict)
    assert after["pending_by_kind"]["note"] == before["pending_by_kind"]["note"] == 1


def test_wrong_ca_is_a_tls_error_not_offline(tmp_path: Path, server: RunningServer) -> None:
    d = Device(tmp_path / "d", server)
    result = d.run("account", "create", "--server", server.url, "--username", _user())
    assert result.code == 12 and result.error["code"] == "tls_error"
    pin = "sha256//" + "A" * 43 + "="
    result = d.run("account", "create", "--server", server.url, "--ca-file",
                   str(server.ca_file), "--pin", pin, "--username", _user())  # fmt: skip
    assert result.code == 12


def test_zz_the_server_database_holds_no_plaintext(server: RunningServer) -> None:
    """Runs last in this module: every note text and client name written above."""
    assert CANARIES
    path = Path(server.db_url.removeprefix("sqlite:///"))
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    for text in CANARIES:
        for piece in {text, *text.split()}:
            if "canary" in piece.lower():
                assert piece.encode() not in data, piece
    assert os.environ.get("TACIT_TEST_SYNC_FAULT") is None
