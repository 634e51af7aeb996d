"""Practice mode in the app against a real sync server and the real ``PracticeService``:
a practice built with the CLI (tests/sync/test_practice_e2e.py's ``Practice``), then the
supervisor's vault opened in the app — the menu shows the supervisor's entries, the
Supervision window opens the clinician's note (audited) and co-signs it, and the owner's
CLI sees a co-signature that matches the note."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ui.practice_menu import PracticeMenu
from app.ui.practice_supervision import SupervisionDialog
from app.vault.keychain import NoKeychain
from app.vault.service import VaultService
from tests.sync.server.helpers import RunningServer, running_server
from tests.sync.test_practice_e2e import C1_CLIENT, C1_NOTE, Practice
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, unlock


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.mark.soak  # about 2.5 minutes: `make soak` runs it (CI has the CLI end-to-end)
def test_a_supervisor_reads_and_cosigns_in_the_app(
    qtbot, make_controller: MakeController, tmp_path: Path, server: RunningServer
) -> None:
    (tmp_path / "practice").mkdir()
    p = Practice(tmp_path / "practice", server)
    client = p.c1.client(C1_CLIENT)
    note_id = p.c1.note_with(client, C1_NOTE, "soap")
    for member in (p.c1, p.owner, p.sup):
        member.sync()

    vault = VaultService(p.sup.vault, keychain=NoKeychain())
    controller = make_controller(vault)
    controller.start()
    qtbot.waitUntil(lambda: not controller.unlock_window.busy.busy, timeout=10_000)
    main = unlock(controller, qtbot, p.sup.env["TACIT_PASSPHRASE"])
    menu = main.practice
    qtbot.waitUntil(lambda: menu.role == "supervisor" and menu.active, timeout=10_000)
    assert menu.entries() == ["Schedule…", "Supervision…", "Practice status"]

    dialog = menu.open_supervision()
    assert isinstance(dialog, SupervisionDialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and not dialog.is_busy, timeout=20_000)
    assert dialog.table.item(0, 1).text() == C1_CLIENT
    dialog.table.selectRow(0)
    qtbot.mouseClick(dialog.open_button, LEFT)
    qtbot.waitUntil(lambda: dialog.note is not None and not dialog.is_busy, timeout=20_000)
    assert dialog.view.toPlainText() == C1_NOTE
    assert dialog.cosigns.text() == "Not co-signed yet."
    qtbot.mouseClick(dialog.cosign_button, LEFT)
    qtbot.waitUntil(lambda: "Co-signed" in dialog.error.text(), timeout=20_000)
    # The write is queued and the app syncs at once: wait until the outbox is empty.
    qtbot.waitUntil(lambda: "0 changes" in _queued(menu), timeout=30_000)
    controller.lock()

    p.sup.sync()  # the app's own syncs let fresh audit entries wait; the CLI sends them
    p.owner.sync()
    shown = p.owner.run_ok("practice", "records", "--note", note_id[:8])
    [cosign] = shown["cosignatures"]
    assert cosign["supervisor"] == p.sup.email and cosign["matches"] is True
    audit = p.owner.run_ok("practice", "audit", "--member", p.sup.email)
    assert any(e["record_id"] == note_id for e in audit)  # the app's read was audited


def _queued(menu: PracticeMenu) -> str:
    menu.refresh()
    return f"{int(menu.state.get('queued') or 0)} changes"
