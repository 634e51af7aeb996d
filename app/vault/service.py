"""``VaultService``: the one object the CLI and the desktop app drive.

It owns the vault's lifecycle (create, unlock, lock, passphrase change, recovery), the
lock/idle state machine (with an injectable clock), and delegates record work to
``RecordStore`` while the vault is unlocked.

Invariants:
- while LOCKED there is no DB key and no open connection in this object; every record
  method raises VaultLockedError;
- lock() closes the database and wipes the key; it is idempotent and safe from any thread;
- a failed operation leaves the files exactly as they were (transactions, atomic header
  writes, and the header written last when a vault is created);
- listeners get typed events (models.VaultEvent), never strings;
- every change is audited in its own transaction (app/vault/audit.py); views, lists and
  searches are audited where the caller asks (the CLI always does, the app on opening).
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.errors import (
    DeviceSecretMissingError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    NotSignedInError,
    TacitError,
    VaultExistsError,
    VaultLockedError,
    WrongEscrowKeyError,
    WrongPassphraseError,
    WrongRecoveryKeyError,
)
from app.vault import crypto, fsutil, hardening, header, keyslots, remote
from app.vault.audit import (
    AuditEntry,
    AuditLog,
    AuditVerdict,
    FailureLog,
    audit_query,
    audit_verify,
    chain_key,
)
from app.vault.clock import Clock, SystemClock, iso
from app.vault.crypto import AccountEscrowKey, DbKey, EscrowKey, Passphrase
from app.vault.db import MEMORY_SECURITY_PRAGMA, SCHEMA_VERSION, Database, connect, translate
from app.vault.fsutil import private_dir
from app.vault.keychain import Keychain, OsKeychain
from app.vault.models import (
    Client,
    Conflict,
    LockReason,
    LockState,
    Note,
    NoteSummary,
    RecordChanged,
    Revision,
    SearchHit,
    Template,
    VaultEvent,
    VaultLocked,
    VaultUnlocked,
)
from app.vault.passphrase import require_strong
from app.vault.practicestore import PracticeStore
from app.vault.remote import Order, OrderResult
from app.vault.signing import Addendum, NoteSignature, SigningStore, Verification
from app.vault.store import RecordStore
from app.vault.syncstore import SyncStore
from app.vault.templates import get_template, load_templates
from app.vault.usertemplates import TemplateStore

DEFAULT_IDLE_TIMEOUT = 5 * 60
MIN_IDLE_TIMEOUT = 60
MAX_IDLE_TIMEOUT = 60 * 60
DEFAULT_CLINICIAN = "Clinician"

Listener = Callable[[VaultEvent], None]


@dataclass(frozen=True, slots=True)
class BackupSource:
    """What ``backup_snapshot`` hands the backup writer besides the snapshot file."""

    vault_id: str
    kdf: crypto.KdfParams
    kdf_salt: bytes
    keys: keyslots.BackupKeys
    notes: int


@dataclass(frozen=True, slots=True)
class BackupSettings:
    """The app's automatic backups, kept in the vault's ``meta`` (a folder path can name
    the person, so never in the preferences file). On only with a folder."""

    enabled: bool = True
    folder: str | None = None
    keep: int = 30
    interval_hours: int = 24


# A check-in is written to the header at most this often (the lease counts in days).
CHECKIN_RESOLUTION = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class VaultPaths:
    directory: Path

    @property
    def header(self) -> Path:
        return self.directory / "vault.header"

    @property
    def database(self) -> Path:
        return self.directory / "vault.db"

    @property
    def creating(self) -> Path:
        return self.directory / "vault.db.creating"

    @property
    def failures(self) -> Path:
        return self.directory / "vault.failures"


class IdleTimer:
    """Idle state machine: activity resets it; it expires ``timeout`` seconds after the
    last activity, measured on the injected monotonic clock."""

    def __init__(self, clock: Clock, timeout: float) -> None:
        self._clock = clock
        self.timeout = timeout
        self._last = clock.monotonic()

    def touch(self) -> None:
        self._last = self._clock.monotonic()

    def remaining(self) -> float:
        return max(0.0, self.timeout - (self._clock.monotonic() - self._last))

    def expired(self) -> bool:
        return self.remaining() <= 0.0


class VaultService:
    def __init__(
        self,
        directory: Path,
        *,
        clock: Clock | None = None,
        keychain: Keychain | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.paths = VaultPaths(Path(directory))
        self.clock: Clock = clock or SystemClock()
        self.keychain: Keychain = keychain if keychain is not None else OsKeychain()
        self._idle = IdleTimer(self.clock, self._valid_timeout(idle_timeout))
        self._listeners: list[Listener] = []
        self._guard = threading.RLock()
        self._header_lock_depth = 0  # _header_txn: reentrant use of the file lock
        self._header_lock_fd: int | None = None
        self._db: Database | None = None
        self._db_key: DbKey | None = None
        self._store: RecordStore | None = None
        self._header: header.VaultHeader | None = None
        self._audit: AuditLog | None = None
        self._signing: SigningStore | None = None
        self._user_templates: TemplateStore | None = None
        self._signing_key: crypto.SigningKey | None = None
        # The KEK of a backup's passphrase slot (keyslots.BackupKek): derived at a
        # passphrase unlock, wiped at lock; None after a recovery-key or escrow unlock.
        self._backup_kek: keyslots.BackupKek | None = None
        self._device = "unknown"
        self._author = DEFAULT_CLINICIAN
        # note id -> revision created by an autosave in this editing session; further
        # autosaves amend it instead of piling up one revision per pause in typing.
        self._drafts: dict[str, int] = {}

    # -- events ------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: VaultEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    # -- state -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.paths.header.exists()

    @property
    def state(self) -> LockState:
        return LockState.UNLOCKED if self._store is not None else LockState.LOCKED

    @property
    def is_unlocked(self) -> bool:
        return self._store is not None

    def _now(self) -> str:
        return iso(self.clock.now())

    def read_header(self) -> header.VaultHeader:
        """The header as on disk (no key needed). Raises VaultMissingError,
        IntegrityError, UnsupportedVersionError."""
        return header.read(self.paths.header)

    # -- lifecycle ---------------------------------------------------------------------
    def create(
        self,
        passphrase: Passphrase,
        *,
        clinician: str | None = None,
        kdf_params: crypto.KdfParams | None = None,
    ) -> str:
        """Create a vault and leave it unlocked. Returns the printable recovery key, which
        is shown once and stored nowhere. Raises VaultExistsError, WeakPassphraseError,
        StorageError."""
        with self._guard:
            if self.exists():
                raise VaultExistsError(f"a vault already exists in {self.paths.directory}")
            if self.paths.database.exists():
                raise VaultExistsError(
                    f"{self.paths.database} exists without its header; refusing to touch it"
                )
            require_strong(passphrase)
            params = kdf_params or crypto.new_creation_params()
            private_dir(self.paths.directory)
            hardening.harden_process()
            created = keyslots.create(passphrase, self.keychain, params, self._now())
            # Build the database under a temporary name, write the header, then rename:
            # a crash at any point leaves either no vault or a complete one.
            self.paths.creating.unlink(missing_ok=True)
            db = Database(connect(self.paths.creating, created.db_key, create=True))
            try:
                db.migrate()
                store = RecordStore(db, self._now, lambda: self._author)
                store.set_meta("vault_id", created.header.vault_id)
                store.set_meta("clinician", (clinician or DEFAULT_CLINICIAN).strip())
                store.set_meta("created_at", created.header.created_at)
                store.set_meta("device_id", str(uuid.uuid4()))
            finally:
                db.close()
            try:
                header.write(self.paths.header, created.header)
                self.paths.creating.replace(self.paths.database)
            except BaseException:
                self.paths.header.unlink(missing_ok=True)
                self.paths.creating.unlink(missing_ok=True)
                created.db_key.wipe()
                raise
            try:
                self._open(created.header, created.db_key)
            except BaseException:
                if created.backup_kek is not None:
                    created.backup_kek.wipe()
                raise
            self._backup_kek = created.backup_kek
            return created.recovery_key

    def failed_unlocks(self) -> int:
        """Failed unlock attempts since the last successful one (survives restarts), so
        the unlock screen's growing delay cannot be reset by restarting the app."""
        return len(FailureLog(self.paths.failures).pending())

    def unlock(self, passphrase: Passphrase) -> None:
        """Raises VaultMissingError, WrongPassphraseError, DeviceSecretMissingError,
        IntegrityError, UnsupportedVersionError, WeakKdfError; DeviceLockedError /
        DeviceWipedError after a remote order, LeaseExpiredError / ClockBackwardsError
        when the offline lease is on and refuses (both before any key is derived)."""
        with self._guard:
            if self.is_unlocked:
                return
            hdr = self.read_header()
            self._refuse_if_remote_locked(hdr)
            remote.check_lease(hdr, self.clock.now())
            try:
                db_key, backup_kek = keyslots.open_with_passphrase_keys(
                    hdr, passphrase, self.keychain
                )
            except (WrongPassphraseError, DeviceSecretMissingError):
                FailureLog(self.paths.failures).note(self._now())
                raise
            try:
                self._open(hdr, db_key)
            except BaseException:
                backup_kek.wipe()
                raise
            self._backup_kek = backup_kek
            if hdr.lease_days is not None:  # the clock-rollback check needs the latest time
                with contextlib.suppress(TacitError):
                    seen = remote.later(hdr.device.max_seen, self.clock.now())
                    self._update_device_state(max_seen=seen)

    def unlock_with_recovery_key(self, recovery_key: str) -> None:
        """Unlock with the printable recovery key; the caller should then set a new
        passphrase (``change_passphrase``). It also lifts a remote lock: the owner holds
        the recovery key, a thief does not (docs/SECURITY.md, "Lost device"). Raises
        WrongRecoveryKeyError, IntegrityError, DeviceWipedError."""
        with self._header_txn():
            if self.is_unlocked:
                return
            hdr = self.read_header()
            if hdr.wiped:
                self._refuse_if_remote_locked(hdr)
            try:
                db_key = keyslots.open_with_recovery_key(hdr, recovery_key)
            except WrongRecoveryKeyError:
                FailureLog(self.paths.failures).note(self._now())
                raise
            mark = hdr.device.remote_lock
            via = "recovery key" + (f"; remote lock {mark.order_id} lifted" if mark else "")
            self._open(hdr, db_key, via=via)
            if mark is not None:
                self._write_header(keyslots.reseal(hdr.with_device(remote_lock=None), db_key))

    def _open(self, hdr: header.VaultHeader, db_key: DbKey, via: str = "passphrase") -> None:
        if not self.paths.database.exists() and self.paths.creating.exists():
            self.paths.creating.replace(self.paths.database)  # finish an interrupted create
        try:
            db = Database(connect(self.paths.database, db_key, create=False))
        except BaseException:
            db_key.wipe()
            raise
        try:
            db.migrate()
            store = RecordStore(db, self._now, lambda: self._author)
            if store.get_meta("vault_id") != hdr.vault_id:
                raise IntegrityError("the database does not belong to this vault header")
            self._author = store.get_meta("clinician") or DEFAULT_CLINICIAN
            self._device = store.get_meta("device_id") or "unknown"
            signing_key = self._load_signing_key(store)
            audit = AuditLog(
                chain_key(db_key, hdr.vault_id), hdr.vault_id, self.clock.now,
                lambda: self._author, lambda: self._device, iso,
            )  # fmt: skip
            store = RecordStore(db, self._now, lambda: self._author, audit)
            self._record_unlock(audit, via, hdr, db)
        except BaseException:
            db.close()
            db_key.wipe()
            raise
        hardening.harden_process()
        self._db, self._db_key, self._store, self._header = db, db_key, store, hdr
        self._audit, self._signing_key = audit, signing_key
        self._signing = SigningStore(db, store, audit, self._now, lambda: self._author)
        self._user_templates = TemplateStore(db, self._now, load_templates, audit)
        with contextlib.suppress(TacitError):  # a read-only (damaged) vault still opens
            self._signing.ensure_signer(signing_key.public_key(), self._device)
        self._idle.touch()
        self._emit(VaultUnlocked(hdr.vault_id))

    def _load_signing_key(self, store: RecordStore) -> crypto.SigningKey:
        """The clinician's Ed25519 key, kept inside the vault; made on first need (vaults
        from before signing existed get theirs at their first unlock)."""
        seed = store.get_meta("signing_key")
        if seed is None:
            key = crypto.SigningKey.generate()
            store.set_meta("signing_key", key.hex())
            store.set_meta("signing_public_key", key.public_key().hex())
            return key
        return crypto.SigningKey(bytes.fromhex(seed))

    def _record_unlock(
        self, audit: AuditLog, via: str, hdr: header.VaultHeader, db: Database
    ) -> None:
        failures = FailureLog(self.paths.failures)
        for at in failures.pending():
            audit.defer("failed_unlock", detail="noted at the next unlock", at=at)
        # Events noted in the header while the database was closed (a remote lock while
        # locked); one already in the trail (a crash between the two writes) is skipped.
        for note in hdr.device.pending_audit:
            sql = "SELECT 1 FROM audit WHERE action = ? AND detail = ? LIMIT 1"
            if db.one(sql, (note.action, note.detail)) is None:
                audit.defer(note.action, record_type="device", detail=note.detail, at=note.at)
        audit.defer("unlock", detail=f"with the {via}")

        notes_left = bool(hdr.device.pending_audit)

        def flushed() -> None:  # once they are in the trail
            nonlocal notes_left
            failures.clear()
            if notes_left:
                notes_left = False
                with contextlib.suppress(Exception):  # kept, and skipped next time
                    self._update_device_state(pending_audit=())

        audit.on_flushed = flushed

    def lock(
        self, reason: LockReason = LockReason.USER, *, record: bool = True,
        detail: str | None = None,
    ) -> None:  # fmt: skip
        """Write deferred audit events and a lock entry (``detail`` or the reason), close
        the database and wipe the keys. Idempotent. ``record=False`` drops the deferred
        events instead (a command that failed leaves the vault as it was)."""
        with self._guard:
            if self._db is None:
                return
            if self._audit is not None and not record:
                self._audit.discard_pending()
            elif self._store is not None and not self._db.damaged:
                with contextlib.suppress(Exception):  # a broken disk must not block locking
                    self._store.record("lock", detail=detail or reason.value)
                    self._store.flush_audit()
            self._db.close()
            for secret in (self._db_key, self._signing_key, self._backup_kek):
                if secret is not None:
                    secret.wipe()
            if self._audit is not None:
                self._audit.wipe()
            self._db = self._db_key = self._store = None
            self._signing_key = None
            self._backup_kek = None
            self._audit = None
            self._signing = None
            self._user_templates = None
            self._header = None
            self._drafts.clear()
        self._emit(VaultLocked(reason))

    def change_passphrase(self, new_passphrase: Passphrase) -> None:
        """Rewrap the DB key under a new passphrase (the vault must be unlocked). The
        old passphrase stops working at once. Raises WeakPassphraseError, StorageError."""
        with self._header_txn():
            self._require_unlocked()
            require_strong(new_passphrase)
            current, db_key = self._current_header()  # refuses once a remote lock came in
            params = crypto.new_creation_params()
            new_header, backup_kek = keyslots.set_passphrase_keys(
                current, db_key, new_passphrase, self.keychain, params
            )
            try:
                header.write(self.paths.header, new_header)
            except BaseException:
                backup_kek.wipe()
                raise
            self._header = new_header
            self._set_backup_kek(backup_kek)
            self._require_unlocked().record("passphrase_change")

    # -- idle --------------------------------------------------------------------------
    @staticmethod
    def _valid_timeout(seconds: float) -> float:
        if not MIN_IDLE_TIMEOUT <= seconds <= MAX_IDLE_TIMEOUT:
            raise InvalidInputError("the idle timeout must be between 1 and 60 minutes")
        return float(seconds)

    @property
    def idle_timeout(self) -> float:
        return self._idle.timeout

    @idle_timeout.setter
    def idle_timeout(self, seconds: float) -> None:
        self._idle.timeout = self._valid_timeout(seconds)

    def record_activity(self) -> None:
        self._idle.touch()

    def idle_remaining(self) -> float:
        return self._idle.remaining()

    def check_idle(self) -> bool:
        """Lock if the idle timeout has passed. Returns True when it locked."""
        if self.is_unlocked and self._idle.expired():
            self.lock(LockReason.IDLE)
            return True
        return False

    # -- records -----------------------------------------------------------------------
    def _require_unlocked(self) -> RecordStore:
        store = self._store
        if store is None:
            raise VaultLockedError()
        return store

    def add_client(
        self, name: str, *, dob: str | None = None, email: str | None = None,
        phone: str | None = None,
    ) -> Client:  # fmt: skip
        client = self._require_unlocked().add_client(name, dob, email, phone)
        self._emit(RecordChanged("client", client.id))
        return client

    def get_client(self, client_id: str, *, record_view: bool = False) -> Client:
        store = self._require_unlocked()
        client = store.get_client(client_id)
        if record_view:
            store.record("view", "client", client.id, client.id)
        return client

    def list_clients(
        self, *, status: str | None = None, query: str | None = None, audit: bool = False
    ) -> list[Client]:
        store = self._require_unlocked()
        clients = store.list_clients(status=status, query=query)
        if audit:
            store.record("list", "client", detail=f"{len(clients)} shown")
        return clients

    def update_client(self, client_id: str, **changes: str | None) -> Client:
        client = self._require_unlocked().update_client(client_id, **changes)
        self._emit(RecordChanged("client", client.id))
        return client

    def discharge_client(self, client_id: str) -> Client:
        return self.update_client(client_id, status="discharged")

    def templates(self, *, include_archived: bool = False) -> tuple[Template, ...]:
        """The shipped templates, then (when unlocked) the clinician's own."""
        own = self._user_templates
        if own is None or not self.is_unlocked:
            return load_templates()
        return load_templates() + tuple(own.list(include_archived=include_archived))

    def template(self, template_id: str) -> Template:
        """A shipped template by id, or one of the clinician's by id, id prefix or name."""
        own = self._user_templates
        try:
            return get_template(template_id)
        except NotFoundError:
            found = own.find(template_id) if own is not None and self.is_unlocked else None
            if found is None:
                raise
            return found

    def _own_templates(self) -> TemplateStore:
        self._require_unlocked()
        if self._user_templates is None:
            raise VaultLockedError()
        return self._user_templates

    def add_template(
        self, name: str, kind: str, sections: Iterable[str], description: str = ""
    ) -> Template:
        """A template of the clinician's own (kept in the vault and synced)."""
        template = self._own_templates().add(name, kind, sections, description)
        self._emit(RecordChanged("template", template.id))
        return template

    def update_template(
        self, template_id: str, *, name: str | None = None, kind: str | None = None,
        sections: Iterable[str] | None = None, description: str | None = None,
        archived: bool | None = None,
    ) -> Template:  # fmt: skip
        """Change or archive (``archived=True``) one of the clinician's templates; shipped
        templates cannot change. Notes made from it are not touched."""
        template = self._own_templates().update(
            template_id, name=name, kind=kind, sections=sections, description=description,
            archived=archived,
        )  # fmt: skip
        self._emit(RecordChanged("template", template.id))
        return template

    def create_note(
        self,
        client_id: str,
        template_id: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        body: str | None = None,
        session_date: str | None = None,
        tags: Iterable[str] = (),
    ) -> Note:
        """A new note from a template: with no body, the template's sections."""
        store = self._require_unlocked()
        template = self.template(template_id)
        if template.archived:
            raise InvalidInputError("that template is archived; restore it or pick another")
        when = session_date or self.clock.now().date().isoformat()
        note = store.create_note(
            client_id,
            kind=kind or template.kind,
            template=template.id,
            title=title or f"{template.name} {when}",
            body=body if body else template.initial_body(),
            session_date=when,
            tags=tags,
        )
        self._emit(RecordChanged("note", note.id))
        return note

    def get_note(self, note_id: str, *, record_view: bool = True) -> Note:
        """The note in full. Opening a note is a view and is audited unless the caller
        only refreshes what it already shows (``record_view=False``)."""
        store = self._require_unlocked()
        note = store.get_note(note_id)
        if record_view:
            store.record("view", "note", note.id, note.client_id)
        return note

    def list_notes(
        self, client_id: str | None = None, *, limit: int = 50, offset: int = 0,
        audit: bool = False,
    ) -> list[NoteSummary]:  # fmt: skip
        store = self._require_unlocked()
        notes = store.list_notes(client_id, limit=limit, offset=offset)
        if audit:
            cid = store.resolve_id("clients", client_id) if client_id else None
            store.record("list", "note", None, cid, detail=f"{len(notes)} shown")
        return notes

    def count_notes(self, client_id: str | None = None) -> int:
        return self._require_unlocked().count_notes(client_id)

    def edit_note(
        self,
        note_id: str,
        *,
        body: str | None = None,
        title: str | None = None,
        session_date: str | None = None,
        expected_revision: int | None = None,
        autosave: bool = False,
    ) -> Note:
        """Save an edit as a new revision (the old one is kept). With ``autosave``, the
        first autosave of an editing session makes a new revision and later ones amend
        it, until ``finish_editing`` (explicit save, closing the note, or lock)."""
        store = self._require_unlocked()
        nid = store.resolve_id("notes", note_id)
        note = store.edit_note(
            nid, body=body, title=title, session_date=session_date,
            expected_revision=expected_revision,
            amend_revision=self._drafts.get(nid) if autosave else None,
        )  # fmt: skip
        if autosave:
            self._drafts[nid] = note.revision
        else:
            self._drafts.pop(nid, None)
        self._emit(RecordChanged("note", note.id))
        return note

    def finish_editing(self, note_id: str) -> None:
        """End the editing session: the next edit of this note starts a new revision."""
        self._drafts.pop(note_id, None)

    def note_history(self, note_id: str, *, record_view: bool = True) -> list[Revision]:
        store = self._require_unlocked()
        revisions = store.history(note_id)
        if record_view:
            note = store.get_note(revisions[-1].note_id)
            store.record("view", "note", note.id, note.client_id, detail="history")
        return revisions

    # -- sync conflicts ----------------------------------------------------------------
    def conflicts(self, note_id: str | None = None) -> list[Conflict]:
        """Open sync conflicts: texts another device saved while this one edited the
        same note. Both texts are in the note's history; the clinician picks one."""
        return self._require_unlocked().conflicts(note_id)

    def resolve_conflict(self, note_id: str, revision: int, *, keep: str) -> Note:
        """``keep="current"`` keeps the current text; ``keep="conflict"`` makes the
        conflicting text the current one (a new revision). Recorded in the audit trail;
        the resolution syncs to the other devices."""
        store = self._require_unlocked()
        nid = store.resolve_id("notes", note_id)
        self._drafts.pop(nid, None)
        note = store.resolve_conflict(nid, revision, keep=keep)
        self._emit(RecordChanged("note", nid))
        return note

    def search(self, text: str, *, limit: int = 20, audit: bool = False) -> list[SearchHit]:
        """Ranked search. The audit entry (when asked for) records the number of hits,
        never the query, which may hold a name."""
        store = self._require_unlocked()
        hits = store.search(text, limit=limit)
        if audit:
            store.record("search", "note", detail=f"{len(hits)} hits")
        return hits

    # -- sign & lock -------------------------------------------------------------------
    def _signing_parts(self) -> tuple[SigningStore, crypto.SigningKey]:
        self._require_unlocked()
        if self._signing is None or self._signing_key is None:
            raise VaultLockedError()
        return self._signing, self._signing_key

    def signing_public_key(self) -> str:
        """The clinician's Ed25519 public key (hex), for others to verify signatures."""
        return self._signing_parts()[1].public_key().hex()

    def sign_note(self, note_id: str) -> NoteSignature:
        """Sign and lock a note: it can never change again, only take addenda. Raises
        NoteSignedError if it is already signed."""
        signing, key = self._signing_parts()
        nid = self._require_unlocked().resolve_id("notes", note_id)
        self._drafts.pop(nid, None)
        signature = signing.sign(nid, key)
        self._emit(RecordChanged("note", nid))
        return signature

    def note_signature(self, note_id: str) -> NoteSignature | None:
        signing, _ = self._signing_parts()
        return signing.signature(self._require_unlocked().resolve_id("notes", note_id))

    def add_addendum(self, note_id: str, body: str) -> Addendum:
        """A dated, signed addendum to a signed note. Raises NoteNotSignedError."""
        signing, key = self._signing_parts()
        addendum = signing.add_addendum(note_id, body, key)
        self._emit(RecordChanged("note", addendum.note_id))
        return addendum

    def addenda(self, note_id: str) -> list[Addendum]:
        signing, _ = self._signing_parts()
        return signing.addenda(self._require_unlocked().resolve_id("notes", note_id))

    def verify_note(self, note_id: str) -> Verification:
        signing, key = self._signing_parts()
        store = self._require_unlocked()
        nid = store.resolve_id("notes", note_id)
        result = signing.verify(nid, signing.trusted_keys() | {key.public_key()})
        store.record("verify", "note", nid, store.get_note(nid).client_id,
                     detail="ok" if result.ok else "failed")  # fmt: skip
        return result

    def notes_for_release(
        self, client_id: str, *, include_psychotherapy: bool = False
    ) -> list[Note]:
        """Every note of a client that belongs in a record release or export, oldest
        first. Psychotherapy (process) notes are left out unless explicitly included:
        HIPAA keeps them apart from the designated record set."""
        store = self._require_unlocked()
        cid = store.resolve_id("clients", client_id)
        total = store.count_notes(cid)
        summaries = store.list_notes(cid, limit=max(total, 1))
        notes = [store.get_note(s.id) for s in reversed(summaries)]
        return [n for n in notes if include_psychotherapy or n.kind != "psychotherapy"]

    # -- audit trail -------------------------------------------------------------------
    def flush_audit(self) -> None:
        """Write deferred audit events (views, lists, searches) now. The desktop app
        calls this every few seconds; locking always does it."""
        self._require_unlocked().flush_audit()

    def record_event(
        self, action: str, *, record_type: str | None = None, record_id: str | None = None,
        client_id: str | None = None, detail: str | None = None,
    ) -> None:  # fmt: skip
        """Audit something the caller did (print, export, settings change), written at
        once. ``detail`` must not hold client data or note text."""
        self._require_unlocked().record(action, record_type, record_id, client_id, detail, now=True)

    def audit_entries(
        self, *, record_id: str | None = None, client_id: str | None = None,
        action: str | None = None, since: str | None = None, limit: int | None = None,
        after_seq: int | None = None,
    ) -> list[AuditEntry]:  # fmt: skip
        """Audit entries, oldest first, filtered. ``since`` is a date or ISO time;
        ``after_seq`` keeps entries after that sequence number (practice forwarding).
        Deferred events are written first, so the listing is complete."""
        self._require_unlocked().flush_audit()
        if self._db is None:
            raise VaultLockedError()
        return audit_query(self._db, record_id=record_id, client_id=client_id,
                           action=action, since=since, limit=limit,
                           after_seq=after_seq)  # fmt: skip

    def verify_audit(self) -> AuditVerdict:
        """Walk the whole chain. Never raises for a broken chain: reports it."""
        self._require_unlocked().flush_audit()
        if self._db is None or self._audit is None:
            raise VaultLockedError()
        return audit_verify(self._db, self._audit)

    def check(self) -> list[str]:
        """Full integrity check of the database pages and indexes."""
        self._require_unlocked()
        if self._db is None:
            raise VaultLockedError()
        return self._db.check()

    def status(self) -> dict[str, Any]:
        """What `tacit status` shows. Works locked (header facts only) and unlocked."""
        hdr = self._header or self.read_header()
        info: dict[str, Any] = {
            "vault": str(self.paths.directory),
            "vault_id": hdr.vault_id,
            "state": self.state.value,
            "format_version": hdr.format_version,
            "schema_version": SCHEMA_VERSION,
            "kdf": {k: v for k, v in hdr.kdf.to_dict().items() if k != "version"},
            "keychain_bound": hdr.keychain_bound,
            "keychain_available": self.keychain.available(),
            "insecure_test_kdf": not hdr.kdf.at_least(crypto.PRODUCTION_FLOOR),
            "recovery_slot": header.SLOT_RECOVERY in hdr.slots,
            "created_at": hdr.created_at,
            "idle_timeout_s": int(self.idle_timeout),
            "device_locked": hdr.device_locked or hdr.wiped,
            "remote": remote.status(hdr),
        }
        store = self._store
        if store is not None:
            info["clients"] = store.count("clients")
            info["notes"] = store.count("notes")
            info["revisions"] = store.count("note_revisions") + info["notes"]
            info["clinician"] = self._author
            info["device_id"] = self._device
            info["audit_entries"] = store.count("audit")
            info["audit_pending"] = self._audit.pending if self._audit else 0
            info["signed_notes"] = store.count("note_signatures")
            if self._signing_key is not None:
                info["signing_public_key"] = self._signing_key.public_key().hex()
        info["process"] = hardening.status()
        if self._db is not None:
            info["process"]["memory_security"] = str(self._db.one(MEMORY_SECURITY_PRAGMA)[0]) == "1"
        return info

    def close(self, *, record: bool = True) -> None:
        with contextlib.suppress(Exception):
            self.lock(LockReason.QUIT, record=record)

    # -- sync --------------------------------------------------------------------------
    def sync_store(self) -> SyncStore:
        """The vault side of sync (outbox, sync state, record <-> item content), for
        app/sync while the vault is unlocked. Raises VaultLockedError."""
        self._require_unlocked()
        if self._db is None or self._header is None:
            raise VaultLockedError()
        return SyncStore(self._db, self._audit, self._header.vault_id, self._now)

    def practice_store(self) -> PracticeStore:
        """The vault side of practice mode (app/vault/practicestore.py), for the practice
        client while the vault is unlocked; it refuses (VaultLockedError) once the vault
        locks. Raises VaultLockedError."""
        self._require_unlocked()
        db = self._db
        if db is None:
            raise VaultLockedError()
        return PracticeStore(db, self._audit, self._now, lambda: self._db is db)

    def sync_changed(self) -> None:
        """Tell listeners that a sync applied records from elsewhere (lists refresh)."""
        self._emit(RecordChanged("sync", ""))

    @property
    def device_id(self) -> str:
        """This vault's device id (meta ``device_id``), also its sync device id."""
        self._require_unlocked()
        return self._device

    # -- remote lock (lost device; the logic is in app/vault/remote.py) ----------------
    def _write_header(self, new: header.VaultHeader) -> None:
        remote.write_header(self.paths.header, new)
        if self.is_unlocked:
            self._header = new

    @contextlib.contextmanager
    def _header_txn(self) -> Iterator[None]:
        """Every read-modify-write of the header runs under this: the thread lock and an
        exclusive lock on ``vault.lock`` beside the header, so another process (the app's
        background sync, a CLI command carrying out an order) cannot write back a stale
        header, e.g. one with the passphrase slot a lock order just destroyed.
        Reentrant within this service."""
        with self._guard:
            if self._header_lock_depth == 0:
                self._header_lock_fd = fsutil.lock_file(self.paths.directory / "vault.lock")
            self._header_lock_depth += 1
            try:
                yield
            finally:
                self._header_lock_depth -= 1
                if self._header_lock_depth == 0 and self._header_lock_fd is not None:
                    fsutil.unlock_file(self._header_lock_fd)
                    self._header_lock_fd = None

    def _update_device_state(self, **changes: Any) -> None:
        """Change the header's unauthenticated device state on disk (no key needed). An
        unlocked vault keeps its authenticated fields as read at unlock: only the device
        state is taken from the file (an edited file cannot slip a signing key or a lease
        setting under the MAC at the next reseal)."""
        with self._header_txn():
            new = self.read_header().with_device(**changes)
            header.write(self.paths.header, new)  # no slot changes: no overwrite needed
            if self.is_unlocked and self._header is not None:
                self._header = replace(self._header, device=new.device)

    def _current_header(self) -> tuple[header.VaultHeader, DbKey]:
        """The unlocked vault's authenticated header with the device state as on disk
        (another process may have recorded a check-in, or carried out an order: then this
        one locks too). Raises VaultLockedError, DeviceLockedError."""
        self._require_unlocked()
        if self._header is None or self._db_key is None:
            raise VaultLockedError()
        disk = self.read_header()
        if disk.device.remote_lock is not None:
            self.lock(LockReason.REMOTE)
            remote.refuse_if_remote_locked(disk)
        return replace(self._header, device=disk.device), self._db_key

    def _order_header(self) -> header.VaultHeader:
        """What orders are checked against: while unlocked, the header authenticated at
        unlock (an edited file cannot swap the signing key under an open vault)."""
        disk = self.read_header()
        if self._header is not None and self.is_unlocked:
            return replace(self._header, device=disk.device)
        return disk

    def _refuse_if_remote_locked(self, hdr: header.VaultHeader) -> None:
        """Raise DeviceLockedError / DeviceWipedError, first finishing what a crash may
        have left undone (the keychain secret, the database files)."""
        if hdr.device.remote_lock is not None:
            self.keychain.delete(hdr.vault_id)
            if hdr.wiped:
                remote.shred(remote.database_files(self.paths.directory))
        remote.refuse_if_remote_locked(hdr)

    def set_account_signing_key(self, public_key: bytes, account_id: str) -> None:
        """Link the vault to a sync account: the account signing public key (raw Ed25519,
        32 bytes, derived by the client from the master key, never taken from the server)
        and the account id go into the header with this vault's device id, so orders can
        be verified while the vault is locked. Relinking to another account drops the
        escrow slot and the practice order key (they were that account's). Raises
        VaultLockedError, InvalidInputError, StorageError."""
        with self._header_txn():
            hdr, db_key = self._current_header()
            if not crypto.is_public_key(bytes(public_key)):
                raise InvalidInputError("the account signing key is not an Ed25519 public key")
            if not remote.is_uuid(account_id) or not remote.is_uuid(self._device):
                raise InvalidInputError("the account and device ids must be lowercase UUIDs")
            new = replace(hdr, account=header.AccountLink(account_id, self._device,
                                                          bytes(public_key)))  # fmt: skip
            if hdr.account is not None and hdr.account.account_id != account_id:
                # Both were that account's: its escrow slot, and its practice's order key.
                new = replace(new.without_slot(header.SLOT_ESCROW), practice_order_key=None)
            self._write_header(keyslots.reseal(new, db_key))
            self._require_unlocked().record(
                "account", detail="account signing key set for remote lock", now=True
            )

    def set_practice_order_key(self, public_key: bytes | None) -> None:
        """Trust (``None``: stop trusting) lock orders signed by the practice owner's
        Ed25519 key (docs/PRACTICE.md, "Offboarding"), besides the account's: the raw
        public key goes into the header under its MAC, so it survives locks and header
        rewrites and an edited file is caught at the next unlock. Needs the unlocked
        vault. Raises VaultLockedError, InvalidInputError, StorageError."""
        with self._header_txn():
            hdr, db_key = self._current_header()
            key = None if public_key is None else bytes(public_key)
            if key is not None and not crypto.is_public_key(key):
                raise InvalidInputError("the practice order key is not an Ed25519 public key")
            if hdr.practice_order_key == key:
                return
            self._write_header(keyslots.reseal(replace(hdr, practice_order_key=key), db_key))
            self._require_unlocked().record(
                "account", detail=f"practice order key {'set' if key else 'removed'}", now=True
            )

    def verify_order(self, order: Mapping[str, object], signature: bytes) -> Order:
        """Check a device order (the ``order`` object and the decoded signature of
        ``GET /v1/devices/self/order``); works locked. Raises OrderRefusedError (see
        ``remote.verify_order`` for ``details["reason"]``), VaultMissingError."""
        return remote.verify_order(self._order_header(), order, signature)

    def apply_order(self, order: Order) -> OrderResult:
        """Carry out a verified order, locked or unlocked; idempotent and crash-safe (the
        header without the destroyed slots is written first). lock: lock now, destroy the
        passphrase slot and the keychain device secret. wipe: destroy every slot and the
        device secret, then overwrite and delete the database files. restore: only moves
        the replay mark (see ``restore_from_escrow``). Acknowledge to the server with the
        result's ``ack_state`` only after this returns. Raises OrderRefusedError (checked
        again here), StorageError."""
        with self._header_txn():
            hdr = self._order_header()
            order = remote.verify_order(hdr, order.to_dict(), order.signature)
            now = self._now()
            if hdr.wiped:
                return self._finish_wipe(hdr, order, already=True)
            if order.action == "restore":
                self._write_header(remote.restore_order_header(hdr, order, now))
                return OrderResult(order.order_id, order.action, None, now, False)
            if order.action == "wipe":
                self._write_header(remote.wiped_header(hdr, order, now))
                return self._finish_wipe(hdr, order, already=False)
            was_unlocked = self.is_unlocked
            destroyed = tuple(n for n in (header.SLOT_PASSPHRASE,) if n in hdr.slots)
            mark = hdr.device.remote_lock
            applied_at = mark.applied_at if order.current and mark is not None else now
            if destroyed or not order.current:
                new = remote.locked_header(hdr, order, applied_at)
                if was_unlocked and self._db_key is not None:
                    new = keyslots.reseal(new, self._db_key)
                self._write_header(new)
            self.keychain.delete(hdr.vault_id)
            if was_unlocked:
                self.lock(LockReason.REMOTE, detail=remote.audit_detail(order))
            return OrderResult(
                order.order_id, order.action, "locked", applied_at, order.current, destroyed,
                was_unlocked=was_unlocked, audit="recorded" if was_unlocked else "pending",
            )  # fmt: skip

    def _finish_wipe(self, hdr: header.VaultHeader, order: Order, *, already: bool) -> OrderResult:
        was_unlocked = self.is_unlocked
        if was_unlocked:
            self.lock(LockReason.REMOTE, record=False)  # the trail is about to be shredded
        self.keychain.delete(hdr.vault_id)
        removed = remote.shred(remote.database_files(self.paths.directory))
        mark = hdr.device.remote_lock
        return OrderResult(
            order.order_id, order.action, "wiped",
            mark.applied_at if already and mark is not None else self._now(), already,
            () if already else tuple(sorted(hdr.slots)), removed, was_unlocked,
        )  # fmt: skip

    def add_escrow_slot(self, server_key: EscrowKey, account_key: AccountEscrowKey) -> None:
        """Wrap the DB key in the escrow slot (replacing any earlier one): the server's
        escrow key for this device and the account's half (``crypto.account_escrow_key``
        of the master key), per docs/PROTOCOL.md. Needs the unlocked, linked vault.
        Raises VaultLockedError, NotSignedInError, StorageError."""
        with self._header_txn():
            hdr, db_key = self._current_header()
            if hdr.account is None:
                raise NotSignedInError("link the vault to a sync account before escrow")
            self._write_header(keyslots.add_escrow_slot(hdr, db_key, server_key, account_key))
            self._require_unlocked().record("account", detail="escrow slot set", now=True)

    def restore_from_escrow(
        self, server_key: EscrowKey, account_key: AccountEscrowKey, new_passphrase: Passphrase
    ) -> None:
        """Restore a (remotely locked) vault with the escrow key the server released after
        full re-authentication: open the DB key through the escrow slot, check the header
        MAC, lift the lock, set a new passphrase (with a new keychain device secret),
        audit it, and leave the vault unlocked. Counts as a check-in. Raises
        InvalidInputError (already unlocked), WeakPassphraseError, DeviceWipedError,
        EscrowSlotMissingError, WrongEscrowKeyError, IntegrityError, StorageError."""
        with self._header_txn():
            if self.is_unlocked:
                raise InvalidInputError("the vault is unlocked; change the passphrase instead")
            hdr = self.read_header()
            if hdr.wiped:
                self._refuse_if_remote_locked(hdr)
            require_strong(new_passphrase)
            try:
                db_key = keyslots.open_with_escrow(hdr, server_key, account_key)
            except WrongEscrowKeyError:
                FailureLog(self.paths.failures).note(self._now())
                raise
            mark = hdr.device.remote_lock
            self._open(hdr, db_key, via="escrow key" + (
                f"; remote lock {mark.order_id} lifted" if mark else ""))  # fmt: skip
            try:
                now = self.clock.now()
                # The escrow slot goes in the same write: its key is replaced on the
                # server next (a new escrow key), and a crash in between must not leave a
                # slot that can never open (the next sync makes a new one).
                cleared = hdr.with_device(
                    remote_lock=None, last_checkin=iso(now),
                    max_seen=remote.later(hdr.device.max_seen, now),
                ).without_slot(header.SLOT_ESCROW)  # fmt: skip
                self.keychain.delete(hdr.vault_id)  # the new slot gets a new device secret
                new, backup_kek = keyslots.set_passphrase_keys(
                    cleared, db_key, new_passphrase, self.keychain, crypto.new_creation_params()
                )
                self._set_backup_kek(backup_kek)
                self._write_header(new)
                self._require_unlocked().record(
                    "passphrase_change", detail="new passphrase after an escrow restore", now=True
                )
            except BaseException:
                self.lock(record=False)
                raise

    def refuse_if_remote_locked(self) -> None:
        """Raise DeviceLockedError / DeviceWipedError when an order is in effect (finishing
        what a crash may have left undone), so a caller can say so before asking for a
        passphrase; works locked. Raises VaultMissingError, IntegrityError too."""
        with self._guard:  # reads only (a crash leftover it finishes is no header write)
            self._refuse_if_remote_locked(self.read_header())

    def sync_control(self) -> str | None:
        """The sync client's control record as kept in the header (only where there is no
        OS keychain; docs/SECURITY.md, "Lost device"); works locked. Opaque here.
        Raises VaultMissingError, IntegrityError."""
        return self.read_header().device.sync_control

    def set_sync_control(self, value: str | None) -> None:
        """Keep (``None``: drop) the sync client's control record in the header's
        unauthenticated device state; works locked. Raises InvalidInputError (too long),
        VaultMissingError, StorageError."""
        if value is not None and len(value) > header.MAX_SYNC_CONTROL:
            raise InvalidInputError("the sync control record is too long")
        with self._header_txn():
            if self.read_header().device.sync_control != value:
                self._update_device_state(sync_control=value)

    def set_lease(self, days: int | None) -> None:
        """The offline lease (off by default): with ``days``, a passphrase unlock is
        refused (lease_expired) once ``days`` pass without a ``record_checkin``. ``None``
        turns it off. Needs the unlocked vault (the setting is under the header MAC).
        Raises VaultLockedError, InvalidInputError, StorageError."""
        with self._header_txn():
            hdr, db_key = self._current_header()
            if days is not None and not remote.MIN_LEASE_DAYS <= days <= remote.MAX_LEASE_DAYS:
                raise InvalidInputError("the offline lease is 1 to 3650 days, or off")
            new = replace(hdr, lease_days=days)
            if days is not None:
                now = self.clock.now()
                new = new.with_device(last_checkin=hdr.device.last_checkin or iso(now),
                                      max_seen=remote.later(hdr.device.max_seen, now))  # fmt: skip
            self._write_header(keyslots.reseal(new, db_key))
            self._require_unlocked().record(
                "settings_change", detail=f"offline lease {days or 'off'} days", now=True
            )

    def record_checkin(
        self, *, server_time: datetime | None = None, reauthenticated: bool = False
    ) -> None:
        """A successful contact with the sync server (the sync client calls it after each
        one); works locked. With ``server_time`` (the server's clock, from a response),
        that time is trusted over the local clock, up to a day ahead of it. An expired
        lease is renewed only with ``reauthenticated`` (password and second factor just
        checked by the server); a contact with the control token alone does not.
        Raises VaultMissingError, StorageError."""
        now = self.clock.now()
        with self._header_txn():
            hdr = self.read_header()
            trusted = remote.trusted_time(server_time, now)
            last = hdr.device.last_checkin
            if (
                last is not None
                and not remote.lease_expired(hdr, now)
                and timedelta(0) <= trusted - remote.parse_iso(last) < CHECKIN_RESOLUTION
            ):
                return  # recorded moments ago: spare the header write (an fsync) per sync
            seen = remote.later(hdr.device.max_seen, max(trusted, now))
            if remote.lease_expired(hdr, now) and not reauthenticated:
                # An expired lease is renewed only by full re-authentication
                # (``restore_from_escrow``), not by a contact with the control token.
                self._update_device_state(max_seen=seen)
                return
            self._update_device_state(last_checkin=iso(trusted), max_seen=seen)

    # -- backups (the file format: app/vault/backup.py; verify, restore: backup_restore.py)
    def _set_backup_kek(self, backup_kek: keyslots.BackupKek) -> None:
        if self._backup_kek is not None:
            self._backup_kek.wipe()
        self._backup_kek = backup_kek

    def backup_settings(self) -> BackupSettings:
        """The automatic-backup settings (defaults where unset or unreadable). Raises
        VaultLockedError."""
        raw = self._require_unlocked().get_meta("backup_settings")
        try:
            doc = json.loads(raw) if raw else {}
            return _valid_backup_settings(BackupSettings(**doc))
        except (ValueError, TypeError, InvalidInputError):
            return BackupSettings()

    def set_backup_settings(self, settings: BackupSettings) -> None:
        """Store them and audit the change (never the folder's path). Raises
        InvalidInputError (out of range), VaultLockedError, StorageError."""
        store = self._require_unlocked()
        new = _valid_backup_settings(settings)
        store.set_meta("backup_settings", json.dumps(asdict(new), sort_keys=True))
        on = "on" if new.enabled and new.folder else "off"
        store.record("settings_change", detail=f"automatic backups {on}, keep {new.keep}, "
                     f"every {new.interval_hours} h", now=True)  # fmt: skip

    def backup_snapshot(self, dest: Path) -> BackupSource:
        """Write a consistent snapshot of the database to ``dest`` (a new file; SQLCipher
        pages under the same DB key, so it is ciphertext) and return what a backup file
        needs besides it: the DB key wrapped for the backup and the file-MAC key (the
        caller wipes ``keys.mac_key``). Deferred audit events are written first, so the
        snapshot holds them. The snapshot is SQLite's online backup API in one step: one
        read transaction on the vault's connection, so writers in other processes (WAL)
        neither block it nor tear it. Raises VaultLockedError, InvalidInputError
        (unlocked without the passphrase: no backup KEK), IntegrityError, StorageError."""
        with self._guard:
            store = self._require_unlocked()
            if self._db is None or self._db_key is None or self._header is None:
                raise VaultLockedError()
            if self._backup_kek is None:
                raise InvalidInputError(
                    "a backup needs the passphrase: unlock with it (after a recovery, set a "
                    "new passphrase first)"
                )
            store.flush_audit()
            db, db_key, hdr = self._db, self._db_key, self._header
            keys = keyslots.backup_keys(hdr, db_key, self._backup_kek)
            try:
                target = connect(dest, db_key, create=True)
                try:
                    with db.lock:
                        db.conn.backup(target)
                    notes = int(target.execute("SELECT count(*) FROM notes").fetchone()[0])
                    target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    target.close()
            except TacitError:
                keys.mac_key.wipe()
                raise
            except Exception as exc:  # the engine's own error: never its text
                keys.mac_key.wipe()
                raise translate(exc) from None
            except BaseException:
                keys.mac_key.wipe()
                raise
            return BackupSource(hdr.vault_id, hdr.kdf, hdr.kdf_salt, keys, notes)


def _valid_backup_settings(s: BackupSettings) -> BackupSettings:
    folder_ok = s.folder is None or (isinstance(s.folder, str) and 0 < len(s.folder) <= 4096)
    numbers = (s.keep, s.interval_hours)
    if not (folder_ok and isinstance(s.enabled, bool) and all(type(n) is int for n in numbers)):
        raise InvalidInputError("malformed backup settings")
    if not (1 <= s.keep <= 1000 and 1 <= s.interval_hours <= 24 * 30):
        raise InvalidInputError("keep 1 to 1000 backups, every 1 to 720 hours")
    return s
