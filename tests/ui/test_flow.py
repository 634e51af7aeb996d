"""The acceptance path of issue 3, driven through the real windows:
first run → create vault → add client → new SOAP note → type → autosave → search finds
it → idle timeout (injected clock) locks: main window gone, no widget holds the note text
or the client name → unlock restores the note."""

from __future__ import annotations

from pathlib import Path

from app.ui.controller import AppController
from app.ui.dialogs import NewNoteDialog
from app.ui.editor import AUTOSAVE_MS
from app.ui.history import MODE_TEXT
from app.ui.mainwindow import PAGE_NOTES, PAGE_SEARCH, MainWindow
from app.ui.models import ID_ROLE
from app.ui.qt import QApplication, QSettings, Qt
from app.ui.search import HTML_ROLE
from app.vault.clock import ManualClock
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import flush_deletes
from tests.ui.helpers import activate, add_client, create_vault, live_texts, new_note, unlock

CLIENT = "Zebulon Quixotic-Canary"
NOTE_WORDS = "Reports sleeping better since the marigoldcanary exercise"


def test_day_of_charting_then_idle_lock_and_unlock(
    qtbot, controller: AppController, new_service: VaultService, clock: ManualClock
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert isinstance(main, MainWindow)
    assert new_service.is_unlocked and new_service.exists()

    add_client(main, qtbot, CLIENT)
    assert main.client_pane.current_client_id is not None
    assert main.client_pane.model.rowCount() == 1

    new_note(main, qtbot, "soap")
    editor = main.editor
    assert editor.note_id is not None
    note_id = editor.note_id
    assert "## Subjective" in editor.body.toPlainText()
    assert main.notes_model.rowCount() == 1
    assert main.notes_model.index(0, 3).data() == "SOAP"
    assert main.notes_model.index(0, 4).data() == "—"

    qtbot.keyClicks(editor.body, NOTE_WORDS)
    assert editor.dirty
    assert editor.autosave_timer.isActive()
    assert NOTE_WORDS not in new_service.get_note(note_id).body  # not yet: debounced
    qtbot.waitUntil(lambda: not editor.dirty, timeout=AUTOSAVE_MS + 3000)
    saved = new_service.get_note(note_id)
    assert NOTE_WORDS in saved.body
    assert "automatically" in editor.status.text()

    # Window titles never carry client data.
    assert all(CLIENT not in w.windowTitle() for w in QApplication.topLevelWidgets())

    # Search as you type finds it, highlighted; Enter opens it.
    editor.close_note()
    assert editor.note_id is None
    qtbot.keyClicks(main.search_field, "marigold")
    assert main.center.currentIndex() == PAGE_SEARCH
    qtbot.waitUntil(lambda: main.search_model.rowCount() == 1, timeout=5000)
    html = main.search_model.index(0, 0).data(HTML_ROLE)
    assert '<b class="hit">marigoldcanary</b>' in html
    assert CLIENT in html
    qtbot.keyClick(main.search_field, Qt.Key.Key_Return)
    assert editor.note_id == note_id
    assert NOTE_WORDS in editor.body.toPlainText()
    assert main.center.currentIndex() == PAGE_NOTES
    assert main.search_field.text() == ""

    # Idle: the injected clock passes the 5-minute timeout; the poll locks.
    destroyed: list[bool] = []
    main.destroyed.connect(lambda *_: destroyed.append(True))
    clock.advance(4 * 60)
    controller.idle.poll()
    assert controller.main_window is main  # not yet
    clock.advance(61)
    controller.idle.poll()
    assert not new_service.is_unlocked
    assert controller.main_window is None
    assert controller.unlock_window.isVisible()
    texts = live_texts()  # before deferred deletion: everything was already wiped
    assert NOTE_WORDS not in texts and "marigold" not in texts
    assert CLIENT not in texts
    flush_deletes()
    assert destroyed == [True]  # the window that showed the note is gone
    # Only the spare main window for the next unlock may exist: empty and hidden.
    others = [w for w in QApplication.allWidgets() if isinstance(w, MainWindow)]
    assert all(not w.isVisible() and w.client_pane.model.rowCount() == 0 for w in others)
    texts = live_texts()
    assert NOTE_WORDS not in texts and CLIENT not in texts

    # Unlock restores the note.
    main = unlock(controller, qtbot, PASSPHRASE)
    assert main.client_pane.current_client_id is not None
    assert main.notes_model.rowCount() == 1
    main.notes_view.selectRow(0)
    assert main.editor.note_id == note_id
    assert NOTE_WORDS in main.editor.body.toPlainText()


def test_typing_is_saved_on_lock_even_before_the_debounce(
    qtbot, controller: AppController, new_service: VaultService
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    new_note(main, qtbot, "dap")
    note_id = main.editor.note_id
    assert note_id is not None
    qtbot.keyClicks(main.editor.body, "typed just before Ctrl+L")
    assert main.editor.autosave_timer.isActive()
    activate(qtbot, main)
    qtbot.keyClick(main.editor.body, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert controller.main_window is None and not new_service.is_unlocked
    unlock(controller, qtbot, PASSPHRASE)
    assert "typed just before Ctrl+L" in new_service.get_note(note_id).body


def test_ctrl_s_saves_now_and_history_shows_old_text(
    qtbot, controller: AppController, new_service: VaultService
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    new_note(main, qtbot, "free")
    note_id = main.editor.note_id
    assert note_id is not None
    qtbot.keyClicks(main.editor.body, "first version")
    activate(qtbot, main)
    qtbot.keyClick(main.editor.body, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not main.editor.dirty and not main.editor.autosave_timer.isActive()
    assert new_service.get_note(note_id).body.endswith("first version")
    main.editor.body.selectAll()
    qtbot.keyClicks(main.editor.body, "second version")
    main.save_now()
    history = main.show_history()
    assert history is not None
    revisions = [history.list.item(i).text() for i in range(history.list.count())]
    assert len(revisions) == 3 and "(current)" in revisions[0]
    assert history.viewer.isReadOnly()
    history.set_mode(MODE_TEXT)
    assert history.viewer.toPlainText() == "second version"
    history.list.setCurrentRow(1)
    assert history.viewer.toPlainText().endswith("first version")
    # The history window is closed and emptied by a lock.
    controller.lock()
    assert history.list.count() == 0 and history.viewer.toPlainText() == ""


def test_process_notes_are_marked(
    qtbot, controller: AppController, new_service: VaultService
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    dialog = main.new_note()
    assert dialog is not None
    dialog.select_template("process")
    sections = [dialog.sections.item(i).text() for i in range(dialog.sections.count())]
    assert sections == ["Process", "Impressions", "Countertransference", "Hypotheses to explore"]
    assert not dialog.process_notice.isHidden()
    dialog.select_template("soap")
    assert dialog.process_notice.isHidden()
    dialog.reject()
    new_note(main, qtbot, "process")
    assert main.editor.banner.isVisibleTo(main)
    assert main.editor.kind.text() == "Process note"
    process = main.notes.process_model  # in their own section, not in the record list
    qtbot.waitUntil(lambda: process.rowCount() == 1, timeout=5000)
    assert main.notes_model.rowCount() == 0
    assert process.index(0, 0).data(ID_ROLE) == main.editor.note_id
    assert process.index(0, 2).data() == "Process note"
    assert process.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) is not None


def test_settings_never_hold_identifying_data(
    qtbot,
    controller: AppController,
    new_service: VaultService,
    qsettings: QSettings,
    settings_path: Path,
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    new_note(main, qtbot, "soap")
    qtbot.keyClicks(main.editor.body, NOTE_WORDS)
    qtbot.keyClicks(main.search_field, "marigold")
    qtbot.waitUntil(lambda: main.search_model.rowCount() == 1, timeout=5000)
    dialog = controller.open_settings()
    assert dialog is not None
    dialog.idle.setValue(12)
    dialog.accept()
    controller.lock()
    qsettings.sync()
    raw = settings_path.read_bytes()
    assert b"idle_minutes=12" in raw
    for canary in (CLIENT, "Quixotic", "marigold", NOTE_WORDS, str(new_service.paths.directory)):
        assert canary.encode() not in raw
    from app.ui.prefs import ALLOWED_KEYS

    assert set(qsettings.allKeys()) <= ALLOWED_KEYS
    # The UI wrote no other file: only the vault's own files exist besides settings.
    vault_files = {p.name for p in new_service.paths.directory.iterdir()}
    assert vault_files <= {"vault.header", "vault.db", "vault.db-wal", "vault.db-shm"}


def test_clients_filter_edit_discharge_and_shortcuts(
    qtbot, controller: AppController, new_service: VaultService
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    for name in ("Ada Lovelace", "Grace Hopper", "Alan Turing"):
        add_client(main, qtbot, name)
    pane = main.client_pane
    qtbot.keyClicks(pane.filter, "ho")  # filter as you type
    assert [pane.model.index(r).data() for r in range(pane.model.rowCount())] == ["Grace Hopper"]
    pane.filter.clear()
    pane.select_client(new_service.list_clients(query="Ada")[0].id)
    dialog = main.edit_client()
    assert dialog is not None and dialog.name.text() == "Ada Lovelace"
    assert "Ada" not in dialog.windowTitle()
    dialog.name.setText("Ada King")
    dialog.dob.setText("not a date")
    dialog.accept()
    assert dialog.isVisible() and "YYYY-MM-DD" in dialog.error.text()  # kept open
    dialog.dob.setText("1815-12-10")
    dialog.accept()
    assert not dialog.isVisible()
    assert new_service.list_clients(query="Ada")[0].dob == "1815-12-10"
    box = main.discharge_client()
    assert box is not None
    box.done(int(box.StandardButton.Yes))
    assert new_service.list_clients(query="Ada")[0].status == "discharged"
    assert pane.model.row_of(new_service.list_clients(query="Ada")[0].id) == -1
    assert pane.current_client_id is None and main.notes_model.rowCount() == 0

    activate(qtbot, main)
    qtbot.keyClick(main.notes_view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert main.search_field.hasFocus()
    qtbot.keyClicks(main.search_field, "x")
    assert main.search_status.text() == "Keep typing…" and not main.search.timer.isActive()
    main.search_field.clear()
    assert main.new_note() is None  # no client selected: nothing opens
    pane.select_first()
    qtbot.keyClick(main.notes_view, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    dialogs = [w for w in main.findChildren(NewNoteDialog) if w.isVisible()]
    assert len(dialogs) == 1
    dialogs[0].reject()


def test_signed_notes_are_read_only_and_views_are_audited(
    qtbot, controller: AppController, new_service: VaultService
) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, CLIENT)
    new_note(main, qtbot, "soap")
    note_id = main.editor.note_id
    assert note_id is not None
    qtbot.keyClicks(main.editor.body, "final words")
    main.save_now()
    main.editor.close_note()
    new_service.sign_note(note_id)
    assert main.notes_model.index(0, 4).data() == "Signed"  # refreshed by the event
    main.notes_view.selectRow(0)
    editor = main.editor
    assert editor.note_id == note_id and editor.read_only
    assert editor.body.isReadOnly() and editor.title.isReadOnly()
    assert not editor.save_button.isEnabled() and editor.signed_banner.isVisibleTo(main)
    qtbot.keyClicks(editor.body, "tampering")
    assert not editor.dirty and "tampering" not in editor.body.toPlainText()
    controller.lock()  # flushing a signed note must not fail or change it
    unlock(controller, qtbot, PASSPHRASE)
    assert "final words" in new_service.get_note(note_id, record_view=False).body

    controller.flush_audit()
    actions = [(e.action, e.record_type) for e in new_service.audit_entries()]
    assert ("view", "note") in actions  # opening the note in the editor
    assert ("list", "note") in actions  # choosing the client
    assert ("list", "client") in actions  # the client list at unlock
    views = new_service.audit_entries(action="view", record_id=note_id)
    assert 1 <= len(views) <= 3  # one per opening, not one per autosave
