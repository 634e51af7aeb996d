"""``RestoreDialog``: open a remotely locked vault (or one whose offline lease ran out)
with the sync account — account password, an authenticator or recovery code, and a new
passphrase — through ``DeviceService.restore_online`` (docs/SECURITY.md, "Lost device").

The owner first clears the lost flag from another device (Account ▸ Devices… ▸ Restore);
then full re-authentication releases this device's escrow key, the vault opens through its
escrow slot and takes the new passphrase. The work (Argon2id, the network) runs off the
UI thread; errors are shown in plain words by their stable code.

Invariants: the password and codes are taken out of their fields (and the new passphrase
out of its form) when Restore is pressed and wiped in the worker once used; a failure
leaves nothing typed behind; ``restored`` is emitted only once the vault is open.
"""

from __future__ import annotations

from app.errors import TacitError
from app.sync.devices import DeviceService
from app.ui.ops import OpRunner
from app.ui.passphrase_form import PassphraseForm
from app.ui.qt import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.syncing import plain_message
from app.ui.widgets import BusyBar, MessageLabel, named
from app.vault.crypto import Passphrase

RESTORE_MESSAGES: dict[str, str] = {
    "device_lost": "This device is still marked lost. Clear the lost flag from another "
    "device first (Account ▸ Devices… ▸ Restore), then try again.",
    "device_removed": "This device was removed from the sync account. Use your recovery "
    "key instead.",
    "device_wiped": "This device was wiped: there is nothing left here to restore. Your "
    "synced notes are safe on your other devices.",
    "offline": "The sync server cannot be reached. Connect to the internet and try again.",
    "no_escrow_slot": "This vault never finished a sync, so the sync account cannot open "
    "it. Use your recovery key instead.",
    "wrong_escrow_key": "The sync account's key does not open this vault. Use your "
    "recovery key instead.",
    "not_signed_in": "This vault has no sync account to restore with. Use your recovery "
    "key instead.",
    "weak_passphrase": "Choose a stronger new passphrase.",
}


def restore_message(error: TacitError) -> str:
    return RESTORE_MESSAGES.get(error.code) or plain_message(error)


class RestoreDialog(QDialog):
    restored = Signal()

    def __init__(
        self, devices: DeviceService, runner: OpRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._devices = devices
        self._runner = runner
        self.setWindowTitle("Tacit — Restore this device")
        self.setObjectName("restoreDialog")
        intro = QLabel(
            "Sign in to your sync account to open this vault again. If the device was "
            "marked lost, clear that flag from another device first. You then choose a "
            "new passphrase; the old one no longer works.", self,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.password = named(QLineEdit(self), "Account password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.code = named(QLineEdit(self), "Authenticator code")
        self.code.setPlaceholderText("6-digit code")
        self.use_recovery = named(
            QCheckBox("Use a recovery code instead", self), "Use a recovery code instead"
        )
        self.use_recovery.toggled.connect(self._factor_changed)
        self.new_form = PassphraseForm(self)
        self.error = MessageLabel(self)
        self.busy = BusyBar(self)
        self.restore_button = named(QPushButton("Restore", self), "Restore")
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(self.restore)
        self.cancel_button = named(QPushButton("Cancel", self), "Cancel")
        self.cancel_button.clicked.connect(self.reject)
        for signal in (self.password.textChanged, self.code.textChanged):
            signal.connect(self._update)
        self.new_form.validity_changed.connect(self._update)

        form = QFormLayout()
        form.addRow("Account &password:", self.password)
        form.addRow("&Code:", self.code)
        form.addRow("", self.use_recovery)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.restore_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.new_form)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        layout.addLayout(row)
        self.finished.connect(lambda _r: self._clear())
        self._update()
        self.resize(480, 520)

    def _factor_changed(self, recovery: bool) -> None:
        self.code.clear()
        self.code.setPlaceholderText("Recovery code" if recovery else "6-digit code")
        self.code.setAccessibleName("Recovery code" if recovery else "Authenticator code")

    def _update(self, *_args: object) -> None:
        self.restore_button.setEnabled(
            bool(self.password.text()) and bool(self.code.text().strip())
            and self.new_form.valid and not self.busy.busy
        )  # fmt: skip

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy.set_busy(busy, message)
        for widget in (self.password, self.code, self.use_recovery, self.new_form,
                       self.cancel_button):  # fmt: skip
            widget.setEnabled(not busy)
        self._update()

    def restore(self) -> None:
        if not self.restore_button.isEnabled() or self.busy.busy:
            return
        password = Passphrase.from_str(self.password.text())
        code = self.code.text().strip()
        recovery = self.use_recovery.isChecked()
        self.password.clear()
        self.code.clear()
        new = self.new_form.take()
        devices = self._devices

        def work() -> None:
            try:
                devices.restore_online(password, new, totp=None if recovery else code,
                                       recovery_code=code if recovery else None)  # fmt: skip
            finally:
                password.wipe()
                new.wipe()

        self.error.clear_message()
        self._runner.run(work, self._done, self._failed, busy=self,
                         message="Restoring with your sync account…")  # fmt: skip

    def _done(self, _result: object) -> None:
        self.accept()
        self.restored.emit()

    def _failed(self, error: TacitError) -> None:
        self.error.show_message(restore_message(error))
        self.password.setFocus()

    def reject(self) -> None:
        if self.busy.busy:
            return  # the worker holds the secrets; it finishes (or fails) quickly
        super().reject()

    def _clear(self) -> None:
        self.password.clear()
        self.code.clear()
        self.new_form.clear()
