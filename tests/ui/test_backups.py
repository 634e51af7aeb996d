"""Automatic backups in the app (app/ui/backups.py) on the injected ManualClock: the
schedule alone; backups when due and not before; keeping N; the main window's warning
(missing folder, older than 48 h, a failure by its code, a recovery-key unlock); the
backup at quit; the settings kept in the vault and nowhere else."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from app.errors import StorageError
from app.ui.backups import BackupDriver, BackupSchedule, BackupStatus
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.qt import QSettings
from app.ui.settings_dialog import SettingsDialog
from app.vault import backup
from app.vault.backup import BackupReport
from app.vault.backupfolder import list_backups
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.service import BackupSettings, VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import MakeController, flush_deletes
from tests.ui.helpers import LEFT, add_client, create_vault, live_texts, new_note, unlock

HOUR = 3600.0
FOREIGN = "FOREIGN-TEXT-4711 No space left on device"
BackupFn = Callable[[VaultService, Path], BackupReport]


def mine(service: VaultService, folder: Path) -> list[Path]:
    return [i.path for i in list_backups(folder, service.read_header().vault_id)]


def settle(qtbot, controller: AppController) -> None:
    qtbot.waitUntil(lambda: not controller.backups.busy, timeout=10_000)


def run_until_quiet(qtbot, controller: AppController) -> None:
    """Poll (a scan may lead to a backup) until nothing more starts."""
    for _ in range(5):
        settle(qtbot, controller)
        controller.backups.poll()
    settle(qtbot, controller)


def open_app(
    qtbot, make_controller: MakeController, service: VaultService, fn: BackupFn | None = None
) -> tuple[AppController, MainWindow]:
    controller = make_controller(service)
    if fn is not None:
        controller.backups = BackupDriver(service, backup=fn, parent=controller)
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    settle(qtbot, controller)
    return controller, main


def configure(controller: AppController, folder: Path, **kw: object) -> None:
    settings = BackupSettings(enabled=True, folder=str(folder), **kw)  # type: ignore[arg-type]
    controller.backups.apply_settings(settings)


# -- the schedule alone --------------------------------------------------------------------
def test_schedule_due_backoff_one_at_a_time_and_stale_tickets(clock: ManualClock) -> None:
    s = BackupSchedule(clock)
    assert s.begin() is None  # not started
    s.start()
    s.configure(enabled=True, interval_hours=24)
    assert not s.due()  # the folder was not looked at yet
    s.set_newest(clock.now() - timedelta(hours=23))
    assert not s.due()
    clock.advance(HOUR)
    ticket = s.begin()
    assert ticket is not None
    assert s.begin() is None and not s.due()  # never two at once
    s.request()
    assert s.begin() is None
    assert s.finish(ticket, False)
    assert s.failures == 1 and s.due()  # asked for during the run: at once after it
    ticket = s.begin()
    assert ticket is not None and s.finish(ticket, False)
    assert s.failures == 2 and not s.due()  # backing off
    s.reset_backoff()
    ticket = s.begin()
    assert ticket is not None and s.finish(ticket, False)
    clock.advance(59)
    assert not s.due()
    clock.advance(1)
    ticket = s.begin()
    assert ticket is not None and s.finish(ticket, False)
    clock.advance(119)
    assert not s.due()  # 2 min after the second failure
    clock.advance(1)
    ticket = s.begin()
    assert ticket is not None and s.finish(ticket, True)
    assert s.failures == 0 and s.newest == clock.now() and not s.due()
    clock.advance(24 * HOUR - 1)
    assert not s.due()
    clock.advance(1)
    assert s.due()
    ticket = s.begin()
    assert ticket is not None
    s.stop()  # locked meanwhile
    assert not s.finish(ticket, True)
    s.start()
    s.configure(enabled=False, interval_hours=24)
    s.set_newest(None)
    assert not s.due()  # off
    s.request()
    assert s.due()  # "Back up now" works while off
    assert s.backoff_delay(100) == 3600


# -- in the app -----------------------------------------------------------------------------
def test_scheduled_backup_runs_when_due_and_not_before(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "drive"
    folder.mkdir()
    run_until_quiet(qtbot, controller)
    assert mine(new_service, folder) == []  # no folder chosen: nothing runs
    assert controller.backups.status == BackupStatus() and main.backup_banner.isHidden()
    assert main.backup_banner.status_label.text() == "Backups are off"
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1  # none there: at once
    assert main.backup_banner.status_label.text() == "Backed up just now"
    clock.advance(24 * HOUR - 60)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1  # not before the interval
    assert main.backup_banner.status_label.text() == "Backed up 23 h ago"
    assert main.backup_banner.isHidden()
    clock.advance(60)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 2
    assert new_service.audit_entries(action="backup")


def test_keeps_the_last_n_and_leaves_other_files(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, _main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "drive"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not ours")
    (folder / "tacit-backup-20000101T000000Z.tacitbackup").write_bytes(b"not a backup")
    configure(controller, folder, keep=2)
    made: list[BackupReport] = []
    controller.backups.backed_up.connect(made.append)
    for _ in range(4):
        run_until_quiet(qtbot, controller)
        clock.advance(24 * HOUR)
    assert len(made) == 4
    assert mine(new_service, folder) == [made[3].file, made[2].file]  # the newest two
    assert (folder / "holiday.jpg").exists()
    assert (folder / "tacit-backup-20000101T000000Z.tacitbackup").exists()


def test_missing_folder_warns_without_crashing_and_recovers(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "usb-drive" / "Tacit backups"  # the drive is unplugged
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    assert main.backup_banner.isVisibleTo(main)
    assert "missing" in main.backup_banner.label.text()
    assert not folder.exists()  # never made again on the internal disk
    qtbot.mouseClick(main.backup_banner.settings_button, LEFT)  # "Backup settings…"
    dialogs = [w for w in main.findChildren(SettingsDialog) if w.isVisible()]
    assert len(dialogs) == 1 and dialogs[0].backups is not None
    assert dialogs[0].backups.folder.text() == str(folder)
    dialogs[0].reject()
    qtbot.mouseClick(main.backup_banner.now_button, LEFT)  # "Back up now": same answer
    run_until_quiet(qtbot, controller)
    assert controller.backups.status.error_code == "backup_folder_missing"
    assert not folder.exists()
    folder.mkdir(parents=True)  # plugged in again: noticed at the next look
    clock.advance(60)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1
    assert main.backup_banner.isHidden()


def test_older_than_48_hours_warns_and_a_fresh_backup_clears_it(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder, interval_hours=72)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1 and main.backup_banner.isHidden()
    clock.advance(48 * HOUR)
    run_until_quiet(qtbot, controller)
    assert main.backup_banner.isHidden()  # 48 h exactly: not yet
    clock.advance(60)
    run_until_quiet(qtbot, controller)
    assert main.backup_banner.isVisibleTo(main)
    assert main.backup_banner.label.text() == "The newest backup is 2 days old."
    assert len(mine(new_service, folder)) == 1  # the interval is 72 h: none ran
    qtbot.mouseClick(main.backup_banner.now_button, LEFT)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 2
    assert main.backup_banner.isHidden()
    assert main.backup_banner.status_label.text() == "Backed up just now"


def test_a_backup_from_the_banner_shows_its_progress_on_the_ui_thread(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder, interval_hours=72)
    run_until_quiet(qtbot, controller)
    clock.advance(49 * HOUR)  # stale: the banner and its "Back up now" show
    run_until_quiet(qtbot, controller)
    banner = main.backup_banner
    assert banner.isVisibleTo(main) and not banner.progress.busy
    seen: list[tuple[float, bool]] = []
    controller.backups.progress_changed.connect(
        lambda f: seen.append((f, threading.current_thread() is threading.main_thread()))
    )
    shown: list[tuple[bool, bool]] = []  # (panel busy, status label hidden) while running
    controller.backups.status_changed.connect(
        lambda s: shown.append((banner.progress.busy, banner.status_label.isHidden()))
        if s.state == "running" else None
    )  # fmt: skip
    qtbot.mouseClick(banner.now_button, LEFT)
    assert controller.backups.busy and banner.progress.busy
    assert banner.progress.caption.text() == "Backing up…"
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 2
    fractions = [f for f, _ in seen]
    assert all(on_ui for _, on_ui in seen)
    assert any(0.0 < f < 1.0 for f in fractions) and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert shown and all(busy and hidden for busy, hidden in shown)
    qtbot.waitUntil(lambda: banner.progress.bar.value() == banner.progress.STEPS, timeout=2000)
    assert not banner.progress.busy and banner.progress.isHidden()  # done: the status again
    assert banner.status_label.text() == "Backed up just now"
    assert not banner.status_label.isHidden() and controller.backups.fraction is None


def test_a_failure_shows_its_code_never_foreign_text(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    calls: list[int] = []

    def failing(svc: VaultService, folder: Path) -> BackupReport:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError(f"{FOREIGN} in {folder}")
        raise ValueError(FOREIGN)  # a bug: not even its type reaches the window

    controller, main = open_app(qtbot, make_controller, new_service, failing)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    assert len(calls) == 1
    assert main.backup_banner.status_label.text() == "Backup failed (storage_error)"
    assert main.backup_banner.isVisibleTo(main)
    assert "(storage_error)" in main.backup_banner.label.text()
    assert FOREIGN[:17] not in live_texts() and "No space left" not in live_texts()
    clock.advance(59)
    run_until_quiet(qtbot, controller)
    assert len(calls) == 1  # backing off
    clock.advance(1)
    run_until_quiet(qtbot, controller)
    assert len(calls) == 2
    assert main.backup_banner.status_label.text() == "Backup failed (unexpected)"
    assert FOREIGN[:17] not in live_texts() and "ValueError" not in live_texts()


def test_after_a_recovery_key_unlock_the_banner_asks_for_a_passphrase(
    qtbot, make_controller: MakeController, vault_dir: Path, clock: ManualClock, keychain,
    tmp_path: Path,
) -> None:  # fmt: skip
    folder = tmp_path / "drive"
    folder.mkdir()
    service = VaultService(vault_dir, clock=clock, keychain=keychain)
    key = service.create(Passphrase.from_str(PASSPHRASE))
    service.set_backup_settings(BackupSettings(folder=str(folder)))
    service.lock()
    controller = make_controller(service)
    controller.start()
    # The unlock screen asks for a new passphrase after the recovery key; a main window
    # opened before that (or any other way in without the passphrase) must say so.
    service.unlock_with_recovery_key(key)
    controller._open_main()
    main = controller.main_window
    assert main is not None
    run_until_quiet(qtbot, controller)
    assert mine(service, folder) == []
    assert main.backup_banner.isVisibleTo(main)
    assert "set a new passphrase to resume backups" in main.backup_banner.label.text()
    assert main.backup_banner.now_button.isHidden()
    clock.advance(2 * HOUR)
    run_until_quiet(qtbot, controller)
    assert "set a new passphrase" in main.backup_banner.label.text()  # no retry loop
    service.change_passphrase(Passphrase.from_str("a brand new passphrase 9 lanterns"))
    controller.lock()
    controller.unlock_window.reset()


def test_on_quit_a_backup_is_written_after_the_drafts_and_before_the_lock(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    seen: list[tuple[bool, str]] = []
    note_id: list[str] = []

    def watching(svc: VaultService, folder: Path) -> BackupReport:
        body = svc.get_note(note_id[0], record_view=False).body if note_id else ""
        seen.append((svc.is_unlocked, body))
        return backup.create_backup(svc, folder)

    controller, main = open_app(qtbot, make_controller, new_service, watching)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1
    add_client(main, qtbot, "Quitting Client")
    new_note(main, qtbot, "soap")
    assert main.editor.note_id is not None
    note_id.append(main.editor.note_id)
    main.editor.body.setPlainText("draft typed just before quitting")
    assert main.editor.dirty
    clock.advance(60)
    controller.shutdown()
    assert not new_service.is_unlocked
    assert len(mine(new_service, folder)) == 2
    assert seen[-1] == (True, "draft typed just before quitting")


def test_the_backup_at_quit_shows_its_progress_while_the_app_waits(
    qtbot, make_controller: MakeController, new_service: VaultService, clock: ManualClock,
    tmp_path: Path,
) -> None:  # fmt: skip
    controller, main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    banner = main.backup_banner
    seen: list[tuple[float, int, bool, str]] = []
    controller.backups.quit_progress.connect(
        lambda f: seen.append((f, banner.progress.bar.value(), banner.progress.busy,
                               banner.progress.caption.text()))
    )  # fmt: skip
    clock.advance(60)
    controller.shutdown()
    assert len(mine(new_service, folder)) == 2
    assert seen and seen[-1][:3] == (1.0, banner.progress.STEPS, True)
    assert all(busy and caption.startswith("Backing up before quitting") for *_, busy, caption
               in seen)  # fmt: skip
    assert [value for _, value, _, _ in seen] == sorted(value for _, value, _, _ in seen)


def test_a_failed_or_slow_backup_at_quit_does_not_block_quitting(
    qtbot, make_controller: MakeController, new_service: VaultService, tmp_path: Path
) -> None:
    release = threading.Event()
    mode = ["ok"]

    def fn(svc: VaultService, folder: Path) -> BackupReport:
        if mode[0] == "hang":
            release.wait(10)
            raise StorageError(FOREIGN)
        return backup.create_backup(svc, folder)

    controller, main = open_app(qtbot, make_controller, new_service, fn)
    folder = tmp_path / "drive"
    folder.mkdir()
    configure(controller, folder)
    run_until_quiet(qtbot, controller)
    add_client(main, qtbot, "Slow Drive Client")
    new_note(main, qtbot, "soap")
    note = main.editor.note_id
    assert note is not None
    main.editor.body.setPlainText("kept although the backup hangs")
    mode[0] = "hang"
    controller.backups.quit_wait_ms = 300
    controller.shutdown()  # returns although the backup has not
    release.set()
    assert controller.backups.wait(5000)
    assert not new_service.is_unlocked
    new_service.unlock(Passphrase.from_str(PASSPHRASE))
    assert new_service.get_note(note).body == "kept although the backup hangs"
    new_service.lock()


def test_settings_round_trip_through_the_vault_and_never_reach_qsettings(
    qtbot, make_controller: MakeController, new_service: VaultService, settings_path: Path,
    qsettings: QSettings, tmp_path: Path,
) -> None:  # fmt: skip
    controller, _main = open_app(qtbot, make_controller, new_service)
    folder = tmp_path / "Dr Jane Example practice drive"
    folder.mkdir()
    dialog = controller.open_settings()
    assert isinstance(dialog, SettingsDialog) and dialog.backups is not None
    group = dialog.backups
    assert not group.enabled.isChecked() and group.folder.text() == ""
    group.set_folder(str(folder))  # what the folder picker hands back
    group.keep.setValue(5)
    assert group.enabled.isChecked()
    dialog.accept()
    assert new_service.backup_settings() == BackupSettings(True, str(folder), 5, 24)
    run_until_quiet(qtbot, controller)
    assert len(mine(new_service, folder)) == 1
    qsettings.sync()
    stored = settings_path.read_text(encoding="utf-8") if settings_path.exists() else ""
    values = " ".join(str(qsettings.value(k)) for k in qsettings.allKeys())
    for text in (stored, values):
        assert "Jane Example" not in text and str(folder) not in text
    assert not [k for k in qsettings.allKeys() if "backup" in k.lower()]
    # Lock, unlock: the dialog shows what the vault kept, and the newest backup.
    controller.lock()
    flush_deletes()
    unlock(controller, qtbot, PASSPHRASE)
    run_until_quiet(qtbot, controller)
    again = controller.open_settings()
    assert again is not None and again.backups is not None
    assert again.backups.folder.text() == str(folder)
    assert again.backups.keep.value() == 5 and again.backups.enabled.isChecked()
    assert again.backups.newest.text().startswith("Newest backup: 2026-01-05 09:00 UTC")
    again.reject()


def test_every_mnemonic_in_the_settings_dialog_has_a_buddy(
    qtbot, make_controller: MakeController, new_service: VaultService,
) -> None:  # fmt: skip
    """A label's "&F" works (and is drawn as an underline, not an ampersand) only with a
    buddy; a form row whose field is a layout gets none from Qt (the Backups folder row
    showed "&Folder:")."""
    from PySide6.QtWidgets import QLabel

    controller, _main = open_app(qtbot, make_controller, new_service)
    dialog = controller.open_settings()
    assert dialog is not None
    labels = [lb for lb in dialog.findChildren(QLabel) if re.search(r"&\w", lb.text())]
    assert labels, "the dialog has mnemonics"
    assert [lb.text() for lb in labels if lb.buddy() is None] == []
    dialog.reject()


def test_the_folder_picker_leaves_no_path_in_qts_own_settings(
    qtbot, make_controller: MakeController, new_service: VaultService, tmp_path: Path,
) -> None:  # fmt: skip
    fmt, scope = QSettings.Format.NativeFormat, QSettings.Scope.UserScope
    original = Path(QSettings(fmt, scope, "QtProject").fileName()).parent
    qt_dir = tmp_path / "qt-config"
    QSettings.setPath(fmt, scope, str(qt_dir))
    try:
        QSettings(fmt, scope, "QtProject").setValue("FileDialog/lastVisited", "file:///before")
        controller, _main = open_app(qtbot, make_controller, new_service)
        folder = tmp_path / "Dr Jane Example drive"
        folder.mkdir()
        dialog = controller.open_settings()
        assert dialog is not None and dialog.backups is not None
        dialog.backups.folder.setText(str(folder))
        picker = dialog.backups.choose_folder()
        picker.selectFile(str(folder))
        picker.accept()
        assert dialog.backups.folder.text().startswith(str(tmp_path))
        flush_deletes()
        qtbot.waitUntil(lambda: "before" in (qt_dir / "QtProject.conf").read_text(), timeout=3000)
        text = (qt_dir / "QtProject.conf").read_text()
        assert "Jane" not in text and str(tmp_path) not in text
        dialog.reject()
    finally:
        QSettings.setPath(fmt, scope, str(original))


@pytest.mark.parametrize(("hours", "text"), [(1, "1 h ago"), (30, "1 day ago"), (50, "2 days ago")])
def test_status_texts(hours: int, text: str, clock: ManualClock) -> None:
    when = clock.now() - timedelta(hours=hours)
    assert BackupStatus("ok", when).text(clock.now()) == f"Backed up {text}"
    assert BackupStatus().text(clock.now()) == "Backups are off"
    assert BackupStatus("failed", when, "x").text(clock.now()) == "Backup failed (x)"
