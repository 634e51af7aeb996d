"""``AppController``: the app's lifecycle — first run, unlock, main window, lock, quit.

It wires the pieces together and owns the one lock procedure every trigger uses (Ctrl+L,
idle timeout, system sleep, screen lock, minimize, session logout):

1. save any draft (the editor's ``flush``: autosave and end the editing session);
2. drop pending background results (sync, automatic backups), clear our clipboard
   contents;
3. wipe and close every window showing client data (the main window and all its dialogs,
   or the first-run window showing the recovery key) — models emptied, text cleared;
4. ``service.lock()`` (closes the database, wipes the key);
5. show the unlock screen.

Invariants:
- the service is passed in (no globals); vault events arrive through a queued Qt signal,
  so a listener called on a worker thread never touches a widget;
- if the service locks by itself (its idle backstop), the same teardown runs on the
  ``VaultLocked`` event, minus step 1, which needs the open vault;
- at most one ``MainWindow`` holds client data, only while the vault is unlocked. To
  open fast after the KDF, an *empty* main window is built while the unlock screen is
  up (it has no data until ``start()`` after unlock); each one is used for one unlock
  and destroyed at the next lock;
- the device-order watcher (``OrderWatcher``) runs for as long as the app does with a
  vault, locked or unlocked: it starts once the order check at start is done (or at the
  first unlock after the first run), is not stopped by a lock, and stops at quit. It ends
  by itself after carrying out a wipe, or once the vault is gone; after a lock it keeps
  watching (a wipe may follow). The next unlock (recovery key, restore) starts it again
  if it ended. One loop at most.
"""

from __future__ import annotations

import logging

from app import update
from app.errors import TacitError
from app.sync.devices import DeviceService
from app.sync.service import SyncService
from app.ui.backups import BackupDriver
from app.ui.clipboard import ClipboardGuard
from app.ui.firstrun import FirstRunWindow
from app.ui.idle import ActivityFilter, IdleWatcher
from app.ui.mainwindow import MainWindow
from app.ui.ops import OpRunner
from app.ui.orders import DeviceFactory, OrderWatcher
from app.ui.practice_common import PracticeFactory, idle_cap, lease_cap
from app.ui.prefs import Preferences, PreferenceStore, effective_idle_minutes
from app.ui.qt import QApplication, QGuiApplication, QObject, QTimer, Signal
from app.ui.session import SessionWatcher
from app.ui.settings_dialog import SettingsDialog
from app.ui.syncing import SyncDriver, SyncFactory
from app.ui.theme import ThemeManager
from app.ui.unlock import UnlockWindow
from app.vault.models import LockReason, RecordChanged, VaultEvent, VaultLocked, VaultUnlocked
from app.vault.service import VaultService

log = logging.getLogger(__name__)

SPARE_DELAY_MS = 100
START_CHECK_MAX_MS = 5000  # the order check at start holds the passphrase back this long at most
AUDIT_FLUSH_MS = 5000  # deferred audit events (views, lists, searches) reach the trail


class _EventBridge(QObject):
    """Carries vault events to the UI thread (queued when emitted from a worker)."""

    relay = Signal(object)


