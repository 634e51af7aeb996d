"""Drivers for the real windows (clicks and keystrokes through pytest-qt) and a scan of
every live widget for text."""

from __future__ import annotations

from typing import Any

from app.ui.controller import AppController
from app.ui.dialogs import NewNoteDialog
from app.ui.mainwindow import MainWindow
from app.ui.qt import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QAccessible,
    QApplication,
    QComboBox,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    Qt,
    QTextEdit,
    QWidget,
)

LEFT = Qt.MouseButton.LeftButton


def widget_texts(widget: QWidget) -> list[str]:
    """Every string a widget holds or shows (text, title, items, model cells)."""
    texts = [widget.windowTitle(), widget.accessibleName(), widget.toolTip()]
    if isinstance(widget, QLineEdit):
        texts.append(widget.text())
    elif isinstance(widget, QPlainTextEdit | QTextEdit):
        texts.append(widget.toPlainText())
    elif isinstance(widget, QLabel | QAbstractButton):
        texts.append(widget.text())
    elif isinstance(widget, QComboBox):
        texts.extend(widget.itemText(i) for i in range(widget.count()))
    if isinstance(widget, QListWidget):
        texts.extend(widget.item(i).text() for i in range(widget.count()))
    elif isinstance(widget, QAbstractItemView) and widget.model() is not None:
        model = widget.model()
        for row in range(model.rowCount()):
            column = 0
            while model.hasIndex(row, column):  # list models hide columnCount in PySide
                value: Any = model.index(row, column).data()
                if value is not None:
                    texts.append(str(value))
                column += 1
    return texts


def live_texts() -> str:
    """All text held by any live widget of the application, joined."""
    return "\n".join(t for w in QApplication.allWidgets() for t in widget_texts(w) if t)


def create_vault(controller: AppController, qtbot: Any, passphrase: str) -> str:
    """Walk the first-run window; returns the recovery key shown."""
    controller.start()
    window = controller.first_run
    assert window is not None and window.isVisible()
    window.clinician.setText("Dr. Test")
    qtbot.keyClicks(window.form.passphrase, passphrase)
    qtbot.keyClicks(window.form.confirm, passphrase)
    assert window.create_button.isEnabled()
    qtbot.mouseClick(window.create_button, LEFT)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == 1, timeout=15_000)
    key = window.recovery_key
    assert key.startswith("TACIT-")
    assert not window.continue_button.isEnabled()  # not before "I have stored it"
    window.stored.setChecked(True)
    qtbot.mouseClick(window.continue_button, LEFT)
    assert controller.first_run is None
    assert controller.main_window is not None
    return key


def main_window(controller: AppController) -> MainWindow:
    window = controller.main_window
    assert window is not None
    return window


def activate(qtbot: Any, window: QWidget) -> None:
    """Make ``window`` the active window (window shortcuts need it)."""
    with qtbot.waitActive(window, timeout=5000):
        window.activateWindow()


def add_client(window: MainWindow, qtbot: Any, name: str) -> None:
    dialog = window.add_client()
    qtbot.keyClicks(dialog.name, name)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Save), LEFT)
    assert not dialog.isVisible()


def new_note(window: MainWindow, qtbot: Any, template_id: str) -> NewNoteDialog:
    dialog = window.new_note()
    assert dialog is not None
    dialog.select_template(template_id)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), LEFT)
    assert not dialog.isVisible()
    return dialog


def unlock(controller: AppController, qtbot: Any, passphrase: str) -> MainWindow:
    window = controller.unlock_window
    assert window.isVisible()
    qtbot.keyClicks(window.passphrase, passphrase)
    qtbot.keyClick(window.passphrase, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: controller.main_window is not None, timeout=15_000)
    return main_window(controller)


def _needs_name(widget: QWidget) -> bool:
    if isinstance(widget, QHeaderView) or not widget.isVisibleTo(widget.window()):
        return False
    parent = widget.parentWidget()
    if isinstance(parent, QAbstractSpinBox | QComboBox):  # their inner line edit
        return False
    while parent is not None:  # a combo box's popup list
        if isinstance(parent, QComboBox):
            return False
        parent = parent.parentWidget()
    if not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
        return False
    return isinstance(
        widget, QLineEdit | QPlainTextEdit | QTextEdit | QAbstractButton | QAbstractItemView
        | QComboBox | QAbstractSpinBox,
    )  # fmt: skip


def check_names(window: QWidget) -> int:
    """Every focusable control under ``window`` has an accessible name; returns how many
    were checked."""
    checked = 0
    for widget in window.findChildren(QWidget):
        if _needs_name(widget):
            name = QAccessible.queryAccessibleInterface(widget).text(QAccessible.Text.Name)
            assert name.strip(), f"{type(widget).__name__} {widget.objectName()} has no name"
            checked += 1
    return checked
