"""Background sync in the app with a scripted ``SyncService`` (no network): the status bar
texts, sync after a change (debounced on the injected clock), "Sync now", offline as a
silent status, no two syncs at once, and a lock while a sync runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from app.errors import OfflineError, TacitError, TlsError
from app.sync import protocol
from app.sync.protocol import RateLimitedError, TokenReusedError
from app.sync.scheduler import Phase
from app.ui.controller import AppController
from app.ui.mainwindow import MainWindow
from app.ui.qt import QApplication, QDialog, QMessageBox
from app.ui.syncing import SyncDriver, SyncStatus, ago, plain_message, record_pending
from app.vault.clock import ManualClock
from app.vault.service import VaultService
from app.vault.syncstore import SyncStore
from tests.conftest import PASSPHRASE
from tests.ui.conftest import MakeController
from tests.ui.helpers import add_client, create_vault, new_note

SECRET = "the kestrel-canary hovered over the field"
Step = Callable[["FakeSync"], dict[str, Any]]


class FakeStore:
    def __init__(self, linked: bool) -> None:
        self.linked = linked
        self.vault_id = "vault"

    def get(self, key: str) -> str | None:
        return "account-1" if key == "account_id" and self.linked else None


class FakeSync:
    """Runs the scripted steps in order, one per ``sync()``; then succeeds."""

    def __init__(self, vault: VaultService, steps: list[Step], linked: bool = True) -> None:
        self.vault = vault
        self.store = FakeStore(linked)
        self.steps = steps
        self.calls = 0
        self.running = 0
        self.overlapped = False
        self.pending_by_kind = {"note": 0, "audit": 3}
        self.closed = False
        self.kwargs: list[dict[str, Any]] = []

    def sync(self, **kwargs: Any) -> dict[str, Any]:
        self.kwargs.append(kwargs)
        self.running += 1
        self.overlapped |= self.running > 1
        try:
            self.calls += 1
            step = self.steps.pop(0) if self.steps else None
            return step(self) if step else {"pushed": 1, "pulled": 0, "conflicts": 0}
        finally:
            self.running -= 1

    def sync_status(self) -> dict[str, Any]:
        return {"pending_by_kind": dict(self.pending_by_kind), "last_sync": "2026-01-05T09:00"}

    def close(self) -> None:
        self.closed = True


def raising(error: TacitError) -> Step:
    def step(_sync: FakeSync) -> dict[str, Any]:
        raise error

    return step


@pytest.fixture
def steps() -> list[Step]:
    return []


@pytest.fixture
def made() -> list[FakeSync]:
    return []


@pytest.fixture
def app(
    qtbot, make_controller: MakeController, new_service: VaultService, steps: list[Step],
    made: list[FakeSync],
) -> tuple[AppController, MainWindow]:  # fmt: skip
    def factory(vault: VaultService) -> Any:
        fake = FakeSync(vault, steps)
        made.append(fake)
        return fake

    controller = make_controller(new_service)
    controller.sync = type(controller.sync)(new_service, factory=factory, parent=controller)
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    return controller, main


def settle(qtbot, controller: AppController) -> None:
    qtbot.waitUntil(lambda: not controller.sync.scheduler.running, timeout=5000)


def no_dialogs() -> bool:
    return not any(
        isinstance(w, QDialog | QMessageBox) and w.isVisible()
        for w in QApplication.topLevelWidgets()
    )


def test_status_texts() -> None:
    assert ago(5) == "just now"
    assert ago(125) == "2 min ago"
    assert ago(7300) == "2 h ago"
    assert ago(86400) == "1 day ago"
    assert SyncStatus().text(0) == "Sync is off"
    assert SyncStatus(state="syncing").text(0) == "Syncing…"
    assert SyncStatus(state="idle", pending=0, last_success=0).text(130) == "Synced 2 min ago"
    assert SyncStatus(state="idle", pending=2, last_success=0).text(1) == (
        "Synced just now · 2 changes waiting"
    )
    assert (
        SyncStatus(state="offline", pending=1).text(0) == "Offline — will retry · 1 change waiting"
    )
    assert plain_message(TlsError()) == "The server's certificate could not be verified"
    server_words = protocol.ApiError("<b>whatever a server says</b>")
    server_words.code = "some_new_code"
    assert plain_message(server_words) == (
        "The sync server refused the request (some_new_code)."
    )  # a server's own text is never shown
    assert record_pending({"audit": 5, "items_key": 1, "note": 2, "client": 1}) == 3


def test_syncs_at_unlock_after_a_change_and_on_demand(
    qtbot, app: tuple[AppController, MainWindow], made: list[FakeSync], clock: ManualClock
) -> None:
    controller, main = app
    (fake,) = made
    settle(qtbot, controller)
    assert fake.calls == 1  # at unlock
    assert main.sync_label.text() == "Synced just now"
    assert controller.sync.status.pending == 0  # audit rows are not "changes"
    add_client(main, qtbot, "Kestrel Canary")
    new_note(main, qtbot, "soap")
    main.editor.body.setPlainText(SECRET)
    assert main.editor.save_now()
    clock.advance(2)
    controller.sync.poll()
    assert fake.calls == 1  # debounced: 3 s after the last change
    clock.advance(1)
    controller.sync.poll()
    settle(qtbot, controller)
    assert fake.calls == 2
    clock.advance(150)
    controller.sync.poll()
    assert main.sync_label.text() == "Synced 2 min ago"
    main.sync_now_action.trigger()
    settle(qtbot, controller)
    assert fake.calls == 3
    clock.advance(300)  # periodic
    controller.sync.poll()
    settle(qtbot, controller)
    assert fake.calls == 4
    assert not fake.overlapped


def test_offline_is_a_quiet_status_then_backoff_then_recovery(
    qtbot, app: tuple[AppController, MainWindow], made: list[FakeSync], steps: list[Step],
    clock: ManualClock, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    controller, main = app
    caplog.set_level(logging.DEBUG)
    settle(qtbot, controller)
    steps.extend([raising(OfflineError()), raising(OfflineError())])
    made[0].pending_by_kind = {"note": 2}
    main.sync_now()
    settle(qtbot, controller)
    assert main.sync_label.text() == "Offline — will retry"
    assert controller.sync.phase is Phase.BACKING_OFF
    assert no_dialogs()
    first = controller.sync.scheduler.due_in()
    assert first is not None and 3.75 <= first <= 5
    clock.advance(first)
    controller.sync.poll()
    settle(qtbot, controller)
    second = controller.sync.scheduler.due_in()
    assert second is not None and 7.5 <= second <= 10  # grows
    clock.advance(second)
    controller.sync.poll()
    settle(qtbot, controller)
    assert main.sync_label.text() == "Synced just now · 2 changes waiting"
    assert controller.sync.scheduler.failures == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert no_dialogs()


def test_errors_show_their_plain_message_and_sign_in_problems_pause(
    qtbot, app: tuple[AppController, MainWindow], made: list[FakeSync], steps: list[Step],
    clock: ManualClock,
) -> None:  # fmt: skip
    controller, main = app
    settle(qtbot, controller)
    steps.append(raising(RateLimitedError(retry_after=120)))
    main.sync_now()
    settle(qtbot, controller)
    assert main.sync_label.text() == "Sync failed: The server asks us to slow down — will retry"
    assert controller.sync.scheduler.due_in() == pytest.approx(120)
    steps.append(raising(TokenReusedError()))
    main.sync_now()
    settle(qtbot, controller)
    assert main.sync_label.text() == "The session was ended for safety — sign in again"
    assert controller.sync.phase is Phase.PAUSED
    calls = made[0].calls
    clock.advance(3600)
    controller.sync.poll()
    assert made[0].calls == calls  # paused: no retries until the user acts
    assert no_dialogs()


def test_not_linked_means_sync_is_off(
    qtbot, make_controller: MakeController, new_service: VaultService
) -> None:
    made: list[FakeSync] = []

    def factory(vault: VaultService) -> Any:
        made.append(FakeSync(vault, [], linked=False))
        return made[-1]

    controller = make_controller(new_service)
    controller.sync = type(controller.sync)(new_service, factory=factory, parent=controller)
    create_vault(controller, qtbot, PASSPHRASE)
    main = controller.main_window
    assert main is not None
    assert main.sync_label.text() == "Sync is off"
    assert controller.sync.phase is Phase.PAUSED
    assert made[0].calls == 0


def test_lock_during_a_sync_drops_it_silently(
    qtbot, app: tuple[AppController, MainWindow], made: list[FakeSync], steps: list[Step],
    new_service: VaultService, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    controller, main = app
    settle(qtbot, controller)
    caplog.set_level(logging.DEBUG)
    started, release = threading.Event(), threading.Event()
    seen: list[BaseException] = []
    store: SyncStore = new_service.sync_store()

    def slow(_sync: FakeSync) -> dict[str, Any]:
        started.set()
        release.wait(10)  # "the network": the vault locks meanwhile
        try:
            store.pending_count()  # what the engine does next: touch the vault
        except TacitError as exc:
            seen.append(exc)
            raise
        return {"pushed": 0, "pulled": 0}

    steps.append(slow)
    main.sync_now()
    assert started.wait(5)
    assert main.sync_label.text() == "Syncing…"
    fake = made[0]
    controller.lock()
    assert not new_service.is_unlocked
    assert fake.closed  # the transport is closed at lock
    assert controller.sync.phase is Phase.STOPPED
    release.set()
    assert controller.sync.wait(5000)
    qtbot.wait(50)  # let a (dropped) result arrive
    assert len(seen) == 1 and seen[0].code == "integrity_error"  # the closed database
    assert controller.sync.status == SyncStatus()  # nothing surfaced
    assert controller.main_window is None and controller.unlock_window.isVisible()
    assert no_dialogs()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not new_service.is_unlocked


def test_app_syncs_defer_audit_and_skip_the_order_check_while_orders_are_watched(
    qtbot, service: VaultService
) -> None:
    """The app's order watcher holds a long-poll open, so its syncs need not ask again;
    when it is not running they do. Background syncs let audit entries wait."""
    watched = [False]
    driver = SyncDriver(service, orders_watched=lambda: watched[0])
    fake = FakeSync(service, [])
    driver._run(fake)  # type: ignore[arg-type]
    watched[0] = True
    driver._run(fake)  # type: ignore[arg-type]
    assert fake.kwargs == [
        {"check_orders": True, "defer_audit": True},
        {"check_orders": False, "defer_audit": True},
    ]
