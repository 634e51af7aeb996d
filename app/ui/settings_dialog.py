"""``SettingsDialog``: idle timeout, lock on minimize, clipboard delay, theme, automatic
backups (``app/ui/backups.py``'s group) and — only for a vault linked to a sync account —
the offline lease.

It edits a ``Preferences`` value and hands the result to a callable on Save (the
controller applies it to the service, the clipboard guard and the theme, and stores it).
The offline lease is a vault setting, not a preference: a changed value goes to its own
callable (the controller calls ``VaultService.set_lease``). So are the backup settings
(a folder path can name the person): the group stores them in the vault itself. The
update check (off by default) is written by ``app.update`` on Save, only when changed,
to its own file, where ``tacit update`` reads it too.

In a practice whose policy limits the idle lock (``idle_cap``, docs/PRACTICE.md), the
idle spin box goes no higher than the limit and says so; with a policy lease
(``lease_cap``) the offline lease cannot be switched off or set longer.

Invariant: it shows and returns only non-identifying preferences — nothing about the
vault's contents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from app import update
from app.errors import TacitError
from app.ui.backups import BackupDriver, BackupGroup
from app.ui.prefs import (
    MAX_CLIPBOARD_SECONDS,
    MAX_IDLE_MINUTES,
    MIN_CLIPBOARD_SECONDS,
    MIN_IDLE_MINUTES,
    Preferences,
)
from app.ui.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import named

LEASE_DEFAULT_DAYS = 14
LEASE_MAX_DAYS = 3650
LEASE_TEXT = (
    "After this many days without reaching the sync server, this device asks for your "
    "sync account (password and a code) before it opens — this limits how long a lost "
    "laptop opens with a known passphrase while kept offline, but it is a rule of the app, "
    "not encryption: someone able to edit its files can get around it."
)
UPDATES_TEXT = "Check for updates once a day (sends nothing that identifies you)"
THEME_CHOICES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


class SettingsDialog(QDialog):
    def __init__(
        self,
        prefs: Preferences,
        apply: Callable[[Preferences], None],
        hooks: list[str] | None = None,
        parent: QWidget | None = None,
        *,
        lease_days: int | None = None,
        set_lease: Callable[[int | None], None] | None = None,
        backups: BackupDriver | None = None,
        idle_cap: int | None = None,
        lease_cap: int | None = None,
    ) -> None:
        super().__init__(parent)
        self._apply = apply
        self._lease_days = lease_days
        self._set_lease = set_lease
        self.setWindowTitle("Tacit — Settings")
        self.setObjectName("settingsDialog")

        self.idle = named(QSpinBox(self), "Lock after idle minutes")
        self.idle.setRange(MIN_IDLE_MINUTES, MAX_IDLE_MINUTES)
        self.idle.setSuffix(" min")
        self.idle.setValue(prefs.idle_minutes)
        self.idle_limit = QLabel(self)  # shown when the practice's policy caps the idle lock
        self.idle_limit.setObjectName("hint")
        self.idle_limit.setWordWrap(True)
        self.idle_limit.hide()
        if idle_cap is not None and idle_cap < MAX_IDLE_MINUTES:
            self.idle.setMaximum(max(MIN_IDLE_MINUTES, idle_cap))  # lowers the value too
            self.idle_limit.setText(
                f"At most {self.idle.maximum()} min: limited by your practice's policy."
            )
            self.idle_limit.show()
        self.minimize = named(
            QCheckBox("Lock when the window is minimized", self), "Lock on minimize"
        )
        self.minimize.setChecked(prefs.lock_on_minimize)
        self.clipboard = named(QSpinBox(self), "Clear clipboard after seconds")
        self.clipboard.setRange(MIN_CLIPBOARD_SECONDS, MAX_CLIPBOARD_SECONDS)
        self.clipboard.setSuffix(" s")
        self.clipboard.setValue(prefs.clipboard_seconds)
        self.theme = named(QComboBox(self), "Theme")
        for key, label in THEME_CHOICES:
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(0, [k for k, _ in THEME_CHOICES].index(prefs.theme)))

        security = QGroupBox("Security", self)
        form = QFormLayout(security)
        form.addRow("Lock after &idle:", self.idle)
        form.addRow("", self.idle_limit)
        form.addRow("", self.minimize)
        form.addRow("Clear &clipboard after:", self.clipboard)
        covered = QLabel(self._lock_hooks_text(hooks or []), security)
        covered.setObjectName("hint")
        covered.setWordWrap(True)
        form.addRow(covered)
        self.lease_on = named(QCheckBox("Require going online after", self), "Offline lease")
        self.lease = named(QSpinBox(self), "Offline lease days")
        self.lease.setRange(1, LEASE_MAX_DAYS)
        self.lease.setSuffix(" days")
        self.lease.setValue(lease_days or LEASE_DEFAULT_DAYS)
        self.lease_on.setChecked(lease_days is not None)
        self.lease.setEnabled(lease_days is not None)
        self.lease_on.toggled.connect(self.lease.setEnabled)
        if lease_cap is not None:  # the practice's policy: on, and no longer than this
            self.lease.setMaximum(max(1, lease_cap))
            self.lease_on.setChecked(True)
            self.lease_on.setEnabled(False)
            self.lease.setEnabled(True)
        self.lease_group = QGroupBox("Offline lease", self)
        lease_form = QFormLayout(self.lease_group)
        lease_form.addRow(self.lease_on, self.lease)
        lease_hint = QLabel(LEASE_TEXT, self.lease_group)
        lease_hint.setObjectName("hint")
        lease_hint.setWordWrap(True)
        lease_form.addRow(lease_hint)
        if lease_cap is not None:
            lease_limit = QLabel(
                f"At most {self.lease.maximum()} days: required by your practice's policy.",
                self.lease_group,
            )
            lease_limit.setObjectName("hint")
            lease_form.addRow(lease_limit)
        self.lease_group.setVisible(set_lease is not None)
        self.backups = BackupGroup(backups, self) if backups is not None else None
        appearance = QGroupBox("Appearance", self)
        look = QFormLayout(appearance)
        look.addRow("&Theme:", self.theme)
        # Not a preference: app/update.py keeps it where the CLI reads it too.
        self._updates_on = update.load_settings().enabled
        self.updates = named(QCheckBox(UPDATES_TEXT, self), "Check for updates")
        self.updates.setChecked(self._updates_on)
        look.addRow(self.updates)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(security)
        layout.addWidget(self.lease_group)
        if self.backups is not None:
            layout.addWidget(self.backups)
        layout.addWidget(appearance)
        layout.addStretch(1)
        layout.addWidget(buttons)
        self.finished.connect(self.deleteLater)
        self.setMinimumWidth(460)

    @staticmethod
    def _lock_hooks_text(hooks: list[str]) -> str:
        base = "Tacit also locks with Ctrl+L"
        if any("PrepareForSleep" in h or "APMSUSPEND" in h for h in hooks):
            base += ", when the computer sleeps"
        if any("ScreenSaver" in h or "Session" in h or "WTS" in h for h in hooks):
            base += ", when the screen locks"
        return base + "."

    def preferences(self) -> Preferences:
        return Preferences(
            idle_minutes=self.idle.value(),
            lock_on_minimize=self.minimize.isChecked(),
            clipboard_seconds=self.clipboard.value(),
            theme=str(self.theme.currentData()),
        ).validated()

    def lease_choice(self) -> int | None:
        """The offline lease chosen: days, or None for off."""
        return self.lease.value() if self.lease_on.isChecked() else None

    def accept(self) -> None:
        if self.backups is not None and not self.backups.save():
            return  # the group says why; nothing else is applied yet
        self._apply(self.preferences())
        if self.updates.isChecked() != self._updates_on:
            with contextlib.suppress(OSError, TacitError):
                update.set_enabled(self.updates.isChecked())
        if self._set_lease is not None and self.lease_choice() != self._lease_days:
            self._set_lease(self.lease_choice())
        super().accept()
