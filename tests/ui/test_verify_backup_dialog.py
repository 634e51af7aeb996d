"""File ▸ Verify a backup…: a good backup is intact with its counts (passphrase or
recovery key), a bit-flipped one is ``integrity_error``, a wrong passphrase is
``wrong_passphrase``, and what was typed is gone when the dialog closes or the app locks."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.verify_backup_dialog import VerifyBackupDialog
from app.vault import backup, backup_restore
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import flush_deletes
from tests.ui.helpers import LEFT, add_client, check_names, create_vault, live_texts


@pytest.fixture
def made(
    qtbot, controller: AppController, new_service: VaultService, tmp_path: Path
) -> tuple[MainWindow, Path, str]:
    """An unlocked app with a client, two notes and a backup of it; the recovery key."""
    key = create_vault(controller, qtbot, PASSPHRASE)
    window = controller.main_window
    assert window is not None
    add_client(window, qtbot, "Verity Backupson")
    client_id = window.client_pane.current_client_id
    assert client_id is not None
    new_service.create_note(client_id, "soap", body="one")
    new_service.create_note(client_id, "soap", body="two")
    folder = tmp_path / "drive"
    folder.mkdir()
    return window, backup.create_backup(new_service, folder).file, key


def open_dialog(main: MainWindow) -> VerifyBackupDialog:
    main.verify_backup_action.trigger()  # File ▸ Verify a backup…
    dialog = main.verify_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Tacit — Verify a backup"
    return dialog


def verify(qtbot, dialog: VerifyBackupDialog, path: Path, secret: str) -> None:
    dialog.path.setText(str(path))
    qtbot.keyClicks(dialog.secret, secret)
    assert dialog.verify_button.isEnabled()
    qtbot.mouseClick(dialog.verify_button, LEFT)
    assert dialog.secret.text() == ""  # left its field at once
    qtbot.waitUntil(lambda: not dialog.progress.busy and dialog.message.isVisible(),
                    timeout=15_000)  # fmt: skip


def test_a_good_backup_is_intact_with_its_counts(qtbot, made: tuple[MainWindow, Path, str]) -> None:
    main, path, key = made
    expected = backup_restore.verify_backup(path, passphrase=Passphrase.from_str(PASSPHRASE))
    assert (expected.notes, expected.clients) == (2, 1)
    dialog = open_dialog(main)
    assert check_names(dialog) >= 5
    assert not dialog.verify_button.isEnabled()
    verify(qtbot, dialog, path, PASSPHRASE)
    assert dialog.error_code is None and dialog.contents == expected
    assert dialog.message.text() == (
        f"The backup is intact: 2 notes, 1 clients, {expected.audit_entries} audit entries, "
        "0 signed notes."
    )
    assert dialog.progress.fraction == 1.0
    # The recovery key opens it too.
    dialog.use_recovery.setChecked(True)
    assert dialog.secret.accessibleName() == "Recovery key"
    verify(qtbot, dialog, path, key)
    assert dialog.error_code is None and dialog.contents == expected


def test_a_bit_flipped_backup_is_an_integrity_error(
    qtbot, made: tuple[MainWindow, Path, str], tmp_path: Path
) -> None:
    main, path, _key = made
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04  # a byte in the body
    bad = tmp_path / "flipped.tacitbackup"
    bad.write_bytes(bytes(data))
    dialog = open_dialog(main)
    verify(qtbot, dialog, bad, PASSPHRASE)
    assert dialog.error_code == "integrity_error" and dialog.contents is None
    assert dialog.message.text() == (
        "The backup file is damaged or was altered: it cannot be restored. (integrity_error)"
    )


def test_a_wrong_passphrase_is_reported_by_its_code(
    qtbot, made: tuple[MainWindow, Path, str]
) -> None:
    main, path, _key = made
    dialog = open_dialog(main)
    verify(qtbot, dialog, path, "not the passphrase at all 77")
    assert dialog.error_code == "wrong_passphrase"
    assert dialog.message.text() == (
        "That passphrase does not open this backup. (wrong_passphrase)"
    )


def test_closing_and_locking_forget_what_was_typed(
    qtbot, controller: AppController, made: tuple[MainWindow, Path, str]
) -> None:
    main, path, _key = made
    typed = "typed-but-never-verified 4412"
    dialog = open_dialog(main)
    dialog.path.setText(str(path))
    qtbot.keyClicks(dialog.secret, typed)
    field = dialog.secret
    dialog.reject()
    assert field.text() == "" and main.verify_dialog is None
    dialog = open_dialog(main)
    dialog.path.setText(str(path))
    qtbot.keyClicks(dialog.secret, typed)
    field = dialog.secret
    controller.lock()
    assert field.text() == ""
    flush_deletes()
    assert typed not in live_texts() and str(path) not in live_texts()
