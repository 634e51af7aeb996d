"""Concealed, self-clearing clipboard for note text and the recovery key.

What we put on the clipboard carries the hints clipboard managers honour so they do not
record it (KDE Klipper's ``x-kde-passwordManagerHint``, Windows'
``ExcludeClipboardContentFromMonitorProcessing`` / ``CanIncludeInClipboardHistory`` /
``CanUploadToCloudClipboard``, macOS's ``org.nspasteboard.ConcealedType``), and it is
cleared after a delay (default 30 s) and when the vault locks.

Invariants:
- we clear a clipboard (or the X11 selection) only if it still holds what we put there:
  text copied later by the user from another app is never touched;
- we remember only a keyed digest of what we copied, never the text itself.
"""

from __future__ import annotations

import hashlib
import os
import sys

from app.ui.qt import QClipboard, QMimeData, QObject, QTimer

PASSWORD_MANAGER_HINT = "x-kde-passwordManagerHint"  # noqa: S105 - a MIME type
WINDOWS_EXCLUDE = "ExcludeClipboardContentFromMonitorProcessing"
WINDOWS_HISTORY = "CanIncludeInClipboardHistory"
WINDOWS_CLOUD = "CanUploadToCloudClipboard"
MAC_CONCEALED = "org.nspasteboard.ConcealedType"
_DWORD_ZERO = (0).to_bytes(4, "little")


def concealed_mime(text: str) -> QMimeData:
    """Plain text plus every "do not record this" hint we know of."""
    mime = QMimeData()
    mime.setText(text)
    mime.setData(PASSWORD_MANAGER_HINT, b"secret")
    mime.setData(WINDOWS_EXCLUDE, b"1")
    mime.setData(WINDOWS_HISTORY, _DWORD_ZERO)
    mime.setData(WINDOWS_CLOUD, _DWORD_ZERO)
    mime.setData(MAC_CONCEALED, b"secret")
    if sys.platform == "win32":
        # Qt maps arbitrary MIME types to Windows clipboard formats of the same name
        # only through this wrapper; the plain names above cover the other platforms.
        for name, value in (
            (WINDOWS_EXCLUDE, b"1"),
            (WINDOWS_HISTORY, _DWORD_ZERO),
            (WINDOWS_CLOUD, _DWORD_ZERO),
        ):
            mime.setData(f'application/x-qt-windows-mime;value="{name}"', value)
    return mime


class ClipboardGuard(QObject):
    """Copies concealed text and clears it again after ``delay_ms``."""

    def __init__(
        self, clipboard: QClipboard, delay_ms: int = 30_000, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._clipboard = clipboard
        self._salt = os.urandom(16)
        self._digests: set[bytes] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clear_if_ours)
        self.delay_ms = delay_ms

    @property
    def delay_ms(self) -> int:
        return self._delay_ms

    @delay_ms.setter
    def delay_ms(self, value: int) -> None:
        self._delay_ms = max(1, int(value))
        self._timer.setInterval(self._delay_ms)

    @property
    def timer(self) -> QTimer:
        return self._timer

    @property
    def pending(self) -> bool:
        return bool(self._digests)

    def _digest(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), key=self._salt, digest_size=16).digest()

    def copy(self, text: str) -> None:
        """Put ``text`` on the clipboard, concealed; schedule clearing."""
        self.track(text)
        self._clipboard.setMimeData(concealed_mime(text), QClipboard.Mode.Clipboard)

    def track(self, text: str) -> None:
        """Qt is about to place ``text`` (in a mime from ``concealed_mime``) on the
        clipboard or the selection: (re)start the clearing countdown."""
        if text:
            self._digests.add(self._digest(text))
            self._timer.start()

    def _modes(self) -> list[QClipboard.Mode]:
        modes = [QClipboard.Mode.Clipboard]
        if self._clipboard.supportsSelection():
            modes.append(QClipboard.Mode.Selection)
        return modes

    def clear_if_ours(self) -> bool:
        """Clear every clipboard that still holds text we copied. Returns True if any."""
        self._timer.stop()
        cleared = False
        if self._digests:
            for mode in self._modes():
                current = self._clipboard.text(mode)
                if current and self._digest(current) in self._digests:
                    self._clipboard.clear(mode)
                    cleared = True
        self._digests.clear()
        return cleared
