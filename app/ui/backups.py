"""Automatic backups in the app: *when* (``BackupSchedule``, Qt-free, on the injectable
clock), running them (``BackupDriver``), and what the user sees (``BackupBanner`` in the
main window, ``BackupGroup`` in Settings).

A backup is due while unlocked when backups are on (``VaultService.backup_settings``: on,
with a folder), the folder has been looked at, and this vault's newest backup there is
older than the interval (or there is none); "Back up now" makes one due at once. After a
failure the next try waits 1, 2, 4 … min (at most an hour). The folder is looked at
again every minute (a drive plugged back in is noticed), in the worker.

Invariants:
- scans and backups run on the driver's own one-thread ``OpRunner``: never two at once,
  never on the UI thread, and the main runner (which holds autosave back) stays free;
- ``stop()`` (the vault locks) drops every result in flight; a backup cut off by the lock
  leaves no file (``create_backup`` removes it when its audit entry cannot be written);
- the folder is never created here (an unplugged drive is reported, not recreated on the
  internal disk); Settings creates only the suggested ``default_backup_dir()``;
- errors are shown by their stable code in our own words, never with the text of an
  exception (an OS message, a path);
- the settings live in the vault; nothing of them reaches the preferences file;
- a running backup's progress (``create_backup(progress=...)``, called in the worker)
  reaches the UI thread only through a queued signal, tagged with the run it belongs
  to: a fraction from a run cut off by a lock is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from app.errors import InvalidInputError, TacitError
from app.ui.ops import OpRunner
from app.ui.qt import (
    QCheckBox,
    QCoreApplication,
    QEvent,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QObject,
    QPushButton,
    QSpinBox,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.syncing import ago
from app.ui.widgets import MessageLabel, ProgressPanel, named, private_file_dialog
from app.vault.backup import BackupReport, ProgressFn, create_backup, default_backup_dir
from app.vault.backupfolder import check_folder, list_backups, prune_backups
from app.vault.clock import Clock
from app.vault.fsutil import private_dir
from app.vault.service import BackupSettings, VaultService

log = logging.getLogger(__name__)

POLL_MS = 1000
SCAN_S = 60.0
STALE_S = 48 * 3600.0
BACKOFF_BASE_S = 60.0
BACKOFF_CAP_S = 3600.0
QUIT_WAIT_MS = 20_000
FOLDER_CODES = frozenset({"backup_folder_missing", "backup_folder_unwritable"})
BackupFn = Callable[[VaultService, Path], BackupReport]


class BackupKeyMissingError(InvalidInputError):
    """Unlocked without the passphrase (recovery key): there is no backup key."""

    code = "no_backup_key"
    default_message = "set a new passphrase to resume backups"


PLAIN: dict[str, str] = {
    "backup_folder_missing": "The backup folder is missing — is the drive plugged in?",
    "backup_folder_unwritable": "The backup folder cannot be written to.",
    "no_backup_key": "Backups are paused: set a new passphrase to resume backups.",
    "storage_error": "The backup could not be written (disk full?)",
    "integrity_error": "The vault could not be read for the backup",
    "vault_locked": "The vault is locked",
}


def plain(code: str) -> str:
    return PLAIN.get(code, "The backup failed")


# -- when ---------------------------------------------------------------------------------
class BackupSchedule:
    """When to back up. No Qt, no I/O: the driver tells it the newest backup's time
    (``set_newest``) and how each run ended (``finish``)."""

    def __init__(self, clock: Clock, *, backoff_base: float = BACKOFF_BASE_S,
                 backoff_cap: float = BACKOFF_CAP_S) -> None:  # fmt: skip
        self._clock = clock
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.enabled = False
        self.interval = 24 * 3600.0
        self._started = False
        self._generation = 0
        self._running: tuple[int, int] | None = None
        self._runs = 0
        self._known = False  # the folder was looked at since start
        self.newest: datetime | None = None
        self.failures = 0
        self._retry_at: float | None = None
        self._requested = False

    def start(self) -> None:
        self._generation += 1
        self._started, self._running, self._known, self._requested = True, None, False, False
        self.failures, self._retry_at, self.newest = 0, None, None

    def stop(self) -> None:
        self._generation += 1
        self._started, self._running, self._requested = False, None, False

    def configure(self, *, enabled: bool, interval_hours: float) -> None:
        self.enabled, self.interval = enabled, interval_hours * 3600.0

    def set_newest(self, newest: datetime | None) -> None:
        """The folder was looked at: this is this vault's newest backup there."""
        self._known, self.newest = True, newest

    def forget(self) -> None:
        """The folder cannot be used (missing, no backup key): nothing is due until it is
        looked at again or the user asks."""
        self._known = False

    def reset_backoff(self) -> None:
        self.failures, self._retry_at = 0, None

    def request(self) -> None:
        if self._started:
            self._requested = True

    @property
    def running(self) -> bool:
        return self._running is not None

    def backoff_delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.backoff_cap, self.backoff_base * 2 ** min(failures - 1, 32)))

    def due(self) -> bool:
        if not self._started or self._running is not None:
            return False
        if self._requested:
            return True
        if not (self.enabled and self._known):
            return False
        if self._retry_at is not None and self._clock.monotonic() < self._retry_at:
            return False
        if self.newest is None:
            return True
        return (self._clock.now() - self.newest).total_seconds() >= self.interval

    def begin(self) -> tuple[int, int] | None:
        """A ticket for a backup now, or None (not due, stopped, one is running)."""
        if not self.due():
            return None
        self._runs += 1
        self._running, self._requested = (self._generation, self._runs), False
        return self._running

    def finish(self, ticket: tuple[int, int], ok: bool, newest: datetime | None = None) -> bool:
        """How a run ended. False (nothing changes) for a ticket from before a lock."""
        if self._running is None or ticket != self._running:
            return False
        self._running = None
        if ok:
            self.reset_backoff()
            self.set_newest(newest or self._clock.now())
        else:
            self.failures += 1
            self._retry_at = self._clock.monotonic() + self.backoff_delay(self.failures)
        return True


