"""The practice schedule (Practice ▸ Schedule…, every active member): appointments with
start, duration, client, clinician and status; *Book…* and *Set status*.

``BookDialog`` picks a client from the contacts this member may see
(``PracticeService.contacts``: a clinician's own vault clients; for admin staff and the
owner, every clinician's published contacts), a clinician (admin staff and the owner;
choosing one narrows the clients), the start date and time and the duration.

Invariants: the appointments and contacts live only in this window's table, pickers and
``rows`` (dropped at close and at lock); writes are queued in the vault
(``add_appointment``, ``set_appointment_status``) and then the app syncs at once, so they
go out promptly; nothing here writes a preference, a log line with content or a file.
"""

from __future__ import annotations

from typing import Any

from app.sync import practice_protocol as pp
from app.ui.practice_common import (
    SAVED_NOTICE,
    STATUS_LABELS,
    PracticeContext,
    PracticeTableDialog,
    form_of,
    ok_cancel,
    stacked,
    text,
    when,
    wrapped_label,
)
from app.ui.qt import (
    QComboBox,
    QDateTime,
    QDateTimeEdit,
    QDialog,
    QDialogButtonBox,
    QPushButton,
    QSpinBox,
    QWidget,
)
from app.ui.widgets import named

COLUMNS = ("Start", "Minutes", "Client", "Clinician", "Status")
DEFAULT_DURATION = 50
MIN_DURATION, MAX_DURATION = 5, 600
START_FORMAT = "yyyy-MM-ddTHH:mm"
YOU = "You"


def clinicians(contacts: list[dict[str, Any]], me: str) -> list[tuple[str, str]]:
    """(account id, label) of each clinician with a contact; this member first."""
    seen: dict[str, str] = {}
    for c in contacts:
        who = str(c.get("clinician") or "")
        if who and who not in seen:
            seen[who] = YOU if who == me else str(c.get("clinician_email") or who[:8])
    return sorted(seen.items(), key=lambda item: (item[0] != me, item[1].casefold()))


class BookDialog(QDialog):
    """Book an appointment: the values go back through ``choice()`` on OK."""

    def __init__(self, contacts: list[dict[str, Any]], role: str, me: str,
                 start: QDateTime, parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Tacit — Book an appointment")
        self.contacts = contacts
        self.me = me
        self.clinician = named(QComboBox(self), "Clinician")
        for account, label in clinicians(contacts, me):
            self.clinician.addItem(label, account)
        if role not in ("admin", "owner"):
            self.clinician.setEnabled(False)  # a clinician books their own clients
        self.client = named(QComboBox(self), "Client")
        self.start = named(QDateTimeEdit(start, self), "Start")
        self.start.setDisplayFormat("yyyy-MM-dd HH:mm")
        self.start.setCalendarPopup(True)
        self.duration = named(QSpinBox(self), "Duration in minutes")
        self.duration.setRange(MIN_DURATION, MAX_DURATION)
        self.duration.setSuffix(" min")
        self.duration.setValue(DEFAULT_DURATION)
        self.buttons = ok_cancel(self, "Book")
        self.clinician.currentIndexChanged.connect(lambda _i: self._fill_clients())
        fields = [("C&linician:", self.clinician), ("&Client:", self.client),
                  ("&Start:", self.start), ("&Duration:", self.duration)]  # fmt: skip
        empty = None if contacts else wrapped_label(
            "No clients to book yet: clinicians' clients appear here once their apps have "
            "synced.", self,
        )  # fmt: skip
        stacked(self, form_of(fields), empty, self.buttons)
        self._fill_clients()
        self.setMinimumWidth(420)

    def _fill_clients(self) -> None:
        who = self.clinician.currentData()
        self.client.clear()
        for c in self.contacts:
            if c.get("clinician") == who:
                self.client.addItem(str(c.get("name") or c.get("client_id")), c.get("client_id"))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(self.client.count() > 0)

    def choice(self) -> tuple[str, str, int, str | None]:
        """(client id, ISO start, minutes, clinician or None for this member)."""
        who = self.clinician.currentData()
        return (
            str(self.client.currentData()),
            self.start.dateTime().toString(START_FORMAT),
            self.duration.value(),
            None if who in (None, self.me) else str(who),
        )

    def done(self, result: int) -> None:
        super().done(result)
        self.client.clear()  # names go with the window
        self.clinician.clear()
        self.contacts = []
        self.deleteLater()


class ScheduleDialog(PracticeTableDialog):
    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Schedule", "practiceScheduleDialog", parent)
        intro = wrapped_label("The practice's appointments you can see. Changes are sent at "
                              "once (or with the next sync when offline).", self)  # fmt: skip
        self.add_table(COLUMNS, "Appointments")
        self.status = named(QComboBox(self), "New status")
        for key in pp.APPOINTMENT_STATUSES:
            self.status.addItem(STATUS_LABELS.get(key, key), key)
        self.set_status_button = named(QPushButton("Set status", self), "Set status")
        self.book_button = named(QPushButton("Book…", self), "Book an appointment")
        self.add_refresh_close()
        self.set_status_button.clicked.connect(self.set_status)
        self.book_button.clicked.connect(self.book)
        self.lay_out(intro, self.table, (self.book_button, self.status, self.set_status_button))
        self.start(820, 480)

    @property
    def book_dialog(self) -> BookDialog | None:
        """The booking window while it is open."""
        dialog = self.child_dialog
        return dialog if isinstance(dialog, BookDialog) else None

    def busy_changed(self, busy: bool) -> None:
        self.set_status_button.setEnabled(not busy and self.selected() is not None)
        self.book_button.setEnabled(not busy)
        self.refresh_button.setEnabled(not busy)

    def _load(self, *, clear: bool) -> None:
        self.run(lambda p: p.appointments(), self._show, "Reading the schedule…", clear=clear)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.show_rows(rows, lambda a: (
            when(a.get("start")), text(a.get("duration_min")), text(a.get("client")),
            text(a.get("clinician_email")),
            STATUS_LABELS.get(str(a.get("status")), text(a.get("status"))),
        ))  # fmt: skip

    # -- writes ----------------------------------------------------------------------------
    def book(self) -> None:
        """Book…: read the contacts (in the worker), then ask."""
        self.run(lambda p: p.contacts(), self._ask_booking, "Reading the clients…")

    def _ask_booking(self, contacts: list[dict[str, Any]]) -> None:
        start = QDateTime.currentDateTime().addSecs(3600)
        start.setTime(start.time().addSecs(-60 * start.time().minute() - start.time().second()))
        dialog = BookDialog(contacts, self.ctx.role, self.ctx.account_id, start, self)
        dialog.accepted.connect(lambda: self._booked(*dialog.choice()))
        self.open_child(dialog)

    def _booked(self, client: str, start: str, minutes: int, clinician: str | None) -> None:
        self.run(lambda p: p.add_appointment(client, start, minutes, clinician=clinician),
                 self._written, "Booking…")  # fmt: skip

    def set_status(self) -> None:
        appointment = self.selected()
        if appointment is None or self.is_busy:
            return
        wanted, status = str(appointment.get("appointment_id")), str(self.status.currentData())
        self.run(lambda p: p.set_appointment_status(wanted, status), self._written,
                 "Saving…")  # fmt: skip

    def _written(self, _body: dict[str, Any]) -> None:
        self.saved(SAVED_NOTICE)
