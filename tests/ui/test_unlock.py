"""The unlock screen: no client data, wrong passphrase with a growing delay, the recovery
key path, and the first-run passphrase policy."""

from __future__ import annotations

import pytest

from app.errors import WrongPassphraseError
from app.ui.controller import AppController
from app.ui.qt import Qt
from app.ui.unlock import PAGE_NEW_PASSPHRASE, PAGE_RECOVERY, failure_delay
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.conftest import MakeController
from tests.ui.helpers import LEFT, live_texts, unlock

CLIENT = "Philippa Unlockscreen"
NEW_PASSPHRASE = "violet harbour lantern seventeen"


@pytest.fixture
def locked_service(service: VaultService) -> VaultService:
    """A vault with one client and one note, locked."""
    client = service.add_client(CLIENT)
    service.create_note(client.id, "soap", body="lorem ipsum canary text")
    service.lock()
    return service


def attempt(qtbot, controller: AppController, text: str) -> None:
    window = controller.unlock_window
    qtbot.keyClicks(window.passphrase, text)
    qtbot.mouseClick(window.unlock_button, LEFT)
    qtbot.waitUntil(lambda: not window.busy.busy, timeout=10_000)


def test_failure_delay_grows() -> None:
    assert [failure_delay(n) for n in range(1, 8)] == [0, 0, 2, 4, 8, 16, 32]
    assert failure_delay(100) == 300


def test_wrong_passphrase_message_then_growing_delay(
    qtbot, make_controller: MakeController, locked_service: VaultService
) -> None:
    controller = make_controller(locked_service)
    controller.start()
    window = controller.unlock_window
    assert window.isVisible() and controller.first_run is None
    assert CLIENT not in live_texts()  # the unlock screen shows no client data

    attempt(qtbot, controller, "not the passphrase")
    assert window.error.isVisible() and window.error.text() == "Wrong passphrase."
    assert window.passphrase.text() == ""  # cleared after every attempt
    assert window.passphrase.isEnabled()
    attempt(qtbot, controller, "still not it")
    assert window.passphrase.isEnabled()
    attempt(qtbot, controller, "third time")
    assert "try again in 2 s" in window.error.text()
    assert not window.passphrase.isEnabled() and not window.unlock_button.isEnabled()
    window.unlock()  # ignored while waiting
    assert not window.busy.busy
    window.tick()
    assert not window.passphrase.isEnabled()
    assert "1 s" in window.error.text()
    window.tick()
    assert window.passphrase.isEnabled() and window.unlock_button.isEnabled()
    attempt(qtbot, controller, "fourth wrong")
    assert "4 s" in window.error.text() and window.wait_left == 4
    for _ in range(4):
        window.tick()

    main = unlock(controller, qtbot, PASSPHRASE)
    assert window.failures == 0
    assert main.client_pane.model.rowCount() == 1


def test_failure_delay_survives_a_restart(
    qtbot,
    make_controller: MakeController,
    locked_service: VaultService,
    vault_dir,
    clock: ManualClock,
    keychain: MemoryKeychain,
) -> None:
    first = make_controller(locked_service)
    first.start()
    for text in ("wrong one", "wrong two", "wrong three"):
        attempt(qtbot, first, text)
    assert first.unlock_window.wait_left == 2
    first.shutdown()  # the app quits while the user still has to wait

    restarted = VaultService(vault_dir, clock=clock, keychain=keychain)
    assert restarted.failed_unlocks() == 3
    controller = make_controller(restarted)
    controller.start()
    window = controller.unlock_window
    assert window.failures == 3 and window.wait_left == failure_delay(3) == 2
    assert not window.passphrase.isEnabled() and not window.unlock_button.isEnabled()
    assert "Try again in 2 s" in window.error.text()
    window.tick()
    window.tick()
    assert window.passphrase.isEnabled()
    attempt(qtbot, controller, "wrong four")  # the count goes on from where it was
    assert window.failures == 4 and window.wait_left == 4
    for _ in range(4):
        window.tick()
    unlock(controller, qtbot, PASSPHRASE)
    controller.lock()  # the failures are in the trail now; the count starts again
    assert restarted.failed_unlocks() == 0
    assert window.passphrase.isEnabled() and window.wait_left == 0


def test_recovery_key_then_new_passphrase(
    qtbot,
    make_controller: MakeController,
    vault_dir,
    clock: ManualClock,
    keychain: MemoryKeychain,
) -> None:
    service = VaultService(vault_dir, clock=clock, keychain=keychain)
    recovery_key = service.create(Passphrase.from_str(PASSPHRASE))
    service.lock()
    controller = make_controller(service)
    controller.start()
    window = controller.unlock_window
    qtbot.mouseClick(window.recovery_link, LEFT)
    assert window.stack.currentIndex() == PAGE_RECOVERY
    qtbot.keyClicks(window.recovery_key, "TACIT-0000-0000")
    qtbot.mouseClick(window.recovery_button, LEFT)
    qtbot.waitUntil(lambda: not window.busy.busy, timeout=10_000)
    assert window.recovery_error.isVisible() and not service.is_unlocked

    qtbot.keyClicks(window.recovery_key, recovery_key.lower().replace("-", " "))
    qtbot.mouseClick(window.recovery_button, LEFT)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == PAGE_NEW_PASSPHRASE, timeout=10_000)
    assert service.is_unlocked and controller.main_window is None  # not before a new one
    assert not window.set_button.isEnabled()
    qtbot.keyClicks(window.new_form.passphrase, NEW_PASSPHRASE)
    qtbot.keyClicks(window.new_form.confirm, NEW_PASSPHRASE)
    qtbot.mouseClick(window.set_button, LEFT)
    qtbot.waitUntil(lambda: controller.main_window is not None, timeout=10_000)

    controller.lock()
    with pytest.raises(WrongPassphraseError):
        service.unlock(Passphrase.from_str(PASSPHRASE))
    unlock(controller, qtbot, NEW_PASSPHRASE)


def test_first_run_refuses_weak_passphrases(qtbot, controller: AppController) -> None:
    controller.start()
    window = controller.first_run
    assert window is not None
    form = window.form
    qtbot.keyClicks(form.passphrase, "short")
    qtbot.keyClicks(form.confirm, "short")
    assert not window.create_button.isEnabled()
    assert "12 characters" in form.advice.text()
    form.clear()
    qtbot.keyClicks(form.passphrase, "password1234")  # long enough, but guessable
    qtbot.keyClicks(form.confirm, "password1234")
    assert form.meter.value() < 3
    assert not window.create_button.isEnabled()
    form.clear()
    qtbot.keyClicks(form.passphrase, PASSPHRASE)
    qtbot.keyClicks(form.confirm, PASSPHRASE + "x")
    assert "differ" in form.match.text()
    assert not window.create_button.isEnabled()
    qtbot.keyClick(form.confirm, Qt.Key.Key_Backspace)
    assert window.create_button.isEnabled()
    assert form.meter.value() >= 3
