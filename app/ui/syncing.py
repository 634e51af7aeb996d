"""``SyncDriver``: background sync for the desktop app, and the sync status it shows.

It feeds ``app.sync.scheduler.SyncScheduler`` (pure timing logic) from the app: vault
change events, a 1-second poll timer, "Sync now", unlock and lock. Each sync — and each
account operation of the account dialog (sign up, sign in, sign out, status) — runs
through its own ``OpRunner`` with **one** worker thread, so two of them never overlap,
and the main runner (whose activity holds autosave back) is not kept busy by the
network. Results come back on the UI thread as a ``SyncStatus``.

Invariants:
- ``stop()`` (the vault locks) stops the schedule and drops every result still in
  flight: a sync running at lock time fails inside its worker as soon as it next touches
  the closed database (``IntegrityError``, "closed"), and that error is never shown;
  ``SyncService.close()`` ends its kept HTTP connection;
- offline is a status, never a dialog; errors are shown by their stable code in plain
  words (``plain_message``), never with note text — this module never reads a record;
- a fresh ``SyncService`` is made at every unlock (its ``SyncStore`` belongs to that
  unlock's database connection) and forgotten at the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from app.errors import TacitError
from app.sync import protocol
from app.sync.scheduler import Outcome, Phase, SyncScheduler, Ticket
from app.sync.service import SyncService
from app.ui.ops import BusyIndicator, OpRunner
from app.ui.qt import QObject, QTimer, Signal
from app.vault.models import RecordChanged, VaultEvent
from app.vault.service import VaultService

log = logging.getLogger(__name__)

T = TypeVar("T")
POLL_MS = 1000
SyncFactory = Callable[[VaultService], SyncService]

# Codes that retrying cannot fix: the user must sign in (again).
NEEDS_USER_CODES = frozenset({"not_signed_in", "unauthorized", "token_expired", "token_reused"})
# A RecordChanged of this kind is a sync having applied pulled records, not a local edit.
PULLED_KIND = "sync"

PLAIN_MESSAGES: dict[str, str] = {
    "not_signed_in": "Sync is off",
    "offline": "Offline — will retry",
    "tls_error": "The server's certificate could not be verified",
    "unauthorized": "Signed out by the server — sign in again",
    "token_expired": "The session has expired — sign in again",
    "token_reused": "The session was ended for safety — sign in again",
    "signature_invalid": "Wrong username or password",
    "totp_invalid": "Wrong authenticator code",
    "totp_replayed": "That code was already used — wait for the next one",
    "totp_required": "Enter a code from the authenticator app or a recovery code",
    "recovery_code_invalid": "Wrong or already used recovery code",
    "challenge_expired": "Signing in took too long — try again",
    "account_exists": "That username is taken",
    "account_locked": "Too many failed sign-ins — try again later",
    "rate_limited": "The server asks us to slow down — will retry",
    "unavailable": "The server is busy — will retry",
    "internal_error": "The server had a problem — will retry",
    "quota_exceeded": "The account's storage is full",
    "kdf_too_weak": "The server refused the key settings",
    "weak_passphrase": "The account password is too weak",
    "usage": "Check the details you entered",
    "vault_locked": "The vault is locked",
    "device_state": "That device's state does not allow this now — refresh the list",
    "forbidden": "A device cannot lock, wipe or remove itself",
    "not_found": "That device is not in this account any more — refresh the list",
    "device_lost": "This device was marked lost from another device",
    "device_removed": "This device was removed from the account",
    "order_signature_invalid": "The server holds another account signing key — sign in again",
    "signing_key_missing": "The account has no signing key yet — sync once, then try again",
    "order_replayed": "That order was already sent — refresh the list",
}


def plain_message(error: TacitError) -> str:
    """What the app shows for an error: plain words for a known code; else our own
    message, but never the words of a sync server (``ApiError`` carries the server's
    text): for those, a fixed sentence with the stable code."""
    known = PLAIN_MESSAGES.get(error.code)
    if known is not None:
        return known
    if isinstance(error, protocol.ApiError):
        return f"The sync server refused the request ({error.code})."
    return error.message


def ago(seconds: float) -> str:
    """ "just now", "2 min ago", "3 h ago", "2 days ago"."""
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' * (days != 1)} ago"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the status bar shows. ``state``: off, idle, syncing, offline, error."""

    state: str = "off"
    pending: int | None = None  # record changes (clients, notes, addenda) not yet pushed
    conflicts: int = 0  # open conflicts
    error_code: str | None = None
    error_text: str = ""
    last_success: float | None = None  # monotonic, this session
    last_sync: str | None = None  # ISO time of the last sync (also from before)

    def text(self, now: float) -> str:
        if self.state == "off":
            return self.error_text or "Sync is off"
        if self.state == "syncing":
            return "Syncing…"
        if self.state == "offline":
            base = "Offline — will retry"
        elif self.state == "error":
            base = f"Sync failed: {self.error_text}"
        elif self.last_success is not None:
            base = f"Synced {ago(now - self.last_success)}"
        elif self.last_sync:
            base = f"Last synced {self.last_sync[:16].replace('T', ' ')} UTC"
        else:
            base = "Not synced yet"
        if self.pending:
            base += f" · {self.pending} change{'s' * (self.pending != 1)} waiting"
        return base


