"""Render the README screenshots from sample data: ``python -m app.ui.screenshots --out DIR``.

It builds a throwaway vault with fictional records only (the client "Alex Example" and a
few others), drives the real windows offscreen and saves ``QWidget.grab()`` images:
first-run.png, unlock.png, restore-backup.png (the restore wizard), main-window.png,
search.png, settings.png, main-window-dark.png, and for the clinical record:
signed-note.png (a signed note with an addendum), history-diff.png (a revision's
changes) and audit.png (the audit trail); and for practice mode (``practice_scenes``,
on the fictional ``SamplePractice``): practice-schedule.png and practice-supervision.png.

Invariants: it never opens the user's vault or settings — the sample vault and its
settings file live in a temporary directory removed at the end, and the vault uses the
insecure test KDF (it protects nothing real).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["TACIT_INSECURE_TEST_KDF"] = "1"  # sample data only: no real protection needed

from app.ui.application import create_application
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.practice_sample import SamplePractice
from app.ui.prefs import Preferences, PreferenceStore
from app.ui.qt import QApplication, QFont, QFontDatabase, QSettings, QWidget
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService

SAMPLE_PASSPHRASE = "sample vault for screenshots only"  # noqa: S105 - sample data
CLIENT = "Alex Example"
OTHER_CLIENTS = ("Blair Sample", "Casey Placeholder", "Drew Demo", "Emery Fictional")

_SOAP = (
    "## Subjective\n\nAlex reports sleeping better since starting the wind-down routine "
    "(about 6.5 h most nights). Work stress remains high before deadlines.\n\n"
    "## Objective\n\nArrived on time, well groomed, good eye contact. Affect brighter than "
    "last session; speech normal in rate and volume.\n\n"
    "## Assessment\n\nGeneralised anxiety improving; sleep hygiene plan is helping. No risk "
    "indicators today.\n\n"
    "## Plan\n\nContinue the routine; practise the breathing exercise before meetings. Next "
    "session in two weeks."
)
_NOTES = (
    ("intake", "2026-01-12", "Intake 2026-01-12", "## Presenting problem\n\nSample intake."),
    ("soap", "2026-01-26", "SOAP 2026-01-26", "## Subjective\n\nSleep still poor."),
    ("process", "2026-01-26", "Process note 2026-01-26", "## Process\n\nSample process note."),
    ("soap", "2026-02-09", "SOAP 2026-02-09", "## Subjective\n\nSome sleep improvement."),
    ("dap", "2026-02-23", "DAP 2026-02-23", "## Data\n\nSample DAP note."),
    ("soap", "2026-03-09", "SOAP 2026-03-09", _SOAP),
)


def spin_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the sample app did not reach the expected state")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.2) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def save(widget: QWidget, path: Path) -> None:
    settle()
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path.name}")
    print(path)


_SOAP_DRAFT = _SOAP.replace("sleeping better", "sleeping a little better").replace(
    "Affect brighter than last session; speech", "Affect flat; speech"
)
_ADDENDUM = (
    "Correction: the session lasted 50 minutes, not 45. Alex phoned on 2026-01-28 to say "
    "the new sleep routine has started."
)


def populate(service: VaultService, clock: ManualClock) -> dict[str, str]:
    """Sample records; returns the ids the screenshots open (by name)."""
    client = service.add_client(CLIENT, dob="1988-04-02", email="alex@example.org")
    for name in OTHER_CLIENTS:
        service.add_client(name)
    ids: dict[str, str] = {}
    for template, date, title, body in _NOTES:
        first = _SOAP_DRAFT if body == _SOAP else body
        note = service.create_note(client.id, template, session_date=date, title=title, body=first)
        ids[title] = note.id
        if date < "2026-02-01" and template != "process":
            service.sign_note(note.id)  # older notes are signed and locked
    service.add_addendum(ids["SOAP 2026-01-26"], _ADDENDUM)
    clock.advance(20 * 60)
    service.edit_note(ids["SOAP 2026-03-09"], body=_SOAP)  # a second revision to compare
    clock.advance(10 * 60)
    return ids


def use_sample_font(app: QApplication) -> None:
    families = QFontDatabase.families()
    for family in ("DejaVu Sans", "Noto Sans", "Liberation Sans"):
        if family in families:
            app.setFont(QFont(family, 10))
            return


def render(out: Path, workdir: Path) -> None:
    app = create_application([])
    use_sample_font(app)
    clock = ManualClock(datetime(2026, 3, 9, 10, 30, tzinfo=UTC))
    settings = QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat)
    prefs = PreferenceStore(settings)
    prefs.save(Preferences(theme="light"))

    # First run, with a passphrase typed in (strength meter visible).
    fresh = VaultService(workdir / "fresh", clock=clock, keychain=MemoryKeychain())
    first = AppController(app, fresh, prefs, install_hooks=False)
    first.start()
    window = first.first_run
    assert window is not None
    window.clinician.setText("Dr. Sam Rivera")
    window.form.passphrase.setText("maple orbit quietly thunder")
    window.form.confirm.setText("maple orbit quietly thunder")
    save(window, out / "first-run.png")
    first.shutdown()

    service = VaultService(workdir / "vault", clock=clock, keychain=MemoryKeychain())
    service.create(Passphrase.from_str(SAMPLE_PASSPHRASE), clinician="Dr. Sam Rivera")
    ids = populate(service, clock)
    service.lock()
    controller = AppController(app, service, prefs, install_hooks=False)
    controller.start()
    save(controller.unlock_window, out / "unlock.png")
    restore = controller.unlock_window.open_backup_restore()
    save(restore, out / "restore-backup.png")
    restore.reject()

    controller.unlock_window.passphrase.setText(SAMPLE_PASSPHRASE)
    controller.unlock_window.unlock()
    spin_until(lambda: controller.main_window is not None)
    main = controller.main_window
    assert main is not None
    main.resize(1280, 760)
    main.notes_view.selectRow(0)
    save(main, out / "main-window.png")

    main.search_field.setText("sleep")
    spin_until(lambda: main.search_model.rowCount() > 0)
    save(main, out / "search.png")
    main.search_field.clear()

    dialog = controller.open_settings()
    assert dialog is not None
    save(dialog, out / "settings.png")
    dialog.reject()

    main.open_note(ids["SOAP 2026-01-26"], main.notes.client_id or "")
    save(main, out / "signed-note.png")

    main.open_note(ids["SOAP 2026-03-09"], main.notes.client_id or "")
    history = main.show_history()
    assert history is not None
    history.resize(720, 560)
    save(history, out / "history-diff.png")
    history.reject()

    audit = main.show_audit()
    spin_until(lambda: not audit.model.loading)
    audit.resize(1100, 520)
    audit.view.scrollToBottom()
    audit.verify_chain()
    spin_until(lambda: audit.last_verdict is not None)
    save(audit, out / "audit.png")
    audit.reject()

    main.notes_view.selectRow(0)
    practice_scenes(main, out)

    controller.apply_preferences(Preferences(theme="dark"))
    main.notes_view.selectRow(0)
    save(main, out / "main-window-dark.png")
    controller.shutdown()


def practice_scenes(main: MainWindow, out: Path) -> None:
    """The schedule (as the owner) and supervision (as a supervisor, a note opened)."""
    sample = SamplePractice("owner")
    menu = main.practice
    menu.factory = lambda _service: sample
    menu.refresh()
    schedule = menu.open_schedule()
    assert schedule is not None
    spin_until(lambda: schedule.table.rowCount() > 0 and not schedule.is_busy)
    schedule.resize(860, 420)
    schedule.table.selectRow(5)
    save(schedule, out / "practice-schedule.png")
    schedule.reject()
    sample.role = "supervisor"
    menu.refresh()
    supervision = menu.open_supervision()
    assert supervision is not None
    spin_until(lambda: supervision.table.rowCount() > 0 and not supervision.is_busy)
    supervision.resize(1180, 560)
    supervision.select("n-4")
    supervision.open_selected()
    spin_until(lambda: supervision.note is not None and not supervision.is_busy)
    save(supervision, out / "practice-supervision.png")
    supervision.reject()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tacit-screenshots-") as workdir:
        render(args.out, Path(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
