"""The pieces on their own: paging model, search (escaping, stale results), the
background runner, preferences, theme, accessibility names, import hygiene."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.errors import TacitError, VaultLockedError
from app.ui.controller import AppController
from app.ui.models import PAGE_SIZE, ClientListModel, NoteListModel
from app.ui.ops import OpRunner, UnexpectedError
from app.ui.prefs import ALLOWED_KEYS, Preferences, PreferenceStore
from app.ui.qt import (
    QApplication,
    QLineEdit,
    QPalette,
    QSettings,
    Qt,
)
from app.ui.search import SearchController, SearchModel, snippet_html
from app.ui.theme import is_dark
from app.vault.models import MARK_END, MARK_START
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.helpers import add_client, check_names, create_vault, new_note


def test_note_model_pages_through_the_service(qapp: QApplication, service: VaultService) -> None:
    client = service.add_client("Paging Client")
    other = service.add_client("Other Client")
    service.create_note(other.id, "soap", body="not listed")
    total = PAGE_SIZE + 37
    for day in range(total):
        service.create_note(
            client.id, "process" if day == 5 else "soap",
            session_date=f"2025-{1 + day // 28:02d}-{1 + day % 28:02d}",
        )  # fmt: skip
    model = NoteListModel(service)
    model.set_client(client.id)
    assert model.total == total
    assert model.rowCount() == PAGE_SIZE  # one page, not everything
    assert model.canFetchMore()
    dates = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert dates == sorted(dates, reverse=True)  # newest first
    model.fetchMore()
    assert model.rowCount() == total and not model.canFetchMore()
    process_row = model.row_of(next(n.id for n in service.list_notes(client.id, limit=total)
                                    if n.kind == "psychotherapy"))  # fmt: skip
    assert model.index(process_row, 2).data() == "Process note"
    assert model.index(process_row, 1).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert model.index(0, 4).data() == "—"
    model.clear()
    assert model.rowCount() == 0 and not model.canFetchMore()


def test_client_model_filters_through_the_service(
    qapp: QApplication, service: VaultService
) -> None:
    for name in ("Ann Able", "Bob Baker", "Cy Able"):
        service.add_client(name)
    service.discharge_client(service.list_clients(query="Cy")[0].id)
    model = ClientListModel(service)
    model.load()
    assert model.rowCount() == 2
    model.load(query="able")
    assert [model.index(r).data() for r in range(model.rowCount())] == ["Ann Able"]
    model.load(include_discharged=True)
    assert model.rowCount() == 2
    assert model.index(1).data() == "Cy Able (discharged)"


def test_snippets_are_escaped_before_highlighting() -> None:
    snippet = f"<script>x</script> & {MARK_START}canary{MARK_END}"
    assert snippet_html(snippet) == (
        '&lt;script&gt;x&lt;/script&gt; &amp; <b class="hit">canary</b>'
    )


def test_stale_search_results_are_dropped(qtbot, service: VaultService) -> None:
    client = service.add_client("Search Client")
    service.create_note(client.id, "free", body="alpha words here")
    service.create_note(client.id, "free", body="beta words here")
    runner = OpRunner()
    model = SearchModel()
    search = SearchController(service, runner, model)
    search.set_query("alpha")
    search.run_now()
    search.set_query("beta")  # typed on before the first answer came back
    search.run_now()
    with qtbot.waitSignal(search.results_ready, timeout=5000):
        pass
    qtbot.waitUntil(lambda: runner.active == 0, timeout=5000)
    assert search.dropped == 1
    assert model.rowCount() == 1
    assert "beta" in model.index(0).data()


def test_runner_delivers_on_the_ui_thread_and_hides_unexpected_errors(qtbot) -> None:
    runner = OpRunner()
    seen: list[object] = []
    ui_thread = threading.get_ident()

    def work() -> int:
        assert threading.get_ident() != ui_thread
        return 42

    runner.run(work, lambda r: seen.append((r, threading.get_ident() == ui_thread)), seen.append)
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=5000)
    assert seen == [(42, True)]

    def boom() -> None:
        raise RuntimeError("note text must not leak: canary")

    errors: list[TacitError] = []
    runner.run(boom, seen.append, errors.append)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5000)
    assert isinstance(errors[0], UnexpectedError) and "canary" not in errors[0].message

    def locked() -> None:
        raise VaultLockedError()

    runner.run(locked, seen.append, errors.append)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5000)
    assert errors[1].code == "vault_locked"


def test_cancel_all_drops_results(qtbot) -> None:
    runner = OpRunner()
    release = threading.Event()
    seen: list[object] = []
    runner.run(lambda: release.wait(5), seen.append, seen.append)
    runner.cancel_all()  # e.g. the vault locked meanwhile
    release.set()
    assert runner.wait(5000)
    qtbot.wait(50)
    assert seen == []


def test_preferences_are_validated_and_whitelisted(tmp_path: Path, qapp: QApplication) -> None:
    settings = QSettings(str(tmp_path / "p.ini"), QSettings.Format.IniFormat)
    store = PreferenceStore(settings)
    assert store.load() == Preferences()  # defaults: 5 min, no minimize lock, 30 s, system
    store.save(Preferences(idle_minutes=90, clipboard_seconds=1, theme="neon"))
    loaded = store.load()
    assert (loaded.idle_minutes, loaded.clipboard_seconds, loaded.theme) == (60, 5, "system")
    settings.setValue("security/idle_minutes", "garbage")
    assert store.load().idle_minutes == 5
    assert set(settings.allKeys()) <= ALLOWED_KEYS
    with pytest.raises(ValueError, match="unknown preference"):
        store._write("recent/client", "x")


def test_settings_dialog_applies_everything(
    qtbot, controller: AppController, new_service: VaultService, qapp: QApplication
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    dialog = controller.open_settings()
    assert dialog is not None
    assert dialog.idle.value() == 5 and dialog.clipboard.value() == 30
    assert (dialog.idle.minimum(), dialog.idle.maximum()) == (1, 60)
    dialog.idle.setValue(15)
    dialog.clipboard.setValue(12)
    dialog.minimize.setChecked(True)
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    dialog.accept()
    assert new_service.idle_timeout == 15 * 60
    assert controller.clipboard.delay_ms == 12_000
    assert controller.prefs.lock_on_minimize
    assert is_dark(qapp.palette())
    controller.apply_preferences(Preferences(theme="light"))
    assert not is_dark(qapp.palette())
    assert qapp.palette().color(QPalette.ColorRole.Window).isValid()
    controller.apply_preferences(Preferences())  # back to following the system


def test_every_control_is_named_for_screen_readers(qtbot, controller: AppController) -> None:
    controller.start()
    assert controller.first_run is not None
    assert check_names(controller.first_run) >= 4
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, "Named Client")
    new_note(main, qtbot, "soap")
    assert check_names(main) >= 12
    assert main.windowTitle() == "Tacit"
    controller.lock()
    assert check_names(controller.unlock_window) >= 3


def test_importing_app_ui_loads_no_qt() -> None:
    code = "import sys, app.ui; print('PySide6' in sys.modules, callable(app.ui.main))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.split()
    assert out == ["False", "True"]


def test_only_the_qt_module_imports_pyside() -> None:
    ui = Path(__file__).resolve().parents[2] / "app" / "ui"
    importers = sorted(
        {
            p.name
            for p in ui.glob("*.py")
            for line in p.read_text().splitlines()
            if line.lstrip().startswith(("from PySide6", "import PySide6", "import shiboken"))
        }
    )
    assert importers == ["qt.py"]


def test_none_survives_many_void_qt_calls(qapp: QApplication) -> None:
    # PySide6 6.12.0 on CPython 3.11 drops a reference to None per void call; app.ui.qt
    # guards against it. Without the guard this loop frees None and aborts the process.
    label = QLineEdit()
    for _ in range(100_000):
        label.setText("x")
    assert sys.getrefcount(None) > 10_000


def test_search_waits_for_a_useful_query() -> None:
    assert not SearchController.searchable("t")
    assert not SearchController.searchable("th")  # a prefix of nearly everything
    assert SearchController.searchable("the")
    assert SearchController.searchable("OT ")  # a complete short word
    assert SearchController.searchable('"OT"')
    assert not SearchController.searchable('"O"')


def test_autosave_waits_while_a_search_holds_the_vault(
    qtbot, qapp: QApplication, service: VaultService
) -> None:
    from app.ui.clipboard import ClipboardGuard
    from app.ui.editor import AUTOSAVE_MS, BUSY_RETRY_MS, NoteEditor

    client = service.add_client("Busy Client")
    note = service.create_note(client.id, "free", body="start")
    busy = [True]
    editor = NoteEditor(service, ClipboardGuard(qapp.clipboard()), vault_busy=lambda: busy[0])
    qtbot.addWidget(editor)
    editor.open_note(note.id)
    editor.body.setPlainText("typed while searching")
    assert editor.autosave() is False and editor.dirty
    assert editor.autosave_timer.interval() == BUSY_RETRY_MS
    busy[0] = False
    assert editor.autosave() is True and not editor.dirty
    assert editor.autosave_timer.interval() == AUTOSAVE_MS
    assert service.get_note(note.id).body == "typed while searching"
    editor.body.setPlainText("explicit")
    busy[0] = True
    assert editor.save_now() is True  # explicit saves never wait
    assert service.get_note(note.id).body == "explicit"
