"""The practice's members (Practice ▸ Members…, the owner): the members table (email,
role, state, whom a supervisor supervises) with *Invite…* (the one-time code shown in a
selectable label, *Copy code* through the self-clearing clipboard), *Remove…* (after a
confirmation that says their devices are locked and the keys rotated), *Assign
supervisor…* and *Policy…* (``PolicyDialog``).

Invariants: every call here needs the server and runs in the sync worker; nothing is
removed without the confirmation (Cancel is the default); the invite code is shown only
in this window, copied only concealed and self-clearing, and dropped when the invite
window closes or the app locks.
"""

from __future__ import annotations

from typing import Any

from app.sync import practice_protocol as pp
from app.ui.practice_common import (
    ROLE_LABELS,
    PracticeContext,
    PracticeDialog,
    PracticeTableDialog,
    button_row,
    form_of,
    ok_cancel,
    stacked,
    text,
    wrapped_label,
)
from app.ui.practice_policy import PolicyDialog
from app.ui.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    Qt,
    QWidget,
)
from app.ui.widgets import named

COLUMNS = ("Email", "Role", "State", "Supervises")
STATES = {"active": "Active", "pending": "Waiting for approval (at your next sync)",
          "removed": "Removed"}  # fmt: skip
REMOVE_TEXT = (
    "Remove {email} from the practice?\n\n"
    "Their sessions end now, and their devices will be locked (as for a lost device). "
    "The keys of every collection they could read are rotated, so they cannot read "
    "anything written from now on. What they wrote stays in the practice. This "
    "cannot be undone: to work together again, invite them anew."
)


