"""``AuditWindow``: the audit trail in the app — list and filter it, verify its chain,
export it as CSV with explicit consent.

The window lists entries (seq, time, action, record, device, detail, and the client's
name resolved through the service) filtered by client, action and date. The service
returns entries oldest first with a ``limit``; the trail is append-only, so a longer
listing extends a shorter one: ``AuditModel`` reads 200 entries, then twice as many as
it holds each time the view scrolls to the end (every read in the ``OpRunner``'s worker),
so a trail of 100,000 entries opens as fast as one of ten. "Verify chain" walks the
whole chain in the worker (about a second per 100,000 entries).

Invariants:
- a child window of the main window: a lock destroys it with the main window, after
  ``wipe()`` empties its model, its client names and every label;
- the CSV leaves the vault only after the consent box is ticked ("I understand this file
  is not encrypted"), to a path the user picks; it is written atomically and the export
  is audited afterwards; if that audit entry cannot be written the file is removed
  (as ``tacit audit export`` does);
- the window title never names a client; the CSV holds ids, actions and times only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.errors import TacitError
from app.ui.models import RowTableModel
from app.ui.ops import OpRunner
from app.ui.qt import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDate,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QModelIndex,
    QPersistentModelIndex,
    QPushButton,
    Qt,
    QTableView,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import BusyBar, MessageLabel, named, private_file_dialog, wipe_widgets
from app.vault.audit import ACTIONS, AuditEntry, AuditVerdict, to_csv
from app.vault.fsutil import atomic_write
from app.vault.service import VaultService

ModelIndex = QModelIndex | QPersistentModelIndex
PAGE = 200
ANY_DATE = QDate(2000, 1, 1)  # the "since" box at its minimum means any date
DEFAULT_SINCE_DAYS = 30


@dataclass(frozen=True, slots=True)
class AuditFilter:
    client_id: str | None = None
    action: str | None = None
    since: str | None = None  # YYYY-MM-DD, compared with the entries' UTC times

    def query(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "action": self.action, "since": self.since}

    @property
    def narrowed(self) -> bool:
        return any(self.query().values())


def export_audit_csv(service: VaultService, path: Path, filters: AuditFilter) -> int:
    """Write the entries matching ``filters`` to ``path`` as CSV (atomically), then
    audit the export. A file whose export cannot be audited does not stay: it is removed
    and the error raised. Returns the number of rows. Raises StorageError,
    VaultLockedError, InvalidInputError."""
    entries = service.audit_entries(**filters.query())
    atomic_write(path, to_csv(entries).encode("utf-8"))
    try:
        service.record_event("export", record_type="audit", detail=f"csv, {len(entries)} rows")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return len(entries)


class AuditModel(RowTableModel):
    """Audit entries matching a filter, oldest first, read a growing prefix at a time."""

    COLUMNS = ("#", "Time (UTC)", "Action", "Record", "Record id", "Client", "Device", "Detail")
    loaded = Signal()
    failed = Signal(str)

    def __init__(self, service: VaultService, runner: OpRunner, parent: Any = None) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._rows: list[AuditEntry] = []
        self._names: dict[str, str] = {}
        self._filters = AuditFilter()
        self._generation = 0
        self._loading = False
        self._complete = True

    @property
    def filters(self) -> AuditFilter:
        return self._filters

    @property
    def loading(self) -> bool:
        return self._loading

    @property
    def complete(self) -> bool:
        return self._complete

    def entry(self, row: int) -> AuditEntry | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def set_client_names(self, names: dict[str, str]) -> None:
        self._names = dict(names)

    def set_filters(self, filters: AuditFilter) -> None:
        """Show the entries matching ``filters`` (read again from the start)."""
        self._generation += 1
        self.beginResetModel()
        self._filters = filters
        self._rows = []
        self._loading, self._complete = False, False
        self.endResetModel()
        self._load(PAGE)

    def load_all(self) -> None:
        """Read every matching entry, including any written since (to show the newest).
        The rows held are a prefix of the result, so only the rest is added."""
        self._generation += 1  # a smaller read in flight is superseded
        self._load(None)

    def read_new(self) -> None:
        """Pick up entries written since (an export, a verify)."""
        if self._complete and not self._loading:
            self._complete = False
            self._load(len(self._rows) + PAGE)

    def clear(self) -> None:
        self._generation += 1
        self.beginResetModel()
        self._rows, self._names = [], {}
        self._loading, self._complete = False, True
        self.endResetModel()

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._loading and not self._complete

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._load(max(PAGE, 2 * len(self._rows)))

    def _load(self, limit: int | None) -> None:
        generation, query, service = self._generation, self._filters.query(), self._service
        self._loading = True
        self._runner.run(
            lambda: service.audit_entries(limit=limit, **query),
            lambda entries: self._loaded(generation, limit, entries),
            lambda error: self._failed(generation, error),
        )

    def _loaded(self, generation: int, limit: int | None, entries: list[AuditEntry]) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self._complete = limit is None or len(entries) < limit
        new = entries[len(self._rows) :]  # append-only: the rows we hold are a prefix
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()
        self.loaded.emit()

    def _failed(self, generation: int, error: TacitError) -> None:
        if generation == self._generation:
            self._loading, self._complete = False, True
            self.failed.emit(error.message)

    # -- Qt model ----------------------------------------------------------------------
    def _client(self, entry: AuditEntry) -> str:
        if entry.client_id is None:
            return ""
        return self._names.get(entry.client_id, entry.client_id[:8])

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        entry = self.entry(index.row()) if index.isValid() else None
        if entry is None:
            return None
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return (
                str(entry.seq),
                entry.at.replace("T", " ").rstrip("Z")[:19],
                entry.action.replace("_", " "),
                entry.record_type or "",
                entry.record_id or "",
                self._client(entry),
                entry.device,
                entry.detail or "",
            )[column]
        if role == Qt.ItemDataRole.ToolTipRole and column in (4, 5) and entry.record_id:
            return entry.record_id if column == 4 else entry.client_id
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class ExportConsentDialog(QDialog):
    """States that the CSV is not encrypted; Save… is enabled only once the user ticks
    "I understand this file is not encrypted"."""

    def __init__(self, narrowed: bool, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Export audit trail")
        self.setObjectName("exportConsentDialog")
        scope = "the entries matching the current filters" if narrowed else "the whole trail"
        heading = QLabel("The CSV file is NOT encrypted.", self)
        heading.setObjectName("title")
        text = QLabel(
            f"It will hold {scope}: record ids, actions, devices, the clinician's name and "
            "times, in plain text — never note text or client names. Anyone who can open "
            "the file can read it. Keep it only where your records policy allows, and "
            "delete it when you are done. The export itself is recorded in the audit trail.",
            self,
        )
        text.setWordWrap(True)
        self.consent = named(
            QCheckBox("I understand this file is not encrypted", self),
            "I understand this file is not encrypted",
        )
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.save_button: QPushButton = named(
            self.buttons.addButton("Save…", QDialogButtonBox.ButtonRole.AcceptRole),
            "Save the CSV file",
        )
        self.save_button.setEnabled(False)
        self.consent.toggled.connect(self.save_button.setEnabled)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(text)
        layout.addWidget(self.consent)
        layout.addWidget(self.buttons)
        self.finished.connect(lambda _result: self.deleteLater())
        self.setMinimumWidth(460)

    def accept(self) -> None:
        if not self.consent.isChecked():  # no consent, no file
            return
        super().accept()


class AuditWindow(QDialog):
    def __init__(self, service: VaultService, runner: OpRunner, parent: QWidget) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self.setWindowTitle("Tacit — Audit trail")
        self.setObjectName("auditWindow")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.last_verdict: AuditVerdict | None = None
        self.last_export: tuple[Path, int] | None = None
        self._scroll_when_loaded = False

        self.client = named(QComboBox(self), "Client", "Only entries about this client")
        self.action = named(QComboBox(self), "Action", "Only entries of this kind")
        self.action.addItem("All actions", None)
        for action in ACTIONS:
            self.action.addItem(action.replace("_", " "), action)
        self.since_on = named(QCheckBox("&Since", self), "Limit by date", "Only entries since")
        self.since = named(QDateEdit(self), "Since date", "Entries from this day on (UTC)")
        self.since.setDisplayFormat("yyyy-MM-dd")
        self.since.setCalendarPopup(True)
        self.since.setMinimumDate(ANY_DATE)
        self.since.setSpecialValueText("Any date")
        self.since.setDate(ANY_DATE)
        self.since.setEnabled(False)

        self.model = AuditModel(service, runner, self)
        self.view = named(QTableView(self), "Audit entries", "Oldest first; scroll for more")
        self._setup_view()
        self.count = QLabel(self)
        self.count.setObjectName("hint")
        self.verdict = MessageLabel(self)
        self.busy = BusyBar(self)
        self.verify_button = named(
            QPushButton("&Verify chain", self), "Verify chain",
            "Check that no entry was changed, removed or reordered",
        )  # fmt: skip
        self.newest_button = named(
            QPushButton("Show &newest", self), "Show newest", "Load every matching entry"
        )
        self.export_button = named(
            QPushButton("&Export CSV…", self), "Export CSV", "Unencrypted, after your consent"
        )
        close = named(QPushButton("Close", self), "Close")
        self._layout(close)

        self.client.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.action.currentIndexChanged.connect(lambda _i: self.apply_filters())
        self.since.dateChanged.connect(lambda _d: self.apply_filters())
        self.since_on.toggled.connect(self._since_toggled)
        self.verify_button.clicked.connect(self.verify_chain)
        self.newest_button.clicked.connect(self.show_newest)
        self.export_button.clicked.connect(self.open_export)
        close.clicked.connect(self.reject)
        self.model.loaded.connect(self._update_count)
        self.model.failed.connect(lambda text: self.verdict.show_message(text))
        self.finished.connect(self._forget)
        self.resize(980, 560)

    # -- construction ------------------------------------------------------------------
    def _setup_view(self) -> None:
        view = self.view
        view.setModel(self.model)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setTabKeyNavigation(False)
        view.setWordWrap(False)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        view.verticalHeader().hide()
        view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        metrics = view.fontMetrics()
        samples = ("999999", "2026-12-31 23:59:59", "settings change", "client",
                   "12345678-1234", "Casey Placeholder", "1234abcd")  # fmt: skip
        for column, sample in enumerate(samples):
            view.setColumnWidth(column, metrics.horizontalAdvance(sample) + 24)

    def _layout(self, close: QPushButton) -> None:
        filters = QHBoxLayout()
        for text, widget in (("C&lient:", self.client), ("&Action:", self.action)):
            label = QLabel(text, self)
            label.setBuddy(widget)
            filters.addWidget(label)
            filters.addWidget(widget, 1)
        filters.addWidget(self.since_on)
        filters.addWidget(self.since)
        bottom = QHBoxLayout()
        bottom.addWidget(self.verify_button)
        bottom.addWidget(self.newest_button)
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count)
        layout.addWidget(self.busy)
        layout.addWidget(self.verdict)
        layout.addLayout(bottom)

    # -- filters -----------------------------------------------------------------------
    def start(self) -> None:
        """Fill the client picker and show the whole trail."""
        clients = sorted(self._service.list_clients(status=None), key=lambda c: c.name.lower())
        names = {c.id: c.name for c in clients}
        self.model.set_client_names(names)
        self.client.blockSignals(True)
        self.client.clear()
        self.client.addItem("All clients", None)
        for client in clients:
            suffix = " (discharged)" if client.status == "discharged" else ""
            self.client.addItem(client.name + suffix, client.id)
        self.client.blockSignals(False)
        self.apply_filters()

    def current_filters(self) -> AuditFilter:
        date = self.since.date()
        since = None if date == ANY_DATE else date.toString("yyyy-MM-dd")
        return AuditFilter(self.client.currentData(), self.action.currentData(), since)

    def apply_filters(self) -> None:
        self.verdict.clear_message()
        self.model.set_filters(self.current_filters())
        self._update_count()

    def _since_toggled(self, on: bool) -> None:
        self.since.setEnabled(on)
        if on:
            day = (self._service.clock.now() - timedelta(days=DEFAULT_SINCE_DAYS)).date()
            self.since.setDate(QDate(day.year, day.month, day.day))
            self.since.setFocus()
        else:
            self.since.setDate(ANY_DATE)

    def select_client(self, client_id: str | None) -> None:
        self.client.setCurrentIndex(max(0, self.client.findData(client_id)))

    def select_action(self, action: str | None) -> None:
        self.action.setCurrentIndex(max(0, self.action.findData(action)))

    def _update_count(self) -> None:
        model = self.model
        rows = model.rowCount()
        if model.loading and not rows:
            self.count.setText("Loading…")
            return
        noun = f"{rows} entr{'ies' if rows != 1 else 'y'}"
        more = "" if model.complete else " shown, oldest first — scroll for more"
        self.count.setText(noun + more)
        if self._scroll_when_loaded and model.complete:
            self._scroll_when_loaded = False
            self.view.scrollToBottom()

    def show_newest(self) -> None:
        """Load every matching entry and scroll to the newest (the bottom)."""
        self._scroll_when_loaded = True
        self.model.load_all()

    # -- verify ------------------------------------------------------------------------
    def verify_chain(self) -> None:
        self.verdict.clear_message()
        self._runner.run(
            self._service.verify_audit,
            self._verified,
            lambda error: self.verdict.show_message(f"Could not verify: {error.message}"),
            busy=self.busy,
            message="Verifying the chain…",
        )

    def _verified(self, verdict: AuditVerdict) -> None:
        self.last_verdict = verdict
        if verdict.ok:
            self.verdict.show_message(
                f"✔ The chain is intact: {verdict.entries} entries verified.", "notice"
            )
        else:
            self.verdict.show_message(
                f"✘ The chain is broken at entry #{verdict.first_bad_seq}: {verdict.reason}. "
                "Entries may have been changed, removed or reordered outside Tacit."
            )

    # -- export ------------------------------------------------------------------------
    def open_export(self) -> ExportConsentDialog:
        filters = self.current_filters()
        dialog = ExportConsentDialog(filters.narrowed, self)
        dialog.accepted.connect(lambda: self.choose_path(lambda p: self.export_to(p, filters)))
        dialog.open()
        return dialog

    def choose_path(self, then: Callable[[Path], None]) -> None:
        """Ask where to save (window-modal, no nested event loop), then call ``then``."""
        today = self._service.clock.now().date().isoformat()
        dialog = private_file_dialog(self, "Tacit — Save audit trail CSV", str(Path.home()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter("CSV files (*.csv)")
        dialog.setDefaultSuffix("csv")
        dialog.selectFile(f"tacit-audit-{today}.csv")
        dialog.fileSelected.connect(lambda name: then(Path(name)) if name else None)
        dialog.open()

    def export_to(self, path: Path, filters: AuditFilter) -> None:
        """Write the CSV in the worker (called only after consent and a chosen path)."""
        service = self._service

        def done(rows: int) -> None:
            self.last_export = (path, rows)
            self.verdict.show_message(f"Wrote {rows} entries to {path} (not encrypted).", "notice")
            self.model.read_new()

        self._runner.run(
            lambda: export_audit_csv(service, path, filters),
            done,
            lambda error: self.verdict.show_message(f"Not exported: {error.message}"),
            busy=self.busy,
            message="Exporting…",
        )

    # -- lock --------------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget every entry and client name (lock, close)."""
        self.model.clear()
        for combo in (self.client, self.action):
            combo.blockSignals(True)
            combo.clear()
        self.since.blockSignals(True)
        self.last_verdict = None
        self.last_export = None
        wipe_widgets(self)

    def _forget(self, _result: int = 0) -> None:
        self.wipe()
        self.deleteLater()
