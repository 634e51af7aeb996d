"""Shared pieces of the practice-mode windows (docs/PRACTICE.md; docs/UI.md, "Practice
mode"): the service the windows drive (``Practice``, ``PracticeFactory``), role checks,
plain error messages, small formatting and widget helpers, ``PracticeDialog``, the base
of every practice window, and ``PracticeTableDialog``, the base of the windows built
around one table (audit, fees, members, schedule, supervision).

Invariants:
- every ``PracticeService`` call a practice window makes runs in the sync worker
  (``SyncDriver.run_account``: off the UI thread, never alongside a sync); only the
  menu's ``refresh`` reads the membership cached in the vault on the UI thread (local);
- errors are shown as our own words with the stable code, never a server's or an
  exception's text (a message of our practice code is a fixed sentence, never a name);
- a practice window holds client names and note text only in its widgets and in
  ``rows`` lists; ``wipe()`` (close, lock) drops both, and results still in flight are
  ignored from then on; window titles never name a client or a member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from app.errors import TacitError
from app.sync import protocol
from app.sync.service import SyncService
from app.ui.clipboard import ClipboardGuard
from app.ui.qt import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from app.ui.syncing import SyncDriver, plain_message
from app.ui.widgets import BusyBar, MessageLabel, named, wipe_widgets
from app.vault.crypto import Passphrase

T = TypeVar("T")

ROLE_LABELS = {"owner": "Owner", "clinician": "Clinician", "supervisor": "Supervisor",
               "admin": "Admin staff"}  # fmt: skip
STATUS_LABELS = {"scheduled": "Scheduled", "attended": "Attended", "cancelled": "Cancelled",
                 "no_show": "No-show"}  # fmt: skip
SAVED_NOTICE = "Saved; it goes out with this sync."
WAITING_TEXT = (
    "Waiting for the owner to approve you. The practice owner's app approves new members "
    "when it next syncs; until then you see no shared records."
)
# Our words for the practice codes (docs/PRACTICE.md, "Routes"), before the sync ones.
PRACTICE_MESSAGES: dict[str, str] = {
    "not_in_practice": "This account is not in a practice",
    "member_removed": "You were removed from the practice",
    "practice_exists": "This account already belongs to a practice",
    "invite_invalid": "That invite code is unknown, used or expired — ask the owner for a new one",
    "invite_code_invalid": "That is not a practice invite code (TP- and 32 letters and digits)",
    "practice_untrusted": "The invite did not verify — ask the owner for a new code",
    "stale_key": "The practice's keys changed — sync, then try again",
    "forbidden": "Only the practice owner can do that",
    "not_found": "That record is not there any more — refresh the list",
    "not_signed_in": "Sign in to your sync account first",
    "offline": "The sync server cannot be reached — try again when online",
}


class Practice(Protocol):
    """What the practice windows call: ``app.sync.practice.PracticeService``."""

    def membership(self) -> dict[str, Any] | None: ...
    def status(self) -> dict[str, Any]: ...
    def create(self, name: str, email: str) -> dict[str, Any]: ...
    def invite(self, email: str, role: str) -> dict[str, Any]: ...
    def join(
        self, code: str, server: str, password: Passphrase, *, ca_file: str | None = None,
        pin: str | None = None, device_name: str | None = None, username: str | None = None,
    ) -> dict[str, Any]: ...  # fmt: skip
    def members(self) -> list[dict[str, Any]]: ...
    def supervise(self, supervisor: str, clinician: str) -> dict[str, Any]: ...
    def set_policy(
        self, *, require_totp: bool | None = None, max_idle_minutes: int | None = None,
        offline_lease_days: int | None = None,
    ) -> dict[str, Any]: ...  # fmt: skip
    def policy(self) -> dict[str, Any]: ...
    def remove(self, member: str) -> dict[str, Any]: ...
    def records(
        self, *, clinician: str | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]: ...
    def record(self, note_id: str) -> dict[str, Any]: ...
    def cosign(self, note_id: str) -> dict[str, Any]: ...
    def contacts(self) -> list[dict[str, Any]]: ...
    def add_appointment(
        self, client_id: str, start: str, duration: int, *, clinician: str | None = None
    ) -> dict[str, Any]: ...
    def appointments(self) -> list[dict[str, Any]]: ...
    def set_appointment_status(self, appointment_id: str, status: str) -> dict[str, Any]: ...
    def add_fee(
        self, client_id: str, amount: str, *, clinician: str | None = None,
        appointment_id: str | None = None, paid: bool = False,
    ) -> dict[str, Any]: ...  # fmt: skip
    def fees(self) -> list[dict[str, Any]]: ...
    def mark_paid(self, fee_id: str, paid: bool = True) -> dict[str, Any]: ...
    def practice_audit(
        self, *, limit: int | None = 200, member: str | None = None
    ) -> list[dict[str, Any]]: ...


PracticeFactory = Callable[[SyncService], Practice]


def practice_message(error: TacitError) -> str:
    """What a practice window shows for an error (always followed by its code)."""
    known = PRACTICE_MESSAGES.get(error.code)
    if known is not None:
        return known
    if not isinstance(error, protocol.ApiError) and error.code in ("usage", "invalid_input"):
        return error.message  # our own fixed sentences (app/sync/practice*.py)
    return plain_message(error)


def idle_cap(status: dict[str, Any]) -> int | None:
    """The practice policy's ``max_idle_minutes`` (None: no practice, or no limit)."""
    if not status.get("in_practice"):
        return None
    value = (status.get("policy") or {}).get("max_idle_minutes")
    return value if isinstance(value, int) and value > 0 else None


