"""Light, dark, or follow the system: the palette and Tacit's small stylesheet.

"system" (the default) keeps the platform's palette and colour scheme and re-applies the
stylesheet when the system switches between light and dark. "light" and "dark" use the
Fusion style with a fixed palette so they look the same on every platform.

Invariant: the stylesheet only styles (``resources/styles/tacit.qss`` plus the few
rules in ``_APP_QSS``, tokens filled in here); no widget relies on it to work.
"""

from __future__ import annotations

from app.ui.qt import QApplication, QColor, QPalette, Qt
from app.vault.templates import resources_dir

_LIGHT_TOKENS = {
    "title_pt": "15",
    "hint_fg": "#5f6368",
    "error_fg": "#c62828",
    "notice_fg": "#2e7d32",
    "ok_fg": "#2e7d32",
    "key_bg": "#f5f5f0",
    "key_border": "#9e9e9e",
    "process_bg": "#ede7f6",
    "process_fg": "#4527a0",
    "process_border": "#9575cd",
    "badge_border": "#bdbdbd",
}
_DARK_TOKENS = {
    "title_pt": "15",
    "hint_fg": "#a0a4a8",
    "error_fg": "#ef9a9a",
    "notice_fg": "#a5d6a7",
    "ok_fg": "#66bb6a",
    "key_bg": "#2b2b2e",
    "key_border": "#757575",
    "process_bg": "#2e2546",
    "process_fg": "#d1c4e9",
    "process_border": "#7e57c2",
    "badge_border": "#5f5f5f",
}


# Rules for the record-integrity views (the psychotherapy-notes section), kept here with
# the tokens they use.
_APP_QSS = """
QFrame#processSection {
    background: {process_bg};
    border: 1px solid {process_border};
    border-radius: 6px;
}

QFrame#processSection QLabel#paneTitle {
    color: {process_fg};
}
"""


def dark_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#232427",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1b1c1e",
        QPalette.ColorRole.AlternateBase: "#26272a",
        QPalette.ColorRole.ToolTipBase: "#2f3034",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8a8d91",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#2d2e32",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6e6e",
        QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.Highlight: "#3d5afe",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Light: "#3a3b3f",
        QPalette.ColorRole.Midlight: "#333438",
        QPalette.ColorRole.Mid: "#2a2b2e",
        QPalette.ColorRole.Dark: "#151618",
        QPalette.ColorRole.Shadow: "#000000",
    }
    for role, value in colors.items():
        p.setColor(role, QColor(value))
    for role in (
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#76787c"))
    return p


def light_palette(app: QApplication) -> QPalette:
    palette = app.style().standardPalette()
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#3f51b5"))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    return palette


def stylesheet(dark: bool) -> str:
    path = resources_dir() / "styles" / "tacit.qss"
    try:
        qss = path.read_text(encoding="utf-8") + _APP_QSS
    except OSError:
        return ""
    for key, value in (_DARK_TOKENS if dark else _LIGHT_TOKENS).items():
        qss = qss.replace("{" + key + "}", value)
    return qss


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ThemeManager:
    """Applies a theme choice to the application and follows system changes."""

    def __init__(self, app: QApplication) -> None:
        self._app = app
        self._system_style = app.style().name()
        self.theme = "system"
        app.styleHints().colorSchemeChanged.connect(self._system_changed)

    def apply(self, theme: str) -> None:
        self.theme = theme if theme in ("system", "light", "dark") else "system"
        app = self._app
        hints = app.styleHints()
        if self.theme == "system":
            hints.unsetColorScheme()
            if app.style().name().lower() != self._system_style.lower():
                app.setStyle(self._system_style)
            app.setPalette(QPalette())  # an empty palette means "the platform's"
            dark = hints.colorScheme() == Qt.ColorScheme.Dark or is_dark(app.palette())
        else:
            dark = self.theme == "dark"
            hints.setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
            app.setStyle("Fusion")
            app.setPalette(dark_palette() if dark else light_palette(app))
        app.setStyleSheet(stylesheet(dark))

    def _system_changed(self, _scheme: object) -> None:
        if self.theme == "system":
            self.apply("system")
