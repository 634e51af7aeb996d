"""``RestoreBackupDialog``: restore an encrypted backup file into this computer's vault
folder, from the unlock screen or the first-run screen ("Restore from a backup…").

Steps: pick the file (Qt's open dialog, or a path typed in); open it with the passphrase
it was made with, or with the recovery key and a new passphrase (strength meter and
confirmation); the target is the app's vault folder — used when it holds nothing, and
otherwise only with "Replace the vault on this computer", which moves the old vault
aside (renamed, never deleted: ``restore_backup(force=True)``). The restore
(``app.vault.backup_restore.restore_backup``: verify everything, build beside the
target, rename into place) and then the unlock of the restored vault run in a worker
with a progress bar and the time left. The last page says what was restored (notes,
seconds, where the old vault went) and offers to open it or to lock it again.

Invariants:
- errors are shown in our words with their stable code (``integrity_error`` …), never
  anything read from the file; a failed restore leaves no vault behind (restore_backup);
- the passphrase, recovery key and new passphrase leave their fields when Restore is
  pressed and are wiped in the worker; every field is cleared when the dialog closes;
- ``opened`` is emitted only while the restored vault is unlocked; if it locks while the
  last page is up (idle timeout), the dialog closes.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import TacitError
from app.ui.ops import OpRunner
from app.ui.passphrase_form import PassphraseForm
from app.ui.qt import (
    QButtonGroup,
    QCheckBox,
    QCloseEvent,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import MessageLabel, ProgressPanel, named, private_file_dialog, wipe_widgets
from app.vault import backup_restore
from app.vault.backup import SUFFIX
from app.vault.backup_restore import RestoreReport
from app.vault.crypto import Passphrase
from app.vault.models import LockReason
from app.vault.service import VaultService

PAGE_CHOOSE, PAGE_DONE = 0, 1

MESSAGES: dict[str, str] = {
    "integrity_error": "The backup file is damaged or was altered. Nothing was restored.",
    "unsupported_version": "This backup was made by a newer version of Tacit.",
    "weak_kdf": "This backup's key settings are weaker than Tacit accepts. Nothing was restored.",
    "wrong_passphrase": "That passphrase does not open this backup.",
    "wrong_recovery_key": "That recovery key does not open this backup.",
    "weak_passphrase": "Choose a stronger new passphrase.",
    "vault_exists": 'There is already a vault on this computer. Tick "Replace the vault '
    'on this computer" to keep it aside and restore.',
}


def restore_error(error: TacitError) -> str:
    """Our words for an error, with its stable code."""
    return f"{MESSAGES.get(error.code, error.message)} ({error.code})"


class RestoreBackupDialog(QDialog):
    opened = Signal()  # the restored vault is unlocked and the user chose to open it

    def __init__(
        self, service: VaultService, runner: OpRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._closing = False
        self._opened = False
        self.report: RestoreReport | None = None
        self.file_dialog: QFileDialog | None = None
        self.setWindowTitle("Tacit — Restore from a backup")
        self.setObjectName("restoreBackupDialog")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self._build_choose_page())
        self.stack.addWidget(self._build_done_page())
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack)
        self._watch = QTimer(self)  # the last page closes if the vault locks meanwhile
        self._watch.setInterval(1000)
        self._watch.timeout.connect(self._check_still_open)
        self.finished.connect(self._forget)
        self._method_changed()
        self._update_target()
        self.resize(540, 480)

    # -- pages -------------------------------------------------------------------------
    def _build_choose_page(self) -> QWidget:
        page = QWidget(self)
        intro = QLabel(
            "Restore your notes from a Tacit backup file (.tacitbackup). Everything in it "
            "is checked before anything is put in place.", page,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.path = named(QLineEdit(page), "Backup file", "The .tacitbackup file to restore")
        self.path.setPlaceholderText("Choose a backup file…")
        self.choose_button = named(QPushButton("Choose…", page), "Choose backup file")
        self.choose_button.clicked.connect(self.choose_file)
        self.use_passphrase = named(
            QRadioButton("Open it with the passphrase it was made with", page),
            "Open with the passphrase",
        )
        self.use_recovery = named(
            QRadioButton("Open it with the recovery key (then choose a new passphrase)", page),
            "Open with the recovery key",
        )
        self.methods = QButtonGroup(page)
        self.methods.addButton(self.use_passphrase)
        self.methods.addButton(self.use_recovery)
        self.use_passphrase.setChecked(True)
        self.passphrase = named(QLineEdit(page), "Backup passphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("Passphrase")
        self.recovery_box = QWidget(page)
        self.recovery_key = named(QLineEdit(self.recovery_box), "Recovery key")
        self.recovery_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.recovery_key.setPlaceholderText("TACIT-XXXX-XXXX-…")
        self.new_form = PassphraseForm(self.recovery_box)
        box = QVBoxLayout(self.recovery_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.recovery_key)
        box.addWidget(self.new_form)
        self.target_label = QLabel(page)
        self.target_label.setWordWrap(True)
        self.replace = named(
            QCheckBox("Replace the vault on this computer (it is kept aside, renamed, "
                      "not deleted)", page),
            "Replace the vault on this computer",
        )  # fmt: skip
        self.error = MessageLabel(page)
        self.progress = ProgressPanel(page)
        self.restore_button = named(QPushButton("Restore", page), "Restore")
        self.restore_button.setDefault(True)
        self.restore_button.clicked.connect(self.restore)
        self.cancel_button = named(QPushButton("Cancel", page), "Cancel")
        self.cancel_button.clicked.connect(self.reject)

        file_row = QHBoxLayout()
        file_row.addWidget(self.path, 1)
        file_row.addWidget(self.choose_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.restore_button)
        layout = QVBoxLayout(page)
        layout.addWidget(intro)
        layout.addLayout(file_row)
        layout.addWidget(self.use_passphrase)
        layout.addWidget(self.use_recovery)
        layout.addWidget(self.passphrase)
        layout.addWidget(self.recovery_box)
        layout.addWidget(self.target_label)
        layout.addWidget(self.replace)
        layout.addWidget(self.error)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        layout.addLayout(buttons)

        self.use_recovery.toggled.connect(self._method_changed)
        for signal in (self.path.textChanged, self.passphrase.textChanged,
                       self.recovery_key.textChanged):  # fmt: skip
            signal.connect(self._update)
        self.new_form.validity_changed.connect(self._update)
        return page

    def _build_done_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Restored", page)
        title.setObjectName("title")
        self.summary = QLabel(page)
        self.summary.setWordWrap(True)
        self.open_button = named(QPushButton("Open Tacit", page), "Open the restored vault")
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self.open_vault)
        self.lock_button = named(QPushButton("Lock", page), "Lock the restored vault")
        self.lock_button.clicked.connect(self.lock_vault)
        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(self.lock_button)
        row.addStretch(1)
        row.addWidget(self.open_button)
        layout.addLayout(row)
        return page

    # -- state -------------------------------------------------------------------------
    @property
    def target(self) -> Path:
        return self._service.paths.directory

    @property
    def target_taken(self) -> bool:
        try:
            backup_restore.check_target(self.target, force=False)
        except TacitError:
            return True
        return False

    def _update_target(self) -> None:
        taken = self.target_taken
        if taken:
            self.target_label.setText(
                "There is already a vault on this computer. It is not replaced unless you "
                "tick the box below; it is then moved aside (renamed next to it)."
            )
        else:
            self.target_label.setText("The backup becomes the vault on this computer.")
        self.replace.setVisible(taken)
        if not taken:
            self.replace.setChecked(False)

    def _method_changed(self, *_args: object) -> None:
        recovery = self.use_recovery.isChecked()
        self.passphrase.setVisible(not recovery)
        self.recovery_box.setVisible(recovery)
        self.passphrase.clear()
        self.recovery_key.clear()
        self.new_form.clear()
        self._update()

    def _update(self, *_args: object) -> None:
        if self.use_recovery.isChecked():
            secret = bool(self.recovery_key.text().strip()) and self.new_form.valid
        else:
            secret = bool(self.passphrase.text())
        ready = bool(self.path.text().strip()) and secret and not self.progress.busy
        self.restore_button.setEnabled(ready)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress.set_busy(busy, message)
        for widget in (self.path, self.choose_button, self.use_passphrase, self.use_recovery,
                       self.passphrase, self.recovery_box, self.replace,
                       self.cancel_button):  # fmt: skip
            widget.setEnabled(not busy)
        self._update()

    # -- the file ----------------------------------------------------------------------
    def choose_file(self) -> QFileDialog:
        self.file_dialog = choose_backup_file(self, self.path)
        return self.file_dialog

    # -- restore -----------------------------------------------------------------------
    def restore(self) -> None:
        if not self.restore_button.isEnabled() or self.progress.busy:
            return
        path = Path(self.path.text().strip())
        force = self.replace.isChecked() and self.target_taken
        passphrase: Passphrase | None = None
        new: Passphrase | None = None
        key: str | None = None
        if self.use_recovery.isChecked():
            key = self.recovery_key.text().strip()
            self.recovery_key.clear()
            new = self.new_form.take()
        else:
            passphrase = Passphrase.from_str(self.passphrase.text())
            self.passphrase.clear()
        service = self._service
        target = self.target
        report_progress = self.progress.report

        def work() -> tuple[RestoreReport, TacitError | None]:
            try:
                done = backup_restore.restore_backup(
                    path, target, passphrase=passphrase, recovery_key=key,
                    new_passphrase=new, force=force, keychain=service.keychain,
                    clock=service.clock, progress=report_progress,
                )  # fmt: skip
                opener = new if key is not None else passphrase
                try:  # the restore proved this passphrase opens it here
                    if opener is not None:
                        service.unlock(opener)
                except TacitError as exc:
                    return done, exc
                return done, None
            finally:
                for secret in (passphrase, new):
                    if secret is not None:
                        secret.wipe()

        self.error.clear_message()
        self._runner.run(work, self._done, self._failed, busy=self,
                         message="Checking and restoring the backup…")  # fmt: skip

    def _done(self, result: tuple[RestoreReport, TacitError | None]) -> None:
        report, unlock_error = result
        self.report = report
        text = f"Restored {report.notes} notes in {report.seconds:.1f} s."
        if report.moved_aside is not None:
            text += f" The vault that was here is kept as {report.moved_aside.name}."
        if unlock_error is not None or not self._service.is_unlocked:
            detail = f" ({unlock_error.code})" if unlock_error is not None else ""
            text += f" It could not be opened here{detail}: unlock it with its passphrase."
            self.open_button.setEnabled(False)
        else:
            text += " It is open: its audit trail records the restore."
            self._watch.start()
        self.summary.setText(text)
        self.stack.setCurrentIndex(PAGE_DONE)
        self.open_button.setFocus()

    def _failed(self, error: TacitError) -> None:
        self._update_target()
        self.error.show_message(restore_error(error))

    def open_vault(self) -> None:
        if not self._service.is_unlocked:
            self.reject()
            return
        self._watch.stop()
        self._opened = True
        self.accept()
        self.opened.emit()

    def lock_vault(self) -> None:
        self._watch.stop()
        if self._service.is_unlocked:
            self._service.lock(LockReason.USER)
        self.reject()

    def _check_still_open(self) -> None:
        if not self._service.is_unlocked:
            self._watch.stop()
            self.reject()

    # -- closing -----------------------------------------------------------------------
    def reject(self) -> None:
        if self.progress.busy and not self._closing:
            return  # the worker holds the secrets; it finishes (or fails) on its own
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        super().closeEvent(event)

    def _forget(self, _result: int = 0) -> None:
        self._watch.stop()
        if self.report is not None and not self._opened and self._service.is_unlocked:
            self._service.lock(LockReason.USER)  # closed without opening it: lock again
        if self.file_dialog is not None:
            self.file_dialog.close()
            self.file_dialog = None
        self.new_form.clear()
        wipe_widgets(self)


def choose_backup_file(parent: QWidget, field: QLineEdit) -> QFileDialog:
    """Qt's open dialog for a backup file (window-modal, no nested event loop, no path
    left behind); the chosen file goes into ``field``. The restore wizard and the verify
    dialog both use it."""
    dialog = private_file_dialog(parent, "Tacit — Choose a backup", str(Path.home()))
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
    dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
    dialog.setNameFilters([f"Tacit backups (*{SUFFIX})", "All files (*)"])
    dialog.fileSelected.connect(lambda name: field.setText(name) if name else None)
    dialog.open()
    return dialog
