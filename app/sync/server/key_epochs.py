"""Account key epochs: the KDF parameters and fresh salt of every account key epoch after
the first, and signing out the account's other sessions when one is added.

After a device is locked, wiped or removed, the client moves the account to a new key
epoch: it stretches the account password with Argon2id and a *fresh* salt into a new
wrapping key, so a stolen copy of the old device's keys cannot unwrap items keys made
later. The server's part is small: keep each epoch's parameters and salt (public, like
the sign-up KDF in ``accounts``; epoch 1 *is* that sign-up KDF and is never stored
here), and end every other session of the account in the same transaction, so the
other devices must sign in again with the password, which derives the new epoch's key.

Invariants:
- epochs are dense and only grow: a new epoch is exactly the highest stored one + 1 (2
  when none is stored), at most ``protocol.MAX_KEY_EPOCH``; the check runs under the
  account row's lock (``FOR UPDATE`` on PostgreSQL, the single writer on SQLite) and the
  primary key backs it, so two racing additions give one success and one
  ``epoch_conflict``, never a gap or a duplicate;
- the epoch and the end of every other session (all devices, and the caller's device's
  other sessions) commit together or not at all; the caller's own session survives;
- device control tokens are untouched: a signed-out device must still hear of orders;
- parameters are checked as at sign-up (the same pydantic model and the server's floor);
  the table holds public parameters and times only, never a key.
"""

from __future__ import annotations

import json

from app.sync import protocol
from app.sync.server import accounts, sessions
from app.sync.server.context import ServerContext
from app.sync.server.db import UniqueViolation
from app.sync.server.schemas import KdfParamsIn, KeyEpochIn
from app.sync.server.sessions import Principal


def _kdf_params(kdf: KdfParamsIn) -> protocol.KdfParams:
    return {
        "algorithm": "argon2id",
        "version": kdf.version,
        "memory_kib": kdf.memory_kib,
        "iterations": kdf.iterations,
        "parallelism": kdf.parallelism,
        "salt": protocol.b64encode(kdf.salt),
    }


def canonical_kdf(kdf: protocol.KdfParams) -> str:
    """What the ``kdf`` column holds: the parameters as JSON with sorted keys, no
    whitespace, ASCII only (one spelling per value)."""
    return json.dumps(kdf, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _stored_kdf(text: str) -> protocol.KdfParams:
    raw = json.loads(text)
    return {
        "algorithm": "argon2id",
        "version": int(raw["version"]),
        "memory_kib": int(raw["memory_kib"]),
        "iterations": int(raw["iterations"]),
        "parallelism": int(raw["parallelism"]),
        "salt": str(raw["salt"]),
    }


def list_epochs(ctx: ServerContext, principal: Principal) -> protocol.KeyEpochsResponse:
    """The caller's account's epochs after the first, ascending (empty when none)."""
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            """SELECT epoch, kdf, created_at FROM account_key_epochs
            WHERE account_id = ? ORDER BY epoch""",
            (principal.account_id,),
        )
    return {
        "epochs": [
            {
                "epoch": int(row[0]),
                "kdf": _stored_kdf(str(row[1])),
                "created_at": protocol.format_time(int(row[2])),
            }
            for row in rows
        ]
    }


def add_epoch(
    ctx: ServerContext, principal: Principal, req: KeyEpochIn
) -> protocol.KeyEpochResponse:
    """Store the next epoch and end every session of the account but the caller's.
    Raises KdfTooWeakError, EpochConflictError (not the next number, or the limit
    reached), UnauthorizedError (the caller's session ended meanwhile)."""
    accounts.require_kdf_floor(ctx, req.kdf)
    kdf = _kdf_params(req.kdf)
    now = ctx.now_ms()
    try:
        with ctx.db.transaction() as tx:
            # The account row's lock serializes epoch additions per account (and orders
            # them with logins, which update the same row's TOTP step).
            account = tx.one_for_update(
                "SELECT id FROM accounts WHERE id = ?", (principal.account_id,)
            )
            session = tx.one("SELECT 1 FROM sessions WHERE id = ?", (principal.session_id,))
            if account is None or session is None:
                # Revoked between authentication and now (an order, a logout): a dead
                # session must not sign everyone else out.
                raise protocol.UnauthorizedError()
            row = tx.one(
                "SELECT MAX(epoch) FROM account_key_epochs WHERE account_id = ?",
                (principal.account_id,),
            )
            highest = protocol.FIRST_KEY_EPOCH if row is None or row[0] is None else int(row[0])
            if highest >= protocol.MAX_KEY_EPOCH:
                raise protocol.EpochConflictError(
                    f"the account has reached the limit of {protocol.MAX_KEY_EPOCH} key epochs"
                )
            if req.epoch != highest + 1:
                raise protocol.EpochConflictError(
                    f"the account's next key epoch is {highest + 1}; fetch the epochs again"
                )
            tx.execute(
                """INSERT INTO account_key_epochs (account_id, epoch, kdf, created_at)
                VALUES (?, ?, ?, ?)""",
                (principal.account_id, req.epoch, canonical_kdf(kdf), now),
            )
            ended = sessions.revoke_account_except(tx, principal.account_id, principal.session_id)
    except UniqueViolation:
        # Only reachable if the row lock did not serialize us: the other addition won.
        raise protocol.EpochConflictError() from None
    return {
        "epoch": req.epoch,
        "kdf": kdf,
        "created_at": protocol.format_time(now),
        "sessions_ended": ended,
    }
