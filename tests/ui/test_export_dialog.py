"""Client pane ▸ Export record…: an encrypted archive that ``export.read_archive`` opens,
psychotherapy notes only when ticked, a PDF only after its confirmation, an existing
file refused, one ``export`` audit entry per export, and nothing typed left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import WrongPassphraseError
from app.ui.controller import AppController
from app.ui.export_dialog import ExportDialog
from app.ui.mainwindow import MainWindow
from app.ui.qt import QMessageBox
from app.vault import export
from app.vault.clock import human_duration as duration
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.helpers import LEFT, add_client, check_names, create_vault, live_texts

CLIENT = "Octavia Exportwell"
RECORD_TEXT = "canary-ui-export-5521 record text"
PROCESS_TEXT = "canary-ui-process-7731 process text"
EXPORT_PASSPHRASE = "umbrella quartz meadow 93 lantern"


@pytest.fixture
def main(qtbot, controller: AppController, new_service: VaultService) -> MainWindow:
    """An unlocked app with one client who has a record note and a process note."""
    create_vault(controller, qtbot, PASSPHRASE)
    window = controller.main_window
    assert window is not None
    add_client(window, qtbot, CLIENT)
    client_id = window.client_pane.current_client_id
    assert client_id is not None
    new_service.create_note(client_id, "soap", body=RECORD_TEXT)
    new_service.create_note(client_id, "process", body=PROCESS_TEXT)
    return window


def open_dialog(qtbot, main: MainWindow) -> ExportDialog:
    pane = main.client_pane
    assert pane.export_button.isEnabled()
    qtbot.mouseClick(pane.export_button, LEFT)
    dialog = pane.export_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Tacit — Export record"
    assert CLIENT not in dialog.windowTitle()
    return dialog


def type_passphrase(qtbot, dialog: ExportDialog, text: str = EXPORT_PASSPHRASE) -> None:
    qtbot.keyClicks(dialog.form.passphrase, text)
    qtbot.keyClicks(dialog.form.confirm, text)


def run_export(qtbot, dialog: ExportDialog) -> export.ExportReport:
    before = dialog.last_report
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: dialog.last_report is not before and not dialog.progress.busy,
                    timeout=15_000)  # fmt: skip
    assert dialog.last_report is not None
    return dialog.last_report


def export_entries(service: VaultService) -> list[str]:
    return [e.detail or "" for e in service.audit_entries(action="export")]


def test_archive_without_psychotherapy_notes_by_default(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, main)
    assert check_names(dialog) >= 8
    assert dialog.archive.isChecked() and not dialog.include.isChecked()
    assert not dialog.export_button.isEnabled()  # no file, no passphrase yet
    out = tmp_path / "record.tacitexport"
    dialog.file_chosen(str(out))
    assert not dialog.export_button.isEnabled()  # the passphrase first
    type_passphrase(qtbot, dialog, "password1")  # too weak: the meter keeps it off
    assert not dialog.export_button.isEnabled()
    dialog.form.clear()
    type_passphrase(qtbot, dialog)
    assert dialog.export_button.isEnabled()
    report = run_export(qtbot, dialog)
    assert (report.file, report.notes, report.format) == (out, 1, "archive")
    assert dialog.form.passphrase.text() == "" and dialog.form.confirm.text() == ""
    data = out.read_bytes()
    assert RECORD_TEXT.encode() not in data and CLIENT.encode() not in data
    document = export.read_archive(out, Passphrase.from_str(EXPORT_PASSPHRASE))
    assert document["client"]["name"] == CLIENT
    bodies = [n["body"] for n in document["notes"]]
    assert any(RECORD_TEXT in b for b in bodies)
    assert not any(PROCESS_TEXT in b for b in bodies)
    assert document["includes_psychotherapy_notes"] is False
    with pytest.raises(WrongPassphraseError):
        export.read_archive(out, Passphrase.from_str("not the export passphrase 12"))
    assert export_entries(new_service) == ["archive, 1 notes"]

    # A second export, with psychotherapy notes: a second entry.
    second = tmp_path / "all.tacitexport"
    dialog.include.setChecked(True)
    dialog.file_chosen(str(second))
    type_passphrase(qtbot, dialog)
    assert run_export(qtbot, dialog).notes == 2
    document = export.read_archive(second, Passphrase.from_str(EXPORT_PASSPHRASE))
    assert any(PROCESS_TEXT in n["body"] for n in document["notes"])
    assert export_entries(new_service) == [
        "archive, 1 notes", "archive, 2 notes, psychotherapy notes included",
    ]  # fmt: skip


def test_an_existing_file_is_refused(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, main)
    out = tmp_path / "taken.tacitexport"
    out.write_bytes(b"someone else's file")
    dialog.file_chosen(str(out))
    assert dialog.path.text() == ""  # the picker's choice is refused
    assert "exists" in dialog.error.text()
    dialog.path.setText(str(out))  # typed in: refused at export time
    type_passphrase(qtbot, dialog)
    qtbot.mouseClick(dialog.export_button, LEFT)
    assert "exists" in dialog.error.text() and "invalid_input" in dialog.error.text()
    assert out.read_bytes() == b"someone else's file"
    assert export_entries(new_service) == []


def test_pdf_needs_the_confirmation(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, main)
    dialog.pdf.setChecked(True)
    assert not dialog.passphrase_box.isVisibleTo(dialog)
    assert dialog.pdf_notice.isVisibleTo(dialog) and "not encrypted" in dialog.pdf_notice.text()
    out = tmp_path / "record.pdf"
    dialog.file_chosen(str(out))
    qtbot.mouseClick(dialog.export_button, LEFT)
    box = dialog.confirm_box
    assert box is not None and box.isVisible()
    assert "not encrypted" in box.text()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Cancel).click()  # refused: nothing written
    qtbot.waitUntil(lambda: dialog.confirm_box is None, timeout=2000)
    assert not out.exists() and export_entries(new_service) == []
    assert "Nothing was written" in dialog.error.text()

    qtbot.mouseClick(dialog.export_button, LEFT)
    box = dialog.confirm_box
    assert box is not None
    write = next(b for b in box.buttons() if b.text() == "Write the PDF")
    before = dialog.last_report
    write.click()
    qtbot.waitUntil(lambda: dialog.last_report is not before and not dialog.progress.busy,
                    timeout=15_000)  # fmt: skip
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and out.stat().st_mode & 0o777 == 0o600
    assert export_entries(new_service) == ["pdf plaintext, 1 notes"]


def test_an_export_that_cannot_be_audited_leaves_no_file(
    qtbot, main: MainWindow, new_service: VaultService, tmp_path: Path, monkeypatch
) -> None:
    dialog = open_dialog(qtbot, main)
    out = tmp_path / "record.tacitexport"
    dialog.file_chosen(str(out))
    type_passphrase(qtbot, dialog)

    def refuse(*_args: object, **_kwargs: object) -> None:
        from app.errors import StorageError

        raise StorageError()

    monkeypatch.setattr(new_service, "record_event", refuse)
    qtbot.mouseClick(dialog.export_button, LEFT)
    qtbot.waitUntil(lambda: dialog.error.isVisible() and not dialog.progress.busy,
                    timeout=15_000)  # fmt: skip
    assert "storage_error" in dialog.error.text()
    assert not out.exists()


def test_closing_forgets_what_was_typed(qtbot, main: MainWindow, tmp_path: Path) -> None:
    dialog = open_dialog(qtbot, main)
    type_passphrase(qtbot, dialog)
    dialog.file_chosen(str(tmp_path / "x.tacitexport"))
    passphrase_field = dialog.form.passphrase
    dialog.reject()
    assert passphrase_field.text() == "" and dialog.path.text() == ""
    assert main.client_pane.export_dialog is None
    assert EXPORT_PASSPHRASE not in live_texts()


def test_progress_panel_shows_time_left(qtbot) -> None:
    from app.ui.widgets import ProgressPanel

    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.set_busy(True, "Working.")
    panel._started -= 10  # ten seconds ago
    panel.report(0.5)
    qtbot.waitUntil(lambda: panel.bar.value() == 500, timeout=2000)
    assert panel.caption.text() == "Working. About 10 s left."
    assert [duration(s) for s in (0.2, 12, 180, 7500)] == ["<1 s", "12 s", "3 min", "2 h 5 min"]
