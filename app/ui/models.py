"""Item models over the vault service: clients and a client's notes.

``NoteListModel`` pages through ``service.list_notes(limit, offset)`` with Qt's
``canFetchMore``/``fetchMore``: it holds only the summaries (no bodies) of the rows the
view has scrolled to, so a client with 100,000 notes opens as fast as one with ten.

Invariants:
- models hold the only cached copies of records in the UI, and ``clear()`` drops them
  (called on lock before the views are destroyed);
- no business logic: filtering, ordering and paging are the service's; the models only
  tell it when a listing is a user's view, for the audit trail.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from app.ui.qt import (
    QAbstractListModel,
    QAbstractTableModel,
    QColor,
    QIcon,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from app.vault.models import Client, Note, NoteSummary
from app.vault.service import VaultService
from app.vault.templates import resources_dir

ModelIndex = QModelIndex | QPersistentModelIndex

ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
CLIENT_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 2
IS_PROCESS_ROLE = int(Qt.ItemDataRole.UserRole) + 3
PAGE_SIZE = 200
PROCESS_KIND = "psychotherapy"
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


class NoteListModel(QAbstractTableModel):
    """One client's notes, newest session first, fetched a page at a time."""

    COLUMNS = ("Date", "Title", "Kind", "Template", "Signed")

    def __init__(self, service: VaultService, parent: Any = None) -> None:
        super().__init__(parent)
        self._service = service
        self._client_id: str | None = None
        self._rows: list[NoteSummary] = []
        self._row_of: dict[str, int] = {}
        self._total = 0
        self._templates = {t.id: t.name for t in service.templates()}

    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def total(self) -> int:
        return self._total

    def set_client(
        self, client_id: str | None, *, keep_loaded: bool = False, audit: bool = False
    ) -> None:
        """Show ``client_id``'s notes. ``audit``: the user asked to see them (the service
        records a "list" entry); refreshes and further pages are not new views."""
        loaded = len(self._rows) if keep_loaded else 0
        self.beginResetModel()
        self._client_id = client_id
        self._rows, self._row_of = [], {}
        self._total = self._service.count_notes(client_id) if client_id else 0
        if client_id:
            first = self._service.list_notes(client_id, limit=max(PAGE_SIZE, loaded), audit=audit)
            self._append(first)
        self.endResetModel()

    def reload(self) -> None:
        """Re-read what is loaded (a note was added or re-dated)."""
        self.set_client(self._client_id, keep_loaded=True)

    def clear(self) -> None:
        self.beginResetModel()
        self._client_id = None
        self._rows, self._row_of, self._total = [], {}, 0
        self.endResetModel()

    def _append(self, page: list[NoteSummary]) -> None:
        for summary in page:
            self._row_of[summary.id] = len(self._rows)
            self._rows.append(summary)

    # -- paging ------------------------------------------------------------------------
    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return (
            not parent.isValid() and self._client_id is not None and len(self._rows) < self._total
        )

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent) or self._client_id is None:
            return
        page = self._service.list_notes(self._client_id, limit=PAGE_SIZE, offset=len(self._rows))
        if not page:
            self._total = len(self._rows)
            return
        first = len(self._rows)
        self.beginInsertRows(QModelIndex(), first, first + len(page) - 1)
        self._append(page)
        self.endInsertRows()

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
        self._rows[row] = NoteSummary(
            id=note.id, client_id=note.client_id, kind=note.kind, template=note.template,
            title=note.title, session_date=note.session_date, author=note.author,
            revision=note.revision, created_at=note.created_at, updated_at=note.updated_at,
            signed_at=note.signed_at,
        )  # fmt: skip
        if old.session_date != note.session_date:
            self.reload()  # ordering may change
        else:
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))
        return True

    # -- Qt model ----------------------------------------------------------------------
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
                self._templates.get(note.template, note.template),
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
                return self._templates.get(note.template, note.template)
            if process:
                return "Psychotherapy (process) note — kept apart from the clinical record"
            if column == 4:
                return f"Signed {note.signed_at} UTC" if note.signed_at else "Not signed"
        if role == ID_ROLE:
            return note.id
        if role == IS_PROCESS_ROLE:
            return process
        return None
