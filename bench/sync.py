"""The sync benchmark: ``python -m bench.sync --notes N [--json] [--backends sqlite,postgres]``.

On loopback, against a real ``python -m app.sync.server`` process over TLS (trustme
certificates), for each backend (SQLite, and a throwaway PostgreSQL cluster started here
when its binaries exist):

- ``initial_push_s``: a vault holding N notes (and one client) pushes everything: read
  from SQLCipher, encrypt each item, push in batches of 500, record the etags;
- ``initial_pull_s``: a second vault of the same account pulls and applies it all;
- ``incremental_ms``: one note edited on A, ``sync`` on A then on B (median of reps), each
  side through the one ``SyncService`` it keeps across syncs and called as the desktop
  app calls it (``APP_SYNC``: its kept connection reused, no order check of its own,
  B's audit entry for the pull waiting for its next push): the app's steady state, not
  a CLI process start;
- ``items_per_s``: 50 concurrent clients (50 accounts, one thread and connection
  each) push N pre-encrypted items in batches of 100; the server's throughput;
- ``raw_db_items_per_s`` / ``raw_db_s``: the same N item rows inserted straight into
  the same database through the server's own driver layer, in transactions of the same
  size, and ``ratio_vs_raw_db`` = raw throughput / our throughput (how many times the
  HTTP + TLS + validation + per-item work costs over the bare inserts).

Setup (accounts, filling the vault) is not timed. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ["TACIT_INSECURE_TEST_KDF"] = "1"
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

import httpx
import pyotp

from app.sync import protocol
from app.sync.client import tls_context
from app.sync.service import SyncService
from app.vault import crypto
from app.vault.clock import SystemClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from bench.common import log, machine_info

# How the desktop app syncs (app/ui/syncing.py): its order watcher holds a long-poll open,
# so a sync does not check for orders itself, and audit entries younger than ten minutes
# wait for the next push instead of costing a push of their own.
APP_SYNC = {"check_orders": False, "defer_audit": True}
PASSPHRASE = "correct horse battery staple 42"
ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"
BODY = ("Client reports improved sleep and fewer intrusive thoughts this week. " * 20)[:1400]


@contextlib.contextmanager
def _server(workdir: Path, db_url: str, workers: int = 1) -> Iterator[Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.sync.server.helpers import running_server

    extra = ["--workers", str(workers)] if workers > 1 else []
    with running_server(workdir, db_url=db_url, extra_args=extra) as srv:
        yield srv


@contextlib.contextmanager
def _postgres(workdir: Path) -> Iterator[str | None]:
    """A throwaway cluster (the test suite's helper code), or None without binaries."""
    from tests.sync.server import conftest as pg

    if pg._pg_missing_reason() is not None:
        yield None
        return
    gen = pg.pg_cluster.__wrapped__()  # type: ignore[attr-defined]
    cluster = next(gen)
    try:
        yield cluster.create_database("tacit_bench")
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def _vault(directory: Path) -> VaultService:
    svc = VaultService(directory, clock=SystemClock(), keychain=MemoryKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    return svc


def _fill(svc: VaultService, notes: int) -> None:
    """N notes in one transaction, straight into the tables (the outbox triggers fire as
    for any change); the service API would spend minutes on per-note fsyncs."""
    client = svc.add_client("Bench Client")
    now = "2026-01-05T09:00:00.000Z"
    rows = [(str(uuid.uuid4()), client.id, "progress", "soap", f"Session {i}", "2026-01-05",
             f"{BODY} #{i}", "Clinician", 1, now, now) for i in range(notes)]  # fmt: skip
    with svc._db.transaction() as conn:  # type: ignore[union-attr]
        conn.executemany(
            "INSERT INTO notes (id, client_id, kind, template, title, session_date, body, "
            "author, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def _signed_in_pair(workdir: Path, srv: Any, notes: int) -> tuple[SyncService, SyncService]:
    a_vault, b_vault = _vault(workdir / "a"), _vault(workdir / "b")
    _fill(a_vault, notes)
    a, b = SyncService(a_vault), SyncService(b_vault)
    password = Passphrase.from_str(ACCOUNT_PASSWORD)
    user = f"bench-{uuid.uuid4().hex[:10]}"
    created = a.create_account(srv.url, user, password, ca_file=str(srv.ca_file))
    a.login(password, totp=pyotp.parse_uri(created["totp_uri"]).now())
    b.login(password, server=srv.url, username=user, ca_file=str(srv.ca_file),
            recovery_code=created["recovery_codes"][0])  # fmt: skip
    return a, b


def _throughput(srv: Any, clients: int, items: int) -> tuple[float, str]:
    """50 accounts push ``items`` pre-encrypted items in all, concurrently. Each client
    signs up and logs in from its own X-Forwarded-For address (the per-IP limit on the
    auth endpoints would otherwise refuse 50 sign-ups a minute from one address)."""
    per_client = max(1, items // clients)
    blob = protocol.b64encode(crypto.random_bytes(1500))
    sessions: list[tuple[httpx.Client, str]] = []
    account_id = ""
    for n in range(clients):
        forwarded = {"X-Forwarded-For": f"10.9.{n // 250}.{n % 250 + 1}"}
        http = httpx.Client(base_url=srv.url, verify=tls_context(srv.ca_file, None),
                            timeout=120, headers=forwarded)  # fmt: skip
        key = crypto.new_device_key()
        user = f"tp-{uuid.uuid4().hex[:10]}"
        device = {"id": str(uuid.uuid4()), "name": "bench", "public_key":
                  protocol.b64encode(crypto.new_device_key().public_key())}  # fmt: skip
        kdf = {"algorithm": "argon2id", "version": 19, "memory_kib": 1024, "iterations": 1,
               "parallelism": 1, "salt": protocol.b64encode(b"s" * 16)}  # fmt: skip
        doc = http.post(protocol.PATH_ACCOUNTS, json={
            "username": user, "login_public_key": protocol.b64encode(key.public_key()),
            "kdf": kdf, "device": device}).json()  # fmt: skip
        ch = http.post(protocol.PATH_AUTH_CHALLENGE, json={"username": user}).json()
        sig = crypto.login_signature(key, protocol.canonical_origin(srv.url),
                                     protocol.b64decode(ch["challenge"]))  # fmt: skip
        tokens = http.post(protocol.PATH_AUTH_LOGIN, json={
            "challenge_id": ch["challenge_id"], "username": user,
            "signature": protocol.b64encode(sig), "device": device,
            "totp": pyotp.parse_uri(doc["totp_uri"]).now()}).json()  # fmt: skip
        sessions.append((http, tokens["access_token"]))
        account_id = tokens["account_id"]
    start = threading.Barrier(clients + 1)

    def work(http: httpx.Client, token: str) -> None:
        batch: list[dict[str, Any]] = []
        start.wait()
        for i in range(per_client):
            batch.append({"id": str(uuid.uuid4()), "kind": "note", "expected_etag": None,
                          "deleted": False, "key_id": "bench", "blob": blob})  # fmt: skip
            if len(batch) == 100 or i == per_client - 1:
                r = http.post(protocol.PATH_ITEMS_BATCH, json={"items": batch},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                if r.status_code != 200:
                    raise RuntimeError(f"push failed: {r.status_code}")
                batch = []

    threads = [threading.Thread(target=work, args=s) for s in sessions]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for http, _ in sessions:
        http.close()
    return per_client * clients / elapsed, account_id


def _raw_insert(db_url: str, account_id: str, items: int) -> float:
    """Seconds to insert ``items`` item rows of the same size straight into the same
    database (server driver layer, transactions of 100 rows like the pushes above)."""
    from app.sync.server.db import open_database

    db = open_database(db_url)
    blob = crypto.random_bytes(1500)
    seq = 10**12
    try:
        t0 = time.perf_counter()
        for start in range(0, items, 100):
            rows = []
            for _ in range(min(100, items - start)):
                seq += 1
                rows.append((account_id, str(uuid.uuid4()), "note", "bench", 0, blob,
                             uuid.uuid4().hex * 2, len(blob), seq, 0))  # fmt: skip
            with db.transaction() as tx:
                tx.executemany(
                    "INSERT INTO items (account_id, id, kind, key_id, deleted, ciphertext, "
                    "etag, size, seq, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        return time.perf_counter() - t0
    finally:
        db.close()


def run_backend(workdir: Path, db_url: str, notes: int, clients: int, reps: int) -> dict[str, Any]:
    with _server(workdir, db_url) as srv:
        log("setting up two signed-in vaults")
        a, b = _signed_in_pair(workdir, srv, notes)
        log(f"initial push of {notes} notes")
        t0 = time.perf_counter()
        pushed = a.sync()
        initial_push = time.perf_counter() - t0
        log("initial pull")
        t0 = time.perf_counter()
        pulled = b.sync()
        initial_pull = time.perf_counter() - t0
        note_id = a.vault.list_notes(limit=1)[0].id
        times = []
        for i in range(reps):
            a.vault.edit_note(note_id, body=f"{BODY} edit {i}")
            t0 = time.perf_counter()
            a.sync(**APP_SYNC)
            b.sync(**APP_SYNC)
            times.append((time.perf_counter() - t0) * 1000)
        if b.vault.get_note(note_id, record_view=False).body != f"{BODY} edit {reps - 1}":
            raise RuntimeError("the edit did not arrive")
        waiting = [
            {k: n for k, n in svc.sync_status()["pending_by_kind"].items() if k != "audit"}
            for svc in (a, b)
        ]
        if any(waiting):
            raise RuntimeError(f"a sync left records queued: {waiting}")
        a.close()
        b.close()
        a.vault.lock()
        b.vault.lock()
        log(f"{clients} concurrent clients pushing {notes} items")
        items_per_s, account_id = _throughput(srv, clients, notes)
        log("raw inserts")
        raw_s = _raw_insert(db_url, account_id, notes)
    raw_per_s = notes / raw_s
    return {
        "initial_push_s": round(initial_push, 2), "pushed_items": pushed["pushed"],
        "initial_pull_s": round(initial_pull, 2), "pulled_items": pulled["pulled"],
        "incremental_ms": round(statistics.median(times), 1),
        "incremental_ms_p90": round(sorted(times)[int(0.9 * (len(times) - 1))], 1),
        "items_per_s": round(items_per_s), "clients": clients,
        "raw_db_s": round(raw_s, 2), "raw_db_items_per_s": round(raw_per_s),
        "ratio_vs_raw_db": round(raw_per_s / items_per_s, 2),
        "initial_push_vs_raw_db": round(initial_push / raw_s, 2),
    }  # fmt: skip


def each_backend(
    prefix: str, backends: str, run: Callable[[Path, str], dict[str, Any]]
) -> dict[str, Any]:
    """``run(workdir, db_url)`` for each backend named in ``backends`` (comma-separated):
    ``sqlite`` on a file in the workdir, ``postgres`` on a throwaway cluster (skipped when
    its binaries are missing). Shared by bench.sync, bench.load and bench.practice."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for backend in backends.split(","):
            workdir = Path(tmp) / backend
            workdir.mkdir()
            log(f"backend {backend}")
            if backend != "postgres":
                out[backend] = run(workdir, f"sqlite:///{workdir / 'server.sqlite3'}")
                continue
            with _postgres(workdir) as url:
                out[backend] = (
                    {"skipped": "no PostgreSQL binaries"} if url is None else run(workdir, url)
                )
    return out


def print_result(result: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for name, figures in result["backends"].items():
        print(name, json.dumps(figures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync")
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"notes": args.notes, "machine": machine_info()}
    result["backends"] = each_backend(
        "tacit-bench-sync-", args.backends,
        lambda workdir, url: run_backend(workdir, url, args.notes, args.clients, args.reps),
    )  # fmt: skip
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
