"""``HistoryDialog``: a note's revisions, oldest first, each viewable read-only.

Invariants: the dialog is a child of the main window (so it is destroyed with it on
lock); its text view is a ``SecureTextEdit`` (copies are concealed and cleared) and is
read-only — history is never edited, only viewed.
"""

from __future__ import annotations

from app.ui.clipboard import ClipboardGuard
from app.ui.qt import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import SecureTextEdit, named, wipe_widgets
from app.vault.models import Revision


def revision_label(revision: Revision) -> str:
    when = revision.saved_at.replace("T", " ")[:16]
    suffix = " (current)" if revision.current else ""
    return f"Revision {revision.revision} — {when} UTC — {revision.author}{suffix}"


class HistoryDialog(QDialog):
    def __init__(
        self, revisions: list[Revision], clipboard: ClipboardGuard, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Revision history")
        self.setObjectName("historyDialog")
        self._revisions = list(revisions)
        self.list = named(QListWidget(self), "Revisions", "Every saved version of the note")
        for revision in reversed(self._revisions):  # newest on top
            item = QListWidgetItem(revision_label(revision))
            item.setData(Qt.ItemDataRole.UserRole, revision.revision)
            self.list.addItem(item)
        self.viewer = named(SecureTextEdit(clipboard, self), "Revision text")
        self.viewer.setReadOnly(True)
        self.viewer.setTabChangesFocus(True)
        self.caption = QLabel("Read-only: earlier versions cannot be changed.", self)
        self.caption.setObjectName("hint")
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.list)
        split.addWidget(self.viewer)
        split.setSizes([140, 360])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(split, 1)
        layout.addWidget(buttons)
        self.list.currentRowChanged.connect(self._show_row)
        self.finished.connect(self._forget)
        if self._revisions:
            self.list.setCurrentRow(0)
        self.resize(640, 560)

    def _show_row(self, row: int) -> None:
        if 0 <= row < len(self._revisions):
            revision = self._revisions[len(self._revisions) - 1 - row]
            self.viewer.setPlainText(revision.body)
        else:
            self.viewer.clear()

    def _forget(self, _result: int = 0) -> None:
        self._revisions = []
        wipe_widgets(self)
        self.deleteLater()
