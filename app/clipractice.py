"""The CLI's practice-mode commands (docs/PRACTICE.md): ``practice``, ``appointment`` and
``fee`` (a mixin of ``app.cli.Cli``, like app/clisync.py).

Invariants: as app/cli.py's. Writes to practice collections are queued in the vault and
go out with the next ``tacit sync`` (or ``tacit practice sync``); the commands that need
the server (create, invite, join, members, remove, policy changes, supervise) say so
with ``offline`` when it cannot be reached and change nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.cliio import ArgParser as _Parser
from app.cliio import Output, read_passphrase, table
from app.clisync import ACCOUNT_PASSWORD_ENV, _password_fd
from app.sync import practice_protocol as pp

if TYPE_CHECKING:
    from app.sync.practice import PracticeService
    from app.sync.service import SyncService


def add_practice_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    practice = cmd("practice", "a group practice: members, roles, policies, shared records")
    ps = practice.add_subparsers(dest="action", metavar="ACTION", required=True,
                                 parser_class=_Parser)  # fmt: skip
    p = cmd("create", "create a practice with this account as its owner", ps)
    p.add_argument("name")
    p.add_argument("--email", help="your email as shown to members (default: username)")
    p = cmd("invite", "a one-time code for a new member", ps)
    p.add_argument("email")
    p.add_argument("--role", required=True, choices=pp.INVITE_ROLES)
    p = cmd("join", "join a practice with an invite code (creates your account)", ps)
    p.add_argument("code")
    p.add_argument("--server", required=True, metavar="URL")
    p.add_argument("--username", metavar="U")
    p.add_argument("--ca-file", metavar="F", help="trust only this CA for the server")
    p.add_argument("--pin", metavar="SHA256", help="base64 SHA-256 of the server's key")
    p.add_argument("--device-name", metavar="N")
    _password_fd(p)
    cmd("members", "the practice's members, roles and states", ps)
    cmd("status", "this vault's practice membership and policy", ps)
    cmd("sync", "sync the account and the practice now", ps)
    p = cmd("remove", "offboard a member: lock their devices, rotate keys", ps)
    p.add_argument("member", help="email or account id (prefix)")
    p = cmd("supervise", "let a supervisor read and co-sign a clinician's notes", ps)
    p.add_argument("supervisor")
    p.add_argument("clinician")
    p = cmd("policy", "show or set the practice policy (owner)", ps)
    p.add_argument("--require-totp", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--max-idle-minutes", type=int, metavar="N", help="0: no limit")
    p.add_argument("--offline-lease-days", type=int, metavar="N", help="0: no lease")
    p = cmd("records", "supervisees' notes you may read (titles; --note for one in full)", ps)
    p.add_argument("--clinician", metavar="MEMBER")
    p.add_argument("--client", metavar="ID")
    p.add_argument("--note", metavar="ID", help="show this note in full (audited)")
    p = cmd("cosign", "co-sign a supervisee's note", ps)
    p.add_argument("note", metavar="NOTE_ID")
    p = cmd("audit", "who accessed which record when, across the practice (owner)", ps)
    p.add_argument("--member", metavar="MEMBER")
    p.add_argument("--limit", type=int, default=200)

    appt = cmd("appointment", "the practice schedule").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("add", "book an appointment", appt)
    p.add_argument("--client", required=True, metavar="ID")
    p.add_argument("--start", required=True, metavar="ISO", help="e.g. 2026-12-01T09:00")
    p.add_argument("--duration", required=True, type=int, metavar="MIN")
    p.add_argument("--clinician", metavar="MEMBER", help="default: you")
    cmd("list", "appointments you can see", appt)
    p = cmd("status", "mark an appointment attended, cancelled, ...", appt)
    p.add_argument("id")
    p.add_argument("status", choices=pp.APPOINTMENT_STATUSES)

    fee = cmd("fee", "session fees (owner and admin staff)").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("add", "record a fee", fee)
    p.add_argument("--client", required=True, metavar="ID")
    p.add_argument("--amount", required=True, metavar="AMOUNT")
    p.add_argument("--appointment", metavar="ID")
    p.add_argument("--clinician", metavar="MEMBER")
    p.add_argument("--paid", action="store_true")
    cmd("list", "fees and whether they are paid", fee)
    p = cmd("paid", "mark a fee paid", fee)
    p.add_argument("id")


class PracticeCommands:
    """The practice commands of ``app.cli.Cli`` (which provides these attributes)."""

    args: argparse.Namespace
    out: Output
    _sync_service: Callable[..., SyncService]
    _account_created: Callable[[dict[str, Any]], None]

    def _practice(self) -> PracticeService:
        from app.sync.practice import PracticeService

        return PracticeService(self._sync_service())

    def practice(self) -> None:
        a = self.args
        if a.action == "join":
            self._join()
            return
        svc = self._practice()
        action = a.action
        if action == "create":
            email = a.email or svc.sync.store.get("username") or ""
            self.out.emit(svc.create(a.name, email), f"Created the practice {a.name!r}.")
        elif action == "invite":
            info = svc.invite(a.email, a.role)
            human = (f"Invite code for {info['email']} ({info['role']}), valid until "
                     f"{info['expires_at']}, once:\n\n    {info['code']}")  # fmt: skip
            self.out.emit(info, human)
        elif action == "members":
            rows = svc.members()
            self.out.emit(rows, table(rows, ("account_id", "email", "role", "status",
                                             "certified")))  # fmt: skip
        elif action == "status":
            self.out.emit(svc.status())
        elif action == "sync":
            counts = svc.sync.sync(check_orders=False)
            self.out.emit(counts)
        elif action == "remove":
            info = svc.remove(a.member)
            self.out.emit(info, f"Removed {info['account_id']}: {info['sessions_ended']} "
                                f"sessions ended, {info['devices_locked']} devices locked, "
                                f"{len(info['rotated'])} collections rotated.")  # fmt: skip
        elif action == "supervise":
            self.out.emit(svc.supervise(a.supervisor, a.clinician))
        elif action == "policy":
            if (
                a.require_totp is None
                and a.max_idle_minutes is None
                and a.offline_lease_days is None
            ):
                self.out.emit(svc.policy())
            else:
                self.out.emit(svc.set_policy(require_totp=a.require_totp,
                                             max_idle_minutes=a.max_idle_minutes,
                                             offline_lease_days=a.offline_lease_days))  # fmt: skip
        elif action == "records":
            if a.note:
                note = svc.record(a.note)
                self.out.emit(note, f"{note.get('title')} ({note.get('session_date')}, "
                                    f"{note.get('clinician')})\n\n{note.get('body')}")  # fmt: skip
            else:
                rows = svc.records(clinician=a.clinician, client_id=a.client)
                self.out.emit(rows, table(rows, ("note_id", "client", "clinician",
                                                 "session_date", "title")))  # fmt: skip
        elif action == "cosign":
            self.out.emit(svc.cosign(a.note), "Co-signed; it goes out with the next sync.")
        else:  # audit
            rows = svc.practice_audit(limit=a.limit, member=a.member)
            self.out.emit(rows, table(rows, ("at", "member_email", "action", "record_type",
                                             "record_id")))  # fmt: skip

    def _join(self) -> None:
        a = self.args
        password = read_passphrase("Account password", fd=a.password_fd,
                                   env=ACCOUNT_PASSWORD_ENV, confirm=True)  # fmt: skip
        from app.sync.practice import PracticeService

        svc = PracticeService(self._sync_service(check_orders=False))
        info = svc.join(a.code, a.server, password, ca_file=a.ca_file, pin=a.pin,
                        device_name=a.device_name, username=a.username)  # fmt: skip
        if self.out.as_json:
            self.out.emit(info)
            return
        self._account_created(info)
        human = (f"Joined {info['practice']!r} as {info['role']}. The owner's next sync "
                 "approves you; then sign in with 'tacit account login'.")  # fmt: skip
        self.out.emit(info, human)

    def appointment(self) -> None:
        a = self.args
        svc = self._practice()
        if a.action == "add":
            info = svc.add_appointment(a.client, a.start, a.duration, clinician=a.clinician)
            self.out.emit(info, f"Booked {info['appointment_id']}; it goes out with the next sync.")
        elif a.action == "list":
            rows = svc.appointments()
            self.out.emit(rows, table(rows, ("appointment_id", "start", "duration_min",
                                             "client", "clinician_email", "status")))  # fmt: skip
        else:
            self.out.emit(svc.set_appointment_status(a.id, a.status))

    def fee(self) -> None:
        a = self.args
        svc = self._practice()
        if a.action == "add":
            info = svc.add_fee(a.client, a.amount, clinician=a.clinician,
                               appointment_id=a.appointment, paid=a.paid)  # fmt: skip
            self.out.emit(info, f"Recorded fee {info['fee_id']}.")
        elif a.action == "list":
            rows = svc.fees()
            self.out.emit(rows, table(rows, ("fee_id", "client", "amount", "paid", "at")))
        else:
            self.out.emit(svc.mark_paid(a.id))
