"""Small widgets shared by the windows: accessible naming, the busy bar, the note text
box and the read-only rich-text view whose copies are concealed, and a message label.

Invariants:
- ``SecureTextEdit`` and ``SecureTextView`` never put text on the clipboard (or the X11
  selection) without the concealment hints, and every copy starts the clipboard guard's
  clearing countdown;
- ``wipe_widgets`` leaves no text in any text-bearing widget under a root, including
  undo history (QPlainTextEdit.clear() drops it); item models are cleared by their
  owners (each of our models has ``clear()``).
"""

from __future__ import annotations

from typing import TypeVar

from app.ui.clipboard import ClipboardGuard, concealed_mime
from app.ui.qt import (
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QMimeData,
    QPlainTextEdit,
    QProgressBar,
    QSizePolicy,
    Qt,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

W = TypeVar("W", bound=QWidget)


def named(widget: W, name: str, description: str = "") -> W:
    """Give a widget the name (and description) a screen reader announces."""
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)
    return widget


class BusyBar(QWidget):
    """An indeterminate progress bar with a caption; hidden when idle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.caption = QLabel(self)
        self.bar = named(QProgressBar(self), "Working")
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(6)
        layout.addWidget(self.caption)
        layout.addWidget(self.bar)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.busy = False
        self.hide()

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy = busy
        self.caption.setText(message)
        self.caption.setVisible(bool(message))
        self.setVisible(busy)


class MessageLabel(QLabel):
    """A wrapped label for errors and notices; styled by its ``kind`` property."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setObjectName("message")
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.setText(text)
        self.setAccessibleName(text)
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.clear()
        self.hide()


class SecureTextEdit(QPlainTextEdit):
    """A plain-text editor whose copies (and X11 selections) are concealed and cleared."""

    def __init__(self, guard: ClipboardGuard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._guard = guard
        self.setTabChangesFocus(True)  # Tab moves on (keyboard reachability); Ctrl+Tab not

    def createMimeDataFromSelection(self) -> QMimeData:
        text = self.textCursor().selection().toPlainText()
        self._guard.track(text)
        return concealed_mime(text)


class SecureTextView(QTextEdit):
    """A read-only rich-text view (diffs, addenda) whose copies are concealed and cleared.

    Only HTML we built ourselves (from escaped text) goes in through ``setHtml``; pasting
    or dropping rich text is impossible because the view is read-only, and it keeps no
    undo history."""

    def __init__(self, guard: ClipboardGuard, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._guard = guard
        self.setReadOnly(True)
        self.setUndoRedoEnabled(False)
        self.setAcceptRichText(False)
        self.setTabChangesFocus(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )

    def createMimeDataFromSelection(self) -> QMimeData:
        text = self.textCursor().selection().toPlainText()
        self._guard.track(text)
        return concealed_mime(text)


def wipe_widgets(root: QWidget) -> None:
    """Clear the text of every text-bearing widget under (and including) ``root``."""
    widgets: list[QWidget] = [root, *root.findChildren(QWidget)]
    for widget in widgets:
        if isinstance(widget, QPlainTextEdit | QTextEdit | QLineEdit | QLabel | QListWidget):
            widget.clear()
        elif isinstance(widget, QComboBox) and widget.isEditable():
            widget.clearEditText()
        if widget.isWindow():
            widget.setWindowTitle("Tacit")