# -- what is shown ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BackupStatus:
    """``state``: off, unknown (not looked yet), ok, running, stale, failed, and the
    folder / key problems (their code)."""

    state: str = "off"
    newest: datetime | None = None
    error_code: str | None = None
    warning: str = ""  # the main window's banner text; empty: no banner

    def text(self, now: datetime) -> str:
        if self.state == "off":
            return "Backups are off"
        if self.state == "running":
            return "Backing up…"
        if self.error_code is not None:
            return f"Backup failed ({self.error_code})"
        if self.newest is not None:
            return f"Backed up {ago((now - self.newest).total_seconds())}"
        return "No backup yet" if self.state != "unknown" else ""


@dataclass(frozen=True, slots=True)
class _Done:
    report: BackupReport | None
    newest: datetime | None
    removed: int


class _ProgressRelay(QObject):
    """Lives on the UI thread; the worker emits through it, so delivery is queued."""

    changed = Signal(int, float)  # the run (a generation), the fraction done


class BackupDriver(QObject):
    status_changed = Signal(object)  # BackupStatus
    backed_up = Signal(object)  # BackupReport
    progress_changed = Signal(float)  # a running backup's fraction done (UI thread)
    # The same for the backup at quit, while the UI thread waits for it (see there).
    quit_progress = Signal(float)

    def __init__(
        self, vault: VaultService, *, backup: BackupFn | None = None,
        schedule: BackupSchedule | None = None, poll_ms: int = POLL_MS,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._vault = vault
        # The default reports its progress; an injected one (tests) need not.
        self._backup = backup if backup is not None else self._create_backup
        self._relay = _ProgressRelay(self)
        self._relay.changed.connect(self._on_progress)
        self._run = 0  # bumped per backup and at stop(): older progress is dropped
        self.fraction: float | None = None  # of the backup running now
        self._progress_fn: ProgressFn = lambda _fraction: None  # set per job, in the worker
        self.schedule = schedule or BackupSchedule(vault.clock)
        self.runner = OpRunner(self, max_threads=1)
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self.settings = BackupSettings()
        self._vault_id: str | None = None
        self._job: str | None = None  # "scan" or "backup" while one runs
        self._next_scan: float | None = None
        self._scanned = False
        self._code: str | None = None  # the last problem: a folder, key or backup error
        self.status = BackupStatus()
        self._shown: tuple[BackupStatus, str] | None = None
        self.quit_wait_ms = QUIT_WAIT_MS

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """The vault is unlocked: look at the folder at once, then keep to the schedule."""
        if not self._vault.is_unlocked:
            return
        try:
            self.settings = self._vault.backup_settings()
            self._vault_id = self._vault.read_header().vault_id
        except TacitError as exc:
            log.warning("automatic backups could not start: %s", exc.code)
            return
        self.schedule.start()
        self._reconfigure()
        self.timer.start()
        self.poll()

    def stop(self) -> None:
        """The vault is locking: nothing more runs; results in flight are dropped."""
        self._run += 1
        self.fraction = None
        self.timer.stop()
        self.schedule.stop()
        self.runner.cancel_all()
        self._vault_id, self._job, self._code, self._scanned = None, None, None, False
        self._set(BackupStatus())

    def wait(self, msecs: int = -1) -> bool:
        return self.runner.wait(msecs)

    @property
    def active(self) -> bool:
        return self._vault_id is not None

    @property
    def busy(self) -> bool:
        """A scan or a backup is running."""
        return self._job is not None

    @property
    def folder(self) -> Path | None:
        return Path(self.settings.folder) if self.settings.folder else None

    @property
    def configured(self) -> bool:
        return self.settings.enabled and self.settings.folder is not None

    def _reconfigure(self) -> None:
        s = self.settings
        self.schedule.configure(enabled=self.configured, interval_hours=s.interval_hours)
        self.schedule.forget()
        self.schedule.reset_backoff()
        self._code, self._scanned = None, False
        self._next_scan = self._vault.clock.monotonic()

    def apply_settings(self, settings: BackupSettings) -> None:
        """Store new settings in the vault and act on them. Raises TacitError."""
        self._vault.set_backup_settings(settings)
        self.settings = settings
        if self.active:
            self._reconfigure()
            self.poll()

    def back_up_now(self) -> None:
        if not self.active or self.folder is None:
            return
        self.schedule.request()
        self.poll()

    # -- runs --------------------------------------------------------------------------
    def poll(self) -> None:
        folder, vault_id = self.folder, self._vault_id
        if self._job is None and folder is not None and vault_id is not None:
            now = self._vault.clock.monotonic()
            ticket = self.schedule.begin()
            if ticket is not None:
                self._job = "backup"
                self._run += 1
                self.fraction = 0.0
                keep = self.settings.keep
                run = self._run
                self.runner.run(lambda: self._backup_job(folder, vault_id, keep, run),
                                lambda done: self._backup_done(ticket, done),
                                lambda error: self._backup_failed(ticket, error))  # fmt: skip
            elif self._next_scan is not None and now >= self._next_scan:
                self._job, self._next_scan = "scan", now + SCAN_S
                self.runner.run(lambda: self._scan_job(folder, vault_id),
                                self._scan_done, self._scan_failed)  # fmt: skip
        self._refresh()

    def _scan_job(self, folder: Path, vault_id: str) -> datetime | None:
        """In the worker. Raises BackupFolderMissingError / BackupFolderUnwritableError."""
        check_folder(folder)
        backups = list_backups(folder, vault_id)
        return backups[0].created_at if backups else None

    def _create_backup(self, vault: VaultService, folder: Path) -> BackupReport:
        """The default backup: ``create_backup`` reporting to the running backup."""
        return create_backup(vault, folder, progress=self._progress_fn)

    def _backup_job(
        self, folder: Path, vault_id: str, keep: int, run: int = 0,
        progress: ProgressFn | None = None,
    ) -> _Done:  # fmt: skip
        """In the worker: check the folder, back up, keep the newest ``keep``. Progress
        goes to ``progress``, else through the queued relay tagged with ``run``."""
        check_folder(folder)  # never let create_backup make a missing folder again
        relay = self._relay
        self._progress_fn = progress or (lambda fraction: relay.changed.emit(run, fraction))
        try:
            report = self._backup(self._vault, folder)
        except InvalidInputError as exc:
            if type(exc) is InvalidInputError:  # the folder is checked: it is the key
                raise BackupKeyMissingError() from None
            raise
        removed = 0
        try:
            removed = len(prune_backups(folder, vault_id, keep))
            backups = list_backups(folder, vault_id)
        except TacitError as exc:  # the backup is written; pruning waits for the next one
            log.warning("old backups could not be pruned: %s", exc.code)
            return _Done(report, None, removed)
        return _Done(report, backups[0].created_at if backups else None, removed)

    def _on_progress(self, run: int, fraction: float) -> None:
        """On the UI thread: a running backup's fraction (dropped if not the current)."""
        if run != self._run or self._job != "backup":
            return
        self.fraction = max(0.0, min(1.0, fraction))
        self.progress_changed.emit(self.fraction)

    def _scan_done(self, newest: datetime | None) -> None:
        self._job = None
        if self._code in FOLDER_CODES:  # back again: try at once, not after the backoff
            self.schedule.reset_backoff()
            self._code = None
        self._scanned = True
        if self._code != BackupKeyMissingError.code:
            self.schedule.set_newest(newest)
        self.poll()

    def _scan_failed(self, error: TacitError) -> None:
        self._job = None
        self._scanned = True
        self.schedule.forget()
        if self._code != BackupKeyMissingError.code:
            self._code = error.code
        self._refresh()

    def _backup_done(self, ticket: tuple[int, int], done: _Done) -> None:
        self._job, self.fraction = None, None
        if not self.schedule.finish(ticket, True, done.newest):
            return
        self._code, self._scanned = None, True
        if done.report is not None:
            self.backed_up.emit(done.report)
        self._refresh()

    def _backup_failed(self, ticket: tuple[int, int], error: TacitError) -> None:
        self._job, self.fraction = None, None
        if not self.schedule.finish(ticket, False):
            return
        log.info("automatic backup did not complete: %s", error.code)  # never a message
        self._code = error.code
        if error.code in FOLDER_CODES or error.code == BackupKeyMissingError.code:
            self.schedule.forget()
        self._refresh()

    def backup_before_quit(self) -> bool:
        """One last backup (quit), waited for at most about ``quit_wait_ms``. True when it
        was written. Never raises; the schedule stops."""
        timeout_ms = self.quit_wait_ms
        folder, vault_id = self.folder, self._vault_id
        self.timer.stop()
        self.schedule.stop()
        if not (self.configured and folder is not None and vault_id is not None):
            return False
        if not self._vault.is_unlocked or self._code == BackupKeyMissingError.code:
            return False
        deadline = time.monotonic() + timeout_ms / 1000
        self.runner.wait(timeout_ms)  # a scan or backup running now ends first
        finished = threading.Event()
        outcome: list[object] = []
        latest = [0.0]  # written by the worker, read here (a float: no lock needed)

        def note(fraction: float) -> None:
            latest[0] = fraction

        def job() -> None:
            try:
                outcome.append(self._backup_job(folder, vault_id, self.settings.keep,
                                                progress=note))  # fmt: skip
            except Exception as exc:  # reported by its code below, never its text
                outcome.append(exc)
            finally:
                finished.set()

        self.runner.run(job, lambda _r: None, lambda _e: None)
        # The UI thread waits here (no event loop runs: nothing else may start during
        # quit), so progress is handed over directly every tenth of a second.
        self.quit_progress.emit(0.0)
        while not finished.wait(max(0.0, min(0.1, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                log.warning("the backup at quit took too long; quitting without waiting")
                return False
            self.quit_progress.emit(latest[0])
        self.quit_progress.emit(latest[0])
        if outcome and isinstance(outcome[0], _Done):
            return True
        error = outcome[0] if outcome else None
        code = error.code if isinstance(error, TacitError) else type(error).__name__
        log.warning("the backup at quit failed: %s", code)
        return False

    # -- status --------------------------------------------------------------------------
    def _refresh(self) -> None:
        if not self.active or not self.configured:
            self._set(BackupStatus())
            return
        newest = self.schedule.newest
        if self._job == "backup":
            state = "running"
        elif self._code is not None:
            state = "failed" if self._code not in FOLDER_CODES else self._code
        elif not self._scanned:
            state = "unknown"
        else:
            state = "ok"
        warning = ""
        now = self._vault.clock.now()
        stale = self._scanned and (newest is None or (now - newest).total_seconds() > STALE_S)
        if self._code in FOLDER_CODES or self._code == BackupKeyMissingError.code:
            warning = plain(self._code or "")
        elif stale and state != "running":
            if newest is None:
                warning = "No backup has been made yet."
            else:  # "3 days ago" -> "3 days old"
                age = ago((now - newest).total_seconds()).removesuffix(" ago")
                warning = f"The newest backup is {age} old."
            if self._code is not None:
                warning += f" The last try failed ({self._code}): {plain(self._code)}."
        self._set(BackupStatus(state, newest, self._code, warning))

    def text(self) -> str:
        return self.status.text(self._vault.clock.now())

    def _set(self, status: BackupStatus) -> None:
        self.status = status
        shown = (status, self.text())
        if shown != self._shown:
            self._shown = shown
            self.status_changed.emit(status)


# -- widgets ----------------------------------------------------------------------------
class BackupBanner(QFrame):
    """The main window's notice when backups need attention (non-modal), and the
    status-bar text (``status_label``)."""

    settings_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("backupBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.driver: BackupDriver | None = None
        self.label = named(QLabel(self), "Backup warning")
        self.label.setWordWrap(True)
        self.now_button = named(QPushButton("Back up now", self), "Back up now")
        self.settings_button = named(QPushButton("Backup settings…", self), "Backup settings")
        self.settings_button.clicked.connect(lambda: self.settings_requested.emit())
        self.now_button.clicked.connect(self._back_up_now)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(QLabel("⚠", self))
        row.addWidget(self.label, 1)
        row.addWidget(self.now_button)
        row.addWidget(self.settings_button)
        self.status_label = named(QLabel(self), "Backup status")
        self.status_label.setObjectName("backupStatus")
        # A running backup's bar and time left, in the status bar beside the status.
        self.progress = ProgressPanel(self)
        self.progress.setObjectName("backupProgress")
        layout = self.progress.layout()
        if isinstance(layout, QVBoxLayout):  # one line: the caption, then the bar
            layout.setDirection(QVBoxLayout.Direction.LeftToRight)
        self.progress.bar.setMaximumWidth(140)
        self.progress.bar.setAccessibleName("Backup progress")
        self.hide()

    def attach(self, driver: BackupDriver) -> None:
        self.driver = driver
        driver.status_changed.connect(self.show_status)
        driver.progress_changed.connect(self.show_progress)
        driver.quit_progress.connect(self.show_quit_progress)
        self.show_status(driver.status)

    def show_progress(self, fraction: float) -> None:
        if self.progress.busy:
            self.progress.report(fraction)

    def show_quit_progress(self, fraction: float) -> None:
        """The backup at quit: the UI thread is waiting for it, so the bar is laid out
        and painted here and now (only layout and paint events are delivered)."""
        if not self.progress.busy:
            self.progress.set_busy(True, "Backing up before quitting…")
            self.status_label.hide()
        self.progress.show_fraction(fraction)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        self.window().repaint()

    def _back_up_now(self) -> None:
        if self.driver is not None:
            self.driver.back_up_now()

    def show_status(self, status: BackupStatus) -> None:
        if self.driver is None:
            return
        self.label.setText(status.warning)
        self.setVisible(bool(status.warning))
        self.now_button.setVisible(status.error_code != BackupKeyMissingError.code)
        self.now_button.setEnabled(status.state != "running")
        self.status_label.setText(self.driver.text())
        running = status.state == "running"
        if running != self.progress.busy:
            self.progress.set_busy(running, "Backing up…")
        self.status_label.setVisible(not running)  # the panel's caption says it then


class BackupGroup(QGroupBox):
    """Settings ▸ Backups: folder, keep last N, every N hours, on/off, "Back up now" and
    the newest backup's time. ``save()`` stores a change in the vault."""

    def __init__(self, driver: BackupDriver, parent: QWidget | None = None) -> None:
        super().__init__("Backups", parent)
        self.driver = driver
        s = driver.settings
        self.suggested = default_backup_dir()
        self.folder = named(QLineEdit(self), "Backup folder")
        self.folder.setReadOnly(True)
        self.folder.setPlaceholderText(f"{self.suggested}  (suggested)")
        self.folder.setText(s.folder or "")
        self.choose = named(QPushButton("Choose…", self), "Choose backup folder",
                            "Pick a folder, for example on an external drive")  # fmt: skip
        self.choose.clicked.connect(self.choose_folder)
        self.enabled = named(QCheckBox("Back up automatically, and when quitting", self),
                             "Automatic backups")  # fmt: skip
        self.enabled.setChecked(s.enabled and s.folder is not None)
        self.keep = named(QSpinBox(self), "Keep the last backups")
        self.keep.setRange(1, 1000)
        self.keep.setValue(s.keep)
        self.interval = named(QSpinBox(self), "Back up every hours")
        self.interval.setRange(1, 24 * 30)
        self.interval.setSuffix(" h")
        self.interval.setValue(s.interval_hours)
        self.now_button = named(QPushButton("Back up now", self), "Back up now")
        self.now_button.clicked.connect(self.back_up_now)
        self.newest = named(QLabel(self), "Newest backup")
        self.message = MessageLabel(self)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(self.choose)
        form = QFormLayout(self)
        # A row whose field is a layout gets no buddy from Qt, and the label then shows
        # its "&": name the buddy (the button, the folder field being read-only).
        folder_label = QLabel("&Folder:", self)
        folder_label.setBuddy(self.choose)
        form.addRow(folder_label, row)
        form.addRow("", self.enabled)
        form.addRow("&Keep the last:", self.keep)
        form.addRow("&Every:", self.interval)
        form.addRow(self.newest, self.now_button)
        form.addRow(self.message)
        driver.status_changed.connect(self._show_newest)
        self._show_newest(driver.status)

    def _show_newest(self, status: BackupStatus) -> None:
        if status.newest is None:
            self.newest.setText("No backup in this folder yet" if status.state != "off" else "")
        else:
            when = status.newest.strftime("%Y-%m-%d %H:%M")
            self.newest.setText(f"Newest backup: {when} UTC ({self.driver.text().lower()})")
        if status.error_code == BackupKeyMissingError.code:
            self.message.show_message(plain(status.error_code))

    def choose_folder(self) -> QFileDialog:
        """Pick the folder (window-modal, no nested event loop). Qt's file dialog writes
        the folders it visited to Qt's own settings file (QtProject.conf) when it goes;
        what was there before is put back then, so the path stays in the vault only."""
        start = self.folder.text() or str(Path.home())
        dialog = private_file_dialog(self, "Tacit — Backup folder", start)
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        dialog.fileSelected.connect(self.set_folder)
        dialog.open()
        return dialog

    def set_folder(self, folder: str) -> None:
        if folder:
            self.folder.setText(folder)
            self.enabled.setChecked(True)

    def choice(self) -> BackupSettings:
        folder = self.folder.text().strip() or None
        if folder is None and self.enabled.isChecked():
            folder = str(self.suggested)
        return replace(self.driver.settings, enabled=self.enabled.isChecked(), folder=folder,
                       keep=self.keep.value(), interval_hours=self.interval.value())  # fmt: skip

    def save(self) -> bool:
        """Store a change (and make the suggested folder if it is the one chosen). False,
        with a message shown, when that failed."""
        new = self.choice()
        if new == self.driver.settings:
            return True
        try:
            if new.folder == str(self.suggested) and new.enabled:
                private_dir(self.suggested)  # only the suggestion is ever created
            self.driver.apply_settings(new)
        except TacitError as exc:
            self.message.show_message(f"The backup settings were not saved ({exc.code}).")
            return False
        return True

    def back_up_now(self) -> None:
        if self.save():
            self.driver.back_up_now()
