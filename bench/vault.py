"""The vault benchmark: ``python -m bench.vault --notes N [--json] [--searches K]``.

Measures, in one run at one vault size N:

- ``kdf_ms``: Argon2id alone with production parameters (calibrated here as a new vault
  would be, or the production floor with ``--kdf floor``), and ``unlock_ms``:
  ``VaultService.unlock`` on a real N-note vault created with those same parameters.
  ``unlock_overhead_ms`` is unlock minus the Argon2id call inside that same unlock (timed
  by wrapping ``crypto.argon2id`` for the measurement), median over the runs.
- note create, list page (first and last page of 50 of a client's notes), open (get by
  id) and full-text search, through the public ``VaultService`` API, vs raw sqlcipher3
  and vs stdlib sqlite3 executing the same SQL statements as app/vault/store.py on a
  database with the same schema (schema.MIGRATIONS), the same pragmas
  (``cipher_memory_security`` as ``TACIT_MEMORY_SECURITY`` asks, the raw key pragma,
  db.CONNECTION_PRAGMAS; sqlite3 without the cipher ones) and the same rows.
  ``<op>_ratio_vs_raw`` = service / raw sqlcipher3.
- search p50/p95 over a search-as-you-type query mix.

Setup bulk-loads identical rows, in identical order, into the vault's database and the
sqlite3 one with the store's INSERT statements, in transactions of 5,000 notes (100k
single-note commits with synchronous=FULL would take an hour of fsyncs), in a child
process (see ``populate``); the raw sqlcipher3 database is then a byte-for-byte copy of
the vault's, opened with the same key. Only the timed operations go through the
service, and they all run in this process, each contender on its own connection.
Progress goes to stderr; with ``--json`` stdout holds exactly one JSON document.
docs/BENCHMARKS.md has the method and the figures.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlcipher3.dbapi2 as sqlcipher

from app.vault import crypto, store
from app.vault.crypto import DbKey, KdfParams, Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import DEFAULT_CLINICIAN, VaultService
from app.vault.templates import load_templates
from bench.common import (
    CLIENT_COLS,
    INSERT_CLIENT,
    INSERT_NOTE,
    NOTE_COLS,
    PAGE,
    SEARCH_LIMIT,
    Corpus,
    LayeredBackend,
    NoteTemplate,
    RawBackend,
    apply_schema,
    as_row,
    bulk_load,
    interleave,
    log,
    machine_info,
    median,
    open_sqlcipher,
    open_sqlite3,
    percentile,
)

PASSPHRASE = "benchmark vault: correct horse battery staple, 2026"
WARMUP_QUERIES = 40
OPS = ("create", "list_page", "list_deep", "open", "search")
GOAL_UNLOCK_OVERHEAD_MS = 30.0
GOAL_RATIO_VS_RAW = 1.3
GOAL_SEARCH_P95_MS = 15.0
GOAL_SEARCH_AT_NOTES = 100_000


# -- phases ------------------------------------------------------------------------------
def kdf_params_for(mode: str) -> KdfParams:
    if mode == "floor":
        return crypto.PRODUCTION_FLOOR
    return crypto.calibrate_kdf()


def measure_unlock(
    service: VaultService, passphrase: Passphrase, params: KdfParams, runs: int
) -> dict[str, float]:
    """Argon2id alone and the full unlock, alternating. The Argon2id call inside each
    unlock is timed by temporarily wrapping crypto.argon2id (keyslots calls it through
    the module), so overhead = unlock - that call, measured on the same run."""
    real = crypto.argon2id
    inner: list[float] = []

    def timed_argon2id(*args: Any, **kwargs: Any) -> crypto.SymmetricKey:
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            inner.append(time.perf_counter() - start)

    kdf: list[float] = []
    unlock: list[float] = []
    salt = crypto.random_bytes(crypto.SALT_BYTES)
    for i in range(runs):
        service.lock()
        for step in ("kdf", "unlock") if i % 2 == 0 else ("unlock", "kdf"):
            if step == "kdf":
                start = time.perf_counter()
                real(passphrase, salt, params).wipe()
                kdf.append(time.perf_counter() - start)
                continue
            crypto.argon2id = timed_argon2id  # type: ignore[assignment]
            try:
                start = time.perf_counter()
                service.unlock(passphrase)
                unlock.append(time.perf_counter() - start)
            finally:
                crypto.argon2id = real  # type: ignore[assignment]
        log(f"  unlock run {i + 1}/{runs}: kdf {kdf[-1] * 1e3:.0f} ms, "
            f"unlock {unlock[-1] * 1e3:.0f} ms")  # fmt: skip
    overhead = [u - k for u, k in zip(unlock, inner, strict=True)]
    return {
        "kdf_ms": median(kdf) * 1e3,
        "unlock_ms": median(unlock) * 1e3,
        "unlock_overhead_ms": median(overhead) * 1e3,
        "unlock_overhead_max_ms": max(overhead) * 1e3,
        "unlock_minus_kdf_ms": (median(unlock) - median(kdf)) * 1e3,
        "unlock_runs": runs,
    }


def summarise(result: dict[str, Any], op: str, times: dict[str, list[int]], *, reps: int) -> None:
    svc, raw, lite = (median(times[k]) / 1e3 for k in ("service", "raw", "sqlite3"))
    result[f"{op}_us"] = round(svc, 1)
    result[f"{op}_raw_us"] = round(raw, 1)
    result[f"{op}_sqlite3_us"] = round(lite, 1)
    result[f"{op}_ratio_vs_raw"] = round(svc / raw, 3)
    result[f"{op}_ratio_vs_sqlite3"] = round(svc / lite, 3)
    result[f"{op}_reps"] = reps
    if len(times) > 3:  # the attribution contenders ran too
        order = ("raw", "raw+resolve_id", "raw+resolve_id+records", "service_no_audit", "service")
        result[f"{op}_breakdown_us"] = {
            k: round(median(times[k]) / 1e3, 1) for k in order if k in times
        }


def measure_ops(
    service: VaultService,
    raw: RawBackend,
    lite: RawBackend,
    open_raw: Callable[[], Any],
    extra_conns: list[Any],
    corpus: Corpus,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Lists, open, search, then create (last: it changes the data)."""
    rng = random.Random(corpus.seed + 3)
    result: dict[str, Any] = {}
    # Every contender reads through its own connection (the attribution ones through
    # their own connections to the raw copy), so each page cache sees the same sequence
    # of reads and none is warmed by another contender reading the same rows first.
    resolved = LayeredBackend(open_raw(), records=False)
    records = LayeredBackend(open_raw(), records=True)
    extra_conns.extend((resolved.conn, records.conn))
    clients = measure_lists(result, service, raw, lite, resolved, records, corpus, rng, args)
    measure_open(result, service, raw, lite, resolved, records, corpus, rng, args)
    measure_search(result, service, raw, lite, corpus, args)
    measure_create(result, service, raw, lite, corpus, clients, args)
    measure_audit(result, service, corpus, clients, args)
    return result


