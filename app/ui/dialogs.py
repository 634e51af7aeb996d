"""Record dialogs: add/edit a client, and pick a template for a new note.

Both are window-modal children of the main window opened with ``open()`` (never a
nested ``exec()`` loop), so a lock can destroy them at any moment together with the main
window. Saving goes through a callable the main window passes in (which calls the
service); a ``TacitError`` keeps the dialog open with the message shown.

Invariant: titles never carry client data ("Tacit — Edit client", not the name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.errors import TacitError
from app.ui.models import PROCESS_KIND, kind_label
from app.ui.qt import (
    QDate,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import MessageLabel, named, wipe_widgets
from app.vault.models import Client, Template


@dataclass(frozen=True, slots=True)
class ClientFields:
    name: str
    dob: str | None
    email: str | None
    phone: str | None


class ClientDialog(QDialog):
    def __init__(
        self,
        save: Callable[[ClientFields], None],
        client: Client | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._save = save
        self.setWindowTitle("Tacit — Edit client" if client else "Tacit — Add client")
        self.setObjectName("clientDialog")
        self.name = named(QLineEdit(self), "Client name")
        self.dob = named(QLineEdit(self), "Date of birth", "Optional, as YYYY-MM-DD")
        self.dob.setPlaceholderText("YYYY-MM-DD")
        self.email = named(QLineEdit(self), "Email", "Optional")
        self.phone = named(QLineEdit(self), "Phone", "Optional")
        if client is not None:
            self.name.setText(client.name)
            self.dob.setText(client.dob or "")
            self.email.setText(client.email or "")
            self.phone.setText(client.phone or "")
        self.error = MessageLabel(self)
        form = QFormLayout()
        form.addRow("&Name:", self.name)
        form.addRow("&Date of birth:", self.dob)
        form.addRow("&Email:", self.email)
        form.addRow("&Phone:", self.phone)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.finished.connect(self._forget)
        self.setMinimumWidth(420)

    def fields(self) -> ClientFields:
        def opt(edit: QLineEdit) -> str | None:
            return edit.text().strip() or None

        return ClientFields(self.name.text().strip(), opt(self.dob), opt(self.email),
                            opt(self.phone))  # fmt: skip

    def accept(self) -> None:
        fields = self.fields()
        if not fields.name:
            self.error.show_message("A name is required.")
            self.name.setFocus()
            return
        try:
            self._save(fields)
        except TacitError as exc:
            self.error.show_message(exc.message)
            return
        super().accept()

    def _forget(self, _result: int = 0) -> None:
        wipe_widgets(self)
        self.deleteLater()


class NewNoteDialog(QDialog):
    """Choose a template (its sections are previewed) and the session date."""

    def __init__(
        self,
        templates: tuple[Template, ...],
        create: Callable[[Template, str], None],
        today: QDate,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._templates = templates
        self._create = create
        self.setWindowTitle("Tacit — New note")
        self.setObjectName("newNoteDialog")
        self.list = named(QListWidget(self), "Templates", "The kind of note to write")
        for template in templates:
            item = QListWidgetItem(template.name)
            item.setData(Qt.ItemDataRole.UserRole, template.id)
            self.list.addItem(item)
        self.description = QLabel(self)
        self.description.setWordWrap(True)
        self.kind = QLabel(self)
        self.kind.setObjectName("kindBadge")
        self.sections = named(QListWidget(self), "Sections", "The headings the note starts with")
        self.sections.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.sections.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.process_notice = QLabel(
            "Process notes are kept apart from the clinical record and are excluded from "
            "exports and record releases unless explicitly included.",
            self,
        )
        self.process_notice.setObjectName("processBanner")
        self.process_notice.setWordWrap(True)
        self.date = named(QDateEdit(today, self), "Session date")
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        self.error = MessageLabel(self)

        details = QVBoxLayout()
        details.addWidget(self.kind)
        details.addWidget(self.description)
        sections_label = QLabel("Sections:", self)
        sections_label.setBuddy(self.sections)
        details.addWidget(sections_label)
        details.addWidget(self.sections, 1)
        details.addWidget(self.process_notice)
        date_row = QFormLayout()
        date_row.addRow("Session &date:", self.date)
        details.addLayout(date_row)
        row = QHBoxLayout()
        row.addWidget(self.list, 2)
        row.addLayout(details, 3)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Create note")
        named(ok, "Create note")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(row, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self.list.currentRowChanged.connect(self._preview)
        self.list.itemActivated.connect(lambda _item: self.accept())
        self.finished.connect(self._forget)
        if templates:
            self.list.setCurrentRow(0)
        self.resize(620, 420)

    def select_template(self, template_id: str) -> None:
        for row, template in enumerate(self._templates):
            if template.id == template_id:
                self.list.setCurrentRow(row)
                return

    @property
    def template(self) -> Template | None:
        row = self.list.currentRow()
        return self._templates[row] if 0 <= row < len(self._templates) else None

    def _preview(self, _row: int) -> None:
        template = self.template
        self.sections.clear()
        if template is None:
            return
        self.description.setText(template.description)
        self.kind.setText(kind_label(template.kind))
        process = template.kind == PROCESS_KIND
        self.kind.setProperty("process", process)
        self.kind.style().unpolish(self.kind)
        self.kind.style().polish(self.kind)
        self.sections.addItems(list(template.sections) or ["(free text)"])
        self.process_notice.setVisible(process)

    def accept(self) -> None:
        template = self.template
        if template is None:
            return
        try:
            self._create(template, self.date.date().toString("yyyy-MM-dd"))
        except TacitError as exc:
            self.error.show_message(exc.message)
            return
        super().accept()

    def _forget(self, _result: int = 0) -> None:
        wipe_widgets(self)
        self.deleteLater()
