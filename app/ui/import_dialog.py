"""``ImportDialog``: bring notes in from other tools (File ▸ Import notes…), the app's face
of ``tacit import markdown | standardnotes``.

The source is a folder of Markdown or text files (a sub-folder per client) or a Standard
Notes decrypted backup file, with the CLI's options: the client of files at the top of
the folder (of untagged notes, for Standard Notes), the notes' kind and template unless a
file says. *Preview* plans the input and runs ``apply_plan(dry_run=True)`` in a worker —
per client how many notes would be created or skipped, the notes' dates and titles, and
what cannot be imported, by reason. *Import* then plans the input again and runs the real
``apply_plan`` (one audit entry with counts, like the CLI) with the progress bar and the
time left, and says what it created. Both call ``app.vault.importformats`` and
``app.vault.importer`` exactly as ``app/cliimport.py`` does, so the two behave the same.

Invariants:
- a preview writes nothing (a dry run only reads the vault; no audit entry);
- *Import* is offered only after a preview of the current choices; changing any choice
  takes the preview away;
- client names, titles and file names are shown in this dialog only: never logged, never
  in the title ("Tacit — Import notes"); the preview's text and the last report are
  dropped when the dialog closes, and a lock closes it with the main window (a result
  still in flight is then dropped unseen; an import cut off by the lock keeps what it
  created and says so in the audit trail, as the importer does).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from app.errors import TacitError
from app.ui.ops import OpRunner
from app.ui.qt import (
    QButtonGroup,
    QCloseEvent,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import MessageLabel, ProgressPanel, named, private_file_dialog, wipe_widgets
from app.vault.importer import (
    DEFAULT_TEMPLATE,
    PROBLEMS,
    SKIPS,
    ImportPlan,
    ImportReport,
    apply_plan,
)
from app.vault.importformats import DEFAULT_SN_CLIENT, plan_markdown, plan_standardnotes
from app.vault.models import NOTE_KINDS
from app.vault.service import VaultService

MARKDOWN, STANDARD_NOTES = "markdown", "standardnotes"


def plan_input(source: str, path: Path, client: str | None) -> ImportPlan:
    """The CLI's planning step. Raises UsageError, InvalidInputError."""
    if source == MARKDOWN:
        return plan_markdown(path, client=client)
    return plan_standardnotes(path, client=client)


def summary(report: ImportReport) -> str:
    """The counts: what was (or would be) created, skipped, and not imported."""
    verb = "Would create" if report.dry_run else "Created"
    lines = [f"{verb} {report.clients} new clients and {report.notes} notes"
             + (f" (and add to {report.clients_reused} existing clients)"
                if report.clients_reused else "") + "."]  # fmt: skip
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"Skipped {count}: {SKIPS.get(reason, reason)}.")
    problems = Counter(p.reason for p in report.problems)
    if problems:
        lines.append(f"Not imported ({len(report.problems)}):")
        lines += [f"  {count}: {PROBLEMS.get(r, r)}" for r, count in sorted(problems.items())]
    return "\n".join(lines)


def preview_text(report: ImportReport) -> str:
    """The dry run in full: the counts, then per client its notes (date, title) and the
    files not imported. Client data: shown in the dialog only."""
    lines = [summary(report), ""]
    for client in report.outcomes:
        new = sum(o.status == "created" for o in client.notes)
        state = "new client" if client.new else "existing client"
        lines.append(f"{client.name} ({state}): {new} to create, "
                     f"{len(client.notes) - new} to skip")  # fmt: skip
        for o in client.notes:
            skip = "" if o.status == "created" else "   (skip: already there)"
            lines.append(f"    {o.note.session_date}  {o.note.title}{skip}")
    if report.problems:
        lines += ["", "Files or items not imported:"]
        lines += [f"    {p.where}: {p.text}" for p in report.problems]
    return "\n".join(lines)


