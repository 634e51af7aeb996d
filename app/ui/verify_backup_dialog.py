"""``VerifyBackupDialog``: check a backup file (File ▸ Verify a backup…), the app's face of
``tacit backup verify``.

The user picks a ``.tacitbackup`` file (Qt's open dialog, or a path typed in) and gives the
passphrase it was made with or the recovery key; ``backup_restore.verify_backup`` — the
CLI's procedure: size, checksum, key, MAC, every page, the audit chain and every
signature — runs in a worker with the progress bar and the time left. The answer is
"The backup is intact" with its counts, or our words for the stable error code
(``integrity_error``, ``wrong_passphrase`` …; the restore wizard's, see
``restore_backup_dialog.restore_error``).

Invariants: the secret leaves its field when *Verify* is pressed and is wiped in the
worker; every field is cleared when the dialog closes (a lock closes it with the main
window, and a result still in flight is then dropped); verifying writes nothing
anywhere but a private temporary copy of the (encrypted) body that ``verify_backup``
removes.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import TacitError
from app.ui.ops import OpRunner
from app.ui.qt import (
    QButtonGroup,
    QCloseEvent,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)
from app.ui.restore_backup_dialog import choose_backup_file, restore_error
from app.ui.widgets import MessageLabel, ProgressPanel, named, wipe_widgets
from app.vault import backup_restore
from app.vault.backup_restore import Contents
from app.vault.crypto import Passphrase

# Where the restore wizard's words say "Nothing was restored", which is not the point here.
VERIFY_MESSAGES: dict[str, str] = {
    "integrity_error": "The backup file is damaged or was altered: it cannot be restored.",
    "weak_kdf": "This backup's key settings are weaker than Tacit accepts.",
}


def verify_error(error: TacitError) -> str:
    """Our words for an error, with its stable code."""
    if error.code in VERIFY_MESSAGES:
        return f"{VERIFY_MESSAGES[error.code]} ({error.code})"
    return restore_error(error)


class VerifyBackupDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = OpRunner(self, max_threads=1)
        self._closing = False
        self.file_dialog: QFileDialog | None = None
        self.contents: Contents | None = None
        self.error_code: str | None = None
        self.setWindowTitle("Tacit — Verify a backup")
        self.setObjectName("verifyBackupDialog")
        intro = QLabel(
            "Check that a backup file opens and that everything in it is whole: every "
            "page, the audit trail and every signature. Nothing is restored or changed.",
            self,
        )
        intro.setWordWrap(True)
        self.path = named(QLineEdit(self), "Backup file", "The .tacitbackup file to check")
        self.path.setPlaceholderText("Choose a backup file…")
        self.choose_button = named(QPushButton("Choose…", self), "Choose backup file")
        self.choose_button.clicked.connect(self.choose_file)
        self.use_passphrase = named(
            QRadioButton("The passphrase it was made with", self), "Open with the passphrase"
        )
        self.use_recovery = named(QRadioButton("The recovery key", self),
                                  "Open with the recovery key")  # fmt: skip
        self.methods = QButtonGroup(self)
        self.methods.addButton(self.use_passphrase)
        self.methods.addButton(self.use_recovery)
        self.use_passphrase.setChecked(True)
        self.secret = named(QLineEdit(self), "Backup passphrase")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = MessageLabel(self)
        self.progress = ProgressPanel(self)
        self.verify_button = named(QPushButton("Verify", self), "Verify")
        self.verify_button.setDefault(True)
        self.verify_button.clicked.connect(self.verify)
        self.close_button = named(QPushButton("Close", self), "Close")
        self.close_button.clicked.connect(self.reject)

        file_row = QHBoxLayout()
        file_row.addWidget(self.path, 1)
        file_row.addWidget(self.choose_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        buttons.addWidget(self.verify_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(file_row)
        layout.addWidget(self.use_passphrase)
        layout.addWidget(self.use_recovery)
        layout.addWidget(self.secret)
        layout.addWidget(self.message)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        layout.addLayout(buttons)

        self.use_recovery.toggled.connect(self._method_changed)
        self.path.textChanged.connect(self._update)
        self.secret.textChanged.connect(self._update)
        self.finished.connect(self._forget)
        self._method_changed()
        self.resize(520, 340)

    def _method_changed(self, *_args: object) -> None:
        recovery = self.use_recovery.isChecked()
        self.secret.clear()
        self.secret.setPlaceholderText("TACIT-XXXX-XXXX-…" if recovery else "Passphrase")
        self.secret.setAccessibleName("Recovery key" if recovery else "Backup passphrase")
        self._update()

    def _update(self, *_args: object) -> None:
        ready = bool(self.path.text().strip()) and bool(self.secret.text())
        self.verify_button.setEnabled(ready and not self.progress.busy)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress.set_busy(busy, message)
        for widget in (self.path, self.choose_button, self.use_passphrase, self.use_recovery,
                       self.secret, self.close_button):  # fmt: skip
            widget.setEnabled(not busy)
        self._update()

    def choose_file(self) -> QFileDialog:
        self.file_dialog = choose_backup_file(self, self.path)
        return self.file_dialog

    def verify(self) -> None:
        if not self.verify_button.isEnabled() or self.progress.busy:
            return
        path = Path(self.path.text().strip()).expanduser()
        passphrase: Passphrase | None = None
        key: str | None = None
        if self.use_recovery.isChecked():
            key = self.secret.text().strip()
        else:
            passphrase = Passphrase.from_str(self.secret.text())
        self.secret.clear()
        report = self.progress.report

        def work() -> Contents:
            try:
                return backup_restore.verify_backup(
                    path, passphrase=passphrase, recovery_key=key, progress=report
                )
            finally:
                if passphrase is not None:
                    passphrase.wipe()

        self.contents, self.error_code = None, None
        self.message.clear_message()
        self._runner.run(work, self._done, self._failed, busy=self,
                         message="Checking the backup…")  # fmt: skip

    def _done(self, found: Contents) -> None:
        self.contents = found
        self.message.show_message(
            f"The backup is intact: {found.notes} notes, {found.clients} clients, "
            f"{found.audit_entries} audit entries, {found.signed_notes} signed notes.",
            "notice",
        )

    def _failed(self, error: TacitError) -> None:
        self.error_code = error.code
        self.message.show_message(verify_error(error))

    def reject(self) -> None:
        if self.progress.busy and not self._closing:
            return  # the worker holds the secret; it finishes (or fails) on its own
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        super().closeEvent(event)

    def _forget(self, _result: int = 0) -> None:
        self._runner.cancel_all()
        if self.file_dialog is not None:
            self.file_dialog.close()
            self.file_dialog = None
        self.contents = None
        wipe_widgets(self)
        self.deleteLater()
