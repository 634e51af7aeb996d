"""Start the desktop app: the QApplication, the preferences file, the service, the
controller; run the event loop; make sure the vault is locked on the way out.

Invariants: nothing here writes a file except QSettings (non-identifying preferences,
see ``prefs``); the vault is locked before ``run`` returns, whatever happened.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.ui.controller import AppController
from app.ui.models import icon
from app.ui.prefs import PreferenceStore
from app.ui.qt import QApplication, QSettings
from app.vault.service import VaultService

ORGANIZATION = "Tacit"
APPLICATION = "Tacit"


def create_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    program = sys.argv[0] if sys.argv else "tacit"
    app = QApplication([program, *(argv or [])])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setDesktopFileName("tacit")
    app_icon = icon("tacit")
    if not app_icon.isNull():
        app.setWindowIcon(app_icon)
    return app


def default_settings() -> QSettings:
    """The user's preferences file (an INI file on every platform, so it is easy to
    inspect and we never write to the Windows registry)."""
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
    )


def run(vault_dir: Path, argv: list[str] | None = None) -> int:
    app = create_application(argv)
    service = VaultService(vault_dir)
    controller = AppController(app, service, PreferenceStore(default_settings()))
    try:
        controller.start()
        code = app.exec()
    finally:
        controller.shutdown()
        service.close()
    return int(code)
