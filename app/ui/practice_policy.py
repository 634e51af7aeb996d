"""The practice policy (Members ▸ Policy…, the owner) and Practice ▸ Practice status
(every member): role, pending or active, the policy in force.

``PolicyDialog``: *Require two-step sign-in* (always enforced by the server — the box
says so), *Maximum idle minutes* (0: no limit) and *Offline lease days* (0: none) →
``PracticeService.set_policy`` (signed by the owner, published at once; every member's
app applies it at its next sync).

Invariants: the policy holds no client data; the policy dialog reads the current values
and writes in the sync worker; the status window shows only what the membership cached in
the vault says (no server call), and a pending member sees that they wait for the owner.
"""

from __future__ import annotations

from typing import Any

from app.sync import practice_protocol as pp
from app.ui.practice_common import (
    ROLE_LABELS,
    WAITING_TEXT,
    PracticeContext,
    PracticeDialog,
    button_row,
    form_of,
    stacked,
    text,
    wrapped_label,
)
from app.ui.qt import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    Qt,
    QWidget,
)
from app.ui.widgets import MessageLabel, named


def describe_policy(policy: dict[str, Any]) -> list[tuple[str, str]]:
    idle, lease = policy.get("max_idle_minutes"), policy.get("offline_lease_days")
    return [
        ("Two-step sign-in", "Required" if policy.get("require_totp", True) else "Not required"
         " (the server still asks every account for it)"),
        ("Idle lock", f"At most {idle} min" if idle else "No practice limit"),
        ("Offline lease", f"At most {lease} days" if lease else "None"),
    ]  # fmt: skip


class PolicyDialog(PracticeDialog):
    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Practice policy", "practicePolicyDialog", parent)
        intro = wrapped_label("Every member's app applies the policy at its next sync.", self)
        self.require_totp = named(QCheckBox("Require two-step sign-in", self),
                                  "Require two-step sign-in",
                                  "The server asks every account for a code anyway")  # fmt: skip
        self.max_idle = named(QSpinBox(self), "Maximum idle minutes")
        self.max_idle.setRange(0, pp.MAX_IDLE_MINUTES)
        self.max_idle.setSpecialValueText("No limit")
        self.max_idle.setSuffix(" min")
        self.lease = named(QSpinBox(self), "Offline lease days")
        self.lease.setRange(0, pp.MAX_LEASE_DAYS)
        self.lease.setSpecialValueText("None")
        self.lease.setSuffix(" days")
        hint = wrapped_label(
            "Idle lock: members' apps lock after at most this many minutes without activity. "
            "Offline lease: a member's device must reach the server at least this often, or "
            "it asks for their sync account before opening.", self,
        )  # fmt: skip
        hint.setObjectName("hint")
        self.save_button = named(QPushButton("Save policy", self), "Save policy")
        self.cancel_button = named(QPushButton("Cancel", self), "Cancel")
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.reject)
        fields = [("", self.require_totp), ("Maximum &idle:", self.max_idle),
                  ("Offline &lease:", self.lease)]  # fmt: skip
        self.lay_out_window(intro, form_of(fields), hint,
                            row=button_row([self.cancel_button], [self.save_button]))  # fmt: skip
        self.loaded = False
        self.busy_changed(False)
        self.setMinimumWidth(460)
        self.run(lambda p: p.policy(), self._show, "Reading the policy…")

    def busy_changed(self, busy: bool) -> None:
        self.save_button.setEnabled(not busy and self.loaded)

    def _show(self, policy: dict[str, Any]) -> None:
        self.require_totp.setChecked(bool(policy.get("require_totp", True)))
        self.max_idle.setValue(int(policy.get("max_idle_minutes") or 0))
        self.lease.setValue(int(policy.get("offline_lease_days") or 0))
        self.loaded = True
        self.busy_changed(self.is_busy)

    def save(self) -> None:
        if not self.save_button.isEnabled():
            return
        totp, idle, lease = self.require_totp.isChecked(), self.max_idle.value(), self.lease.value()
        self.run(lambda p: p.set_policy(require_totp=totp, max_idle_minutes=idle,
                                        offline_lease_days=lease),
                 self._saved, "Publishing the policy…")  # fmt: skip

    def _saved(self, _policy: dict[str, Any]) -> None:
        self.ctx.refresh()  # this app applies its own policy at once
        self.ctx.wrote()
        self.accept()


class PracticeStatusDialog(PracticeDialog):
    """Practice ▸ Practice status: what this vault's membership says, from the vault."""

    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Practice status", "practiceStatusDialog", parent)
        self.form = QFormLayout()
        self.waiting = MessageLabel(self)
        self.check_button = named(QPushButton("Check now", self), "Check now",
                                  "Sync now: the owner may have approved you")  # fmt: skip
        self.check_button.clicked.connect(self.check_now)
        self.close_button = named(QPushButton("Close", self), "Close")
        self.close_button.clicked.connect(self.reject)
        row = button_row([self.check_button], [self.close_button])
        stacked(self, self.form, self.waiting, self.error, row)  # no busy bar: no practice call
        self.setMinimumWidth(460)
        self.show_status(ctx.status)

    def show_status(self, status: dict[str, Any]) -> None:
        if self.closed:
            return
        while self.form.rowCount():
            self.form.removeRow(0)
        rows: list[tuple[str, str]] = [("Practice", "Not in a practice")]
        pending = False
        if status.get("in_practice"):
            pending = status.get("status") != "active"
            rows = [
                ("Practice", text(status.get("name"))),
                ("Your role", ROLE_LABELS.get(str(status.get("role")), text(status.get("role")))),
                ("Status", "Waiting for approval" if pending else "Active"),
                *describe_policy(dict(status.get("policy") or {})),
                ("Waiting to be sent", f"{int(status.get('queued') or 0)} changes"),
            ]
        for label, value in rows:
            field = QLabel(value, self)
            field.setTextFormat(Qt.TextFormat.PlainText)
            field.setAccessibleName(label)
            self.form.addRow(f"{label}:", field)
        if pending:
            self.waiting.show_message(WAITING_TEXT, "notice")
        else:
            self.waiting.clear_message()
        self.check_button.setVisible(pending)

    def check_now(self) -> None:
        self.ctx.wrote()
        self.error.show_message("Checking with the server…", "notice")
