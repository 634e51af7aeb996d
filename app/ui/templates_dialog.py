"""``TemplatesDialog``: the clinician's own note templates (add, change, archive).

Shipped templates are listed for reference but cannot change. The dialog talks to the
vault through a small ``TemplateActions`` protocol (the main window passes the service),
so it is tested without a window around it. A ``TacitError`` keeps the dialog open with
its message shown.

Invariant: templates hold no client data; still, they live in the vault, so the dialog
keeps nothing after it closes (``wipe_widgets``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from app.errors import TacitError
from app.ui.models import kind_label
from app.ui.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import MessageLabel, named, wipe_widgets
from app.vault.models import NOTE_KINDS, Template


class TemplateActions(Protocol):
    def templates(self, *, include_archived: bool = False) -> tuple[Template, ...]: ...

    def add_template(
        self, name: str, kind: str, sections: Iterable[str], description: str = ""
    ) -> Template: ...

    def update_template(
        self, template_id: str, *, name: str | None = None, kind: str | None = None,
        sections: Iterable[str] | None = None, description: str | None = None,
        archived: bool | None = None,
    ) -> Template: ...  # fmt: skip


class TemplatesDialog(QDialog):
    def __init__(self, actions: TemplateActions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._actions = actions
        self._current: Template | None = None
        self.setWindowTitle("Tacit — Note templates")
        self.setObjectName("templatesDialog")
        self.list = named(QListWidget(self), "Templates")
        self.list.currentRowChanged.connect(self._show)
        self.name = named(QLineEdit(self), "Template name")
        self.kind = named(QComboBox(self), "Note kind")
        for kind in NOTE_KINDS:
            self.kind.addItem(kind_label(kind), kind)
        self.description = named(QLineEdit(self), "Description", "Optional")
        self.sections = named(QPlainTextEdit(self), "Sections", "One section heading per line")
        self.sections.setPlaceholderText("One section heading per line")
        self.error = MessageLabel(self)
        self.new_button = QPushButton("&New template", self)
        self.new_button.clicked.connect(self.start_new)
        self.save_button = QPushButton("&Save", self)
        self.save_button.clicked.connect(self.save)
        self.archive_button = QPushButton("&Archive", self)
        self.archive_button.clicked.connect(self.toggle_archived)
        form = QFormLayout()
        form.addRow("&Name:", self.name)
        form.addRow("&Kind:", self.kind)
        form.addRow("&Description:", self.description)
        form.addRow("S&ections:", self.sections)
        row = QHBoxLayout()
        for button in (self.new_button, self.save_button, self.archive_button):
            row.addWidget(button)
        row.addStretch(1)
        editor = QVBoxLayout()
        editor.addLayout(form)
        editor.addLayout(row)
        editor.addWidget(self.error)
        body = QHBoxLayout()
        body.addWidget(self.list, 1)
        body.addLayout(editor, 2)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(body)
        layout.addWidget(close)
        self.finished.connect(self._forget)
        self.setMinimumSize(640, 420)
        self.reload()

    # -- list --------------------------------------------------------------------------
    def reload(self, select: str | None = None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        chosen = -1
        for template in self._actions.templates(include_archived=True):
            label = template.name
            if not template.custom:
                label += "  (shipped)"
            elif template.archived:
                label += "  (archived)"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, template)
            self.list.addItem(item)
            if template.id == select:
                chosen = self.list.count() - 1
        self.list.blockSignals(False)
        if chosen >= 0:
            self.list.setCurrentRow(chosen)
        else:
            self.start_new()

    def template_at(self, row: int) -> Template | None:
        item = self.list.item(row)
        data = None if item is None else item.data(Qt.ItemDataRole.UserRole)
        return data if isinstance(data, Template) else None

    def _show(self, row: int) -> None:
        template = self.template_at(row)
        if template is None:
            return
        self._current = template
        self.error.clear_message()
        self.name.setText(template.name)
        self.kind.setCurrentIndex(max(0, self.kind.findData(template.kind)))
        self.description.setText(template.description)
        self.sections.setPlainText("\n".join(template.sections))
        editable = template.custom
        for widget in (self.name, self.kind, self.description, self.sections):
            widget.setEnabled(editable)
        self.save_button.setEnabled(editable)
        self.archive_button.setEnabled(editable)
        self.archive_button.setText("&Restore" if template.archived else "&Archive")

    # -- actions -----------------------------------------------------------------------
    def start_new(self) -> None:
        self._current = None
        self.list.blockSignals(True)
        self.list.clearSelection()
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        for widget in (self.name, self.kind, self.description, self.sections):
            widget.setEnabled(True)
        self.name.clear()
        self.description.clear()
        self.sections.clear()
        self.kind.setCurrentIndex(max(0, self.kind.findData("progress")))
        self.save_button.setEnabled(True)
        self.archive_button.setEnabled(False)
        self.archive_button.setText("&Archive")
        self.name.setFocus()

    def _sections(self) -> list[str]:
        return [line.strip() for line in self.sections.toPlainText().splitlines()
                if line.strip()]  # fmt: skip

    def save(self) -> None:
        name, kind = self.name.text().strip(), str(self.kind.currentData())
        description = self.description.text().strip()
        try:
            if self._current is None:
                saved = self._actions.add_template(name, kind, self._sections(), description)
            else:
                saved = self._actions.update_template(
                    self._current.id, name=name, kind=kind, sections=self._sections(),
                    description=description,
                )  # fmt: skip
        except TacitError as exc:
            self.error.show_message(exc.message)
            return
        self.reload(select=saved.id)
        self.error.show_message("Saved.", "info")

    def toggle_archived(self) -> None:
        if self._current is None or not self._current.custom:
            return
        try:
            saved = self._actions.update_template(
                self._current.id, archived=not self._current.archived
            )
        except TacitError as exc:
            self.error.show_message(exc.message)
            return
        self.reload(select=saved.id)

    def _forget(self, _result: int = 0) -> None:
        wipe_widgets(self)
        self.deleteLater()
