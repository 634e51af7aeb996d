"""Progress for backup create / verify / restore and record export: the fractions the
vault code reports (in process), and the bar the CLI draws from them on a real terminal
(a pseudo-terminal as stderr) — never with ``--json``, never without a terminal."""

from __future__ import annotations

import os
import pty
import secrets
import select
import subprocess
import sys
from pathlib import Path

import pytest

from app.errors import WrongPassphraseError
from app.vault import backup, backup_restore, export
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.test_cli import Tacit

EXPORT_PASSPHRASE = "umbrella quartz meadow 93 lantern"


# -- the fractions ------------------------------------------------------------------------
def _checked(seen: list[float]) -> list[float]:
    assert seen, "no progress was reported"
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen == sorted(seen), "progress went backwards"
    return seen


@pytest.fixture
def big(service: VaultService) -> VaultService:
    """A vault whose database is a few MiB (two notes of 1.8 MB of text), so the file is
    read and written in several 1-MiB chunks."""
    client = service.add_client("Progress Person")
    for _ in range(2):
        service.create_note(client.id, "soap", body=secrets.token_hex(900_000))
    service.create_note(client.id, "process", body="process text")
    return service


def test_backup_verify_restore_report_per_mib_and_per_stage(
    big: VaultService, tmp_path: Path, keychain: MemoryKeychain
) -> None:
    created: list[float] = []
    made = backup.create_backup(big, tmp_path / "backups", progress=created.append)
    assert made.bytes > 3 * 1024 * 1024
    _checked(created)
    assert len([f for f in created if 0.4 < f < 0.95]) >= 3  # one per MiB written
    verified: list[float] = []
    found = backup_restore.verify_backup(
        made.file, passphrase=Passphrase.from_str(PASSPHRASE), progress=verified.append
    )
    assert found.notes == 3
    _checked(verified)
    assert len([f for f in verified if 0.0 < f < 0.5]) >= 3  # one per MiB read
    restored: list[float] = []
    done = backup_restore.restore_backup(
        made.file, tmp_path / "restored", passphrase=Passphrase.from_str(PASSPHRASE),
        keychain=keychain, progress=restored.append,
    )  # fmt: skip
    assert done.notes == 3
    _checked(restored)
    assert len([f for f in restored if 0.0 < f < 0.4]) >= 3


def test_a_failed_verify_never_reaches_the_end(big: VaultService, tmp_path: Path) -> None:
    made = backup.create_backup(big, tmp_path / "backups")
    seen: list[float] = []
    with pytest.raises(WrongPassphraseError):
        backup_restore.verify_backup(
            made.file, passphrase=Passphrase.from_str("not the passphrase at all"),
            progress=seen.append,
        )  # fmt: skip
    assert seen and seen[-1] < 1.0


def test_export_reports_progress_and_audits_once(big: VaultService, tmp_path: Path) -> None:
    client = big.list_clients()[0]
    seen: list[float] = []
    out = tmp_path / "record.tacitexport"
    done = export.export_client(
        big, client.id, out, passphrase=Passphrase.from_str(EXPORT_PASSPHRASE),
        progress=seen.append,
    )  # fmt: skip
    _checked(seen)
    assert (done.notes, done.format, done.psychotherapy_notes) == (2, "archive", False)
    assert len(big.audit_entries(action="export")) == 1


# -- the bar on a terminal -----------------------------------------------------------------
@pytest.fixture
def ready(tmp_path: Path) -> Tacit:
    tacit = Tacit(tmp_path)
    tacit.env["XDG_DATA_HOME"] = str(tmp_path / "data")
    tacit.ok("init")
    cid = str(tacit.ok("client", "add", "Terminal Person")["id"])  # type: ignore[index]
    tacit.ok("note", "new", "--client", cid, "--template", "soap", stdin="A note.\n")
    tacit.env["TEST_CLIENT_ID"] = cid
    return tacit


def on_terminal(
    tacit: Tacit, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    """Run ``tacit ARGS`` with stderr on a pseudo-terminal; returns (exit status, stdout,
    everything written to the terminal)."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL,
            env={**tacit.env, **(env or {})}, timeout=60, check=False,
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
    return proc.returncode, proc.stdout.decode(), drawn


def _drawn(drawn: bytes, label: str) -> None:
    assert f"{label} [".encode() in drawn, drawn
    assert b"100% 100/100" in drawn
    assert drawn.endswith(b"\r\x1b[K")  # the line is cleared at the end


def test_backup_commands_draw_a_bar_on_a_terminal(ready: Tacit, tmp_path: Path) -> None:
    code, out, drawn = on_terminal(ready, "backup", "create", "--to", str(tmp_path / "b"))
    assert code == 0 and out.startswith("Wrote ")
    _drawn(drawn, "Backing up")
    made = next((tmp_path / "b").glob("*.tacitbackup"))
    code, out, drawn = on_terminal(ready, "backup", "verify", str(made))
    assert code == 0 and out.startswith("The backup is intact")
    _drawn(drawn, "Verifying")
    code, out, drawn = on_terminal(ready, "backup", "restore", str(made), "--vault",
                                   str(tmp_path / "r"))  # fmt: skip
    assert code == 0 and out.startswith("Restored 1 notes")
    _drawn(drawn, "Restoring")


def test_export_draws_a_bar_on_a_terminal(ready: Tacit, tmp_path: Path) -> None:
    cid = ready.env["TEST_CLIENT_ID"]
    env = {"TACIT_EXPORT_PASSPHRASE": EXPORT_PASSPHRASE}
    code, out, drawn = on_terminal(ready, "export", "client", cid, "--out",
                                   str(tmp_path / "x.tacitexport"), env=env)  # fmt: skip
    assert code == 0 and out.startswith("Exported 1 notes")
    _drawn(drawn, "Exporting")
    code, out, drawn = on_terminal(ready, "export", "client", cid, "--out",
                                   str(tmp_path / "x.pdf"), "--format", "pdf",
                                   "--i-understand-plaintext")  # fmt: skip
    assert code == 0, drawn
    _drawn(drawn, "Exporting")


@pytest.mark.parametrize("command", ["create", "verify", "restore", "export"])
def test_no_bar_with_json_even_on_a_terminal(ready: Tacit, tmp_path: Path, command: str) -> None:
    made = Path(str(ready.ok("backup", "create", "--to", str(tmp_path / "b"))["file"]))  # type: ignore[index]
    args = {
        "create": ("backup", "create", "--to", str(tmp_path / "b")),
        "verify": ("backup", "verify", str(made)),
        "restore": ("backup", "restore", str(made), "--vault", str(tmp_path / "r")),
        "export": ("export", "client", ready.env["TEST_CLIENT_ID"], "--out",
                   str(tmp_path / "x.tacitexport")),
    }[command]  # fmt: skip
    code, out, drawn = on_terminal(ready, "--json", *args,
                                   env={"TACIT_EXPORT_PASSPHRASE": EXPORT_PASSPHRASE})  # fmt: skip
    assert code == 0, drawn
    assert drawn == b""  # nothing on the terminal
    assert out.lstrip().startswith("{")


def test_no_bar_without_a_terminal(ready: Tacit, tmp_path: Path) -> None:
    result = ready("backup", "create", "--to", str(tmp_path / "b"))
    assert result.code == 0 and result.err == ""
