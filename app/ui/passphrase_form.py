"""``PassphraseForm``: choose a new passphrase, with a strength meter and a confirmation.

The strength policy is the vault's (``app.vault.passphrase.assess``): shorter than 12
characters or a zxcvbn score below 3 is refused, and the form says why in the
estimator's generic words. The form only gates the button; the service enforces the same
policy again (``require_strong``) when the passphrase is used.

Invariants: the passphrase is never logged or shown in a label; ``take()`` hands it over
as a ``Passphrase`` and clears both fields.
"""

from __future__ import annotations

from app.ui.qt import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import named
from app.vault.crypto import Passphrase
from app.vault.passphrase import MIN_LENGTH, assess

_SCORE_WORDS = ("Very weak", "Weak", "Fair", "Strong", "Very strong")


class PassphraseForm(QWidget):
    """Two password fields, a meter and advice; ``validity_changed(bool)`` gates submit."""

    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, label: str = "New passphrase") -> None:
        super().__init__(parent)
        self.passphrase = named(
            QLineEdit(self), label, f"At least {MIN_LENGTH} characters; several unrelated words"
        )
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setObjectName("passphrase")
        self.confirm = named(QLineEdit(self), "Confirm passphrase")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm.setObjectName("confirm")
        self.meter = named(QProgressBar(self), "Passphrase strength")
        self.meter.setRange(0, 4)
        self.meter.setValue(0)
        self.meter.setTextVisible(True)
        self.meter.setFormat("")
        self.meter.setObjectName("strengthMeter")
        self.advice = QLabel(self)
        self.advice.setWordWrap(True)
        self.advice.setObjectName("hint")
        self.reveal = named(QCheckBox("Show passphrase", self), "Show passphrase")
        self.match = QLabel(self)
        self.match.setObjectName("hint")

        form = QFormLayout()
        form.addRow(f"{label}:", self.passphrase)
        form.addRow("", self.meter)
        form.addRow("", self.advice)
        form.addRow("Confirm:", self.confirm)
        form.addRow("", self.match)
        form.addRow("", self.reveal)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)

        self._valid = False
        self._strong = False
        self.passphrase.textChanged.connect(self._on_passphrase)
        self.confirm.textChanged.connect(self._update)
        self.reveal.toggled.connect(self._on_reveal)
        self._on_passphrase("")

    @property
    def valid(self) -> bool:
        return self._valid

    def _on_reveal(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.passphrase.setEchoMode(mode)
        self.confirm.setEchoMode(mode)

    def _on_passphrase(self, text: str) -> None:
        if not text:
            self._strong = False
            self.meter.setValue(0)
            self.meter.setFormat("")
            self.advice.setText(
                f"Use at least {MIN_LENGTH} characters — a few unrelated words work well."
            )
        else:
            secret = Passphrase.from_str(text)
            try:
                strength = assess(secret)
            finally:
                secret.wipe()
            self._strong = strength.acceptable
            self.meter.setValue(strength.score)
            verdict = _SCORE_WORDS[max(0, min(4, strength.score))]
            self.meter.setFormat(verdict if strength.acceptable else f"{verdict} — not accepted")
            self.meter.setProperty("acceptable", strength.acceptable)
            self.meter.style().unpolish(self.meter)
            self.meter.style().polish(self.meter)
            self.meter.setAccessibleDescription(self.meter.format())
            self.advice.setText(
                strength.feedback
                if not strength.acceptable
                else f"Would take {strength.crack_time} to guess offline."
            )
        self._update()

    def _update(self) -> None:
        confirm = self.confirm.text()
        matches = bool(confirm) and confirm == self.passphrase.text()
        if not confirm:
            self.match.setText("")
        else:
            self.match.setText("Passphrases match." if matches else "Passphrases differ.")
        valid = self._strong and matches
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)

    def take(self) -> Passphrase:
        """The chosen passphrase; both fields are cleared."""
        secret = Passphrase.from_str(self.passphrase.text())
        self.clear()
        return secret

    def clear(self) -> None:
        self.passphrase.clear()
        self.confirm.clear()
        self.reveal.setChecked(False)