class AppController(QObject):
    main_window_shown = Signal()
    locked = Signal()

    def __init__(
        self,
        app: QApplication,
        service: VaultService,
        prefs: PreferenceStore,
        *,
        session: SessionWatcher | None = None,
        install_hooks: bool = True,
        idle_poll_ms: int = 1000,
        sync_factory: SyncFactory | None = None,
        device_factory: DeviceFactory = DeviceService,
        order_wait_s: int | None = None,
        practice_factory: PracticeFactory | None = None,
    ) -> None:
        super().__init__()
        self.app = app
        self.service = service
        self.prefs_store = prefs
        self.prefs: Preferences = prefs.load()
        self._install_hooks = install_hooks
        self._quitting = False
        self._in_lock = False
        self._started = False
        self._start_check_open = False  # the order check at start has not ended yet
        # Practice mode: the service the Practice menu drives (tests inject a fake), and
        # the practice policy's idle limit, read at unlock and after every sync.
        self.practice_factory = practice_factory
        self.idle_cap: int | None = None
        self.lease_cap: int | None = None
        app.setQuitOnLastWindowClosed(False)  # lock closes windows; we quit explicitly

        self.runner = OpRunner(self)
        # Background sync: its own one-thread runner, started at unlock, stopped at lock.
        # Its runs skip their own order check while the watcher below holds a long-poll.
        self.sync = SyncDriver(service, factory=sync_factory or SyncService,
                               orders_watched=lambda: self.orders.running, parent=self)  # fmt: skip
        # Automatic backups: their own one-thread runner, started at unlock, stopped at lock.
        self.backups = BackupDriver(service, parent=self)
        # Device orders (lock/wipe from another device): a long-poll while the app runs,
        # locked or unlocked (see the module doc).
        self.device_factory = device_factory
        self.orders = OrderWatcher(service, device_factory, parent=self)
        if order_wait_s is not None:
            self.orders.wait_s = order_wait_s
        self.orders.carried_out.connect(self._order_carried_out)
        self.clipboard = ClipboardGuard(
            QGuiApplication.clipboard(), self.prefs.clipboard_seconds * 1000, self
        )
        self.theme = ThemeManager(app)
        self.bridge = _EventBridge(self)
        self.bridge.relay.connect(self._on_vault_event)
        self._unsubscribe = service.subscribe(self.bridge.relay.emit)
        self.activity = ActivityFilter(service.record_activity, self)
        app.installEventFilter(self.activity)
        self.idle = IdleWatcher(
            service, lambda: self.lock(LockReason.IDLE), interval_ms=idle_poll_ms, parent=self
        )
        self.audit_timer = QTimer(self)
        self.audit_timer.setInterval(AUDIT_FLUSH_MS)
        self.audit_timer.timeout.connect(self.flush_audit)
        self.session = session if session is not None else SessionWatcher(self)
        self.session.lock_requested.connect(self.lock)
        app.commitDataRequest.connect(lambda _manager: self.lock(LockReason.QUIT))
        app.aboutToQuit.connect(self.shutdown)

        self.unlock_window = UnlockWindow(service, self.runner, devices=device_factory)
        self.unlock_window.unlocked.connect(self._open_main)
        self.unlock_window.closed_by_user.connect(self.quit)
        self.first_run: FirstRunWindow | None = None
        self.main_window: MainWindow | None = None
        self._spare: MainWindow | None = None  # built empty while locked, see module doc

    # -- start -------------------------------------------------------------------------
    def start(self) -> None:
        """Show the first-run or the unlock window (once; later calls do nothing)."""
        if self._started:
            return
        self._started = True
        self.theme.apply(self.prefs.theme)
        self._apply_idle()
        if self._install_hooks:
            self.session.install()
            self.session.attach_window(self.unlock_window)
        if self.service.exists():
            self._show_unlock()
            self._check_orders_at_start()
        else:
            self._show_first_run()

    def _show_first_run(self) -> None:
        window = FirstRunWindow(self.service, self.runner, self.clipboard)
        window.completed.connect(self._first_run_done)
        window.closed_by_user.connect(self.quit)
        self.first_run = window
        window.show()
        window.form.passphrase.setFocus()

    def _first_run_done(self) -> None:
        window, self.first_run = self.first_run, None
        if window is not None:
            window.close()
            window.deleteLater()
        self._open_main()

    def _show_unlock(self, *, minimized: bool = False) -> None:
        self.unlock_window.reset()
        if minimized:
            self.unlock_window.showMinimized()
        else:
            self.unlock_window.show()
            self.unlock_window.raise_()
            self.unlock_window.activateWindow()
        # After the unlock screen has painted, while the user types the passphrase.
        QTimer.singleShot(SPARE_DELAY_MS, self._build_spare)

    def _check_orders_at_start(self) -> None:
        """A device locked (or wiped) while the app was not running is locked before
        anyone types: one quick, quiet order check (wait 0) while the passphrase is held
        back, for at most ``START_CHECK_MAX_MS`` (offline is quick: a short connect
        timeout; a slow server only delays the message, the order still applies). The
        order watcher starts when it ends (at once for a vault not linked yet)."""
        try:
            devices = self.device_factory(self.service)
            linked = devices.linked()
        except (OSError, TacitError):
            linked = False
        if not linked:
            self._watch_orders()  # it looks again every 10 s: the user may sign in
            return
        window = self.unlock_window
        self._start_check_open = True
        window.begin_order_check()
        self.runner.run(lambda: devices.check_order(wait=0, quiet=True),
                        lambda _check: self._start_check_done(),
                        lambda _error: self._start_check_done())  # fmt: skip
        QTimer.singleShot(START_CHECK_MAX_MS, self, self._start_check_done)

    def _start_check_done(self) -> None:
        """The order check at start ended (or took too long): let the passphrase in, and
        keep watching from now on. Once: the check's end and the time limit both call it,
        and a watcher that has since carried out an order must not be started again."""
        if not self._start_check_open:
            return
        self._start_check_open = False
        self.unlock_window.end_order_check()
        self._watch_orders()

    def _watch_orders(self) -> None:
        """Start the order watcher unless quitting or there is no vault (yet)."""
        if not self._quitting and self.service.exists():
            self.orders.start()

    def _order_carried_out(self, action: str) -> None:
        """The watcher carried out a lock or wipe order. On an unlocked vault, the vault
        has locked itself and ``VaultLocked`` has torn the windows down; on a locked one
        nothing else changed on screen. Either way: say so on the unlock screen."""
        if self._quitting:
            return
        if self.service.is_unlocked:
            # Opened again since the order took effect (the recovery key, a restore with
            # the sync account: both lift it by design); the message would be stale.
            return
        if self.main_window is not None:
            self.lock(LockReason.REMOTE)  # not expected: VaultLocked tore it down first
        self.unlock_window.order_carried_out(action)

    def _new_main_window(self) -> MainWindow:
        window = MainWindow(self.service, self.runner, self.clipboard)
        window.lock_requested.connect(self.lock)
        window.quit_requested.connect(self.quit)
        window.settings_requested.connect(self.open_settings)
        window.minimized.connect(self._minimized)
        if self.practice_factory is not None:
            window.practice.factory = self.practice_factory
        window.practice.state_changed.connect(self._practice_changed)
        return window

    def _build_spare(self) -> None:
        """Build the next (empty) main window while the user types the passphrase."""
        if self._spare is None and not self._quitting and self.main_window is None:
            try:
                self._spare = self._new_main_window()
            except TacitError:  # the vault locked under it (an order): built at next unlock
                self._spare = None

    def _open_main(self) -> None:
        if not self.service.is_unlocked or self.main_window is not None:
            return
        self.unlock_window.hide()
        window, self._spare = self._spare or self._new_main_window(), None
        geometry = self.prefs_store.geometry("main")
        if geometry is not None:
            window.restoreGeometry(geometry)
        window.set_idle_minutes(self.idle_minutes)
        self.main_window = window
        window.show()
        window.start()
        window.attach_sync(self.sync)
        self.sync.start()
        window.attach_backups(self.backups)
        self.backups.start()
        self._watch_orders()  # running already, but after a first run or a restore
        self.idle.start()
        self.main_window_shown.emit()
        if update.load_settings().enabled:  # off by default (app/update.py); once a day
            self.runner.run(update.check_if_due, self._update_checked, lambda _error: None)

    def _update_checked(self, result: update.UpdateResult | None) -> None:
        if result is not None and result.newer and self.main_window is not None:
            self.main_window.show_status(result.message(), 0)

    # -- events ------------------------------------------------------------------------
    def _on_vault_event(self, event: VaultEvent) -> None:
        if isinstance(event, VaultUnlocked):
            self.idle.start()
            self.audit_timer.start()
        elif isinstance(event, VaultLocked):
            self._teardown()
            if not self._quitting and not self._in_lock:
                self._show_unlock()  # the service locked by itself; lock() shows it itself
            self.locked.emit()
        elif isinstance(event, RecordChanged):
            self.sync.on_vault_event(event)  # a local change: sync after the debounce
            if self.main_window is not None:
                self.main_window.on_record_changed(event)

    # -- lock --------------------------------------------------------------------------
    def lock(self, reason: LockReason = LockReason.USER, *, minimized: bool = False) -> None:
        """Save drafts, close everything showing client data, lock, show the unlock
        screen. Safe to call in any state (a no-op when nothing is open)."""
        if not self.service.is_unlocked and self.main_window is None:
            return
        self._in_lock = True
        try:
            self._save_drafts()
            self._teardown()
            self.service.lock(reason)  # VaultLocked → _on_vault_event (idempotent teardown)
        finally:
            self._in_lock = False
        if not self._quitting:
            self._show_unlock(minimized=minimized)

    def _save_drafts(self) -> None:
        window = self.main_window
        if window is None or not self.service.is_unlocked:
            return
        if not window.flush():
            log.warning("a draft could not be saved before locking")
        self.prefs_store.save_geometry("main", window.saveGeometry())

    def flush_audit(self) -> None:
        """Write the service's deferred audit events; skipped while a background
        operation holds the database (the next tick, or the lock, writes them)."""
        if not self.service.is_unlocked or self.runner.active:
            return
        try:
            self.service.flush_audit()
        except TacitError:
            log.warning("the audit trail could not be written")

    def _teardown(self) -> None:
        self.sync.stop()  # before the vault closes: an in-flight sync's result is dropped
        self.backups.stop()
        self.idle.stop()
        self.audit_timer.stop()
        self.runner.cancel_all()
        self.clipboard.clear_if_ours()
        window, self.main_window = self.main_window, None
        if window is not None:
            window.wipe()
            window.close()
            window.deleteLater()
        first_run = self.first_run
        if first_run is not None and self.service.exists():
            self.first_run = None
            first_run.wipe()
            first_run.close()
            first_run.deleteLater()

    def _minimized(self) -> None:
        if self.prefs.lock_on_minimize:
            self.lock(LockReason.USER, minimized=True)

    # -- settings ----------------------------------------------------------------------
    def open_settings(self) -> SettingsDialog | None:
        if self.main_window is None:
            return None
        try:  # the offline lease is offered only for a vault linked to a sync account
            hdr = self.service.read_header()
            linked, lease_days = hdr.account is not None, hdr.lease_days
        except (OSError, TacitError):
            linked, lease_days = False, None
        dialog = SettingsDialog(
            self.prefs, self.apply_preferences, self.session.hooks, self.main_window,
            lease_days=lease_days, set_lease=self.set_lease if linked else None,
            backups=self.backups, idle_cap=self.idle_cap, lease_cap=self.lease_cap,
        )  # fmt: skip
        dialog.open()
        return dialog

    def set_lease(self, days: int | None) -> None:
        """The offline lease from Settings (``VaultService.set_lease``; audited there)."""
        try:
            self.service.set_lease(days)
        except TacitError as exc:
            if self.main_window is not None:
                self.main_window.show_status(f"The offline lease was not changed: {exc.message}")

    def apply_preferences(self, prefs: Preferences) -> None:
        changed = prefs.validated() != self.prefs
        self.prefs = prefs.validated()
        self.prefs_store.save(self.prefs)
        self._apply_idle()
        self.clipboard.delay_ms = self.prefs.clipboard_seconds * 1000
        self.theme.apply(self.prefs.theme)
        if changed and self.service.is_unlocked:
            p = self.prefs
            try:
                self.service.record_event(
                    "settings_change",
                    detail=f"idle {p.idle_minutes} min, lock on minimize "
                    f"{'on' if p.lock_on_minimize else 'off'}, clipboard {p.clipboard_seconds} s, "
                    f"theme {p.theme}",
                )
            except TacitError:
                log.warning("the settings change could not be audited")

    # -- the idle lock ---------------------------------------------------------------
    @property
    def idle_minutes(self) -> int:
        """The idle lock in force: the preference, capped by the practice policy."""
        return effective_idle_minutes(self.prefs.idle_minutes, self.idle_cap)

    def _apply_idle(self) -> None:
        minutes = self.idle_minutes
        self.service.idle_timeout = minutes * 60
        if self.main_window is not None:
            self.main_window.set_idle_minutes(minutes)

    def _practice_changed(self, status: object) -> None:
        """The practice membership was read again (unlock, each sync, a policy change):
        its policy's ``max_idle_minutes`` caps the idle lock, and Settings offers no
        longer offline lease than its ``offline_lease_days`` (docs/PRACTICE.md)."""
        self.idle_cap = idle_cap(status) if isinstance(status, dict) else None
        self.lease_cap = lease_cap(status) if isinstance(status, dict) else None
        self._apply_idle()

    # -- quit --------------------------------------------------------------------------
    def quit(self) -> None:
        self.shutdown()
        self.app.quit()

    def shutdown(self) -> None:
        """Save, back up (when automatic backups are on: once, bounded, a failure only
        logged by its code), lock and close every window (quit, or the app is going away)."""
        if self._quitting:
            return
        self._quitting = True
        self.orders.stop()  # the only place it is stopped (see the module doc)
        self._save_drafts()
        if self.service.is_unlocked:  # after the drafts, before the lock; bounded, never fatal
            self.backups.backup_before_quit()
        self._teardown()
        self.service.lock(LockReason.QUIT)
        self.runner.wait(5000)
        self.sync.wait(5000)
        self.backups.wait(5000)
        self.unlock_window.prepare_quit()
        self.unlock_window.close()
        if self.first_run is not None:
            self.first_run.wipe()
            self.first_run.close()
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.wipe()
            spare.deleteLater()
        self.app.removeEventFilter(self.activity)
        self._unsubscribe()