def measure_lists(
    result: dict[str, Any], service: VaultService, raw: RawBackend, lite: RawBackend,
    resolved: LayeredBackend, records: LayeredBackend, corpus: Corpus, rng: random.Random,
    args: argparse.Namespace,
) -> list[str]:  # fmt: skip
    """First and last page of 16 clients with long histories. Returns those clients."""

    # -- list pages: clients with long histories, first page and last page -------------
    long = sorted(c for c, n in corpus.note_counts.items() if n >= 2 * PAGE)
    if not long:
        long = sorted(corpus.note_counts, key=lambda c: -corpus.note_counts[c])[:4]
    clients = rng.sample(long, min(16, len(long)))
    deep = [max(0, corpus.note_counts[c] - PAGE) for c in clients]
    result["list_clients"] = len(clients)
    result["list_deep_mean_offset"] = round(sum(deep) / len(deep))

    def pick(i: int) -> str:
        return clients[i % len(clients)]

    for op, offset_of in (("list_page", lambda i: 0), ("list_deep", lambda i: deep[i % len(deep)])):
        log(f"{op}: {args.list_reps} reps x 3 backends (+2 for the breakdown)")
        times = interleave(
            {
                "service": lambda i, o=offset_of: service.list_notes(
                    pick(i), limit=PAGE, offset=o(i)
                ),
                "raw": lambda i, o=offset_of: raw.list_page(pick(i), o(i)),
                "sqlite3": lambda i, o=offset_of: lite.list_page(pick(i), o(i)),
                "raw+resolve_id": lambda i, o=offset_of: resolved.list_page(pick(i), o(i)),
                "raw+resolve_id+records": lambda i, o=offset_of: records.list_page(pick(i), o(i)),
            },
            args.list_reps,
            warmup=min(100, args.list_reps),
        )
        summarise(result, op, times, reps=args.list_reps)
    return clients


