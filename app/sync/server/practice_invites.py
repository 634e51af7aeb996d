"""Practice invites and joining (docs/PRACTICE.md "Invites").

The server learns only an invite's **lookup** (HKDF of the one-time secret) and an
envelope the owner's client sealed under a key derived from that secret; it cannot read
the envelope nor open one for a guessed code. Joining is sign-up and membership in one
transaction, so a spent code never leaves an orphan account and a code works once.

Invariants:
- an unknown, used or expired lookup gets the same answer (``invite_invalid``, 404) from
  both open routes, which are counted against the caller's IP like sign-up and login;
- an invite is consumed by one conditional UPDATE (``used_at IS NULL AND expires_at >
  now``) inside the join transaction: two joins racing with one code give one member;
  a join that fails later (a taken username) rolls the consumption back;
- the new member is ``pending`` with the invite's role and e-mail (never the joiner's
  say-so), until the owner's client checks the proof and posts a certificate;
- invites live at most ``INVITE_TTL_DAYS`` (plus the clock skew allowed for orders, as
  the owner's client computes the expiry by its own clock); a longer one is refused.
"""

from __future__ import annotations

from typing import Any

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server import accounts, crypto
from app.sync.server.context import ServerContext
from app.sync.server.db import UniqueViolation
from app.sync.server.practice import PENDING, owner_membership
from app.sync.server.practice_schemas import InviteCreateIn, JoinIn
from app.sync.server.sessions import Principal

DAY_MS = 24 * 3600 * 1000
CLOCK_SKEW_MS = protocol.ORDER_MAX_FUTURE_S * 1000


def create_invite(ctx: ServerContext, principal: Principal, req: InviteCreateIn) -> dict[str, str]:
    """Store an invite. Raises InvalidRequestError (expiry not within the TTL),
    ConflictError (the lookup exists)."""
    now = ctx.now_ms()
    try:
        expires = protocol.parse_time(req.expires_at)
    except (ValueError, OverflowError):
        raise protocol.InvalidRequestError("expires_at: not a time") from None
    # The owner's client sets now + TTL by its own clock; allow it the skew orders get.
    if not now < expires <= now + pp.INVITE_TTL_DAYS * DAY_MS + CLOCK_SKEW_MS:
        raise protocol.InvalidRequestError(
            f"expires_at: must be in the next {pp.INVITE_TTL_DAYS} days"
        )
    try:
        with ctx.db.transaction() as tx:
            member = owner_membership(tx, principal.account_id)
            if tx.one("SELECT 1 FROM practice_invites WHERE lookup = ?", (req.lookup,)):
                raise protocol.ConflictError("an invite with this lookup exists")
            tx.execute(
                """INSERT INTO practice_invites (lookup, practice_id, role, email, envelope,
                    created_at, expires_at, used_at, account_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)""",
                (req.lookup, member.practice_id, req.role, req.email, req.envelope, now, expires),
            )
    except UniqueViolation:
        raise protocol.ConflictError("an invite with this lookup exists") from None
    return {"invite_id": req.lookup, "expires_at": protocol.format_time(expires)}


def list_invites(ctx: ServerContext, principal: Principal) -> dict[str, list[dict[str, Any]]]:
    """The practice's invites, newest first (the owner's view)."""
    with ctx.db.transaction(write=False) as tx:
        member = owner_membership(tx, principal.account_id)
        rows = tx.all(
            """SELECT lookup, role, email, created_at, expires_at, used_at, account_id
            FROM practice_invites WHERE practice_id = ? ORDER BY created_at DESC, lookup""",
            (member.practice_id,),
        )
    return {
        "invites": [
            {
                "invite_id": str(r[0]),
                "role": str(r[1]),
                "email": str(r[2]),
                "created_at": protocol.format_time(int(r[3])),
                "expires_at": protocol.format_time(int(r[4])),
                "used_at": None if r[5] is None else protocol.format_time(int(r[5])),
                "account_id": None if r[6] is None else str(r[6]),
            }
            for r in rows
        ]
    }


def get_invite(ctx: ServerContext, lookup: str) -> pp.InviteView:
    """An open invite's envelope. Raises InviteInvalidError (unknown, used, expired,
    or not a lookup at all)."""
    if pp.LOOKUP_RE.fullmatch(lookup) is None:
        raise protocol.InviteInvalidError()
    now = ctx.now_ms()
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            """SELECT envelope, role, email, expires_at FROM practice_invites
            WHERE lookup = ? AND used_at IS NULL AND expires_at > ?""",
            (lookup, now),
        )
    if row is None:
        raise protocol.InviteInvalidError()
    return {
        "envelope": protocol.b64encode(bytes(row[0])),
        "role": str(row[1]),
        "email": str(row[2]),
        "expires_at": protocol.format_time(int(row[3])),
    }


def join(ctx: ServerContext, req: JoinIn) -> dict[str, Any]:
    """Sign up and join with an invite, in one transaction. Raises InviteInvalidError,
    AccountExistsError, KdfTooWeakError, InvalidRequestError."""
    accounts.check_signup(ctx, req.signup)
    if not crypto.ed25519_public_key_valid(req.sign_public):
        raise protocol.InvalidRequestError("sign_public is not an Ed25519 public key")
    now = ctx.now_ms()
    try:
        with ctx.db.transaction() as tx:
            invite = tx.one(
                "SELECT practice_id, role, email FROM practice_invites WHERE lookup = ?",
                (req.lookup,),
            )
            # The conditional UPDATE is the race-safe consumption: on PostgreSQL a
            # concurrent join waits on the row and then finds used_at set.
            taken = tx.execute(
                """UPDATE practice_invites SET used_at = ?
                WHERE lookup = ? AND used_at IS NULL AND expires_at > ?""",
                (now, req.lookup, now),
            )
            if invite is None or taken != 1:
                raise protocol.InviteInvalidError()
            practice_id, role, email = str(invite[0]), str(invite[1]), str(invite[2])
            answer = accounts.create_account(ctx, tx, req.signup, now_ms=now)
            account_id = answer["account_id"]
            tx.execute(
                "UPDATE practice_invites SET account_id = ? WHERE lookup = ?",
                (account_id, req.lookup),
            )
            tx.execute(
                """INSERT INTO practice_members (practice_id, account_id, role, email, status,
                    enc_public, sign_public, certificate, proof, lookup, joined_at, removed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL)""",
                (
                    practice_id,
                    account_id,
                    role,
                    email,
                    PENDING,
                    req.enc_public,
                    req.sign_public,
                    req.proof,
                    req.lookup,
                    now,
                ),
            )
    except UniqueViolation:
        # Two sign-ups for one name raced; the loser sees what it would have later.
        raise protocol.AccountExistsError() from None
    return {**answer, "practice_id": practice_id}
