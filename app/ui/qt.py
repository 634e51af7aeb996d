"""The one module of Tacit that imports the Qt bindings (PySide6).

Every other module of ``app.ui`` imports Qt names from here, so the binding can be
swapped or pinned in one place and the layering stays checkable (``rg PySide6 app`` must
find this file only; the vault and the sync core never import Qt at all).

Invariant: this module only re-exports and creates no Qt object. Its one piece of
behaviour is ``_keep_none_alive``, a guarded workaround for a PySide6 6.12.0 bug on
CPython < 3.12 (see there); it does nothing on other versions.
"""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import (
    SLOT,
    QAbstractListModel,
    QAbstractNativeEventFilter,
    QAbstractTableModel,
    QByteArray,
    QCoreApplication,
    QDate,
    QDateTime,
    QElapsedTimer,
    QEvent,
    QLibraryInfo,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRunnable,
    QSettings,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtDBus import QDBusConnection
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAccessible,
    QAction,
    QBrush,
    QClipboard,
    QCloseEvent,
    QColor,
    QFont,
    QFontDatabase,
    QGuiApplication,
    QHideEvent,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPixmap,
    QTextDocument,
)
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QStatusBar,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTextEdit,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


def _keep_none_alive() -> None:
    """PySide6 6.12.0 on CPython 3.11 drops one reference to ``None`` on every call of a
    void method (setText, start, ...): it treats ``None`` as immortal, which it is only
    from CPython 3.12. A running app would free ``None`` after a few thousand calls and
    abort ("none_dealloc"). Until the dependency pin excludes 6.12.0, give ``None`` a
    reference count no session can exhaust (2**40). ``ob_refcnt`` is the first field of
    every object in release builds of CPython."""
    if sys.version_info >= (3, 12) or not PySide6.__version__.startswith("6.12."):
        return
    import ctypes

    refcount = ctypes.c_ssize_t.from_address(id(None))
    if refcount.value < (1 << 39):
        refcount.value += 1 << 40


_keep_none_alive()

__all__ = [
    "SLOT",
    "QAbstractButton",
    "QAbstractItemView",
    "QAbstractListModel",
    "QAbstractNativeEventFilter",
    "QAbstractSpinBox",
    "QAbstractTableModel",
    "QAbstractTextDocumentLayout",
    "QAccessible",
    "QAction",
    "QApplication",
    "QBrush",
    "QButtonGroup",
    "QByteArray",
    "QCheckBox",
    "QClipboard",
    "QCloseEvent",
    "QColor",
    "QComboBox",
    "QCoreApplication",
    "QDBusConnection",
    "QDate",
    "QDateEdit",
    "QDateTime",
    "QDateTimeEdit",
    "QDialog",
    "QDialogButtonBox",
    "QElapsedTimer",
    "QEvent",
    "QFileDialog",
    "QFont",
    "QFontDatabase",
    "QFormLayout",
    "QFrame",
    "QGridLayout",
    "QGroupBox",
    "QGuiApplication",
    "QHBoxLayout",
    "QHeaderView",
    "QHideEvent",
    "QIcon",
    "QKeyEvent",
    "QKeySequence",
    "QLabel",
    "QLayout",
    "QLibraryInfo",
    "QLineEdit",
    "QListView",
    "QListWidget",
    "QListWidgetItem",
    "QMainWindow",
    "QMenu",
    "QMessageBox",
    "QMimeData",
    "QModelIndex",
    "QObject",
    "QPainter",
    "QPalette",
    "QPersistentModelIndex",
    "QPixmap",
    "QPlainTextEdit",
    "QPoint",
    "QPrintDialog",
    "QPrinter",
    "QProgressBar",
    "QPushButton",
    "QRadioButton",
    "QRect",
    "QRunnable",
    "QSettings",
    "QSize",
    "QSizePolicy",
    "QSpinBox",
    "QSplitter",
    "QStackedWidget",
    "QStatusBar",
    "QStyle",
    "QStyleOptionViewItem",
    "QStyledItemDelegate",
    "QTableView",
    "QTableWidget",
    "QTableWidgetItem",
    "QTextDocument",
    "QTextEdit",
    "QThreadPool",
    "QTimer",
    "QToolBar",
    "QToolButton",
    "QVBoxLayout",
    "QWidget",
    "Qt",
    "Signal",
    "Slot",
]
