"""Issue 4 in the app: sign & lock from the editor, addenda, verify, revision diffs, the
psychotherapy-notes section, and the pieces they are built from."""

from __future__ import annotations

import pytest

from app.errors import NoteSignedError
from app.ui.controller import AppController
from app.ui.diff import diff_html
from app.ui.history import MODE_CURRENT, MODE_PREVIOUS, MODE_TEXT, HistoryDialog
from app.ui.mainwindow import MainWindow
from app.ui.models import (
    ID_ROLE,
    PAGE_SIZE,
    RECORD,
    NoteListModel,
    ProcessNoteListModel,
)
from app.ui.notespane import PROCESS_HEADING
from app.ui.ops import OpRunner
from app.ui.qt import QApplication, QLabel, QMessageBox, QTextEdit
from app.vault.models import RecordChanged
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.helpers import LEFT, add_client, check_names, create_vault, new_note

CLIENT = "Marisol Signwell"


@pytest.fixture
def main(qtbot, controller: AppController) -> MainWindow:
    """An unlocked app with one client and an open, empty free-text note."""
    create_vault(controller, qtbot, PASSPHRASE)
    window = controller.main_window
    assert window is not None
    add_client(window, qtbot, CLIENT)
    new_note(window, qtbot, "free")
    return window


def sign_open_note(qtbot, main: MainWindow) -> None:
    box = main.signing.sign()
    assert box is not None and box.isVisible()
    qtbot.mouseClick(box.sign_button, LEFT)
    qtbot.waitUntil(lambda: main.editor.read_only and not main.editor.busy, timeout=5000)


def formatted_fragments(view: QTextEdit) -> list[tuple[str, bool, bool]]:
    """(text, struck through, underlined) for every run of text in the view."""
    runs = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            runs.append((fragment.text(), fmt.fontStrikeOut(), fmt.fontUnderline()))
            it += 1
        block = block.next()
    return runs


def test_sign_from_the_editor_then_it_is_read_only_and_verifies(
    qtbot, main: MainWindow, new_service: VaultService
) -> None:
    editor = main.editor
    note_id = editor.note_id
    assert note_id is not None
    assert editor.sign_button.isVisibleTo(main) and not editor.verify_button.isVisibleTo(main)
    assert main.sign_action.isEnabled() and not main.addendum_action.isEnabled()
    qtbot.keyClicks(editor.body, "final words of the session")
    assert editor.dirty

    box = main.signing.sign()  # saves the draft first, then asks
    assert box is not None
    assert "final words" in new_service.get_note(note_id, record_view=False).body
    assert "immutable" in box.informativeText() and "addend" in box.informativeText()
    assert box.windowTitle() == "Tacit — Sign and lock"
    box.reject()  # Cancel: nothing is signed
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=2000)
    assert not new_service.get_note(note_id, record_view=False).signed
    assert not editor.read_only

    main.sign_action.trigger()  # the Note menu asks the same
    box = main.signing.last_box
    assert box is not None and box.isVisible()
    qtbot.mouseClick(box.sign_button, LEFT)
    qtbot.waitUntil(lambda: editor.read_only and not editor.busy, timeout=5000)
    assert new_service.get_note(note_id, record_view=False).signed

    # Read-only everywhere; typing changes nothing; the service refuses edits anyway.
    assert editor.body.isReadOnly() and editor.title.isReadOnly()
    assert editor.session_date.isReadOnly()
    assert not editor.save_button.isEnabled() and not editor.sign_button.isVisibleTo(main)
    assert editor.addendum_button.isVisibleTo(main) and editor.verify_button.isVisibleTo(main)
    assert editor.signed_banner.isVisibleTo(main)
    assert "Signed and locked" in editor.signed_banner.text()
    assert "Dr. Test" in editor.signed_banner.text()
    qtbot.keyClicks(editor.body, " tampering")
    assert not editor.dirty and "tampering" not in editor.body.toPlainText()
    assert not main.sign_action.isEnabled() and main.addendum_action.isEnabled()
    assert main.signing.sign() is None  # already signed: no second signature
    with pytest.raises(NoteSignedError):
        new_service.edit_note(note_id, body="changed")
    qtbot.waitUntil(lambda: main.notes_model.index(0, 4).data() == "Signed", timeout=2000)

    main.verify_action.trigger()
    qtbot.waitUntil(lambda: main.signing.last_verification is not None, timeout=5000)
    verification = main.signing.last_verification
    assert verification is not None and verification.ok
    result_box = main.signing.last_box
    assert isinstance(result_box, QMessageBox) and result_box.text() == "The signature is valid."
    result_box.done(0)
    actions = [e.action for e in new_service.audit_entries(record_id=note_id)]
    assert "sign" in actions and "verify" in actions


