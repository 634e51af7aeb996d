"""The audit viewer: listing after a workload, filters (action, client, date), paging,
chain verification (and tampering), CSV export only with consent, and its lock."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from app.errors import StorageError
from app.ui.audit_viewer import PAGE, AuditFilter, AuditModel, AuditWindow
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.ops import OpRunner
from app.ui.qt import QApplication, QDate, QLabel, Qt
from app.vault.audit import CSV_COLUMNS
from app.vault.clock import ManualClock
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import flush_deletes
from tests.ui.helpers import (
    LEFT,
    activate,
    add_client,
    check_names,
    create_vault,
    live_texts,
    new_note,
)

FIRST, SECOND = "Ignatius Auditworth", "Perpetua Trailsby"


@pytest.fixture
def workload(
    qtbot, controller: AppController, new_service: VaultService, clock: ManualClock
) -> MainWindow:
    """Two clients and a few notes, a day apart: FIRST's on 2026-01-05, SECOND's on
    2026-01-15 (a note is signed)."""
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    add_client(main, qtbot, FIRST)
    new_note(main, qtbot, "soap")
    main.editor.body.setPlainText("first client's words")
    main.save_now()
    clock.advance(10 * 24 * 3600)
    add_client(main, qtbot, SECOND)
    new_note(main, qtbot, "dap")
    note_id = main.editor.note_id
    assert note_id is not None
    main.editor.close_note()
    new_service.sign_note(note_id)
    controller.flush_audit()
    return main


def open_viewer(qtbot, main: MainWindow) -> AuditWindow:
    window = main.show_audit()
    wait_loaded(qtbot, window)
    return window


def wait_loaded(qtbot, window: AuditWindow) -> None:
    qtbot.waitUntil(lambda: not window.model.loading, timeout=5000)


def column(window: AuditWindow, col: int) -> list[str]:
    model = window.model
    return [model.index(r, col).data() for r in range(model.rowCount())]


def client_id(service: VaultService, name: str) -> str:
    return service.list_clients(query=name)[0].id


def test_lists_entries_and_filters_by_action_client_and_date(
    qtbot, workload: MainWindow, new_service: VaultService
) -> None:
    window = open_viewer(qtbot, workload)
    assert window.isVisible() and window.windowTitle() == "Tacit — Audit trail"
    assert check_names(window) >= 8
    everything = new_service.audit_entries()
    assert window.model.rowCount() == len(everything)
    assert column(window, 0) == [str(e.seq) for e in everything]  # oldest first
    assert "create" in column(window, 2) and "sign" in column(window, 2)
    assert f"{len(everything)} entries" == window.count.text()

    window.select_action("sign")
    wait_loaded(qtbot, window)
    assert column(window, 2) == ["sign"]
    assert column(window, 3) == ["note"]
    assert column(window, 5) == [SECOND]  # the client's name, resolved in the app

    window.select_action(None)
    first = client_id(new_service, FIRST)
    window.select_client(first)
    wait_loaded(qtbot, window)
    expected = new_service.audit_entries(client_id=first)
    assert expected and column(window, 0) == [str(e.seq) for e in expected]
    assert set(column(window, 5)) == {FIRST}

    window.select_client(None)
    window.since_on.setChecked(True)  # defaults to 30 days back: everything
    wait_loaded(qtbot, window)
    assert window.model.rowCount() == len(new_service.audit_entries())
    window.since.setDate(QDate(2026, 1, 10))  # only the second client's day
    wait_loaded(qtbot, window)
    later = new_service.audit_entries(since="2026-01-10")
    assert 0 < len(later) < len(everything)
    assert column(window, 0) == [str(e.seq) for e in later]
    assert all(t >= "2026-01-10" for t in column(window, 1))
    window.since_on.setChecked(False)  # back to any date
    wait_loaded(qtbot, window)
    assert window.since.text() == "Any date"
    assert window.model.rowCount() == len(new_service.audit_entries())


def test_verify_chain_then_tampering_is_reported(
    qtbot, workload: MainWindow, new_service: VaultService
) -> None:
    window = open_viewer(qtbot, workload)
    qtbot.mouseClick(window.verify_button, LEFT)
    qtbot.waitUntil(lambda: window.last_verdict is not None, timeout=10_000)
    verdict = window.last_verdict
    assert verdict is not None and verdict.ok
    assert verdict.entries == len(new_service.audit_entries())
    assert f"{verdict.entries} entries verified" in window.verdict.text()

    conn = new_service._db.conn  # type: ignore[union-attr]
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET detail = 'nothing to see' WHERE seq = 4")
    window.last_verdict = None
    window.verify_chain()
    qtbot.waitUntil(lambda: window.last_verdict is not None, timeout=10_000)
    verdict = window.last_verdict
    assert verdict is not None and not verdict.ok and verdict.first_bad_seq == 4
    assert "broken at entry #4" in window.verdict.text()


def test_csv_export_needs_consent_then_writes_and_is_audited(
    qtbot, workload: MainWindow, new_service: VaultService, tmp_path: Path, monkeypatch
) -> None:
    window = open_viewer(qtbot, workload)
    target = tmp_path / "out" / "audit.csv"
    target.parent.mkdir()
    asked: list[bool] = []

    def choose(then):  # stands in for the file dialog
        asked.append(True)
        then(target)

    monkeypatch.setattr(window, "choose_path", choose)
    dialog = window.open_export()
    assert dialog.isVisible()
    assert "NOT encrypted" in " ".join(label.text() for label in dialog.findChildren(QLabel))
    assert not dialog.save_button.isEnabled()
    assert check_names(dialog) >= 3  # the box, Save…, Cancel
    qtbot.mouseClick(dialog.save_button, LEFT)  # disabled: nothing happens
    dialog.accept()  # nor when forced without the box ticked
    assert dialog.isVisible() and not asked and not target.exists()
    assert new_service.audit_entries(action="export") == []

    dialog.consent.setChecked(True)
    assert dialog.save_button.isEnabled()
    rows_before = len(new_service.audit_entries())
    qtbot.mouseClick(dialog.save_button, LEFT)
    assert asked == [True]
    qtbot.waitUntil(lambda: window.last_export is not None, timeout=10_000)
    assert target.exists() and (target.stat().st_mode & 0o777) == 0o600
    table = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == rows_before + 1
    assert FIRST not in target.read_text() and "first client's words" not in target.read_text()
    exports = new_service.audit_entries(action="export")
    assert [(e.record_type, e.detail) for e in exports] == [("audit", f"csv, {rows_before} rows")]
    assert "not encrypted" in window.verdict.text()


def test_export_that_cannot_be_audited_leaves_no_file(
    qtbot, workload: MainWindow, new_service: VaultService, tmp_path: Path, monkeypatch
) -> None:
    window = open_viewer(qtbot, workload)
    target = tmp_path / "audit.csv"

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise StorageError("the trail could not be written")

    monkeypatch.setattr(new_service, "record_event", refuse)
    window.export_to(target, AuditFilter())
    qtbot.waitUntil(lambda: "Not exported" in window.verdict.text(), timeout=10_000)
    assert not target.exists() and window.last_export is None


def test_model_reads_a_growing_prefix(qtbot, service: VaultService, monkeypatch) -> None:
    for i in range(2 * PAGE + 50):
        service.record_event("print", detail=f"sample {i}")
    total = len(service.audit_entries())
    limits: list[int | None] = []
    real = service.audit_entries

    def spy(**kwargs):  # type: ignore[no-untyped-def]
        limits.append(kwargs.get("limit"))
        return real(**kwargs)

    monkeypatch.setattr(service, "audit_entries", spy)
    runner = OpRunner()
    model = AuditModel(service, runner)
    model.set_filters(AuditFilter())
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)
    assert model.rowCount() == PAGE and model.canFetchMore()
    model.fetchMore()
    assert not model.canFetchMore()  # one read at a time
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)
    assert model.rowCount() == 2 * PAGE
    model.fetchMore()
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)
    assert model.rowCount() == total and model.complete and not model.canFetchMore()
    assert limits == [PAGE, 2 * PAGE, 4 * PAGE]
    seqs = [int(model.index(r, 0).data()) for r in range(model.rowCount())]
    assert seqs == list(range(1, total + 1))  # no gap, no repeat
    model.set_filters(AuditFilter(action="print"))
    model.clear()  # a result arriving after clear() is dropped
    runner.wait(5000)
    qtbot.wait(50)
    assert model.rowCount() == 0
    runner.wait(5000)


def test_show_newest_loads_everything(qtbot, workload: MainWindow, new_service: VaultService):
    for i in range(PAGE + 20):
        new_service.record_event("print", detail=f"n{i}")
    window = open_viewer(qtbot, workload)
    assert window.model.rowCount() == PAGE and "scroll for more" in window.count.text()
    qtbot.mouseClick(window.newest_button, LEFT)
    qtbot.waitUntil(lambda: window.model.complete, timeout=5000)
    assert window.model.rowCount() == len(new_service.audit_entries())


def test_keyboard_opens_the_viewer_and_lock_closes_it(
    qtbot, workload: MainWindow, controller: AppController, new_service: VaultService
) -> None:
    flush_deletes()  # the closed new-note dialog must not stay the active window
    activate(qtbot, workload)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is workload, timeout=5000)
    ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(workload.notes_view, Qt.Key.Key_A, ctrl_shift)
    window = workload.audit_window
    assert window is not None and window.isVisible()
    wait_loaded(qtbot, window)
    window.select_client(client_id(new_service, FIRST))
    wait_loaded(qtbot, window)
    note_ids = {e.record_id for e in new_service.audit_entries() if e.record_type == "note"
                and e.record_id}  # fmt: skip
    assert note_ids and FIRST in live_texts()
    assert any(note_id in live_texts() for note_id in note_ids)  # the canaries are real
    model = window.model
    closed: list[bool] = []
    window.destroyed.connect(lambda *_: closed.append(True))

    controller.lock()
    assert controller.main_window is None and not new_service.is_unlocked
    assert model.rowCount() == 0
    texts = live_texts()
    for canary in (FIRST, SECOND, *note_ids):
        assert canary not in texts
    flush_deletes()
    assert closed == [True]
