"""``FirstRunWindow``: create the vault, then show the recovery key once.

Step 1 asks for the clinician's name (the author on notes) and a passphrase (strength
meter, confirmation). Creating runs off the UI thread (Argon2id calibration takes about
two seconds). Step 2 shows the recovery key with Copy (concealed clipboard, auto-cleared)
and Print (the system print dialog, which also offers printing to a PDF file on Linux and
macOS); Continue stays disabled until "I have stored it" is ticked.

Invariants:
- the recovery key lives only in the label (not selectable, so it cannot be copied
  around the concealed clipboard) and is cleared when the user continues or the vault
  locks; it is never written to disk by the app except by an explicit Print;
- the passphrase is wiped after use, in the worker, whatever the outcome.
"""

from __future__ import annotations

import contextlib

from app.errors import TacitError
from app.ui.clipboard import ClipboardGuard
from app.ui.ops import OpRunner
from app.ui.passphrase_form import PassphraseForm
from app.ui.qt import (
    QCheckBox,
    QCloseEvent,
    QFont,
    QFontDatabase,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPrintDialog,
    QPrinter,
    QPushButton,
    QStackedWidget,
    Qt,
    QTextDocument,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.restore_backup_dialog import RestoreBackupDialog
from app.ui.widgets import BusyBar, MessageLabel, named, wipe_widgets
from app.vault.service import VaultService

_KIT_HTML = """
<h1>Tacit recovery kit</h1>
<p>This key opens your Tacit vault if you forget your passphrase or move to a new
computer. Anyone holding it can open the vault: keep it locked away, apart from the
computer.</p>
<p style="font-family: monospace; font-size: 16pt; margin: 24pt 0">{key}</p>
<p>To use it: on the unlock screen choose <i>Use recovery key</i>, type the key (case,
spaces and dashes do not matter), then choose a new passphrase.</p>
"""


class FirstRunWindow(QWidget):
    completed = Signal()  # the vault exists, is unlocked, and the key was acknowledged
    closed_by_user = Signal()

    def __init__(
        self,
        service: VaultService,
        runner: OpRunner,
        clipboard: ClipboardGuard,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._clipboard = clipboard
        self._tearing_down = False
        self.setWindowTitle("Tacit")
        self.setObjectName("firstRunWindow")
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self._build_create_page())
        self.stack.addWidget(self._build_key_page())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 28, 32, 28)
        layout.addWidget(self.stack)
        self.resize(560, 540)

    # -- step 1 ------------------------------------------------------------------------
    def _build_create_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Welcome to Tacit", page)
        title.setObjectName("title")
        intro = QLabel(
            "Your notes are kept in an encrypted vault on this computer. Choose a "
            "passphrase to open it. It cannot be reset by anyone — a recovery key, shown "
            "next, is the only other way in.",
            page,
        )
        intro.setWordWrap(True)
        self.clinician = named(
            QLineEdit(page), "Your name", "Shown as the author of your notes (optional)"
        )
        self.clinician.setPlaceholderText("e.g. Dr. Sam Rivera")
        name_row = QHBoxLayout()
        name_label = QLabel("Your name:", page)
        name_label.setBuddy(self.clinician)
        name_row.addWidget(name_label)
        name_row.addWidget(self.clinician, 1)
        self.form = PassphraseForm(page)
        self.error = MessageLabel(page)
        self.busy = BusyBar(page)
        self.create_button = named(QPushButton("Create vault", page), "Create vault")
        self.create_button.setDefault(True)
        self.create_button.setEnabled(False)
        self.form.validity_changed.connect(self.create_button.setEnabled)
        self.create_button.clicked.connect(self.create_vault)
        self.form.confirm.returnPressed.connect(self.create_vault)
        self.backup_dialog: RestoreBackupDialog | None = None
        self.backup_button = named(
            QPushButton("Restore from a backup…", page),
            "Restore from a backup",
            "Already have a Tacit backup file? Restore it instead of creating a new vault",
        )
        self.backup_button.clicked.connect(self.open_backup_restore)

        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addSpacing(8)
        layout.addLayout(name_row)
        layout.addWidget(self.form)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.busy)
        buttons = QHBoxLayout()
        buttons.addWidget(self.backup_button)
        buttons.addStretch(1)
        buttons.addWidget(self.create_button)
        layout.addLayout(buttons)
        return page

    def open_backup_restore(self) -> RestoreBackupDialog:
        """ "Restore from a backup…" instead of creating a vault (one dialog at a time);
        once the restored vault is open, the first run is complete."""
        dialog = self.backup_dialog
        if dialog is None:
            dialog = RestoreBackupDialog(self._service, self._runner, self)
            dialog.opened.connect(self._restored)
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

    def _restored(self) -> None:
        if self._service.is_unlocked:
            self.wipe()
            self.completed.emit()

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy.set_busy(busy, message)
        self.form.setEnabled(not busy)
        self.clinician.setEnabled(not busy)
        self.backup_button.setEnabled(not busy)
        self.create_button.setEnabled(not busy and self.form.valid)

    def create_vault(self) -> None:
        if not self.form.valid or self.busy.busy:
            return
        self.error.clear_message()
        passphrase = self.form.take()
        clinician = self.clinician.text().strip() or None
        service = self._service

        def create() -> str:
            try:
                return service.create(passphrase, clinician=clinician)
            finally:
                passphrase.wipe()

        self._runner.run(
            create,
            self._show_key,
            self._create_failed,
            busy=self,
            message="Creating your vault — tuning the key derivation to this computer…",
        )

    def _create_failed(self, error: TacitError) -> None:
        self.error.show_message(f"The vault could not be created: {error.message}")

    # -- step 2 ------------------------------------------------------------------------
    def _build_key_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Your recovery key", page)
        title.setObjectName("title")
        intro = QLabel(
            "This key is shown only now. Print it or write it down and keep it somewhere "
            "safe, away from this computer. With it you can open the vault if you forget "
            "your passphrase; without both, your notes cannot be recovered.",
            page,
        )
        intro.setWordWrap(True)
        self.key_label = QLabel(page)
        self.key_label.setObjectName("recoveryKey")
        self.key_label.setWordWrap(True)
        self.key_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(max(mono.pointSizeF(), 10.0) * 1.3)
        mono.setWeight(QFont.Weight.DemiBold)
        self.key_label.setFont(mono)
        self.key_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.key_label.setMinimumHeight(96)
        self.copy_button = named(
            QPushButton("Copy", page),
            "Copy recovery key",
            "Copies the key; the clipboard is cleared again after a short delay",
        )
        self.print_button = named(
            QPushButton("Print…", page),
            "Print recovery kit",
            "Print the key on paper, or to a PDF file you keep offline",
        )
        self.copy_notice = MessageLabel(page)
        self.stored = named(
            QCheckBox("I have stored the recovery key somewhere safe", page),
            "I have stored the recovery key",
        )
        self.continue_button = named(QPushButton("Continue", page), "Continue")
        self.continue_button.setEnabled(False)
        self.continue_button.setDefault(True)
        self.stored.toggled.connect(self.continue_button.setEnabled)
        self.copy_button.clicked.connect(self.copy_key)
        self.print_button.clicked.connect(self.print_key)
        self.continue_button.clicked.connect(self.finish)

        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addSpacing(8)
        layout.addWidget(self.key_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.copy_button)
        row.addWidget(self.print_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.copy_notice)
        layout.addStretch(1)
        layout.addWidget(self.stored)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.continue_button)
        layout.addLayout(buttons)
        return page

    def _show_key(self, recovery_key: str) -> None:
        # A soft line break after every dash-separated group keeps the key readable.
        self.key_label.setText(recovery_key.replace("-", "-\u200b"))
        self.key_label.setAccessibleName("Recovery key")
        self.stack.setCurrentIndex(1)
        self.copy_button.setFocus()

    @property
    def recovery_key(self) -> str:
        return self.key_label.text().replace("\u200b", "")

    def copy_key(self) -> None:
        key = self.recovery_key
        if key:
            self._clipboard.copy(key)
            seconds = max(1, self._clipboard.delay_ms // 1000)
            self.copy_notice.show_message(
                f"Copied. The clipboard will be cleared in {seconds} s.", "notice"
            )

    def print_key(self) -> None:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        printer.setDocName("Tacit recovery kit")
        dialog = QPrintDialog(printer, self)
        dialog.setWindowTitle("Tacit — Print recovery kit")
        dialog.setModal(True)

        def print_now() -> None:
            key = self.recovery_key
            if not key:  # the vault locked (and the key was wiped) meanwhile
                return
            with contextlib.suppress(TacitError):  # auditing must not stop the print
                self._service.record_event("print", detail="recovery kit")
            document = QTextDocument()
            document.setHtml(_KIT_HTML.format(key=key))
            document.print_(printer)
            document.clear()

        dialog.accepted.connect(print_now)
        dialog.finished.connect(dialog.deleteLater)
        dialog.show()

    def finish(self) -> None:
        if not self.stored.isChecked():
            return
        self.wipe()
        self.completed.emit()

    # -- teardown ------------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget the recovery key and every field (lock, continue, close)."""
        self._tearing_down = True
        dialog, self.backup_dialog = self.backup_dialog, None
        if dialog is not None:
            dialog.close()  # clears what was typed there too
        self.form.clear()
        wipe_widgets(self.key_label)
        self.key_label.setAccessibleName("")

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._tearing_down:
            self.wipe()
            self.closed_by_user.emit()
        super().closeEvent(event)
