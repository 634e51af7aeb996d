"""Session fees (Practice ▸ Fees…, the owner and admin staff): when recorded, client,
amount, paid; *Add fee…* (client, amount, optionally the appointment, paid or not) and
*Mark paid*.

Invariants: fees, contacts and appointments live only in this window's table, pickers and
``rows`` (dropped at close and at lock); writes are queued in the vault (``add_fee``,
``mark_paid``) and then the app syncs at once; the amount is checked by the service
(a decimal between 0 and 1,000,000), never parsed into a float here.
"""

from __future__ import annotations

from typing import Any

from app.ui.practice_common import (
    SAVED_NOTICE,
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
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QPushButton,
    QWidget,
)
from app.ui.widgets import named

COLUMNS = ("Recorded", "Client", "Amount", "Paid")


class AddFeeDialog(QDialog):
    """Record a fee: the values go back through ``choice()`` on OK."""

    def __init__(self, contacts: list[dict[str, Any]], appointments: list[dict[str, Any]],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle("Tacit — Add a fee")
        self.contacts = contacts
        self.appointments = appointments
        self.client = named(QComboBox(self), "Client")
        for c in contacts:
            who = str(c.get("clinician_email") or "")
            label = str(c.get("name") or c.get("client_id")) + (f" ({who})" if who else "")
            self.client.addItem(label, (c.get("client_id"), c.get("clinician")))
        self.appointment = named(QComboBox(self), "Appointment")
        self.amount = named(QLineEdit(self), "Amount", "e.g. 120.00")
        self.amount.setPlaceholderText("120.00")
        self.paid = named(QCheckBox("Paid already", self), "Paid already")
        self.buttons = ok_cancel(self, "Add fee")
        self.client.currentIndexChanged.connect(lambda _i: self._fill_appointments())
        self.amount.textChanged.connect(lambda _t: self._update())
        fields = [("&Client:", self.client), ("A&ppointment:", self.appointment),
                  ("&Amount:", self.amount), ("", self.paid)]  # fmt: skip
        empty = None if contacts else wrapped_label(
            "No clients yet: clinicians' clients appear here once their apps have synced.", self
        )  # fmt: skip
        stacked(self, form_of(fields), empty, self.buttons)
        self._fill_appointments()
        self.setMinimumWidth(440)

    def _fill_appointments(self) -> None:
        self.appointment.clear()
        self.appointment.addItem("None", None)
        data = self.client.currentData()
        client, clinician = data if isinstance(data, tuple) else (None, None)
        for a in self.appointments:
            if a.get("client_id") == client and a.get("clinician") == clinician:
                self.appointment.addItem(f"{when(a.get('start'))}, {a.get('duration_min')} min",
                                         a.get("appointment_id"))  # fmt: skip
        self._update()

    def _update(self) -> None:
        ok = self.client.count() > 0 and bool(self.amount.text().strip())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def choice(self) -> tuple[str, str, str | None, str | None, bool]:
        """(client id, amount, clinician, appointment id or None, paid)."""
        data = self.client.currentData()
        client, clinician = data if isinstance(data, tuple) else ("", None)
        appointment = self.appointment.currentData()
        return (str(client), self.amount.text().strip(),
                None if clinician is None else str(clinician),
                None if appointment is None else str(appointment),
                self.paid.isChecked())  # fmt: skip

    def done(self, result: int) -> None:
        super().done(result)
        self.client.clear()
        self.appointment.clear()
        self.contacts, self.appointments = [], []
        self.deleteLater()


class FeesDialog(PracticeTableDialog):
    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Fees", "practiceFeesDialog", parent)
        intro = wrapped_label("Session fees of the practice. Changes are sent at once (or "
                              "with the next sync when offline).", self)  # fmt: skip
        self.add_table(COLUMNS, "Fees")
        self.add_button = named(QPushButton("Add fee…", self), "Add a fee")
        self.paid_button = named(QPushButton("Mark paid", self), "Mark paid")
        self.add_refresh_close()
        self.add_button.clicked.connect(self.add)
        self.paid_button.clicked.connect(self.mark_paid)
        self.lay_out(intro, self.table, (self.add_button, self.paid_button))
        self.start(680, 440)

    @property
    def add_dialog(self) -> AddFeeDialog | None:
        """The Add-a-fee window while it is open."""
        dialog = self.child_dialog
        return dialog if isinstance(dialog, AddFeeDialog) else None

    def busy_changed(self, busy: bool) -> None:
        fee = self.selected()
        self.paid_button.setEnabled(not busy and fee is not None and not fee.get("paid"))
        self.add_button.setEnabled(not busy)
        self.refresh_button.setEnabled(not busy)

    def _load(self, *, clear: bool) -> None:
        self.run(lambda p: p.fees(), self._show, "Reading the fees…", clear=clear)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.show_rows(rows, lambda f: (
            when(f.get("at")), text(f.get("client")), text(f.get("amount")),
            "Paid" if f.get("paid") else "Not paid",
        ))  # fmt: skip

    # -- writes ----------------------------------------------------------------------------
    def add(self) -> None:
        """Add fee…: read the contacts and appointments (in the worker), then ask."""
        self.run(lambda p: (p.contacts(), p.appointments()), self._ask, "Reading the clients…")

    def _ask(self, lists: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
        dialog = AddFeeDialog(lists[0], lists[1], self)
        dialog.accepted.connect(lambda: self._add(*dialog.choice()))
        self.open_child(dialog)

    def _add(self, client: str, amount: str, clinician: str | None, appointment: str | None,
             paid: bool) -> None:  # fmt: skip
        if clinician == self.ctx.account_id:
            clinician = None  # this member's own client
        self.run(lambda p: p.add_fee(client, amount, clinician=clinician,
                                     appointment_id=appointment, paid=paid),
                 self._written, "Saving the fee…")  # fmt: skip

    def mark_paid(self) -> None:
        fee = self.selected()
        if fee is None or self.is_busy:
            return
        fee_id = str(fee.get("fee_id"))
        self.run(lambda p: p.mark_paid(fee_id), self._written, "Saving…")

    def _written(self, _body: dict[str, Any]) -> None:
        self.saved(SAVED_NOTICE)
