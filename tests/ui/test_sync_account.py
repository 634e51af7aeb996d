"""The sync account, end to end through the real windows against a real sync server
(``python -m app.sync.server`` over TLS with a trustme CA, on 127.0.0.1):

sign up in the account dialog → the QR code (a pixmap rendered in memory), the otpauth
link and ten recovery codes, copied only through the concealed clipboard → the first
authenticator code signs in → the background sync pushes the vault; a change is pushed
after the debounce (status: synced, nothing waiting) → a second app on another vault
signs in with a recovery code and receives the note → a concurrent edit on both shows
the conflict badge. Afterwards (the canary check) no note text or client name is in the
log records or the preferences file."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from app.ui.account_dialog import PAGE_ENROLL, PAGE_SIGNIN, PAGE_SIGNUP, PAGE_STATUS, AccountDialog
from app.ui.clipboard import PASSWORD_MANAGER_HINT
from app.ui.controller import AppController
from app.ui.editor import AUTOSAVE_MS
from app.ui.mainwindow import MainWindow
from app.ui.qt import QApplication, QClipboard
from app.vault.clock import ManualClock
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.sync.server.helpers import RunningServer, running_server
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, add_client, check_names, create_vault, live_texts, new_note

ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"
CLIENT = "Wilhelmina Canary-Sync"
FIRST = "Session notes canary-sync-5501 about the lighthouse"
SECOND = "Follow-up canary-sync-5502 on the harbour walk"
CANARIES = (CLIENT, FIRST, SECOND, "canary-sync-55")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def wait_synced(qtbot, controller: AppController, timeout: int = 20_000) -> None:
    """Until the background sync has finished a run with nothing left to push."""
    qtbot.waitUntil(
        lambda: (
            not controller.sync.scheduler.running
            and controller.sync.status.state == "idle"
            and controller.sync.status.pending == 0
        ),
        timeout=timeout,
    )


def open_account(qtbot, main: MainWindow) -> AccountDialog:
    dialog = main.show_account()
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.is_busy and dialog.stack.currentIndex() == PAGE_STATUS,
                    timeout=10_000)  # fmt: skip
    return dialog


def sign_up(qtbot, dialog: AccountDialog, srv: RunningServer, username: str) -> str:
    """Returns the TOTP secret (as an authenticator app would read it from the QR)."""
    assert dialog.signup_button.isVisible()
    qtbot.mouseClick(dialog.signup_button, LEFT)
    assert dialog.stack.currentIndex() == PAGE_SIGNUP
    assert check_names(dialog) >= 8
    qtbot.keyClicks(dialog.su_server, srv.url)
    qtbot.keyClicks(dialog.su_ca_file, str(srv.ca_file))
    qtbot.keyClicks(dialog.su_username, username)
    qtbot.keyClicks(dialog.su_device, "Office laptop")
    qtbot.keyClicks(dialog.su_password.passphrase, "too short")
    assert not dialog.create_button.isEnabled()  # the strength check gates it
    dialog.su_password.passphrase.clear()
    qtbot.keyClicks(dialog.su_password.passphrase, ACCOUNT_PASSWORD)
    qtbot.keyClicks(dialog.su_password.confirm, ACCOUNT_PASSWORD)
    assert dialog.create_button.isEnabled()
    qtbot.mouseClick(dialog.create_button, LEFT)
    assert dialog.is_busy and dialog.busy.isVisible()
    qtbot.waitUntil(lambda: dialog.stack.currentIndex() == PAGE_ENROLL, timeout=20_000)
    assert dialog.su_password.passphrase.text() == ""  # taken, fields cleared
    pixmap = dialog.qr_label.pixmap()
    assert not pixmap.isNull() and pixmap.width() >= 100
    uri = dialog.totp_uri
    assert uri.startswith("otpauth://totp/") and "secret=" in uri
    return str(pyotp.parse_uri(uri).secret)


def test_sign_up_sync_second_device_and_conflict(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    server: RunningServer, tmp_path: Path, settings_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    username = f"dr-{uuid.uuid4().hex[:10]}"
    # -- device A: a vault with a client and a note, then sign up ------------------------
    a = make_controller(new_service)
    create_vault(a, qtbot, PASSPHRASE)
    main_a = a.main_window
    assert main_a is not None
    assert main_a.sync_label.text() == "Sync is off"
    add_client(main_a, qtbot, CLIENT)
    new_note(main_a, qtbot, "soap")
    note_id = main_a.editor.note_id
    assert note_id is not None
    main_a.editor.body.setPlainText(FIRST)
    assert main_a.editor.save_now()

    dialog = open_account(qtbot, main_a)
    assert not dialog.signed_in
    assert dialog.windowTitle() == "Tacit — Sync account"
    assert check_names(dialog) >= 3
    secret = sign_up(qtbot, dialog, server, username)
    codes = dialog.recovery_codes
    assert len(codes) == 10 and all(len(c) >= 16 for c in codes)
    assert "Store these codes safely" in dialog.codes_notice.text()
    qtbot.mouseClick(dialog.copy_codes_button, LEFT)
    clipboard = QApplication.clipboard()
    assert clipboard.text(QClipboard.Mode.Clipboard) == "\n".join(codes)
    assert clipboard.mimeData().hasFormat(PASSWORD_MANAGER_HINT)  # concealed
    assert a.clipboard.timer.isActive()  # and cleared after the delay
    assert not dialog.finish_button.isEnabled()  # not before "I have stored them"
    dialog.stored.setChecked(True)
    qtbot.keyClicks(dialog.enroll_code, pyotp.TOTP(secret).now())
    assert dialog.finish_button.isEnabled()
    qtbot.mouseClick(dialog.finish_button, LEFT)
    qtbot.waitUntil(lambda: dialog.signed_in, timeout=20_000)
    assert dialog.stack.currentIndex() == PAGE_STATUS
    assert dialog.codes_label.text() == "" and dialog.qr_label.pixmap().isNull()  # shown once
    shown = live_texts()
    assert username in shown and server.url.split("//")[1] in shown and "Office laptop" in shown
    wait_synced(qtbot, a)
    assert main_a.sync_label.text() == "Synced just now"
    pushed_first = a.sync.scheduler.last_success

    # -- a change is pushed by the background sync after the debounce -------------------
    main_a.editor.body.setPlainText(FIRST + "\n" + SECOND)
    qtbot.waitUntil(lambda: not main_a.editor.dirty, timeout=AUTOSAVE_MS + 3000)
    clock.advance(3)
    a.sync.poll()
    assert a.sync.scheduler.running or a.sync.status.state == "syncing"
    wait_synced(qtbot, a)
    assert a.sync.scheduler.last_success != pushed_first
    qtbot.mouseClick(dialog.close_button, LEFT)
    assert not dialog.isVisible()

    # -- device B: its own vault, signs in with a recovery code, receives the note -----
    service_b = VaultService(tmp_path / "vault-b", clock=ManualClock(), keychain=MemoryKeychain())
    b = make_controller(service_b)
    create_vault(b, qtbot, PASSPHRASE)
    main_b = b.main_window
    assert main_b is not None
    dialog_b = open_account(qtbot, main_b)
    qtbot.mouseClick(dialog_b.signin_button, LEFT)
    assert dialog_b.stack.currentIndex() == PAGE_SIGNIN
    qtbot.keyClicks(dialog_b.si_server, server.url)
    qtbot.keyClicks(dialog_b.si_ca_file, str(server.ca_file))
    qtbot.keyClicks(dialog_b.si_username, username)
    qtbot.keyClicks(dialog_b.si_password, "a wrong password entirely 99")
    dialog_b.use_recovery.setChecked(True)
    qtbot.keyClicks(dialog_b.si_code, codes[0])
    qtbot.mouseClick(dialog_b.signin_go, LEFT)
    qtbot.waitUntil(lambda: not dialog_b.is_busy and dialog_b.error.isVisible(), timeout=20_000)
    assert "signature_invalid" in dialog_b.error.text()  # a stable code, plainly
    assert dialog_b.si_password.text() == ""
    qtbot.keyClicks(dialog_b.si_password, ACCOUNT_PASSWORD)
    dialog_b.si_code.clear()
    qtbot.keyClicks(dialog_b.si_code, codes[1])
    qtbot.mouseClick(dialog_b.signin_go, LEFT)
    qtbot.waitUntil(lambda: dialog_b.signed_in, timeout=20_000)
    wait_synced(qtbot, b)
    note_b = service_b.get_note(note_id, record_view=False)
    assert note_b.body == FIRST + "\n" + SECOND
    qtbot.waitUntil(lambda: main_b.client_pane.model.rowCount() == 1, timeout=5000)
    assert CLIENT in live_texts()
    qtbot.mouseClick(dialog_b.close_button, LEFT)

    # -- both edit the note before syncing: a conflict, shown as a badge ----------------
    new_service.edit_note(note_id, body=FIRST + " (edited on A)")
    clock.advance(1)
    service_b.edit_note(note_id, body=FIRST + " (edited on B)")
    main_a.sync_now()
    wait_synced(qtbot, a)
    main_b.sync_now()
    qtbot.waitUntil(lambda: b.sync.status.conflicts == 1 and not b.sync.scheduler.running,
                    timeout=20_000)  # fmt: skip
    assert main_b.conflicts_button.isVisible()
    assert main_b.conflicts_button.text() == "⚠ 1 conflict"
    main_a.sync_now()
    qtbot.waitUntil(lambda: a.sync.status.conflicts == 1, timeout=20_000)
    conflicts = main_b.show_conflicts()
    assert conflicts.count == 1
    assert conflicts.resolve("current")
    assert b.sync.status.conflicts == 0 and not main_b.conflicts_button.isVisible()
    conflicts.reject()

    # -- sign out: sync is off --------------------------------------------------------
    dialog_b = open_account(qtbot, main_b)
    qtbot.mouseClick(dialog_b.signout_button, LEFT)
    qtbot.waitUntil(lambda: not dialog_b.signed_in and not dialog_b.is_busy, timeout=20_000)
    assert main_b.sync_label.text() == "Sync is off — signed out"

    # -- the canary check: no note text or client name in logs or preferences ----------
    a.lock()
    b.lock()
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records  # the check saw something (httpx logs each request)
    settings_text = settings_path.read_text("utf-8") if settings_path.exists() else ""
    for canary in CANARIES:
        assert canary not in logged
        assert canary not in settings_text
        assert canary not in live_texts()
