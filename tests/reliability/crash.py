"""The crash harness: a seeded stream of CLI writes (clients, notes, edits, signs,
addenda, backups and, with a server, syncs) against one vault, some of them SIGKILLed
after a random delay (and some syncs killed inside the engine through
``TACIT_TEST_SYNC_FAULT``). After every kill the vault is reopened and checked:

- the database pages and the audit chain verify, and every signed note's signature;
- every write acknowledged before the kill (the CLI exited 0 with its JSON) is there
  with its exact text; a killed write is either wholly there or not at all;
- nothing is duplicated: no note or revision twice, no text in two notes;
- a backup file under its final name verifies (a killed backup leaves none or a whole one).

The model then adopts what the killed write left, and the stream goes on. With a server,
the run ends by syncing to quiescence and pulling everything into a second, fresh vault,
which must hold the same content.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.harness import (
    SERVER_FAULT_STEPS,
    Device,
    Run,
    ServerProcess,
    Snapshot,
    settle,
    snapshot,
)


@dataclass
class Model:
    """What the vault must hold: every acknowledged write."""

    clients: dict[str, str] = field(default_factory=dict)  # id -> name
    bodies: dict[str, str] = field(default_factory=dict)  # note id -> current text
    texts: dict[str, set[str]] = field(default_factory=dict)  # note id -> every text saved
    signed: set[str] = field(default_factory=set)
    addenda: dict[str, int] = field(default_factory=dict)  # signed note id -> addenda


@dataclass
class CrashReport:
    seed: int
    ops: int = 0
    kills: int = 0
    engine_kills: int = 0
    acknowledged: int = 0
    lost: int = 0
    backups_checked: int = 0
    landed: int = 0  # killed writes found whole after the kill (committed, never acknowledged)
    log: list[str] = field(default_factory=list)

    def trail(self) -> str:
        return f"seed={self.seed} (TACIT_SOAK_SEED={self.seed} replays it); last ops: " + (
            "; ".join(self.log[-12:])
        )


class CrashRun:
    def __init__(
        self,
        workdir: Path,
        seed: int,
        *,
        server: ServerProcess | None = None,
        username: str | None = None,
        kill_p: float = 0.35,
    ) -> None:
        self.rng = random.Random(seed)
        self.device = Device(workdir / "a", "A")
        self.backups = workdir / "backups"
        self.backups.mkdir()
        self.server = server
        self.workdir = workdir
        self.model = Model()
        self.report = CrashReport(seed)
        self.kill_p = kill_p
        self.counter = 0
        self.username = username
        self.durations: dict[str, list[float]] = {}
        self.device.ok("init")

    def usual(self, op: str) -> float:
        seen = self.durations.get(op) or [t for ts in self.durations.values() for t in ts]
        return statistics.median(seen[-9:]) if seen else 0.6

    # -- the stream ------------------------------------------------------------------
    def text(self, what: str) -> str:
        self.counter += 1
        return f"{what} {self.report.seed}-{self.counter} " + "lorem ipsum " * self.rng.randint(
            1, 40
        )

    def pick_op(self) -> tuple[str, tuple[str, ...], str]:
        m, rng = self.model, self.rng
        unsigned = sorted(set(m.bodies) - m.signed)
        choices: list[str] = ["client"] * 2
        if m.clients:
            choices += ["note"] * 5
        if unsigned:
            choices += ["edit"] * 5 + ["sign"]
        if m.signed:
            choices += ["addendum"]
        choices += ["backup"]
        if self.server is not None:
            choices += ["sync"] * 3
        op = rng.choice(choices)
        if op == "client":
            return op, ("client", "add", self.text("Client").split(" lorem")[0]), ""
        if op == "note":
            cid = rng.choice(sorted(m.clients))
            return op, ("note", "new", "--client", cid, "--template", "soap"), self.text("Note")
        if op == "edit":
            return op, ("note", "edit", rng.choice(unsigned)), self.text("Edit")
        if op == "sign":
            return op, ("note", "sign", rng.choice(unsigned)), ""
        if op == "addendum":
            return op, ("note", "addendum", rng.choice(sorted(m.signed))), self.text("Addendum")
        if op == "backup":
            return op, ("backup", "create", "--to", str(self.backups)), ""
        return op, ("sync",), ""

    def step(self) -> None:
        op, args, stdin = self.pick_op()
        self.report.ops += 1
        env: dict[str, str] = {}
        kill = self.rng.random() < self.kill_p
        # Most of a CLI run is starting Python; the writes happen in its last part. Aim
        # the kill at the second half of this op's usual duration (learned as we go).
        delay = self.rng.uniform(0.5, 1.05) * self.usual(op)
        if op == "sync" and kill and self.rng.random() < 0.5:
            step = self.rng.choice(SERVER_FAULT_STEPS)
            env["TACIT_TEST_SYNC_FAULT"] = f"{step}:1:kill"
            delay = 60.0
            self.report.engine_kills += 1
        before = set(self.backups.iterdir())
        start = time.monotonic()
        if kill or env:
            run = self.device.run_killed(args, delay, stdin=stdin, env=env)
        else:
            run = self.device.run(*args, stdin=stdin)
        killed = run.code == -9
        if not killed:
            self.durations.setdefault(op, []).append(time.monotonic() - start)
        self.report.log.append(f"{op}{' KILLED' if killed else ''} rc={run.code}")
        if not killed:
            self.acknowledge(op, args, stdin, run)
            return
        self.report.kills += 1
        self.reconcile(op, args, stdin, before)

    def acknowledge(self, op: str, args: tuple[str, ...], stdin: str, run: Run) -> None:
        assert run.code == 0, f"{op} exited {run.code}: {run.err}; {self.report.trail()}"
        doc, m = run.doc, self.model
        self.report.acknowledged += op != "sync"
        if op == "client":
            m.clients[doc["id"]] = args[2]
        elif op == "note":
            m.bodies[doc["id"]] = stdin
            m.texts[doc["id"]] = {stdin}
        elif op == "edit":
            m.bodies[args[2]] = stdin
            m.texts[args[2]].add(stdin)
        elif op == "sign":
            m.signed.add(args[2])
        elif op == "addendum":
            m.addenda[args[2]] = m.addenda.get(args[2], 0) + 1
        elif op == "backup":
            assert Path(doc["file"]).is_file(), self.report.trail()

    # -- after a kill -----------------------------------------------------------------
    def reconcile(self, op: str, args: tuple[str, ...], stdin: str, before: set[Path]) -> None:
        """Check the vault against the model, allowing the killed op to be wholly there
        or not at all; then adopt its effect."""
        snap = snapshot(self.device.vault, context=self.report.trail())
        self.check(snap, op, args, stdin)
        m = self.model
        self.report.landed += self.landed(snap, op, args, stdin)
        if op == "client":
            new = set(snap.clients) - set(m.clients)
            m.clients.update({cid: snap.clients[cid] for cid in new})
        elif op == "note":
            for nid in set(snap.notes) - set(m.bodies):
                m.bodies[nid] = stdin
                m.texts[nid] = {stdin}
        elif op == "edit" and snap.notes[args[2]].body == stdin:
            m.bodies[args[2]] = stdin
            m.texts[args[2]].add(stdin)
        elif op == "sign" and snap.notes[args[2]].signed:
            m.signed.add(args[2])
        elif op == "addendum":
            m.addenda[args[2]] = snap.notes[args[2]].addenda
        elif op == "backup":
            self.check_backups(before)

    def landed(self, snap: Snapshot, op: str, args: tuple[str, ...], stdin: str) -> bool:
        m = self.model
        if op == "client":
            return len(snap.clients) > len(m.clients)
        if op == "note":
            return len(snap.notes) > len(m.bodies)
        if op == "edit":
            return snap.notes[args[2]].body == stdin
        if op == "sign":
            return snap.notes[args[2]].signed and args[2] not in m.signed
        if op == "addendum":
            return snap.notes[args[2]].addenda > m.addenda.get(args[2], 0)
        return False

    def check(self, snap: Snapshot, op: str, args: tuple[str, ...], stdin: str) -> None:
        m, trail = self.model, self.report.trail()
        missing_clients = set(m.clients) - set(snap.clients)
        missing_notes = set(m.bodies) - set(snap.notes)
        self.report.lost += len(missing_clients) + len(missing_notes)
        assert not missing_clients, f"acknowledged clients lost: {missing_clients}; {trail}"
        assert not missing_notes, f"acknowledged notes lost: {missing_notes}; {trail}"
        extra_clients = set(snap.clients) - set(m.clients)
        assert len(extra_clients) <= (op == "client"), f"clients from nowhere: {trail}"
        extra_notes = set(snap.notes) - set(m.bodies)
        assert len(extra_notes) <= (op == "note"), f"notes from nowhere: {trail}"
        for nid in extra_notes:
            assert snap.notes[nid].body == stdin, f"a killed note is partial: {trail}"
        for cid, name in m.clients.items():
            assert snap.clients[cid] == name, f"client {cid} changed: {trail}"
        for nid, body in m.bodies.items():
            state = snap.notes[nid]
            allowed = {body, stdin} if op == "edit" and args[2] == nid else {body}
            if state.body not in allowed:
                self.report.lost += 1
                raise AssertionError(f"note {nid}: acknowledged text lost; {trail}")
            assert set(state.history) >= m.texts[nid], f"note {nid}: history lost: {trail}"
            assert len(state.history) <= len(m.texts[nid]) + 1, f"{nid}: extra revisions {trail}"
            if nid in m.signed:
                assert state.signed, f"note {nid}: acknowledged signature lost; {trail}"
                want = m.addenda.get(nid, 0)
                killed_here = op == "addendum" and args[2] == nid
                allowed_addenda = {want, want + 1} if killed_here else {want}
                assert state.addenda in allowed_addenda, f"{nid}: addenda lost; {trail}"
        bodies = [n.body for n in snap.notes.values()]
        assert len(bodies) == len(set(bodies)), f"a note duplicated: {trail}"

    def check_backups(self, before: set[Path]) -> None:
        """A killed backup leaves no file under a final name, or one that verifies."""
        for path in sorted(set(self.backups.iterdir()) - before):
            if path.name.startswith("."):
                continue  # a temporary file: never read as a backup
            self.report.backups_checked += 1
            doc = self.device.ok("backup", "verify", str(path))
            assert doc["ok"], f"a killed backup left a bad {path.name}: {self.report.trail()}"

    # -- the end ----------------------------------------------------------------------
    def finish(self) -> Snapshot:
        snap = snapshot(self.device.vault, context=self.report.trail())
        self.check(snap, "none", (), "")
        backups = sorted(p for p in self.backups.iterdir() if not p.name.startswith("."))
        if backups:
            self.report.backups_checked += 1
            assert self.device.ok("backup", "verify", str(backups[-1]))["ok"]
        if self.server is None:
            return snap
        fresh = Device(self.workdir / "b", "B")
        fresh.ok("init")
        assert self.username is not None
        fresh.login(self.server, self.username, "--recovery-code", self.recovery_code)
        mine, other = settle([self.device, fresh], context=self.report.trail())
        assert other.content() == mine.content(), f"the fresh vault differs: {self.report.trail()}"
        return mine

    recovery_code = ""

    def sign_up(self, username: str) -> None:
        """Link the vault to a new account on the server (TOTP login)."""
        import pyotp

        assert self.server is not None
        self.username = username
        doc = self.device.ok(
            "account",
            "create",
            "--server",
            self.server.url,
            "--ca-file",
            str(self.server.ca_file),
            "--username",
            username,
        )
        self.recovery_code = doc["recovery_codes"][0]
        code = pyotp.parse_uri(doc["totp_uri"]).now()
        self.device.login(self.server, username, "--totp", code)


def crash_run(
    workdir: Path, seed: int, ops: int, *, server: ServerProcess | None = None
) -> CrashReport:
    run = CrashRun(workdir, seed, server=server)
    if server is not None:
        run.sign_up(f"crash-{seed}-{workdir.name[-6:]}".lower())
    for _ in range(ops):
        run.step()
    run.finish()
    return run.report
