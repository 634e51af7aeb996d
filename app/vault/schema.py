"""The vault's SQL schema as an ordered list of migrations.

Invariant: a released migration is never edited; changes are new entries. Each runs in
one transaction together with the ``user_version`` bump, so a crash mid-migration leaves
the previous schema intact.

Notes live in ``notes`` (the current revision); every superseded revision is kept in
``note_revisions``. ``notes_fts`` is an external-content FTS5 index over title and body,
kept in step by triggers, with title matches weighted five times the body's.

Version 2 adds signing and the audit trail: a signed note (``signed_at`` set) can be
neither updated nor deleted, addenda can never change, and audit entries are
append-only. Triggers enforce this in the database too, beneath the service's own
checks, so a bug in Python cannot quietly rewrite the record.

Version 4 adds the sync outbox and sync state (see the comment on that migration); version
6 takes the encrypted blobs out of the outbox and lets a sync pull index notes in bulk.
Version 8 adds the practice-mode tables (``practice_*``), which are never synced to the
member's own account.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [
    (
        1,
        (
            """CREATE TABLE meta (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE clients (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                dob TEXT,
                email TEXT,
                phone TEXT,
                status TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'discharged')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX clients_by_name ON clients (name COLLATE NOCASE)",
            """CREATE TABLE notes (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                client_id TEXT NOT NULL REFERENCES clients (id),
                kind TEXT NOT NULL CHECK (kind IN
                    ('intake', 'progress', 'mse', 'treatment_plan', 'psychotherapy')),
                template TEXT NOT NULL,
                title TEXT NOT NULL,
                session_date TEXT,
                body TEXT NOT NULL,
                author TEXT NOT NULL,
                revision INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX notes_by_client ON notes (client_id, session_date DESC, seq DESC)",
            "CREATE INDEX notes_by_date ON notes (session_date DESC, seq DESC)",
            """CREATE TABLE note_revisions (
                note_id TEXT NOT NULL REFERENCES notes (id),
                revision INTEGER NOT NULL,
                title TEXT NOT NULL,
                body TEXT NOT NULL,
                author TEXT NOT NULL,
                saved_at TEXT NOT NULL,
                PRIMARY KEY (note_id, revision)
            ) WITHOUT ROWID""",
            """CREATE TABLE note_tags (
                note_id TEXT NOT NULL REFERENCES notes (id),
                tag TEXT NOT NULL,
                PRIMARY KEY (note_id, tag)
            ) WITHOUT ROWID""",
            "CREATE INDEX note_tags_by_tag ON note_tags (tag)",
            """CREATE VIRTUAL TABLE notes_fts USING fts5 (
                title, body,
                content = 'notes', content_rowid = 'seq',
                tokenize = 'unicode61 remove_diacritics 2'
            )""",
            "INSERT INTO notes_fts (notes_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0)')",
            """CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
                INSERT INTO notes_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
            END""",
            """CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
                INSERT INTO notes_fts (notes_fts, rowid, title, body)
                    VALUES ('delete', old.seq, old.title, old.body);
            END""",
            """CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN
                INSERT INTO notes_fts (notes_fts, rowid, title, body)
                    VALUES ('delete', old.seq, old.title, old.body);
                INSERT INTO notes_fts (rowid, title, body) VALUES (new.seq, new.title, new.body);
            END""",
        ),
    ),
    (
        2,
        (
            "ALTER TABLE notes ADD COLUMN signed_at TEXT",
            """CREATE TABLE note_signatures (
                note_id TEXT PRIMARY KEY REFERENCES notes (id),
                signed_at TEXT NOT NULL,
                signer TEXT NOT NULL,
                public_key BLOB NOT NULL,
                content_hash BLOB NOT NULL,
                signature BLOB NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE addenda (
                id TEXT PRIMARY KEY,
                note_id TEXT NOT NULL REFERENCES notes (id),
                body TEXT NOT NULL,
                author TEXT NOT NULL,
                created_at TEXT NOT NULL,
                note_hash BLOB NOT NULL,
                content_hash BLOB NOT NULL,
                public_key BLOB NOT NULL,
                signature BLOB NOT NULL
            )""",
            "CREATE INDEX addenda_by_note ON addenda (note_id, created_at)",
            """CREATE TRIGGER notes_signed_no_update BEFORE UPDATE ON notes
                WHEN old.signed_at IS NOT NULL BEGIN
                SELECT RAISE(ABORT, 'note_signed');
            END""",
            """CREATE TRIGGER notes_signed_no_delete BEFORE DELETE ON notes
                WHEN old.signed_at IS NOT NULL BEGIN
                SELECT RAISE(ABORT, 'note_signed');
            END""",
            """CREATE TRIGGER note_signatures_immutable BEFORE UPDATE ON note_signatures BEGIN
                SELECT RAISE(ABORT, 'note_signed');
            END""",
            """CREATE TRIGGER addenda_immutable BEFORE UPDATE ON addenda BEGIN
                SELECT RAISE(ABORT, 'note_signed');
            END""",
            """CREATE TABLE audit (
                seq INTEGER PRIMARY KEY,
                at TEXT NOT NULL,
                actor TEXT NOT NULL,
                device TEXT NOT NULL,
                action TEXT NOT NULL,
                record_type TEXT,
                record_id TEXT,
                client_id TEXT,
                detail TEXT,
                mac BLOB NOT NULL
            )""",
            "CREATE INDEX audit_by_record ON audit (record_id, seq)",
            "CREATE INDEX audit_by_client ON audit (client_id, seq)",
            "CREATE INDEX audit_by_action ON audit (action, seq)",
            """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
                SELECT RAISE(ABORT, 'audit_append_only');
            END""",
            """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
                SELECT RAISE(ABORT, 'audit_append_only');
            END""",
        ),
    ),
    (
        3,
        # Search with bounded cost at any vault size: FTS5 reads a doclist in ascending
        # rowid order and can stop after the first N matches, but ranking (bm25) or
        # descending order read every match. Index each note under -seq, so ascending
        # order is newest first; search stops after the newest matches it needs.
        (
            "DROP TRIGGER notes_fts_insert",
            "DROP TRIGGER notes_fts_delete",
            "DROP TRIGGER notes_fts_update",
            "DROP TABLE notes_fts",
            "ALTER TABLE notes ADD COLUMN fts_key INTEGER GENERATED ALWAYS AS (-seq) VIRTUAL",
            "CREATE UNIQUE INDEX notes_by_fts_key ON notes (fts_key)",
            """CREATE VIRTUAL TABLE notes_fts USING fts5 (
                title, body,
                content = 'notes', content_rowid = 'fts_key',
                tokenize = 'unicode61 remove_diacritics 2',
                prefix = '3'
            )""",
            "INSERT INTO notes_fts (notes_fts) VALUES ('rebuild')",
            """CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN
                INSERT INTO notes_fts (rowid, title, body) VALUES (-new.seq, new.title, new.body);
            END""",
            """CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN
                INSERT INTO notes_fts (notes_fts, rowid, title, body)
                    VALUES ('delete', -old.seq, old.title, old.body);
            END""",
            """CREATE TRIGGER notes_fts_update AFTER UPDATE OF title, body ON notes BEGIN
                INSERT INTO notes_fts (notes_fts, rowid, title, body)
                    VALUES ('delete', -old.seq, old.title, old.body);
                INSERT INTO notes_fts (rowid, title, body) VALUES (-new.seq, new.title, new.body);
            END""",
        ),
    ),
    (
        4,
        # Sync (app/sync, app/vault/syncstore.py). The outbox lists records changed
        # locally since they were last pushed; triggers queue them in the same
        # transaction as the change. They stay quiet while ``sync_apply_guard`` holds a
        # row: the sync engine inserts one while it applies pulled items, inside the
        # same transaction, so a change that came from the server is not queued back.
        # ``gen`` counts local changes; a prepared blob remembers the ``gen`` it was
        # made from, so a change made after it stays queued once the blob is pushed.
        (
            """CREATE TABLE sync_outbox (
                kind TEXT NOT NULL,
                ref TEXT NOT NULL,
                gen INTEGER NOT NULL DEFAULT 1,
                prepared_gen INTEGER,
                prepared_rev INTEGER,
                prepared_key_id TEXT,
                prepared_blob BLOB,
                prepared_etag TEXT,
                PRIMARY KEY (kind, ref)
            ) WITHOUT ROWID""",
            """CREATE TABLE sync_state (
                item_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                etag TEXT,
                rev INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE TABLE sync_apply_guard (one INTEGER PRIMARY KEY)",
            """CREATE TABLE sync_refused (
                item_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                reason TEXT NOT NULL,
                at TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE sync_remote_audit (
                item_id TEXT PRIMARY KEY,
                device TEXT NOT NULL,
                seq INTEGER NOT NULL,
                at TEXT NOT NULL,
                actor TEXT NOT NULL,
                action TEXT NOT NULL,
                record_type TEXT,
                record_id TEXT,
                client_id TEXT,
                detail TEXT
            ) WITHOUT ROWID""",
            # The losing text of a concurrent edit is kept as a revision flagged here.
            "ALTER TABLE note_revisions ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0",
            *(
                f"""CREATE TRIGGER sync_queue_{name} AFTER {event} ON {table}
                    WHEN NOT EXISTS (SELECT 1 FROM sync_apply_guard) BEGIN
                    INSERT INTO sync_outbox (kind, ref) VALUES ('{kind}', {ref})
                        ON CONFLICT (kind, ref) DO UPDATE SET gen = gen + 1;
                END"""  # noqa: S608 - built from the constants below
                for name, event, table, kind, ref in (
                    ("client_insert", "INSERT", "clients", "client", "new.id"),
                    ("client_update", "UPDATE", "clients", "client", "new.id"),
                    ("note_insert", "INSERT", "notes", "note", "new.id"),
                    ("note_update", "UPDATE", "notes", "note", "new.id"),
                    ("revision_insert", "INSERT", "note_revisions", "note", "new.note_id"),
                    ("revision_update", "UPDATE", "note_revisions", "note", "new.note_id"),
                    ("tag_insert", "INSERT", "note_tags", "note", "new.note_id"),
                    ("signature_insert", "INSERT", "note_signatures", "note", "new.note_id"),
                    ("addendum_insert", "INSERT", "addenda", "addendum", "new.id"),
                    ("audit_insert", "INSERT", "audit", "audit", "CAST(new.seq AS TEXT)"),
                )
            ),
        ),
    ),
    (
        5,
        # The audit table keeps no secondary indexes: every change writes an audit row in
        # its own commit, and each index is more pages to encrypt and fsync (together
        # ~10% of a note create). Filtering the trail scans it: ~0.1 s at 100,000 entries.
        (
            "DROP INDEX IF EXISTS audit_by_record",
            "DROP INDEX IF EXISTS audit_by_client",
            "DROP INDEX IF EXISTS audit_by_action",
        ),
    ),
    (
        6,
        # The outbox no longer keeps encrypted blobs. Each ~2 KB blob was written into
        # this WITHOUT ROWID B-tree (overflow pages) before its push and zeroed again
        # (secure_delete) after it: about 1 ms per pushed item. Blobs now live in memory
        # for the push only; the row keeps the small prepared state (gen, rev, key id,
        # etag) of an attempt whose answer was never recorded, which is what a later run
        # needs to recognise that push as its own (a 409 whose current etag is ours: see
        # app/sync/engine.py). Rows prepared under schema 5 keep that state; their blobs
        # are dropped here (secure_delete zeroes the freed pages).
        #
        # Pulled notes are indexed in bulk: while ``notes_fts_defer`` holds a row, a new
        # note is not added to the FTS index by the trigger, and the code holding it
        # (SyncStore.apply) indexes the notes it inserted with one statement before its
        # transaction commits. Per note, the trigger's insert makes FTS5 flush its
        # buffered index (a savepoint per statement): ~1.4 ms a note against ~0.6 ms.
        (
            "ALTER TABLE sync_outbox DROP COLUMN prepared_blob",
            "CREATE TABLE notes_fts_defer (one INTEGER PRIMARY KEY)",
            "DROP TRIGGER notes_fts_insert",
            """CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes
                WHEN NOT EXISTS (SELECT 1 FROM notes_fts_defer) BEGIN
                INSERT INTO notes_fts (rowid, title, body) VALUES (-new.seq, new.title, new.body);
            END""",
        ),
    ),
    (
        7,
        # Templates the clinician adds (app/vault/usertemplates.py), and the signing keys
        # of the clinician's devices (app/vault/signing.py: a note signed on another
        # device of the account verifies here). Both sync, as kinds "template" and
        # "signer"; a signer row is never changed or removed.
        (
            """CREATE TABLE user_templates (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                kind TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                sections TEXT NOT NULL,
                archived INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE signers (
                id TEXT PRIMARY KEY,
                public_key BLOB NOT NULL UNIQUE,
                device TEXT NOT NULL,
                added_at TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TRIGGER signers_no_update BEFORE UPDATE ON signers BEGIN
                SELECT RAISE(ABORT, 'signer_immutable');
            END""",
            """CREATE TRIGGER signers_no_delete BEFORE DELETE ON signers BEGIN
                SELECT RAISE(ABORT, 'signer_immutable');
            END""",
            *(
                f"""CREATE TRIGGER sync_queue_{name} AFTER {event} ON {table}
                    WHEN NOT EXISTS (SELECT 1 FROM sync_apply_guard) BEGIN
                    INSERT INTO sync_outbox (kind, ref) VALUES ('{kind}', new.id)
                        ON CONFLICT (kind, ref) DO UPDATE SET gen = gen + 1;
                END"""  # noqa: S608 - built from the constants below
                for name, event, table, kind in (
                    ("template_insert", "INSERT", "user_templates", "template"),
                    ("template_update", "UPDATE", "user_templates", "template"),
                    ("signer_insert", "INSERT", "signers", "signer"),
                )
            ),
            # A Tacit without these kinds refused such items ("could not be applied")
            # and its cursor moved past them; pull everything again once (items whose
            # etag is known are skipped) so they arrive now. Every migration that adds
            # an item kind does the same for its kinds.
            "DELETE FROM meta WHERE key = 'sync_cursor' AND EXISTS "
            "(SELECT 1 FROM sync_refused WHERE kind IN ('template', 'signer'))",
            "DELETE FROM sync_refused WHERE kind IN ('template', 'signer')",
        ),
    ),
    (
        8,
        # Practice mode (docs/PRACTICE.md, app/vault/practicestore.py): the member's
        # practice state and identity keys, the collection keys granted to them, the
        # practice items they can read, what they queued to publish, and (owner) the
        # merged practice audit. None of these tables has a sync_queue trigger: practice
        # data travels through the practice routes, never into the member's own
        # account, and an export never reads them.
        (
            """CREATE TABLE practice_state (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE practice_keys (
                collection_id TEXT NOT NULL,
                key_version INTEGER NOT NULL,
                key BLOB NOT NULL,
                PRIMARY KEY (collection_id, key_version)
            ) WITHOUT ROWID""",
            """CREATE TABLE practice_items (
                collection_id TEXT NOT NULL,
                item_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                author TEXT NOT NULL,
                at TEXT NOT NULL,
                seq INTEGER NOT NULL,
                key_version INTEGER NOT NULL,
                PRIMARY KEY (collection_id, item_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX practice_items_by_kind ON practice_items (kind)",
            """CREATE TABLE practice_outbox (
                collection_id TEXT NOT NULL,
                item_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                body TEXT NOT NULL,
                at TEXT NOT NULL,
                PRIMARY KEY (collection_id, item_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE practice_published (
                collection_id TEXT NOT NULL,
                item_id TEXT NOT NULL,
                digest TEXT NOT NULL,
                PRIMARY KEY (collection_id, item_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE practice_audit (
                seq INTEGER PRIMARY KEY,
                entry_id TEXT NOT NULL,
                member TEXT NOT NULL,
                action TEXT NOT NULL,
                record_type TEXT NOT NULL,
                record_id TEXT,
                client_id TEXT,
                at TEXT NOT NULL,
                UNIQUE (member, entry_id)
            )""",
        ),
    ),
]
