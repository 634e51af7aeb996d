"""File ▸ Import notes…: a preview (dry run) that writes nothing, then the real import
through the same functions as ``tacit import`` (one ``import`` audit entry), a bad file
reported rather than crashed on, and the preview's client data gone after a lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.ui.controller import AppController
from app.ui.import_dialog import ImportDialog
from app.ui.mainwindow import MainWindow
from app.vault.importer import AUDIT_RECORD_TYPE
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import flush_deletes
from tests.ui.helpers import LEFT, check_names, create_vault, live_texts

MD_CLIENT = "Rosalind Importwell"
MD_TITLE = "First session canary-title-3391"
MD_BODY = "canary-import-body-8812 talked about sleep"
SN_CLIENT = "Cassius Notesby"
SN_TITLE = "Intake canary-sn-title-5120"


@pytest.fixture
def main(qtbot, controller: AppController) -> MainWindow:
    create_vault(controller, qtbot, PASSPHRASE)
    window = controller.main_window
    assert window is not None
    return window


def markdown_folder(tmp_path: Path) -> Path:
    root = tmp_path / "exported notes"
    client = root / MD_CLIENT
    client.mkdir(parents=True)
    (client / "2024-03-01 first.md").write_text(
        f"---\ntitle: {MD_TITLE}\n---\n{MD_BODY}\n", encoding="utf-8"
    )
    (client / "2024-03-08.md").write_text("# Second session\nfollow-up\n", encoding="utf-8")
    (client / "broken.md").write_bytes(b"\xff\xfe\x00not text")  # a problem, not a crash
    (client / "photo.png").write_bytes(b"\x89PNG")  # skipped: not a note file
    return root


def sn_file(tmp_path: Path) -> Path:
    def item(uuid: str, kind: str, content: object) -> dict[str, object]:
        return {"uuid": uuid, "content_type": kind, "content": content,
                "created_at": "2021-02-03T12:00:00.000Z"}  # fmt: skip

    items = [
        item("t1", "Tag", {"title": SN_CLIENT, "references": [
            {"uuid": "n1", "content_type": "Note"}, {"uuid": "n2", "content_type": "Note"}]}),
        item("n1", "Note", {"title": SN_TITLE, "text": "canary-sn-body-7301"}),
        item("n2", "Note", {"title": "Second", "text": "more"}),
        item("n3", "Note", {"title": "Gone", "text": "x", "trashed": True}),
    ]  # fmt: skip
    path = tmp_path / "Standard Notes Backup.txt"
    path.write_text(json.dumps({"version": "004", "items": items}), encoding="utf-8")
    return path


def open_dialog(main: MainWindow) -> ImportDialog:
    main.import_action.trigger()  # File ▸ Import notes…
    dialog = main.import_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Tacit — Import notes"
    return dialog


def run(qtbot, dialog: ImportDialog, button: object) -> None:
    before = dialog.last_report
    qtbot.mouseClick(button, LEFT)
    qtbot.waitUntil(
        lambda: (
            not dialog.progress.busy
            and (dialog.last_report is not before or dialog.error.isVisible())
        ),
        timeout=15_000,
    )


def state(service: VaultService) -> tuple[int, int, int]:
    """Clients, notes and audit entries (flushed) in the vault."""
    service.flush_audit()
    return len(service.list_clients()), service.count_notes(), len(service.audit_entries())


def import_entries(service: VaultService) -> list[str]:
    service.flush_audit()
    return [e.detail or "" for e in service.audit_entries(action="create")
            if e.record_type == AUDIT_RECORD_TYPE]  # fmt: skip


def test_markdown_preview_writes_nothing_then_import_creates_the_notes(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path
) -> None:
    dialog = open_dialog(main)
    assert check_names(dialog) >= 8
    assert not dialog.preview_button.isEnabled() and not dialog.import_button.isEnabled()
    dialog.path.setText(str(markdown_folder(tmp_path)))
    assert dialog.preview_button.isEnabled() and not dialog.import_button.isEnabled()
    before = state(new_service)

    run(qtbot, dialog, dialog.preview_button)
    report = dialog.last_report
    assert report is not None and report.dry_run
    assert (report.clients, report.notes) == (1, 2)
    text = dialog.preview.toPlainText()
    assert "Would create 1 new clients and 2 notes." in text
    assert f"{MD_CLIENT} (new client): 2 to create, 0 to skip" in text
    assert f"2024-03-01  {MD_TITLE}" in text and "2024-03-08  Second session" in text
    assert "Skipped 1: not a .md, .markdown or .txt file." in text
    assert "1: not UTF-8 text" in text  # problems by reason
    assert MD_BODY not in text  # titles and dates, never the text
    assert state(new_service) == before  # the preview wrote nothing, not even to the trail
    assert dialog.import_button.isEnabled()

    run(qtbot, dialog, dialog.import_button)
    report = dialog.last_report
    assert report is not None and not report.dry_run and report.notes == 2
    assert "Created 1 new clients and 2 notes." in dialog.preview.toPlainText()
    assert not dialog.import_button.isEnabled()  # a new preview first
    (client,) = [c for c in new_service.list_clients() if c.name == MD_CLIENT]
    notes = new_service.list_notes(client.id, limit=10)
    assert sorted((n.session_date, n.title) for n in notes) == [
        ("2024-03-01", MD_TITLE), ("2024-03-08", "Second session"),
    ]  # fmt: skip
    bodies = [new_service.get_note(n.id, record_view=False).body for n in notes]
    assert any(MD_BODY in b for b in bodies)
    assert import_entries(new_service) == ["markdown: 1 clients, 2 notes, 1 skipped, 1 problems"]
    assert MD_CLIENT in live_texts()  # the client list was reloaded

    # Again: the same as the CLI — everything is already there.
    run(qtbot, dialog, dialog.preview_button)
    assert "Would create 0 new clients and 0 notes." in dialog.preview.toPlainText()
    assert "Skipped 2: already in the vault" in dialog.preview.toPlainText()


def test_standard_notes_backup_preview_then_import(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path
) -> None:
    dialog = open_dialog(main)
    dialog.standardnotes.setChecked(True)
    assert dialog.client.placeholderText() == "Imported notes"
    dialog.path.setText(str(sn_file(tmp_path)))
    before = state(new_service)
    run(qtbot, dialog, dialog.preview_button)
    text = dialog.preview.toPlainText()
    assert "Would create 1 new clients and 2 notes." in text
    assert f"{SN_CLIENT} (new client): 2 to create" in text and SN_TITLE in text
    assert "Skipped 1: in the Standard Notes trash." in text
    assert state(new_service) == before
    dialog.kind.setCurrentIndex(dialog.kind.findData("progress"))  # a choice changed
    assert not dialog.import_button.isEnabled() and dialog.preview.toPlainText() == ""
    run(qtbot, dialog, dialog.preview_button)
    run(qtbot, dialog, dialog.import_button)
    (client,) = [c for c in new_service.list_clients() if c.name == SN_CLIENT]
    notes = new_service.list_notes(client.id, limit=10)
    assert sorted(n.title for n in notes) == sorted(["Second", SN_TITLE])
    assert {new_service.get_note(n.id, record_view=False).kind for n in notes} == {"progress"}
    assert import_entries(new_service) == [
        "standardnotes: 1 clients, 2 notes, 1 skipped, 0 problems"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "is not valid JSON"),
        (b'{"items": [{"uuid": "n", "content_type": "Note", "content": "004:x:y"}]}',
         "encrypted Standard Notes backup"),
    ],
)  # fmt: skip
def test_a_bad_file_is_reported_not_crashed_on(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path, content: bytes,
    expected: str,
) -> None:  # fmt: skip
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    dialog = open_dialog(main)
    dialog.standardnotes.setChecked(True)
    dialog.path.setText(str(bad))
    before = state(new_service)
    run(qtbot, dialog, dialog.preview_button)
    assert dialog.error.isVisible()
    assert expected in dialog.error.text() and "(invalid_input)" in dialog.error.text()
    assert not dialog.import_button.isEnabled()
    assert state(new_service) == before
    # A missing folder too (usage), and the dialog still works afterwards.
    dialog.markdown.setChecked(True)
    dialog.path.setText(str(tmp_path / "no such folder"))
    run(qtbot, dialog, dialog.preview_button)
    assert "no folder" in dialog.error.text() and "(usage)" in dialog.error.text()
    dialog.path.setText(str(markdown_folder(tmp_path)))
    run(qtbot, dialog, dialog.preview_button)
    assert dialog.import_button.isEnabled()


def test_the_preview_is_gone_after_close_and_after_lock(
    qtbot, controller: AppController, main: MainWindow, tmp_path: Path
) -> None:
    folder = markdown_folder(tmp_path)
    dialog = open_dialog(main)
    dialog.path.setText(str(folder))
    run(qtbot, dialog, dialog.preview_button)
    preview = dialog.preview
    assert MD_TITLE in live_texts()
    dialog.reject()  # closing forgets it
    assert preview.toPlainText() == "" and dialog.last_report is None
    assert main.import_dialog is None
    flush_deletes()
    assert MD_TITLE not in live_texts()

    dialog = open_dialog(main)
    dialog.path.setText(str(folder))
    run(qtbot, dialog, dialog.preview_button)
    preview = dialog.preview
    assert MD_TITLE in live_texts() and MD_CLIENT in live_texts()
    controller.lock()
    assert preview.toPlainText() == ""
    flush_deletes()
    texts = live_texts()
    assert MD_TITLE not in texts and MD_CLIENT not in texts and str(folder) not in texts
