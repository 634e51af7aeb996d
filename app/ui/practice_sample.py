"""``SamplePractice``: a practice of fictional people for ``make screenshots``
(app/ui/screenshots.py) — the schedule and supervision windows drawn from sample data.

Invariants: everything here is made up (the clients of app/ui/screenshots.py and
example.org addresses); it reads no vault and talks to no server; every write refuses
(``UsageError``), so it can never stand in for the real service by accident.
"""

from __future__ import annotations

from typing import Any

from app.errors import UsageError
from app.vault.crypto import Passphrase

SAM, JO, KIM = "acct-sam", "acct-jo", "acct-kim"
EMAILS = {SAM: "sam.rivera@example.org", JO: "jo.lee@example.org", KIM: "kim.park@example.org"}
_SCHEDULE = (
    ("2026-03-09T09:00", 50, "Alex Example", SAM, "attended"),
    ("2026-03-09T10:00", 50, "Blair Sample", JO, "attended"),
    ("2026-03-09T11:30", 80, "Casey Placeholder", SAM, "no_show"),
    ("2026-03-10T09:00", 50, "Drew Demo", JO, "scheduled"),
    ("2026-03-10T14:00", 50, "Emery Fictional", SAM, "cancelled"),
    ("2026-03-11T09:00", 50, "Alex Example", SAM, "scheduled"),
    ("2026-03-11T16:30", 45, "Blair Sample", JO, "scheduled"),
)
_NOTES = (
    ("n-1", "Blair Sample", "2026-02-23", "Intake 2026-02-23", "2026-02-23T17:10:00Z"),
    ("n-2", "Blair Sample", "2026-03-02", "SOAP 2026-03-02", None),
    ("n-3", "Drew Demo", "2026-03-03", "DAP 2026-03-03", "2026-03-03T18:02:00Z"),
    ("n-4", "Blair Sample", "2026-03-09", "SOAP 2026-03-09", None),
)
_BODY = (
    "## Subjective\n\nBlair reports fewer panic episodes this week (two, both short) and has "
    "used the grounding exercise at work.\n\n## Objective\n\nCalm, engaged, on time. Speech "
    "and affect within normal limits.\n\n## Assessment\n\nPanic symptoms reducing; exposure "
    "hierarchy step 3 completed.\n\n## Plan\n\nStep 4 of the hierarchy before the next "
    "session; review sleep diary. Next session in one week."
)


class SamplePractice:
    """The ``Practice`` protocol of app/ui/practice_common.py, on fictional data."""

    def __init__(self, role: str = "owner") -> None:
        self.role = role

    def membership(self) -> dict[str, Any] | None:
        return {"practice_id": "sample", "name": "Riverside Counselling", "role": self.role,
                "status": "active", "account_id": KIM}  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {"in_practice": True, **(self.membership() or {}), "policy": self.policy(),
                "queued": 0}  # fmt: skip

    def policy(self) -> dict[str, Any]:
        return {"require_totp": True, "max_idle_minutes": 10, "offline_lease_days": 14,
                "issued_at": "2026-03-01T09:00:00.000Z"}  # fmt: skip

    def appointments(self) -> list[dict[str, Any]]:
        return [
            {"appointment_id": f"a-{i}", "client_id": f"c-{client}", "clinician": who,
             "start": start, "duration_min": minutes, "status": status, "client": client,
             "clinician_email": EMAILS[who]}
            for i, (start, minutes, client, who, status) in enumerate(_SCHEDULE)
        ]  # fmt: skip

    def records(
        self, *, clinician: str | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            {"note_id": note_id, "client_id": f"c-{client}", "client": client,
             "clinician": EMAILS[JO], "kind": "soap", "title": title, "session_date": date,
             "revision": 1, "signed_at": signed,
             "cosigned_by": [EMAILS[KIM]] if note_id in ("n-1", "n-4") else []}
            for note_id, client, date, title, signed in _NOTES
        ]  # fmt: skip

    def record(self, note_id: str) -> dict[str, Any]:
        row = next(r for r in self.records() if r["note_id"] == note_id)
        cosigns = [] if note_id not in ("n-1", "n-4") else [
            {"supervisor": EMAILS[KIM], "account_id": KIM, "at": "2026-03-09T17:45",
             "revision": 1, "matches": False},  # the note was edited after this one
            {"supervisor": EMAILS[KIM], "account_id": KIM, "at": "2026-03-10T08:30",
             "revision": 2, "matches": True},
        ]  # fmt: skip
        return {**row, "body": _BODY, "cosignatures": cosigns}

    def contacts(self) -> list[dict[str, Any]]:
        seen = {(a["clinician"], a["client"]) for a in self.appointments()}
        return [{"clinician": who, "clinician_email": EMAILS[who], "client_id": f"c-{name}",
                 "name": name, "email": None, "phone": None}
                for who, name in sorted(seen, key=lambda s: s[1])]  # fmt: skip

    def fees(self) -> list[dict[str, Any]]:
        return []

    def members(self) -> list[dict[str, Any]]:
        return []

    def practice_audit(
        self, *, limit: int | None = 200, member: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    # -- writes: sample data only ------------------------------------------------------------
    def _refuse(self) -> dict[str, Any]:
        raise UsageError("sample data only")

    def create(self, name: str, email: str) -> dict[str, Any]:
        return self._refuse()

    def invite(self, email: str, role: str) -> dict[str, Any]:
        return self._refuse()

    def join(
        self, code: str, server: str, password: Passphrase, *, ca_file: str | None = None,
        pin: str | None = None, device_name: str | None = None, username: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return self._refuse()

    def supervise(self, supervisor: str, clinician: str) -> dict[str, Any]:
        return self._refuse()

    def set_policy(
        self, *, require_totp: bool | None = None, max_idle_minutes: int | None = None,
        offline_lease_days: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        return self._refuse()

    def remove(self, member: str) -> dict[str, Any]:
        return self._refuse()

    def cosign(self, note_id: str) -> dict[str, Any]:
        return self._refuse()

    def add_appointment(
        self, client_id: str, start: str, duration: int, *, clinician: str | None = None
    ) -> dict[str, Any]:
        return self._refuse()

    def set_appointment_status(self, appointment_id: str, status: str) -> dict[str, Any]:
        return self._refuse()

    def add_fee(
        self, client_id: str, amount: str, *, clinician: str | None = None,
        appointment_id: str | None = None, paid: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        return self._refuse()

    def mark_paid(self, fee_id: str, paid: bool = True) -> dict[str, Any]:
        return self._refuse()
