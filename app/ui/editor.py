"""``NoteEditor``: edit one note, with debounced autosave into the vault.

Saving rules (the service keeps every revision; autosaves within one editing session
amend the draft revision instead of piling up one per pause):
- typing starts a ``AUTOSAVE_MS`` debounce; when it fires, ``edit_note(autosave=True)``;
- Ctrl+S saves now (``edit_note`` without autosave, which closes the editing session);
- switching notes, closing the window and locking call ``flush()``: save what is
  unsaved (autosave) and end the editing session.

A signed note is shown read-only with its signed time and signer, and its addenda (each
dated, with its author and a signed mark) below the unchanged original. The Sign…, Add
addendum… and Verify signature buttons only ask (signals); ``app.ui.signing`` does the
work.

Invariants:
- the editor holds the text of at most one note, and ``wipe()`` clears every field, the
  undo history and the cached note without saving (used after ``flush()`` on lock);
- a failed save keeps the text and the "unsaved" state, and says so; it never loses
  what was typed;
- an autosave that falls due while the vault is busy with a background query (the
  database serialises access) waits a little rather than block typing; explicit saves
  (Ctrl+S, switching notes, lock) never wait;
- a signed note cannot be edited here: every field is read-only, Save is off, and typing
  never marks it unsaved (the service refuses edits anyway: ``NoteSignedError``);
- addenda are shown as HTML built from escaped text only.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from app.errors import TacitError
from app.ui.clipboard import ClipboardGuard
from app.ui.models import PROCESS_KIND, kind_label
from app.ui.qt import (
    QDate,
    QDateEdit,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.widgets import SecureTextEdit, SecureTextView, named, wipe_widgets
from app.vault.models import Note
from app.vault.service import VaultService
from app.vault.signing import Addendum, NoteSignature

AUTOSAVE_MS = 1500
BUSY_RETRY_MS = 300
_NO_DATE = QDate(1900, 1, 1)
SIGNED_MARK = "✔ Signed"


def utc_minutes(stamp: str | None) -> str:
    """``2026-03-09T10:45:00.000Z`` → ``2026-03-09 10:45``."""
    return (stamp or "").replace("T", " ")[:16]


def addenda_html(addenda: list[Addendum]) -> str:
    """The addenda, oldest first, each with its date, author and signed mark (escaped)."""
    parts = []
    for number, addendum in enumerate(addenda, 1):
        parts.append(
            f"<p><b>Addendum {number}</b> — {utc_minutes(addendum.created_at)} UTC — "
            f"{html.escape(addendum.author)} — <b>{SIGNED_MARK}</b></p>"
            f'<div style="white-space:pre-wrap;">{html.escape(addendum.body)}</div>'
        )
    return "<hr/>".join(parts)


class NoteEditor(QWidget):
    saved = Signal(object)  # the saved Note
    history_requested = Signal(str)  # note id
    sign_requested = Signal()
    addendum_requested = Signal()
    verify_requested = Signal()
    state_changed = Signal()  # a note was opened, closed, signed or frozen

    def __init__(
        self,
        service: VaultService,
        clipboard: ClipboardGuard,
        parent: QWidget | None = None,
        *,
        vault_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._vault_busy = vault_busy
        self._note: Note | None = None
        self._addenda: list[Addendum] = []
        self._dirty = False
        self._loading = False
        self._busy = False
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setSingleShot(True)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)

        self.stack = QStackedWidget(self)
        placeholder = QLabel(
            "Select a note, or press Ctrl+N to write a new one from a template.", self
        )
        placeholder.setObjectName("placeholder")
        placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        placeholder.setWordWrap(True)
        self.stack.addWidget(placeholder)

        page = QWidget(self)
        self.banner = QLabel(
            "Psychotherapy (process) note — kept apart from the clinical record and "
            "excluded from exports and record releases.",
            page,
        )
        self.banner.setObjectName("processBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.signed_banner = QLabel(page)
        self.signed_banner.setObjectName("signedBanner")
        self.signed_banner.setWordWrap(True)
        self.signed_banner.setTextFormat(Qt.TextFormat.PlainText)
        self.signed_banner.hide()
        self.title = named(QLineEdit(page), "Note title")
        self.title.setObjectName("noteTitle")
        self.session_date = named(QDateEdit(page), "Session date")
        self.session_date.setCalendarPopup(True)
        self.session_date.setDisplayFormat("yyyy-MM-dd")
        self.session_date.setMinimumDate(_NO_DATE)
        self.session_date.setSpecialValueText("No date")
        self.kind = QLabel(page)
        self.kind.setObjectName("kindBadge")
        self.body = named(SecureTextEdit(clipboard, page), "Note text")
        self.body.setObjectName("noteBody")
        self.addenda_view = named(
            SecureTextView(clipboard, page), "Addenda", "Dated, signed additions to this note"
        )
        self.addenda_view.setObjectName("addenda")
        self.addenda_view.hide()
        self.status = QLabel(page)
        self.status.setObjectName("hint")
        self.status.setAccessibleName("Save status")
        self.history_button = named(
            QPushButton("History…", page), "Revision history", "Earlier versions of this note"
        )
        self.save_button = named(QPushButton("Save", page), "Save now", "Save now (Ctrl+S)")
        self.sign_button = named(
            QPushButton("Sign…", page), "Sign and lock", "Sign the note; it can never change again"
        )
        self.addendum_button = named(
            QPushButton("Add addendum…", page), "Add addendum",
            "Add a dated, signed addendum; the note itself stays as signed",
        )  # fmt: skip
        self.verify_button = named(
            QPushButton("Verify signature", page), "Verify signature",
            "Check that the note and its addenda are exactly as signed",
        )  # fmt: skip

        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.session_date)
        header.addWidget(self.kind)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(self.history_button)
        footer.addWidget(self.verify_button)
        footer.addWidget(self.addendum_button)
        footer.addWidget(self.sign_button)
        footer.addWidget(self.save_button)
        split = QSplitter(Qt.Orientation.Vertical, page)
        split.addWidget(self.body)
        split.addWidget(self.addenda_view)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.signed_banner)
        layout.addLayout(header)
        layout.addWidget(split, 1)
        layout.addLayout(footer)
        self.stack.addWidget(page)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        self.title.textEdited.connect(self._changed)
        self.body.textChanged.connect(self._changed)
        self.session_date.dateChanged.connect(self._changed)
        self.save_button.clicked.connect(self.save_now)
        self.history_button.clicked.connect(self._request_history)
        self.sign_button.clicked.connect(lambda: self.sign_requested.emit())
        self.addendum_button.clicked.connect(lambda: self.addendum_requested.emit())
        self.verify_button.clicked.connect(lambda: self.verify_requested.emit())
        self._apply_state()

    # -- state -------------------------------------------------------------------------
    @property
    def note_id(self) -> str | None:
        return self._note.id if self._note is not None else None

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setAccessibleDescription(text)

    @property
    def note(self) -> Note | None:
        return self._note

    @property
    def addenda(self) -> list[Addendum]:
        return list(self._addenda)

    def _changed(self, *_args: object) -> None:
        if self._loading or self._note is None or self._note.signed or self._busy:
            return
        self._dirty = True
        self._set_status("Editing…")
        self.autosave_timer.start(AUTOSAVE_MS)

    def _request_history(self) -> None:
        if self._note is not None:
            self.history_requested.emit(self._note.id)

    # -- load --------------------------------------------------------------------------
    def open_note(self, note_id: str) -> bool:
        """Save the current note (if any) and show ``note_id``. False if saving the
        current one failed (it stays open so nothing is lost)."""
        if self._note is not None and self._note.id == note_id:
            return True
        if not self.flush():
            return False
        note = self._service.get_note(note_id)
        self._show(note)
        return True

    def _show(self, note: Note) -> None:
        self._loading = True
        try:
            self._note = note
            self.title.setText(note.title)
            date = QDate.fromString(note.session_date or "", "yyyy-MM-dd")
            self.session_date.setDate(date if date.isValid() else _NO_DATE)
            self.body.setPlainText(note.body)
            process = note.kind == PROCESS_KIND
            self.banner.setVisible(process)
            self.kind.setText(kind_label(note.kind))
            self.kind.setProperty("process", process)
            self.kind.style().unpolish(self.kind)
            self.kind.style().polish(self.kind)
            self.body.setProperty("process", process)
            self.body.style().unpolish(self.body)
            self.body.style().polish(self.body)
            self._load_signature(note)
            self._set_status(
                f"Revision {note.revision} · signed, read-only"
                if note.signed
                else f"Revision {note.revision} · saved"
            )
            self._dirty = False
            self.stack.setCurrentIndex(1)
        finally:
            self._loading = False

    def _load_signature(self, note: Note) -> None:
        """Signed: the banner (when, by whom) and the addenda below the note."""
        signature: NoteSignature | None = None
        self._addenda = []
        if note.signed:
            try:
                signature = self._service.note_signature(note.id)
                self._addenda = self._service.addenda(note.id)
            except TacitError:
                self._addenda = []
        when = utc_minutes(note.signed_at)
        signer = f" by {signature.signer}" if signature is not None else ""
        self.signed_banner.setText(
            f"Signed and locked {when} UTC{signer}. It cannot change any more; to correct "
            "or add to it, add an addendum."
            if note.signed
            else ""
        )
        self.signed_banner.setVisible(note.signed)
        self.addenda_view.setHtml(addenda_html(self._addenda))
        self.addenda_view.setVisible(bool(self._addenda))
        self._apply_state()

    def _apply_state(self) -> None:
        """Fields and buttons follow the note: signed (or being signed) = read-only."""
        note = self._note
        signed = note is not None and note.signed
        frozen = signed or self._busy
        for field in (self.title, self.body):
            field.setReadOnly(frozen)
        self.session_date.setReadOnly(frozen)
        self.save_button.setEnabled(note is not None and not frozen)
        self.save_button.setVisible(not signed)
        self.sign_button.setEnabled(note is not None and not frozen)
        self.sign_button.setVisible(not signed)
        self.addendum_button.setEnabled(signed and not self._busy)
        self.addendum_button.setVisible(signed)
        self.verify_button.setEnabled(signed and not self._busy)
        self.verify_button.setVisible(signed)
        self.state_changed.emit()

    def set_busy(self, busy: bool, message: str = "") -> None:
        """While the note is being signed (a background operation) nothing can change
        it; ``BusyIndicator`` for ``OpRunner``."""
        self._busy = busy
        if busy:
            self.autosave_timer.stop()
            if message:
                self._set_status(message)
        self._apply_state()

    @property
    def busy(self) -> bool:
        return self._busy

    def reload(self) -> None:
        """Show the stored note again (after signing or an addendum). Not a new view."""
        note = self._note
        if note is None or self._dirty:
            return
        try:
            fresh = self._service.get_note(note.id, record_view=False)
        except TacitError:
            return
        self._show(fresh)

    @property
    def read_only(self) -> bool:
        return self._note is not None and self._note.signed

    # -- save --------------------------------------------------------------------------
    def _session_date(self) -> str | None:
        date = self.session_date.date()
        return None if date == _NO_DATE else date.toString("yyyy-MM-dd")

    def _save(self, *, autosave: bool) -> bool:
        note = self._note
        if note is None:
            return True
        self.autosave_timer.stop()
        if not self._dirty:
            if not autosave:
                self._service.finish_editing(note.id)
                state = "signed, read-only" if note.signed else "saved"
                self._set_status(f"Revision {note.revision} · {state}")
            return True
        try:
            saved = self._service.edit_note(
                note.id,
                body=self.body.toPlainText(),
                # An emptied title keeps the previous one rather than refusing the save.
                title=self.title.text() if self.title.text().strip() else None,
                session_date=self._session_date(),
                autosave=autosave,
            )
        except TacitError as exc:
            self._set_status(f"Not saved: {exc.message}")
            return False
        self._note = saved
        self._dirty = False
        when = self._service.clock.now().astimezone().strftime("%H:%M")
        how = "saved automatically" if autosave else "saved"
        self._set_status(f"Revision {saved.revision} · {how} at {when}")
        self.saved.emit(saved)
        return True

    def autosave(self, *, wait_if_busy: bool = True) -> bool:
        """Save the draft (amending this editing session's revision). The debounce
        waits while the vault is busy; a caller that needs the text stored now (a
        search about to run) passes ``wait_if_busy=False``."""
        if wait_if_busy and self._dirty and self._vault_busy():
            self.autosave_timer.start(BUSY_RETRY_MS)  # try again shortly
            return False
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        return self._save(autosave=True)

    def save_now(self) -> bool:
        return self._save(autosave=False)

    def flush(self) -> bool:
        """Save anything unsaved and end the editing session (switch, close, lock)."""
        note = self._note
        if note is None:
            return True
        ok = self._save(autosave=True)
        if ok:
            self._service.finish_editing(note.id)
        return ok

    def close_note(self) -> bool:
        if not self.flush():
            return False
        self.wipe()
        return True

    def wipe(self) -> None:
        """Forget the note without saving: clear every field and the undo history."""
        self.autosave_timer.stop()
        self._loading = True
        try:
            self._note = None
            self._dirty = False
            self.title.clear()
            self.body.clear()
            self.kind.clear()
            self.status.clear()
            self.banner.hide()
            self.signed_banner.clear()
            self.signed_banner.hide()
            self._addenda = []
            self.addenda_view.clear()
            self.addenda_view.hide()
            self._busy = False
            self.session_date.setDate(_NO_DATE)
            self.stack.setCurrentIndex(0)
        finally:
            self._loading = False
        self._apply_state()

    def wipe_all(self) -> None:
        """``wipe()`` and clear every label, including the placeholder (lock)."""
        self.wipe()
        wipe_widgets(self)
