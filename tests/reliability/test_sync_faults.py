"""Sync under faults: two devices (three in ``make soak``) and a server behind a proxy
that cuts and delays connections, with clients killed mid-sync and the server killed or
restarted; after the faults stop, every device converges to the same content with no
lost text and no duplicate (tests/reliability/convergence.py). ``make soak`` runs many
seeds."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

from tests.reliability.convergence import convergence_run
from tests.reliability.harness import seeds

ROUNDS = int(os.environ.get("TACIT_SOAK_ROUNDS", "0"))
# CI: two devices, two rounds; make soak: three devices (TACIT_SOAK_DEVICES=3).
DEVICES = int(os.environ.get("TACIT_SOAK_DEVICES", "2"))


def test_devices_converge_through_cuts_kills_and_server_restarts(tmp_path: Path) -> None:
    reports = [
        convergence_run(tmp_path / f"run-{seed}", seed, ROUNDS or 2, DEVICES)
        for seed in seeds(1, 9300)
    ]
    keys = (
        "rounds",
        "syncs",
        "offline",
        "client_kills",
        "server_restarts",
        "cut_connections",
        "texts",
        "lost",
        "duplicates",
    )
    total = {k: sum(asdict(r)[k] for r in reports) for k in keys}
    codes: dict[int, int] = {}
    for r in reports:
        for code, n in r.exit_codes.items():
            codes[code] = codes.get(code, 0) + n
    print(
        f"\n[reliability] sync under faults: runs={len(reports)} "
        f"seeds={[r.seed for r in reports]} {total} exit_codes={codes}",
        file=sys.stderr,
    )
    assert total["lost"] == 0 and total["duplicates"] == 0
    assert total["client_kills"] + total["server_restarts"] + total["cut_connections"] > 0
