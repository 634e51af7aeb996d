"""Rate limits and login lockouts, counted in the database (the app is stateless).

- ``hit``: a fixed-window counter (one upsert per event). Used per client IP on the
  unauthenticated auth endpoints, per account on everything else, and per IP for failed
  logins.
- lockouts: consecutive failed logins per username (existing or not, so a lockout says
  nothing about whether an account exists); at ``lockout_failures`` the username is
  locked for ``lockout_s``. Failures older than ``lockout_s`` are forgotten.
- ``purge_expired``: housekeeping of every table that holds short-lived rows.

Invariants: keys are HMAC pseudonyms (``ServerContext.pseudonym``), never raw IPs or
usernames; every function runs inside the caller's transaction; retry-after values are
whole seconds, at least 1.
"""

from __future__ import annotations

from app.sync.server.db import Row, Tx


def _seconds_until(deadline_ms: int, now_ms: int) -> int:
    return max(1, -(-(deadline_ms - now_ms) // 1000))


def _count(row: Row | None) -> int:
    # An upsert with RETURNING always returns its row; anything else is a driver bug.
    if row is None:
        raise RuntimeError("upsert returned no row")
    return int(row[0])


def hit(tx: Tx, key: bytes, *, limit: int, window_s: int, now_ms: int) -> int | None:
    """Count one event. Return the seconds to wait if this event is over the limit,
    else None. ``limit <= 0`` disables the counter."""
    if limit <= 0:
        return None
    window_ms = window_s * 1000
    start = now_ms - now_ms % window_ms
    row = tx.one(
        """INSERT INTO rate_limits (key, window_start, window_end, hits) VALUES (?, ?, ?, 1)
        ON CONFLICT (key) DO UPDATE SET
            hits = CASE WHEN rate_limits.window_start = excluded.window_start
                        THEN rate_limits.hits + 1 ELSE 1 END,
            window_start = excluded.window_start,
            window_end = excluded.window_end
        RETURNING hits""",
        (key, start, start + window_ms),
    )
    if _count(row) > limit:
        return _seconds_until(start + window_ms, now_ms)
    return None


def over_limit(tx: Tx, key: bytes, *, limit: int, now_ms: int) -> int | None:
    """Without counting: the seconds to wait if ``key`` already reached ``limit`` in its
    current window, else None."""
    if limit <= 0:
        return None
    row = tx.one("SELECT hits, window_end FROM rate_limits WHERE key = ?", (key,))
    if row is None or int(row[1]) <= now_ms or int(row[0]) < limit:
        return None
    return _seconds_until(int(row[1]), now_ms)


def locked_for(tx: Tx, key: bytes, *, now_ms: int) -> int | None:
    """Seconds until the lockout of ``key`` ends, or None when not locked."""
    row = tx.one("SELECT locked_until FROM lockouts WHERE key = ?", (key,))
    if row is None or int(row[0]) <= now_ms:
        return None
    return _seconds_until(int(row[0]), now_ms)


def record_failure(tx: Tx, key: bytes, *, max_failures: int, lockout_s: int, now_ms: int) -> bool:
    """Count a failed login for ``key``; return True if that locked it."""
    forget_before = now_ms - lockout_s * 1000
    row = tx.one(
        """INSERT INTO lockouts (key, failures, locked_until, updated_at) VALUES (?, 1, 0, ?)
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN lockouts.updated_at < ? THEN 1
                            ELSE lockouts.failures + 1 END,
            updated_at = excluded.updated_at
        RETURNING failures""",
        (key, now_ms, forget_before),
    )
    if _count(row) < max_failures:
        return False
    tx.execute(
        "UPDATE lockouts SET failures = 0, locked_until = ? WHERE key = ?",
        (now_ms + lockout_s * 1000, key),
    )
    return True


def clear_failures(tx: Tx, key: bytes) -> None:
    tx.execute("DELETE FROM lockouts WHERE key = ?", (key,))


def purge_expired(tx: Tx, *, now_ms: int, lockout_s: int) -> None:
    """Delete rows that can no longer matter. Cheap: every delete uses an index or a
    small table."""
    tx.execute("DELETE FROM challenges WHERE expires_at <= ?", (now_ms,))
    tx.execute("DELETE FROM rate_limits WHERE window_end <= ?", (now_ms,))
    tx.execute(
        "DELETE FROM lockouts WHERE locked_until <= ? AND updated_at < ?",
        (now_ms, now_ms - lockout_s * 1000),
    )
    tx.execute("DELETE FROM retired_refresh_tokens WHERE expires_at <= ?", (now_ms,))
    tx.execute("DELETE FROM sessions WHERE refresh_expires_at <= ?", (now_ms,))
