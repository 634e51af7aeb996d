"""Sessions: bearer tokens, their rotation and revocation (the device registry is
``devices.py``).

A login opens one session (a "family") for one device: an access token (≤ 1 h) and a
refresh token (≤ 30 days from its issue). Both are 32 random bytes; the database stores
only their SHA-256. Refreshing rotates both tokens in place and retires the old refresh
token; presenting a retired refresh token again means it was copied, so the whole session
is revoked (``token_reused``). A new login from a device ends that device's older
sessions.

Invariants: a token is valid only while its hash is in ``sessions``, unexpired, and its
device is ``active`` (an order that marks a device lost also deletes its sessions; the
state check is the belt to those braces); the
rotation is a single conditional UPDATE, so two concurrent refreshes with one token
cannot both succeed (the loser is treated as reuse); revocation commits before the error
is returned; ``last_seen_at`` is written at most once per ``last_seen_resolution_s`` per
device, so authenticated reads stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sync import protocol
from app.sync.server import crypto, ratelimit
from app.sync.server.context import ServerContext
from app.sync.server.db import Tx


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the result of authenticating an access token."""

    account_id: str
    device_id: str
    session_id: str


def _tokens(
    account_id: str, device_id: str, access: str, access_exp: int, refresh: str, refresh_exp: int
) -> protocol.SessionTokens:
    return {
        "account_id": account_id,
        "device_id": device_id,
        "access_token": access,
        "access_expires_at": protocol.format_time(access_exp),
        "refresh_token": refresh,
        "refresh_expires_at": protocol.format_time(refresh_exp),
    }


