"""Practice mode in the app with a scripted PracticeService (tests/ui/practice_fakes.py):
the Practice menu per role and state, the schedule, fees, supervision (audited read,
co-sign), members (invite code and the clipboard, remove with a confirmation, supervisor,
policy), joining (the account dialog's TOTP enrolment), the idle lock capped by the
policy, and a canary: nothing typed or shown reaches QSettings, the temp dir or the log."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from app.errors import UsageError
from app.sync.protocol import InviteInvalidError
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.practice_fees import FeesDialog
from app.ui.practice_join import JoinPracticeDialog
from app.ui.practice_members import MembersDialog
from app.ui.practice_policy import PolicyDialog
from app.ui.practice_schedule import ScheduleDialog
from app.ui.practice_supervision import SupervisionDialog
from app.ui.prefs import effective_idle_minutes
from app.ui.qt import QApplication, QDateTime, QDialogButtonBox, QMessageBox, Qt
from app.ui.settings_dialog import SettingsDialog
from app.ui.syncing import SyncDriver
from app.vault.clock import ManualClock
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, check_names, live_texts, unlock
from tests.ui.practice_fakes import (
    CANARY_CLIENT,
    CANARY_NOTE,
    OTHER,
    SUP,
    FakePractice,
    FakeSync,
)

OK = QDialogButtonBox.StandardButton.Ok
ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"


class App:
    def __init__(self, controller: AppController, main: MainWindow, practice: FakePractice,
                 syncs: list[FakeSync]) -> None:  # fmt: skip
        self.controller = controller
        self.main = main
        self.practice = practice
        self.syncs = syncs

    @property
    def sync(self) -> FakeSync:
        return self.syncs[-1]


@pytest.fixture
def practice() -> FakePractice:
    return FakePractice()


@pytest.fixture
def linked() -> list[bool]:
    return [True]


@pytest.fixture
def app(qtbot, make_controller: MakeController, service: VaultService, practice: FakePractice,
        linked: list[bool]) -> App:  # fmt: skip
    service.add_client(CANARY_CLIENT)
    service.lock()
    syncs: list[FakeSync] = []

    def factory(vault: VaultService) -> Any:
        syncs.append(FakeSync(vault, linked=linked[0]))
        return syncs[-1]

    controller = make_controller(service, practice_factory=lambda _s: practice)
    controller.sync = SyncDriver(service, factory=factory, parent=controller)
    controller.start()
    qtbot.waitUntil(lambda: not controller.unlock_window.busy.busy, timeout=5000)
    main = unlock(controller, qtbot, PASSPHRASE)
    qtbot.waitUntil(lambda: main.practice.driver is not None and bool(syncs), timeout=5000)
    main.practice.refresh()
    return App(controller, main, practice, syncs)


def idle(dialog: Any) -> bool:
    return not dialog.is_busy


# -- the menu -------------------------------------------------------------------------------
def test_menu_entries_per_role_and_state(qtbot, app: App, practice: FakePractice) -> None:
    menu = app.main.practice
    assert menu.menu.title() == "&Practice"
    cases = {
        "owner": ["Schedule…", "Fees…", "Supervision…", "Members…", "Practice audit…",
                  "Practice status"],
        "clinician": ["Schedule…", "Practice status"],
        "supervisor": ["Schedule…", "Supervision…", "Practice status"],
        "admin": ["Schedule…", "Fees…", "Practice status"],
    }  # fmt: skip
    for role, expected in cases.items():
        practice.role = role
        menu.refresh()
        assert menu.entries() == expected, role
        assert menu.state_action.text().startswith("Riverside Practice — ")
    practice.role, practice.member_status = "clinician", "pending"
    menu.refresh()
    assert menu.entries() == ["Practice status"]
    assert menu.state_action.text() == "Waiting for the owner to approve you"
    assert menu.open_schedule() is None
    status = menu.open_status()
    assert status is not None and "Waiting for the owner to approve you" in status.waiting.text()
    assert status.check_button.isVisible()
    status.reject()

    practice.in_practice = False
    menu.refresh()
    assert menu.entries() == ["Create a practice…"]  # linked: join would need a new account
    assert menu.join_action.isVisible() and not menu.join_action.isEnabled()
    app.sync.store.linked = False
    menu.refresh()
    assert menu.entries() == ["Join a practice…"]
    assert menu.open_create() is None


def test_create_a_practice(qtbot, app: App, practice: FakePractice) -> None:
    practice.in_practice = False
    menu = app.main.practice
    menu.refresh()
    dialog = menu.open_create()
    assert dialog is not None and not dialog.create_button.isEnabled()
    assert check_names(dialog) >= 4
    qtbot.keyClicks(dialog.name, "Riverside Practice")
    qtbot.keyClicks(dialog.email, "owner@example.org")
    before = app.sync.syncs
    qtbot.mouseClick(dialog.create_button, LEFT)
    qtbot.waitUntil(lambda: menu.dialog("create") is None, timeout=5000)
    assert practice.called("create") == [(("Riverside Practice", "owner@example.org"), {})]
    assert "Members…" in menu.entries()
    qtbot.waitUntil(lambda: app.sync.syncs > before, timeout=5000)


# -- schedule and fees -----------------------------------------------------------------------
def test_booking_calls_add_appointment_with_the_picked_values_and_syncs(
    qtbot, app: App, practice: FakePractice
) -> None:
    dialog = app.main.practice.open_schedule()
    assert isinstance(dialog, ScheduleDialog) and dialog.windowTitle() == "Tacit — Schedule"
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and idle(dialog), timeout=5000)
    assert dialog.table.item(0, 0).text() == "2026-03-10 09:00"
    assert dialog.table.item(0, 2).text() == CANARY_CLIENT
    assert check_names(dialog) >= 5
    qtbot.mouseClick(dialog.book_button, LEFT)
    qtbot.waitUntil(lambda: dialog.book_dialog is not None, timeout=5000)
    book = dialog.book_dialog
    assert book is not None and book.clinician.isEnabled()  # the owner books for others
    assert book.clinician.itemText(0) == "You"
    book.clinician.setCurrentIndex(book.clinician.findData(OTHER))
    assert [book.client.itemText(i) for i in range(book.client.count())] == [CANARY_CLIENT]
    book.start.setDateTime(QDateTime.fromString("2026-03-12T14:30", "yyyy-MM-ddTHH:mm"))
    book.duration.setValue(45)
    before = app.sync.syncs
    qtbot.mouseClick(book.buttons.button(OK), LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("add_appointment")), timeout=5000)
    assert practice.called("add_appointment") == [
        (("c-canary", "2026-03-12T14:30", 45), {"clinician": OTHER})
    ]
    qtbot.waitUntil(lambda: app.sync.syncs > before, timeout=5000)  # it goes out promptly
    qtbot.waitUntil(lambda: idle(dialog), timeout=5000)
    assert "Saved" in dialog.error.text()

    dialog.table.selectRow(0)
    dialog.status.setCurrentIndex(dialog.status.findData("attended"))
    qtbot.mouseClick(dialog.set_status_button, LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("set_appointment_status")), timeout=5000)
    assert practice.called("set_appointment_status") == [(("ap-1", "attended"), {})]
    assert all(practice.off_thread)  # every service call ran in the sync worker


def test_a_clinician_books_their_own_clients_only(qtbot, app: App,
                                                   practice: FakePractice) -> None:  # fmt: skip
    practice.role = "clinician"
    app.main.practice.refresh()
    dialog = app.main.practice.open_schedule()
    assert dialog is not None
    qtbot.waitUntil(lambda: idle(dialog), timeout=5000)
    dialog.book()
    qtbot.waitUntil(lambda: dialog.book_dialog is not None, timeout=5000)
    book = dialog.book_dialog
    assert book is not None and not book.clinician.isEnabled()
    assert [book.client.itemText(i) for i in range(book.client.count())] == ["Robin Own"]
    qtbot.mouseClick(book.buttons.button(OK), LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("add_appointment")), timeout=5000)
    ((args, kwargs),) = practice.called("add_appointment")
    assert args[0] == "c-mine" and args[2] == 50 and kwargs == {"clinician": None}


def test_fees_add_and_mark_paid(qtbot, app: App, practice: FakePractice) -> None:
    dialog = app.main.practice.open_fees()
    assert isinstance(dialog, FeesDialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and idle(dialog), timeout=5000)
    assert dialog.table.item(0, 3).text() == "Not paid"
    assert not dialog.paid_button.isEnabled()
    dialog.table.selectRow(0)
    assert dialog.paid_button.isEnabled()
    before = app.sync.syncs
    qtbot.mouseClick(dialog.paid_button, LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("mark_paid")), timeout=5000)
    assert practice.called("mark_paid") == [(("fee-1",), {})]
    qtbot.waitUntil(lambda: app.sync.syncs > before and idle(dialog), timeout=5000)

    qtbot.mouseClick(dialog.add_button, LEFT)
    qtbot.waitUntil(lambda: dialog.add_dialog is not None, timeout=5000)
    add = dialog.add_dialog
    assert add is not None and not add.buttons.button(OK).isEnabled()
    add.client.setCurrentIndex(0)  # the canary client (OTHER's), sorted first
    assert add.appointment.count() == 2  # none, or the client's appointment
    add.appointment.setCurrentIndex(1)
    qtbot.keyClicks(add.amount, "95.50")
    add.paid.setChecked(True)
    qtbot.mouseClick(add.buttons.button(OK), LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("add_fee")), timeout=5000)
    assert practice.called("add_fee") == [(("c-canary", "95.50"), {
        "clinician": OTHER, "appointment_id": "ap-1", "paid": True})]  # fmt: skip


# -- supervision -----------------------------------------------------------------------------
def test_supervision_opens_a_note_audited_and_cosigns(qtbot, app: App,
                                                      practice: FakePractice) -> None:  # fmt: skip
    practice.role = "supervisor"
    app.main.practice.refresh()
    dialog = app.main.practice.open_supervision()
    assert isinstance(dialog, SupervisionDialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and idle(dialog), timeout=5000)
    assert dialog.cosign_button.isVisible() and not dialog.cosign_button.isEnabled()
    assert practice.called("record") == []  # listing reads no note
    dialog.table.selectRow(0)
    assert practice.called("record") == []  # nor does selecting one
    qtbot.mouseClick(dialog.open_button, LEFT)
    qtbot.waitUntil(lambda: dialog.note is not None and idle(dialog), timeout=5000)
    assert practice.called("record") == [(("note-1",), {})]  # the audited read
    assert dialog.view.toPlainText() == CANARY_NOTE and dialog.view.isReadOnly()
    lines = dialog.cosigns.text().splitlines()
    assert lines[0].startswith("✗") and "does not match" in lines[0]
    assert lines[1].startswith("✓") and "matches the note" in lines[1]
    assert check_names(dialog) >= 4
    before = app.sync.syncs
    qtbot.mouseClick(dialog.cosign_button, LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("cosign")), timeout=5000)
    assert practice.called("cosign") == [(("note-1",), {})]
    qtbot.waitUntil(lambda: app.sync.syncs > before, timeout=5000)

    practice.role = "owner"  # the owner reads but does not co-sign
    app.main.practice.refresh()
    qtbot.waitUntil(lambda: idle(dialog), timeout=5000)
    dialog.reject()  # (refused while a call is in flight)
    qtbot.waitUntil(lambda: app.main.practice.dialog("supervision") is None, timeout=5000)
    owner_view = app.main.practice.open_supervision()
    assert owner_view is not None and not owner_view.cosign_button.isVisibleTo(owner_view)


# -- members ---------------------------------------------------------------------------------
def test_members_invite_remove_supervise_and_policy(qtbot, app: App,
                                                    practice: FakePractice) -> None:  # fmt: skip
    dialog = app.main.practice.open_members()
    assert isinstance(dialog, MembersDialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 3 and idle(dialog), timeout=5000)
    assert dialog.table.item(0, 0).text() == "owner@example.org (you)"
    assert check_names(dialog) >= 6

    invite = dialog.open_invite()
    qtbot.keyClicks(invite.email, "new@example.org")
    invite.role.setCurrentIndex(invite.role.findData("supervisor"))
    qtbot.mouseClick(invite.invite_button, LEFT)
    qtbot.waitUntil(lambda: bool(invite.invite_code), timeout=5000)
    assert practice.called("invite") == [(("new@example.org", "supervisor"), {})]
    code = invite.invite_code
    assert code.startswith("TP-")
    flags = invite.code.textInteractionFlags()
    assert flags & Qt.TextInteractionFlag.TextSelectableByMouse
    guard = app.controller.clipboard
    qtbot.mouseClick(invite.copy_button, LEFT)
    assert QApplication.clipboard().text() == code
    assert guard.pending and guard.timer.isActive()  # the auto-clear countdown runs
    assert "cleared" in invite.error.text()
    guard.clear_if_ours()
    assert QApplication.clipboard().text() == ""
    invite.reject()
    assert invite.invite_code == ""  # wiped when it closes

    qtbot.waitUntil(lambda: idle(dialog), timeout=5000)
    assert dialog.select("owner@example.org") and not dialog.remove_button.isEnabled()
    assert dialog.select("clin@example.org") and dialog.remove_button.isEnabled()
    box = dialog.ask_remove()
    assert box is not None
    assert "devices will be locked" in box.text() and "keys" in box.text()
    assert "rotated" in box.text()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), LEFT)
    assert practice.called("remove") == []  # cancelled: nothing sent
    box = dialog.ask_remove()
    assert box is not None
    remove = next(b for b in box.buttons() if b.text() == "Remove member")
    qtbot.mouseClick(remove, LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("remove")), timeout=5000)
    assert practice.called("remove") == [((OTHER,), {})]
    qtbot.waitUntil(lambda: idle(dialog) and "Removed" in dialog.error.text(), timeout=5000)

    supervise = dialog.open_supervise()
    assert supervise.supervisor.count() == 1
    supervise.clinician.setCurrentIndex(supervise.clinician.findData(OTHER))
    qtbot.mouseClick(supervise.buttons.button(OK), LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("supervise")), timeout=5000)
    assert practice.called("supervise") == [((SUP, OTHER), {})]

    qtbot.waitUntil(lambda: idle(dialog), timeout=5000)
    policy = dialog.open_policy()
    assert isinstance(policy, PolicyDialog)
    qtbot.waitUntil(lambda: policy.loaded and idle(policy), timeout=5000)
    assert policy.require_totp.isChecked() and policy.max_idle.value() == 0
    assert check_names(policy) >= 5
    policy.max_idle.setValue(10)
    policy.lease.setValue(7)
    qtbot.mouseClick(policy.save_button, LEFT)
    qtbot.waitUntil(lambda: bool(practice.called("set_policy")), timeout=5000)
    assert practice.called("set_policy") == [((), {
        "require_totp": True, "max_idle_minutes": 10, "offline_lease_days": 7})]  # fmt: skip
    qtbot.waitUntil(lambda: app.controller.idle_cap == 10, timeout=5000)

    audit = app.main.practice.open_audit()
    assert audit is not None
    qtbot.waitUntil(lambda: audit.table.rowCount() == 1 and idle(audit), timeout=5000)
    assert audit.table.item(0, 1).text() == "clin@example.org"


def test_errors_show_our_words_and_the_stable_code(qtbot, app: App,
                                                 practice: FakePractice) -> None:  # fmt: skip
    practice.errors["invite"] = InviteInvalidError("server words: " + CANARY_CLIENT)
    practice.errors["add_fee"] = UsageError("give the amount as a number, e.g. 120.00")
    members = app.main.practice.open_members()
    assert members is not None
    qtbot.waitUntil(lambda: idle(members), timeout=5000)
    invite = members.open_invite()
    assert check_names(invite) >= 3
    qtbot.keyClicks(invite.email, "new@example.org")
    qtbot.mouseClick(invite.invite_button, LEFT)
    qtbot.waitUntil(lambda: invite.error.isVisible(), timeout=5000)
    assert invite.error.text() == (
        "That invite code is unknown, used or expired — ask the owner for a new one "
        "(invite_invalid)"
    )
    assert invite.invite_code == "" and not invite.copy_button.isVisible()
    invite.reject()
    fees = app.main.practice.open_fees()
    assert fees is not None
    qtbot.waitUntil(lambda: idle(fees), timeout=5000)
    fees._add("c-canary", "lots", OTHER, None, False)
    qtbot.waitUntil(lambda: fees.error.isVisible() and idle(fees), timeout=5000)
    assert fees.error.text() == "give the amount as a number, e.g. 120.00 (usage)"
    for dialog in (app.main.practice.open_status(), app.main.practice.open_audit()):
        assert dialog is not None and check_names(dialog) >= 1


# -- joining ----------------------------------------------------------------------------------
@pytest.mark.parametrize("linked", [[False]])
def test_join_shows_the_account_dialogs_totp_enrolment(qtbot, app: App,
                                                       practice: FakePractice) -> None:  # fmt: skip
    practice.in_practice = False
    menu = app.main.practice
    menu.refresh()
    assert menu.entries() == ["Join a practice…"]
    dialog = menu.open_join()
    assert isinstance(dialog, JoinPracticeDialog)
    assert dialog.windowTitle() == "Tacit — Join a practice"
    assert dialog.stack.currentIndex() == 1 and not dialog.create_button.isEnabled()
    qtbot.keyClicks(dialog.code, "TP-ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
    qtbot.keyClicks(dialog.su_server, "https://sync.example.org")
    qtbot.keyClicks(dialog.su_password.passphrase, ACCOUNT_PASSWORD)
    qtbot.keyClicks(dialog.su_password.confirm, ACCOUNT_PASSWORD)
    assert dialog.create_button.isEnabled()
    assert check_names(dialog) >= 6
    qtbot.mouseClick(dialog.create_button, LEFT)
    qtbot.waitUntil(lambda: dialog.stack.currentIndex() == 2, timeout=5000)  # enrolment
    ((args, kwargs),) = practice.called("join")
    assert args == ("TP-ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567", "https://sync.example.org")
    assert kwargs == {"ca_file": None, "device_name": None, "username": None}
    assert not dialog.qr_label.pixmap().isNull()
    assert len(dialog.recovery_codes) == 10 and dialog.code.text() == ""
    assert "joined" in dialog.error.text()
    assert menu.state_action.text() == "Waiting for the owner to approve you"
    dialog.stored.setChecked(True)
    qtbot.keyClicks(dialog.enroll_code, "123456")
    qtbot.mouseClick(dialog.finish_button, LEFT)
    qtbot.waitUntil(lambda: dialog.stack.currentIndex() == 0 and idle(dialog), timeout=5000)
    assert "Waiting for the owner to approve you" in dialog.error.text()
    assert dialog.recovery_codes == []
    ca = dialog.choose_ca_file()
    ca.reject()


# -- the idle lock and the policy ---------------------------------------------------------------
def test_effective_idle_minutes() -> None:
    assert effective_idle_minutes(5, None) == 5
    assert effective_idle_minutes(30, 10) == 10
    assert effective_idle_minutes(5, 10) == 5
    assert effective_idle_minutes(5, 0) == 1


def test_the_policy_caps_the_idle_lock_and_settings(qtbot, app: App,
                                                    practice: FakePractice) -> None:  # fmt: skip
    controller, service = app.controller, app.controller.service
    assert controller.prefs.idle_minutes == 5 and service.idle_timeout == 300
    practice.policy_doc["max_idle_minutes"] = 3
    app.main.sync_now()  # the policy arrives with a sync; the menu reads it after
    qtbot.waitUntil(lambda: service.idle_timeout == 180, timeout=5000)
    assert controller.idle_cap == 3 and "3 min" in app.main.idle_label.text()
    dialog = controller.open_settings()
    assert isinstance(dialog, SettingsDialog)
    assert dialog.idle.maximum() == 3 and dialog.idle.value() == 3
    assert dialog.idle_limit.isVisibleTo(dialog)
    assert "limited by your practice's policy" in dialog.idle_limit.text()
    dialog.reject()
    practice.policy_doc["offline_lease_days"] = 7
    app.main.practice.refresh()
    assert controller.lease_cap == 7
    capped = SettingsDialog(controller.prefs, lambda _p: None, lease_days=None,
                            set_lease=lambda _d: None, lease_cap=7)  # fmt: skip
    assert capped.lease_on.isChecked() and not capped.lease_on.isEnabled()
    assert capped.lease.maximum() == 7 and capped.lease_choice() == 7
    capped.deleteLater()
    practice.policy_doc["offline_lease_days"] = None
    practice.policy_doc["max_idle_minutes"] = None  # lifted: the preference again
    app.main.sync_now()
    qtbot.waitUntil(lambda: service.idle_timeout == 300, timeout=5000)
    unlimited = controller.open_settings()
    assert unlimited is not None and unlimited.idle.maximum() == 60
    assert not unlimited.idle_limit.isVisibleTo(unlimited)
    unlimited.reject()


def test_the_policy_idle_limit_locks_the_app(qtbot, app: App, practice: FakePractice,
                                             clock: ManualClock) -> None:  # fmt: skip
    practice.policy_doc["max_idle_minutes"] = 2
    app.main.practice.refresh()
    assert app.controller.service.idle_timeout == 120
    app.controller.service.record_activity()
    clock.advance(119)
    app.controller.idle.poll()
    assert app.controller.main_window is not None
    clock.advance(2)  # past the policy's 2 minutes, well before the preference's 5
    app.controller.idle.poll()
    qtbot.waitUntil(lambda: app.controller.main_window is None, timeout=5000)
    assert not app.controller.service.is_unlocked


# -- nothing leaves the windows ----------------------------------------------------------------
@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "tmpdir"
    where.mkdir()
    monkeypatch.setenv("TMPDIR", str(where))
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_canary_reaches_no_settings_temp_file_or_log(
    qtbot, app: App, practice: FakePractice, private_tmp: Path, settings_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    menu = app.main.practice
    practice.role = "supervisor"
    menu.refresh()
    supervision = menu.open_supervision()
    assert supervision is not None
    qtbot.waitUntil(lambda: supervision.table.rowCount() == 1 and idle(supervision), timeout=5000)
    supervision.table.selectRow(0)
    supervision.open_selected()
    qtbot.waitUntil(lambda: supervision.note is not None, timeout=5000)
    schedule = menu.open_schedule()
    assert schedule is not None
    qtbot.waitUntil(lambda: schedule.table.rowCount() == 1 and idle(schedule), timeout=5000)
    assert CANARY_CLIENT in live_texts() and CANARY_NOTE in live_texts()
    app.controller.apply_preferences(app.controller.prefs)  # the settings file is written
    app.controller.lock()
    assert app.main.practice.dialogs == {}
    texts = live_texts()
    assert CANARY_CLIENT not in texts and CANARY_NOTE not in texts
    files = [settings_path, *[p for p in private_tmp.rglob("*") if p.is_file()]]
    qt_conf = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "QtProject.conf"
    if qt_conf.exists():
        files.append(qt_conf)
    for path in files:
        data = path.read_bytes()
        for canary in (CANARY_CLIENT, CANARY_NOTE, "heron-canary", "Canarybird"):
            assert canary.encode() not in data, path.name
    for record in caplog.records:
        message = record.getMessage()
        assert "Canarybird" not in message and "heron-canary" not in message