def measure_open(
    result: dict[str, Any], service: VaultService, raw: RawBackend, lite: RawBackend,
    resolved: LayeredBackend, records: LayeredBackend, corpus: Corpus, rng: random.Random,
    args: argparse.Namespace,
) -> None:  # fmt: skip
    ids = rng.sample(corpus.note_ids, min(len(corpus.note_ids), args.open_reps))
    log(f"open: {args.open_reps} reps x 3 backends (+ the breakdown)")
    contenders: dict[str, Callable[[int], object]] = {
        # The call the app makes when the user opens a note: the API's defaults (which,
        # where views are audited, include writing the audit entry).
        "service": lambda i: service.get_note(ids[i % len(ids)]),
        "raw": lambda i: raw.open(ids[i % len(ids)]),
        "sqlite3": lambda i: lite.open(ids[i % len(ids)]),
        "raw+resolve_id": lambda i: resolved.open(ids[i % len(ids)]),
        "raw+resolve_id+records": lambda i: records.open(ids[i % len(ids)]),
    }
    if "record_view" in inspect.signature(service.get_note).parameters:
        # Shares the service's connection, so it reads other notes than "service" does in
        # the same repetition (half the list away), never pages "service" just decrypted.
        result["open_records_view"] = True
        half = len(ids) // 2
        contenders["service_no_audit"] = lambda i: service.get_note(
            ids[(i + half) % len(ids)], record_view=False
        )
    times = interleave(contenders, args.open_reps, warmup=min(100, args.open_reps))
    summarise(result, "open", times, reps=args.open_reps)


