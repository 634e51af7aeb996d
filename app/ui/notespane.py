"""``NotesPane``: a client's notes in two sections — the record, and psychotherapy notes.

Psychotherapy (process) notes are kept apart from the clinical record (HIPAA treats them
separately), so they are listed in their own section, under its own heading, in their
own list and model — not mixed into the record list with a colour. The record list pages
on the UI thread; the process section is filled by a scan in a worker (see
``app.ui.models``).

Invariants: the pane's only copies of records are its two models, dropped by
``clear()``; a note is selected in at most one of the two lists.
"""

from __future__ import annotations

from app.ui.models import (
    ID_ROLE,
    RECORD,
    NoteListModel,
    ProcessNoteListModel,
    icon,
    is_process,
)
from app.ui.ops import OpRunner
from app.ui.qt import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QModelIndex,
    QSplitter,
    Qt,
    QTableView,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import named
from app.vault.models import Note
from app.vault.service import VaultService

PROCESS_HEADING = "Psychotherapy notes — kept apart from the record"
KIND_COLUMN = 2


def setup_notes_view(view: QTableView, model: NoteListModel) -> None:
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.setTabKeyNavigation(False)
    view.verticalHeader().hide()
    # Fixed row heights: the view never measures rows, so 100,000 stay fast.
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
    header.setHighlightSections(False)
    metrics = view.fontMetrics()
    for column, sample in ((0, "2026-12-31"), (2, "Treatment plan"), (3, "Treatment plan"),
                           (4, "Signed")):  # fmt: skip
        view.setColumnWidth(column, metrics.horizontalAdvance(sample) + 28)


class NotesPane(QWidget):
    note_chosen = Signal(str)  # the user moved to a note in either list
    note_activated = Signal()  # Enter / double click: go to the editor

    def __init__(
        self, service: VaultService, runner: OpRunner, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._service = service
        self.record_model = NoteListModel(service, self, section=RECORD)
        self.record_view = named(QTableView(self), "Notes", "The selected client's record notes")
        setup_notes_view(self.record_view, self.record_model)
        self.count = QLabel(self)
        self.count.setObjectName("hint")

        self.process_model = ProcessNoteListModel(service, runner, self)
        self.process_view = named(
            QTableView(self), "Psychotherapy notes", "Process notes, kept apart from the record"
        )
        setup_notes_view(self.process_view, self.process_model)
        self.process_view.hideColumn(KIND_COLUMN)  # always "Process note"
        self.process_view.setObjectName("processNotes")
        self.process_status = QLabel(self)
        self.process_status.setObjectName("hint")

        record_page = QWidget(self)
        title = QLabel("Notes", record_page)
        title.setObjectName("paneTitle")
        title.setBuddy(self.record_view)
        row = QHBoxLayout()
        row.addWidget(title)
        row.addStretch(1)
        row.addWidget(self.count)
        layout = QVBoxLayout(record_page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.record_view, 1)

        self.process_section = QFrame(self)
        self.process_section.setObjectName("processSection")
        glyph = QLabel(self.process_section)
        glyph.setPixmap(icon("process").pixmap(16, 16))
        glyph.setAccessibleName("Psychotherapy notes")
        heading = QLabel(PROCESS_HEADING, self.process_section)
        heading.setObjectName("paneTitle")
        heading.setWordWrap(True)
        heading.setBuddy(self.process_view)
        row = QHBoxLayout()
        row.addWidget(glyph)
        row.addWidget(heading, 1)
        row.addWidget(self.process_status)
        layout = QVBoxLayout(self.process_section)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(row)
        layout.addWidget(self.process_view, 1)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(record_page)
        split.addWidget(self.process_section)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([480, 180])
        split.setChildrenCollapsible(False)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(split)

        for view in (self.record_view, self.process_view):
            view.selectionModel().currentRowChanged.connect(self._row_changed)
            view.activated.connect(lambda _index: self.note_activated.emit())
        self.process_model.loaded.connect(self._update_counts)
        self.process_model.failed.connect(self.process_status.setText)

    # -- state -------------------------------------------------------------------------
    @property
    def client_id(self) -> str | None:
        return self.record_model.client_id

    def set_client(self, client_id: str | None, *, audit: bool = False) -> None:
        self.record_model.set_client(client_id, audit=audit)
        self.process_model.set_client(client_id)
        self._update_counts()

    def refresh(self) -> None:
        """Re-read both sections (records changed in bulk); not a new view."""
        self.record_model.reload()
        self.process_model.reload()
        self._update_counts()

    def clear(self) -> None:
        self.record_model.clear()
        self.process_model.clear()
        self.count.clear()
        self.process_status.clear()

    def _update_counts(self) -> None:
        if self.client_id is None:
            self.count.clear()
            self.process_status.clear()
            return
        total = self.record_model.total
        self.count.setText(f"{total} note{'s' * (total != 1)}")
        process = self.process_model
        shown = process.rowCount()
        if process.loading and not shown:
            self.process_status.setText("Looking…")
        elif not shown:
            self.process_status.setText("None")
        else:
            self.process_status.setText(f"{shown}{'' if process.complete else '+'}")

    def on_note_changed(self, note: Note) -> None:
        """A note of the shown client was created or saved."""
        if note.client_id != self.client_id:
            return
        if is_process(note):
            self.process_model.upsert(note)
        elif not self.record_model.update_note(note):
            self.record_model.reload()
        self._update_counts()

    # -- selection ---------------------------------------------------------------------
    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.note_chosen.emit(str(current.data(ID_ROLE)))

    def select_note(self, note_id: str | None) -> None:
        """Show ``note_id`` as the current row of its list (and none in the other),
        without emitting ``note_chosen``."""
        for view, model in (
            (self.record_view, self.record_model),
            (self.process_view, self.process_model),
        ):
            row = model.row_of(note_id) if note_id else -1
            selection = view.selectionModel()
            selection.blockSignals(True)
            if row >= 0:
                index = model.index(row, 0)
                selection.setCurrentIndex(
                    index, selection.SelectionFlag.ClearAndSelect | selection.SelectionFlag.Rows
                )
                view.scrollTo(index)
            else:
                selection.clearSelection()
                selection.clearCurrentIndex()  # so choosing the row again opens it
            selection.blockSignals(False)
            view.viewport().update()