def test_verify_reports_a_changed_signed_note(
    qtbot, main: MainWindow, new_service: VaultService
) -> None:
    note_id = main.editor.note_id
    assert note_id is not None
    qtbot.keyClicks(main.editor.body, "as signed")
    sign_open_note(qtbot, main)
    conn = new_service._db.conn  # type: ignore[union-attr]
    conn.execute("DROP TRIGGER notes_signed_no_update")
    conn.execute("UPDATE notes SET body = 'rewritten' WHERE id = ?", (note_id,))
    main.signing.verify()
    qtbot.waitUntil(lambda: main.signing.last_verification is not None, timeout=5000)
    verification = main.signing.last_verification
    assert verification is not None and not verification.ok
    box = main.signing.last_box
    assert box is not None and box.text() == "The signature check failed."
    assert "content changed" in box.informativeText()


def test_addendum_is_shown_below_and_the_original_stays(
    qtbot, main: MainWindow, new_service: VaultService
) -> None:
    editor = main.editor
    note_id = editor.note_id
    assert note_id is not None
    qtbot.keyClicks(editor.body, "Original assessment.")
    assert main.signing.add_addendum() is None  # unsigned: no addenda yet
    sign_open_note(qtbot, main)
    original = new_service.get_note(note_id, record_view=False).body
    assert not editor.addenda_view.isVisibleTo(main)

    dialog = main.signing.add_addendum()
    assert dialog is not None and dialog.isVisible()
    assert check_names(dialog) >= 2
    assert not dialog.add_button.isEnabled()  # nothing written yet
    qtbot.keyClicks(dialog.text, "Correction: <i>two</i> sessions & not one.")
    assert dialog.add_button.isEnabled()
    accepted: list[bool] = []
    dialog.accepted.connect(lambda: accepted.append(True))
    qtbot.mouseClick(dialog.add_button, LEFT)
    qtbot.waitUntil(lambda: editor.addenda_view.isVisibleTo(main), timeout=5000)
    assert accepted == [True]  # closed once signed and stored

    shown = editor.addenda_view.toPlainText()
    assert "Addendum 1" in shown and "Dr. Test" in shown and "✔ Signed" in shown
    assert "Correction: <i>two</i> sessions & not one." in shown  # escaped, not markup
    assert "2026-01-05 09:00 UTC" in shown  # its date
    assert editor.body.toPlainText() == original  # the original, readable and unchanged
    assert new_service.get_note(note_id, record_view=False).body == original
    assert [a.body for a in new_service.addenda(note_id)] == [
        "Correction: <i>two</i> sessions & not one."
    ]
    main.signing.verify()
    qtbot.waitUntil(lambda: main.signing.last_verification is not None, timeout=5000)
    verification = main.signing.last_verification
    assert verification is not None and verification.ok and verification.addenda == 1

    # Re-opening the note shows the addendum again.
    editor.close_note()
    main.open_note(note_id, new_service.get_note(note_id, record_view=False).client_id)
    assert "Addendum 1" in editor.addenda_view.toPlainText()


def test_history_diff_highlights_words_and_escapes_html(
    qtbot, main: MainWindow, new_service: VaultService
) -> None:
    editor = main.editor
    editor.body.setPlainText("Client seemed calm today. <b>x</b> stays.")
    assert main.editor.save_now()
    editor.body.setPlainText("Client seemed anxious today. <b>x</b> stays.")
    assert main.editor.save_now()
    history = main.show_history()
    assert isinstance(history, HistoryDialog)
    assert history.mode.currentIndex() == MODE_PREVIOUS  # the newest revision's changes
    runs = formatted_fragments(history.viewer)
    struck = [text for text, strike, _u in runs if strike]
    underlined = [text for text, _s, under in runs if under]
    assert any("calm" in text for text in struck)
    assert any("anxious" in text for text in underlined)
    assert not any("stays" in text for text in struck + underlined)  # unchanged
    plain = history.viewer.toPlainText()
    assert "<b>x</b> stays." in plain  # the note's own "markup" is shown as text
    assert not any(fmt_bold for fmt_bold in _bold_runs(history.viewer, "x"))
    assert "1 word added, 1 removed" in history.summary.text()

    history.list.setCurrentRow(1)  # the previous revision, against the current one
    history.set_mode(MODE_CURRENT)
    runs = formatted_fragments(history.viewer)
    assert any("anxious" in t for t, _s, under in runs if under)
    history.set_mode(MODE_TEXT)
    assert history.viewer.toPlainText() == "Client seemed calm today. <b>x</b> stays."
    assert check_names(history) >= 3
    history.reject()


def _bold_runs(view: QTextEdit, text: str) -> list[bool]:
    runs = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.text().strip() == text:
                runs.append(fragment.charFormat().fontWeight() > 400)
            it += 1
        block = block.next()
    return runs


def test_diff_html_escapes_before_marking() -> None:
    html, stats = diff_html("a <b>x</b> & c", "a <b>y</b> & c <script>")
    assert "<b>x" not in html and "<script>" not in html
    assert "&lt;b&gt;" in html and "&amp;" in html and "&lt;script&gt;" in html
    assert stats.words_added == 2 and stats.words_removed == 1  # y, script / x
    same, stats = diff_html("unchanged\n", "unchanged\n")
    assert not stats.changed and "class=" not in same


