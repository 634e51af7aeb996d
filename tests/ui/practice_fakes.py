"""A scripted ``PracticeService`` and ``SyncService`` for the practice-mode UI tests: canned
data, every call recorded (name, arguments, and whether it ran off the UI thread)."""

from __future__ import annotations

import threading
from typing import Any

from app.vault.service import VaultService

CANARY_CLIENT = "Quintessa Canarybird"
CANARY_NOTE = "the heron-canary said the quiet part out loud"
ME, OTHER, SUP, ADMIN = "acct-owner-0001", "acct-clin-0002", "acct-sup-0003", "acct-admin-0004"


class FakeStore:
    def __init__(self, linked: bool = True) -> None:
        self.linked = linked
        self.vault_id = "vault"

    def get(self, key: str) -> str | None:
        if key == "account_id" and self.linked:
            return "account-1"
        return None


class FakeSync:
    """What ``SyncDriver`` needs; counts syncs."""

    def __init__(self, vault: VaultService, linked: bool = True) -> None:
        self.vault = vault
        self.store = FakeStore(linked)
        self.syncs = 0

    def sync(self, **_kw: Any) -> dict[str, Any]:
        self.syncs += 1
        return {"pushed": 0, "pulled": 0, "conflicts": 0}

    def sync_status(self) -> dict[str, Any]:
        return {"pending_by_kind": {}, "last_sync": None}

    def login(self, *_a: Any, **_kw: Any) -> dict[str, Any]:
        self.store.linked = True
        return {"account_id": "account-1"}

    def status(self) -> dict[str, Any]:
        linked = self.store.linked
        return {"linked": linked, "signed_in": linked, "server": "https://sync.example.org",
                "username": "m-1", "account_id": "account-1" if linked else None}  # fmt: skip

    def close(self) -> None:
        pass


