"""``ExportDialog``: export one client's record for a records request (Client pane ▸
Export record…). Its progress bar with the time left is ``app.ui.widgets.ProgressPanel``
(shared with the backup, verify and import dialogs).

The dialog offers the two formats of ``tacit export client``: an **encrypted archive**
with its own passphrase (confirmation and the strength meter; the vault's policy again
in ``export_client``) or a **PDF**, which is plaintext and is written only after a
window-modal box saying so is confirmed. Psychotherapy notes are left out unless ticked.
The file is chosen with Qt's save dialog; an existing file is refused, never replaced.
The export itself is ``app.vault.export.export_client`` — the CLI's procedure — in a
worker: one ``export`` audit entry, and the file removed if that entry cannot be written.

Invariants: the title never names the client ("Tacit — Export record"); the default file
name carries the date only; the passphrase leaves its fields when Export is pressed and
is wiped in the worker; every field is cleared when the dialog closes (a lock closes it
with the main window, and the result of an export still running is then dropped).
"""

from __future__ import annotations

from pathlib import Path

from app.errors import TacitError
from app.ui.ops import OpRunner
from app.ui.passphrase_form import PassphraseForm
from app.ui.pdf import render_pdf
from app.ui.qt import (
    QButtonGroup,
    QCheckBox,
    QCloseEvent,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import MessageLabel, ProgressPanel, named, private_file_dialog, wipe_widgets
from app.vault import export as record_export
from app.vault.crypto import Passphrase
from app.vault.service import VaultService

PLAINTEXT_WARNING = (
    "A PDF is not encrypted: anyone who gets the file — by email, on a shared drive, in a "
    "backup — can read the whole record. Write it only if the recipient cannot open an "
    "encrypted archive."
)
PROCESS_HINT = (
    "Psychotherapy notes are kept apart from the record and are not part of a records "
    "release unless you include them."
)


class ExportDialog(QDialog):
    exported = Signal(object)  # record_export.ExportReport

    def __init__(
        self, service: VaultService, client_id: str, parent: QWidget | None = None, *,
        runner: OpRunner | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._service = service
        self._client_id = client_id
        # The pane that opens it has no runner of its own; results are dropped at close.
        self._runner = runner if runner is not None else OpRunner(self, max_threads=1)
        self._closing = False
        self.confirm_box: QMessageBox | None = None
        self.file_dialog: QFileDialog | None = None
        self.last_report: record_export.ExportReport | None = None
        self.setWindowTitle("Tacit — Export record")
        self.setObjectName("exportDialog")
        intro = QLabel(
            "Export this client's record for a records request: the client's details and "
            "every note with its addenda and signature (no revision history, no audit "
            "trail).", self,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.archive = named(
            QRadioButton("Encrypted archive (recommended)", self), "Encrypted archive",
            "Opens with its own passphrase, which you give the recipient separately",
        )  # fmt: skip
        self.pdf = named(QRadioButton("PDF (not encrypted)", self), "PDF, not encrypted")
        self.formats = QButtonGroup(self)
        self.formats.addButton(self.archive)
        self.formats.addButton(self.pdf)
        self.archive.setChecked(True)
        self.include = named(QCheckBox("Include psychotherapy notes", self),
                             "Include psychotherapy notes", PROCESS_HINT)  # fmt: skip
        process_hint = QLabel(PROCESS_HINT, self)
        process_hint.setObjectName("hint")
        process_hint.setWordWrap(True)
        self.passphrase_box = QWidget(self)
        self.form = PassphraseForm(self.passphrase_box, label="Archive passphrase")
        pass_hint = QLabel("Give this passphrase to the recipient separately (not in the same "
                           "email as the file).", self.passphrase_box)  # fmt: skip
        pass_hint.setObjectName("hint")
        pass_hint.setWordWrap(True)
        box = QVBoxLayout(self.passphrase_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.form)
        box.addWidget(pass_hint)
        self.pdf_notice = QLabel(PLAINTEXT_WARNING, self)
        self.pdf_notice.setObjectName("processBanner")
        self.pdf_notice.setWordWrap(True)
        self.path = named(QLineEdit(self), "Export file", "Where the export is written")
        self.path.setPlaceholderText("Choose a new file…")
        self.choose_button = named(QPushButton("Choose…", self), "Choose export file")
        self.choose_button.clicked.connect(self.choose_file)
        self.error = MessageLabel(self)
        self.progress = ProgressPanel(self)
        self.export_button = named(QPushButton("Export", self), "Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.cancel_button = named(QPushButton("Close", self), "Close")
        self.cancel_button.clicked.connect(self.reject)

        file_row = QHBoxLayout()
        file_row.addWidget(QLabel("File:", self))
        file_row.addWidget(self.path, 1)
        file_row.addWidget(self.choose_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.archive)
        layout.addWidget(self.pdf)
        layout.addWidget(self.include)
        layout.addWidget(process_hint)
        layout.addWidget(self.passphrase_box)
        layout.addWidget(self.pdf_notice)
        layout.addLayout(file_row)
        layout.addWidget(self.error)
        layout.addWidget(self.progress)
        layout.addStretch(1)
        layout.addLayout(buttons)

        self.archive.toggled.connect(self._format_changed)
        self.form.validity_changed.connect(self._update)
        self.path.textChanged.connect(self._update)
        self.finished.connect(self._forget)
        self._format_changed()
        self.resize(520, 560)

    # -- state -------------------------------------------------------------------------
    @property
    def is_pdf(self) -> bool:
        return self.pdf.isChecked()

    def _format_changed(self, *_args: object) -> None:
        self.passphrase_box.setVisible(not self.is_pdf)
        self.pdf_notice.setVisible(self.is_pdf)
        if self.is_pdf:
            self.form.clear()
        current = self.path.text().strip()
        if current:  # keep the folder and name, switch the suffix
            self.path.setText(str(Path(current).with_suffix(self._suffix)))
        self._update()

    @property
    def _suffix(self) -> str:
        return ".pdf" if self.is_pdf else ".tacitexport"

    def _update(self, *_args: object) -> None:
        ready = bool(self.path.text().strip()) and (self.is_pdf or self.form.valid)
        self.export_button.setEnabled(ready and not self.progress.busy)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress.set_busy(busy, message)
        for widget in (self.archive, self.pdf, self.include, self.passphrase_box, self.path,
                       self.choose_button, self.cancel_button):  # fmt: skip
            widget.setEnabled(not busy)
        self._update()

    # -- the file ----------------------------------------------------------------------
    def default_name(self) -> str:
        today = self._service.clock.now().date().isoformat()
        return f"tacit-record-{today}{self._suffix}"

    def choose_file(self) -> QFileDialog:
        """Qt's save dialog (window-modal, no nested event loop)."""
        dialog = private_file_dialog(self, "Tacit — Export record to", str(Path.home()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        # An existing file is refused (file_chosen), so Qt's "replace it?" is never asked.
        dialog.setOption(QFileDialog.Option.DontConfirmOverwrite, True)
        dialog.setNameFilter("PDF files (*.pdf)" if self.is_pdf
                             else "Tacit export archives (*.tacitexport)")  # fmt: skip
        dialog.setDefaultSuffix(self._suffix.lstrip("."))
        dialog.selectFile(self.default_name())
        dialog.fileSelected.connect(self.file_chosen)
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def file_chosen(self, name: str) -> None:
        if not name:
            return
        path = Path(name)
        try:
            record_export.check_destination(path)
        except TacitError as exc:
            self.error.show_message(f"{exc.message} ({exc.code})")
            return
        self.error.clear_message()
        self.path.setText(str(path))

    # -- export ------------------------------------------------------------------------
    def export(self) -> None:
        if not self.export_button.isEnabled() or self.progress.busy:
            return
        out = Path(self.path.text().strip())
        try:
            record_export.check_destination(out)
        except TacitError as exc:
            self.error.show_message(f"{exc.message} ({exc.code})")
            return
        if self.is_pdf:
            self._confirm_plaintext(out)
        else:
            self._start(out, self.form.take())

    def _confirm_plaintext(self, out: Path) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.Warning, "Tacit — Write an unencrypted PDF?",
                          PLAINTEXT_WARNING, QMessageBox.StandardButton.Cancel, self)  # fmt: skip
        write = box.addButton("Write the PDF", QMessageBox.ButtonRole.AcceptRole)
        named(write, "Write the unencrypted PDF")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setInformativeText("I understand this file is not encrypted.")
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def answered(_result: int) -> None:
            self.confirm_box = None
            if box.clickedButton() is write:
                self._start(out, None)
            else:
                self.error.show_message("Nothing was written (the PDF was not confirmed).",
                                        "notice")  # fmt: skip
            box.deleteLater()

        box.finished.connect(answered)
        self.confirm_box = box
        box.open()
        return box

    def _start(self, out: Path, passphrase: Passphrase | None) -> None:
        service = self._service
        client_id = self._client_id
        include = self.include.isChecked()
        report = self.progress.report

        def work() -> record_export.ExportReport:
            try:
                return record_export.export_client(
                    service, client_id, out, passphrase=passphrase,
                    pdf_writer=None if passphrase is not None else render_pdf,
                    include_psychotherapy=include, progress=report,
                )  # fmt: skip
            finally:
                if passphrase is not None:
                    passphrase.wipe()

        self.error.clear_message()
        self._runner.run(work, self._done, self._failed, busy=self,
                         message="Exporting…")  # fmt: skip

    def _done(self, result: record_export.ExportReport) -> None:
        self.last_report = result
        what = "a PDF, not encrypted" if result.format == "pdf" else "an encrypted archive"
        self.error.show_message(
            f"Exported {result.notes} notes to {result.file.name} ({what}). The export is "
            "recorded in the audit trail.", "notice",
        )  # fmt: skip
        self.path.clear()
        self.exported.emit(result)

    def _failed(self, error: TacitError) -> None:
        self.error.show_message(f"Not exported: {error.message} ({error.code})")

    # -- closing -----------------------------------------------------------------------
    def reject(self) -> None:
        if self.progress.busy and not self._closing:
            return  # Escape while the export runs; closing the window (a lock) goes on
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        super().closeEvent(event)

    def _forget(self, _result: int = 0) -> None:
        """Drop a running export's result and every field (the passphrase above all)."""
        if self._runner.parent() is self:
            self._runner.cancel_all()
        for dialog in (self.confirm_box, self.file_dialog):
            if dialog is not None:
                dialog.close()
        self.confirm_box = self.file_dialog = None
        self.form.clear()
        wipe_widgets(self)
        self.deleteLater()
