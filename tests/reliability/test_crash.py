"""Crash safety: the CLI SIGKILLed at random points of a seeded stream of writes, edits,
signs, addenda, backups and syncs; after each kill every acknowledged write is there,
the database, the audit chain and the signatures verify, and nothing is duplicated
(tests/reliability/crash.py). CI runs a couple of fixed seeds; ``make soak`` many
(``TACIT_SOAK_RUNS``, ``TACIT_SOAK_OPS``); ``TACIT_SOAK_SEED=S`` replays one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.reliability.crash import CrashReport, crash_run
from tests.reliability.harness import proxied_server, seeds

OPS = int(os.environ.get("TACIT_SOAK_OPS", "0"))
FIELDS = ("ops", "kills", "engine_kills", "landed", "acknowledged", "lost", "backups_checked")


def summary(name: str, reports: list[CrashReport]) -> dict[str, int]:
    total = {k: sum(getattr(r, k) for r in reports) for k in FIELDS}
    seeds_run = [r.seed for r in reports]
    print(f"\n[reliability] {name}: runs={len(reports)} seeds={seeds_run} {total}", file=sys.stderr)
    return total


def test_cli_killed_at_random_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    reports = [crash_run(tmp_path / f"run-{seed}", seed, OPS or 12) for seed in seeds(1, 9100)]
    total = summary("crash, vault only", reports)
    assert total["lost"] == 0
    # The harness really kills: each kill lands at a random point of an op's usual
    # duration, so an op may finish first; at least one per run must land.
    assert total["kills"] >= len(reports)


def test_cli_and_sync_killed_at_random_converge_with_a_fresh_device(tmp_path: Path) -> None:
    reports = []
    for seed in seeds(1, 9200):
        with proxied_server(tmp_path / f"server-{seed}", seed) as (server, _proxy):
            reports.append(crash_run(tmp_path / f"run-{seed}", seed, OPS or 8, server=server))
    total = summary("crash with sync", reports)
    assert total["lost"] == 0
    assert total["kills"] >= len(reports)