def lease_cap(status: dict[str, Any]) -> int | None:
    """The practice policy's ``offline_lease_days`` (None: no practice, or no lease)."""
    if not status.get("in_practice"):
        return None
    value = (status.get("policy") or {}).get("offline_lease_days")
    return value if isinstance(value, int) and value > 0 else None


def when(iso: object) -> str:
    """``2026-12-01T09:00`` (or with seconds and a zone) → ``2026-12-01 09:00``."""
    return str(iso)[:16].replace("T", " ") if iso else "—"


def text(value: object) -> str:
    return "—" if value is None or value == "" else str(value)


@dataclass
class PracticeContext:
    """What every practice window needs: the sync worker, the service factory, the
    clipboard guard and the membership last read (role, account id, policy)."""

    driver: SyncDriver
    factory: PracticeFactory
    clipboard: ClipboardGuard
    status: dict[str, Any] = field(default_factory=dict)
    refresh: Callable[[], None] = lambda: None  # re-read the membership (the menu's)

    @property
    def role(self) -> str:
        return str(self.status.get("role") or "")

    @property
    def account_id(self) -> str:
        return str(self.status.get("account_id") or "")

    def wrote(self) -> None:
        """A practice write was queued: sync now so it goes out promptly."""
        self.driver.sync_now()


def wrapped_label(words: str, parent: QWidget) -> QLabel:
    """A word-wrapped label (a window's intro or hint)."""
    label = QLabel(words, parent)
    label.setWordWrap(True)
    return label


