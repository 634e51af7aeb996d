"""``DevicesDialog``: the sync account's devices (Account ▸ Devices…) — name, last seen,
state, the latest order and when it took effect, this device marked — with Lock…, Wipe…
and Restore for a lost one (docs/PROTOCOL.md, "Devices, orders and escrow").

Every server call (``SyncService.devices``, ``send_order``) runs in the sync worker
(``SyncDriver.run_account``: never alongside a sync) with the busy bar on; the list is
read again after each order; errors are shown by their stable code in plain words.

Invariants:
- lock and wipe are never offered for this device (the server refuses them too);
- nothing is sent without a confirmation that says what happens; a wipe also needs the
  device's name typed;
- the dialog is a child of the main window: a lock destroys it with what it showed; the
  window title is always "Tacit — Devices".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from app.errors import TacitError
from app.sync.service import SyncService
from app.ui.qt import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
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
COLUMNS = ("Device", "Last seen", "State", "Latest order")
STATES = {
    "active": "Active",
    "lost": "Marked lost — order not yet carried out",
    "locked": "Locked",
    "wiped": "Wiped",
    "removed": "Removed",
}
LOCK_TEXT = (
    "Lock “{name}”?\n\n"
    "Its sessions end now. At its next contact with the server — within seconds if it is "
    "online — it locks: its passphrase no longer opens it and its device secret is "
    "destroyed. No note is lost: once you restore it here, it can be opened again with "
    "your sync account (password and a code), or with its recovery key."
)
WIPE_TEXT = (
    "Wipe “{name}”?\n\n"
    "Its sessions end now. At its next contact with the server it destroys every key of "
    "its vault and deletes the vault's files. Notes on it that were never synced are lost "
    "for good; synced notes stay on the server and your other devices. This cannot be "
    "undone, and the device cannot be restored."
)


def when(iso: object) -> str:
    """``2026-01-05T09:00:02.310Z`` → ``2026-01-05 09:00 UTC``; "—" when missing."""
    return f"{str(iso)[:16].replace('T', ' ')} UTC" if iso else "—"


def describe_order(order: dict[str, Any] | None) -> str:
    if not order:
        return "—"
    text = f"{order.get('action', '?')} sent {when(order.get('received_at'))}"
    if order.get("action") in ("lock", "wipe"):
        acked = order.get("acked_at")
        text += f", took effect {when(acked)}" if acked else ", not yet carried out"
    return text


def allowed(device: dict[str, Any]) -> set[str]:
    """The orders offered for a device: none for this one, else what its state allows."""
    if device.get("current"):
        return set()
    state = device.get("state")
    by_lock = state == "locked" or (
        state == "lost" and (device.get("order") or {}).get("action") == "lock"
    )
    offered = {"lock", "wipe"} if state == "active" else set()
    if by_lock:
        offered |= {"wipe", "restore"}
    return offered


class ConfirmOrderDialog(QDialog):
    """Says exactly what a lock or wipe does; a wipe needs the device's name typed."""

    def __init__(self, action: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Devices")
        self.action = action
        self.expected = name.strip() or "WIPE"
        text = (WIPE_TEXT if action == "wipe" else LOCK_TEXT).format(name=name or "this device")
        self.text = QLabel(text, self)
        self.text.setWordWrap(True)
        self.name_field = named(QLineEdit(self), "Device name to confirm the wipe")
        self.name_field.setPlaceholderText(self.expected)
        self.name_label = QLabel(f"Type “{self.expected}” to confirm:", self)
        # With the account password the keys change so that the lost device can read
        # nothing written from now on, even with its old keys (a new key epoch). The
        # other devices are then asked to sign in again.
        self.password_label = QLabel(
            "Account password (recommended: without it, a copy of the lost device's keys "
            "could still read notes written later; your other devices will ask you to "
            "sign in again):", self,
        )  # fmt: skip
        self.password_label.setWordWrap(True)
        self.password_field = named(QLineEdit(self), "Account password")
        self.password_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm_button = named(
            QPushButton("Wipe device" if action == "wipe" else "Lock device", self),
            "Wipe device" if action == "wipe" else "Lock device",
        )
        self.cancel_button = named(QPushButton("Cancel", self), "Cancel")
        self.cancel_button.setDefault(True)
        self.cancel_button.clicked.connect(self.reject)
        self.confirm_button.clicked.connect(self.accept)
        self.name_field.textChanged.connect(self._update)
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        row.addWidget(self.confirm_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        if action == "wipe":
            layout.addWidget(self.name_label)
            layout.addWidget(self.name_field)
        else:
            self.name_label.hide()
            self.name_field.hide()
        layout.addWidget(self.password_label)
        layout.addWidget(self.password_field)
        layout.addLayout(row)
        self._update()
        self.setMinimumWidth(460)

    def _update(self, *_args: object) -> None:
        self.confirm_button.setEnabled(
            self.action != "wipe" or self.name_field.text().strip() == self.expected
        )

    def take_password(self) -> Passphrase | None:
        """The account password typed (or None), cleared from the field."""
        text = self.password_field.text()
        self.password_field.clear()
        return Passphrase.from_str(text) if text else None

    def accept(self) -> None:
        if self.confirm_button.isEnabled():
            super().accept()


class DevicesDialog(QDialog):
    def __init__(self, driver: SyncDriver, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._driver = driver
        self._closed = False
        self.rows: list[dict[str, Any]] = []
        self.confirm: ConfirmOrderDialog | None = None
        self.setWindowTitle("Tacit — Devices")
        self.setObjectName("devicesDialog")
        intro = QLabel(
            "The devices signed in to your sync account. If one is lost or stolen, lock it "
            "(it can be restored, nothing is lost) or wipe it (its vault is destroyed).",
            self,
        )
        intro.setWordWrap(True)
        self.table = named(QTableWidget(0, len(COLUMNS), self), "Devices")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.hint = QLabel(self)
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        self.lock_button = named(QPushButton("Lock…", self), "Lock device")
        self.wipe_button = named(QPushButton("Wipe…", self), "Wipe device")
        self.restore_button = named(
            QPushButton("Restore", self), "Restore device",
            "Clear the lost flag; the device then signs in again",
        )  # fmt: skip
        self.refresh_button = named(QPushButton("Refresh", self), "Refresh")
        self.close_button = named(QPushButton("Close", self), "Close")
        self.lock_button.clicked.connect(lambda: self.ask("lock"))
        self.wipe_button.clicked.connect(lambda: self.ask("wipe"))
        self.restore_button.clicked.connect(lambda: self.send("restore"))
        self.refresh_button.clicked.connect(self.refresh)
        self.close_button.clicked.connect(self.reject)
        self.error = MessageLabel(self)
        self.busy = BusyBar(self)
        row = QHBoxLayout()
        for button in (self.lock_button, self.wipe_button, self.restore_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.refresh_button)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        layout.addLayout(row)
        self.finished.connect(self._forget)
        self.resize(720, 420)
        self._update_buttons()
        self.refresh()

    # -- running -----------------------------------------------------------------------
    @property
    def is_busy(self) -> bool:
        return self.busy.busy

    def set_busy(self, busy: bool, message: str = "") -> None:
        if self._closed:
            return
        self.busy.set_busy(busy, message)
        self.refresh_button.setEnabled(not busy)
        self._update_buttons()

    def _alive(self, fn: Callable[[T], None]) -> Callable[[T], None]:
        def call(value: T) -> None:
            if not self._closed:
                fn(value)

        return call

    def _run(self, fn: Callable[[SyncService], T], on_done: Callable[[T], None],
             message: str) -> None:  # fmt: skip
        self.error.clear_message()
        started = self._driver.run_account(fn, self._alive(on_done), self._alive(self._fail),
                                           busy=self, message=message)  # fmt: skip
        if not started:
            self.error.show_message("The vault is locked.")

    def _fail(self, error: TacitError) -> None:
        self.error.show_message(plain_message(error))

    # -- the list ----------------------------------------------------------------------
    def refresh(self) -> None:
        self._run(lambda service: service.devices(), self._show, "Reading the devices…")

    def _show(self, rows: list[dict[str, Any]]) -> None:
        selected = self.selected()
        self.rows = list(rows)
        self.table.setRowCount(len(self.rows))
        for r, device in enumerate(self.rows):
            name = str(device.get("name") or "—")
            cells = (
                f"{name} (this device)" if device.get("current") else name,
                when(device.get("last_seen")),
                STATES.get(str(device.get("state")), str(device.get("state"))),
                describe_order(device.get("order")),
            )
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
            if selected is not None and device.get("id") == selected.get("id"):
                self.table.selectRow(r)
        self._update_buttons()

    def selected(self) -> dict[str, Any] | None:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def select(self, device_id: str) -> bool:
        for r, device in enumerate(self.rows):
            if device.get("id") == device_id:
                self.table.selectRow(r)
                return True
        return False

    def _update_buttons(self) -> None:
        device = self.selected()
        offered = allowed(device) if device is not None and not self.is_busy else set()
        self.lock_button.setEnabled("lock" in offered)
        self.wipe_button.setEnabled("wipe" in offered)
        self.restore_button.setEnabled("restore" in offered)
        if device is not None and device.get("current"):
            self.hint.setText("This is the device you are using: it cannot lock or wipe itself.")
        else:
            self.hint.setText("")

    # -- orders ------------------------------------------------------------------------
    def ask(self, action: str) -> ConfirmOrderDialog | None:
        """Lock… / Wipe…: confirm first (window-modal), then send."""
        device = self.selected()
        if device is None or action not in allowed(device) or self.is_busy:
            return None
        dialog = ConfirmOrderDialog(action, str(device.get("name") or ""), self)
        device_id = str(device["id"])
        dialog.accepted.connect(
            lambda: self.send(action, device_id, password=dialog.take_password())
        )
        dialog.finished.connect(lambda _r: self._confirm_closed(dialog))
        self.confirm = dialog
        dialog.open()
        return dialog

    def _confirm_closed(self, dialog: ConfirmOrderDialog) -> None:
        dialog.password_field.clear()  # cancelled: the password typed goes too
        if self.confirm is dialog:
            self.confirm = None
        dialog.deleteLater()

    def send(
        self, action: str, device_id: str | None = None, *, password: Passphrase | None = None
    ) -> None:
        """Send the order (after the confirmation for lock and wipe), then re-read. With
        the account password, a lock or wipe also makes a new key epoch."""
        if device_id is None:
            device = self.selected()
            if device is None or action not in allowed(device):
                return
            device_id = str(device["id"])
        target = device_id

        def order(service: SyncService) -> dict[str, Any]:
            try:
                return service.send_order(target, action, password=password)
            finally:
                if password is not None:
                    password.wipe()

        self._run(order, lambda _shown: self.refresh(), f"Sending the {action} order…")

    # -- closing -----------------------------------------------------------------------
    def wipe(self) -> None:
        """Forget what was shown (close, lock); results in flight are ignored."""
        self._closed = True
        self.rows = []
        self.table.setRowCount(0)
        wipe_widgets(self)

    def reject(self) -> None:
        if self.is_busy:  # an order in flight: its result says whether it was sent
            return
        super().reject()

    def _forget(self, _result: int = 0) -> None:
        self.wipe()
        self.deleteLater()