@dataclass(frozen=True, slots=True)
class _RunResult:
    pushed: int
    pulled: int
    pending: int
    conflicts: int
    last_sync: str | None


def record_pending(by_kind: dict[str, int]) -> int:
    """Outbox rows the clinician thinks of as changes (the audit trail and key items
    sync too, but are bookkeeping: a sync itself writes an audit entry)."""
    return sum(n for kind, n in by_kind.items() if kind in ("client", "note", "addendum"))


class SyncDriver(QObject):
    status_changed = Signal(object)  # SyncStatus
    synced = Signal(object)  # the run's counts: {"pushed", "pulled", ...}

    def __init__(
        self,
        vault: VaultService,
        *,
        factory: SyncFactory = SyncService,
        scheduler: SyncScheduler | None = None,
        poll_ms: int = POLL_MS,
        orders_watched: Callable[[], bool] = lambda: False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._vault = vault
        # True while the app's order watcher holds a long-poll open: a sync then skips
        # its own order check (one request less per sync; orders still arrive in seconds).
        self._orders_watched = orders_watched
        self._factory = factory
        self.scheduler = scheduler or SyncScheduler(vault.clock)
        self._clock = vault.clock
        self.runner = OpRunner(self, max_threads=1)  # one at a time: syncs and account ops
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.service: SyncService | None = None
        self.status = SyncStatus()
        self._shown = ""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """The vault is unlocked: sync at once if it has an account, else stay off."""
        if not self._vault.is_unlocked:
            return
        try:
            service = self._factory(self._vault)
            linked = service.store.get("account_id") is not None
            conflicts = len(self._vault.conflicts())
        except TacitError as exc:
            log.warning("sync could not start: %s", exc.code)
            return
        self.service = service
        self.scheduler.start(paused=not linked)
        self._set(SyncStatus(conflicts=conflicts))
        self.timer.start()
        self.poll()

    def stop(self) -> None:
        """The vault is locking: nothing more runs, results in flight are dropped."""
        self.timer.stop()
        self.scheduler.stop()
        self.runner.cancel_all()
        service, self.service = self.service, None
        if service is not None:
            try:
                service.close()  # ends the kept connection (safe from this thread)
            except Exception:  # closing must never stop a lock
                log.warning("the sync connection could not be closed")
        self._set(SyncStatus())

    def wait(self, msecs: int = -1) -> bool:
        return self.runner.wait(msecs)

    @property
    def active(self) -> bool:
        return self.service is not None

    # -- triggers ----------------------------------------------------------------------
    def on_vault_event(self, event: VaultEvent) -> None:
        if isinstance(event, RecordChanged) and event.kind != PULLED_KIND:
            self.scheduler.changed()

    def sync_now(self) -> None:
        """The "Sync now" action (also resumes after "Sync is off" once signed in)."""
        if self.service is None:
            return
        self.scheduler.request()
        self.poll()

    def signed_out(self) -> None:
        self.scheduler.pause()
        self._set(replace(self.status, state="off", error_text="Sync is off — signed out"))

    def poll(self) -> None:
        """Begin a sync if one is due; refresh the relative time shown."""
        service = self.service
        ticket = self.scheduler.begin() if service is not None else None
        if service is not None and ticket is not None:
            self._set(replace(self.status, state="syncing"))
            self.runner.run(
                lambda: self._run(service),
                lambda result: self._done(ticket, result),
                lambda error: self._failed(ticket, error),
            )
        else:
            self._announce()

    # -- a run ---------------------------------------------------------------------------
    def _run(self, service: SyncService) -> _RunResult:
        """In the worker. Raises whatever the sync raises (a TacitError)."""
        counts = service.sync(check_orders=not self._orders_watched(), defer_audit=True)
        status = service.sync_status()
        return _RunResult(
            pushed=int(counts.get("pushed", 0)),
            pulled=int(counts.get("pulled", 0)),
            pending=record_pending(dict(status.get("pending_by_kind") or {})),
            conflicts=len(self._vault.conflicts()),
            last_sync=status.get("last_sync"),
        )

    def _done(self, ticket: Ticket, result: _RunResult) -> None:
        if not self.scheduler.finish(ticket, Outcome.OK):
            return  # locked (or signed out) meanwhile
        self._set(SyncStatus(
            state="idle", pending=result.pending, conflicts=result.conflicts,
            last_success=self.scheduler.last_success, last_sync=result.last_sync,
        ))  # fmt: skip
        self.synced.emit({"pushed": result.pushed, "pulled": result.pulled})

    def _failed(self, ticket: Ticket, error: TacitError) -> None:
        code = error.code
        if code in NEEDS_USER_CODES:
            outcome = Outcome.NEEDS_USER
        elif code == "offline":
            outcome = Outcome.OFFLINE
        else:
            outcome = Outcome.ERROR
        retry = error.details.get("retry_after")
        retry_after = float(retry) if isinstance(retry, int | float) else None
        if not self.scheduler.finish(ticket, outcome, retry_after=retry_after):
            return
        if outcome is not Outcome.OFFLINE:
            log.info("sync did not complete: %s", code)  # the code only, never a message
        state = {Outcome.NEEDS_USER: "off", Outcome.OFFLINE: "offline"}.get(outcome, "error")
        self._set(replace(self.status, state=state, error_code=code,
                          error_text=plain_message(error)))  # fmt: skip

    # -- account operations (the account dialog) ----------------------------------------
    def run_account(
        self,
        fn: Callable[[SyncService], T],
        on_done: Callable[[T], None],
        on_error: Callable[[TacitError], None],
        *,
        busy: BusyIndicator | None = None,
        message: str = "",
    ) -> bool:
        """Run ``fn(service)`` in the sync worker (never alongside a sync). False when
        the vault is locked."""
        service = self.service
        if service is None:
            return False
        self.runner.run(lambda: fn(service), on_done, on_error, busy=busy, message=message)
        return True

    def set_conflicts(self, count: int) -> None:
        self._set(replace(self.status, conflicts=count))

    # -- status --------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self.scheduler.phase

    def text(self) -> str:
        return self.status.text(self._clock.monotonic())

    def _set(self, status: SyncStatus) -> None:
        self.status = status
        self._shown = ""
        self._announce()

    def _announce(self) -> None:
        text = self.text()
        if text != self._shown:
            self._shown = text
            self.status_changed.emit(self.status)


def describe_account(status: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the account dialog's status page (no secrets: ids, server, device)."""
    signed_in = bool(status.get("signed_in"))
    where = status.get("refresh_token_in")
    rows = [
        ("Signed in", ("Yes" if signed_in else "No")
         + (f" (session kept in the {where})" if signed_in and where else "")),
        ("Server", str(status.get("server") or "—")),
        ("Username", str(status.get("username") or "—")),
        ("Account", str(status.get("account_id") or "—")),
        ("This device", str(status.get("device_name") or status.get("device_id") or "—")),
    ]  # fmt: skip
    if signed_in and status.get("session_expires_at"):
        rows.append(("Session ends", str(status["session_expires_at"])[:16].replace("T", " ")
                     + " UTC unless it syncs"))  # fmt: skip
    return rows