def measure_search(
    result: dict[str, Any], service: VaultService, raw: RawBackend, lite: RawBackend,
    corpus: Corpus, args: argparse.Namespace,
) -> None:  # fmt: skip
    """The typed query mix: per-query medians over the rounds, then p50/p95 across it."""
    queries = corpus.query_mix(args.searches)
    matches = [store.fts_query(q, prefix_last=True) or "" for q in queries]
    k = len(queries)
    searchers: dict[str, Callable[[int], object]] = {
        "service": lambda i: service.search(queries[i % k], limit=SEARCH_LIMIT),
        "raw": lambda i: raw.search(matches[i % k]),
        "sqlite3": lambda i: lite.search(matches[i % k]),
    }
    # Untimed warm-up over a slice of the mix; its duration sets the number of timed rounds
    # (every query is timed at least once, so large vaults take one round).
    warm = min(k, WARMUP_QUERIES)
    log(f"search: warm-up over {warm} queries x 3 backends")
    tick = time.perf_counter()
    interleave(searchers, warm)
    pass_s = (time.perf_counter() - tick) * k / warm
    rounds = max(1, min(args.search_rounds, int(args.search_budget_s / pass_s)))
    log(f"search: {k} queries x {rounds} timed rounds x 3 backends (~{pass_s:.0f} s a round)")
    times = interleave(searchers, k * rounds)
    per_query = {
        name: [median(t[q::k]) / 1e6 for q in range(k)]  # ms, median over the rounds
        for name, t in times.items()
    }
    svc, rawq, liteq = per_query["service"], per_query["raw"], per_query["sqlite3"]
    result["search_us"] = round(sum(svc) / k * 1e3, 1)
    result["search_raw_us"] = round(sum(rawq) / k * 1e3, 1)
    result["search_sqlite3_us"] = round(sum(liteq) / k * 1e3, 1)
    result["search_ratio_vs_raw"] = round(sum(svc) / sum(rawq), 3)
    result["search_ratio_vs_sqlite3"] = round(sum(svc) / sum(liteq), 3)
    result["search_median_ratio_vs_raw"] = round(
        median([s / r for s, r in zip(svc, rawq, strict=True)]), 3
    )
    result["search_p50_ms"] = round(percentile(svc, 50), 2)
    result["search_p95_ms"] = round(percentile(svc, 95), 2)
    result["search_max_ms"] = round(max(svc), 2)
    result["search_raw_p50_ms"] = round(percentile(rawq, 50), 2)
    result["search_raw_p95_ms"] = round(percentile(rawq, 95), 2)
    result["search_sqlite3_p95_ms"] = round(percentile(liteq, 95), 2)
    result["search_queries"] = k
    result["search_rounds"] = rounds
    slowest = sorted(range(k), key=lambda q: -svc[q])[:5]
    result["search_slowest"] = [{"query": queries[q], "ms": round(svc[q], 1)} for q in slowest]


def measure_create(
    result: dict[str, Any], service: VaultService, raw: RawBackend, lite: RawBackend,
    corpus: Corpus, clients: list[str], args: argparse.Namespace,
) -> None:  # fmt: skip
    """One note per transaction, committed with synchronous=FULL, on all three."""
    # Views opened above may be audited lazily (deferred entries written with the next
    # change); write them now, untimed, so the first timed create does not carry them.
    flush = getattr(service, "flush_audit", None)
    if callable(flush):
        flush()
    new_rows = corpus.fresh(args.creates + 10, clients)
    author = DEFAULT_CLINICIAN
    log(f"create: {args.creates} reps x 3 backends (one fsync'd transaction each)")

    def service_create(i: int) -> None:
        n = new_rows[i]
        service.create_note(n.client_id, n.template, kind=n.kind, title=n.title, body=n.body,
                            session_date=n.session_date)  # fmt: skip

    def raw_create(backend: RawBackend) -> Callable[[int], None]:
        # Ids are made outside the timed call: the baseline does strictly less work.
        rows = [as_row(NOTE_COLS, n.values(author) | {"id": str(uuid.uuid4())}) for n in new_rows]
        return lambda i: backend.create(rows[i])

    times = interleave(
        {"service": service_create, "raw": raw_create(raw), "sqlite3": raw_create(lite)},
        args.creates,
        warmup=0,
    )
    summarise(result, "create", times, reps=args.creates)


