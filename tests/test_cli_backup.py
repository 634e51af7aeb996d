"""`tacit backup create | verify | restore`: the JSON contract and exit codes, driven as a
subprocess like the rest of the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.test_cli import NEW_PASSPHRASE, Tacit

CANARIES = ("CANARYNAME4711", "CANARYBODY4711", "CANARYTITLE4711")


@pytest.fixture
def tacit(tmp_path: Path) -> Tacit:
    t = Tacit(tmp_path)
    t.env["XDG_DATA_HOME"] = str(tmp_path / "data")  # the default backup folder
    return t


@pytest.fixture
def recovery(tacit: Tacit) -> str:
    created = tacit.ok("init")
    assert isinstance(created, dict)
    cid = str(tacit.ok("client", "add", CANARIES[0])["id"])  # type: ignore[index]
    for i in range(5):
        nid = str(tacit.ok("note", "new", "--client", cid, "--template", "soap", "--title",
                           f"{CANARIES[2]} {i}", stdin=f"{CANARIES[1]} {i}\n" * 40)["id"])  # type: ignore[index]  # fmt: skip
        if i == 0:
            tacit.ok("note", "sign", nid)
    return str(created["recovery_key"])


def _create(tacit: Tacit, *args: str) -> Path:
    made = tacit.ok("backup", "create", *args)
    assert isinstance(made, dict)
    assert set(made) == {"file", "notes", "bytes", "seconds"}
    assert made["notes"] == 5 and made["bytes"] == Path(str(made["file"])).stat().st_size
    return Path(str(made["file"]))


def test_create_verify_restore_contract(tacit: Tacit, recovery: str, tmp_path: Path) -> None:
    made = _create(tacit)
    assert made.parent == tmp_path / "data" / "tacit" / "backups"  # the default folder
    found = tacit.ok("backup", "verify", str(made))
    assert found == {"ok": True, "notes": 5, "clients": 1, "audit_entries": found["audit_entries"]}  # type: ignore[index]
    assert isinstance(found["audit_entries"], int) and found["audit_entries"] > 10  # type: ignore[index]
    by_key = tacit("--json", "backup", "verify", str(made), "--recovery-key",
                   env={"TACIT_RECOVERY_KEY": recovery, "TACIT_PASSPHRASE": "unused"})  # fmt: skip
    assert by_key.code == 0, by_key.err
    assert by_key.json == found
    target = tmp_path / "restored"
    restored = tacit.ok("backup", "restore", str(made), "--vault", str(target))
    assert isinstance(restored, dict) and set(restored) == {"vault", "notes", "seconds"}
    assert (restored["vault"], restored["notes"]) == (str(target), 5)
    status = tacit.ok("--vault", str(target), "status")
    assert isinstance(status, dict) and (status["notes"], status["clients"]) == (5, 1)
    assert tacit.ok("--vault", str(target), "audit", "verify")["ok"] is True  # type: ignore[index]
    actions = [e["action"] for e in tacit.ok("--vault", str(target), "audit", "list")]  # type: ignore[union-attr, index]
    assert "restore" in actions
    own = [e["action"] for e in tacit.ok("audit", "list", "--action", "backup")]  # type: ignore[union-attr, index]
    assert own == ["backup"]


def test_create_to_a_folder(tacit: Tacit, recovery: str, tmp_path: Path) -> None:
    made = _create(tacit, "--to", str(tmp_path / "usb"))
    assert made.parent == tmp_path / "usb" and made.name.endswith(".tacitbackup")


def test_restore_with_the_recovery_key(tacit: Tacit, recovery: str, tmp_path: Path) -> None:
    made = _create(tacit)
    target = tmp_path / "restored"
    result = tacit("--json", "backup", "restore", str(made), "--vault", str(target),
                   "--recovery-key", env={"TACIT_RECOVERY_KEY": recovery,
                                          "TACIT_NEW_PASSPHRASE": NEW_PASSPHRASE})  # fmt: skip
    assert result.code == 0, result.err
    new = {"TACIT_PASSPHRASE": NEW_PASSPHRASE}
    assert tacit("--json", "--vault", str(target), "status", env=new).code == 0
    assert tacit("--json", "--vault", str(target), "status").code == 3


@pytest.mark.parametrize("damage", ["truncate1", "truncate_half", "flip_header", "flip_body",
                                    "flip_mac"])  # fmt: skip
def test_damaged_backups_exit_5(tacit: Tacit, recovery: str, tmp_path: Path, damage: str) -> None:
    made = _create(tacit)
    data = bytearray(made.read_bytes())
    if damage == "truncate1":
        data = data[:-1]
    elif damage == "truncate_half":
        data = data[: len(data) // 2]
    else:
        at = {"flip_header": 30, "flip_body": len(data) // 2, "flip_mac": len(data) - 40}[damage]
        data[at] ^= 0x20
    made.write_bytes(bytes(data))
    for args in (("verify", str(made)),
                 ("restore", str(made), "--vault", str(tmp_path / "r"))):  # fmt: skip
        result = tacit("--json", "backup", *args)
        assert result.code == 5, result.err
        assert result.error["code"] == "integrity_error"
        assert result.out == ""
    assert not (tmp_path / "r").exists()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name]


def test_wrong_secrets_exit_3(tacit: Tacit, recovery: str, tmp_path: Path) -> None:
    made = _create(tacit)
    wrong = tacit("--json", "backup", "verify", str(made),
                  env={"TACIT_PASSPHRASE": NEW_PASSPHRASE})  # fmt: skip
    assert (wrong.code, wrong.error["code"]) == (3, "wrong_passphrase")
    bad_key = tacit("--json", "backup", "verify", str(made), "--recovery-key",
                    env={"TACIT_RECOVERY_KEY": "TACIT-0000"})  # fmt: skip
    assert (bad_key.code, bad_key.error["code"]) == (3, "wrong_recovery_key")
    missing = tacit("--json", "backup", "verify", str(tmp_path / "nothing"))
    assert missing.code == 2 and missing.error["code"] == "invalid_input"


def test_restore_refuses_the_vault_without_force(tacit: Tacit, recovery: str) -> None:
    made = _create(tacit)
    tacit.ok("client", "add", "After the backup")
    before = tacit.files()
    refused = tacit("--json", "backup", "restore", str(made))  # the default vault
    assert (refused.code, refused.error["code"]) == (6, "vault_exists")
    assert tacit.files() == before
    forced = tacit.ok("backup", "restore", str(made), "--force")
    assert isinstance(forced, dict)
    aside = Path(str(forced["moved_aside"]))
    assert aside.parent == tacit.vault.parent and aside.name.startswith("vault.replaced-")
    moved = {p.name: p for p in aside.iterdir()}
    assert {name: before[name] for name in before} == {
        name: hashlib.sha256(moved[name].read_bytes()).hexdigest() for name in before
    }
    assert tacit.ok("status")["clients"] == 1  # type: ignore[index]
    assert tacit.ok("--vault", str(aside), "status")["clients"] == 2  # type: ignore[index]


def test_canaries_never_reach_a_backup(tacit: Tacit, recovery: str, tmp_path: Path) -> None:
    made = _create(tacit)
    tacit.ok("backup", "verify", str(made))
    tacit.ok("backup", "restore", str(made), "--vault", str(tmp_path / "r"))
    scanned = 0
    for root in (made.parent, tacit.tmp, tmp_path / "r"):
        for path in root.rglob("*"):
            if path.is_file():
                scanned += 1
                data = path.read_bytes()
                for canary in CANARIES:
                    assert canary.encode() not in data and canary.lower().encode() not in data
                    assert canary.encode("utf-16-le") not in data
    assert scanned >= 3
    shown = tacit.ok("--vault", str(tmp_path / "r"), "client", "list")
    assert CANARIES[0] in str(shown)  # the scan looks for text that is really there
