"""Sync conflicts in the app: two vaults edit the same notes at once and sync (through the
in-memory server of the engine tests); the app on one of them shows the badge, lists the
conflicts without note text, shows both texts side by side, and resolves one each way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.vault.clock import ManualClock
from tests.conftest import PASSPHRASE
from tests.sync.devices import Device, converge
from tests.sync.fakes import FakeServer
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, check_names, live_texts, unlock

CLIENT = "Ignatius Canary-Conflict"
BASE = ("Intake canary-conf-7700", "Progress canary-conf-7800")
FROM_A = ("A wrote canary-conf-7701 about the garden", "A wrote canary-conf-7801 on sleep")
FROM_B = ("B wrote canary-conf-7702 about the garden", "B wrote canary-conf-7802 on sleep")


@pytest.fixture
def conflicted(tmp_path: Path, clock: ManualClock) -> Iterator[tuple[Device, list[str]]]:
    """Vault B, locked, with two open conflicts (one per note)."""
    server = FakeServer()
    a = Device(tmp_path / "a", clock, server)
    a.engine().ensure_items_key()
    b = Device(tmp_path / "b", clock, server)
    client = a.vault.add_client(CLIENT)
    notes = [a.vault.create_note(client.id, "soap", body=body).id for body in BASE]
    converge(a, b)
    for nid, text_a, text_b in zip(notes, FROM_A, FROM_B, strict=True):
        a.vault.edit_note(nid, body=text_a)
        clock.advance(30)
        b.vault.edit_note(nid, body=text_b)
    a.sync()
    assert b.sync().conflicts == 2
    a.vault.lock()
    b.vault.lock()
    yield b, notes
    b.vault.lock()


def test_conflicts_badge_dialog_and_both_resolutions(
    qtbot, make_controller: MakeController, conflicted: tuple[Device, list[str]],
    settings_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    device, notes = conflicted
    service = device.vault
    controller: AppController = make_controller(service)
    controller.start()
    main: MainWindow = unlock(controller, qtbot, PASSPHRASE)
    assert main.sync_label.text() == "Sync is off"  # no account: nothing runs
    assert main.conflicts_button.isVisible()
    assert main.conflicts_button.text() == "⚠ 2 conflicts"

    qtbot.mouseClick(main.conflicts_button, LEFT)
    dialog = main.conflicts_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.windowTitle() == "Tacit — Sync conflicts"
    assert dialog.list.count() == 2
    assert check_names(dialog) >= 5
    rows = [dialog.list.item(i).text() for i in range(2)]
    assert all(CLIENT in row for row in rows)
    for text in (*BASE, *FROM_A, *FROM_B):  # no note text in the list
        assert all(text not in row for row in rows)

    # The first conflict, side by side; keep the current text.
    first = dialog.current
    assert first is not None
    current_before = service.get_note(first.note_id, record_view=False).body
    shown = dialog.current_view.toPlainText(), dialog.conflict_view.toPlainText()
    assert current_before in shown[0]
    index = notes.index(first.note_id)
    other = ({FROM_A[index], FROM_B[index]} - {current_before}).pop()
    assert other in shown[1]
    dialog.show_diff.setChecked(True)  # the other text, with its differences marked
    assert '<span class="ins"' in dialog.conflict_view.toHtml() or "underline" in (
        dialog.conflict_view.toHtml()
    )
    dialog.show_diff.setChecked(False)
    assert "Conflicting text — saved" in dialog.conflict_title.text()
    qtbot.mouseClick(dialog.keep_button, LEFT)
    assert service.get_note(first.note_id, record_view=False).body == current_before
    assert len(service.conflicts()) == 1 and dialog.list.count() == 1
    assert main.conflicts_button.text() == "⚠ 1 conflict"
    assert "Kept the current text." in dialog.message.text()

    # The second: use the other device's text; the replaced one stays in the history.
    second = dialog.current
    assert second is not None and second.note_id != first.note_id
    index = notes.index(second.note_id)
    current_before = service.get_note(second.note_id, record_view=False).body
    other = ({FROM_A[index], FROM_B[index]} - {current_before}).pop()
    main.open_note(second.note_id, service.get_note(second.note_id, record_view=False).client_id)
    assert main.editor.note_id == second.note_id
    qtbot.mouseClick(dialog.use_button, LEFT)
    note = service.get_note(second.note_id, record_view=False)
    assert note.body == other
    assert current_before in {r.body for r in service.note_history(second.note_id)}
    assert main.editor.body.toPlainText() == other  # the open note shows it at once
    assert service.conflicts() == []
    assert dialog.list.count() == 0 and dialog.empty.isVisible()
    assert not main.conflicts_button.isVisible()
    assert service.sync_store().pending_by_kind().get("note", 0) >= 2  # resolutions sync
    actions = [e.action for e in service.audit_entries(action="resolve_conflict")]
    assert len(actions) == 2

    # Lock: the dialog and its texts are gone; no note text in logs or preferences.
    controller.lock()
    everything = live_texts()
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    settings_text = settings_path.read_text("utf-8") if settings_path.exists() else ""
    for text in (CLIENT, *BASE, *FROM_A, *FROM_B):
        assert text not in everything
        assert text not in logged
        assert text not in settings_text