def measure_audit(
    result: dict[str, Any], service: VaultService, corpus: Corpus, clients: list[str],
    args: argparse.Namespace,
) -> None:  # fmt: skip
    """Issue 4's costs: what the audit entry adds to a create and an edit (the same
    RecordStore with and without its AuditLog, alternating, same connection), and how
    long `audit verify` takes over 100,000 entries."""
    audited = service._store  # bench only: the service's own store, with its audit log
    db = service._db
    if audited is None or db is None:
        raise RuntimeError("the vault is not unlocked")
    bare = store.RecordStore(db, service._now, lambda: DEFAULT_CLINICIAN, None)
    service.flush_audit()
    rows = corpus.fresh(2 * args.creates + 10, clients)
    made: dict[str, list[str]] = {"audited": [], "bare": []}
    log(f"audit: {args.creates} creates and edits, with and without the audit entry")

    def creator(name: str, target: store.RecordStore) -> Callable[[int], None]:
        def run(i: int) -> None:
            n = rows[2 * i + (name == "bare")]
            note = target.create_note(
                n.client_id, kind=n.kind, template=n.template, title=n.title, body=n.body,
                session_date=n.session_date,
            )  # fmt: skip
            made[name].append(note.id)

        return run

    def editor(name: str, target: store.RecordStore) -> Callable[[int], None]:
        return lambda i: target.edit_note(made[name][i], body=f"edited {i} " + rows[i].body)

    pair = {"audited": audited, "bare": bare}
    created = interleave({k: creator(k, v) for k, v in pair.items()}, args.creates, warmup=0)
    edited = interleave({k: editor(k, v) for k, v in pair.items()}, args.creates, warmup=0)
    for op, times in (("create", created), ("edit", edited)):
        with_audit, without = median(times["audited"]), median(times["bare"])
        result[f"audit_{op}_us"] = round(with_audit / 1e3, 1)
        result[f"audit_{op}_bare_us"] = round(without / 1e3, 1)
        result[f"audit_{op}_overhead"] = round(with_audit / without - 1.0, 3)
    result["audit_verify_100k_s"] = _audit_verify_100k()


def _audit_verify_100k(entries: int = 100_000) -> float:
    """A throwaway vault (tiny KDF: setup only) with 100,000 audit entries; the median of
    three full `verify_audit` walks."""
    import os

    os.environ[crypto.INSECURE_TEST_KDF_ENV] = "1"
    try:
        with tempfile.TemporaryDirectory(prefix="tacit-bench-audit-") as tmp:
            svc = VaultService(Path(tmp) / "v", keychain=MemoryKeychain())
            svc.create(Passphrase.from_str("bench vault for audit verify only"),
                       kdf_params=crypto.INSECURE_TEST_PARAMS)  # fmt: skip
            log(f"audit verify: writing {entries:,} entries")
            db, audit = svc._db, svc._audit
            if db is None or audit is None:
                raise RuntimeError("the vault is not unlocked")
            with db.transaction() as conn:
                for i in range(entries):
                    audit.append(conn, "view", "note", f"note-{i % 5000}", "client")
            walks = []
            for _ in range(3):
                start = time.perf_counter()
                verdict = svc.verify_audit()
                walks.append(time.perf_counter() - start)
                if not verdict.ok or verdict.entries < entries:
                    raise RuntimeError("the audit chain did not verify")
            svc.lock(record=False)
            return round(median(walks), 3)
    finally:
        os.environ.pop(crypto.INSECURE_TEST_KDF_ENV, None)


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {
        "unlock_overhead_ms": {
            "goal": f"<= {GOAL_UNLOCK_OVERHEAD_MS:g}",
            "value": result["unlock_overhead_ms"],
            "met": result["unlock_overhead_ms"] <= GOAL_UNLOCK_OVERHEAD_MS,
        }
    }
    for op in OPS:
        value = result[f"{op}_ratio_vs_raw"]
        out[f"{op}_ratio_vs_raw"] = {
            "goal": f"<= {GOAL_RATIO_VS_RAW:g}",
            "value": value,
            "met": value <= GOAL_RATIO_VS_RAW,
        }
    out["search_p95_ms"] = {
        "goal": f"<= {GOAL_SEARCH_P95_MS:g} at {GOAL_SEARCH_AT_NOTES:,} notes",
        "value": result["search_p95_ms"],
        "met": result["search_p95_ms"] <= GOAL_SEARCH_P95_MS,
        "applies": result["notes"] >= GOAL_SEARCH_AT_NOTES,
    }
    for op in ("create", "edit"):
        value = result[f"audit_{op}_overhead"]
        out[f"audit_{op}_overhead"] = {"goal": "<= 0.15", "value": value, "met": value <= 0.15}
    out["audit_verify_100k_s"] = {
        "goal": "<= 2",
        "value": result["audit_verify_100k_s"],
        "met": result["audit_verify_100k_s"] <= 2.0,
    }
    return out


