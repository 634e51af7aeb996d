"""Start the desktop app: the QApplication, the preferences file, the service, the
controller; run the event loop; make sure the vault is locked on the way out.

Invariants: nothing here writes a file except QSettings (non-identifying preferences,
see ``prefs``); the vault is locked before ``run`` returns, whatever happened.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from app.ui.controller import AppController
from app.ui.models import icon
from app.ui.prefs import PreferenceStore
from app.ui.qt import QApplication, QSettings, QTimer
from app.vault.service import VaultService

ORGANIZATION = "Tacit"
APPLICATION = "Tacit"
# packaging/check-bundle.sh: say which window came up, then quit (a start-up probe).
SMOKE_ENV = "TACIT_SMOKE_QUIT"


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


def _smoke_quit(app: QApplication) -> None:
    shown = [w.objectName() or type(w).__name__ for w in app.topLevelWidgets() if w.isVisible()]
    sys.stderr.write(f"tacit: smoke: showing {', '.join(shown) or 'no window'}\n")
    app.exit(0 if shown else 1)


def run(vault_dir: Path, argv: list[str] | None = None) -> int:
    app = create_application(argv)
    service = VaultService(vault_dir)
    controller = AppController(app, service, PreferenceStore(default_settings()))
    try:
        controller.start()
        if os.environ.get(SMOKE_ENV) == "1":
            QTimer.singleShot(0, lambda: _smoke_quit(app))
        code = app.exec()
    finally:
        controller.shutdown()
        service.close()
    return int(code)
