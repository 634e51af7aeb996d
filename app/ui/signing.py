"""Sign & lock from the app: confirm and sign, add an addendum, verify a signature.

``SigningFlow`` answers the editor's Sign…, Add addendum… and Verify signature requests
(and the Note menu's). Signing saves the draft first, then asks for confirmation in a
window-modal box that says the note becomes immutable; the signature and the addendum
are made by the service in the ``OpRunner``'s worker while the editor is frozen, and the
editor then shows the stored note again.

Invariants:
- nothing is signed that the user has not seen: the draft is saved before the
  confirmation, the editor cannot change while the box is up (window-modal) or while the
  worker signs (frozen), and the service refuses to sign a revision that changed since;
- dialogs are children of the main window opened with ``open()`` (never a nested event
  loop), so a lock destroys them with it; an addendum being written when the app locks
  is discarded unsigned (it is never stored half-done);
- messages name no client and quote no note text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.errors import TacitError
from app.ui.clipboard import ClipboardGuard
from app.ui.ops import OpRunner
from app.ui.qt import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QObject,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import BusyBar, MessageLabel, SecureTextEdit, named, wipe_widgets
from app.vault.service import VaultService
from app.vault.signing import Addendum, NoteSignature, Verification

if TYPE_CHECKING:
    from app.ui.editor import NoteEditor

SIGN_TEXT = "Sign and lock this note?"
SIGN_DETAIL = (
    "Your signature covers the note exactly as it is now. A signed note is immutable: it "
    "can never be edited or deleted again, by you or anyone. Corrections and later "
    "information go in addenda, which are dated and signed separately; the original stays "
    "readable as signed."
)


class SignConfirmation(QMessageBox):
    """The question before signing; Cancel is the default."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Sign and lock")
        self.setIcon(QMessageBox.Icon.Question)
        self.setText(SIGN_TEXT)
        self.setInformativeText(SIGN_DETAIL)
        self.sign_button = named(
            self.addButton("Sign and lock", QMessageBox.ButtonRole.AcceptRole), "Sign and lock"
        )
        cancel = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(cancel)
        self.setEscapeButton(cancel)


class AddendumDialog(QDialog):
    """Write one addendum; "Sign and add" stores it signed (through ``submit``)."""

    def __init__(
        self, clipboard: ClipboardGuard, submit: Callable[[str], None], parent: QWidget
    ) -> None:
        super().__init__(parent)
        self._submit = submit
        self.setWindowTitle("Tacit — Add addendum")
        self.setObjectName("addendumDialog")
        intro = QLabel(
            "An addendum is dated and signed when you add it, and can never change after. "
            "The signed note itself stays exactly as it was.",
            self,
        )
        intro.setWordWrap(True)
        self.text = named(SecureTextEdit(clipboard, self), "Addendum text")
        self.text.setPlaceholderText("Correction or later information…")
        label = QLabel("&Addendum:", self)
        label.setBuddy(self.text)
        self.error = MessageLabel(self)
        self.busy = BusyBar(self)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.add_button: QPushButton = named(
            self.buttons.addButton("Sign and add", QDialogButtonBox.ButtonRole.AcceptRole),
            "Sign and add addendum",
        )
        self.add_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.text.textChanged.connect(self._update)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(label)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        layout.addWidget(self.buttons)
        self.finished.connect(self._forget)
        self.resize(520, 360)

    def _update(self) -> None:
        self.add_button.setEnabled(bool(self.text.toPlainText().strip()) and not self.busy.busy)

    def set_busy(self, busy: bool, message: str = "") -> None:
        self.busy.set_busy(busy, message)
        self.text.setReadOnly(busy)
        self._update()

    def show_error(self, text: str) -> None:
        self.error.show_message(text)

    def accept(self) -> None:
        text = self.text.toPlainText()
        if not text.strip() or self.busy.busy:
            return
        self.error.clear_message()
        self._submit(text)

    def done_adding(self) -> None:
        super().accept()

    def _forget(self, _result: int = 0) -> None:
        wipe_widgets(self)
        self.deleteLater()


