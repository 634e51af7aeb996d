"""Small widgets shared by the windows: accessible naming, the busy bar, the progress
bar with the time left (``ProgressPanel``), the note text box and the read-only
rich-text view whose copies are concealed, and a message label.

Invariants:
- ``SecureTextEdit`` and ``SecureTextView`` never put text on the clipboard (or the X11
  selection) without the concealment hints, and every copy starts the clipboard guard's
  clearing countdown;
- ``wipe_widgets`` leaves no text in any text-bearing widget under a root, including
  undo history (QPlainTextEdit.clear() drops it); item models are cleared by their
  owners (each of our models has ``clear()``).
"""

from __future__ import annotations

import time
from typing import TypeVar

from app.ui.clipboard import ClipboardGuard, concealed_mime
from app.ui.qt import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QMimeData,
    QObject,
    QPlainTextEdit,
    QProgressBar,
    QSettings,
    QSizePolicy,
    Qt,
    QTextEdit,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.vault.clock import human_duration

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


class _ProgressRelay(QObject):
    """Lives on the UI thread; a worker emits through it, so delivery is queued."""

    changed = Signal(float)


class ProgressPanel(QWidget):
    """A determinate progress bar with a caption and the time left (from the rate so
    far, once half a second has passed). ``report`` may be called from any thread."""

    STEPS = 1000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel(self)
        self.bar = named(QProgressBar(self), "Progress")
        self.bar.setRange(0, self.STEPS)
        self.bar.setTextVisible(True)
        self._relay = _ProgressRelay(self)
        self._relay.changed.connect(self.show_fraction)
        self._label = ""
        self._started = time.monotonic()
        self.busy = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.bar)
        self.hide()

    def set_busy(self, busy: bool, message: str = "") -> None:
        """The ``BusyIndicator`` of ``OpRunner``: starts at 0 % with ``message``."""
        self.busy = busy
        if busy:
            self._label = message
            self._started = time.monotonic()
            self.bar.setValue(0)
            self.caption.setText(message)
        self.setVisible(busy)

    def report(self, fraction: float) -> None:
        """The progress callback handed to the vault code (worker thread)."""
        self._relay.changed.emit(float(fraction))

    def show_fraction(self, fraction: float) -> None:
        """Show ``fraction`` now (UI thread; ``report`` is the way from a worker)."""
        fraction = max(0.0, min(1.0, fraction))
        self.bar.setValue(round(fraction * self.STEPS))
        elapsed = time.monotonic() - self._started
        text = self._label
        if 0.0 < fraction < 1.0 and elapsed >= 0.5:
            text += f" About {human_duration(elapsed / fraction * (1.0 - fraction))} left."
        self.caption.setText(text)
        self.bar.setAccessibleDescription(text)

    @property
    def fraction(self) -> float:
        return self.bar.value() / self.STEPS


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


# -- file dialogs that leave no path behind ---------------------------------------------
_QT_DIALOG_KEYS = ("FileDialog/history", "FileDialog/lastVisited")


def _qt_dialog_memory() -> dict[str, object]:
    qt = QSettings(QSettings.Scope.UserScope, "QtProject")
    return {key: qt.value(key) for key in _QT_DIALOG_KEYS if qt.contains(key)}


def _restore_qt_dialog_memory(memory: dict[str, object]) -> None:
    qt = QSettings(QSettings.Scope.UserScope, "QtProject")
    for key in _QT_DIALOG_KEYS:
        if key in memory:
            qt.setValue(key, memory[key])
        else:
            qt.remove(key)
    qt.sync()


def private_file_dialog(parent: QWidget, title: str, start: str) -> QFileDialog:
    """A ``QFileDialog`` that leaves no trace of where it went. Qt writes the folders a
    file dialog visited (and so folder and file names, which can name a client) to its
    own settings file (QtProject.conf) when the dialog goes; what was there before is
    put back then. It starts with no history, and deletes itself when it closes."""
    dialog = QFileDialog(parent, title, start)
    dialog.setHistory([])
    memory = _qt_dialog_memory()
    dialog.destroyed.connect(lambda *_: _restore_qt_dialog_memory(memory))
    dialog.finished.connect(lambda _result: dialog.deleteLater())
    return dialog
