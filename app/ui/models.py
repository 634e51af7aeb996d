"""Item models over the vault service: clients and a client's notes.

``NoteListModel`` pages through ``service.list_notes(limit, offset)`` with Qt's
``canFetchMore``/``fetchMore``: it holds only the summaries (no bodies) of the rows the
view has scrolled to, so a client with 100,000 notes opens as fast as one with ten.

A client's notes are shown in two sections (psychotherapy notes are kept apart from the
record): the record list is a ``NoteListModel`` with ``section=RECORD`` (every kind but
psychotherapy), the process list a ``ProcessNoteListModel``. The service lists all kinds
together, so each section reads the shared listing and keeps its own kind; the process
section, usually a few rows among many, scans in a worker (``OpRunner``) so that looking
for them never blocks the UI.

Invariants:
- models hold the only cached copies of records in the UI, and ``clear()`` drops them
  (called on lock before the views are destroyed);
- no business logic: filtering, ordering and paging are the service's; the models only
  tell it when a listing is a user's view, for the audit trail, and split its listing by
  kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from app.errors import TacitError
from app.ui.ops import OpRunner
from app.ui.qt import (
    QAbstractListModel,
    QAbstractTableModel,
    QColor,
    QIcon,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from app.vault.models import Client, Note, NoteSummary
from app.vault.service import VaultService
from app.vault.templates import resources_dir

ModelIndex = QModelIndex | QPersistentModelIndex

ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
CLIENT_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 2
IS_PROCESS_ROLE = int(Qt.ItemDataRole.UserRole) + 3
PAGE_SIZE = 200
SYNC_SCAN_ROWS = 5 * PAGE_SIZE  # most rows one fetch on the UI thread reads
SCAN_CHUNK = 2000  # rows per query when the process section scans in a worker
PROCESS_KIND = "psychotherapy"
RECORD, PROCESS = "record", "process"
PROCESS_TINT = QColor(124, 77, 255, 40)  # translucent violet: readable on light and dark

KIND_LABELS = {
    "intake": "Intake",
    "progress": "Progress",
    "mse": "Mental status exam",
    "treatment_plan": "Treatment plan",
    PROCESS_KIND: "Process note",
}
NOT_SIGNED = "—"
SIGNED = "Signed"


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def is_process(note: NoteSummary | Note) -> bool:
    return note.kind == PROCESS_KIND


def is_record(note: NoteSummary | Note) -> bool:
    return note.kind != PROCESS_KIND


def summary_of(note: Note) -> NoteSummary:
    return NoteSummary(
        id=note.id, client_id=note.client_id, kind=note.kind, template=note.template,
        title=note.title, session_date=note.session_date, author=note.author,
        revision=note.revision, created_at=note.created_at, updated_at=note.updated_at,
        signed_at=note.signed_at,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scan:
    rows: list[NoteSummary]  # the kept ones
    offset: int  # position in the client's full listing after this scan
    at_end: bool


def scan_notes(
    service: VaultService,
    client_id: str,
    offset: int,
    *,
    want: int,
    keep: Callable[[NoteSummary], bool],
    max_rows: int,
    chunk: int = PAGE_SIZE,
) -> Scan:
    """Read the client's listing from ``offset`` until ``want`` rows were kept, ``max_rows``
    were read, or it ends. Raises what ``list_notes`` raises (VaultLockedError…)."""
    kept: list[NoteSummary] = []
    read = 0
    while len(kept) < want and read < max_rows:
        limit = min(chunk, max_rows - read)
        page = service.list_notes(client_id, limit=limit, offset=offset + read)
        read += len(page)
        kept.extend(s for s in page if keep(s))
        if len(page) < limit:
            return Scan(kept, offset + read, True)
    return Scan(kept, offset + read, False)


@cache
def icon(name: str) -> QIcon:
    """An icon from resources/icons (SVG); an empty icon if it is missing."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


class ClientListModel(QAbstractListModel):
    def __init__(self, service: VaultService, parent: Any = None) -> None:
        super().__init__(parent)
        self._service = service
        self._clients: list[Client] = []
        self.query = ""
        self.include_discharged = False

    def load(
        self,
        query: str | None = None,
        include_discharged: bool | None = None,
        *,
        audit: bool = False,
    ) -> None:
        if query is not None:
            self.query = query
        if include_discharged is not None:
            self.include_discharged = include_discharged
        clients = self._service.list_clients(
            status=None if self.include_discharged else "active",
            query=self.query.strip() or None,
            audit=audit,
        )
        self.beginResetModel()
        self._clients = clients
        self.endResetModel()

    def clear(self) -> None:
        self.beginResetModel()
        self._clients = []
        self.query = ""
        self.endResetModel()

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._clients)

    def client(self, row: int) -> Client | None:
        return self._clients[row] if 0 <= row < len(self._clients) else None

    def row_of(self, client_id: str) -> int:
        for row, client in enumerate(self._clients):
            if client.id == client_id:
                return row
        return -1

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        client = self.client(index.row()) if index.isValid() else None
        if client is None:
            return None
        discharged = client.status == "discharged"
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return f"{client.name} (discharged)" if discharged else client.name
        if role == Qt.ItemDataRole.ForegroundRole and discharged:
            return QColor(128, 128, 128)
        if role == ID_ROLE:
            return client.id
        return None


