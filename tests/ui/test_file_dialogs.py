"""Every file dialog of the app leaves no path behind in Qt's own settings file: folder
and file names can name a client (one folder per client in an import; an export named
after one), and docs/SECURITY.md keeps client data inside the vault."""

from __future__ import annotations

import re
from pathlib import Path

from app.ui.qt import QApplication, QEvent, QSettings, QWidget
from app.ui.widgets import private_file_dialog

UI = Path(__file__).resolve().parents[2] / "app" / "ui"


def _flush_deletes() -> None:
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()


def test_a_private_file_dialog_puts_back_what_qt_remembered(qtbot, tmp_path: Path) -> None:
    fmt, scope = QSettings.Format.NativeFormat, QSettings.Scope.UserScope
    original = Path(QSettings(fmt, scope, "QtProject").fileName()).parent
    qt_dir = tmp_path / "qt-config"
    QSettings.setPath(fmt, scope, str(qt_dir))
    try:
        QSettings(fmt, scope, "QtProject").setValue("FileDialog/lastVisited", "file:///before")
        folder = tmp_path / "Client Canary-Picker"
        folder.mkdir()
        (folder / "notes canary-picker.md").write_text("x")
        parent = QWidget()
        qtbot.addWidget(parent)
        dialog = private_file_dialog(parent, "Tacit — test", str(folder))
        dialog.selectFile(str(folder / "notes canary-picker.md"))
        dialog.open()
        dialog.accept()
        _flush_deletes()
        qtbot.waitUntil(lambda: "before" in (qt_dir / "QtProject.conf").read_text(), timeout=3000)
        text = (qt_dir / "QtProject.conf").read_text()
        assert "anary" not in text and str(tmp_path) not in text
    finally:
        QSettings.setPath(fmt, scope, str(original))


def test_no_file_dialog_is_made_any_other_way() -> None:
    makers = {
        path.name
        for path in UI.glob("*.py")
        if path.name not in ("qt.py", "widgets.py")
        and re.search(r"QFileDialog\(|QFileDialog\.get", path.read_text())
    }
    assert makers == set(), "use app.ui.widgets.private_file_dialog"
