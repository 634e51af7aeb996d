"""Creating and joining a practice (Practice ▸ Create a practice… / Join a practice…).

``CreatePracticeDialog``: a name and the owner's email as members see it →
``PracticeService.create`` (this vault's signed-in account becomes the owner).

``JoinPracticeDialog`` is the sync account dialog (``AccountDialog``) with its sign-up
page turned into a join form: the invite code, the server, an optional CA file (typed or
chosen through ``widgets.private_file_dialog``) and the new account's password twice →
``PracticeService.join``, which signs up the member's own account in the same request.
The TOTP enrolment that follows — QR code, link, recovery codes, the first code to sign
in — is the account dialog's own page and code, not a copy.

Invariants: as ``AccountDialog``'s (the password is a wipeable ``Passphrase`` held only
until the enrolment is confirmed; the QR code is never a file; codes copy only through
the self-clearing clipboard); the invite code leaves its field once used; a vault that
is already linked to an account cannot join (``PracticeService.join`` refuses; the menu
does not offer it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from app.errors import TacitError
from app.sync.service import SyncService
from app.ui.account_dialog import PAGE_SIGNUP, AccountDialog
from app.ui.clipboard import ClipboardGuard
from app.ui.practice_common import (
    ROLE_LABELS,
    WAITING_TEXT,
    PracticeContext,
    PracticeDialog,
    PracticeFactory,
    button_row,
    form_of,
    practice_message,
    wrapped_label,
)
from app.ui.qt import (
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.syncing import SyncDriver
from app.ui.widgets import named, private_file_dialog

JOIN_HINT = (
    "Joining creates your own sync account on the practice's server, with its own password "
    "and two-step sign-in. The practice owner then approves you from their app."
)


class CreatePracticeDialog(PracticeDialog):
    """A practice with this account as its owner (and records custodian)."""

    created = Signal(object)  # {"practice_id","name","role"}

    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Create a practice", "createPracticeDialog", parent)
        intro = wrapped_label(
            "You become the practice's owner: you invite members, approve them, set the "
            "practice's policies, and can read every clinician's records (not their "
            "psychotherapy notes).", self,
        )  # fmt: skip
        self.name = named(QLineEdit(self), "Practice name")
        self.email = named(QLineEdit(self), "Your email", "Shown to the practice's members")
        self.create_button = named(QPushButton("Create practice", self), "Create practice")
        self.cancel_button = named(QPushButton("Cancel", self), "Cancel")
        self.create_button.clicked.connect(self.create_practice)
        self.cancel_button.clicked.connect(self.reject)
        self.name.textChanged.connect(lambda _t: self.busy_changed(self.is_busy))
        self.email.textChanged.connect(lambda _t: self.busy_changed(self.is_busy))
        fields = [("Practice &name:", self.name), ("Your &email:", self.email)]
        self.lay_out_window(intro, form_of(fields),
                            row=button_row([self.cancel_button], [self.create_button]))  # fmt: skip
        self.busy_changed(False)
        self.setMinimumWidth(460)

    def busy_changed(self, busy: bool) -> None:
        ready = bool(self.name.text().strip()) and "@" in self.email.text()
        self.create_button.setEnabled(ready and not busy)
        self.cancel_button.setEnabled(not busy)

    def create_practice(self) -> None:
        if not self.create_button.isEnabled():
            return
        name, email = self.name.text().strip(), self.email.text().strip()
        self.run(lambda p: p.create(name, email), self._created, "Creating the practice…")

    def _created(self, info: dict[str, Any]) -> None:
        self.ctx.refresh()
        self.ctx.wrote()
        self.created.emit(info)
        self.accept()


class JoinPracticeDialog(AccountDialog):
    """The account dialog, joining a practice instead of signing up plainly."""

    joined = Signal()  # the membership changed (joined; later, signed in)

    def __init__(
        self, driver: SyncDriver, clipboard: ClipboardGuard, factory: PracticeFactory,
        parent: QWidget | None = None,
    ) -> None:  # fmt: skip
        self._factory = factory
        self._joined_info: dict[str, str] | None = None
        self.file_dialog: QFileDialog | None = None
        super().__init__(driver, clipboard, parent)
        self.setWindowTitle("Tacit — Join a practice")
        self.setObjectName("joinPracticeDialog")
        page = self.stack.widget(PAGE_SIGNUP)
        assert page is not None  # built by AccountDialog.__init__
        self.code = named(QLineEdit(page), "Invite code",
                          "TP- and 32 letters and digits, from the practice owner")  # fmt: skip
        self.code.setPlaceholderText("TP-XXXX-XXXX-…")
        self.ca_choose = named(QPushButton("Choose CA file…", page), "Choose a CA certificate file")
        self.ca_choose.clicked.connect(self.choose_ca_file)
        form = page.findChild(QFormLayout)
        if form is not None:
            form.insertRow(0, "Invite &code:", self.code)
            position = cast(tuple[int, object], form.getWidgetPosition(self.su_ca_file))
            form.insertRow(position[0] + 1, "", self.ca_choose)
        for label in page.findChildren(QLabel):
            if label.objectName() == "title":
                label.setText("Join a practice")
        for button in page.findChildren(QPushButton):
            if button.accessibleName() == "Back":
                button.hide()  # there is no plain status page to go back to yet
        hint = wrapped_label(JOIN_HINT, page)
        layout = page.layout()
        if isinstance(layout, QVBoxLayout):
            layout.insertWidget(1, hint)
        self.create_button.setText("Join")
        named(self.create_button, "Join the practice")
        self.code.textChanged.connect(lambda _t: self._update_create())
        self._update_create()

    # -- the join form ---------------------------------------------------------------------
    def refresh(self) -> None:
        if getattr(self, "_joined_info", None) is None:
            self._go(PAGE_SIGNUP)  # called by AccountDialog.__init__ too
            return
        super().refresh()

    def _update_create(self) -> None:
        code = getattr(self, "code", None)
        self.create_button.setEnabled(
            self.su_password.valid and bool(self.su_server.text().strip())
            and code is not None and bool(code.text().strip())
        )  # fmt: skip

    def choose_ca_file(self) -> QFileDialog:
        dialog = private_file_dialog(self, "Tacit — CA certificate", str(Path.home()))
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptOpen)
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilters(["Certificates (*.pem *.crt *.cer)", "All files (*)"])
        dialog.fileSelected.connect(lambda name: self.su_ca_file.setText(name) if name else None)
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def create_account(self) -> None:
        """Join: the member's account is created with the join (one request)."""
        if not self.create_button.isEnabled() or self.is_busy:
            return
        self._wipe_password()
        password = self.su_password.take()
        self._password = password
        code = self.code.text().strip()
        server, username = self.su_server.text().strip(), self.su_username.text().strip() or None
        ca_file = self.su_ca_file.text().strip() or None
        device = self.su_device.text().strip() or None
        factory = self._factory

        def join(service: SyncService) -> dict[str, Any]:
            return factory(service).join(code, server, password, ca_file=ca_file,
                                         device_name=device, username=username)  # fmt: skip

        if not self._run(join, self._joined, "Joining the practice — creating your account…",
                         self._create_failed):  # fmt: skip
            self._wipe_password()

    def _joined(self, created: dict[str, Any]) -> None:
        self.code.clear()
        role = ROLE_LABELS.get(str(created.get("role")), str(created.get("role") or ""))
        self._joined_info = {"practice": str(created.get("practice") or ""), "role": role}
        self.joined.emit()
        self._enrolled(created)  # the account dialog's enrolment page
        self.error.show_message(
            f"You joined “{self._joined_info['practice']}” as {role.lower()}. Set up two-step "
            "sign-in to finish.", "notice",
        )  # fmt: skip

    def _fail(self, error: TacitError) -> None:
        self.error.show_message(f"{practice_message(error)} ({error.code})")

    def _signed_in(self, _info: dict[str, Any]) -> None:
        super()._signed_in(_info)
        self.joined.emit()

    def _show_status(self, status: dict[str, Any]) -> None:
        super()._show_status(status)
        self.signup_button.hide()
        self.error.show_message(WAITING_TEXT, "notice")

    def wipe(self) -> None:
        self.code.clear()
        super().wipe()
