"""Reusable pieces of the reliability tests (tests/reliability) and of ``make soak``:

- ``Device``: one vault driven through the real ``tacit`` CLI as a subprocess, with its own
  private ``TMPDIR`` and every byte of its stdout/stderr kept (the plaintext sweep scans
  them); ``spawn`` starts a command that the caller may SIGKILL.
- ``ServerProcess``: ``python -m app.sync.server`` over TLS on 127.0.0.1 that can be
  killed (SIGKILL) and started again on the same database with the same CA; it is told
  the public origin of the ``FaultProxy`` in front of it, so logins signed for the
  proxy's URL verify.
- ``FaultProxy``: an asyncio TCP proxy on 127.0.0.1 (TLS passes through untouched) that
  cuts connections at random byte offsets and delays chunks, from a seeded RNG.
- ``snapshot``: a device's whole content read in-process (``VaultService``, the code the
  CLI runs), after ``check()`` and the audit chain verify.
- ``soak_runs`` / ``seeds``: how many runs a test does (``TACIT_SOAK_RUNS`` for ``make
  soak``; a small fixed number in CI) and the seeds (``TACIT_SOAK_SEED`` replays one).

Invariants: every process started here listens on or connects to 127.0.0.1 only and is
stopped by the context that started it; randomness comes only from ``random.Random(seed)``
and every seed is named in the failure message that needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.sync.server.helpers import REPO_ROOT, RunningServer, _serve

ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"
SERVER_FAULT_STEPS = ("pull_page", "pulled", "applied", "prepared", "pushed", "acked")


def soak_runs(default: int) -> int:
    """``TACIT_SOAK_RUNS`` (``make soak``) or the CI default."""
    return int(os.environ.get("TACIT_SOAK_RUNS", default))


def seeds(default_runs: int, base: int) -> list[int]:
    """Deterministic seeds: ``base``, ``base + 1``, …; ``TACIT_SOAK_SEED=S`` replays one."""
    if os.environ.get("TACIT_SOAK_SEED"):
        return [int(os.environ["TACIT_SOAK_SEED"])]
    return [base + i for i in range(soak_runs(default_runs))]


# --- a device: one vault, the CLI as a subprocess -------------------------------------
@dataclass
class Run:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def doc(self) -> Any:
        return json.loads(self.out)


class Device:
    """One vault and its private temp folder; ``log`` keeps every command's output."""

    def __init__(self, base: Path, name: str = "device", *, debug: bool = False) -> None:
        self.base = base
        self.debug = debug
        self.name = name
        base.mkdir(parents=True, exist_ok=True)
        self.vault = base / "vault"
        self.tmp = base / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "TACIT_VAULT": str(self.vault),
            "TACIT_PASSPHRASE": PASSPHRASE,
            "TACIT_ACCOUNT_PASSWORD": ACCOUNT_PASSWORD,
            "TACIT_INSECURE_TEST_KDF": "1",
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            "TMPDIR": str(self.tmp),
            "PYTHONPATH": str(REPO_ROOT),
        }
        for var in ("TACIT_DEBUG", "TACIT_TEST_SYNC_FAULT"):
            self.env.pop(var, None)
        if debug:  # an internal error then shows its traceback (never in the sweep)
            self.env["TACIT_DEBUG"] = "1"
        self.log: list[Run] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "app.cli", "--json", *args]

    def spawn(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**self.env, **(env or {})},
            cwd=self.base,
        )
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin.encode())
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.stdin = None  # communicate() must not touch it again
        return proc

    def finish(self, args: tuple[str, ...], proc: subprocess.Popen[bytes]) -> Run:
        out, err = proc.communicate(timeout=120)
        run = Run(args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
        self.log.append(run)
        assert self.debug or "Traceback" not in run.err, f"{self.name} {args}: {run.err}"
        return run

    def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Run:
        return self.finish(args, self.spawn(*args, stdin=stdin, env=env))

    def ok(self, *args: str, stdin: str = "") -> Any:
        run = self.run(*args, stdin=stdin)
        assert run.code == 0, f"{self.name} {args} exited {run.code}: {run.err}"
        return run.doc

    def run_killed(
        self,
        args: tuple[str, ...],
        delay: float,
        *,
        stdin: str = "",
        env: dict[str, str] | None = None,
    ) -> Run:
        """Start ``args``; SIGKILL it after ``delay`` s unless it finished first."""
        proc = self.spawn(*args, stdin=stdin, env=env)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        return self.finish(args, proc)

    def login(self, server: ServerProcess, username: str, *factor: str) -> None:
        self.ok(
            "account",
            "login",
            "--server",
            server.url,
            "--ca-file",
            str(server.ca_file),
            "--username",
            username,
            *factor,
        )

    def sync_until_quiet(self, *, tries: int = 6) -> None:
        """Sync until a run pulls nothing and leaves only audit entries queued (each run
        audits itself, so an audit entry is always waiting; no faults may be active)."""
        for _ in range(tries):
            if self.ok("sync")["pulled"] == 0:
                pending = self.ok("sync", "status")["pending_by_kind"]
                if set(pending) <= {"audit"}:
                    return
        raise AssertionError(f"{self.name} did not reach quiescence in {tries} syncs")


def settle(devices: list[Device], *, context: str, passes: int = 6) -> list[Snapshot]:
    """Sync every device in turn until all hold the same content (at least two whole
    passes: the first pushes everything, the second brings it everywhere). Returns the
    snapshots; raises AssertionError after ``passes`` passes."""
    snaps: list[Snapshot] = []
    for n in range(1, passes + 1):
        for device in devices:
            device.ok("sync")
        if n < 2:
            continue
        snaps = [snapshot(d.vault, context=f"{d.name}; {context}") for d in devices]
        if all(s.content() == snaps[0].content() for s in snaps[1:]):
            return snaps
    return snaps


def open_vault(vault: Path) -> VaultService:
    svc = VaultService(vault)
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    return svc


@dataclass(frozen=True)
class NoteState:
    client_id: str
    body: str
    signed: bool
    history: tuple[str, ...]  # every revision's body, oldest first (the current one last)
    addenda: int = 0


@dataclass(frozen=True)
class Snapshot:
    clients: dict[str, str]  # id -> name
    notes: dict[str, NoteState]

    def content(self) -> tuple[dict[str, str], dict[str, tuple[str, str, bool, int, int]]]:
        """What must be equal on every device: clients, and each note's client, current
        text, signed flag and number of revisions."""
        return self.clients, {
            nid: (n.client_id, n.body, n.signed, len(n.history), n.addenda)
            for nid, n in self.notes.items()
        }


def snapshot(vault: Path, *, context: str = "") -> Snapshot:
    """Unlock in-process, check every page and the audit chain, verify every signed note,
    and read everything; raise AssertionError (naming ``context``) on any damage or
    duplicate."""
    svc = open_vault(vault)
    try:
        problems = svc.check()
        assert problems == [], f"{context}: database check: {problems}"
        verdict = svc.verify_audit()
        assert verdict.ok, f"{context}: audit chain broken: {verdict}"
        clients = {c.id: c.name for c in svc.list_clients()}
        summaries = svc.list_notes(limit=1_000_000)
        ids = [s.id for s in summaries]
        assert len(ids) == len(set(ids)), f"{context}: a note listed twice"
        notes: dict[str, NoteState] = {}
        for nid in ids:
            note = svc.get_note(nid, record_view=False)
            revisions = svc.note_history(nid, record_view=False)
            numbers = [r.revision for r in revisions]
            assert len(numbers) == len(set(numbers)), f"{context}: {nid} revision twice"
            addenda = 0
            if note.signed:
                verification = svc.verify_note(nid)
                assert verification.ok, f"{context}: {nid} signature: {verification.problems}"
                addenda = verification.addenda
            notes[nid] = NoteState(
                note.client_id, note.body, note.signed, tuple(r.body for r in revisions), addenda
            )
        return Snapshot(clients, notes)
    finally:
        svc.lock(record=False)


# --- the sync server, restartable -----------------------------------------------------
class ServerProcess:
    """The sync server on SQLite (or ``db_url``), restartable on the same database with
    the same CA; ``origin`` is the URL clients use (the proxy's)."""

    def __init__(self, workdir: Path, origin: str, db_url: str | None = None) -> None:
        import trustme

        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.origin = origin
        self.url = origin
        self.db_url = db_url or f"sqlite:///{workdir / 'server.sqlite3'}"
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file, self.key_file = workdir / "cert.pem", workdir / "key.pem"
        self.ca_file = workdir / "ca.pem"
        cert.private_key_pem.write_to_path(str(self.key_file))
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.running: RunningServer | None = None
        self._stack: contextlib.ExitStack | None = None
        self.starts = 0
        self.logs: list[str] = []  # every line any of its processes printed
        self._drains: list[threading.Thread] = []

    @property
    def port(self) -> int:
        assert self.running is not None
        return int(self.running.url.rsplit(":", 1)[1])

    def start(self) -> None:
        env = {**os.environ, "TACIT_INSECURE_TEST_KDF": "1", "PYTHONPATH": str(REPO_ROOT)}
        argv = [sys.executable, "-m", "app.sync.server", "--db", self.db_url]
        argv += ["--host", "127.0.0.1", "--port", "0", "--origin", self.origin]
        argv += ["--tls-cert", str(self.cert_file), "--tls-key", str(self.key_file)]
        self._stack = contextlib.ExitStack()
        self.running = self._stack.enter_context(_serve(argv, env, self.ca_file, self.db_url))
        self.starts += 1
        # Drain its output as it comes: a full pipe would block the server.
        self._drains = [
            threading.Thread(target=self._drain, args=(stream,), daemon=True)
            for stream in (self.running.process.stdout, self.running.process.stderr)
        ]
        for thread in self._drains:
            thread.start()

    def _drain(self, stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self.logs.append(line)

    def stop(self, *, kill: bool = False) -> None:
        if self.running is None or self._stack is None:
            return
        proc = self.running.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._drains:
            thread.join(timeout=5)
        self._stack.close()
        self.running, self._stack = None, None

    def restart(self, *, kill: bool) -> None:
        self.stop(kill=kill)
        self.start()


# --- the fault proxy ------------------------------------------------------------------
@dataclass
class ProxyStats:
    connections: int = 0
    cut: int = 0
    delayed_chunks: int = 0


@dataclass
class FaultProxy:
    """``127.0.0.1:port`` → ``127.0.0.1:target_port``. While ``faulty``, each connection is
    cut (both directions closed) with probability ``cut_p`` after a random number of bytes
    (0 … ``cut_max_bytes``, counted in either direction), and each chunk waits up to
    ``max_delay_s`` first with probability ``delay_p``. ``target_port`` may change at any
    time (a restarted server): new connections go to the new port."""

    seed: int
    target_port: int = 0
    cut_p: float = 0.3
    cut_max_bytes: int = 40_000
    delay_p: float = 0.2
    max_delay_s: float = 0.15
    faulty: bool = True
    port: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        ready.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port or 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        faulty = self.faulty
        budget = [self._rng.randint(0, self.cut_max_bytes)]
        cut = faulty and self._rng.random() < self.cut_p

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(4096):
                    if faulty and self._rng.random() < self.delay_p:
                        self.stats.delayed_chunks += 1
                        await asyncio.sleep(self._rng.uniform(0, self.max_delay_s))
                    if cut:
                        if len(data) >= budget[0]:
                            dst.write(data[: budget[0]])
                            self.stats.cut += 1
                            raise ConnectionResetError("cut by the fault proxy")
                        budget[0] -= len(data)
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                for w in (writer, up_writer):
                    w.transport.abort() if cut else w.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@contextlib.contextmanager
def proxied_server(
    workdir: Path, seed: int, **proxy: Any
) -> Iterator[tuple[ServerProcess, FaultProxy]]:
    """A fault proxy and a server behind it (started, then both stopped)."""
    fp = FaultProxy(seed=seed, faulty=False, **proxy)
    fp.start()
    server = ServerProcess(workdir, fp.url)
    try:
        server.start()
        fp.target_port = server.port
        yield server, fp
    finally:
        server.stop()
        fp.close()
