"""The load benchmark: ``python -m bench.load --devices N --seconds S [--json]
[--backends sqlite,postgres] [--think-s T] [--per-account K]``.

N simulated devices sync against one real ``python -m app.sync.server`` process over TLS
on 127.0.0.1 (trustme certificates), for each backend (SQLite, and a throwaway PostgreSQL
cluster started here when its binaries exist). Devices are grouped K to an account (real
accounts: sign-up and login through the API, the second device of an account with a
recovery code, each account from its own ``X-Forwarded-For`` address as a real fleet
comes from many addresses). Each device, on its own keep-alive HTTP/1.1 connection
(``httpx.AsyncClient``, all devices on one asyncio loop), loops:

1. push 1 to 5 items (random bytes, as the server only ever sees ciphertext: mostly new
   items, some new versions of its own earlier ones with their etags);
2. pull from its cursor until ``more`` is false (so it receives what the other devices of
   its account pushed);
3. wait ``think_s`` (± 50 %, seeded) — the app syncs a few seconds after a change, so a
   device syncing every second or two is already a busy clinician.

Reported per backend: ``requests``, ``errors`` (any non-2xx answer, timeout or transport
error), ``p50_ms`` / ``p99_ms`` (every request), ``push_p50_ms`` / ``push_p99_ms``,
``items_per_s`` (items accepted by pushes per second), ``pulled_items``, and
``raw_db_batch_ms`` with ``push_p50_vs_raw_db``: the median time of the same inserts
(same batch sizes, same row sizes) straight through the server's own driver layer, and
how many times that a push costs at the median (HTTP + TLS + auth + validation + the
per-account counter over the bare transaction). Setup is not timed. Progress goes to
stderr; ``--json`` prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import ssl
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["TACIT_INSECURE_TEST_KDF"] = "1"

import httpx
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
    http: httpx.AsyncClient
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


async def _account(
    url: str, ctx: ssl.SSLContext, n: int, per_account: int, seed: int
) -> list[SimDevice]:
    """Sign up one account and log ``per_account`` devices in to it."""
    headers = {"X-Forwarded-For": f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}"}
    key = crypto.new_device_key()
    user = f"load-{uuid.uuid4().hex[:12]}"
    devices: list[SimDevice] = []
    first = _device_doc()
    setup = httpx.AsyncClient(base_url=url, verify=ctx, timeout=60, headers=headers)
    try:
        r = await setup.post(
            protocol.PATH_ACCOUNTS,
            json={
                "username": user,
                "login_public_key": protocol.b64encode(key.public_key()),
                "kdf": WEAK_KDF,
                "device": first,
            },
        )
        r.raise_for_status()
        created = r.json()
        for d in range(per_account):
            ch = (await setup.post(protocol.PATH_AUTH_CHALLENGE, json={"username": user})).json()
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
            r = await setup.post(protocol.PATH_AUTH_LOGIN, json=body)
            r.raise_for_status()
            http = httpx.AsyncClient(
                base_url=url,
                verify=ctx,
                timeout=30,
                headers=headers,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            tokens = r.json()
            devices.append(
                SimDevice(
                    http,
                    tokens["access_token"],
                    tokens["account_id"],
                    random.Random(seed * 100_003 + n * 10 + d),
                )
            )
    finally:
        await setup.aclose()
    return devices


async def _request(
    dev: SimDevice, tally: Tally, method: str, path: str, **kwargs: Any
) -> dict[str, Any] | None:
    t0 = time.perf_counter()
    try:
        r = await dev.http.request(
            method, path, headers={"Authorization": f"Bearer {dev.token}"}, **kwargs
        )
    except httpx.HTTPError as exc:
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000)
        tally.error(type(exc).__name__)
        return None
    ms = (time.perf_counter() - t0) * 1000
    tally.latencies_ms.append(ms)
    if method == "POST":
        tally.push_ms.append(ms)
    if not r.is_success:
        tally.error(f"http_{r.status_code}")
        return None
    doc: dict[str, Any] = r.json()
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(
    url: str, ca_file: Path, server_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    ctx = tls_context(ca_file, None)
    accounts = -(-args.devices // args.per_account)
    log(f"signing up {accounts} accounts, {args.devices} devices")
    sem = asyncio.Semaphore(16)

    async def one(n: int) -> list[SimDevice]:
        async with sem:
            return await _account(url, ctx, n, args.per_account, args.seed)

    groups = await asyncio.gather(*(one(n) for n in range(accounts)))
    devices = [d for g in groups for d in g][: args.devices]
    tally = Tally()
    log(f"{len(devices)} devices syncing for {args.seconds} s (think {args.think_s} s)")
    load_before = os.getloadavg()[0]
    t0, server_cpu0, own_cpu0 = time.perf_counter(), _cpu_s(server_pid), time.process_time()
    until = t0 + args.seconds
    await asyncio.gather(*(_device_loop(d, tally, until, args.think_s) for d in devices))
    elapsed = time.perf_counter() - t0
    server_cpu = _cpu_s(server_pid) - server_cpu0
    own_cpu = time.process_time() - own_cpu0
    for group in groups:
        for d in group:
            await d.http.aclose()
    lat = tally.latencies_ms or [0.0]
    push = tally.push_ms or [0.0]
    return {
        "devices": len(devices),
        "accounts": accounts,
        "seconds": round(elapsed, 1),
        "requests": len(tally.latencies_ms),
        "errors": tally.errors,
        "error_kinds": tally.error_kinds,
        "requests_per_s": round(len(tally.latencies_ms) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1),
        "push_p50_ms": round(percentile(push, 50), 1),
        "push_p99_ms": round(percentile(push, 99), 1),
        "items_per_s": round(tally.pushed / elapsed, 1),
        "pushed_items": tally.pushed,
        "pulled_items": tally.pulled,
        "batch_sizes": tally.batch_sizes,
        "account_id": devices[0].account_id,
        # where the time goes: CPU per request in the server process and in this one
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, len(lat)), 2),
        "server_cpu_busy": round(server_cpu / elapsed, 2),
        # the machine's 1-minute load average before and after (others' work shows here)
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "loadgen_cpu_ms_per_request": round(own_cpu * 1000 / max(1, len(lat)), 2),
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
    with _server(workdir, db_url) as srv:
        result = asyncio.run(_drive(srv.url, srv.ca_file, srv.process.pid, args))
    sizes = result.pop("batch_sizes")[:2000]
    log("raw inserts")
    raw_ms = _raw_batches(db_url, result.pop("account_id"), sizes or [1], args.seed)
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
