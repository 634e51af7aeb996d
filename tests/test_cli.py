"""The CLI contract, driven exactly as other tools will drive it: as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE

NEW_PASSPHRASE = "violet lantern orbit 77 cascade"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> object:
        return json.loads(self.out)

    @property
    def error(self) -> dict[str, str]:
        doc = json.loads(self.err.strip().splitlines()[-1])
        return doc["error"]  # type: ignore[no-any-return]


class Tacit:
    def __init__(self, tmp_path: Path) -> None:
        self.vault = tmp_path / "vault"
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.env = {
            **os.environ,
            "TACIT_VAULT": str(self.vault),
            "TACIT_PASSPHRASE": PASSPHRASE,
            "TACIT_INSECURE_TEST_KDF": "1",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "TMPDIR": str(self.tmp),
        }
        self.env.pop("TACIT_DEBUG", None)

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Result:  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            input=(stdin or "").encode(),
            capture_output=True,
            env={**self.env, **(env or {})},
            pass_fds=pass_fds,
            timeout=60,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        assert "Traceback" not in result.err, result.err
        return result

    def ok(self, *args: str, stdin: str | None = None) -> object:
        result = self("--json", *args, stdin=stdin)
        assert result.code == 0, result.err
        return result.json

    def files(self) -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.vault.iterdir())
            if p.is_file() and p.name != "vault.failures"  # failed unlocks, timestamps only
        }


@pytest.fixture
def tacit(tmp_path: Path) -> Tacit:
    return Tacit(tmp_path)


@pytest.fixture
def ready(tacit: Tacit) -> Tacit:
    tacit.ok("init")
    return tacit


def test_init_and_status(tacit: Tacit) -> None:
    created = tacit.ok("init")
    assert isinstance(created, dict)
    assert created["vault"] == str(tacit.vault)
    assert str(created["recovery_key"]).startswith("TACIT-")
    status = tacit.ok("status")
    assert isinstance(status, dict)
    assert status["format_version"] == 1
    assert status["kdf"] == {
        "algorithm": "argon2id", "memory_kib": 1024, "iterations": 1, "parallelism": 1,
    }  # fmt: skip
    assert status["keychain_bound"] is False
    assert status["insecure_test_kdf"] is True
    assert (status["clients"], status["notes"]) == (0, 0)


def test_full_workflow_contract(ready: Tacit) -> None:
    client = ready.ok("client", "add", "Ada Example", "--dob", "1980-02-03", "--email", "a@x.org")
    assert isinstance(client, dict) and set(client) == {"id"}
    cid = str(client["id"])
    clients = ready.ok("client", "list")
    assert isinstance(clients, list) and clients[0]["id"] == cid and clients[0]["name"]
    note = ready.ok(
        "note", "new", "--client", cid[:8], "--template", "soap", "--title", "First session",
        "--session-date", "2026-03-01", stdin="Subjective: reports low mood since March.",
    )  # fmt: skip
    assert isinstance(note, dict) and set(note) == {"id"}
    nid = str(note["id"])
    shown = ready.ok("note", "show", nid)
    assert isinstance(shown, dict)
    assert {"id", "client_id", "kind", "template", "title", "body"} <= set(shown)
    assert (shown["client_id"], shown["kind"], shown["template"]) == (cid, "progress", "soap")
    assert shown["body"] == "Subjective: reports low mood since March."
    ready.ok("note", "edit", nid, stdin="Subjective: mood lifting.")
    history = ready.ok("note", "history", nid)
    assert isinstance(history, list)
    assert [h["body"] for h in history] == [
        "Subjective: reports low mood since March.",
        "Subjective: mood lifting.",
    ]
    listed = ready.ok("note", "list", "--client", cid)
    assert isinstance(listed, list) and [n["id"] for n in listed] == [nid]
    hits = ready.ok("note", "search", "mood")
    assert isinstance(hits, list) and hits[0]["id"] == nid
    assert {"id", "title", "snippet"} <= set(hits[0])
    assert "**mood**" in hits[0]["snippet"]
    templates = ready.ok("templates")
    assert isinstance(templates, list) and "soap" in {t["id"] for t in templates}


def test_note_from_template_without_body(ready: Tacit) -> None:
    cid = ready.ok("client", "add", "T")["id"]  # type: ignore[index]
    nid = ready.ok("note", "new", "--client", cid, "--template", "dap")["id"]  # type: ignore[index]
    body = ready.ok("note", "show", nid)["body"]  # type: ignore[index]
    assert "## Data" in body and "## Assessment" in body and "## Plan" in body


def test_body_file(ready: Tacit, tmp_path: Path) -> None:
    cid = ready.ok("client", "add", "F")["id"]  # type: ignore[index]
    body = tmp_path / "body.txt"
    body.write_text("From a file.\n")
    nid = ready.ok("note", "new", "--client", cid, "--template", "free", "--body-file",
                   str(body))["id"]  # type: ignore[index]  # fmt: skip
    assert ready.ok("note", "show", nid)["body"] == "From a file.\n"  # type: ignore[index]


def test_passphrase_fd(ready: Tacit) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, (PASSPHRASE + "\n").encode())
    os.close(write_end)
    try:
        result = ready(
            "--json", "--passphrase-fd", str(read_end), "status",
            env={"TACIT_PASSPHRASE": "wrong horse battery staple 42"}, pass_fds=(read_end,),
        )  # fmt: skip
    finally:
        os.close(read_end)
    assert result.code == 0, result.err  # the fd wins over the environment


def test_human_output_is_readable(ready: Tacit) -> None:
    ready.ok("client", "add", "Human Readable")
    result = ready("client", "list")
    assert result.code == 0
    assert "NAME" in result.out and "Human Readable" in result.out
    assert not result.out.lstrip().startswith(("[", "{"))


@pytest.mark.parametrize(
    ("args", "env", "code", "exit_status"),
    [
        (("status",), {"TACIT_PASSPHRASE": "wrong horse battery staple 42"},
         "wrong_passphrase", 3),
        (("note", "show", "00000000"), {}, "not_found", 4),
        (("client", "show", "zzzz"), {}, "not_found", 4),
        (("init",), {}, "vault_exists", 6),
        (("client", "add"), {}, "usage", 2),
        (("note", "new", "--client", "x"), {}, "usage", 2),
        (("frobnicate",), {}, "usage", 2),
        (("client", "add", "X", "--dob", "not-a-date"), {}, "invalid_input", 2),
        (("--passphrase-fd", "97", "status"), {}, "usage", 2),
    ],
)  # fmt: skip
def test_errors_have_stable_codes_and_change_nothing(
    ready: Tacit, args: tuple[str, ...], env: dict[str, str], code: str, exit_status: int
) -> None:
    before = ready.files()
    result = ready("--json", *args, env=env)
    assert result.code == exit_status
    assert result.out == ""  # stdout holds a document only on success
    assert result.error["code"] == code
    assert ready.files() == before
    plain = ready(*args, env=env)
    assert plain.code == exit_status
    assert f"[{code}]" in plain.err and len(plain.err.strip().splitlines()) == 1


def test_missing_vault(tacit: Tacit) -> None:
    result = tacit("--json", "status")
    assert result.code == 6
    assert result.error["code"] == "vault_missing"


def test_corrupt_header_is_integrity_error(ready: Tacit) -> None:
    header = ready.vault / "vault.header"
    raw = bytearray(header.read_bytes())
    raw[40] ^= 0x08
    header.write_bytes(bytes(raw))
    before = ready.files()
    result = ready("--json", "client", "list")
    assert result.code == 5
    assert result.error["code"] == "integrity_error"
    assert ready.files() == before


def test_corrupt_database_is_integrity_error(ready: Tacit) -> None:
    cid = ready.ok("client", "add", "Corrupt")["id"]  # type: ignore[index]
    for i in range(30):
        ready.ok("note", "new", "--client", cid, "--template", "free", stdin=f"n{i} " * 400)
    db = ready.vault / "vault.db"
    raw = bytearray(db.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    db.write_bytes(bytes(raw))
    before = ready.files()
    result = ready("--json", "check")
    assert result.code == 5
    assert result.error["code"] == "integrity_error"
    assert ready.files() == before


def test_passwd_and_recover(tacit: Tacit) -> None:
    recovery = str(tacit.ok("init")["recovery_key"])  # type: ignore[index]
    cid = tacit.ok("client", "add", "Keeps")["id"]  # type: ignore[index]
    result = tacit("--json", "passwd", env={"TACIT_NEW_PASSPHRASE": NEW_PASSPHRASE})
    assert result.code == 0, result.err
    assert tacit("--json", "status").code == 3  # the old passphrase stops working
    new_env = {"TACIT_PASSPHRASE": NEW_PASSPHRASE}
    assert tacit("--json", "client", "show", cid, env=new_env).code == 0
    weak = tacit("--json", "passwd", env={**new_env, "TACIT_NEW_PASSPHRASE": "weak"})
    assert weak.code == 2 and weak.error["code"] == "weak_passphrase"
    bad = tacit("--json", "recover", env={"TACIT_RECOVERY_KEY": "TACIT-0000",
                                          "TACIT_NEW_PASSPHRASE": PASSPHRASE})  # fmt: skip
    assert bad.code == 3 and bad.error["code"] == "wrong_recovery_key"
    rec = tacit("--json", "recover", env={"TACIT_RECOVERY_KEY": recovery,
                                          "TACIT_NEW_PASSPHRASE": PASSPHRASE})  # fmt: skip
    assert rec.code == 0, rec.err
    assert tacit("--json", "status", env=new_env).code == 3
    shown = tacit.ok("client", "show", cid)
    assert isinstance(shown, dict) and shown["name"] == "Keeps"


def test_no_prompt_without_a_terminal(ready: Tacit) -> None:
    env = {k: v for k, v in ready.env.items() if k != "TACIT_PASSPHRASE"}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "--json", "status"],
        stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert json.loads(proc.stderr)["error"]["code"] == "usage"


def test_canary_never_leaves_the_vault(tacit: Tacit) -> None:
    """After creates, edits and searches, no file under the vault folder or the temp
    folder contains any note or client text."""
    canaries = ["CANARYNAME4711", "canary-mail-4711@example.org", "CANARYBODY4711",
                "CANARYTITLE4711", "CANARYEDIT4711", "CANARYTAG4711"]  # fmt: skip
    tacit.ok("init")
    cid = tacit.ok("client", "add", canaries[0], "--email", canaries[1])["id"]  # type: ignore[index]
    note_ids = []
    for i in range(20):
        nid = tacit.ok(
            "note", "new", "--client", cid, "--template", "soap", "--title",
            f"{canaries[3]} {i}", "--tag", canaries[5], stdin=f"{canaries[2]} session {i}\n" * 50,
        )["id"]  # type: ignore[index]  # fmt: skip
        note_ids.append(str(nid))
    for nid in note_ids[:10]:
        tacit.ok("note", "edit", nid, stdin=f"{canaries[4]} rewritten\n" * 30)
    for query in (canaries[2], canaries[4], "session", canaries[3][:8]):
        tacit.ok("note", "search", query)
    tacit.ok("note", "list")
    tacit.ok("client", "list")
    tacit.ok("check")
    scanned = 0
    for root in (tacit.vault, tacit.tmp):
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            scanned += 1
            for canary in canaries:
                for encoding in ("utf-8", "utf-16-le"):
                    assert canary.encode(encoding) not in data, f"{canary} found in {path}"
                assert canary.lower().encode() not in data.lower()
    assert scanned >= 2  # the header and the database were read