class ImportDialog(QDialog):
    imported = Signal(object)  # ImportReport (counts; the main window reloads its lists)

    def __init__(self, service: VaultService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = service
        # Its own runner: results are dropped when the dialog closes (a lock closes it).
        self._runner = OpRunner(self, max_threads=1)
        self._closing = False
        self.file_dialog: QFileDialog | None = None
        self.last_report: ImportReport | None = None
        self.previewed = False
        self.setWindowTitle("Tacit — Import notes")
        self.setObjectName("importDialog")
        intro = QLabel(
            "Bring notes in from other tools. Preview first: nothing is written until you "
            "click Import. Notes already in Tacit are skipped, so importing twice is safe.",
            self,
        )
        intro.setWordWrap(True)
        self.markdown = named(
            QRadioButton("A folder of Markdown or text files (a folder per client)", self),
            "Markdown or text folder",
        )
        self.standardnotes = named(
            QRadioButton("A Standard Notes backup (decrypted, .txt or .json)", self),
            "Standard Notes backup file",
        )
        self.sources = QButtonGroup(self)
        self.sources.addButton(self.markdown)
        self.sources.addButton(self.standardnotes)
        self.markdown.setChecked(True)
        self.path = named(QLineEdit(self), "Import from", "The folder or file to import")
        self.choose_button = named(QPushButton("Choose…", self), "Choose what to import")
        self.choose_button.clicked.connect(self.choose)
        self.client = named(QLineEdit(self), "Client name")
        self.client_label = QLabel(self)
        self.kind = named(QComboBox(self), "Note kind")
        self.kind.addItem("As the template says", None)
        for kind in NOTE_KINDS:
            self.kind.addItem(kind.replace("_", " ").capitalize(), kind)
        self.template = named(QComboBox(self), "Note template")
        for template in service.templates():
            if not template.archived:
                self.template.addItem(template.name, template.id)
        self.template.setCurrentIndex(max(0, self.template.findData(DEFAULT_TEMPLATE)))
        hint = QLabel("A file's front matter may name its own kind and template.", self)
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        self.preview = named(QPlainTextEdit(self), "Preview")
        self.preview.setReadOnly(True)
        self.preview.setUndoRedoEnabled(False)
        self.preview.setTabChangesFocus(True)
        self.preview.setPlaceholderText("Preview shows what would be imported.")
        self.error = MessageLabel(self)
        self.progress = ProgressPanel(self)
        self.preview_button = named(QPushButton("Preview", self), "Preview the import")
        self.preview_button.setDefault(True)
        self.preview_button.clicked.connect(self.run_preview)
        self.import_button = named(QPushButton("Import", self), "Import")
        self.import_button.clicked.connect(self.run_import)
        self.close_button = named(QPushButton("Close", self), "Close")
        self.close_button.clicked.connect(self.reject)

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.choose_button)
        form = QFormLayout()
        form.addRow("From:", row)
        form.addRow(self.client_label, self.client)
        form.addRow("Kind:", self.kind)
        form.addRow("Template:", self.template)
        buttons = QHBoxLayout()
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.import_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.markdown)
        layout.addWidget(self.standardnotes)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.progress)
        layout.addLayout(buttons)

        self.markdown.toggled.connect(self._source_changed)
        for signal in (self.path.textChanged, self.client.textChanged):
            signal.connect(self._invalidate)
        for combo in (self.kind, self.template):
            combo.currentIndexChanged.connect(self._invalidate)
        self.finished.connect(self._forget)
        self._source_changed()
        self.resize(620, 620)

    # -- state -------------------------------------------------------------------------
    @property
    def source(self) -> str:
        return MARKDOWN if self.markdown.isChecked() else STANDARD_NOTES

    def _source_changed(self, *_args: object) -> None:
        if self.source == MARKDOWN:
            self.path.setPlaceholderText("Choose a folder…")
            self.client_label.setText("Client of files at the top:")
            self.client.setPlaceholderText("Only if files sit at the top of the folder")
        else:
            self.path.setPlaceholderText("Choose a backup file…")
            self.client_label.setText("Client of untagged notes:")
            self.client.setPlaceholderText(DEFAULT_SN_CLIENT)
        self._invalidate()

    def _invalidate(self, *_args: object) -> None:
        """A choice changed: the preview no longer says what Import would do."""
        self.previewed = False
        self.preview.clear()
        self._update()

    def _update(self) -> None:
        idle = not self.progress.busy
        self.preview_button.setEnabled(idle and bool(self.path.text().strip()))
        self.import_button.setEnabled(idle and self.previewed)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.progress.set_busy(busy, message)
        for widget in (self.markdown, self.standardnotes, self.path, self.choose_button,
                       self.client, self.kind, self.template, self.close_button):  # fmt: skip
            widget.setEnabled(not busy)
        self._update()

    # -- the input ---------------------------------------------------------------------
    def choose(self) -> QFileDialog:
        """Qt's open dialog for a folder or a file (window-modal, no nested loop)."""
        dialog = private_file_dialog(self, "Tacit — Import from", str(Path.home()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        if self.source == MARKDOWN:
            dialog.setFileMode(QFileDialog.FileMode.Directory)
            dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
        else:
            dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
            dialog.setNameFilters(["Standard Notes backups (*.txt *.json)", "All files (*)"])
        dialog.fileSelected.connect(lambda name: self.path.setText(name) if name else None)
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def _options(self) -> tuple[str, Path, str | None, str | None, str]:
        client = self.client.text().strip() or None
        kind = self.kind.currentData()
        template = self.template.currentData() or DEFAULT_TEMPLATE
        return (self.source, Path(self.path.text().strip()).expanduser(), client,
                kind if isinstance(kind, str) else None, str(template))  # fmt: skip

    # -- preview and import ------------------------------------------------------------
    def run_preview(self) -> None:
        self._run(dry_run=True)

    def run_import(self) -> None:
        if self.previewed:
            self._run(dry_run=False)

    def _run(self, *, dry_run: bool) -> None:
        if self.progress.busy or not self.path.text().strip():
            return
        service = self._service
        source, path, client, kind, template = self._options()
        report_fraction = self.progress.report

        def progress(done: int, total: int) -> None:
            report_fraction(done / total if total else 1.0)

        def work() -> ImportReport:
            plan = plan_input(source, path, client)
            return apply_plan(service, plan, kind=kind, template=template, dry_run=dry_run,
                              progress=progress)  # fmt: skip

        self.error.clear_message()
        if not dry_run:
            self.import_button.setEnabled(False)
        self._runner.run(work, self._done, self._failed, busy=self,
                         message="Checking…" if dry_run else "Importing…")  # fmt: skip

    def _done(self, report: ImportReport) -> None:
        self.last_report = report
        if report.dry_run:
            self.preview.setPlainText(preview_text(report))
            self.previewed = True
            self.error.show_message(
                "Nothing was written (preview). Click Import to create these notes.", "notice"
            )
        else:
            self.previewed = False  # a new preview before another import
            self.preview.setPlainText(summary(report))
            self.error.show_message(
                f"Imported in {report.seconds:.1f} s. The import is recorded in the audit "
                "trail.", "notice",
            )  # fmt: skip
            self.imported.emit(report)
        self._update()

    def _failed(self, error: TacitError) -> None:
        self.previewed = False
        self.preview.clear()
        self.error.show_message(f"Not imported: {error.message} ({error.code})")
        self._update()

    # -- closing -----------------------------------------------------------------------
    def reject(self) -> None:
        if self.progress.busy and not self._closing:
            return  # Escape while it runs; closing the window (a lock) goes on
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        super().closeEvent(event)

    def _forget(self, _result: int = 0) -> None:
        """Drop a running import's result, the report and every text shown."""
        self._runner.cancel_all()
        if self.file_dialog is not None:
            self.file_dialog.close()
            self.file_dialog = None
        self.last_report = None
        self.previewed = False
        wipe_widgets(self)
        self.deleteLater()