class FakePractice:
    def __init__(self, role: str = "owner", status: str = "active") -> None:
        self.role = role
        self.member_status = status
        self.in_practice = True
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.off_thread: list[bool] = []
        self.errors: dict[str, Exception] = {}  # method name -> what it raises
        self.policy_doc: dict[str, Any] = {"require_totp": True, "max_idle_minutes": None,
                                           "offline_lease_days": None,
                                           "issued_at": "2026-03-01T09:00:00.000Z"}  # fmt: skip
        self.contact_rows = [
            {"clinician": OTHER, "clinician_email": "clin@example.org", "client_id": "c-canary",
             "name": CANARY_CLIENT, "email": "q@example.org", "phone": None},
            {"clinician": ME, "clinician_email": "owner@example.org", "client_id": "c-mine",
             "name": "Robin Own", "email": None, "phone": None},
        ]  # fmt: skip
        self.appointment_rows = [
            {"appointment_id": "ap-1", "client_id": "c-canary", "clinician": OTHER,
             "start": "2026-03-10T09:00", "duration_min": 50, "status": "scheduled",
             "client": CANARY_CLIENT, "clinician_email": "clin@example.org"},
        ]  # fmt: skip
        self.fee_rows = [
            {"fee_id": "fee-1", "client_id": "c-canary", "clinician": OTHER,
             "appointment_id": "ap-1", "amount": "120.00", "paid": False,
             "client": CANARY_CLIENT, "at": "2026-03-10T10:00:00.000Z"},
        ]  # fmt: skip
        self.record_rows = [
            {"note_id": "note-1", "client_id": "c-canary", "client": CANARY_CLIENT,
             "clinician": "clin@example.org", "kind": "soap", "title": "SOAP 2026-03-10",
             "session_date": "2026-03-10", "revision": 2, "signed_at": None,
             "cosigned_by": ["sup@example.org"]},
        ]  # fmt: skip
        self.member_rows = [
            {"account_id": ME, "email": "owner@example.org", "role": "owner",
             "status": "active", "certified": True, "supervises": [], "you": True},
            {"account_id": OTHER, "email": "clin@example.org", "role": "clinician",
             "status": "active", "certified": True, "supervises": [], "you": False},
            {"account_id": SUP, "email": "sup@example.org", "role": "supervisor",
             "status": "active", "certified": True, "supervises": [], "you": False},
        ]  # fmt: skip

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        self.off_thread.append(threading.current_thread() is not threading.main_thread())
        if name in self.errors:
            raise self.errors[name]

    def called(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(a, k) for n, a, k in self.calls if n == name]

    # -- membership ------------------------------------------------------------------------
    def membership(self) -> dict[str, Any] | None:
        if not self.in_practice:
            return None
        return {"practice_id": "p-1", "name": "Riverside Practice", "role": self.role,
                "status": self.member_status, "account_id": ME}  # fmt: skip

    def status(self) -> dict[str, Any]:
        m = self.membership()
        if m is None:
            return {"in_practice": False}
        return {"in_practice": True, **m, "policy": dict(self.policy_doc), "queued": 0}

    def policy(self) -> dict[str, Any]:
        self._call("policy")
        return dict(self.policy_doc)

    def create(self, name: str, email: str) -> dict[str, Any]:
        self._call("create", name, email)
        self.in_practice, self.role, self.member_status = True, "owner", "active"
        return {"practice_id": "p-1", "name": name, "role": "owner"}

    def join(self, code: str, server: str, password: Any, **kw: Any) -> dict[str, Any]:
        self._call("join", code, server, **kw)
        self.in_practice, self.role, self.member_status = True, "clinician", "pending"
        return {"account_id": "account-1", "username": "m-1",
                "totp_uri": "otpauth://totp/Tacit:m-1?secret=JBSWY3DPEHPK3PXP&issuer=Tacit",
                "recovery_codes": [f"code-{i}" for i in range(10)],
                "practice_id": "p-1", "practice": "Riverside Practice", "role": "clinician",
                "email": "new@example.org"}  # fmt: skip

    def invite(self, email: str, role: str) -> dict[str, Any]:
        self._call("invite", email, role)
        return {"code": "TP-ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567", "role": role,
                "email": email, "expires_at": "2026-03-17T09:00:00.000Z"}  # fmt: skip

    def members(self) -> list[dict[str, Any]]:
        self._call("members")
        return [dict(m) for m in self.member_rows]

    def supervise(self, supervisor: str, clinician: str) -> dict[str, Any]:
        self._call("supervise", supervisor, clinician)
        return {"supervisor": supervisor, "clinician": clinician, "grants": 1}

    def set_policy(self, **kw: Any) -> dict[str, Any]:
        self._call("set_policy", **kw)
        self.policy_doc.update({k: (v or None) if k != "require_totp" else v
                                for k, v in kw.items()})  # fmt: skip
        return dict(self.policy_doc)

    def remove(self, member: str) -> dict[str, Any]:
        self._call("remove", member)
        return {"account_id": member, "removed_at": "x", "sessions_ended": 2,
                "devices_locked": 1, "rotated": ["c1", "c2"]}  # fmt: skip

    # -- records ---------------------------------------------------------------------------
    def records(self, **kw: Any) -> list[dict[str, Any]]:
        self._call("records", **kw)
        return [dict(r) for r in self.record_rows]

    def record(self, note_id: str) -> dict[str, Any]:
        self._call("record", note_id)
        return {**self.record_rows[0], "body": CANARY_NOTE, "cosignatures": [
            {"supervisor": "sup@example.org", "account_id": SUP, "at": "2026-03-10T12:00",
             "revision": 1, "matches": False},
            {"supervisor": "sup@example.org", "account_id": SUP, "at": "2026-03-11T12:00",
             "revision": 2, "matches": True},
        ]}  # fmt: skip

    def cosign(self, note_id: str) -> dict[str, Any]:
        self._call("cosign", note_id)
        return {"note_id": note_id, "revision": 2, "queued": True}

    def contacts(self) -> list[dict[str, Any]]:
        self._call("contacts")
        if self.role in ("owner", "admin"):
            return [dict(c) for c in self.contact_rows]
        return [dict(c) for c in self.contact_rows if c["clinician"] == ME]

    def add_appointment(self, client_id: str, start: str, duration: int, *,
                        clinician: str | None = None) -> dict[str, Any]:  # fmt: skip
        self._call("add_appointment", client_id, start, duration, clinician=clinician)
        return {"appointment_id": "ap-2", "client_id": client_id, "start": start}

    def appointments(self) -> list[dict[str, Any]]:
        self._call("appointments")
        return [dict(a) for a in self.appointment_rows]

    def set_appointment_status(self, appointment_id: str, status: str) -> dict[str, Any]:
        self._call("set_appointment_status", appointment_id, status)
        return {"appointment_id": appointment_id, "status": status}

    def add_fee(self, client_id: str, amount: str, **kw: Any) -> dict[str, Any]:
        self._call("add_fee", client_id, amount, **kw)
        return {"fee_id": "fee-2", "client_id": client_id, "amount": amount}

    def fees(self) -> list[dict[str, Any]]:
        self._call("fees")
        return [dict(f) for f in self.fee_rows]

    def mark_paid(self, fee_id: str, paid: bool = True) -> dict[str, Any]:
        self._call("mark_paid", fee_id)
        return {"fee_id": fee_id, "paid": paid}

    def practice_audit(self, **kw: Any) -> list[dict[str, Any]]:
        self._call("practice_audit", **kw)
        return [{"seq": 1, "entry_id": "e1", "member": OTHER, "action": "view",
                 "record_type": "note", "record_id": "note-1", "client_id": "c-canary",
                 "at": "2026-03-10T09:05:00.000Z", "member_email": "clin@example.org"}]  # fmt: skip