class RowTableModel(QAbstractTableModel):
    """A table over ``self._rows`` with fixed ``COLUMNS`` headers (the shared shape of the
    note and audit tables)."""

    COLUMNS: tuple[str, ...] = ()
    _rows: list[Any]

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.COLUMNS)
        ):
            return self.COLUMNS[section]
        return None


class NoteListModel(RowTableModel):
    """One client's notes, newest session first, fetched a page at a time. ``section``:
    ``None`` lists every kind, ``RECORD`` every kind but psychotherapy notes."""

    COLUMNS = ("Date", "Title", "Kind", "Template", "Signed")

    def __init__(self, service: VaultService, parent: Any = None, *, section: str | None = None):
        super().__init__(parent)
        self._service = service
        self._keep: Callable[[NoteSummary], bool] = (
            is_record if section == RECORD else is_process if section == PROCESS
            else (lambda _s: True)
        )  # fmt: skip
        self._client_id: str | None = None
        self._rows: list[NoteSummary] = []
        self._row_of: dict[str, int] = {}
        self._total = 0  # notes of every kind the client has
        self._offset = 0  # how far into the client's full listing we have read
        self._at_end = True
        self._templates = {t.id: t.name for t in service.templates(include_archived=True)}
        self._continue = QTimer(self)  # keeps fetching when a fetch kept no row
        self._continue.setSingleShot(True)
        self._continue.setInterval(0)
        self._continue.timeout.connect(self.fetchMore)

    def _template_name(self, template_id: str) -> str:
        """A template's name; one added since the list was built is looked up once."""
        name = self._templates.get(template_id)
        if name is None:
            try:
                name = self._service.template(template_id).name
            except TacitError:
                name = template_id
            self._templates[template_id] = name
        return name

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def total(self) -> int:
        """How many notes (of every kind) the client has."""
        return self._total

    def set_client(
        self, client_id: str | None, *, keep_loaded: bool = False, audit: bool = False
    ) -> None:
        """Show ``client_id``'s notes. ``audit``: the user asked to see them (the service
        records a "list" entry); refreshes and further pages are not new views."""
        read = self._offset if keep_loaded else 0
        self._continue.stop()
        self.beginResetModel()
        self._client_id = client_id
        self._rows, self._row_of, self._offset, self._at_end = [], {}, 0, True
        self._total = self._service.count_notes(client_id) if client_id else 0
        if client_id:
            limit = max(PAGE_SIZE, read)
            first = self._service.list_notes(client_id, limit=limit, audit=audit)
            self._offset, self._at_end = len(first), len(first) < limit
            self._append([s for s in first if self._keep(s)])
        self.endResetModel()

    def reload(self) -> None:
        """Re-read what is loaded (a note was added or re-dated)."""
        self.set_client(self._client_id, keep_loaded=True)

    def clear(self) -> None:
        self._continue.stop()
        self.beginResetModel()
        self._client_id = None
        self._rows, self._row_of, self._total, self._offset, self._at_end = [], {}, 0, 0, True
        self.endResetModel()

    def _append(self, page: list[NoteSummary]) -> None:
        for summary in page:
            if summary.id not in self._row_of:  # a row inserted locally may come again
                self._row_of[summary.id] = len(self._rows)
                self._rows.append(summary)

    def _insert_rows(self, page: list[NoteSummary]) -> None:
        page = [s for s in page if s.id not in self._row_of]
        if not page:
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        self._append(page)
        self.endInsertRows()

    # -- paging ------------------------------------------------------------------------
    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return (
            not parent.isValid()
            and self._client_id is not None
            and not self._at_end
            and self._offset < self._total
        )

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent) or self._client_id is None:
            return
        scan = scan_notes(self._service, self._client_id, self._offset, want=PAGE_SIZE,
                          keep=self._keep, max_rows=SYNC_SCAN_ROWS)  # fmt: skip
        self._offset, self._at_end = scan.offset, scan.at_end
        self._insert_rows(scan.rows)
        if not scan.rows and self.canFetchMore():
            # Nothing of this section in that stretch: read on after the UI has breathed
            # (the view only asks again when rows arrive).
            self._continue.start()

    # -- lookup ------------------------------------------------------------------------
    def summary(self, row: int) -> NoteSummary | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, note_id: str) -> int:
        return self._row_of.get(note_id, -1)

    def update_note(self, note: Note) -> bool:
        """Refresh one loaded row from a saved note. False if it is not loaded."""
        row = self.row_of(note.id)
        if row < 0:
            return False
        old = self._rows[row]
        self._rows[row] = summary_of(note)
        if old.session_date != note.session_date:
            self.reload()  # ordering may change
        else:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
        return True

    # -- Qt model ----------------------------------------------------------------------
    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        note = self.summary(index.row()) if index.isValid() else None
        if note is None:
            return None
        column = index.column()
        process = note.kind == PROCESS_KIND
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            text = (
                note.session_date or "—",
                note.title,
                kind_label(note.kind),
                self._template_name(note.template),
                SIGNED if note.signed_at else NOT_SIGNED,
            )[column]
            if role == Qt.ItemDataRole.AccessibleTextRole and column == 4:
                return "signed" if note.signed_at else "not signed"
            return text
        if role == Qt.ItemDataRole.BackgroundRole and process:
            return PROCESS_TINT
        if role == Qt.ItemDataRole.DecorationRole and process and column == 2:
            return icon("process")
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == 3:
                return self._template_name(note.template)
            if process:
                return "Psychotherapy (process) note — kept apart from the clinical record"
            if column == 4:
                return f"Signed {note.signed_at} UTC" if note.signed_at else "Not signed"
        if role == ID_ROLE:
            return note.id
        if role == IS_PROCESS_ROLE:
            return process
        return None


