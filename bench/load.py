"""The load benchmark: ``python -m bench.load --devices N --seconds S [--json]
[--backends sqlite,postgres] [--think-s T] [--per-account K] [--procs P] [--workers W]``.

N simulated devices sync against a real ``python -m app.sync.server --workers W`` (W
worker processes on one socket, default: the machine's cores, as docs/DEPLOY.md advises,
at most 8: each pools 10 PostgreSQL connections, and the throwaway cluster allows 200)
over TLS on 127.0.0.1 (trustme certificates), for each backend (SQLite, and a throwaway PostgreSQL
cluster started here when its binaries exist). Devices are grouped K to an account (real
accounts: sign-up and login through the API, the second device of an account with a
recovery code, each account from its own ``X-Forwarded-For`` address as a real fleet
comes from many addresses).

The devices are spread over P load generator processes (``--procs``, default
``min(4, cpu count)``, never more than the accounts; started with the ``spawn`` method),
so that the generator's own event-loop queueing stays out of the measured latency as far
as the machine allows (a real fleet is N separate machines; one asyncio loop driving 200
devices measured mostly itself). Process i takes the accounts i, i + P, i + 2P, ... (each
with the same seeds and address whatever P is), signs them up, and waits at a shared
barrier with the others and this process, so the timed phase starts at the same moment
everywhere; it then runs its devices for ``--seconds``, and sends its tally back here,
where the tallies are merged. A child that fails (or dies, or hangs past its deadline)
stops the run with its error and the others are terminated. Each device, on its own
keep-alive HTTP/1.1 connection (an ``aiohttp`` session with a one-connection connector,
TLS verified against the bench CA; ``aiohttp`` costs the generator about a third of the
CPU per request that ``httpx`` did), loops:

1. push 1 to 5 items (random bytes, as the server only ever sees ciphertext: mostly new
   items, some new versions of its own earlier ones with their etags);
2. pull from its cursor until ``more`` is false (so it receives what the other devices of
   its account pushed);
3. wait ``think_s`` (± 50 %, seeded) — the app syncs a few seconds after a change, so a
   device syncing every second or two is already a busy clinician.

Reported per backend: ``requests``, ``errors`` (any non-2xx answer, timeout or transport
error, with ``error_kinds``), ``p50_ms`` / ``p99_ms`` (every request), ``push_p50_ms`` /
``push_p99_ms``, ``items_per_s`` (items accepted by pushes per second), ``pulled_items``,
and ``raw_db_batch_ms`` with ``push_p50_vs_raw_db``: the median time of the same inserts
(same batch sizes, same row sizes) straight through the server's own driver layer, and
how many times that a push costs at the median (HTTP + TLS + auth + validation + the
per-account counter over the bare transaction). Where the CPU goes:
``server_cpu_ms_per_request`` and ``server_cpu_busy`` (user + system CPU of the server
process and all its descendants — worker processes — from ``/proc``, including exited
children's time that the kernel adds to their parent's), ``loadgen_cpu_ms_per_request``
(the generator processes' CPU, summed), ``procs`` (how many generator processes) and
``load_avg`` (the machine's 1-minute load average before and after the timed part) and
``server_workers``.
Setup is not timed. Progress goes to stderr; ``--json`` prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import random
import ssl
import sys
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ["TACIT_INSECURE_TEST_KDF"] = "1"

import aiohttp
import pyotp

from app.sync import protocol
from app.sync.client import tls_context
from app.vault import crypto
from bench.common import log, machine_info, percentile
from bench.sync import _server, each_backend, print_result

BLOB_BYTES = (600, 2400)  # a note item's ciphertext, roughly
WEAK_KDF = {
    "algorithm": "argon2id",
    "version": 19,
    "memory_kib": 1024,
    "iterations": 1,
    "parallelism": 1,
    "salt": protocol.b64encode(b"s" * 16),
}
MAX_DEFAULT_WORKERS = 8
SIGNUPS_AT_ONCE = 16  # over all generator processes
REQUEST_TIMEOUT_S = 30
# A child must reach the barrier (sign-ups done) within this, plus 3 s per account of its
# share, and deliver its tally within the timed phase plus this (a device's last cycle:
# a push and its pulls, each up to REQUEST_TIMEOUT_S).
SETUP_TIMEOUT_S = 300
FINISH_GRACE_S = 240


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    push_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    pushed: int = 0
    pulled: int = 0

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


@dataclass
class SimDevice:
    http: aiohttp.ClientSession
    token: str
    account_id: str
    rng: random.Random
    cursor: str | None = None
    mine: dict[str, str] = field(default_factory=dict)  # item id -> etag


def _device_doc() -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "name": "load",
        "public_key": protocol.b64encode(crypto.new_device_key().public_key()),
    }


def _device_session(
    url: str, ctx: ssl.SSLContext, headers: dict[str, str]
) -> aiohttp.ClientSession:
    """One keep-alive HTTP/1.1 connection (aiohttp speaks only HTTP/1.1), kept idle for
    less than the server's keep-alive so the client closes first."""
    return aiohttp.ClientSession(
        base_url=url,
        headers=headers,
        connector=aiohttp.TCPConnector(ssl=ctx, limit=1, keepalive_timeout=30),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


async def _post_json(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> Any:
    async with http.post(path, json=body) as r:
        r.raise_for_status()
        return await r.json()


async def _account(
    url: str, ctx: ssl.SSLContext, n: int, per_account: int, seed: int
) -> list[SimDevice]:
    """Sign up one account and log ``per_account`` devices in to it."""
    headers = {"X-Forwarded-For": f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}"}
    key = crypto.new_device_key()
    user = f"load-{uuid.uuid4().hex[:12]}"
    devices: list[SimDevice] = []
    first = _device_doc()
    setup = aiohttp.ClientSession(
        base_url=url,
        headers=headers,
        connector=aiohttp.TCPConnector(ssl=ctx),
        timeout=aiohttp.ClientTimeout(total=60),
    )
    try:
        created = await _post_json(
            setup,
            protocol.PATH_ACCOUNTS,
            {
                "username": user,
                "login_public_key": protocol.b64encode(key.public_key()),
                "kdf": WEAK_KDF,
                "device": first,
            },
        )
        for d in range(per_account):
            ch = await _post_json(setup, protocol.PATH_AUTH_CHALLENGE, {"username": user})
            sig = crypto.login_signature(
                key, protocol.canonical_origin(url), protocol.b64decode(ch["challenge"])
            )
            body: dict[str, Any] = {
                "challenge_id": ch["challenge_id"],
                "username": user,
                "signature": protocol.b64encode(sig),
                "device": first if d == 0 else _device_doc(),
            }
            if d == 0:
                body["totp"] = pyotp.parse_uri(created["totp_uri"]).now()
            else:
                body["recovery_code"] = created["recovery_codes"][d - 1]
            tokens = await _post_json(setup, protocol.PATH_AUTH_LOGIN, body)
            devices.append(
                SimDevice(
                    _device_session(url, ctx, headers),
                    tokens["access_token"],
                    tokens["account_id"],
                    random.Random(seed * 100_003 + n * 10 + d),
                )
            )
    except BaseException:
        for dev in devices:
            await dev.http.close()
        raise
    finally:
        await setup.close()
    return devices


async def _request(
    dev: SimDevice, tally: Tally, method: str, path: str, **kwargs: Any
) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    try:
        async with dev.http.request(
            method, path, headers={"Authorization": f"Bearer {dev.token}"}, **kwargs
        ) as r:
            status, body = r.status, await r.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
        tally.error(type(exc).__name__)
        return None
    ms = (time.perf_counter() - t0) * 1000
    tally.latencies_ms.append(ms)
    if method == "POST":
        tally.push_ms.append(ms)
    if not 200 <= status < 300:
        tally.error(f"http_{status}")
        return None
    doc: dict[str, Any] = json.loads(body)
    return doc


async def _cycle(dev: SimDevice, tally: Tally) -> None:
    rng = dev.rng
    items = []
    for _ in range(rng.randint(1, 5)):
        if dev.mine and rng.random() < 0.3:
            item_id = rng.choice(list(dev.mine))
            etag: str | None = dev.mine[item_id]
        else:
            item_id, etag = str(uuid.UUID(int=rng.getrandbits(128), version=4)), None
        if any(i["id"] == item_id for i in items):
            continue
        blob = rng.randbytes(rng.randint(*BLOB_BYTES))
        items.append(
            {
                "id": item_id,
                "kind": "note",
                "expected_etag": etag,
                "deleted": False,
                "key_id": "items-1",
                "blob": protocol.b64encode(blob),
            }
        )
    doc = await _request(dev, tally, "POST", protocol.PATH_ITEMS_BATCH, json={"items": items})
    if doc is not None:
        tally.batch_sizes.append(len(items))
        for result in doc["results"]:
            if result["status"] == "ok":
                dev.mine[result["id"]] = result["etag"]
                tally.pushed += 1
            else:
                tally.error("conflict")
    more = True
    while more:
        params = {"limit": 500} | ({"cursor": dev.cursor} if dev.cursor else {})
        doc = await _request(dev, tally, "GET", protocol.PATH_ITEMS, params=params)
        if doc is None:
            return
        tally.pulled += len(doc["items"])
        dev.cursor, more = doc["cursor"], bool(doc["more"])


async def _device_loop(dev: SimDevice, tally: Tally, until: float, think_s: float) -> None:
    await asyncio.sleep(dev.rng.uniform(0, think_s))  # spread the start
    while time.perf_counter() < until:
        await _cycle(dev, tally)
        await asyncio.sleep(think_s * dev.rng.uniform(0.5, 1.5))


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _tree_cpu_s(root: int) -> float:
    """User + system CPU seconds so far of a process and all its descendants (Linux
    /proc; 0 elsewhere): each live one's utime + stime, plus every one's cutime + cstime
    (the time of its children that have exited and been waited for, which no longer have
    a /proc entry of their own). Nothing is counted twice: a child's time moves into its
    parent's cutime/cstime only when it is reaped."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            fields = _proc_stat(int(entry.name))
            if fields is None:
                continue  # gone meanwhile
            pid = int(entry.name)
            stats[pid] = fields
            children.setdefault(int(fields[1]), []).append(pid)
    if root not in stats:
        fields = _proc_stat(root)
        if fields is None:
            return 0.0
        stats[root] = fields
    ticks, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        f = stats[pid]
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        todo.extend(children.get(pid, []))
    return ticks / os.sysconf("SC_CLK_TCK")


async def _run_share(
    index: int,
    procs: int,
    url: str,
    ca_file: Path,
    args: argparse.Namespace,
    barrier: Any,
    setup_timeout: float,
) -> dict[str, Any]:
    """One generator process: sign up accounts index, index + procs, ..., wait at the
    barrier, run their devices for ``args.seconds``, return the tally."""
    ctx = tls_context(ca_file, None)
    accounts = -(-args.devices // args.per_account)
    mine = range(index, accounts, procs)
    sem = asyncio.Semaphore(max(1, SIGNUPS_AT_ONCE // procs))

    async def one(n: int) -> list[SimDevice]:
        async with sem:
            group = await _account(url, ctx, n, args.per_account, args.seed)
        extra = group[max(0, args.devices - n * args.per_account) :]  # past N devices
        for dev in extra:
            await dev.http.close()
        return group[: len(group) - len(extra)]

    results = await asyncio.gather(*(one(n) for n in mine), return_exceptions=True)
    groups = [g for g in results if isinstance(g, list)]
    devices = [d for g in groups for d in g]
    try:
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        log(f"process {index}: {len(mine)} accounts, {len(devices)} devices signed up")
        barrier.wait(setup_timeout)  # blocks this loop, which has nothing else to do yet
        tally = Tally()
        t0, own_cpu0 = time.perf_counter(), time.process_time()
        until = t0 + args.seconds
        await asyncio.gather(*(_device_loop(d, tally, until, args.think_s) for d in devices))
        elapsed = time.perf_counter() - t0
        own_cpu = time.process_time() - own_cpu0
    finally:
        for dev in devices:
            await dev.http.close()
    return asdict(tally) | {
        "devices": len(devices),
        "cpu_s": own_cpu,
        "elapsed": elapsed,
        "account_id": devices[0].account_id if devices else None,
    }


def _child(
    index: int,
    procs: int,
    url: str,
    ca_file: Path,
    args: argparse.Namespace,
    barrier: Any,
    results: Any,
    setup_timeout: float,
) -> None:
    """Entry point of a generator process (spawned): its tally, or its error, goes to
    ``results`` as ("ok" | "error", index, payload)."""
    try:
        tally = asyncio.run(_run_share(index, procs, url, ca_file, args, barrier, setup_timeout))
    except BaseException:
        barrier.abort()  # nobody waits for this process at the barrier any more
        results.put(("error", index, traceback.format_exc()))
        raise
    results.put(("ok", index, tally))


class LoadGenError(RuntimeError):
    pass


def _drive(url: str, ca_file: Path, server_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    accounts = -(-args.devices // args.per_account)
    procs = max(1, min(args.procs, accounts))
    log(f"signing up {accounts} accounts, {args.devices} devices, in {procs} processes")
    setup_timeout = SETUP_TIMEOUT_S + 3 * -(-accounts // procs)
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(procs + 1)
    results = mp.Queue()
    children = [
        mp.Process(
            target=_child,
            args=(i, procs, url, ca_file, args, barrier, results, setup_timeout + 30),
            name=f"bench-load-{i}",
            daemon=True,
        )
        for i in range(procs)
    ]
    tallies: dict[int, dict[str, Any]] = {}
    stop = threading.Event()

    def watch() -> None:  # a child that dies before the barrier must not leave us waiting
        while not stop.wait(0.5):
            if any(c.exitcode not in (None, 0) for c in children):
                barrier.abort()
                return

    def fail(reason: str) -> LoadGenError:
        errors = []
        with contextlib.suppress(queue.Empty, OSError, EOFError):
            while True:
                kind, index, payload = results.get(timeout=2)
                if kind == "error":
                    errors.append(f"load generator process {index}:\n{payload}")
        codes = {c.name: c.exitcode for c in children}
        return LoadGenError("\n".join([f"{reason} (exit codes {codes})", *errors]))

    watchdog = threading.Thread(target=watch, daemon=True)
    try:
        for c in children:
            c.start()
        watchdog.start()
        try:
            barrier.wait(setup_timeout)
        except threading.BrokenBarrierError:
            raise fail("a load generator process failed during sign-up") from None
        load_before = os.getloadavg()[0]
        t0, server_cpu0 = time.perf_counter(), _tree_cpu_s(server_pid)
        log(f"{args.devices} devices syncing for {args.seconds} s (think {args.think_s} s)")
        deadline = t0 + args.seconds + FINISH_GRACE_S
        while len(tallies) < procs:
            try:
                kind, index, payload = results.get(timeout=1)
            except queue.Empty:
                if any(c.exitcode not in (None, 0) for c in children):
                    raise fail("a load generator process failed") from None
                if time.perf_counter() > deadline:
                    raise fail("load generator processes did not finish in time") from None
                continue
            if kind == "error":
                raise LoadGenError(f"load generator process {index} failed:\n{payload}")
            tallies[index] = payload
        window = time.perf_counter() - t0
        server_cpu = _tree_cpu_s(server_pid) - server_cpu0
        load_after = os.getloadavg()[0]
    finally:
        stop.set()
        for c in children:
            c.join(timeout=15 if len(tallies) == procs else 0.1)
        for c in children:
            if c.is_alive():
                c.terminate()
        for c in children:
            c.join(timeout=5)
            if c.is_alive():
                c.kill()
                c.join(timeout=5)
        results.close()
    return _merge(tallies, accounts, procs, window, server_cpu, (load_before, load_after))


def _merge(
    tallies: dict[int, dict[str, Any]],
    accounts: int,
    procs: int,
    window: float,
    server_cpu: float,
    load_avg: tuple[float, float],
) -> dict[str, Any]:
    """The generator processes' tallies as one result. Rates use the longest child's
    timed phase; the server's busy share uses the parent's window over all of them."""
    parts = [tallies[i] for i in sorted(tallies)]
    lat = [ms for p in parts for ms in p["latencies_ms"]]
    push = [ms for p in parts for ms in p["push_ms"]]
    kinds: dict[str, int] = {}
    for p in parts:
        for kind, count in p["error_kinds"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    elapsed = max(p["elapsed"] for p in parts)
    pushed = sum(p["pushed"] for p in parts)
    requests = len(lat)
    own_cpu = sum(p["cpu_s"] for p in parts)
    lat, push = lat or [0.0], push or [0.0]
    return {
        "devices": sum(p["devices"] for p in parts),
        "accounts": accounts,
        "procs": procs,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "errors": sum(p["errors"] for p in parts),
        "error_kinds": kinds,
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1),
        "push_p50_ms": round(percentile(push, 50), 1),
        "push_p99_ms": round(percentile(push, 99), 1),
        "items_per_s": round(pushed / elapsed, 1),
        "pushed_items": pushed,
        "pulled_items": sum(p["pulled"] for p in parts),
        "batch_sizes": [size for p in parts for size in p["batch_sizes"]],
        "account_id": parts[0]["account_id"],
        # where the time goes: CPU per request in the server (with any worker processes)
        # and in the load generator processes (summed)
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, requests), 2),
        "server_cpu_busy": round(server_cpu / window, 2),
        # the machine's 1-minute load average before and after (others' work shows here)
        "load_avg": [round(load_avg[0], 1), round(load_avg[1], 1)],
        "loadgen_cpu_ms_per_request": round(own_cpu * 1000 / max(1, requests), 2),
    }


def _raw_batches(db_url: str, account_id: str, sizes: list[int], seed: int) -> float:
    """Median ms of one transaction inserting a batch of item rows (same sizes as the
    pushes) straight through the server's driver layer, into one of the bench's accounts
    (at sequence numbers far above its own)."""
    from app.sync.server.db import open_database

    rng = random.Random(seed)
    db = open_database(db_url)
    seq = 10**12
    times: list[float] = []
    try:
        for size in sizes:
            rows = []
            for _ in range(size):
                seq += 1
                blob = rng.randbytes(rng.randint(*BLOB_BYTES))
                rows.append(
                    (
                        account_id,
                        str(uuid.uuid4()),
                        "note",
                        "items-1",
                        0,
                        blob,
                        uuid.uuid4().hex * 2,
                        len(blob),
                        seq,
                        0,
                    )
                )
            t0 = time.perf_counter()
            with db.transaction() as tx:
                tx.executemany(
                    "INSERT INTO items (account_id, id, kind, key_id, deleted, ciphertext, "
                    "etag, size, seq, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        db.close()
    return percentile(times, 50)


def run_backend(workdir: Path, db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    with _server(workdir, db_url, args.workers) as srv:
        result = _drive(srv.url, srv.ca_file, srv.process.pid, args)
    sizes = result.pop("batch_sizes")[:2000]
    log("raw inserts")
    raw_ms = _raw_batches(db_url, result.pop("account_id"), sizes or [1], args.seed)
    result["server_workers"] = args.workers
    result["raw_db_batch_ms"] = round(raw_ms, 2)
    result["push_p50_vs_raw_db"] = round(result["push_p50_ms"] / raw_ms, 1) if raw_ms else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think-s", type=float, default=2.0)
    parser.add_argument("--per-account", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--procs",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="load generator processes (at most one per account)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        # Each worker pools 10 PostgreSQL connections; the throwaway cluster allows 200.
        default=min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS),
        help="server worker processes (tacit server run --workers; default: the cores, "
        f"at most {MAX_DEFAULT_WORKERS})",
    )
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "devices": args.devices,
        "seconds": args.seconds,
        "think_s": args.think_s,
        "per_account": args.per_account,
        "machine": machine_info(),
        "backends": {},
    }
    result["backends"] = each_backend(
        "tacit-bench-load-", args.backends, lambda workdir, url: run_backend(workdir, url, args)
    )
    print_result(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