def test_process_notes_live_in_their_own_section(
    qtbot, main: MainWindow, new_service: VaultService
) -> None:
    client_id = main.client_pane.current_client_id
    assert client_id is not None
    soap = new_service.create_note(client_id, "soap", session_date="2026-01-02")
    process = new_service.create_note(client_id, "process", session_date="2026-01-03")
    pane = main.notes
    record_ids = {pane.record_model.index(r, 0).data(ID_ROLE)
                  for r in range(pane.record_model.rowCount())}  # fmt: skip
    assert soap.id in record_ids and process.id not in record_ids
    assert [pane.process_model.index(r, 0).data(ID_ROLE)
            for r in range(pane.process_model.rowCount())] == [process.id]  # fmt: skip

    # Choosing the client again finds them again (the scan runs in a worker).
    main.client_pane.reload()
    pane.set_client(client_id)
    qtbot.waitUntil(lambda: pane.process_model.rowCount() == 1, timeout=5000)
    assert pane.process_model.index(0, 0).data(ID_ROLE) == process.id
    assert process.id not in {pane.record_model.index(r, 0).data(ID_ROLE)
                              for r in range(pane.record_model.rowCount())}  # fmt: skip
    # Structurally separate: another list, under its own heading, in its own frame.
    assert pane.process_view is not pane.record_view
    assert pane.process_view.model() is pane.process_model
    assert pane.process_section.isAncestorOf(pane.process_view)
    assert not pane.process_section.isAncestorOf(pane.record_view)
    assert PROCESS_HEADING in [w.text() for w in pane.process_section.findChildren(QLabel)]
    assert pane.process_status.text() == "1"

    # Opening it from its section selects it there, and nothing in the record list.
    pane.process_view.selectRow(0)
    assert main.editor.note_id == process.id
    assert main.editor.banner.isVisibleTo(main)
    assert not pane.record_view.selectionModel().hasSelection()
    pane.record_view.selectRow(0)
    assert main.editor.note_id != process.id
    assert not pane.process_view.selectionModel().hasSelection()


def test_a_bulk_change_refreshes_both_sections(
    qtbot, main: MainWindow, new_service: VaultService, monkeypatch
) -> None:
    client_id = main.client_pane.current_client_id
    assert client_id is not None
    main.notes.set_client(client_id)
    qtbot.waitUntil(lambda: not main.notes.process_model.loading, timeout=5000)
    with monkeypatch.context() as quiet:  # records arrive without one event each
        quiet.setattr(new_service, "_emit", lambda _event: None)
        new_service.create_note(client_id, "process")
        new_service.create_note(client_id, "soap")
    assert main.notes.process_model.rowCount() == 0  # nobody told the window yet
    main.on_record_changed(RecordChanged("sync", ""))  # as a sync reports a batch
    qtbot.waitUntil(lambda: main.notes.process_model.rowCount() == 1, timeout=5000)
    assert main.notes_model.rowCount() == 2  # the free-text note and the new SOAP


def test_sections_page_apart_through_a_long_listing(qtbot, service: VaultService) -> None:
    client = service.add_client("Paging Sections")
    process_ids = set()
    total = 3 * PAGE_SIZE + 11
    for i in range(total):
        template = "process" if i % 97 == 0 else "soap"
        note = service.create_note(client.id, template, session_date=f"2025-{1 + i % 12:02d}-"
                                   f"{1 + i % 28:02d}")  # fmt: skip
        if template == "process":
            process_ids.add(note.id)
    runner = OpRunner()
    records = NoteListModel(service, section=RECORD)
    records.set_client(client.id)
    while records.canFetchMore():
        records.fetchMore()
    record_ids = {records.index(r, 0).data(ID_ROLE) for r in range(records.rowCount())}
    assert len(record_ids) == total - len(process_ids)
    assert not record_ids & process_ids

    processes = ProcessNoteListModel(service, runner)
    processes.set_client(client.id)
    assert processes.loading
    qtbot.waitUntil(lambda: processes.complete, timeout=10_000)
    found = {processes.index(r, 0).data(ID_ROLE) for r in range(processes.rowCount())}
    assert found == process_ids  # found all the way down the listing
    processes.clear()
    assert processes.rowCount() == 0
    runner.wait(5000)


def test_note_windows_never_name_the_client(qtbot, main: MainWindow) -> None:
    qtbot.keyClicks(main.editor.body, "x")
    sign_open_note(qtbot, main)
    dialog = main.signing.add_addendum()
    history = main.show_history()
    audit = main.show_audit()
    assert dialog is not None and history is not None
    for window in QApplication.topLevelWidgets():
        assert CLIENT not in window.windowTitle()
    assert audit.windowTitle() == "Tacit — Audit trail"
    dialog.reject()
