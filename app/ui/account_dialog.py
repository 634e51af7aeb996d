"""``AccountDialog``: the sync account — status, sign up (with TOTP enrolment and the
recovery codes shown once), sign in, sign out. Account ▸ Sync account… opens it.

Pages: status → "Create an account…" → enrolment (QR code, ``otpauth://`` link, ten
recovery codes, then a code from the authenticator app to finish signing in); or
status → "Sign in…" (password + an authenticator code or a recovery code).

Every call that derives keys (Argon2id) or talks to the server runs in the sync worker
(``SyncDriver.run_account``: never alongside a background sync) with the busy bar on;
errors are shown by their stable code in plain words.

Invariants:
- the QR code is rendered in memory (segno → PNG bytes → QPixmap), never written to a
  file; the TOTP link and the recovery codes live only in labels that cannot be
  selected, so the only way to copy them is the Copy buttons, which go through the
  concealed, self-clearing clipboard;
- the account password is held (as a wipeable ``Passphrase``) only from sign-up until
  the enrolment is confirmed with a code, and is wiped then, on failure, on close and on
  lock; the dialog is a child of the main window, so a lock destroys it with everything
  it showed;
- the window title is always "Tacit — Sync account".
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, TypeVar

import segno

from app.errors import TacitError
from app.sync.service import SyncService
from app.ui.clipboard import ClipboardGuard
from app.ui.passphrase_form import PassphraseForm
from app.ui.qt import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QFont,
    QFontDatabase,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPixmap,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.syncing import SyncDriver, describe_account, plain_message
from app.ui.widgets import BusyBar, MessageLabel, named, wipe_widgets
from app.vault.crypto import Passphrase

T = TypeVar("T")
PAGE_STATUS, PAGE_SIGNUP, PAGE_ENROLL, PAGE_SIGNIN = 0, 1, 2, 3
QR_SCALE = 5
CLEARED_HINT = "The clipboard is cleared again after a short delay"
DEVICE_HINT = "The server stores this name as it is: do not use a person's name."


def qr_pixmap(uri: str) -> QPixmap:
    """The QR code of ``uri``, rendered in memory (never a file)."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=QR_SCALE, border=4,
                                    dark="#000000", light="#ffffff")  # fmt: skip
    pixmap = QPixmap()
    pixmap.loadFromData(buffer.getvalue(), "PNG")
    buffer.seek(0)
    buffer.truncate()
    return pixmap


def _mono() -> QFont:
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    font.setWeight(QFont.Weight.DemiBold)
    return font


def _status_with_device(service: SyncService) -> dict[str, Any]:
    return {**service.status(), "device_name": service.store.get("device_name")}


