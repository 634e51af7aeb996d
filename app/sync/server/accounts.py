"""Accounts: sign-up and the KDF-parameter lookup.

Sign-up stores the username, the client's Argon2id parameters and salt, the login
*public* key (Ed25519), a fresh TOTP secret, the hashes of ten one-time recovery codes,
and the first device. It never receives a password or anything derived from one that
would let the server (or a thief of its database) log in: verifying a login needs a
signature only the password's holder can make.

Invariants:
- KDF parameters below ``Settings.kdf_floor`` are refused (``kdf_too_weak``), at sign-up
  and for every later account key epoch (``key_epochs.py``);
- the TOTP secret, the recovery codes and the device's first control token leave the
  server exactly once, in the sign-up response; codes and token are stored only as
  hashes;
- ``kdf_params`` answers every well-formed username, with stable fake parameters (salt =
  HMAC(server secret, username)) when there is no such account, so the endpoint cannot be
  used to enumerate usernames. (Sign-up itself necessarily says when a name is taken.)
"""

from __future__ import annotations

import uuid

from app.sync import protocol
from app.sync.server import crypto, devices, totp
from app.sync.server.context import ServerContext
from app.sync.server.db import Tx, UniqueViolation
from app.sync.server.schemas import KdfParamsIn, SignupIn

FAKE_SALT_BYTES = 16


def require_kdf_floor(ctx: ServerContext, kdf: KdfParamsIn) -> None:
    """Refuse Argon2id parameters below the server's floor (sign-up and every new
    account key epoch). Raises KdfTooWeakError."""
    floor = ctx.settings.kdf_floor
    if (
        kdf.memory_kib < floor.memory_kib
        or kdf.iterations < floor.iterations
        or kdf.parallelism < floor.parallelism
    ):
        raise protocol.KdfTooWeakError(
            f"Argon2id parameters must be at least m={floor.memory_kib} KiB, "
            f"t={floor.iterations}, p={floor.parallelism}"
        )


def check_signup(ctx: ServerContext, req: SignupIn) -> None:
    """The checks a sign-up passes before any transaction. Raises KdfTooWeakError,
    InvalidRequestError (a login key that is not an Ed25519 point)."""
    require_kdf_floor(ctx, req.kdf)
    if not crypto.ed25519_public_key_valid(req.login_public_key):
        raise protocol.InvalidRequestError("login_public_key is not an Ed25519 public key")


def create_account(
    ctx: ServerContext, tx: Tx, req: SignupIn, *, now_ms: int
) -> protocol.SignupResponse:
    """Insert the account, its recovery codes and first device inside the caller's
    transaction (``check_signup`` has passed). Raises AccountExistsError; a racing
    sign-up for the same name surfaces as UniqueViolation (the caller maps it)."""
    kdf = req.kdf
    if tx.one("SELECT 1 FROM accounts WHERE username = ?", (req.username,)):
        raise protocol.AccountExistsError()
    account_id = str(uuid.uuid4())
    secret = totp.new_secret()
    codes = [crypto.new_recovery_code() for _ in range(protocol.RECOVERY_CODE_COUNT)]
    tx.execute(
        """INSERT INTO accounts (id, username, login_public_key, kdf_algorithm,
            kdf_version, kdf_memory_kib, kdf_iterations, kdf_parallelism, kdf_salt,
            totp_secret, totp_last_step, seq, used_bytes, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0, ?)""",
        (
            account_id,
            req.username,
            req.login_public_key,
            kdf.algorithm,
            kdf.version,
            kdf.memory_kib,
            kdf.iterations,
            kdf.parallelism,
            kdf.salt,
            secret,
            now_ms,
        ),
    )
    tx.executemany(
        "INSERT INTO recovery_codes (account_id, code_hash) VALUES (?, ?)",
        [(account_id, crypto.recovery_code_hash(code)) for code in codes],
    )
    control = devices.upsert_device(tx, account_id, req.device, now_ms=now_ms)
    return {
        "account_id": account_id,
        "totp_uri": totp.provisioning_uri(
            secret, username=req.username, origin=ctx.settings.origin
        ),
        "recovery_codes": codes,
        "control_token": control,
    }


def signup(ctx: ServerContext, req: SignupIn) -> protocol.SignupResponse:
    """Create an account. Raises KdfTooWeakError, InvalidRequestError (a login key that
    is not an Ed25519 point), AccountExistsError."""
    check_signup(ctx, req)
    now = ctx.now_ms()
    try:
        with ctx.db.transaction() as tx:
            return create_account(ctx, tx, req, now_ms=now)
    except UniqueViolation:
        # Two sign-ups for one name raced; the loser sees what it would have seen later.
        raise protocol.AccountExistsError() from None


def kdf_params(ctx: ServerContext, username: str) -> protocol.KdfParamsResponse:
    """The account's KDF parameters, or stable fake ones for an unknown username."""
    with ctx.db.transaction(write=False) as tx:
        row = tx.one(
            """SELECT kdf_algorithm, kdf_version, kdf_memory_kib, kdf_iterations,
                kdf_parallelism, kdf_salt FROM accounts WHERE username = ?""",
            (username,),
        )
    if row is not None:
        return {
            "kdf": {
                "algorithm": "argon2id",
                "version": int(row[1]),
                "memory_kib": int(row[2]),
                "iterations": int(row[3]),
                "parallelism": int(row[4]),
                "salt": protocol.b64encode(bytes(row[5])),
            }
        }
    fake = ctx.settings.fake_kdf
    salt = ctx.pseudonym("fake-kdf-salt", username)[:FAKE_SALT_BYTES]
    return {
        "kdf": {
            "algorithm": "argon2id",
            "version": protocol.KDF_VERSION,
            "memory_kib": fake.memory_kib,
            "iterations": fake.iterations,
            "parallelism": fake.parallelism,
            "salt": protocol.b64encode(salt),
        }
    }
