"""The plaintext sweep: one end-to-end workload with canary strings in client names and
e-mails, note titles and texts, edits, addenda, a template and a search query — through
the CLI, sync to a second device (server on SQLite and on PostgreSQL), a backup, an
encrypted export, the vault service as the app drives it (write, search, lock), and two
SIGKILLs (a note being written, a sync after it encrypted its items). Then every byte
under the run's folders (both vaults, their private TMPDIRs, backups, the export, the
server's database files, the PostgreSQL data directory after a checkpoint) and every log
(the server's output, every CLI stderr, the stdout of every command that does not show
records by design) is scanned for each canary as UTF-8 (any case), UTF-16 and base64:
zero hits."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest

from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.reliability.harness import Device, FaultProxy, ServerProcess, snapshot

# Commands whose stdout shows records by design (the user asked to see them); their
# stderr is scanned all the same.
SHOWS_RECORDS = {
    ("note", "search"),
    ("note", "show"),
    ("note", "list"),
    ("note", "history"),
    ("client", "show"),
    ("client", "list"),
    ("template", "add"),
    ("template", "list"),
    ("export", "open"),
}


def forms(canary: str) -> list[bytes]:
    """The byte patterns a leak of ``canary`` would leave: UTF-8 (matched lowercased),
    UTF-16 LE/BE, and base64 at each of the three alignments (the stable middle)."""
    raw = canary.encode()
    out = [raw.lower(), canary.encode("utf-16-le"), canary.encode("utf-16-be")]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        out.append(encoded[4 : 4 * (len(encoded) // 4) - 4])
    return out


def scan(blobs: Iterator[tuple[str, bytes]], canaries: list[str]) -> list[str]:
    patterns = [(c, p) for c in canaries for p in forms(c)]
    hits = []
    for where, data in blobs:
        lowered = data.lower()
        for canary, pattern in patterns:
            if pattern in data or pattern in lowered:
                hits.append(f"{canary!r} in {where}")
    return hits


def files_under(*roots: Path) -> Iterator[tuple[str, bytes]]:
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    yield str(path), path.read_bytes()


ServerDb = tuple[str, Path, Callable[[], None]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.soak)])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerDb]:
    """(database URL, folder holding its files, a call that flushes it to them)."""
    if request.param == "sqlite":
        folder = tmp_path / "server-db"
        yield f"sqlite:///{folder / 'server.sqlite3'}", folder, lambda: None
        return
    from tests.sync.server.conftest import PgCluster, _pg_missing_reason
    from tests.sync.server.conftest import pg_cluster as cluster_fixture

    if _pg_missing_reason() is not None:
        pytest.skip(str(_pg_missing_reason()))
    gen = cluster_fixture.__wrapped__()  # type: ignore[attr-defined]
    cluster: PgCluster = next(gen)
    try:
        import psycopg

        url = cluster.create_database("tacit_sweep")
        with psycopg.connect(cluster.url("postgres")) as conn:
            data_dir = Path(str(conn.execute("SHOW data_directory").fetchone()[0]))  # type: ignore[index]

        def checkpoint() -> None:
            """Everything written reaches the data files (then scanned before teardown)."""
            with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
                conn.execute("CHECKPOINT")

        yield url, data_dir, checkpoint
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def test_no_canary_reaches_any_file_or_log(tmp_path: Path, server_db: ServerDb) -> None:
    tag = secrets.token_hex(4)
    canary = {
        k: f"Cnry{k}{tag}"
        for k in (
            "Name",
            "Mail",
            "Title",
            "Body",
            "Edit",
            "Add",
            "Tmpl",
            "Sect",
            "Query",
            "Killed",
            "App",
            "AppQ",
        )
    }
    db_url, db_dir, checkpoint = server_db
    db_dir.mkdir(exist_ok=True)
    proxy = FaultProxy(seed=1, faulty=False)
    proxy.start()
    server = ServerProcess(tmp_path / "server", proxy.url, db_url)
    a, b = Device(tmp_path / "a", "A"), Device(tmp_path / "b", "B")
    backups, export = tmp_path / "backups", tmp_path / "export.tacitx"
    backups.mkdir()
    try:
        server.start()
        proxy.target_port = server.port
        a.ok("init")
        b.ok("init")
        cid = a.ok(
            "client", "add", f"Ada {canary['Name']}", "--email", f"{canary['Mail']}@example.org"
        )["id"]
        a.ok("template", "add", canary["Tmpl"], "--kind", "progress", "--section", canary["Sect"])
        nid = a.ok(
            "note",
            "new",
            "--client",
            cid,
            "--template",
            "soap",
            "--title",
            canary["Title"],
            stdin=f"Session {canary['Body']} {canary['Query']}",
        )["id"]
        a.ok("note", "edit", nid, stdin=f"Edited {canary['Edit']} {canary['Query']}")
        a.ok("note", "search", canary["Query"])
        a.ok("note", "sign", nid)
        a.ok("note", "addendum", nid, stdin=f"Addendum {canary['Add']}")
        a.ok("backup", "create", "--to", str(backups))
        a.env["TACIT_EXPORT_PASSPHRASE"] = "export lantern orbit 55 violet"
        a.ok("export", "client", cid, "--out", str(export))
        user = f"sweep-{tag}"
        doc = a.ok(
            "account",
            "create",
            "--server",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--username",
            user,
        )
        a.login(server, user, "--totp", pyotp.parse_uri(doc["totp_uri"]).now())
        a.ok("sync")
        # a crash mid-write, and a sync killed after it encrypted and stored its items
        killed = a.run_killed(
            ("note", "new", "--client", cid, "--template", "soap"),
            0.45,
            stdin=f"Killed {canary['Killed']}",
        )
        assert killed.code in (0, -9)
        a.ok("note", "new", "--client", cid, "--template", "soap", stdin=canary["Killed"] * 2)
        assert a.run("sync", env={"TACIT_TEST_SYNC_FAULT": "prepared:1:kill"}).code == -9
        a.ok("sync")
        # the vault service as the app drives it: write, search, lock
        app_vault = VaultService(a.vault)
        app_vault.unlock(Passphrase.from_str(PASSPHRASE))
        app_vault.create_note(cid, "soap", body=f"App {canary['App']}")
        app_vault.search(canary["AppQ"], audit=True)
        app_vault.lock()
        a.ok("sync")
        b.login(server, user, "--recovery-code", doc["recovery_codes"][0])
        b.ok("sync")
        mine, theirs = snapshot(a.vault), snapshot(b.vault)
        assert theirs.content() == mine.content()  # B really pulled everything
    finally:
        server.stop()
        proxy.close()
    checkpoint()
    logs: list[tuple[str, bytes]] = [("server output", "".join(server.logs).encode())]
    for device in (a, b):
        for n, run in enumerate(device.log):
            logs.append((f"{device.name} stderr of {run.argv}", run.err.encode()))
            if tuple(run.argv[:2]) not in SHOWS_RECORDS:
                logs.append((f"{device.name} stdout #{n} of {run.argv[:2]}", run.out.encode()))
    roots = [tmp_path]
    if not str(db_dir).startswith(str(tmp_path)):
        roots.append(db_dir)
    hits = scan(iter([*files_under(*roots), *logs]), list(canary.values()))
    assert hits == [], hits
    # the scan can fail: a canary in the clear is found
    (tmp_path / "a" / "tmp" / "leak").write_text(f"x {canary['Body']} x", encoding="utf-16")
    assert scan(files_under(tmp_path / "a" / "tmp"), [canary["Body"]])
    os.remove(tmp_path / "a" / "tmp" / "leak")