class InviteDialog(PracticeDialog):
    """An invite: email and role → the one-time code, shown once, with Copy code."""

    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Invite a member", "practiceInviteDialog", parent)
        self.email = named(QLineEdit(self), "Member's email")
        self.role = named(QComboBox(self), "Role")
        for role in pp.INVITE_ROLES:
            self.role.addItem(ROLE_LABELS.get(role, role), role)
        self.invite_button = named(QPushButton("Make invite code", self), "Make invite code")
        self.invite_button.clicked.connect(self.invite)
        self.email.textChanged.connect(lambda _t: self.busy_changed(self.is_busy))
        self.code = QLabel(self)
        self.code.setObjectName("recoveryCodes")
        self.code.setTextFormat(Qt.TextFormat.PlainText)
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.code.setAccessibleName("Invite code")
        self.code.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.code_hint = QLabel(self)
        self.code_hint.setWordWrap(True)
        self.copy_button = named(QPushButton("Copy code", self), "Copy invite code",
                                 "The clipboard is cleared again after a short delay")  # fmt: skip
        self.copy_button.clicked.connect(self.copy_code)
        self.copy_button.hide()
        self.close_button = named(QPushButton("Close", self), "Close")
        self.close_button.clicked.connect(self.reject)
        self.lay_out_window(
            form_of([("&Email:", self.email), ("&Role:", self.role)]), self.code, self.code_hint,
            row=button_row([self.copy_button], [self.invite_button, self.close_button]),
        )  # fmt: skip
        self.busy_changed(False)
        self.setMinimumWidth(480)

    def busy_changed(self, busy: bool) -> None:
        self.invite_button.setEnabled(not busy and "@" in self.email.text())

    def invite(self) -> None:
        if not self.invite_button.isEnabled():
            return
        email, role = self.email.text().strip(), str(self.role.currentData())
        self.run(lambda p: p.invite(email, role), self._show_code, "Making the invite…")

    def _show_code(self, info: dict[str, Any]) -> None:
        self.code.setText(str(info.get("code") or ""))
        self.code_hint.setText(
            f"Give this code to {text(info.get('email'))} in person or by phone (not in the "
            f"same email as the server address). It works once, until "
            f"{str(info.get('expires_at') or '')[:10]}. It is shown only now."
        )
        self.copy_button.show()
        self.email.clear()

    @property
    def invite_code(self) -> str:
        return self.code.text()

    def copy_code(self) -> None:
        if self.invite_code:
            self.ctx.clipboard.copy(self.invite_code)
            seconds = max(1, self.ctx.clipboard.delay_ms // 1000)
            self.notice(f"Copied. The clipboard will be cleared in {seconds} s.")


class SuperviseDialog(QDialog):
    """Pick a supervisor and a clinician they supervise: values through ``choice()``."""

    def __init__(self, members: list[dict[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Tacit — Assign a supervisor")
        self.supervisor = named(QComboBox(self), "Supervisor")
        self.clinician = named(QComboBox(self), "Clinician")
        for m in members:
            if m.get("status") != "active" or not m.get("certified"):
                continue
            label = f"{text(m.get('email'))} ({ROLE_LABELS.get(str(m.get('role')), '')})"
            if m.get("role") == "supervisor":
                self.supervisor.addItem(label, m.get("account_id"))
            if m.get("role") in pp.CLINICAL_ROLES:
                self.clinician.addItem(label, m.get("account_id"))
        hint = wrapped_label("The supervisor can then read and co-sign this clinician's "
                             "notes (never their psychotherapy notes).", self)  # fmt: skip
        self.buttons = ok_cancel(self, "Assign")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(
            self.supervisor.count() > 0 and self.clinician.count() > 0
        )
        fields = [("&Supervisor:", self.supervisor), ("&Clinician:", self.clinician)]
        stacked(self, form_of(fields), hint, self.buttons)
        self.finished.connect(lambda _r: self.deleteLater())

    def choice(self) -> tuple[str, str]:
        return str(self.supervisor.currentData()), str(self.clinician.currentData())


class MembersDialog(PracticeTableDialog):
    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Practice members", "practiceMembersDialog", parent)
        self.confirm: QMessageBox | None = None
        self.add_table(COLUMNS, "Members")
        self.invite_button = named(QPushButton("Invite…", self), "Invite a member")
        self.remove_button = named(QPushButton("Remove…", self), "Remove the member")
        self.supervise_button = named(QPushButton("Assign supervisor…", self),
                                      "Assign a supervisor")  # fmt: skip
        self.policy_button = named(QPushButton("Policy…", self), "Practice policy")
        self.add_refresh_close()
        self.invite_button.clicked.connect(self.open_invite)
        self.remove_button.clicked.connect(self.ask_remove)
        self.supervise_button.clicked.connect(self.open_supervise)
        self.policy_button.clicked.connect(self.open_policy)
        self.lay_out(None, self.table, (self.invite_button, self.remove_button,
                                        self.supervise_button, self.policy_button))  # fmt: skip
        self.start(820, 420, follow_syncs=False)

    def busy_changed(self, busy: bool) -> None:
        member = self.selected()
        self.remove_button.setEnabled(
            not busy and member is not None and not member.get("you")
            and member.get("status") != "removed"
        )  # fmt: skip
        for button in (self.invite_button, self.supervise_button, self.policy_button,
                       self.refresh_button):  # fmt: skip
            button.setEnabled(not busy)

    def _load(self, *, clear: bool) -> None:
        self.run(lambda p: p.members(), self._show, "Reading the members…", clear=clear)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        emails = {str(m.get("account_id")): text(m.get("email")) for m in rows}
        self.show_rows(rows, lambda m: (
            text(m.get("email")) + (" (you)" if m.get("you") else ""),
            ROLE_LABELS.get(str(m.get("role")), text(m.get("role"))),
            STATES.get(str(m.get("status")), text(m.get("status")))
            + ("" if m.get("certified") or m.get("status") != "active" else " — not certified"),
            ", ".join(emails.get(str(a), str(a)[:8]) for a in m.get("supervises") or []) or "—",
        ))  # fmt: skip

    def select(self, email: str) -> bool:
        return self.select_where("email", email)

    # -- actions -----------------------------------------------------------------------------

    def open_invite(self) -> InviteDialog:
        dialog = InviteDialog(self.ctx, self)
        dialog.finished.connect(lambda _r: self.reload() if not self.closed else None)
        self.open_child(dialog)
        return dialog

    def open_policy(self) -> PolicyDialog:
        dialog = PolicyDialog(self.ctx, self)
        self.open_child(dialog)
        return dialog

    def open_supervise(self) -> SuperviseDialog:
        dialog = SuperviseDialog(self.rows, self)
        dialog.accepted.connect(lambda: self._supervise(*dialog.choice()))
        self.open_child(dialog)
        return dialog

    def _supervise(self, supervisor: str, clinician: str) -> None:
        self.run(lambda p: p.supervise(supervisor, clinician), lambda _i: self.saved(),
                 "Assigning the supervisor…")  # fmt: skip

    def ask_remove(self) -> QMessageBox | None:
        """Remove…: a window-modal confirmation first (Cancel is the default)."""
        member = self.selected()
        if member is None or not self.remove_button.isEnabled():
            return None
        account = str(member.get("account_id"))
        box = QMessageBox(self)
        box.setWindowTitle("Tacit — Remove a member")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText(REMOVE_TEXT.format(email=text(member.get("email"))))
        remove = box.addButton("Remove member", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)

        def done(_result: int) -> None:
            clicked = box.clickedButton()
            if self.confirm is box:
                self.confirm = None
            box.deleteLater()
            if clicked is remove and not self.closed:
                self._remove(account)

        box.finished.connect(done)
        self.confirm = box
        box.open()
        return box

    def _remove(self, account: str) -> None:
        self.run(lambda p: p.remove(account), self._removed,
                 "Removing — locking their devices and rotating keys…")  # fmt: skip

    def _removed(self, info: dict[str, Any]) -> None:
        self.saved(f"Removed: {text(info.get('sessions_ended'))} sessions ended, "
                    f"{text(info.get('devices_locked'))} devices to lock, "
                    f"{len(info.get('rotated') or [])} keys rotated.")  # fmt: skip

    def wipe(self) -> None:
        if self.confirm is not None:
            self.confirm.reject()
        super().wipe()
