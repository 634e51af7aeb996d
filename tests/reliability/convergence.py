"""Sync under faults: three vaults (the real CLI) and a real server behind the fault
proxy. Each round every device writes (a new note, or an edit of any note it has: edits
of one note on two devices make conflicts) and syncs while the proxy cuts and delays
connections; some syncs are SIGKILLed (after a random delay, or inside the engine
through ``TACIT_TEST_SYNC_FAULT``), and the server is killed or stopped and started
again on the same database, sometimes in the middle of a sync. A sync under faults may
succeed, report ``offline`` (exit 11) or die of SIGKILL; nothing else is acceptable.

Then the faults stop and every device syncs until a whole pass moves nothing, and:
every device holds the same clients and notes, the same current text and number of
revisions per note; every text any device saved is in its note's history on every
device (a conflict keeps both); no note, revision or text is duplicated.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pyotp

from tests.reliability.harness import (
    SERVER_FAULT_STEPS,
    Device,
    FaultProxy,
    Run,
    ServerProcess,
    Snapshot,
    open_vault,
    proxied_server,
    settle,
)

SYNC_OK = {0, 11, -9}  # done, offline (the outbox is kept), killed by the harness


@dataclass
class ConvergenceReport:
    seed: int
    rounds: int = 0
    syncs: int = 0
    offline: int = 0
    client_kills: int = 0
    server_restarts: int = 0
    cut_connections: int = 0
    texts: int = 0
    lost: int = 0
    duplicates: int = 0
    final_passes: int = 0
    exit_codes: dict[int, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def trail(self) -> str:
        return f"seed={self.seed} (TACIT_SOAK_SEED={self.seed} replays it); last: " + (
            "; ".join(self.log[-15:])
        )


class ConvergenceRun:
    def __init__(
        self, workdir: Path, seed: int, server: ServerProcess, proxy: FaultProxy, devices: int
    ) -> None:
        self.rng = random.Random(seed)
        self.server, self.proxy = server, proxy
        self.report = ConvergenceReport(seed)
        self.devices = [Device(workdir / f"d{i}", f"D{i}", debug=True) for i in range(devices)]
        self.texts: dict[str, set[str]] = {}  # note id -> every text any device saved
        self.counter = 0
        for d in self.devices:
            d.ok("init")
        first = self.devices[0]
        user = f"conv-{seed}-{workdir.name[-6:]}".lower()
        doc = first.ok(
            "account",
            "create",
            "--server",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--username",
            user,
        )
        first.login(server, user, "--totp", pyotp.parse_uri(doc["totp_uri"]).now())
        for n, d in enumerate(self.devices[1:]):
            d.login(server, user, "--recovery-code", doc["recovery_codes"][n])
        self.client_id = first.ok("client", "add", f"Client {seed}")["id"]
        for d in self.devices:
            d.ok("sync")

    def text(self, device: Device) -> str:
        self.counter += 1
        self.report.texts += 1
        return f"{device.name} text {self.report.seed}-{self.counter} " + "words " * (
            self.rng.randint(1, 30)
        )

    def note_ids(self, device: Device) -> list[str]:
        """In-process (the CLI's own code, without a Python start per write)."""
        svc = open_vault(device.vault)
        try:
            return sorted(n.id for n in svc.list_notes(limit=1_000_000))
        finally:
            svc.lock(record=False)

    def write(self, device: Device) -> None:
        known = self.note_ids(device)
        body = self.text(device)
        if known and self.rng.random() < 0.6:
            nid = self.rng.choice(known)
            device.ok("note", "edit", nid, stdin=body)
            self.report.log.append(f"{device.name} edit {nid[:8]}")
        else:
            nid = device.ok(
                "note", "new", "--client", self.client_id, "--template", "soap", stdin=body
            )["id"]
            self.report.log.append(f"{device.name} new {nid[:8]}")
        self.texts.setdefault(nid, set()).add(body)

    def faulty_sync(self, device: Device) -> None:
        rng = self.rng
        env: dict[str, str] = {}
        roll = rng.random()
        restart: threading.Thread | None = None
        if roll < 0.15:
            env["TACIT_TEST_SYNC_FAULT"] = f"{rng.choice(SERVER_FAULT_STEPS)}:1:kill"
        if 0.15 <= roll < 0.30:
            kill = rng.random() < 0.5
            delay = rng.uniform(0.2, 1.2)
            restart = threading.Timer(delay, self.restart_server, kwargs={"kill": kill})
            restart.start()
        if 0.30 <= roll < 0.55:
            run = device.run_killed(("sync",), rng.uniform(0.3, 1.5), env=env)
        else:
            run = device.run("sync", env=env)
        if restart is not None:
            restart.join()
        self.record(device, run)

    def record(self, device: Device, run: Run) -> None:
        rep = self.report
        rep.syncs += 1
        rep.exit_codes[run.code] = rep.exit_codes.get(run.code, 0) + 1
        rep.offline += run.code == 11
        rep.client_kills += run.code == -9
        rep.log.append(f"{device.name} sync rc={run.code}")
        assert run.code in SYNC_OK, f"{device.name} sync exited {run.code}: {run.err}; " + (
            rep.trail()
        )

    def restart_server(self, *, kill: bool) -> None:
        self.server.restart(kill=kill)
        self.proxy.target_port = self.server.port
        self.report.server_restarts += 1
        self.report.log.append(f"server {'killed' if kill else 'stopped'} and started")

    def round(self) -> None:
        self.report.rounds += 1
        self.proxy.faulty = True
        for device in self.rng.sample(self.devices, len(self.devices)):
            self.write(device)
            self.faulty_sync(device)
        if self.rng.random() < 0.2:
            self.restart_server(kill=self.rng.random() < 0.5)

    def settle(self) -> list[Snapshot]:
        """No more faults: sync every device in turn until all hold the same content."""
        self.proxy.faulty = False
        self.report.cut_connections = self.proxy.stats.cut
        return settle(self.devices, context=self.report.trail())

    def check(self, snaps: list[Snapshot]) -> None:
        rep, trail = self.report, self.report.trail()
        first = snaps[0]
        for device, snap in zip(self.devices[1:], snaps[1:], strict=True):
            assert snap.content() == first.content(), f"{device.name} differs from D0; {trail}"
        for snap in snaps:
            for nid, texts in self.texts.items():
                history = set(snap.notes[nid].history) if nid in snap.notes else set()
                missing = texts - history
                rep.lost += len(missing)
                assert not missing, f"texts lost from {nid}: {len(missing)}; {trail}"
            currents = [n.body for n in snap.notes.values()]
            rep.duplicates += len(currents) - len(set(currents))
            assert len(currents) == len(set(currents)), f"a note duplicated; {trail}"
        assert set(first.notes) == set(self.texts), f"notes from nowhere or lost; {trail}"


def convergence_run(workdir: Path, seed: int, rounds: int, devices: int = 3) -> ConvergenceReport:
    with proxied_server(workdir / "server", seed) as (server, proxy):
        run = ConvergenceRun(workdir, seed, server, proxy, devices)
        for _ in range(rounds):
            run.round()
        run.check(run.settle())
        return run.report
