"""The sync server's configuration: one frozen ``Settings`` value, built once at start.

Invariants: every limit has a safe default; ``__post_init__`` refuses values that would
break the protocol's promises (access tokens over 1 h, refresh tokens over 30 days,
challenges over 60 s, body or chunk limits above the protocol's). Tests inject a clock
and weaker limits here; nothing else in the server reads the environment except
``default_kdf_floor`` (the one test switch the whole project honours).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from app.sync import protocol

# Same switch as the vault's (app/vault/crypto.py): tests and benchmarks set it.
INSECURE_TEST_KDF_ENV = "TACIT_INSECURE_TEST_KDF"


@dataclass(frozen=True, slots=True)
class KdfFloor:
    """The weakest Argon2id parameters the server accepts at sign-up."""

    memory_kib: int
    iterations: int
    parallelism: int


# RFC 9106's second recommended option is m = 64 MiB, t = 3. The Tacit client uses more
# (>= 256 MiB, calibrated to ~1 s); the server's floor is a safety net against a buggy or
# downgraded client, not the client's target.
PRODUCTION_KDF_FLOOR = KdfFloor(memory_kib=65536, iterations=3, parallelism=1)
TEST_KDF_FLOOR = KdfFloor(memory_kib=8, iterations=1, parallelism=1)

# What /v1/auth/params answers for a username that has no account. It should look like
# what real clients choose; the client's production floor is the likeliest value.
FAKE_KDF = KdfFloor(memory_kib=262144, iterations=3, parallelism=2)


def default_kdf_floor() -> KdfFloor:
    if os.environ.get(INSECURE_TEST_KDF_ENV) == "1":
        return TEST_KDF_FLOOR
    return PRODUCTION_KDF_FLOOR


def default_sqlite_path() -> Path:
    return Path(platformdirs.user_data_dir("tacit", appauthor=False)) / "server.sqlite3"


def default_db_url() -> str:
    return f"sqlite:///{default_sqlite_path()}"


Clock = Callable[[], float]  # seconds since the epoch, UTC


@dataclass(frozen=True, slots=True)
class Settings:
    db_url: str
    origin: str  # canonical origin login signatures must be bound to
    clock: Clock = time.time
    kdf_floor: KdfFloor = field(default_factory=default_kdf_floor)
    fake_kdf: KdfFloor = FAKE_KDF
    # sessions
    access_ttl_s: int = 3600
    refresh_ttl_s: int = 30 * 86400
    challenge_ttl_s: int = 60
    # failed logins: per username (existing or not), and per client IP
    lockout_failures: int = 5
    lockout_s: int = 15 * 60
    ip_failure_limit: int = 20
    ip_failure_window_s: int = 15 * 60
    # request rates: unauthenticated auth endpoints per client IP; everything else per
    # account. 0 turns a limit off.
    ip_request_limit: int = 120
    ip_request_window_s: int = 60
    account_request_limit: int = 3000
    account_request_window_s: int = 60
    # sizes
    max_body_bytes: int = protocol.MAX_BODY_BYTES
    max_item_bytes: int = protocol.MAX_ITEM_BLOB_BYTES
    max_chunk_bytes: int = protocol.MAX_CHUNK_BYTES
    quota_bytes: int = 1024 * 1024 * 1024  # items + attachments, per account
    # storage
    pg_pool_size: int = 10
    sqlite_pool_size: int = 8
    # device.last_seen_at is written at most this often per device (keeps reads cheap)
    last_seen_resolution_s: int = 60
    # how often a waiting GET /v1/devices/self/order looks for a new order (the database
    # is the only channel between app processes, so it is polled; 0.5 s keeps the
    # delivery well inside the 5 s promise)
    order_poll_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.access_ttl_s <= 3600:
            raise ValueError("access_ttl_s must be in (0, 3600]")
        if not 0 < self.refresh_ttl_s <= 30 * 86400:
            raise ValueError("refresh_ttl_s must be in (0, 30 days]")
        if not 0 < self.challenge_ttl_s <= 60:
            raise ValueError("challenge_ttl_s must be in (0, 60]")
        if not 0 < self.max_body_bytes <= protocol.MAX_BODY_BYTES:
            raise ValueError("max_body_bytes exceeds the protocol limit")
        if not 0 < self.max_item_bytes <= protocol.MAX_ITEM_BLOB_BYTES:
            raise ValueError("max_item_bytes exceeds the protocol limit")
        if not 0 < self.max_chunk_bytes <= protocol.MAX_CHUNK_BYTES:
            raise ValueError("max_chunk_bytes exceeds the protocol limit")
        if self.lockout_failures < 1 or self.lockout_s < 1:
            raise ValueError("lockout_failures and lockout_s must be positive")
        if not 0 < self.order_poll_interval_s <= 2:
            raise ValueError("order_poll_interval_s must be in (0, 2]")
        if self.pg_pool_size < 1 or self.sqlite_pool_size < 1:
            raise ValueError("pool sizes must be positive")
        if protocol.canonical_origin(self.origin) != self.origin:
            raise ValueError("origin must be canonical (protocol.canonical_origin)")

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