class ProcessNoteListModel(NoteListModel):
    """A client's psychotherapy (process) notes, found by a scan in a worker.

    They are usually a few among many record notes, so finding a page of them may read
    far into the listing: that runs in the ``OpRunner``, never on the UI thread. A scan's
    result for a client no longer shown is dropped (generation number).
    """

    loaded = Signal()  # a scan finished (rows may or may not have been added)
    failed = Signal(str)

    def __init__(self, service: VaultService, runner: OpRunner, parent: Any = None) -> None:
        super().__init__(service, parent, section=PROCESS)
        self._runner = runner
        self._generation = 0
        self._loading = False

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def complete(self) -> bool:
        """Every process note of the client is loaded."""
        return not self._loading and (self._at_end or self._offset >= self._total)

    def set_client(
        self, client_id: str | None, *, keep_loaded: bool = False, audit: bool = False
    ) -> None:
        """Start finding ``client_id``'s process notes (the record section audits the
        listing; this is the same listing)."""
        self._generation += 1
        self.beginResetModel()
        self._client_id = client_id
        self._rows, self._row_of, self._total, self._offset = [], {}, 0, 0
        self._at_end, self._loading = client_id is None, False
        self.endResetModel()
        if client_id is not None:
            self._scan()

    def clear(self) -> None:
        self._generation += 1
        self._loading = False
        super().clear()

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not self._loading and super().canFetchMore(parent)

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._scan()

    def _scan(self) -> None:
        client_id, offset, generation = self._client_id, self._offset, self._generation
        if client_id is None:
            return
        service = self._service

        def work() -> tuple[int, Scan]:
            total = service.count_notes(client_id)
            scan = scan_notes(service, client_id, offset, want=PAGE_SIZE, keep=is_process,
                              max_rows=total + 1, chunk=SCAN_CHUNK)  # fmt: skip
            return total, scan

        self._loading = True
        self._runner.run(
            work,
            lambda result: self._scanned(generation, result),
            lambda error: self._scan_failed(generation, error),
        )

    def _scanned(self, generation: int, result: tuple[int, Scan]) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._total, scan = result
        self._offset, self._at_end = scan.offset, scan.at_end
        self._insert_rows(scan.rows)
        self.loaded.emit()

    def _scan_failed(self, generation: int, error: TacitError) -> None:
        if generation == self._generation:
            self._loading = False
            self._at_end = True
            self.failed.emit(error.message)

    def reload(self) -> None:
        self.set_client(self._client_id)

    def upsert(self, note: Note) -> None:
        """Show a created or changed process note in its place (newest session first)."""
        if note.kind != PROCESS_KIND or note.client_id != self._client_id:
            return
        row = self.row_of(note.id)
        if row >= 0 and self._rows[row].session_date == note.session_date:
            self._rows[row] = summary_of(note)
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
            return
        if row >= 0:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self._reindex()
            self.endRemoveRows()

        def key(s: NoteSummary) -> tuple[str, str]:
            return (s.session_date or "", s.created_at)

        summary = summary_of(note)
        at = next((i for i, s in enumerate(self._rows) if key(s) < key(summary)), len(self._rows))
        self.beginInsertRows(QModelIndex(), at, at)
        self._rows.insert(at, summary)
        self._reindex()
        self.endInsertRows()

    def _reindex(self) -> None:
        self._row_of = {s.id: i for i, s in enumerate(self._rows)}
