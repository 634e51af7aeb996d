"""``UnlockWindow``: the locked state — passphrase, or recovery key then a new passphrase.

It shows no client data at all (not even how many clients there are). Unlocking runs off
the UI thread (Argon2id takes about a second by design). After repeated failures the
input is disabled for a growing delay — 0, 0, 2, 4, 8 … s, at most ``MAX_DELAY_S`` — on
top of the KDF's own cost. The count is the service's (``failed_unlocks()``: failures
since the last successful unlock, noted beside the vault header), so restarting the app
does not reset it: a restarted app makes the user wait the full delay for that count
before the next attempt. (Someone who can delete that file can still reset it; the KDF
and the keychain binding remain the real defence.)

A lock or wipe order from another device can be carried out while this window is up
(the controller's order watcher runs while the vault is locked too, and an unlock checks
for one first): ``order_carried_out`` then says so here. An order carried out while an
unlock is in progress is serialized with it by the vault service: either the unlock is
refused (``device_locked`` / ``device_wiped``), or the vault opens and the order locks it
again at once — so an unlock's result is acted on only if the vault is still open and no
order is in effect (one carried out by another process, e.g. the CLI, is seen in the
header after the unlock and closes the vault again).

Invariants: the passphrase and recovery key fields are cleared after every attempt and
whenever the window is hidden; ``unlocked`` is emitted only once the vault is open with a
passphrase the user knows (after a recovery-key unlock, a new one must be set first, or
the vault is locked again), and never for a vault an order has locked meanwhile.
"""

from __future__ import annotations

