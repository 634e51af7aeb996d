"""Entry points: ``run`` (serve the API with uvicorn), ``migrate`` and the argument
parser behind ``python -m app.sync.server``. The ``tacit server …`` CLI calls ``run`` and
``migrate`` directly.

Invariants:
- ``run`` refuses to listen on a non-loopback address without TLS unless explicitly told
  the connection is protected elsewhere (``allow_insecure``, e.g. behind a TLS proxy);
- it binds the socket itself before printing ``listening on URL``, so the printed URL is
  real (``--port 0`` picks a free port) and the default origin matches it;
- it migrates the schema before serving (idempotent, safe with several processes);
- with ``workers > 1`` it forks nothing itself: uvicorn's supervisor spawns the workers,
  hands each the one listening socket, restarts a worker that dies and stops them all on
  SIGINT/SIGTERM; each worker builds its own app and database pool (the database is the
  only state the workers share: sessions, rate limits, lockouts and device orders all
  live there, so any worker can answer any request);
- nothing printed or logged includes a database password, a token or a body; uvicorn's
  access log is off (request lines carry usernames in /v1/auth/params and item ids).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import ipaddress
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app.sync import protocol
from app.sync.server.db import StorageError, open_database
from app.sync.server.migrations import migrate as migrate_schema
from app.sync.server.settings import (
    INSECURE_TEST_KDF_ENV,
    Settings,
    default_db_url,
    default_kdf_floor,
)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STORAGE = 8  # as app.errors.StorageError
KEEP_ALIVE_S = 75  # idle keep-alive connections are closed after this (uvicorn: 5)
MAX_WORKERS = 64
LOG_FORMAT = "%(asctime)s %(name)s %(message)s"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def migrate(db_url: str | None) -> int:
    """Bring the database schema up to date. Prints what it did; returns an exit status."""
    url = db_url or default_db_url()
    try:
        db = open_database(url)
    except ValueError as exc:
        print(f"tacit server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        applied = migrate_schema(db, now_ms=_now_ms())
    except StorageError:
        print(f"tacit server: cannot migrate {db.describe()}", file=sys.stderr)
        return EXIT_STORAGE
    except RuntimeError as exc:  # a schema newer than this server knows
        print(f"tacit server: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        db.close()
    if applied:
        print(f"migrated {db.describe()} to schema version {applied[-1]}")
    else:
        print(f"{db.describe()} is up to date")
    return EXIT_OK


def run(
    db_url: str | None,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    origin: str | None,
    *,
    allow_insecure: bool = False,
    workers: int = 1,
) -> int:
    """Serve the sync API until interrupted, in ``workers`` processes. Returns an exit
    status (2 for bad arguments or a refused insecure setup, 8 when the database cannot be
    prepared, or a TLS certificate and key that do not load); workers that cannot start
    end the run with exit 3, as uvicorn does."""
    from app.sync.server.asgi import create_app

    if not 1 <= workers <= MAX_WORKERS:
        print(f"tacit server: --workers must be 1 to {MAX_WORKERS}", file=sys.stderr)
        return EXIT_USAGE
    if (tls_cert is None) != (tls_key is None):
        print("tacit server: give both --tls-cert and --tls-key, or neither", file=sys.stderr)
        return EXIT_USAGE
    tls = tls_cert is not None
    if not tls and not _is_loopback(host) and not allow_insecure:
        print(
            f"tacit server: refusing to serve plain HTTP on {host}, which is not a loopback "
            "address; give --tls-cert/--tls-key, or --insecure if a TLS proxy protects it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if tls_cert is not None and tls_key is not None and not _tls_loads(tls_cert, tls_key):
        print(
            "tacit server: cannot load the TLS certificate and key (missing, unreadable, "
            "not PEM, not a pair, or the key is encrypted)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    url = db_url or default_db_url()
    try:
        db = open_database(url)
    except ValueError as exc:
        print(f"tacit server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        migrate_schema(db, now_ms=_now_ms())
    except StorageError:
        db.close()
        print(f"tacit server: cannot prepare {db.describe()}", file=sys.stderr)
        return EXIT_STORAGE
    except RuntimeError as exc:  # a schema newer than this server knows
        db.close()
        print(f"tacit server: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    try:
        sock = _bind(host, port)
    except OSError as exc:
        db.close()
        print(f"tacit server: cannot listen on {host}:{port} ({exc.strerror})", file=sys.stderr)
        return EXIT_USAGE
    scheme = "https" if tls else "http"
    listen_url = f"{scheme}://{_url_host(host)}:{sock.getsockname()[1]}"
    try:
        settings = Settings(db_url=url, origin=protocol.canonical_origin(origin or listen_url))
    except ValueError as exc:
        db.close()
        sock.close()
        print(f"tacit server: bad origin: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if workers > 1:
        db.close()  # each worker opens its own pool
    if os.environ.get(INSECURE_TEST_KDF_ENV) == "1":
        print(
            f"tacit server: WARNING {INSECURE_TEST_KDF_ENV}=1: accepting weak KDF parameters "
            f"(floor {default_kdf_floor()}); never do this in production",
            file=sys.stderr,
        )
    processes = f"; {workers} workers" if workers > 1 else ""
    print(
        f"tacit server listening on {listen_url} "
        f"(origin {settings.origin}; {db.describe()}{processes})",
        flush=True,
    )
    config = uvicorn.Config(
        create_app(settings, db=db) if workers == 1 else _worker_app_factory(settings),
        factory=workers > 1,
        workers=workers,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        log_level="warning",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        # uvicorn's default (5 s) closes a kept connection just when the app syncs again
        # "a few seconds after a change", and a request sent as the close crosses it
        # fails (RemoteProtocolError: offline) - docs/RELIABILITY.md, "Bugs found".
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    if workers == 1:
        _Server(config).run(sockets=[sock])
        return EXIT_OK
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)
    return EXIT_OK


def _worker_app_factory(settings: Settings) -> Callable[[], Any]:
    """What a worker process calls to build its app. A picklable partial (the supervisor
    hands it to each spawned worker through a pipe, never through the environment or the
    command line): only the two settings the command line sets travel; the rest are the
    defaults, as in the supervisor."""
    return functools.partial(_worker_app, settings.db_url, settings.origin)


def _worker_app(db_url: str, origin: str) -> Any:
    from app.sync.server.asgi import create_app

    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    return create_app(Settings(db_url=db_url, origin=origin))


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has shut down gracefully (so
    the process dies of it, and SIGINT becomes a KeyboardInterrupt). A stop on SIGINT or
    SIGTERM is the normal end of ``run``: report it as a clean return instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()


def _tls_loads(cert: Path, key: Path) -> bool:
    """Whether the certificate and key load as uvicorn will load them, checked once before
    serving: a bad pair otherwise ends in a traceback, or, with several workers, in
    workers that fail and are restarted for ever. An encrypted key is refused rather
    than prompting for its passphrase on the terminal."""

    def no_passphrase() -> bytes:
        raise ValueError("encrypted key")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=no_passphrase)
    except (OSError, ssl.SSLError, ValueError):
        return False
    return True


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for a
    # listening socket whose proto says TCP; without it each response waits ~40 ms for
    # the peer's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # listening before "listening on …" is printed (uvicorn's backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.sync.server", description="The Tacit sync server."
    )
    parser.add_argument("command", nargs="?", choices=("run", "migrate"), default="run")
    parser.add_argument("--db", help="sqlite:///PATH, a file path, or postgresql://…")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--origin", help="public origin clients sign logins for")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (about one per core; each has its own database pool)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP on a non-loopback address (only behind a TLS proxy)",
    )
    return parser


def cli(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    args = build_parser().parse_args(argv)
    if args.command == "migrate":
        return migrate(args.db)
    return run(
        args.db,
        args.host,
        args.port,
        args.tls_cert,
        args.tls_key,
        args.origin,
        allow_insecure=args.insecure,
        workers=args.workers,
    )
