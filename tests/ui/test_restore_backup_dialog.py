"""Restore from a backup (first-run and unlock screens): with the passphrase, with the
recovery key and a new passphrase, a damaged file refused with ``integrity_error`` and
no vault left, an existing vault replaced only when asked (and kept aside), and nothing
typed left in the widgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ui.controller import AppController
from app.ui.restore_backup_dialog import PAGE_CHOOSE, PAGE_DONE, RestoreBackupDialog
from app.vault import backup
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, check_names, live_texts, main_window, unlock

CLIENT = "Bartholomew Backedup"
NEW_PASSPHRASE = "violet harbour lantern seventeen"


@pytest.fixture
def made(tmp_path: Path, clock: ManualClock) -> tuple[Path, str]:
    """A backup of another machine's vault (its own keychain): two notes of one client.
    Returns the file and the recovery key."""
    source = VaultService(tmp_path / "elsewhere", clock=clock, keychain=MemoryKeychain())
    recovery = source.create(Passphrase.from_str(PASSPHRASE))
    client = source.add_client(CLIENT)
    source.create_note(client.id, "soap", body="first session")
    source.create_note(client.id, "soap", body="second session")
    report = backup.create_backup(source, tmp_path / "backups")
    source.lock()
    return report.file, recovery


def from_first_run(qtbot, controller: AppController) -> RestoreBackupDialog:
    controller.start()
    window = controller.first_run
    assert window is not None and window.backup_button.isVisible()
    qtbot.mouseClick(window.backup_button, LEFT)
    dialog = window.backup_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def run_restore(qtbot, dialog: RestoreBackupDialog) -> None:
    assert dialog.restore_button.isEnabled()
    qtbot.mouseClick(dialog.restore_button, LEFT)
    qtbot.waitUntil(lambda: not dialog.progress.busy, timeout=20_000)


def test_restore_with_the_passphrase_from_the_first_run(
    qtbot, controller: AppController, new_service: VaultService, made: tuple[Path, str]
) -> None:
    dialog = from_first_run(qtbot, controller)
    assert dialog.windowTitle() == "Tacit — Restore from a backup"
    assert check_names(dialog) >= 6
    assert not dialog.replace.isVisibleTo(dialog)  # nothing there to replace
    assert not dialog.restore_button.isEnabled()
    dialog.path.setText(str(made[0]))
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    run_restore(qtbot, dialog)
    assert dialog.stack.currentIndex() == PAGE_DONE, dialog.error.text()
    assert dialog.passphrase.text() == ""
    assert dialog.summary.text().startswith("Restored 2 notes in ")
    assert dialog.progress.fraction == 1.0
    assert new_service.exists() and new_service.is_unlocked
    qtbot.mouseClick(dialog.open_button, LEFT)
    window = main_window(controller)
    assert controller.first_run is None
    assert [c.name for c in new_service.list_clients()] == [CLIENT]
    assert window.client_pane.model.rowCount() == 1
    assert "restore" in [e.action for e in new_service.audit_entries()]
    assert new_service.verify_audit().ok


def test_restore_with_the_recovery_key_and_a_new_passphrase(
    qtbot, controller: AppController, new_service: VaultService, made: tuple[Path, str]
) -> None:
    dialog = from_first_run(qtbot, controller)
    dialog.path.setText(str(made[0]))
    dialog.use_recovery.setChecked(True)
    assert dialog.recovery_box.isVisibleTo(dialog) and not dialog.passphrase.isVisibleTo(dialog)
    qtbot.keyClicks(dialog.recovery_key, made[1])
    assert not dialog.restore_button.isEnabled()  # a new passphrase first
    qtbot.keyClicks(dialog.new_form.passphrase, "short")
    assert not dialog.restore_button.isEnabled()  # the strength meter holds it back
    dialog.new_form.clear()
    qtbot.keyClicks(dialog.new_form.passphrase, NEW_PASSPHRASE)
    qtbot.keyClicks(dialog.new_form.confirm, NEW_PASSPHRASE)
    run_restore(qtbot, dialog)
    assert dialog.stack.currentIndex() == PAGE_DONE, dialog.error.text()
    assert dialog.recovery_key.text() == "" and dialog.new_form.passphrase.text() == ""
    qtbot.mouseClick(dialog.open_button, LEFT)
    main_window(controller)
    controller.lock()
    assert not new_service.is_unlocked
    unlock(controller, qtbot, NEW_PASSPHRASE)  # the new passphrase opens it
    assert [c.name for c in new_service.list_clients()] == [CLIENT]


def test_a_damaged_backup_shows_integrity_error_and_leaves_no_vault(
    qtbot, controller: AppController, new_service: VaultService, made: tuple[Path, str],
    vault_dir: Path,
) -> None:  # fmt: skip
    data = bytearray(made[0].read_bytes())
    data[len(data) // 2] ^= 0x20
    made[0].write_bytes(bytes(data))
    dialog = from_first_run(qtbot, controller)
    dialog.path.setText(str(made[0]))
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    run_restore(qtbot, dialog)
    assert dialog.stack.currentIndex() == PAGE_CHOOSE
    assert "(integrity_error)" in dialog.error.text()
    assert "damaged" in dialog.error.text()
    assert not new_service.exists() and not new_service.is_unlocked
    assert not vault_dir.exists() or not any(vault_dir.iterdir())
    assert not [p for p in vault_dir.parent.iterdir() if ".restoring-" in p.name]
    assert controller.main_window is None and controller.first_run is not None


def test_an_existing_vault_is_replaced_only_when_asked(
    qtbot, make_controller: MakeController, service: VaultService, made: tuple[Path, str],
    vault_dir: Path,
) -> None:  # fmt: skip
    service.add_client("Only In The Current Vault")
    service.lock()
    before = sorted(p.name for p in vault_dir.iterdir())
    controller = make_controller(service)
    controller.start()
    unlock_window = controller.unlock_window
    assert unlock_window.backup_link.isVisible()
    qtbot.mouseClick(unlock_window.backup_link, LEFT)
    dialog = unlock_window.backup_dialog
    assert dialog is not None
    assert dialog.replace.isVisibleTo(dialog) and not dialog.replace.isChecked()
    dialog.path.setText(str(made[0]))
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    run_restore(qtbot, dialog)  # not ticked: refused
    assert "(vault_exists)" in dialog.error.text()
    assert dialog.stack.currentIndex() == PAGE_CHOOSE
    assert sorted(p.name for p in vault_dir.iterdir()) == before
    assert not service.is_unlocked

    dialog.replace.setChecked(True)
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    run_restore(qtbot, dialog)
    assert dialog.stack.currentIndex() == PAGE_DONE, dialog.error.text()
    report = dialog.report
    assert report is not None and report.moved_aside is not None
    assert report.moved_aside.name in dialog.summary.text()
    kept = VaultService(report.moved_aside, keychain=service.keychain)
    kept.unlock(Passphrase.from_str(PASSPHRASE))  # the old vault, intact, aside
    assert [c.name for c in kept.list_clients()] == ["Only In The Current Vault"]
    kept.lock()
    qtbot.mouseClick(dialog.open_button, LEFT)
    main_window(controller)
    assert [c.name for c in service.list_clients()] == [CLIENT]


def test_closing_clears_the_secrets_and_the_last_page_can_lock(
    qtbot, controller: AppController, new_service: VaultService, made: tuple[Path, str]
) -> None:
    dialog = from_first_run(qtbot, controller)
    dialog.use_recovery.setChecked(True)
    qtbot.keyClicks(dialog.recovery_key, made[1])
    qtbot.keyClicks(dialog.new_form.passphrase, NEW_PASSPHRASE)
    fields = (dialog.recovery_key, dialog.new_form.passphrase)
    dialog.reject()
    assert all(field.text() == "" for field in fields)
    assert made[1] not in live_texts() and NEW_PASSPHRASE not in live_texts()

    window = controller.first_run
    assert window is not None
    dialog = window.open_backup_restore()
    dialog.path.setText(str(made[0]))
    qtbot.keyClicks(dialog.passphrase, PASSPHRASE)
    run_restore(qtbot, dialog)
    assert new_service.is_unlocked
    qtbot.mouseClick(dialog.lock_button, LEFT)  # restored, but not opened: locked again
    assert not new_service.is_unlocked and new_service.exists()
    qtbot.waitUntil(lambda: controller.unlock_window.isVisible(), timeout=5000)
    assert controller.main_window is None and controller.first_run is None