from app.errors import (
    DeviceLockedError,
    DeviceSecretMissingError,
    DeviceWipedError,
    LeaseExpiredError,
    TacitError,
    WrongPassphraseError,
)
from app.sync.devices import DeviceService
from app.ui.models import icon
from app.ui.ops import OpRunner
from app.ui.orders import DeviceFactory
from app.ui.passphrase_form import PassphraseForm
from app.ui.qt import (
    QCheckBox,
    QCloseEvent,
    QHBoxLayout,
    QHideEvent,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.restore_backup_dialog import RestoreBackupDialog
from app.ui.restore_dialog import RestoreDialog
from app.ui.widgets import BusyBar, MessageLabel, named
from app.vault.crypto import Passphrase
from app.vault.models import LockReason
from app.vault.service import VaultService

MAX_DELAY_S = 300
FREE_ATTEMPTS = 2

PAGE_PASSPHRASE, PAGE_RECOVERY, PAGE_NEW_PASSPHRASE = 0, 1, 2

LOCKED_TEXT = (
    "This device was locked from another device. Your passphrase no longer opens it. Once "
    "the lost flag is cleared from another device, restore it with your sync account — "
    "or use your recovery key."
)
WIPED_TEXT = (
    "This device was wiped from another device: its vault is gone from here. Your synced "
    "notes are safe on the server and your other devices."
)
LEASE_TEXT = (
    "This device has not reached the sync server for longer than the offline lease "
    "allows. Go online and restore it with your sync account."
)


def failure_delay(failures: int) -> int:
    """Seconds to wait after ``failures`` consecutive wrong passphrases."""
    if failures <= FREE_ATTEMPTS:
        return 0
    return int(min(MAX_DELAY_S, 2 ** (failures - FREE_ATTEMPTS)))


class UnlockWindow(QWidget):
    unlocked = Signal()
    closed_by_user = Signal()

    def __init__(
        self, service: VaultService, runner: OpRunner, parent: QWidget | None = None, *,
        devices: DeviceFactory = DeviceService,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._devices = devices
        self.restore_dialog: RestoreDialog | None = None
        self.backup_dialog: RestoreBackupDialog | None = None
        self._checking = False  # the order check at start holds the passphrase back
        self._order: str | None = None  # the order whose message is shown ("lock"/"wipe")
        self.failures = 0
        self.wait_left = 0
        self._quitting = False
        self.setWindowTitle("Tacit")
        self.setObjectName("unlockWindow")
        self._delay_timer = QTimer(self)
        self._delay_timer.setInterval(1000)
        self._delay_timer.timeout.connect(self.tick)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self._build_passphrase_page())
        self.stack.addWidget(self._build_recovery_page())
        self.stack.addWidget(self._build_new_passphrase_page())
        self.busy = BusyBar(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 32, 40, 32)
        layout.addWidget(self.stack)
        layout.addWidget(self.busy)
        self.resize(480, 420)

    # -- pages -------------------------------------------------------------------------
    def _heading(self, parent: QWidget, text: str) -> QLabel:
        label = QLabel(text, parent)
        label.setObjectName("title")
        label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        return label

    def _build_passphrase_page(self) -> QWidget:
        page = QWidget(self)
        lock_glyph = QLabel(page)
        lock_glyph.setPixmap(icon("lock").pixmap(64, 64))
        lock_glyph.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        lock_glyph.setAccessibleName("Locked")
        sub = QLabel("Enter your passphrase to open your notes.", page)
        sub.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        sub.setWordWrap(True)
        self.passphrase = named(QLineEdit(page), "Passphrase")
        self.passphrase.setObjectName("unlockPassphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("Passphrase")
        self.passphrase.returnPressed.connect(self.unlock)
        self.error = MessageLabel(page)
        self.error.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.unlock_button = named(QPushButton("Unlock", page), "Unlock")
        self.unlock_button.setDefault(True)
        self.unlock_button.clicked.connect(self.unlock)
        self.recovery_link = named(
            QPushButton("Use recovery key…", page),
            "Use recovery key",
            "Forgot your passphrase? Open the vault with the recovery key from your kit",
        )
        self.recovery_link.setFlat(True)
        self.recovery_link.clicked.connect(lambda: self._goto(PAGE_RECOVERY))
        self.restore_link = named(
            QPushButton("Restore with your sync account…", page),
            "Restore with your sync account",
            "Sign in to your sync account (password and a code) and choose a new passphrase",
        )
        self.restore_link.clicked.connect(self.open_restore)
        self.restore_link.hide()
        self.backup_link = named(
            QPushButton("Restore from a backup…", page),
            "Restore from a backup",
            "Open a Tacit backup file with its passphrase or the recovery key",
        )
        self.backup_link.setFlat(True)
        self.backup_link.clicked.connect(self.open_backup_restore)

        layout = QVBoxLayout(page)
        layout.addStretch(1)
        layout.addWidget(lock_glyph)
        layout.addWidget(self._heading(page, "Tacit is locked"))
        layout.addWidget(sub)
        layout.addSpacing(12)
        layout.addWidget(self.passphrase)
        layout.addWidget(self.error)
        layout.addWidget(self.unlock_button)
        layout.addWidget(self.restore_link)
        layout.addSpacing(8)
        layout.addWidget(self.recovery_link, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.backup_link, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        return page

    def _build_recovery_page(self) -> QWidget:
        page = QWidget(self)
        intro = QLabel(
            "Type the recovery key from your recovery kit. Case, spaces and dashes do not "
            "matter. You will then choose a new passphrase.",
            page,
        )
        intro.setWordWrap(True)
        self.recovery_key = named(QLineEdit(page), "Recovery key")
        self.recovery_key.setPlaceholderText("TACIT-XXXX-XXXX-…")
        self.recovery_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.recovery_key.returnPressed.connect(self.unlock_with_recovery_key)
        self.show_key = named(QCheckBox("Show what I type", page), "Show recovery key")
        self.show_key.toggled.connect(
            lambda shown: self.recovery_key.setEchoMode(
                QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
            )
        )
        self.recovery_error = MessageLabel(page)
        self.recovery_button = named(QPushButton("Unlock with recovery key", page), "Unlock")
        self.recovery_button.clicked.connect(self.unlock_with_recovery_key)
        back = named(QPushButton("Back", page), "Back to passphrase")
        back.clicked.connect(lambda: self._goto(PAGE_PASSPHRASE))

        layout = QVBoxLayout(page)
        layout.addWidget(self._heading(page, "Use your recovery key"))
        layout.addWidget(intro)
        layout.addWidget(self.recovery_key)
        layout.addWidget(self.show_key)
        layout.addWidget(self.recovery_error)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(back)
        row.addStretch(1)
        row.addWidget(self.recovery_button)
        layout.addLayout(row)
        return page

    def _build_new_passphrase_page(self) -> QWidget:
        page = QWidget(self)
        intro = QLabel(
            "The vault is open. Choose a new passphrase; the old one stops working.", page
        )
        intro.setWordWrap(True)
        self.new_form = PassphraseForm(page)
        self.new_error = MessageLabel(page)
        self.set_button = named(QPushButton("Set passphrase", page), "Set new passphrase")
        self.set_button.setEnabled(False)
        self.set_button.setDefault(True)
        self.new_form.validity_changed.connect(self.set_button.setEnabled)
        self.set_button.clicked.connect(self.set_new_passphrase)
        cancel = named(QPushButton("Cancel and lock", page), "Cancel and lock")
        cancel.clicked.connect(self._cancel_recovery)

        layout = QVBoxLayout(page)
        layout.addWidget(self._heading(page, "Choose a new passphrase"))
        layout.addWidget(intro)
        layout.addWidget(self.new_form)
        layout.addWidget(self.new_error)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(cancel)
        row.addStretch(1)
        row.addWidget(self.set_button)
        layout.addLayout(row)
        return page

    # -- state -------------------------------------------------------------------------
    def _goto(self, page: int) -> None:
        self.passphrase.clear()
        self.recovery_key.clear()
        self.show_key.setChecked(False)
        self.recovery_error.clear_message()
        self.new_error.clear_message()
        if page != PAGE_NEW_PASSPHRASE:
            self.new_form.clear()
        self.stack.setCurrentIndex(page)
        focus = {
            PAGE_PASSPHRASE: self.passphrase,
            PAGE_RECOVERY: self.recovery_key,
            PAGE_NEW_PASSPHRASE: self.new_form.passphrase,
        }[page]
        focus.setFocus()

    def reset(self) -> None:
        """Back to the passphrase page with empty fields (shown after every lock)."""
        self._goto(PAGE_PASSPHRASE)
        self._order = None
        if self.wait_left <= 0:
            self.error.clear_message()
        self.restore_link.hide()
        self.restore_delay()
        self.show_remote_state()

    # -- remote lock -------------------------------------------------------------------
    def show_remote_state(self) -> None:
        """Say so when an order from another device is in effect (read from the vault
        header, which works locked)."""
        try:
            self._service.refuse_if_remote_locked()
        except DeviceWipedError:
            self.show_order("wipe")
        except DeviceLockedError:
            self.show_order("lock")
        except (OSError, TacitError):
            return  # no vault yet, or unreadable: the unlock attempt will say

    def show_order(self, action: str) -> None:
        """An order was carried out (``lock`` or ``wipe``): tell the user plainly."""
        wiped = action == "wipe"
        self._order = action
        self.error.show_message(WIPED_TEXT if wiped else LOCKED_TEXT)
        self.restore_link.setVisible(not wiped)

    def order_carried_out(self, action: str) -> None:
        """The order watcher carried out ``action`` (the vault is locked, or wiped). Back
        to the passphrase page unless an attempt is running (its result will say so too);
        after a wipe there is nothing left to restore."""
        if not self.busy.busy and self.stack.currentIndex() != PAGE_PASSPHRASE:
            self._goto(PAGE_PASSPHRASE)
        if action == "wipe":
            dialog, self.restore_dialog = self.restore_dialog, None
            if dialog is not None:
                dialog.done(0)
        self.show_order(action)

    def begin_order_check(self) -> None:
        """The order check at start is running: no passphrase until it ends."""
        self._checking = True
        self.set_busy(True, "Checking with the sync server…")

    def end_order_check(self) -> None:
        if not self._checking:
            return
        self._checking = False
        self.set_busy(False)
        self.show_remote_state()
        if self.stack.currentIndex() == PAGE_PASSPHRASE:
            self.passphrase.setFocus()

    def open_restore(self) -> RestoreDialog:
        """ "Restore with your sync account…" (one dialog at a time)."""
        dialog = self.restore_dialog
        if dialog is None:
            dialog = RestoreDialog(self._devices(self._service), self._runner, self)
            dialog.restored.connect(self._unlocked)
            dialog.finished.connect(lambda _r: self._restore_closed(dialog))
            self.restore_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def open_backup_restore(self) -> RestoreBackupDialog:
        """ "Restore from a backup…" (one dialog at a time)."""
        dialog = self.backup_dialog
        if dialog is None:
            dialog = RestoreBackupDialog(self._service, self._runner, self)
            dialog.opened.connect(self._unlocked)
            dialog.finished.connect(lambda _r: self._backup_closed(dialog))
            self.backup_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _backup_closed(self, dialog: RestoreBackupDialog) -> None:
        if self.backup_dialog is dialog:
            self.backup_dialog = None
        dialog.deleteLater()

    def _restore_closed(self, dialog: RestoreDialog) -> None:
        if self.restore_dialog is dialog:
            self.restore_dialog = None
        dialog.deleteLater()

    def _stored_failures(self) -> int:
        try:
            return self._service.failed_unlocks() if self._service.exists() else 0
        except (OSError, TacitError):
            return 0

    def restore_delay(self) -> None:
        """Failures noted before this app started (or by the CLI) count too: wait the
        delay they call for before the next attempt."""
        stored = self._stored_failures()
        if stored <= self.failures:
            return
        self.failures = stored
        delay = failure_delay(stored)
        if delay and self.wait_left <= 0:
            self._start_wait(delay, f"{stored} failed attempts to unlock. Try again in {delay} s.")

    def _start_wait(self, delay: int, text: str) -> None:
        self.wait_left = delay
        self._set_input_enabled(False)
        self._delay_timer.start()
        self.error.show_message(text)

    def set_busy(self, busy: bool, message: str = "") -> None:
        if not busy and self._checking:
            return  # an unlock cannot run meanwhile; the order check ends it
        self.busy.set_busy(busy, message)
        self.stack.setEnabled(not busy)
        if not busy and self.wait_left > 0:
            self._set_input_enabled(False)

    def _set_input_enabled(self, enabled: bool) -> None:
        self.passphrase.setEnabled(enabled)
        self.unlock_button.setEnabled(enabled)

    # -- passphrase --------------------------------------------------------------------
    def unlock(self) -> None:
        text = self.passphrase.text()
        self.passphrase.clear()
        if not text or self.busy.busy or self.wait_left > 0:
            return
        secret = Passphrase.from_str(text)
        del text
        service = self._service
        factory = self._devices

        def work() -> None:
            try:
                # An unlock is a contact point (docs/SECURITY.md, "Lost device"): an order
                # sent while this window sat here is carried out before the passphrase
                # is tried. Quiet and quick offline, as before every CLI command.
                devices = factory(service)
                if devices.linked():
                    devices.check_order(wait=0, quiet=True)
                service.unlock(secret)
            finally:
                secret.wipe()
            # An order carried out during the KDF: by this app's watcher, it has locked
            # the vault again; by another process (a CLI check), the header says so.
            try:
                service.refuse_if_remote_locked()
            except (DeviceLockedError, DeviceWipedError):
                service.lock(LockReason.REMOTE)
                raise
            except (OSError, TacitError):
                pass  # cannot tell from here; the watcher and the next check will

        self.error.clear_message()
        self._runner.run(work, self._unlocked, self._failed, busy=self, message="Unlocking…")

    def _unlocked(self, _result: object = None) -> None:
        if not self._service.is_unlocked:  # an order locked it again meanwhile
            self._after_order()
            return
        self.failures = 0
        self._order = None
        self.error.clear_message()
        self.unlocked.emit()

    def _after_order(self) -> None:
        """An unlock succeeded but the vault is locked again (an order): passphrase page,
        and the order's message (read from the header)."""
        if self.stack.currentIndex() != PAGE_PASSPHRASE:
            self._goto(PAGE_PASSPHRASE)
        self.show_remote_state()

    def _failed(self, error: TacitError) -> None:
        if isinstance(error, WrongPassphraseError):
            # The service noted it (beside the header); count in memory too in case that
            # note could not be written.
            self.failures = max(self.failures + 1, self._stored_failures())
            delay = failure_delay(self.failures)
            text = "Wrong passphrase."
            if delay:
                self._start_wait(delay, text + f" Too many attempts: try again in {delay} s.")
            else:
                self.error.show_message(text)
        elif isinstance(error, DeviceWipedError):
            self.show_order("wipe")
        elif isinstance(error, DeviceLockedError):
            self.show_order("lock")
        elif isinstance(error, LeaseExpiredError):
            self.error.show_message(LEASE_TEXT)
            self.restore_link.show()
        elif isinstance(error, DeviceSecretMissingError):
            self.error.show_message(
                "This computer's keychain no longer holds the key this vault is bound to. "
                "Use your recovery key to open it."
            )
        else:
            self.error.show_message(f"The vault could not be opened: {error.message}")
        self.passphrase.setFocus()

    def tick(self) -> None:
        """One second of the failure delay has passed."""
        self.wait_left = max(0, self.wait_left - 1)
        if self.wait_left > 0:
            if self._order is None:  # an order's message stays until the next lock
                self.error.show_message(f"Wrong passphrase. Try again in {self.wait_left} s.")
            return
        self._delay_timer.stop()
        self._set_input_enabled(True)
        if self._order is None:
            self.error.show_message("Wrong passphrase. You can try again now.")
        self.passphrase.setFocus()

    # -- recovery key ------------------------------------------------------------------
    def unlock_with_recovery_key(self) -> None:
        key = self.recovery_key.text()
        self.recovery_key.clear()
        if not key.strip() or self.busy.busy:
            return
        service = self._service
        self.recovery_error.clear_message()
        self._runner.run(
            lambda: service.unlock_with_recovery_key(key),
            self._recovered,
            lambda e: self.recovery_error.show_message(e.message),
            busy=self,
            message="Unlocking with the recovery key…",
        )

    def _recovered(self, _result: object = None) -> None:
        if self._service.is_unlocked:
            self._goto(PAGE_NEW_PASSPHRASE)
        else:  # a new order locked it again meanwhile
            self._after_order()

    def set_new_passphrase(self) -> None:
        if not self.new_form.valid or self.busy.busy:
            return
        secret = self.new_form.take()
        service = self._service

        def work() -> None:
            try:
                service.change_passphrase(secret)
            finally:
                secret.wipe()

        self._runner.run(
            work,
            self._unlocked,
            lambda e: self.new_error.show_message(e.message),
            busy=self,
            message="Setting the new passphrase…",
        )

    def _cancel_recovery(self) -> None:
        self._service.lock(LockReason.USER)
        self._goto(PAGE_PASSPHRASE)

    # -- window ------------------------------------------------------------------------
    def hideEvent(self, event: QHideEvent) -> None:
        self.passphrase.clear()
        self.recovery_key.clear()
        dialog, self.restore_dialog = self.restore_dialog, None
        if dialog is not None:
            dialog.done(0)
        backup_dialog, self.backup_dialog = self.backup_dialog, None
        if backup_dialog is not None:
            backup_dialog.close()
        super().hideEvent(event)

    def prepare_quit(self) -> None:
        self._quitting = True

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._quitting:
            self.closed_by_user.emit()
        super().closeEvent(event)
