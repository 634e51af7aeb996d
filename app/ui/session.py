"""Operating-system hooks that lock the vault: system sleep and screen lock.

Linux (freedesktop D-Bus, through QtDBus):
- system bus, ``org.freedesktop.login1.Manager.PrepareForSleep(true)`` → lock (suspend
  and hibernate);
- system bus, ``org.freedesktop.login1.Session.Lock`` on our own session
  (``loginctl lock-session``, and what most desktops send before switching user);
- session bus, ``ActiveChanged(true)`` of ``org.freedesktop.ScreenSaver`` (KDE, Xfce,
  most others) and ``org.gnome.ScreenSaver`` (GNOME) → lock.
Windows (a native event filter on Qt's message loop): ``WM_POWERBROADCAST`` /
``PBT_APMSUSPEND`` and ``WM_WTSSESSION_CHANGE`` / ``WTS_SESSION_LOCK`` (after
``WTSRegisterSessionNotification``), which also fires on user switch.
macOS: Qt exposes neither sleep nor screen-lock notifications and we ship no PyObjC, so
there the idle timeout, lock on minimize and Ctrl+L cover it (see docs/UI.md).

Invariant: every hook is best effort and guarded: with no session or system bus (CI,
containers, the offscreen platform) ``install()`` quietly does nothing, and nothing here
ever raises into the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

from app.ui.qt import (
    SLOT,
    QAbstractNativeEventFilter,
    QCoreApplication,
    QDBusConnection,
    QObject,
    QWidget,
    Signal,
    Slot,
)
from app.vault.models import LockReason

log = logging.getLogger(__name__)

LOGIN1 = "org.freedesktop.login1"
LOGIN1_PATH = "/org/freedesktop/login1"
SCREENSAVER_INTERFACES = ("org.freedesktop.ScreenSaver", "org.gnome.ScreenSaver")

WM_POWERBROADCAST = 0x0218
PBT_APMSUSPEND = 0x0004
WM_WTSSESSION_CHANGE = 0x02B1
WTS_SESSION_LOCK = 0x0007


def login1_session_path(session_id: str) -> str:
    """The D-Bus object path of a logind session id (sd_bus_path_encode)."""
    out = []
    for i, ch in enumerate(session_id):
        if ch.isascii() and (ch.isalpha() or (ch.isdigit() and i > 0)):
            out.append(ch)
        else:
            out.append(f"_{ord(ch):02x}")
    return f"{LOGIN1_PATH}/session/{''.join(out) or '_'}"


class _WindowsPowerFilter(QAbstractNativeEventFilter):
    """Sees every native Windows message; reports suspend and session lock."""

    def __init__(self, watcher: SessionWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def nativeEventFilter(self, eventType: Any, message: int) -> object:
        try:
            if bytes(eventType) == b"windows_generic_MSG":
                from ctypes import wintypes  # Windows-only module

                msg = wintypes.MSG.from_address(int(message))
                if msg.message == WM_POWERBROADCAST and msg.wParam == PBT_APMSUSPEND:
                    self._watcher.on_prepare_for_sleep(True)
                elif msg.message == WM_WTSSESSION_CHANGE and msg.wParam == WTS_SESSION_LOCK:
                    self._watcher.on_session_lock()
        except Exception:  # never let a hook break the event loop
            log.debug("native event filter failed")
        return (False, 0)


class SessionWatcher(QObject):
    """Emits ``lock_requested(LockReason)`` when the system sleeps or the screen locks."""

    lock_requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.hooks: list[str] = []
        self._native: _WindowsPowerFilter | None = None

    def install(self) -> list[str]:
        """Connect every hook this platform offers; returns their names."""
        if sys.platform.startswith("linux") or "bsd" in sys.platform:
            self._install_dbus()
        elif sys.platform == "win32":
            self._install_windows()
        return list(self.hooks)

    def attach_window(self, window: QWidget) -> None:
        """Windows: ask for session-change messages (lock, user switch) for a native
        window that lives as long as the app (the unlock window)."""
        if sys.platform != "win32":
            return
        with contextlib.suppress(Exception):
            import ctypes

            wtsapi = ctypes.WinDLL("wtsapi32")  # type: ignore[attr-defined,unused-ignore]
            if wtsapi.WTSRegisterSessionNotification(int(window.winId()), 0):  # this session
                self.hooks.append("windows:WTS_SESSION_LOCK")

    def _connect(
        self, bus: QDBusConnection, service: str, path: str, interface: str, name: str,
        slot: str,
    ) -> bool:  # fmt: skip
        # PySide6's stub types the slot as bytes, but the binding accepts only the str
        # that SLOT() returns.
        return bool(bus.connect(service, path, interface, name, self, SLOT(slot)))  # type: ignore[call-overload]

    def _install_dbus(self) -> None:
        system = QDBusConnection.systemBus()
        if system.isConnected():
            if self._connect(
                system, LOGIN1, LOGIN1_PATH, f"{LOGIN1}.Manager", "PrepareForSleep",
                "on_prepare_for_sleep(bool)",
            ):  # fmt: skip
                self.hooks.append("login1:PrepareForSleep")
            session_id = os.environ.get("XDG_SESSION_ID", "")
            if session_id and self._connect(
                system, LOGIN1, login1_session_path(session_id), f"{LOGIN1}.Session", "Lock",
                "on_session_lock()",
            ):  # fmt: skip
                self.hooks.append("login1:Session.Lock")
        session = QDBusConnection.sessionBus()
        if session.isConnected():
            for interface in SCREENSAVER_INTERFACES:
                if self._connect(
                    session, "", "", interface, "ActiveChanged", "on_screensaver_active(bool)"
                ):
                    self.hooks.append(f"{interface}:ActiveChanged")

    def _install_windows(self) -> None:
        app = QCoreApplication.instance()
        if app is None:
            return
        self._native = _WindowsPowerFilter(self)
        app.installNativeEventFilter(self._native)
        self.hooks.append("windows:PBT_APMSUSPEND")

    # The D-Bus slots (also called directly by tests to simulate the signals).
    @Slot(bool)
    def on_prepare_for_sleep(self, starting: bool) -> None:
        if starting:
            self.lock_requested.emit(LockReason.SLEEP)

    @Slot(bool)
    def on_screensaver_active(self, active: bool) -> None:
        if active:
            self.lock_requested.emit(LockReason.SCREEN_LOCK)

    @Slot()
    def on_session_lock(self) -> None:
        self.lock_requested.emit(LockReason.SCREEN_LOCK)
