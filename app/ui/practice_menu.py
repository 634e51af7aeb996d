"""``PracticeMenu``: the main window's Practice menu (docs/UI.md, "Practice mode") — what it
offers for this vault's membership and role, and the one window of each kind it opens.

Not in a practice: *Create a practice…* (needs a sync account: this account becomes the
owner) and *Join a practice…* (needs a vault not yet linked: joining creates the
member's account). In a practice: *Practice status* (everyone; a pending member sees
that they wait for the owner's approval) and, once active, *Schedule…* (everyone),
*Fees…* (owner, admin staff), *Supervision…* (supervisors, the owner), *Members…* and
*Practice audit…* (the owner).

The membership (``PracticeService.status``: role, pending or active, the policy) is read
from the vault — a local read, on the UI thread — after the main window attaches the
sync driver, after every sync, after create, join and a policy change, and when the menu
opens; each read is announced with ``state_changed`` (the controller caps the idle lock
with the policy's ``max_idle_minutes``).

Invariants: at most one window of each kind; every window is a child of the main window
and ``wipe()`` (the lock) wipes and closes them all; the menu's texts name roles and the
practice, never a client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from app.errors import TacitError
from app.sync.practice import PracticeService
from app.ui.account_dialog import AccountDialog
from app.ui.clipboard import ClipboardGuard
from app.ui.practice_audit import PracticeAuditDialog
from app.ui.practice_common import (
    ROLE_LABELS,
    PracticeContext,
    PracticeDialog,
    PracticeFactory,
)
from app.ui.practice_fees import FeesDialog
from app.ui.practice_join import CreatePracticeDialog, JoinPracticeDialog
from app.ui.practice_members import MembersDialog
from app.ui.practice_policy import PracticeStatusDialog
from app.ui.practice_schedule import ScheduleDialog
from app.ui.practice_supervision import SupervisionDialog
from app.ui.qt import QAction, QMenu, QObject, QTimer, QWidget, Signal
from app.ui.syncing import SyncDriver

log = logging.getLogger(__name__)

D = TypeVar("D", bound=PracticeDialog | AccountDialog)
FEES_ROLES = frozenset({"owner", "admin"})
SUPERVISION_ROLES = frozenset({"owner", "supervisor"})


class PracticeMenu(QObject):
    state_changed = Signal(object)  # the membership just read (PracticeService.status)

    def __init__(self, window: QWidget, clipboard: ClipboardGuard,
                 show_status: Callable[[str], None]) -> None:  # fmt: skip
        super().__init__(window)
        self._window = window
        self._clipboard = clipboard
        self._show_status = show_status
        self.factory: PracticeFactory = PracticeService
        self.driver: SyncDriver | None = None
        self.state: dict[str, Any] = {"in_practice": False}
        self.linked = False
        self._wiped = False
        self.dialogs: dict[str, PracticeDialog | AccountDialog] = {}
        self.menu = QMenu("&Practice", window)
        self.menu.setObjectName("practiceMenu")
        self.state_action = QAction("Not in a practice", self.menu)
        self.state_action.setEnabled(False)
        self.menu.addAction(self.state_action)
        self.menu.addSeparator()
        self.create_action = self._action("&Create a practice…", self.open_create)
        self.join_action = self._action("&Join a practice…", self.open_join)
        self.schedule_action = self._action("&Schedule…", self.open_schedule)
        self.fees_action = self._action("&Fees…", self.open_fees)
        self.supervision_action = self._action("S&upervision…", self.open_supervision)
        self.members_action = self._action("&Members…", self.open_members)
        self.audit_action = self._action("Practice &audit…", self.open_audit)
        self.menu.addSeparator()
        self.status_action = self._action("Practice s&tatus", self.open_status)
        self.menu.aboutToShow.connect(self.refresh)
        self._update()

    def _action(self, text: str, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self.menu)
        action.triggered.connect(lambda _checked=False: slot())
        self.menu.addAction(action)
        return action

    # -- the membership ----------------------------------------------------------------------
    def attach(self, driver: SyncDriver) -> None:
        """After unlock: read the membership once the driver has its service, and again
        after every sync (the owner may have approved us, or changed the policy)."""
        self.driver = driver
        driver.synced.connect(self._synced)
        QTimer.singleShot(0, self, self.refresh)  # the driver starts right after this

    def _synced(self, _counts: object) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Read the membership from the vault (local) and update the menu."""
        if self._wiped:
            return
        service = self.driver.service if self.driver is not None else None
        state: dict[str, Any] = {"in_practice": False}
        linked = False
        if service is not None:
            try:
                linked = service.store.get("account_id") is not None
                state = dict(self.factory(service).status())
            except TacitError as exc:
                log.warning("the practice membership could not be read: %s", exc.code)
            except Exception as exc:  # the menu must never break the window
                log.warning("the practice membership could not be read: %s", type(exc).__name__)
        self.state, self.linked = state, linked
        self._update()
        for dialog in self.dialogs.values():
            if isinstance(dialog, PracticeDialog):
                dialog.ctx.status = dict(state)
            if isinstance(dialog, PracticeStatusDialog):
                dialog.show_status(state)
        self.state_changed.emit(dict(state))

    @property
    def role(self) -> str:
        return str(self.state.get("role") or "") if self.state.get("in_practice") else ""

    @property
    def active(self) -> bool:
        return bool(self.state.get("in_practice")) and self.state.get("status") == "active"

    def _update(self) -> None:
        member, role, active = bool(self.state.get("in_practice")), self.role, self.active
        if not member:
            self.state_action.setText("Not in a practice")
        elif not active:
            self.state_action.setText("Waiting for the owner to approve you")
        else:
            name = str(self.state.get("name") or "Practice")
            self.state_action.setText(f"{name} — {ROLE_LABELS.get(role, role)}")
        self.create_action.setVisible(not member)
        self.create_action.setEnabled(self.linked)
        self.create_action.setStatusTip("" if self.linked else
                                        "Create or sign in to a sync account first")  # fmt: skip
        self.join_action.setVisible(not member)
        self.join_action.setEnabled(not self.linked)
        self.join_action.setStatusTip("" if not self.linked else
                                      "Joining creates a new sync account: this vault "
                                      "already has one")  # fmt: skip
        self.schedule_action.setVisible(active)
        self.fees_action.setVisible(active and role in FEES_ROLES)
        self.supervision_action.setVisible(active and role in SUPERVISION_ROLES)
        self.members_action.setVisible(member and role == "owner")
        self.audit_action.setVisible(member and role == "owner")
        self.status_action.setVisible(member)

    def entries(self) -> list[str]:
        """The texts of the actions offered now (visible and enabled), without "&"."""
        return [a.text().replace("&", "") for a in self.menu.actions()
                if a.isVisible() and a.isEnabled() and not a.isSeparator()]  # fmt: skip

    # -- windows -----------------------------------------------------------------------------
    def _ctx(self) -> PracticeContext:
        assert self.driver is not None  # checked by _open
        return PracticeContext(self.driver, self.factory, self._clipboard, dict(self.state),
                               self.refresh)  # fmt: skip

    def _open(self, key: str, make: Callable[[], D]) -> D | None:
        if self.driver is None or self._wiped:
            return None
        existing = self.dialogs.get(key)
        if existing is not None:
            existing.raise_()
            existing.activateWindow()
            return cast(D, existing)
        dialog = make()
        dialog.finished.connect(lambda _r: self._closed(key, dialog))
        self.dialogs[key] = dialog
        dialog.open()
        return dialog

    def _closed(self, key: str, dialog: QObject) -> None:
        if self.dialogs.get(key) is dialog:
            del self.dialogs[key]

    def dialog(self, key: str) -> PracticeDialog | AccountDialog | None:
        return self.dialogs.get(key)

    def open_create(self) -> CreatePracticeDialog | None:
        if self.state.get("in_practice") or not self.linked:
            return None
        dialog = self._open("create", lambda: CreatePracticeDialog(self._ctx(), self._window))
        if dialog is not None:
            dialog.created.connect(lambda _i: self._show_status("Created the practice."))
        return dialog

    def open_join(self) -> JoinPracticeDialog | None:
        if self.state.get("in_practice") or self.linked or self.driver is None:
            return None
        driver, clipboard, factory = self.driver, self._clipboard, self.factory
        dialog = self._open(
            "join", lambda: JoinPracticeDialog(driver, clipboard, factory, self._window)
        )
        if dialog is not None:
            dialog.joined.connect(self.refresh)
        return dialog

    def open_schedule(self) -> ScheduleDialog | None:
        if not self.active:
            return None
        return self._open("schedule", lambda: ScheduleDialog(self._ctx(), self._window))

    def open_fees(self) -> FeesDialog | None:
        if not self.active or self.role not in FEES_ROLES:
            return None
        return self._open("fees", lambda: FeesDialog(self._ctx(), self._window))

    def open_supervision(self) -> SupervisionDialog | None:
        if not self.active or self.role not in SUPERVISION_ROLES:
            return None
        return self._open("supervision", lambda: SupervisionDialog(self._ctx(), self._window))

    def open_members(self) -> MembersDialog | None:
        if self.role != "owner":
            return None
        return self._open("members", lambda: MembersDialog(self._ctx(), self._window))

    def open_audit(self) -> PracticeAuditDialog | None:
        if self.role != "owner":
            return None
        return self._open("audit", lambda: PracticeAuditDialog(self._ctx(), self._window))

    def open_status(self) -> PracticeStatusDialog | None:
        if not self.state.get("in_practice"):
            return None
        return self._open("status", lambda: PracticeStatusDialog(self._ctx(), self._window))

    # -- the lock ----------------------------------------------------------------------------
    def wipe(self) -> None:
        """Wipe and close every practice window; read nothing more (lock)."""
        self._wiped = True
        dialogs, self.dialogs = list(self.dialogs.values()), {}
        for dialog in dialogs:
            dialog.wipe()
            dialog.close()
        self.state = {"in_practice": False}
        self._update()
