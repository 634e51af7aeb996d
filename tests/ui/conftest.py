"""Fixtures for the desktop-app tests: a controller on a vault directory with an injected
ManualClock and MemoryKeychain, and QSettings pointed at a temp file only this test uses.
No OS hooks are installed (tests simulate the D-Bus signals by calling the slots)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.ui.controller import AppController
from app.ui.prefs import PreferenceStore
from app.ui.qt import QApplication, QCoreApplication, QEvent, QSettings
from app.vault.clock import ManualClock
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService

MakeController = Callable[..., AppController]  # (service, **AppController keywords)


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    return tmp_path / "settings" / "tacit-test.ini"


@pytest.fixture
def qsettings(settings_path: Path) -> QSettings:
    return QSettings(str(settings_path), QSettings.Format.IniFormat)


@pytest.fixture
def new_service(vault_dir: Path, clock: ManualClock, keychain: MemoryKeychain) -> VaultService:
    """A service on a directory with no vault yet (the first run creates it)."""
    return VaultService(vault_dir, clock=clock, keychain=keychain)


@pytest.fixture
def make_controller(qapp: QApplication, qsettings: QSettings) -> Iterator[MakeController]:
    made: list[AppController] = []

    def make(service: VaultService, **kwargs: Any) -> AppController:
        controller = AppController(
            qapp, service, PreferenceStore(qsettings), install_hooks=False, **kwargs
        )
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.shutdown()
        controller.runner.wait(5000)
        controller.unlock_window.deleteLater()
        controller.deleteLater()
    QApplication.clipboard().clear()
    flush_deletes()


@pytest.fixture
def controller(make_controller: MakeController, new_service: VaultService) -> AppController:
    return make_controller(new_service)


def flush_deletes() -> None:
    """Run pending deleteLater() calls now."""
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