class AccountDialog(QDialog):
    def __init__(
        self, driver: SyncDriver, clipboard: ClipboardGuard, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._driver = driver
        self._clipboard = clipboard
        self._password: Passphrase | None = None  # from sign-up until the code is checked
        self._status: dict[str, Any] = {}
        self._closed = False
        self.setWindowTitle("Tacit — Sync account")
        self.setObjectName("accountDialog")
        self.stack = QStackedWidget(self)
        for build in (self._status_page, self._signup_page, self._enroll_page,
                      self._signin_page):  # fmt: skip
            self.stack.addWidget(build())
        self.error = MessageLabel(self)
        self.busy = BusyBar(self)
        self.close_button = named(QPushButton("Close", self), "Close")
        self.close_button.clicked.connect(self.reject)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.busy)
        layout.addLayout(row)
        self.finished.connect(self._forget)
        self.resize(560, 620)
        self.refresh()

    # -- pages -------------------------------------------------------------------------
    def _status_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Sync account", page)
        title.setObjectName("title")
        intro = QLabel(
            "Sync keeps your vault the same on your devices. Everything is encrypted on "
            "this computer before it is sent: the server stores only ciphertext and never "
            "receives your account password.", page,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.status_form = QFormLayout()
        self.sync_state = QLabel(page)
        self.sync_state.setObjectName("hint")
        self.signup_button = named(QPushButton("Create an account…", page), "Create an account")
        self.signin_button = named(QPushButton("Sign in…", page), "Sign in")
        self.signout_button = named(QPushButton("Sign out", page), "Sign out")
        self.sync_button = named(QPushButton("Sync now", page), "Sync now")
        self.signup_button.clicked.connect(lambda: self._go(PAGE_SIGNUP))
        self.signin_button.clicked.connect(self._open_signin)
        self.signout_button.clicked.connect(self.sign_out)
        self.sync_button.clicked.connect(self._sync_now)
        buttons = QHBoxLayout()
        for button in (self.signup_button, self.signin_button, self.signout_button,
                       self.sync_button):  # fmt: skip
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addLayout(self.status_form)
        layout.addWidget(self.sync_state)
        layout.addStretch(1)
        layout.addLayout(buttons)
        return page

    def _server_fields(self, page: QWidget) -> tuple[QLineEdit, QLineEdit, QLineEdit, QLineEdit]:
        server = named(QLineEdit(page), "Server address", "e.g. https://sync.example.org")
        server.setPlaceholderText("https://sync.example.org")
        ca_file = named(
            QLineEdit(page), "CA certificate file",
            "Optional: a PEM file to trust instead of the system's certificates",
        )  # fmt: skip
        ca_file.setPlaceholderText("Optional: path to a CA certificate (PEM)")
        username = named(QLineEdit(page), "Username", "3 to 64 characters: a-z 0-9 . _ @ + -")
        device = named(QLineEdit(page), "Device name", DEVICE_HINT)
        device.setPlaceholderText("e.g. Office laptop")
        return server, ca_file, username, device

    def _signup_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Create a sync account", page)
        title.setObjectName("title")
        self.su_server, self.su_ca_file, self.su_username, self.su_device = self._server_fields(
            page
        )
        self.su_password = PassphraseForm(page, label="Account password")
        hint = QLabel(
            "The account password is separate from the vault passphrase. It cannot be "
            "reset: with a new computer you need it and your authenticator app (or a "
            "recovery code).", page,
        )  # fmt: skip
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Ser&ver:", self.su_server)
        form.addRow("C&A file:", self.su_ca_file)
        form.addRow("&Username:", self.su_username)
        form.addRow("&Device name:", self.su_device)
        self.create_button = named(QPushButton("Create account", page), "Create account")
        self.create_button.setEnabled(False)
        self.su_password.validity_changed.connect(self._update_create)
        self.su_server.textChanged.connect(lambda _t: self._update_create())
        self.create_button.clicked.connect(self.create_account)
        back = named(QPushButton("Back", page), "Back")
        back.clicked.connect(lambda: self._go(PAGE_STATUS))
        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addWidget(self.su_password)
        layout.addWidget(hint)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(back)
        row.addStretch(1)
        row.addWidget(self.create_button)
        layout.addLayout(row)
        return page

    def _enroll_page(self) -> QWidget:
        page = self.enroll_page = QWidget(self)
        title = QLabel("Set up two-step sign-in", page)
        title.setObjectName("title")
        intro = QLabel(
            "Scan this code with an authenticator app (or add the link by hand). Signing "
            "in asks for your account password and a code from the app.", page,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.qr_label = QLabel(page)
        self.qr_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr_label.setAccessibleName("QR code for the authenticator app")
        self.uri_label = QLabel(page)
        self.uri_label.setObjectName("hint")
        self.uri_label.setWordWrap(True)
        self.uri_label.setTextFormat(Qt.TextFormat.PlainText)
        self.uri_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.copy_uri_button = named(
            QPushButton("Copy link", page), "Copy authenticator link", CLEARED_HINT
        )
        self.copy_uri_button.clicked.connect(lambda: self._copy(self.totp_uri))
        codes_title = QLabel("Recovery codes — shown only now", page)
        codes_title.setObjectName("paneTitle")
        self.codes_notice = QLabel(
            "Store these codes safely, away from this computer (print them or write them "
            "down). Each works once, instead of an authenticator code. Without them, "
            "losing your authenticator means losing access to the account.", page,
        )  # fmt: skip
        self.codes_notice.setWordWrap(True)
        self.codes_label = QLabel(page)
        self.codes_label.setObjectName("recoveryCodes")
        self.codes_label.setFont(_mono())
        self.codes_label.setTextFormat(Qt.TextFormat.PlainText)
        self.codes_label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.codes_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.copy_codes_button = named(
            QPushButton("Copy codes", page), "Copy recovery codes", CLEARED_HINT
        )
        self.copy_codes_button.clicked.connect(lambda: self._copy(self.recovery_codes_text))
        self.copy_notice = MessageLabel(page)
        self.stored = named(QCheckBox("I have stored the recovery codes safely", page),
                            "I have stored the recovery codes")  # fmt: skip
        self.enroll_code = named(QLineEdit(page), "Authenticator code",
                                 "The 6-digit code the authenticator app shows now")  # fmt: skip
        self.enroll_code.setPlaceholderText("123456")
        self.enroll_code.setMaxLength(6)
        self.finish_button = named(QPushButton("Verify and sign in", page), "Verify and sign in")
        self.finish_button.setEnabled(False)
        self.stored.toggled.connect(lambda _on: self._update_finish())
        self.enroll_code.textChanged.connect(lambda _t: self._update_finish())
        self.enroll_code.returnPressed.connect(self.finish_enrollment)
        self.finish_button.clicked.connect(self.finish_enrollment)
        copy_row = QHBoxLayout()
        copy_row.addStretch(1)
        copy_row.addWidget(self.copy_uri_button)
        copy_row.addWidget(self.copy_codes_button)
        copy_row.addStretch(1)
        code_row = QHBoxLayout()
        code_label = QLabel("&Code from the app:", page)
        code_label.setBuddy(self.enroll_code)
        code_row.addWidget(code_label)
        code_row.addWidget(self.enroll_code)
        code_row.addStretch(1)
        code_row.addWidget(self.finish_button)
        layout = QVBoxLayout(page)
        for widget in (title, intro, self.qr_label, self.uri_label, codes_title,
                       self.codes_notice, self.codes_label):  # fmt: skip
            layout.addWidget(widget)
        layout.addLayout(copy_row)
        layout.addWidget(self.copy_notice)
        layout.addWidget(self.stored)
        layout.addLayout(code_row)
        return page

    def _signin_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Sign in to a sync account", page)
        title.setObjectName("title")
        self.si_server, self.si_ca_file, self.si_username, self.si_device = self._server_fields(
            page
        )
        self.si_password = named(QLineEdit(page), "Account password")
        self.si_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.use_totp = named(QRadioButton("Code from the authenticator app", page),
                              "Use an authenticator code")  # fmt: skip
        self.use_recovery = named(QRadioButton("A recovery code", page), "Use a recovery code")
        self.use_totp.setChecked(True)
        self._factor = QButtonGroup(page)
        self._factor.addButton(self.use_totp)
        self._factor.addButton(self.use_recovery)
        self.si_code = named(QLineEdit(page), "Code", "The authenticator code or a recovery code")
        self.signin_go = named(QPushButton("Sign in", page), "Sign in now")
        self.signin_go.clicked.connect(self.sign_in)
        self.si_code.returnPressed.connect(self.sign_in)
        back = named(QPushButton("Back", page), "Back")
        back.clicked.connect(lambda: self._go(PAGE_STATUS))
        form = QFormLayout()
        form.addRow("Ser&ver:", self.si_server)
        form.addRow("C&A file:", self.si_ca_file)
        form.addRow("&Username:", self.si_username)
        form.addRow("Account &password:", self.si_password)
        form.addRow("", self.use_totp)
        form.addRow("", self.use_recovery)
        form.addRow("C&ode:", self.si_code)
        form.addRow("&Device name:", self.si_device)
        layout = QVBoxLayout(page)
        layout.addWidget(title)
        layout.addLayout(form)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addWidget(back)
        row.addStretch(1)
        row.addWidget(self.signin_go)
        layout.addLayout(row)
        return page

    # -- state -------------------------------------------------------------------------
    def set_busy(self, busy: bool, message: str = "") -> None:
        if self._closed:  # wiped (closed or locked): its widgets may be gone
            return
        self.busy.set_busy(busy, message)
        self.stack.setEnabled(not busy)
        self.close_button.setEnabled(not busy)

    @property
    def is_busy(self) -> bool:
        return self.busy.busy

    def _go(self, page: int) -> None:
        self.error.clear_message()
        self.stack.setCurrentIndex(page)

    def _fail(self, error: TacitError) -> None:
        self.error.show_message(f"{plain_message(error)} ({error.code})")

    def _alive(self, fn: Callable[[T], None]) -> Callable[[T], None]:
        """A callback that does nothing once the dialog has closed."""

        def call(value: T) -> None:
            if not self._closed:
                fn(value)

        return call

    def _run(
        self, fn: Callable[[SyncService], T], on_done: Callable[[T], None], message: str,
        on_error: Callable[[TacitError], None] | None = None,
    ) -> bool:  # fmt: skip
        self.error.clear_message()
        started = self._driver.run_account(
            fn, self._alive(on_done), self._alive(on_error or self._fail), busy=self,
            message=message,
        )  # fmt: skip
        if not started:
            self.error.show_message("The vault is locked.")
        return started

    def refresh(self) -> None:
        """Read the account status (in the worker: the keychain may be slow)."""
        self._run(_status_with_device, self._show_status, "Reading the account…")

    def _show_status(self, status: dict[str, Any]) -> None:
        self._status = status
        while self.status_form.rowCount():
            self.status_form.removeRow(0)
        for label, value in describe_account(status):
            field = QLabel(value, self)
            field.setTextFormat(Qt.TextFormat.PlainText)
            field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            field.setAccessibleName(label)
            self.status_form.addRow(f"{label}:", field)
        linked, signed_in = bool(status.get("linked")), bool(status.get("signed_in"))
        self.signup_button.setVisible(not linked)
        self.signin_button.setVisible(not signed_in)
        self.signout_button.setVisible(signed_in)
        self.sync_button.setVisible(signed_in)
        self.sync_state.setText(self._driver.text())
        self.stack.setCurrentIndex(PAGE_STATUS)

    @property
    def signed_in(self) -> bool:
        return bool(self._status.get("signed_in"))

    # -- sign up -----------------------------------------------------------------------
    def _update_create(self) -> None:
        self.create_button.setEnabled(
            self.su_password.valid and bool(self.su_server.text().strip())
        )

    def create_account(self) -> None:
        if not self.create_button.isEnabled() or self.is_busy:
            return
        self._wipe_password()
        password = self.su_password.take()
        self._password = password
        server, username = self.su_server.text().strip(), self.su_username.text().strip()
        ca_file = self.su_ca_file.text().strip() or None
        device = self.su_device.text().strip() or None

        def create(service: SyncService) -> dict[str, Any]:
            name = username or f"tacit-{service.store.vault_id.replace('-', '')[:12]}"
            return service.create_account(server, name, password, ca_file=ca_file,
                                          device_name=device)  # fmt: skip

        if not self._run(create, self._enrolled, "Creating the account — deriving its keys…",
                         self._create_failed):  # fmt: skip
            self._wipe_password()

    def _create_failed(self, error: TacitError) -> None:
        self._wipe_password()
        self._fail(error)

    def _enrolled(self, created: dict[str, Any]) -> None:
        uri = str(created["totp_uri"])
        self.qr_label.setPixmap(qr_pixmap(uri))
        self.uri_label.setText(uri)
        codes = [str(c) for c in created["recovery_codes"]]
        self.codes_label.setText("\n".join(codes))
        self.stored.setChecked(False)
        self.enroll_code.clear()
        self._go(PAGE_ENROLL)
        self.enroll_code.setFocus()

    @property
    def totp_uri(self) -> str:
        return self.uri_label.text()

    @property
    def recovery_codes_text(self) -> str:
        return self.codes_label.text()

    @property
    def recovery_codes(self) -> list[str]:
        return [c for c in self.recovery_codes_text.splitlines() if c.strip()]

    def _copy(self, text: str) -> None:
        if text:
            self._clipboard.copy(text)
            seconds = max(1, self._clipboard.delay_ms // 1000)
            self.copy_notice.show_message(
                f"Copied. The clipboard will be cleared in {seconds} s.", "notice"
            )

    def _update_finish(self) -> None:
        code = self.enroll_code.text().strip()
        self.finish_button.setEnabled(self.stored.isChecked() and len(code) == 6 and code.isdigit())

    def finish_enrollment(self) -> None:
        """Sign in with the password from sign-up and the first code: proves the
        authenticator works."""
        password = self._password
        if not self.finish_button.isEnabled() or self.is_busy or password is None:
            return
        code = self.enroll_code.text().strip()
        self._run(lambda s: s.login(password, totp=code), self._signed_in_after_enroll,
                  "Signing in…")  # fmt: skip

    def _signed_in_after_enroll(self, _info: dict[str, Any]) -> None:
        self._wipe_password()
        self.qr_label.clear()
        wipe_widgets(self.enroll_page)
        self._signed_in(_info)

    # -- sign in / out -----------------------------------------------------------------
    def _open_signin(self) -> None:
        status = self._status
        if status.get("server") and not self.si_server.text():
            self.si_server.setText(str(status["server"]))
        if status.get("username") and not self.si_username.text():
            self.si_username.setText(str(status["username"]))
        if status.get("ca_file") and not self.si_ca_file.text():
            self.si_ca_file.setText(str(status["ca_file"]))
        self._go(PAGE_SIGNIN)
        self.si_password.setFocus()

    def sign_in(self) -> None:
        if self.is_busy:
            return
        code = self.si_code.text().strip()
        if not self.si_password.text() or not code:
            self.error.show_message("Enter the account password and a code.")
            return
        password = Passphrase.from_str(self.si_password.text())
        self.si_password.clear()
        server = self.si_server.text().strip() or None
        username = self.si_username.text().strip() or None
        ca_file = self.si_ca_file.text().strip() or None
        device = self.si_device.text().strip() or None
        recovery = self.use_recovery.isChecked()

        def login(service: SyncService) -> dict[str, Any]:
            try:
                return service.login(
                    password, server=server, username=username, ca_file=ca_file,
                    device_name=device, totp=None if recovery else code,
                    recovery_code=code if recovery else None,
                )  # fmt: skip
            finally:
                password.wipe()

        self._run(login, self._signed_in, "Signing in — deriving the account keys…")

    def _signed_in(self, _info: dict[str, Any]) -> None:
        self.si_code.clear()
        self._driver.sync_now()
        self.refresh()

    def sign_out(self) -> None:
        if self.is_busy:
            return
        self._run(lambda s: s.logout(), self._signed_out, "Signing out…")

    def _signed_out(self, _result: object) -> None:
        self._driver.signed_out()
        self.refresh()

    def _sync_now(self) -> None:
        self._driver.sync_now()
        self.sync_state.setText(self._driver.text())

    # -- teardown ------------------------------------------------------------------------
    def _wipe_password(self) -> None:
        password, self._password = self._password, None
        if password is not None:
            password.wipe()

    def wipe(self) -> None:
        """Forget the password, the codes, the QR code and every field (close, lock;
        results still in flight are ignored from now on)."""
        self._closed = True
        self._wipe_password()
        self._status = {}
        self.su_password.clear()
        self.qr_label.clear()
        wipe_widgets(self)

    def reject(self) -> None:
        if self.is_busy:  # the worker is using the password: close when it is done
            return
        super().reject()

    def _forget(self, _result: int = 0) -> None:
        self.wipe()
        self.deleteLater()
