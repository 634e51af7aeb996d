"""Login: a signed, single-use, short-lived challenge bound to the server's origin, then a
TOTP code or a one-time recovery code.

Order of checks (each failure has its own stable code; see docs/PROTOCOL.md):
1. the client IP's failed-login budget (``rate_limited``) and the username's lockout
   (``account_locked``), before anything is verified;
2. the challenge: it exists, was issued for this username, has not expired, and is
   deleted now, whatever happens next (``challenge_expired``);
3. the Ed25519 signature over ``protocol.login_message(settings.origin, challenge)``
   (``signature_invalid``; an unknown username fails here too, after the same work);
4. the second factor: a TOTP code whose time step is later than the last accepted one
   (``totp_invalid`` / ``totp_replayed``), or an unused recovery code, which is deleted
   (``recovery_code_invalid``); neither → ``totp_required``.
Failures from 3 and 4 count against the username and the IP, in their own transaction,
so the count survives the failed request. Success clears the username's count.

``verify_owner`` is these four steps on their own: routes that demand full
re-authentication in the same request (replacing the signing key, removing a device,
releasing an escrow key) go through it, so they share the checks, counters and lockout.

Invariants: the step check and the recovery-code use are single atomic statements
(``UPDATE ... WHERE totp_last_step < ?`` and ``DELETE``), so two concurrent logins can
never both use one code; nothing here logs or returns a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from app.sync import protocol
from app.sync.server import crypto, devices, ratelimit, sessions, totp
from app.sync.server.context import ServerContext
from app.sync.server.db import Tx
from app.sync.server.schemas import LoginIn

T = TypeVar("T")

# Failures that are guesses at a credential. An expired challenge or a missing second
# factor guesses nothing, so it does not count towards a lockout.
_COUNTED = (
    protocol.SignatureInvalidError,
    protocol.TotpInvalidError,
    protocol.TotpReplayedError,
    protocol.RecoveryCodeInvalidError,
)


@dataclass(frozen=True, slots=True)
class _Account:
    id: str
    login_public_key: bytes
    totp_secret: str
    totp_last_step: int | None


def create_challenge(ctx: ServerContext, username: str) -> protocol.ChallengeResponse:
    """Issue a challenge for any well-formed username (existing or not)."""
    now = ctx.now_ms()
    challenge_id = crypto.new_id()
    challenge = crypto.random_bytes(protocol.CHALLENGE_BYTES)
    expires = now + ctx.settings.challenge_ttl_s * 1000
    with ctx.db.transaction(durable=False) as tx:
        ratelimit.purge_expired(tx, now_ms=now, lockout_s=ctx.settings.lockout_s)
        tx.execute(
            "INSERT INTO challenges (id, username, challenge, expires_at) VALUES (?, ?, ?, ?)",
            (challenge_id, username, challenge, expires),
        )
    return {
        "challenge_id": challenge_id,
        "challenge": protocol.b64encode(challenge),
        "origin": ctx.settings.origin,
        "expires_at": protocol.format_time(expires),
    }


@dataclass(frozen=True, slots=True)
class Credentials:
    """A signed challenge plus a second factor: what a login and a re-authentication
    present (``LoginIn`` and ``ReauthIn`` both carry these fields)."""

    challenge_id: str
    signature: bytes
    totp: str | None
    recovery_code: str | None


def login(ctx: ServerContext, req: LoginIn, client_ip: str) -> protocol.LoginResponse:
    """Verify a login and open a session for the device (registering it, or refreshing its
    name and key, and rotating its control token). Raises the ApiErrors listed in the
    module docstring, RateLimitedError / AccountLockedError with ``retry_after``, and
    DeviceLostError / DeviceRemovedError for a device the owner marked lost or removed
    (checked after the credentials, so it reveals nothing to a guesser)."""
    now = ctx.now_ms()
    creds = Credentials(req.challenge_id, req.signature, req.totp, req.recovery_code)

    def open_for_device(tx: Tx, account_id: str) -> protocol.LoginResponse:
        devices.require_usable(tx, account_id, req.device.id)
        control = devices.upsert_device(tx, account_id, req.device, now_ms=now)
        tokens = sessions.open_session(ctx, tx, account_id, req.device.id, now_ms=now)
        return {**tokens, "control_token": control}

    return verify_owner(ctx, req.username, creds, client_ip, open_for_device, now_ms=now)


def verify_owner(
    ctx: ServerContext,
    username: str,
    creds: Credentials,
    client_ip: str,
    then: Callable[[Tx, str], T],
    *,
    now_ms: int,
) -> T:
    """Check steps 1-4 of the module docstring for ``username``; on success run
    ``then(tx, account_id)`` inside the transaction that consumes the second factor and
    return its result. If ``then`` raises, that transaction rolls back: the code is not
    consumed. Used by login and by every route that demands full re-authentication.
    Raises the ApiErrors listed in the module docstring."""
    settings = ctx.settings
    now = now_ms
    user_key = ctx.pseudonym("login-user", username)
    ip_key = ctx.pseudonym("login-fail-ip", client_ip)
    with ctx.db.transaction() as tx:
        wait = ratelimit.over_limit(tx, ip_key, limit=settings.ip_failure_limit, now_ms=now)
        if wait is not None:
            raise protocol.RateLimitedError(
                "too many failed logins from this address", retry_after=wait
            )
        wait = ratelimit.locked_for(tx, user_key, now_ms=now)
        if wait is not None:
            raise protocol.AccountLockedError(retry_after=wait)
        challenge_row = tx.one(
            "SELECT username, challenge, expires_at FROM challenges WHERE id = ?",
            (creds.challenge_id,),
        )
        # Single use: the challenge dies here even if this login fails.
        tx.execute("DELETE FROM challenges WHERE id = ?", (creds.challenge_id,))
        row = tx.one(
            """SELECT id, login_public_key, totp_secret, totp_last_step
            FROM accounts WHERE username = ?""",
            (username,),
        )
    account = (
        None
        if row is None
        else _Account(
            str(row[0]), bytes(row[1]), str(row[2]), None if row[3] is None else int(row[3])
        )
    )
    if challenge_row is None or challenge_row[0] != username or int(challenge_row[2]) <= now:
        raise protocol.ChallengeExpiredError()
    try:
        return _verify(ctx, username, creds, account, bytes(challenge_row[1]), now, then)
    except _COUNTED:
        with ctx.db.transaction(durable=False) as tx:
            ratelimit.record_failure(
                tx,
                user_key,
                max_failures=settings.lockout_failures,
                lockout_s=settings.lockout_s,
                now_ms=now,
            )
            ratelimit.hit(
                tx,
                ip_key,
                limit=settings.ip_failure_limit,
                window_s=settings.ip_failure_window_s,
                now_ms=now,
            )
        raise


def _verify(
    ctx: ServerContext,
    username: str,
    creds: Credentials,
    account: _Account | None,
    challenge: bytes,
    now: int,
    then: Callable[[Tx, str], T],
) -> T:
    message = protocol.login_message(ctx.settings.origin, challenge)
    # An unknown username is checked against a dummy key, so it fails after the same work
    # as a wrong signature (no timing difference to enumerate usernames with).
    public_key = account.login_public_key if account else crypto.DUMMY_PUBLIC_KEY
    signature_ok = crypto.ed25519_verify(public_key, message, creds.signature)
    if account is None or not signature_ok:
        raise protocol.SignatureInvalidError()
    if creds.totp is not None and creds.recovery_code is not None:
        raise protocol.InvalidRequestError("send either totp or recovery_code, not both")
    step: int | None = None
    code_hash: bytes | None = None
    if creds.totp is not None:
        step = totp.matching_step(account.totp_secret, creds.totp, now_s=now / 1000)
        if step is None:
            raise protocol.TotpInvalidError()
        if account.totp_last_step is not None and step <= account.totp_last_step:
            raise protocol.TotpReplayedError()
    elif creds.recovery_code is not None:
        code_hash = crypto.recovery_code_hash(creds.recovery_code)
    else:
        raise protocol.TotpRequiredError()
    with ctx.db.transaction() as tx:
        if step is not None:
            # Atomic check-and-set: of two concurrent logins with one code, one wins.
            advanced = tx.execute(
                """UPDATE accounts SET totp_last_step = ?
                WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)""",
                (step, account.id, step),
            )
            if advanced != 1:
                raise protocol.TotpReplayedError()
        elif code_hash is not None:
            used = tx.execute(
                "DELETE FROM recovery_codes WHERE account_id = ? AND code_hash = ?",
                (account.id, code_hash),
            )
            if used != 1:
                raise protocol.RecoveryCodeInvalidError()
        ratelimit.clear_failures(tx, ctx.pseudonym("login-user", username))
        return then(tx, account.id)
