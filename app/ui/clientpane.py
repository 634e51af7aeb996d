"""``ClientPane``: the client list — filter as you type, add, edit, discharge.

The pane only shows and selects; the main window does the record work through the
service when the pane asks (signals). Filtering is the service's (``list_clients(query)``).
"Export record…" opens the export dialog (app/ui/export_dialog.py) for the selected
client; it is a child of the pane, so a lock closes it with the main window.

Invariant: the pane's only copy of client records is its ``ClientListModel``, dropped by
``clear()``.
"""

from __future__ import annotations

from app.ui.export_dialog import ExportDialog
from app.ui.models import ID_ROLE, ClientListModel
from app.ui.qt import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QKeyEvent,
    QLabel,
    QLineEdit,
    QListView,
    QModelIndex,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import named
from app.vault.service import VaultService


class _FilterField(QLineEdit):
    """Down arrow moves into the list; Escape clears the filter."""

    def __init__(self, pane: ClientPane) -> None:
        super().__init__(pane)
        self._pane = pane

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Down:
            self._pane.list.setFocus()
            return
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            return
        super().keyPressEvent(event)


class ClientPane(QWidget):
    client_selected = Signal(object)  # client id or None
    add_requested = Signal()
    edit_requested = Signal()
    discharge_requested = Signal()

    def __init__(self, service: VaultService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._service = service
        self.model = ClientListModel(service, self)
        title = QLabel("Clients", self)
        title.setObjectName("paneTitle")
        self.filter = named(_FilterField(self), "Filter clients", "Type part of a name")
        self.filter.setPlaceholderText("Filter clients")
        self.filter.setClearButtonEnabled(True)
        self.list = named(QListView(self), "Clients")
        self.list.setModel(self.model)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setUniformItemSizes(True)
        title.setBuddy(self.filter)
        self.show_discharged = named(QCheckBox("Show discharged", self), "Show discharged")
        self.add_button = named(QPushButton("Add…", self), "Add client")
        self.edit_button = named(QPushButton("Edit…", self), "Edit client")
        self.discharge_button = named(QPushButton("Discharge", self), "Discharge client")
        self.export_button = named(
            QPushButton("Export record…", self), "Export record",
            "Export the selected client's record (encrypted archive or PDF)",
        )  # fmt: skip
        self.export_dialog: ExportDialog | None = None

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.edit_button)
        buttons.addWidget(self.discharge_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.show_discharged)
        layout.addLayout(buttons)
        layout.addWidget(self.export_button)

        self.filter.textChanged.connect(lambda text: self.reload(query=text))
        self.show_discharged.toggled.connect(lambda on: self.reload(include_discharged=on))
        self.list.selectionModel().currentChanged.connect(self._current_changed)
        self.add_button.clicked.connect(lambda: self.add_requested.emit())
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit())
        self.discharge_button.clicked.connect(lambda: self.discharge_requested.emit())
        self.export_button.clicked.connect(self.open_export)
        self._selected: str | None = None
        self._update_buttons()

    @property
    def current_client_id(self) -> str | None:
        return self._selected

    def reload(
        self,
        *,
        query: str | None = None,
        include_discharged: bool | None = None,
        audit: bool = False,
    ) -> None:
        """Re-read the list, keeping the selected client selected if still listed."""
        keep = self._selected
        self.model.load(query, include_discharged, audit=audit)
        row = self.model.row_of(keep) if keep else -1
        if row >= 0:
            self._set_current_row(row, emit=False)
        elif keep is not None:
            self._selected = None
            self.client_selected.emit(None)
        self._update_buttons()

    def select_client(self, client_id: str) -> None:
        """Select a client, widening the filter if it hides them."""
        if self.model.row_of(client_id) < 0 and self.filter.text():
            self.filter.blockSignals(True)
            self.filter.clear()
            self.filter.blockSignals(False)
            self.model.load(query="")
        if self.model.row_of(client_id) < 0 and not self.show_discharged.isChecked():
            self.show_discharged.blockSignals(True)
            self.show_discharged.setChecked(True)
            self.show_discharged.blockSignals(False)
            self.model.load(include_discharged=True)
        row = self.model.row_of(client_id)
        if row >= 0:
            self._set_current_row(row, emit=True)

    def select_first(self) -> None:
        if self.model.rowCount() > 0:
            self._set_current_row(0, emit=True)

    def _set_current_row(self, row: int, *, emit: bool) -> None:
        index = self.model.index(row, 0)
        selection = self.list.selectionModel()
        if not emit:
            selection.blockSignals(True)
        selection.setCurrentIndex(index, selection.SelectionFlag.ClearAndSelect)
        if not emit:
            selection.blockSignals(False)
            self._selected = str(index.data(ID_ROLE))
        self.list.scrollTo(index)
        self._update_buttons()

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        client_id = str(current.data(ID_ROLE)) if current.isValid() else None
        if client_id == self._selected:
            return
        self._selected = client_id
        self._update_buttons()
        self.client_selected.emit(client_id)

    def open_export(self) -> ExportDialog | None:
        """ "Export record…" for the selected client (one dialog at a time)."""
        if self._selected is None:
            return None
        dialog = self.export_dialog
        if dialog is None:
            dialog = ExportDialog(self._service, self._selected, self)
            dialog.finished.connect(lambda _r: self._export_closed(dialog))
            self.export_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _export_closed(self, dialog: ExportDialog) -> None:
        if self.export_dialog is dialog:
            self.export_dialog = None

    def _update_buttons(self) -> None:
        client = self.model.client(self.model.row_of(self._selected)) if self._selected else None
        self.edit_button.setEnabled(client is not None)
        self.export_button.setEnabled(client is not None)
        self.discharge_button.setEnabled(client is not None and client.status == "active")

    def clear(self) -> None:
        dialog, self.export_dialog = self.export_dialog, None
        if dialog is not None:
            dialog.close()  # drops its fields and any running export's result
        self._selected = None
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.blockSignals(False)
        self.model.clear()