def verification_box(parent: QWidget, result: Verification) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("Tacit — Verify signature")
    if result.ok:
        box.setIcon(QMessageBox.Icon.Information)
        box.setText("The signature is valid.")
        also = ""
        if result.addenda == 1:
            also = " So is its addendum."
        elif result.addenda:
            also = f" So are its {result.addenda} addenda."
        box.setInformativeText(
            "The note is exactly as signed with this vault's signing key." + also
        )
    else:
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText("The signature check failed.")
        box.setInformativeText("\n".join(f"• {problem}" for problem in result.problems))
    box.setStandardButtons(QMessageBox.StandardButton.Close)
    return box


class SigningFlow(QObject):
    """Sign, add addenda to and verify the note open in the editor."""

    def __init__(
        self,
        service: VaultService,
        runner: OpRunner,
        editor: NoteEditor,
        clipboard: ClipboardGuard,
        window: QWidget,
        status: Callable[[str], None],
    ) -> None:
        super().__init__(window)
        self._service = service
        self._runner = runner
        self._editor = editor
        self._clipboard = clipboard
        self._window = window
        self._status = status
        self.last_box: QMessageBox | None = None
        self.last_verification: Verification | None = None
        self.addendum_dialog: AddendumDialog | None = None

    # -- sign --------------------------------------------------------------------------
    def sign(self) -> SignConfirmation | None:
        """Save the draft, then ask; signing starts only on "Sign and lock"."""
        editor = self._editor
        note = editor.note
        if note is None:
            self._status("Open a note to sign it.")
            return None
        if note.signed or editor.busy:
            self._status("This note is already signed.")
            return None
        if not editor.save_now():
            self._status("The note could not be saved, so it was not signed.")
            return None
        box = SignConfirmation(self._window)
        note_id = note.id

        def answered(_result: int) -> None:
            confirmed = box.clickedButton() is box.sign_button
            box.deleteLater()
            if confirmed:
                self._sign_now(note_id)

        box.finished.connect(answered)
        box.open()
        self.last_box = box
        return box

    def _sign_now(self, note_id: str) -> None:
        editor = self._editor
        if editor.note_id != note_id or editor.dirty:
            self._status("The note changed before it was signed; nothing was signed.")
            return
        service = self._service
        self._runner.run(
            lambda: service.sign_note(note_id),
            lambda signature: self._signed(note_id, signature),
            lambda error: self._failed(note_id, error),
            busy=editor,
            message="Signing…",
        )

    def _signed(self, note_id: str, _signature: NoteSignature) -> None:
        if self._editor.note_id == note_id:
            self._editor.reload()
        self._status("Signed and locked.")

    def _failed(self, note_id: str, error: TacitError) -> None:
        if self._editor.note_id == note_id:
            self._editor.reload()
        self._status(f"Not signed: {error.message}")

    # -- addenda -----------------------------------------------------------------------
    def add_addendum(self) -> AddendumDialog | None:
        note = self._editor.note
        if note is None or not note.signed:
            self._status("Only a signed note takes addenda; sign it first.")
            return None
        note_id = note.id
        dialog = AddendumDialog(
            self._clipboard, lambda text: self._submit(dialog, note_id, text), self._window
        )
        dialog.open()
        self.addendum_dialog = dialog
        return dialog

    def _submit(self, dialog: AddendumDialog, note_id: str, text: str) -> None:
        service = self._service

        def added(_addendum: Addendum) -> None:
            dialog.done_adding()
            if self._editor.note_id == note_id:
                self._editor.reload()
            self._status("Addendum signed and added.")

        self._runner.run(
            lambda: service.add_addendum(note_id, text),
            added,
            lambda error: dialog.show_error(f"Not added: {error.message}"),
            busy=dialog,
            message="Signing the addendum…",
        )

    # -- verify ------------------------------------------------------------------------
    def verify(self) -> None:
        note = self._editor.note
        if note is None or not note.signed:
            self._status("Only a signed note has a signature to verify.")
            return
        note_id = note.id
        service = self._service
        self._status("Verifying the signature…")
        self._runner.run(
            lambda: service.verify_note(note_id),
            self._verified,
            lambda error: self._status(f"Could not verify: {error.message}"),
        )

    def _verified(self, result: Verification) -> None:
        self.last_verification = result
        self._status("Signature valid." if result.ok else "Signature check FAILED.")
        box = verification_box(self._window, result)
        box.finished.connect(lambda _r: box.deleteLater())
        box.open()
        self.last_box = box
