"""Idle auto-lock: an app-wide activity filter and a poll timer.

``ActivityFilter`` is installed on the QApplication (like KeePassXC's InactivityTimer):
every keyboard, mouse-button, wheel or touch event anywhere in the app tells the vault
service the user is active. ``IdleWatcher`` polls the service's idle state machine (which
runs on the service's injectable clock) and, once the timeout has passed, asks for a lock
through ``on_idle`` so the caller can save drafts first; ``service.check_idle()`` is the
backstop that locks regardless.

Invariant: the filter never consumes an event (always returns False) and does O(1) work.
"""

from __future__ import annotations

from collections.abc import Callable

from app.ui.qt import QEvent, QObject, QTimer
from app.vault.service import VaultService

ACTIVITY_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.Wheel,
        QEvent.Type.TouchBegin,
        QEvent.Type.TabletPress,
        QEvent.Type.InputMethod,
    }
)


class ActivityFilter(QObject):
    def __init__(self, on_activity: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_activity = on_activity

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in ACTIVITY_EVENTS:
            self._on_activity()
        return False


class IdleWatcher(QObject):
    """Polls the service every ``interval_ms`` while the vault is unlocked."""

    def __init__(
        self,
        service: VaultService,
        on_idle: Callable[[], None],
        *,
        interval_ms: int = 1000,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._on_idle = on_idle
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self._service.record_activity()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def poll(self) -> None:
        if not self._service.is_unlocked:
            self.stop()
            return
        if self._service.idle_remaining() <= 0.0:
            self._on_idle()  # saves drafts, then locks
        self._service.check_idle()  # backstop: locks even if on_idle could not