def open_session(
    ctx: ServerContext, tx: Tx, account_id: str, device_id: str, *, now_ms: int
) -> protocol.SessionTokens:
    """Start a session for a device inside the login transaction, ending its older ones."""
    old = tx.all(
        "SELECT id FROM sessions WHERE account_id = ? AND device_id = ?", (account_id, device_id)
    )
    for (session_id,) in old:
        _revoke(tx, str(session_id))
    access, refresh = crypto.new_token(), crypto.new_token()
    access_exp = now_ms + ctx.settings.access_ttl_s * 1000
    refresh_exp = now_ms + ctx.settings.refresh_ttl_s * 1000
    tx.execute(
        """INSERT INTO sessions (id, account_id, device_id, access_hash, access_expires_at,
            refresh_hash, refresh_expires_at, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            crypto.new_id(),
            account_id,
            device_id,
            crypto.token_hash(access),
            access_exp,
            crypto.token_hash(refresh),
            refresh_exp,
            now_ms,
        ),
    )
    return _tokens(account_id, device_id, access, access_exp, refresh, refresh_exp)


def _revoke(tx: Tx, session_id: str) -> None:
    tx.execute("DELETE FROM retired_refresh_tokens WHERE session_id = ?", (session_id,))
    tx.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def revoke_device(tx: Tx, account_id: str, device_id: str) -> int:
    """End every session of a device at once (access and refresh tokens, and the record
    of its retired refresh tokens). Returns how many sessions ended."""
    rows = tx.all(
        "SELECT id FROM sessions WHERE account_id = ? AND device_id = ?", (account_id, device_id)
    )
    for (session_id,) in rows:
        _revoke(tx, str(session_id))
    return len(rows)


def revoke_account_except(tx: Tx, account_id: str, keep_session_id: str) -> int:
    """End every session of an account but one (all devices, the keeper's other sessions
    included), as ``revoke_device`` does. Control tokens are untouched: they belong to
    devices, not sessions. Returns how many sessions ended."""
    rows = tx.all(
        "SELECT id FROM sessions WHERE account_id = ? AND id != ?", (account_id, keep_session_id)
    )
    for (session_id,) in rows:
        _revoke(tx, str(session_id))
    return len(rows)


def revoke_account(tx: Tx, account_id: str) -> int:
    """End every session of an account (all devices), as ``revoke_device`` does. Control
    tokens are untouched, so the devices still hear of orders. Returns how many ended."""
    rows = tx.all("SELECT id FROM sessions WHERE account_id = ?", (account_id,))
    for (session_id,) in rows:
        _revoke(tx, str(session_id))
    return len(rows)


def authenticate(ctx: ServerContext, access_token: str) -> Principal:
    """The principal behind an access token. Also counts the request against the
    account's rate limit and refreshes the device's last-seen time (coarsely).
    Raises UnauthorizedError, TokenExpiredError, RateLimitedError."""
    now = ctx.now_ms()
    # Not durable: a counter or last-seen time lost in a power cut is harmless.
    with ctx.db.transaction(durable=False) as tx:
        row = tx.one(
            """SELECT s.id, s.account_id, s.device_id, s.access_expires_at, d.last_seen_at
            FROM sessions s
            JOIN devices d ON d.account_id = s.account_id AND d.id = s.device_id
            WHERE s.access_hash = ? AND d.state = 'active'""",
            (crypto.token_hash(access_token),),
        )
        if row is None:
            raise protocol.UnauthorizedError()
        session_id, account_id, device_id = str(row[0]), str(row[1]), str(row[2])
        if int(row[3]) <= now:
            raise protocol.TokenExpiredError("the access token has expired; refresh it")
        wait = note_request(ctx, tx, account_id, device_id, int(row[4]), now)
    if wait is not None:
        # Raised after the commit, so the counter keeps counting refused requests.
        raise protocol.RateLimitedError(retry_after=wait)
    return Principal(account_id, device_id, session_id)


def refresh(ctx: ServerContext, refresh_token: str) -> protocol.SessionTokens:
    """Rotate a session's tokens. Raises UnauthorizedError, TokenExpiredError,
    TokenReusedError (after revoking the session)."""
    settings = ctx.settings
    now = ctx.now_ms()
    old_hash = crypto.token_hash(refresh_token)
    access, new_refresh = crypto.new_token(), crypto.new_token()
    access_exp = now + settings.access_ttl_s * 1000
    refresh_exp = now + settings.refresh_ttl_s * 1000
    reused = False
    with ctx.db.transaction() as tx:
        row = tx.one(
            """SELECT s.id, s.account_id, s.device_id, s.refresh_expires_at FROM sessions s
            JOIN devices d ON d.account_id = s.account_id AND d.id = s.device_id
            WHERE s.refresh_hash = ? AND d.state = 'active'""",
            (old_hash,),
        )
        if row is not None:
            session_id, account_id, device_id = str(row[0]), str(row[1]), str(row[2])
            if int(row[3]) <= now:
                raise protocol.TokenExpiredError("the refresh token has expired; log in again")
            rotated = tx.execute(
                """UPDATE sessions SET access_hash = ?, access_expires_at = ?,
                    refresh_hash = ?, refresh_expires_at = ?
                WHERE id = ? AND refresh_hash = ?""",
                (
                    crypto.token_hash(access),
                    access_exp,
                    crypto.token_hash(new_refresh),
                    refresh_exp,
                    session_id,
                    old_hash,
                ),
            )
            if rotated == 1:
                tx.execute(
                    """INSERT INTO retired_refresh_tokens (token_hash, session_id, expires_at)
                    VALUES (?, ?, ?)""",
                    (old_hash, session_id, int(row[3])),
                )
                return _tokens(account_id, device_id, access, access_exp, new_refresh, refresh_exp)
            # A concurrent refresh with the same token won the race: that is a reuse.
            _revoke(tx, session_id)
            reused = True
        else:
            retired = tx.one(
                "SELECT session_id FROM retired_refresh_tokens WHERE token_hash = ?", (old_hash,)
            )
            if retired is not None:
                _revoke(tx, str(retired[0]))
                reused = True
    if reused:
        raise protocol.TokenReusedError()
    raise protocol.UnauthorizedError()


def logout(ctx: ServerContext, principal: Principal) -> None:
    """End the caller's session (both tokens die at once)."""
    with ctx.db.transaction() as tx:
        _revoke(tx, principal.session_id)


def note_request(
    ctx: ServerContext, tx: Tx, account_id: str, device_id: str, last_seen_ms: int, now: int
) -> int | None:
    """Count an authenticated request against the account's rate limit (the wait in
    seconds when over it) and refresh the device's last-seen time (at most every
    ``last_seen_resolution_s``). Inside the caller's transaction."""
    settings = ctx.settings
    wait = ratelimit.hit(
        tx,
        ctx.pseudonym("account-requests", account_id),
        limit=settings.account_request_limit,
        window_s=settings.account_request_window_s,
        now_ms=now,
    )
    if last_seen_ms <= now - settings.last_seen_resolution_s * 1000:
        tx.execute(
            "UPDATE devices SET last_seen_at = ? WHERE account_id = ? AND id = ?",
            (now, account_id, device_id),
        )
    return wait