# -- driver ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.vault",
        description="The Tacit vault benchmark (method and figures: docs/BENCHMARKS.md).",
    )
    p.add_argument("--notes", type=int, default=10_000, help="vault size N (default 10000)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--searches", type=int, default=200, help="queries in the mix (200)")
    p.add_argument("--search-rounds", type=int, default=3, help="timed passes per query (3)")
    p.add_argument(
        "--search-budget-s",
        type=float,
        default=120.0,
        help="fewer rounds (at least 1) when the timed passes would take longer (120)",
    )
    p.add_argument("--creates", type=int, default=200, help="timed creates per backend (200)")
    p.add_argument("--open-reps", type=int, default=3000, help="timed opens per backend (3000)")
    p.add_argument(
        "--list-reps", type=int, default=1500, help="timed list pages per backend (1500)"
    )
    p.add_argument("--unlocks", type=int, default=5, help="unlock runs (5)")
    p.add_argument(
        "--kdf",
        choices=("calibrated", "floor"),
        default="calibrated",
        help="production params: calibrated to ~1 s as at creation, or the floor",
    )
    p.add_argument("--seed", type=int, default=20260105)
    p.add_argument("--dir", type=Path, default=None, help="where the databases go (a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.notes < 100:
        p.error("--notes must be at least 100")
    return args


def templates() -> list[NoteTemplate]:
    return [NoteTemplate(t.id, t.name, t.kind, t.sections) for t in load_templates()]


@dataclass(frozen=True)
class PopulateJob:
    notes: int
    seed: int
    vault_db: Path
    vault_key_hex: str  # a throwaway benchmark vault's key, handed over a private pipe
    raw_db: Path
    sqlite3_db: Path


@dataclass(frozen=True)
class Populated:
    note_ids: list[str]
    note_counts: dict[str, int]
    samples: list[str]
    generate_s: float
    load_s: dict[str, float]


def populate(job: PopulateJob) -> Populated:
    """Setup, in a child process: the same clients and notes, in the same order, into the
    vault's database and the sqlite3 one (each loaded by its own thread, in order, while
    the next chunk is generated); then the raw sqlcipher3 baseline becomes a byte-for-byte
    copy of the vault's database, opened with the same key, so the service and the raw
    engine read identical pages.

    Why a child: ``cipher_memory_security`` is process-wide in SQLCipher and cannot be
    turned off once on (with ``TACIT_MEMORY_SECURITY=on`` the service turns it on), and
    it makes bulk loading ~8x slower. It changes nothing on disk; every timed operation
    later runs in the parent with the setting the app would use."""
    corpus = Corpus(job.notes, templates(), seed=job.seed)
    key = DbKey(bytes.fromhex(job.vault_key_hex))
    conns = {
        "service": open_sqlcipher(job.vault_db, key, memory_security=False),
        "sqlite3": open_sqlite3(job.sqlite3_db),
    }
    apply_schema(conns["sqlite3"])
    load = dict.fromkeys(conns, 0.0)
    clients = [as_row(CLIENT_COLS, c.values()) for c in corpus.clients]
    for name, conn in conns.items():
        load[name] += bulk_load(conn, INSERT_CLIENT, clients)
    # One single-thread loader per database keeps each database's insertion order (and
    # so its rowids) identical; sqlite releases the GIL while it works.
    loaders = {name: ThreadPoolExecutor(max_workers=1) for name in conns}
    pending: list[list[Future[float]]] = []
    gen_s = 0.0
    tick = time.perf_counter()
    for batch in corpus.generate():
        gen_s += time.perf_counter() - tick
        rows = [as_row(NOTE_COLS, n.values(DEFAULT_CLINICIAN)) for n in batch]
        pending.append(
            [
                loaders[name].submit(bulk_load, conn, INSERT_NOTE, rows)
                for name, conn in conns.items()
            ]
        )
        if len(pending) > 2:  # bound the memory held by queued chunks
            for name, done in zip(conns, pending.pop(0), strict=True):
                load[name] += done.result()
        log(f"  {len(corpus.note_ids):,} notes generated")
        tick = time.perf_counter()
    for futures in pending:
        for name, done in zip(conns, futures, strict=True):
            load[name] += done.result()
    for loader in loaders.values():
        loader.shutdown()
    for conn in conns.values():
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    shutil.copyfile(job.vault_db, job.raw_db)
    return Populated(corpus.note_ids, corpus.note_counts, corpus.samples, gen_s, load)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    if crypto.insecure_test_kdf_enabled():
        log("note: TACIT_INSECURE_TEST_KDF=1 is set; production params are still used here")
    result: dict[str, Any] = {"notes": args.notes, "seed": args.seed}
    result["machine"] = machine_info()
    result["versions"] = {
        "sqlcipher3_sqlite": sqlcipher.sqlite_version,
        "sqlite3_stdlib": sqlite3.sqlite_version,
    }

    log(f"KDF: {args.kdf} production parameters")
    params = kdf_params_for(args.kdf)
    result["kdf_params"] = {k: v for k, v in params.to_dict().items() if k != "version"}
    result["kdf_source"] = args.kdf
    result["keychain"] = "MemoryKeychain (device secret bound, as with an OS keychain)"

    passphrase = Passphrase.from_str(PASSPHRASE)
    service = VaultService(workdir / "vault", keychain=MemoryKeychain())
    service.create(passphrase, kdf_params=params)
    # Setup only: the vault's DB key, so the child process can bulk-load the same rows
    # into the vault's database with the store's INSERT statements. Every timed
    # operation below goes through the public service API.
    if service._db_key is None:
        raise RuntimeError("the vault did not stay unlocked after create")
    raw_key = DbKey(service._db_key.reveal())  # the raw baseline is a copy of the vault DB
    job = PopulateJob(
        notes=args.notes,
        seed=args.seed,
        vault_db=service.paths.database,
        vault_key_hex=service._db_key.hex(),
        raw_db=workdir / "raw-sqlcipher.db",
        sqlite3_db=workdir / "plain-sqlite3.db",
    )
    service.lock()
    corpus = Corpus(args.notes, templates(), seed=args.seed)
    log(f"populating {args.notes:,} notes for {len(corpus.clients):,} clients in 3 databases")
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        populated = pool.submit(populate, job).result()
    corpus.note_ids = populated.note_ids
    corpus.note_counts = populated.note_counts
    corpus.samples = populated.samples
    result["setup"] = {
        "generate_s": round(populated.generate_s, 1),
        "bulk_load_s": {k: round(v, 1) for k, v in populated.load_s.items()},
        "db_mib": {
            name: round(path.stat().st_size / 2**20, 1)
            for name, path in (
                ("service", job.vault_db),
                ("raw", job.raw_db),
                ("sqlite3", job.sqlite3_db),
            )
        },
    }
    result["clients"] = len(corpus.clients)

    log(f"unlock: {args.unlocks} runs (Argon2id m={params.memory_kib} KiB "
        f"t={params.iterations} p={params.parallelism})")  # fmt: skip
    result.update({k: round(v, 1) for k, v in measure_unlock(
        service, passphrase, params, args.unlocks).items()})  # fmt: skip

    # Fresh connections for the baselines, as the service has after its unlock.
    raw = RawBackend(open_sqlcipher(job.raw_db, raw_key))
    lite = RawBackend(open_sqlite3(job.sqlite3_db))
    result["versions"]["cipher"] = raw.conn.execute("PRAGMA cipher_version").fetchone()[0]
    # Process-wide in SQLCipher: on for the service's connection and the raw baseline alike.
    memsec = raw.conn.execute("PRAGMA cipher_memory_security").fetchone()[0]
    result["cipher_memory_security"] = str(memsec) == "1"
    extra: list[Any] = []
    try:
        result.update(
            measure_ops(
                service, raw, lite, lambda: open_sqlcipher(job.raw_db, raw_key), extra, corpus, args
            )
        )
    finally:
        for conn in (raw.conn, lite.conn, *extra):
            conn.close()
        service.lock()
        raw_key.wipe()
    result["goals"] = goals(result)
    result["total_s"] = round(time.perf_counter() - started, 1)
    return result


def render(result: dict[str, Any]) -> str:
    g = result["goals"]
    kp = result["kdf_params"]
    lines = [
        f"Tacit vault benchmark: {result['notes']:,} notes, {result['clients']:,} clients "
        f"({result['machine']['nproc']} x {result['machine']['cpu']})",
        f"Argon2id m={kp['memory_kib']} KiB t={kp['iterations']} p={kp['parallelism']} "
        f"({result['kdf_source']}); keychain: {result['keychain']}",
        "",
        f"  kdf_ms {result['kdf_ms']:.1f}   unlock_ms {result['unlock_ms']:.1f}   "
        f"unlock_overhead_ms {result['unlock_overhead_ms']:.1f} "
        f"(goal <= {GOAL_UNLOCK_OVERHEAD_MS:g}: {_mark(g['unlock_overhead_ms']['met'])})",
        "",
        f"  {'op':<10} {'service':>11} {'sqlcipher3':>11} {'sqlite3':>11} "
        f"{'vs raw':>7} {'vs sqlite3':>10}  goal vs raw <= {GOAL_RATIO_VS_RAW:g}",
    ]
    for op in OPS:
        lines.append(
            f"  {op:<10} {_us(result[f'{op}_us']):>11} {_us(result[f'{op}_raw_us']):>11} "
            f"{_us(result[f'{op}_sqlite3_us']):>11} {result[f'{op}_ratio_vs_raw']:>7.2f} "
            f"{result[f'{op}_ratio_vs_sqlite3']:>10.2f}  "
            f"{_mark(g[f'{op}_ratio_vs_raw']['met'])}"
        )
    lines.append("")
    lines.append("  where the time goes (us):")
    for op in OPS:
        b = result.get(f"{op}_breakdown_us")
        if b:
            lines.append(f"  {op:<10} " + " -> ".join(f"{k} {v:.0f}" for k, v in b.items()))
    sp = g["search_p95_ms"]
    lines += [
        "",
        f"  search over {result['search_queries']} typed queries: "
        f"p50 {result['search_p50_ms']:.2f} ms, p95 {result['search_p95_ms']:.2f} ms, "
        f"max {result['search_max_ms']:.1f} ms (raw sqlcipher3 p95 "
        f"{result['search_raw_p95_ms']:.2f} ms); goal p95 <= {GOAL_SEARCH_P95_MS:g} ms at "
        f"{GOAL_SEARCH_AT_NOTES:,} notes: {_mark(sp['met'])}"
        + ("" if sp["applies"] else " (goal applies at 100k)"),
        "  (create/list/open: medians; search: mean per query over the mix, per-query "
        "medians of the rounds)",
        f"  total {result['total_s']:.0f} s",
    ]
    return "\n".join(lines)


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} us"


def _mark(met: bool) -> str:
    return "met" if met else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = args.dir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="tacit-bench-", dir=base))
    try:
        result = run(args, workdir)
    finally:
        if args.keep:
            log(f"databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    document = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(document + "\n", encoding="utf-8")
    print(document if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
