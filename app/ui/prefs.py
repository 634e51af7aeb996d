"""Non-identifying preferences, persisted in ``QSettings``.

Invariants:
- only the keys in ``ALLOWED_KEYS`` are ever written: idle timeout, lock on minimize,
  clipboard clear delay, theme and window geometry. Never a client name, a note id, search
  text, an export path or a recent-files list — QSettings is a plain file (or the
  Windows registry) outside the encrypted vault;
- values read back are validated and clamped, so a hand-edited settings file can only
  produce a valid ``Preferences``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.ui.qt import QByteArray, QSettings

THEMES = ("system", "light", "dark")
MIN_IDLE_MINUTES, MAX_IDLE_MINUTES, DEFAULT_IDLE_MINUTES = 1, 60, 5
MIN_CLIPBOARD_SECONDS, MAX_CLIPBOARD_SECONDS, DEFAULT_CLIPBOARD_SECONDS = 5, 300, 30

_IDLE = "security/idle_minutes"
_MINIMIZE = "security/lock_on_minimize"
_CLIPBOARD = "security/clipboard_clear_seconds"
_THEME = "appearance/theme"
_GEOMETRY = "windows/{name}/geometry"
GEOMETRY_WINDOWS = ("main",)

ALLOWED_KEYS = frozenset(
    {_IDLE, _MINIMIZE, _CLIPBOARD, _THEME, *(_GEOMETRY.format(name=n) for n in GEOMETRY_WINDOWS)}
)


@dataclass(frozen=True, slots=True)
class Preferences:
    idle_minutes: int = DEFAULT_IDLE_MINUTES
    lock_on_minimize: bool = False
    clipboard_seconds: int = DEFAULT_CLIPBOARD_SECONDS
    theme: str = "system"

    def validated(self) -> Preferences:
        return replace(
            self,
            idle_minutes=_clamp(self.idle_minutes, MIN_IDLE_MINUTES, MAX_IDLE_MINUTES),
            clipboard_seconds=_clamp(
                self.clipboard_seconds, MIN_CLIPBOARD_SECONDS, MAX_CLIPBOARD_SECONDS
            ),
            theme=self.theme if self.theme in THEMES else "system",
        )


def effective_idle_minutes(preference: int, cap: int | None) -> int:
    """The idle lock in force: the preference, lowered to a practice policy's maximum
    (``cap``, from ``max_idle_minutes``; None: no practice limit)."""
    minutes = _clamp(preference, MIN_IDLE_MINUTES, MAX_IDLE_MINUTES)
    return minutes if cap is None else max(MIN_IDLE_MINUTES, min(minutes, cap))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _as_int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _as_bool(value: object, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return default


class PreferenceStore:
    """Reads and writes ``Preferences`` (and window geometry) through one QSettings."""

    def __init__(self, settings: QSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> QSettings:
        return self._settings

    def load(self) -> Preferences:
        s = self._settings
        default = Preferences()
        return Preferences(
            idle_minutes=_as_int(s.value(_IDLE, default.idle_minutes), default.idle_minutes),
            lock_on_minimize=_as_bool(
                s.value(_MINIMIZE, default.lock_on_minimize), default.lock_on_minimize
            ),
            clipboard_seconds=_as_int(
                s.value(_CLIPBOARD, default.clipboard_seconds), default.clipboard_seconds
            ),
            theme=str(s.value(_THEME, default.theme)),
        ).validated()

    def save(self, prefs: Preferences) -> None:
        prefs = prefs.validated()
        self._write(_IDLE, prefs.idle_minutes)
        self._write(_MINIMIZE, prefs.lock_on_minimize)
        self._write(_CLIPBOARD, prefs.clipboard_seconds)
        self._write(_THEME, prefs.theme)
        self._settings.sync()

    def geometry(self, window: str) -> QByteArray | None:
        value = self._settings.value(_GEOMETRY.format(name=window))
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_geometry(self, window: str, geometry: QByteArray) -> None:
        self._write(_GEOMETRY.format(name=window), geometry)
        self._settings.sync()

    def _write(self, key: str, value: object) -> None:
        if key not in ALLOWED_KEYS:  # a programming error, not user input
            raise ValueError("refusing to store an unknown preference key")
        self._settings.setValue(key, value)
