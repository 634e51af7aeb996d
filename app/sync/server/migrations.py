"""The sync server's schema, as ordered migrations for SQLite and PostgreSQL.

Each migration is a list of DDL statements written once, with ``{blob}`` and ``{int}``
standing for the dialect's byte-string and 64-bit integer types. ``migrate()`` applies
the missing ones in order inside one transaction (PostgreSQL additionally takes an
advisory lock, so several app processes starting at once do not race), records them in
``schema_migrations``, and makes sure the server secret exists.

Invariants: released migrations are never edited, only appended; ``migrate()`` is
idempotent; times are integer milliseconds since the epoch (UTC); booleans are 0/1.

What the tables hold (docs/PROTOCOL.md "What the server sees" is the public version):
no column holds a password, a password-equivalent, a plaintext token, or item plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sync.server import crypto
from app.sync.server.db import Database, Dialect, Tx

# Any fixed number: the key of the PostgreSQL advisory lock that serializes migrators.
_MIGRATION_LOCK_KEY = 0x7AC17001
SERVER_SECRET_KEY = "server_secret"  # noqa: S105 - a row name, not a secret


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE server_config (
                key TEXT PRIMARY KEY,
                value {blob} NOT NULL
            )""",
            """CREATE TABLE accounts (
                id TEXT PRIMARY KEY,
                username TEXT NOT NULL UNIQUE,
                login_public_key {blob} NOT NULL,
                kdf_algorithm TEXT NOT NULL,
                kdf_version INTEGER NOT NULL,
                kdf_memory_kib {int} NOT NULL,
                kdf_iterations INTEGER NOT NULL,
                kdf_parallelism INTEGER NOT NULL,
                kdf_salt {blob} NOT NULL,
                totp_secret TEXT NOT NULL,
                totp_last_step {int},
                seq {int} NOT NULL DEFAULT 0,
                used_bytes {int} NOT NULL DEFAULT 0,
                created_at {int} NOT NULL
            )""",
            # Only hashes; a used code is deleted, which is what makes it single use.
            """CREATE TABLE recovery_codes (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                code_hash {blob} NOT NULL,
                PRIMARY KEY (account_id, code_hash)
            )""",
            """CREATE TABLE devices (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                id TEXT NOT NULL,
                name TEXT NOT NULL,
                public_key {blob} NOT NULL,
                created_at {int} NOT NULL,
                last_seen_at {int} NOT NULL,
                PRIMARY KEY (account_id, id)
            )""",
            # One row per login ("session family"): refreshing rotates both hashes in
            # place; the old refresh hash moves to retired_refresh_tokens.
            """CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                access_hash {blob} NOT NULL UNIQUE,
                access_expires_at {int} NOT NULL,
                refresh_hash {blob} NOT NULL UNIQUE,
                refresh_expires_at {int} NOT NULL,
                created_at {int} NOT NULL,
                FOREIGN KEY (account_id, device_id)
                    REFERENCES devices (account_id, id) ON DELETE CASCADE
            )""",
            "CREATE INDEX sessions_account ON sessions (account_id)",
            """CREATE TABLE retired_refresh_tokens (
                token_hash {blob} PRIMARY KEY,
                session_id TEXT NOT NULL,
                expires_at {int} NOT NULL
            )""",
            "CREATE INDEX retired_refresh_session ON retired_refresh_tokens (session_id)",
            "CREATE INDEX retired_refresh_expiry ON retired_refresh_tokens (expires_at)",
            """CREATE TABLE challenges (
                id TEXT PRIMARY KEY,
                username TEXT NOT NULL,
                challenge {blob} NOT NULL,
                expires_at {int} NOT NULL
            )""",
            "CREATE INDEX challenges_expiry ON challenges (expires_at)",
            # Keyed by HMAC(server secret, username): existing and unknown usernames
            # lock alike, and the table stores no raw usernames.
            """CREATE TABLE lockouts (
                key {blob} PRIMARY KEY,
                failures INTEGER NOT NULL,
                locked_until {int} NOT NULL,
                updated_at {int} NOT NULL
            )""",
            # Fixed-window counters keyed by HMAC(server secret, purpose + IP/account).
            """CREATE TABLE rate_limits (
                key {blob} PRIMARY KEY,
                window_start {int} NOT NULL,
                window_end {int} NOT NULL,
                hits INTEGER NOT NULL
            )""",
            "CREATE INDEX rate_limits_end ON rate_limits (window_end)",
            """CREATE TABLE items (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                key_id TEXT NOT NULL,
                deleted INTEGER NOT NULL,
                ciphertext {blob} NOT NULL,
                etag TEXT NOT NULL,
                size {int} NOT NULL,
                seq {int} NOT NULL,
                modified_at {int} NOT NULL,
                PRIMARY KEY (account_id, id)
            )""",
            "CREATE UNIQUE INDEX items_account_seq ON items (account_id, seq)",
            """CREATE TABLE attachment_chunks (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                attachment_id TEXT NOT NULL,
                n INTEGER NOT NULL,
                data {blob} NOT NULL,
                size {int} NOT NULL,
                etag TEXT NOT NULL,
                created_at {int} NOT NULL,
                PRIMARY KEY (account_id, attachment_id, n)
            )""",
        ),
    ),
    Migration(
        2,
        "devices: state, control tokens, signed orders, escrow keys; account signing key",
        (
            # The account signing key's PUBLIC half (Ed25519), registered by the client.
            "ALTER TABLE accounts ADD COLUMN signing_public_key {blob}",
            "ALTER TABLE accounts ADD COLUMN signing_key_registered_at {int}",
            # state: active | lost | locked | wiped | removed. order_id: the latest order.
            "ALTER TABLE devices ADD COLUMN state TEXT NOT NULL DEFAULT 'active'",
            "ALTER TABLE devices ADD COLUMN order_id TEXT",
            # SHA-256 of the device control token (survives session revocation).
            "ALTER TABLE devices ADD COLUMN control_hash {blob}",
            "CREATE UNIQUE INDEX devices_control_hash ON devices (control_hash)",
            # Every order ever accepted (ids are never reused: replays are refused).
            """CREATE TABLE device_orders (
                account_id TEXT NOT NULL,
                id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                action TEXT NOT NULL,
                issued_at {int} NOT NULL,
                signature {blob} NOT NULL,
                received_at {int} NOT NULL,
                acked_at {int},
                PRIMARY KEY (account_id, id),
                FOREIGN KEY (account_id, device_id)
                    REFERENCES devices (account_id, id) ON DELETE CASCADE
            )""",
            "CREATE INDEX device_orders_device ON device_orders (account_id, device_id)",
            # AES-256-GCM(key derived from the server secret, escrow key), AD = ids.
            """CREATE TABLE escrow_keys (
                account_id TEXT NOT NULL,
                device_id TEXT NOT NULL,
                sealed {blob} NOT NULL,
                created_at {int} NOT NULL,
                PRIMARY KEY (account_id, device_id),
                FOREIGN KEY (account_id, device_id)
                    REFERENCES devices (account_id, id) ON DELETE CASCADE
            )""",
        ),
    ),
    Migration(
        3,
        "account key epochs: KDF parameters and salt of each epoch after the first",
        (
            # Public, like the sign-up KDF columns of accounts: the canonical JSON of
            # protocol.KdfParams (salt in base64). Epoch 1 is the sign-up KDF, not here.
            """CREATE TABLE account_key_epochs (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                epoch INTEGER NOT NULL,
                kdf TEXT NOT NULL,
                created_at {int} NOT NULL,
                PRIMARY KEY (account_id, epoch)
            )""",
        ),
    ),
    Migration(
        4,
        "practice mode: practices, members, invites, collections, grants, items, audit",
        (
            # Public keys and owner-signed statements (canonical JSON of Signed) only;
            # every row goes with its account / practice (ON DELETE CASCADE).
            """CREATE TABLE practices (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                owner_account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                owner_sign_public {blob} NOT NULL,
                owner_enc_public {blob} NOT NULL,
                policy TEXT,
                -- the last audit seq handed out (taken under the practice row's lock)
                audit_seq {int} NOT NULL DEFAULT 0,
                created_at {int} NOT NULL
            )""",
            # An account is in at most one practice (account_id UNIQUE).
            # status: pending | active | removed. proof/lookup: from the join, for the owner.
            """CREATE TABLE practice_members (
                practice_id TEXT NOT NULL REFERENCES practices (id) ON DELETE CASCADE,
                account_id TEXT NOT NULL UNIQUE REFERENCES accounts (id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                email TEXT NOT NULL,
                status TEXT NOT NULL,
                enc_public {blob} NOT NULL,
                sign_public {blob} NOT NULL,
                certificate TEXT,
                proof {blob},
                lookup TEXT,
                keyring {blob},
                joined_at {int} NOT NULL,
                removed_at {int},
                PRIMARY KEY (practice_id, account_id)
            )""",
            # lookup: HKDF of the invite secret (the secret itself never reaches us);
            # envelope: sealed by the owner's client under a key we cannot derive.
            """CREATE TABLE practice_invites (
                lookup TEXT PRIMARY KEY,
                practice_id TEXT NOT NULL REFERENCES practices (id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                email TEXT NOT NULL,
                envelope {blob} NOT NULL,
                created_at {int} NOT NULL,
                expires_at {int} NOT NULL,
                used_at {int},
                account_id TEXT
            )""",
            "CREATE INDEX practice_invites_practice ON practice_invites (practice_id)",
            # key_version: the current version; seq: the last item seq handed out.
            """CREATE TABLE practice_collections (
                id TEXT PRIMARY KEY,
                practice_id TEXT NOT NULL REFERENCES practices (id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                subject TEXT,
                key_version INTEGER NOT NULL,
                seq {int} NOT NULL DEFAULT 0,
                created_at {int} NOT NULL
            )""",
            "CREATE INDEX practice_collections_practice ON practice_collections (practice_id)",
            """CREATE TABLE practice_grants (
                collection_id TEXT NOT NULL
                    REFERENCES practice_collections (id) ON DELETE CASCADE,
                account_id TEXT NOT NULL,
                key_version INTEGER NOT NULL,
                wrapped_key {blob} NOT NULL,
                signature {blob} NOT NULL,
                granted_at {int} NOT NULL,
                PRIMARY KEY (collection_id, account_id, key_version)
            )""",
            "CREATE INDEX practice_grants_account ON practice_grants (account_id)",
            """CREATE TABLE practice_items (
                collection_id TEXT NOT NULL
                    REFERENCES practice_collections (id) ON DELETE CASCADE,
                item_id TEXT NOT NULL,
                seq {int} NOT NULL,
                key_version INTEGER NOT NULL,
                ciphertext {blob} NOT NULL,
                author_account_id TEXT NOT NULL,
                updated_at {int} NOT NULL,
                PRIMARY KEY (collection_id, item_id)
            )""",
            "CREATE INDEX practice_items_seq ON practice_items (collection_id, seq)",
            # sealed to the owner's enc key by the author; we store and order it only.
            """CREATE TABLE practice_audit (
                practice_id TEXT NOT NULL REFERENCES practices (id) ON DELETE CASCADE,
                seq {int} NOT NULL,
                author_account_id TEXT NOT NULL,
                entry_id TEXT NOT NULL,
                sealed {blob} NOT NULL,
                received_at {int} NOT NULL,
                PRIMARY KEY (practice_id, seq),
                UNIQUE (practice_id, author_account_id, entry_id)
            )""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_TYPES = {
    Dialect.SQLITE: {"blob": "BLOB", "int": "INTEGER"},
    Dialect.POSTGRES: {"blob": "BYTEA", "int": "BIGINT"},
}


def _render(statement: str, dialect: Dialect) -> str:
    return statement.format(**_TYPES[dialect])


def _applied(tx: Tx) -> set[int]:
    return {int(r[0]) for r in tx.all("SELECT version FROM schema_migrations")}


def migrate(db: Database, *, now_ms: int) -> list[int]:
    """Bring the schema up to date; return the versions applied now (empty when current).

    Raises StorageError subclasses on database failures; a failed run changes nothing.
    """
    with db.transaction() as tx:
        if db.dialect is Dialect.POSTGRES:
            tx.one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK_KEY,))
        tx.execute(
            _render(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at {int} NOT NULL
                )""",
                db.dialect,
            )
        )
        done = _applied(tx)
        if done and max(done) > LATEST_VERSION:
            raise RuntimeError("the database was migrated by a newer Tacit server")
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                tx.execute(_render(statement, db.dialect))
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now_ms),
            )
            applied.append(migration.version)
        # The server secret keys fake KDF salts and pseudonyms; it lives in the database
        # so every app process shares it and none holds state of its own.
        tx.execute(
            "INSERT INTO server_config (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (SERVER_SECRET_KEY, crypto.random_bytes(crypto.SERVER_SECRET_BYTES)),
        )
    return applied


def schema_version(db: Database) -> int:
    """The highest applied migration, 0 for an empty database."""
    with db.transaction(write=False) as tx:
        if db.dialect is Dialect.POSTGRES:
            exists = tx.one("SELECT to_regclass('schema_migrations') IS NOT NULL")
            present = bool(exists and exists[0])
        else:
            row = tx.one(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            )
            present = row is not None
        if not present:
            return 0
        done = _applied(tx)
    return max(done, default=0)


def load_server_secret(db: Database) -> bytes:
    """The server secret. Raises RuntimeError when the database was never migrated."""
    with db.transaction(write=False) as tx:
        row = tx.one("SELECT value FROM server_config WHERE key = ?", (SERVER_SECRET_KEY,))
    if row is None:
        raise RuntimeError("the database has no server secret; run the migrations")
    return bytes(row[0])
