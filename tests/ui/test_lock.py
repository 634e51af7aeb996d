"""Lock triggers (sleep, screen lock, minimize, session hooks) and the concealed,
self-clearing clipboard."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.ui.clipboard import (
    MAC_CONCEALED,
    PASSWORD_MANAGER_HINT,
    WINDOWS_EXCLUDE,
    WINDOWS_HISTORY,
    ClipboardGuard,
)
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.prefs import Preferences
from app.ui.qt import QApplication, QClipboard
from app.ui.session import SessionWatcher, login1_session_path
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import flush_deletes
from tests.ui.helpers import LEFT, add_client, create_vault, live_texts, new_note

CLIENT = "Octavia Sleepwell"
SECRET = "the canary sang at midnight"


@pytest.fixture
def charting(qtbot, controller: AppController) -> MainWindow:
    """An unlocked app with a client and an open note holding SECRET."""
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    new_note(main, qtbot, "soap")
    main.editor.body.setPlainText(SECRET)
    return main


def test_prepare_for_sleep_locks(
    charting: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    note_id = charting.editor.note_id
    assert note_id is not None
    controller.session.on_prepare_for_sleep(False)  # resuming: nothing happens
    assert new_service.is_unlocked and controller.main_window is charting
    controller.session.on_prepare_for_sleep(True)
    assert not new_service.is_unlocked
    assert controller.main_window is None
    assert controller.unlock_window.isVisible()
    assert SECRET not in live_texts() and CLIENT not in live_texts()
    new_service.unlock(Passphrase.from_str(PASSPHRASE))
    assert new_service.get_note(note_id).body == SECRET  # the draft was saved first
    new_service.lock()


def test_screen_lock_signal_locks(
    charting: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    controller.session.on_screensaver_active(False)
    assert new_service.is_unlocked
    controller.session.on_screensaver_active(True)
    assert not new_service.is_unlocked and controller.main_window is None


def test_lock_on_minimize_only_when_enabled(
    qtbot, charting: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    charting.showMinimized()
    qtbot.waitUntil(charting.isMinimized, timeout=2000)
    assert new_service.is_unlocked  # off by default
    charting.showNormal()
    qtbot.waitUntil(lambda: not charting.isMinimized(), timeout=2000)
    controller.apply_preferences(Preferences(lock_on_minimize=True))
    charting.showMinimized()
    qtbot.waitUntil(lambda: not new_service.is_unlocked, timeout=2000)
    assert controller.main_window is None


def test_lock_empties_the_record_integrity_windows(
    qtbot, charting: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    """Signed note with an addendum, the history diff, an addendum being written and the
    audit viewer: a lock closes them all and no widget keeps their text."""
    note_id = charting.editor.note_id
    assert note_id is not None
    box = charting.signing.sign()
    assert box is not None
    qtbot.mouseClick(box.sign_button, LEFT)
    qtbot.waitUntil(lambda: charting.editor.read_only, timeout=5000)
    new_service.add_addendum(note_id, "STORED-ADDENDUM-CANARY")
    charting.editor.reload()
    assert "STORED-ADDENDUM-CANARY" in charting.editor.addenda_view.toPlainText()
    history = charting.show_history()
    assert history is not None and SECRET in history.viewer.toPlainText()
    draft = charting.signing.add_addendum()
    assert draft is not None
    draft.text.setPlainText("DRAFT-ADDENDUM-CANARY")
    audit = charting.show_audit()
    qtbot.waitUntil(lambda: audit.model.rowCount() > 0, timeout=5000)
    audit.select_client(charting.client_pane.current_client_id)
    qtbot.waitUntil(lambda: not audit.model.loading, timeout=5000)
    canaries = (SECRET, CLIENT, note_id, "STORED-ADDENDUM-CANARY", "DRAFT-ADDENDUM-CANARY")
    before = live_texts()
    assert all(canary in before for canary in canaries)
    gone: list[str] = []
    for window, name in ((history, "history"), (draft, "addendum"), (audit, "audit")):
        window.destroyed.connect(lambda *_a, n=name: gone.append(n))

    controller.lock()
    texts = live_texts()  # before deferred deletion: already wiped
    for canary in canaries:
        assert canary not in texts
    assert audit.model.rowCount() == 0 and audit.client.count() == 0
    flush_deletes()
    assert sorted(gone) == ["addendum", "audit", "history"]
    assert not any(canary in live_texts() for canary in canaries)
    new_service.unlock(Passphrase.from_str(PASSPHRASE))
    assert new_service.addenda(note_id)[0].body == "STORED-ADDENDUM-CANARY"  # no draft stored
    assert len(new_service.addenda(note_id)) == 1
    new_service.lock()


def test_lock_twice_and_while_locked_is_harmless(
    charting: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    controller.lock()
    controller.lock()
    controller.session.on_prepare_for_sleep(True)
    assert not new_service.is_unlocked and controller.unlock_window.isVisible()


def test_copied_note_text_is_concealed_and_cleared_after_the_delay(
    qtbot, charting: MainWindow, controller: AppController
) -> None:
    clipboard = QApplication.clipboard()
    guard = controller.clipboard
    assert guard.delay_ms == 30_000  # default
    guard.delay_ms = 200
    charting.editor.body.selectAll()
    charting.editor.body.copy()
    mime = clipboard.mimeData(QClipboard.Mode.Clipboard)
    assert mime.text() == SECRET
    assert bytes(mime.data(PASSWORD_MANAGER_HINT).data()) == b"secret"
    assert mime.hasFormat(WINDOWS_EXCLUDE)
    assert bytes(mime.data(WINDOWS_HISTORY).data()) == b"\x00\x00\x00\x00"
    assert mime.hasFormat(MAC_CONCEALED)
    assert guard.timer.isActive()
    qtbot.waitUntil(lambda: clipboard.text() == "", timeout=3000)
    assert not guard.pending


def test_clipboard_left_alone_when_the_user_copied_something_else(
    qapp: QApplication, qtbot
) -> None:
    clipboard = QApplication.clipboard()
    guard = ClipboardGuard(clipboard, 30_000)
    guard.copy("recovery-ish secret")
    assert clipboard.text() == "recovery-ish secret"
    clipboard.setText("something from another app")
    guard.timer.timeout.emit()  # the delay elapses
    assert clipboard.text() == "something from another app"
    guard.copy("again")
    assert guard.clear_if_ours() is True
    assert clipboard.text() == ""


def test_lock_clears_our_clipboard(charting: MainWindow, controller: AppController) -> None:
    charting.editor.body.selectAll()
    charting.editor.body.copy()
    assert QApplication.clipboard().text() == SECRET
    controller.lock()
    assert QApplication.clipboard().text() == ""


def test_login1_session_path_escaping() -> None:
    assert login1_session_path("2") == "/org/freedesktop/login1/session/_32"
    assert login1_session_path("c12") == "/org/freedesktop/login1/session/c12"


def test_hooks_are_a_no_op_without_a_bus(qapp: QApplication, monkeypatch) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    watcher = SessionWatcher()
    assert isinstance(watcher.install(), list)  # never raises


_DBUS_PROBE = textwrap.dedent(
    """
    import subprocess, sys
    from app.ui.qt import QCoreApplication, QTimer
    from app.ui.session import SessionWatcher
    app = QCoreApplication(sys.argv)
    watcher = SessionWatcher()
    hooks = watcher.install()
    got = []
    watcher.lock_requested.connect(lambda reason: (got.append(reason.value), app.quit()))
    def send():
        subprocess.run(["dbus-send", "--session", "--type=signal", "/org/freedesktop/ScreenSaver",
                        "org.freedesktop.ScreenSaver.ActiveChanged", "boolean:true"], check=True)
    QTimer.singleShot(100, send)
    QTimer.singleShot(5000, app.quit)
    app.exec()
    print(",".join(hooks) + "|" + ",".join(got))
    """
)


@pytest.mark.skipif(
    not (shutil.which("dbus-run-session") and shutil.which("dbus-send")),
    reason="needs dbus-run-session and dbus-send",
)
def test_real_screensaver_signal_over_a_private_session_bus(tmp_path: Path) -> None:
    script = tmp_path / "probe.py"
    script.write_text(_DBUS_PROBE)
    result = subprocess.run(
        ["dbus-run-session", "--", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        check=False,
    )
    hooks, _, got = result.stdout.strip().rpartition("\n")[2].partition("|")
    assert "org.freedesktop.ScreenSaver:ActiveChanged" in hooks, result.stderr[-2000:]
    assert got == "screen_lock"