def ok_cancel(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    """OK (renamed ``ok_text``) and Cancel, wired to the dialog's accept and reject."""
    buttons = QDialogButtonBox(
        QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog
    )
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons


def form_of(fields: Sequence[tuple[str, QWidget]]) -> QFormLayout:
    """A form of (label, field) rows (an empty label: the field alone, e.g. a checkbox)."""
    form = QFormLayout()
    for label, widget in fields:
        form.addRow(label, widget)
    return form


def button_row(left: Sequence[QWidget], right: Sequence[QWidget]) -> QHBoxLayout:
    """Buttons (or labels) at the left, a stretch, then the ``right`` ones."""
    row = QHBoxLayout()
    for widget in left:
        row.addWidget(widget)
    row.addStretch(1)
    for widget in right:
        row.addWidget(widget)
    return row


def stacked(parent: QWidget, *parts: QWidget | QLayout | None) -> QVBoxLayout:
    """``parent``'s layout: ``parts`` top to bottom (None: left out)."""
    layout = QVBoxLayout(parent)
    for part in parts:
        if isinstance(part, QLayout):
            layout.addLayout(part)
        elif part is not None:
            layout.addWidget(part)
    return layout


def make_table(parent: QWidget, columns: Sequence[str], name: str) -> QTableWidget:
    table = named(QTableWidget(0, len(columns), parent), name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def fill(table: QTableWidget, rows: Sequence[Sequence[str]]) -> None:
    table.setRowCount(len(rows))
    for r, cells in enumerate(rows):
        for c, value in enumerate(cells):
            table.setItem(r, c, QTableWidgetItem(value))


def selected_row(table: QTableWidget) -> int | None:
    rows = {index.row() for index in table.selectionModel().selectedRows()}
    return rows.pop() if len(rows) == 1 else None


class PracticeDialog(QDialog):
    """The base of the practice windows: an error line, a busy bar, and ``run`` (a
    practice call in the sync worker, its result handed back while the window lives)."""

    def __init__(self, ctx: PracticeContext, title: str, name: str,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.ctx = ctx
        self._closed = False
        self.setWindowTitle(title)
        self.setObjectName(name)
        self.error = MessageLabel(self)
        self.busy = BusyBar(self)
        self.finished.connect(self._forget)

    @property
    def is_busy(self) -> bool:
        return self.busy.busy

    @property
    def closed(self) -> bool:
        return self._closed

    def set_busy(self, busy: bool, message: str = "") -> None:
        if self._closed:
            return
        self.busy.set_busy(busy, message)
        self.busy_changed(busy)

    def busy_changed(self, busy: bool) -> None:
        """Subclasses enable or disable their buttons."""

    def run(
        self, fn: Callable[[Practice], T], on_done: Callable[[T], None], message: str,
        on_error: Callable[[TacitError], None] | None = None, *, clear: bool = True,
    ) -> bool:  # fmt: skip
        """Run ``fn(practice)`` in the sync worker (``clear``: the message shown goes).
        False when the vault is locked."""
        if clear:
            self.error.clear_message()
        factory = self.ctx.factory

        def done(value: T) -> None:
            if not self._closed:
                on_done(value)

        def failed(error: TacitError) -> None:
            if not self._closed:
                (on_error or self.fail)(error)

        started = self.ctx.driver.run_account(lambda service: fn(factory(service)), done, failed,
                                              busy=self, message=message)  # fmt: skip
        if not started:
            self.error.show_message("The vault is locked.")
        return started

    def lay_out_window(self, *parts: QWidget | QLayout | None, row: QLayout) -> QVBoxLayout:
        """The window's layout: ``parts``, the error line, the busy bar, the button row."""
        return stacked(self, *parts, self.error, self.busy, row)

    def fail(self, error: TacitError) -> None:
        self.error.show_message(f"{practice_message(error)} ({error.code})")

    def notice(self, message: str) -> None:
        self.error.show_message(message, "notice")

    def wipe(self) -> None:
        """Forget everything shown (close, lock); results in flight are ignored."""
        self._closed = True
        for table in self.findChildren(QTableWidget):
            table.setRowCount(0)
        for combo in self.findChildren(QComboBox):  # client and member pickers
            combo.clear()
        wipe_widgets(self)

    def reject(self) -> None:
        if self.is_busy and not self._closed:  # a write in flight: its result says how it went
            return
        super().reject()

    def _forget(self, _result: int = 0) -> None:
        self.wipe()
        self.deleteLater()


class PracticeTableDialog(PracticeDialog):
    """A practice window around one table: ``rows`` (the records shown, one a table row),
    Refresh and Close, the common layout (intro, body, error line, busy bar, button row),
    a quiet reload after each sync, at most one child dialog at a time, and ``saved``
    (a write went in: reload, then sync). Subclasses define ``_load``."""

    table: QTableWidget
    refresh_button: QPushButton
    close_button: QPushButton
    # True: a reload after a sync keeps the message shown (a notice such as "Saved; …").
    keep_message_on_sync: ClassVar[bool] = True

    def __init__(self, ctx: PracticeContext, title: str, name: str,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(ctx, title, name, parent)
        self.rows: list[dict[str, Any]] = []
        self.child_dialog: QDialog | None = None

    # -- building ----------------------------------------------------------------------------
    def add_table(self, columns: Sequence[str], name: str, *,
                  track_selection: bool = True) -> QTableWidget:  # fmt: skip
        """The window's table (``track_selection``: buttons follow the selection)."""
        self.table = make_table(self, columns, name)
        if track_selection:
            self.table.itemSelectionChanged.connect(lambda: self.busy_changed(self.is_busy))
        return self.table

    def add_refresh_close(self) -> None:
        """The Refresh (``reload``) and Close buttons at the right of the button row."""
        self.refresh_button = named(QPushButton("Refresh", self), "Refresh")
        self.close_button = named(QPushButton("Close", self), "Close")
        self.refresh_button.clicked.connect(self.reload)
        self.close_button.clicked.connect(self.reject)

    def lay_out(self, intro: QWidget | None, body: QWidget, actions: Sequence[QWidget]) -> None:
        """Intro, body (stretching), error line, busy bar, then ``actions`` | Refresh, Close."""
        layout = self.lay_out_window(intro, body, row=button_row(
            actions, (self.refresh_button, self.close_button)))  # fmt: skip
        layout.setStretchFactor(body, 1)

    def start(self, width: int, height: int, *, follow_syncs: bool = True) -> None:
        """Size the window, set its buttons and read the table (``follow_syncs``: again
        after each sync)."""
        if follow_syncs:
            self.ctx.driver.synced.connect(self._synced)
        self.resize(width, height)
        self.busy_changed(False)
        self.reload()

    # -- reading -----------------------------------------------------------------------------
    def _synced(self, _counts: object) -> None:
        if not self.closed and not self.is_busy:
            self._load(clear=not self.keep_message_on_sync)

    def reload(self) -> None:
        self._load(clear=True)

    def _load(self, *, clear: bool) -> None:
        """Read the rows in the sync worker (``clear``: the message shown goes)."""
        raise NotImplementedError

    def show_rows(
        self, rows: Sequence[dict[str, Any]], cells: Callable[[dict[str, Any]], Sequence[str]]
    ) -> None:
        """Keep ``rows`` and show them, ``cells(row)`` a table row; the buttons follow."""
        self.rows = list(rows)
        fill(self.table, [cells(row) for row in self.rows])
        self.busy_changed(self.is_busy)

    def selected(self) -> dict[str, Any] | None:
        row = selected_row(self.table)
        return self.rows[row] if row is not None and row < len(self.rows) else None

    def select_where(self, key: str, value: str) -> bool:
        """Select the first row whose ``key`` is ``value`` (False: none)."""
        for r, row in enumerate(self.rows):
            if row.get(key) == value:
                self.table.selectRow(r)
                return True
        return False

    # -- writing -----------------------------------------------------------------------------
    def open_child(self, dialog: QDialog) -> None:
        """Open ``dialog`` window-modal as ``child_dialog`` (rejected by ``wipe``)."""
        self.child_dialog = dialog
        dialog.finished.connect(lambda _r: self._child_closed(dialog))
        dialog.open()

    def _child_closed(self, dialog: QDialog) -> None:
        if self.child_dialog is dialog:
            self.child_dialog = None

    def saved(self, notice: str = "") -> None:
        """A write went in: reload, sync so it goes out, and show ``notice``."""
        self.reload()  # before the sync: both share the sync worker
        self.ctx.wrote()
        if notice:
            self.notice(notice)

    def wipe(self) -> None:
        self.rows = []
        if self.child_dialog is not None:
            self.child_dialog.reject()
        super().wipe()
