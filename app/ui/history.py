"""``HistoryDialog``: a note's revisions, newest first, each shown as a readable diff.

Choosing a revision shows what changed in it (against the previous revision), what has
changed since (against the current revision), or its text alone — the "Show" box picks.
Inserted words are underlined on green, deleted words struck through on red (see
``app.ui.diff``). A title change is shown above the text.

Invariants: the dialog is a child of the main window (so it is destroyed with it on
lock); its text view is a read-only ``SecureTextView`` (copies are concealed and cleared)
showing only HTML built from escaped note text — history is never edited, only viewed.
"""

from __future__ import annotations

from app.ui.clipboard import ClipboardGuard
from app.ui.diff import diff_html, text_html
from app.ui.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import SecureTextView, named, wipe_widgets
from app.vault.models import Revision

MODE_PREVIOUS, MODE_CURRENT, MODE_TEXT = 0, 1, 2
MODES = (
    "Changes made in this revision",
    "Changes since, up to the current revision",
    "This revision's text",
)
LEGEND = "Added words are underlined on green; removed words are struck through on red."


def revision_label(revision: Revision) -> str:
    when = revision.saved_at.replace("T", " ")[:16]
    suffix = " (current)" if revision.current else ""
    if revision.conflict:
        suffix += " (conflict: from another device)"
    return f"Revision {revision.revision} — {when} UTC — {revision.author}{suffix}"


def _title_html(old: Revision, new: Revision) -> str:
    if old.title == new.title:
        return ""
    shown, _stats = diff_html(old.title, new.title)
    return f"<p><b>Title:</b></p>{shown}<hr/>"


class HistoryDialog(QDialog):
    def __init__(
        self, revisions: list[Revision], clipboard: ClipboardGuard, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Revision history")
        self.setObjectName("historyDialog")
        self._revisions = sorted(revisions, key=lambda r: r.revision)  # oldest first
        self.list = named(QListWidget(self), "Revisions", "Every saved version of the note")
        for revision in reversed(self._revisions):  # newest on top
            item = QListWidgetItem(revision_label(revision))
            item.setData(Qt.ItemDataRole.UserRole, revision.revision)
            self.list.addItem(item)
        self.mode = named(QComboBox(self), "Show", "What the view below shows")
        self.mode.addItems(list(MODES))
        mode_label = QLabel("&Show:", self)
        mode_label.setBuddy(self.mode)
        self.summary = QLabel(self)
        self.summary.setObjectName("hint")
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setAccessibleName("Summary of changes")
        self.viewer = named(SecureTextView(clipboard, self), "Revision", LEGEND)
        self.caption = QLabel("Read-only: earlier versions cannot be changed. " + LEGEND, self)
        self.caption.setObjectName("hint")
        self.caption.setWordWrap(True)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.list)
        split.addWidget(self.viewer)
        split.setSizes([140, 380])
        split.setChildrenCollapsible(False)
        row = QHBoxLayout()
        row.addWidget(mode_label)
        row.addWidget(self.mode)
        row.addStretch(1)
        row.addWidget(self.summary)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(split, 1)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.list.currentRowChanged.connect(lambda _row: self._refresh())
        self.mode.currentIndexChanged.connect(lambda _index: self._refresh())
        self.finished.connect(self._forget)
        if self._revisions:
            self.list.setCurrentRow(0)
        self.resize(680, 600)

    def revision_at(self, row: int) -> Revision | None:
        """The revision shown in list row ``row`` (row 0 is the newest)."""
        if 0 <= row < len(self._revisions):
            return self._revisions[len(self._revisions) - 1 - row]
        return None

    def set_mode(self, mode: int) -> None:
        self.mode.setCurrentIndex(mode)

    def _refresh(self) -> None:
        row = self.list.currentRow()
        chosen = self.revision_at(row)
        if chosen is None:
            self.viewer.clear()
            self.summary.clear()
            return
        index = len(self._revisions) - 1 - row
        mode = self.mode.currentIndex()
        if mode == MODE_PREVIOUS and index > 0:
            old, new = self._revisions[index - 1], chosen
            caption = f"Revision {old.revision} → {new.revision}"
        elif mode == MODE_CURRENT and not chosen.current:
            old, new = chosen, self._revisions[-1]
            caption = f"Revision {old.revision} → current ({new.revision})"
        else:
            self.viewer.setHtml(text_html(chosen.body))
            self._set_summary(
                "the first revision" if mode == MODE_PREVIOUS
                else "this is the current revision" if mode == MODE_CURRENT
                else f"revision {chosen.revision}"
            )  # fmt: skip
            return
        body, stats = diff_html(old.body, new.body)
        self.viewer.setHtml(_title_html(old, new) + body)
        self._set_summary(f"{caption}: {stats.summary()}")

    def _set_summary(self, text: str) -> None:
        self.summary.setText(text)
        self.summary.setAccessibleDescription(text)

    def _forget(self, _result: int = 0) -> None:
        self._revisions = []
        self.mode.blockSignals(True)
        self.mode.clear()
        wipe_widgets(self)
        self.deleteLater()
