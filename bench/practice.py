"""The practice-mode benchmark: ``python -m bench.practice --notes N [--json]
[--backends sqlite,postgres]``.

On loopback, against a real ``python -m app.sync.server`` process over TLS (bench.sync's
server and throwaway PostgreSQL cluster), in-process (no CLI), for each backend: an owner
vault holding N notes (and one client), signed in, with a second device of the same
account; the owner creates a practice, a supervisor joins with an invite code and signs
in, the owner's practice sync approves them and ``supervise`` assigns the supervisor to
the owner (the owner is also a clinician), the supervisor's sync learns the keys. Timed:

- ``account_push_s`` / ``account_pull_s``: the baseline, the account's own sync of the
  same N notes (``SyncService.sync`` on the owner, then on the owner's second device), as
  bench.sync's initial push and pull, run before the practice exists (so no practice
  step follows it; a sync of an account in no practice only asks once whether a practice
  keyring exists);
- ``publish_push_s``: the owner's first practice sync run (``PracticeService.sync_run``)
  publishing the N notes to its clinical collection (signed, sealed, pushed);
- ``pull_s``: the supervisor's first practice sync run pulling them (each item opened and
  its author's signature checked);
- ``incremental_ms``: one note edited on the owner, the owner's sync run, then the
  supervisor's (median of reps);
- ``records_ms``: the supervisor's ``records()`` listing of the N notes (median of reps);
- ``ratio_vs_account_sync``: practice time / account-sync time, push and pull, measured in
  the same run.

Setup (accounts, the practice, filling the vault) is not timed; while it runs, the
owner's approving sync run is kept from publishing (so that the timed run is the first to
publish). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

os.environ["TACIT_INSECURE_TEST_KDF"] = "1"
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

from app.sync import practice_run
from app.sync.practice import PracticeService
from app.sync.service import SyncService
from app.vault.crypto import Passphrase
from bench.common import log, machine_info
from bench.sync import (
    ACCOUNT_PASSWORD,
    BODY,
    _server,
    _signed_in_pair,
    _vault,
    each_backend,
    print_result,
)

OWNER_EMAIL = "owner@bench.test"
SUPERVISOR_EMAIL = "supervisor@bench.test"


def _p90(values: list[float]) -> float:
    return round(sorted(values)[int(0.9 * (len(values) - 1))], 1)


def _setup_practice(workdir: Path, srv: Any, owner: SyncService) -> tuple[Any, Any]:
    """The practice, a supervisor who joined, signed in, was approved, assigned to the
    owner, and learned the keys. Returns (owner's, supervisor's) PracticeService."""
    own = PracticeService(owner)
    own.create("Bench Practice", OWNER_EMAIL)
    code = own.invite(SUPERVISOR_EMAIL, "supervisor")["code"]
    sup_sync = SyncService(_vault(workdir / "supervisor"))
    sup = PracticeService(sup_sync)
    password = Passphrase.from_str(ACCOUNT_PASSWORD)
    joined = sup.join(code, srv.url, password, ca_file=str(srv.ca_file),
                      username=f"sup-{uuid.uuid4().hex[:10]}")  # fmt: skip
    sup_sync.login(password, recovery_code=joined["recovery_codes"][0])
    # Approve without publishing: the timed run below is the owner's first publish.
    with mock.patch.object(practice_run, "publish", return_value=0):
        approved = own.sync_run()
    if approved.get("approved") != 1:
        raise RuntimeError(f"the supervisor was not approved: {approved}")
    own.supervise(SUPERVISOR_EMAIL, OWNER_EMAIL)
    learned = sup.sync_run()
    if learned.get("status") != "active" or not learned.get("keys_learned"):
        raise RuntimeError(f"the supervisor learned no keys: {learned}")
    return own, sup


def run_backend(workdir: Path, db_url: str, notes: int, reps: int) -> dict[str, Any]:
    with _server(workdir, db_url) as srv:
        log(f"setting up the owner's two signed-in vaults, {notes} notes")
        a, b = _signed_in_pair(workdir, srv, notes)
        log("account sync: push")
        t0 = time.perf_counter()
        pushed = a.sync()
        account_push = time.perf_counter() - t0
        log("account sync: pull on the owner's second device")
        t0 = time.perf_counter()
        pulled = b.sync()
        account_pull = time.perf_counter() - t0
        if "practice" in pushed or "practice" in pulled:
            raise RuntimeError("the account sync ran a practice step")
        b.close()
        b.vault.lock()
        log("setting up the practice and the supervisor")
        own, sup = _setup_practice(workdir, srv, a)
        log(f"practice: the owner publishes {notes} notes")
        t0 = time.perf_counter()
        published = own.sync_run()
        publish_push = time.perf_counter() - t0
        log("practice: the supervisor pulls them")
        t0 = time.perf_counter()
        fetched = sup.sync_run()
        pull = time.perf_counter() - t0
        if published["pushed"] < notes or fetched["pulled"] < notes or fetched["refused"]:
            raise RuntimeError(f"incomplete: published {published}, pulled {fetched}")
        rows = sup.records()
        if len(rows) != notes:
            raise RuntimeError(f"the supervisor lists {len(rows)} notes, not {notes}")
        log(f"incremental: {reps} edits")
        note_id = a.vault.list_notes(limit=1)[0].id
        times = []
        for i in range(reps):
            a.vault.edit_note(note_id, body=f"{BODY} edit {i}")
            t0 = time.perf_counter()
            own.sync_run()
            sup.sync_run()
            times.append((time.perf_counter() - t0) * 1000)
        shown = {r["note_id"]: r for r in sup.records()}
        if shown[note_id]["revision"] != 1 + reps:
            raise RuntimeError("the edits did not arrive")
        log(f"records: {reps} listings")
        listing = []
        for _ in range(reps):
            t0 = time.perf_counter()
            sup.records()
            listing.append((time.perf_counter() - t0) * 1000)
        a.close()
        sup.sync.close()
        a.vault.lock()
        sup.vault.lock()
    return {
        "account_push_s": round(account_push, 2), "account_pushed": pushed["pushed"],
        "account_pull_s": round(account_pull, 2), "account_pulled": pulled["pulled"],
        "publish_push_s": round(publish_push, 2), "published_items": published["pushed"],
        "pull_s": round(pull, 2), "pulled_items": fetched["pulled"],
        "incremental_ms": round(statistics.median(times), 1),
        "incremental_ms_p90": _p90(times),
        "records_ms": round(statistics.median(listing), 1),
        "records_ms_p90": _p90(listing),
        "ratio_vs_account_sync": {
            "push": round(publish_push / account_push, 2),
            "pull": round(pull / account_pull, 2),
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.practice")
    parser.add_argument("--notes", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"notes": args.notes, "machine": machine_info(), "backends": {}}
    result["backends"] = each_backend(
        "tacit-bench-practice-", args.backends,
        lambda workdir, url: run_backend(workdir, url, args.notes, args.reps),
    )  # fmt: skip
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
