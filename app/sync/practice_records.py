"""Reading and writing practice records in this vault (docs/PRACTICE.md): supervisees'
clinical records and co-signatures, appointments, fees and the owner's audit view.

These work offline, on what the last practice sync stored in the vault and on the outbox;
writes are queued and go out with the next sync (``tacit sync`` or the app's background
sync). A mixin of ``PracticeService``, kept apart to keep each module one screenful of
concerns.

Invariants: every read of another clinician's note is audited in this vault (and so
forwarded to the owner); a role that holds no key for a collection gets a clear refusal
here, and could not decrypt the collection anyway; psychotherapy notes are never here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from app.errors import NotFoundError, UsageError
from app.sync import practice_protocol as pp

if TYPE_CHECKING:
    from app.sync.service import SyncService
    from app.vault.practicestore import PracticeOutboxRow, PracticeRow, PracticeStore
    from app.vault.service import VaultService

MIN_DURATION, MAX_DURATION = 5, 600


def note_hash(body: dict[str, Any]) -> str:
    """What a co-signature commits to: the published note body (canonical JSON)."""
    return hashlib.sha256(pp.canonical(body)).hexdigest()


def _iso_minutes(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError("give the start as an ISO date and time, e.g. 2026-12-01T09:00") from None
    return moment.isoformat(timespec="minutes")


class PracticeRecords:
    store: PracticeStore
    vault: VaultService
    sync: SyncService

    def _require(self, *, owner: bool = False) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def now(self) -> str:  # pragma: no cover
        raise NotImplementedError

    # -- local caches ------------------------------------------------------------------
    def _collections(self) -> dict[str, dict[str, Any]]:
        return self.store.get_json("collections") or {}

    def _directory(self) -> dict[str, dict[str, Any]]:
        return self.store.get_json("directory") or {}

    def _email(self, account_id: str | None) -> str | None:
        if account_id is None:
            return None
        return self._directory().get(account_id, {}).get("email")

    def _member(self, wanted: str) -> str:
        wanted = wanted.strip().lower()
        found = [a for a, d in self._directory().items()
                 if a.startswith(wanted) or str(d.get("email", "")).lower() == wanted]  # fmt: skip
        if len(found) != 1:
            raise UsageError("no such member (run 'tacit sync' first?)" if not found
                             else "that matches several members")  # fmt: skip
        return found[0]

    def _collection_of(self, kind: str, subject: str | None) -> str:
        for cid, coll in self._collections().items():
            if coll["kind"] == kind and coll.get("subject") == subject:
                if self.store.latest_key(cid) is None:
                    break
                return cid
        raise UsageError(f"your role holds no key for that {kind} collection")

    def _rows(self, kind: str) -> list[PracticeRow | PracticeOutboxRow]:
        """Stored items of a kind plus queued ones (as the newest version)."""
        rows: dict[tuple[str, str], PracticeRow | PracticeOutboxRow] = {
            (r.collection_id, r.item_id): r for r in self.store.items(kind=kind)
        }
        for entry in self.store.outbox():
            if entry.kind == kind:
                rows[(entry.collection_id, entry.item_id)] = entry
        return list(rows.values())

    # -- clinical records (supervisors, the owner) ---------------------------------------
    def records(
        self, *, clinician: str | None = None, client_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The notes of other clinicians this member may read (no text: titles only)."""
        practice = self._require()
        colls = self._collections()
        wanted = self._member(clinician) if clinician else None
        names = {(r.collection_id, r.body.get("client_id")): r.body.get("name")
                 for r in self.store.items(kind="client")}  # fmt: skip
        notes = self.store.items(kind="note")  # read once
        cosign_rows = self.store.items(kind="cosign")
        signed = {str(c.body.get("note_id")) for c in cosign_rows}
        # A note's hash only where a co-signature needs checking against it.
        hashes = {str(r.body.get("note_id")): note_hash(r.body) for r in notes
                  if str(r.body.get("note_id")) in signed}  # fmt: skip
        cosigns: dict[str, list[str]] = {}
        for row in cosign_rows:
            note = str(row.body.get("note_id"))
            if row.body.get("note_hash") == hashes.get(note):  # still matches the note
                cosigns.setdefault(note, []).append(row.author)
        emails = {a: d.get("email") for a, d in self._directory().items()}
        out = []
        for row in notes:
            subject = colls.get(row.collection_id, {}).get("subject")
            if subject == practice["account_id"] or (wanted and subject != wanted):
                continue
            if client_id and not str(row.body.get("client_id", "")).startswith(client_id):
                continue
            note_id = str(row.body.get("note_id"))
            out.append({
                "note_id": row.body.get("note_id"), "client_id": row.body.get("client_id"),
                "client": names.get((row.collection_id, row.body.get("client_id"))),
                "clinician": emails.get(str(subject)), "kind": row.body.get("kind"),
                "title": row.body.get("title"), "session_date": row.body.get("session_date"),
                "revision": row.body.get("revision"), "signed_at": row.body.get("signed_at"),
                "cosigned_by": [emails.get(a) for a in cosigns.get(note_id, [])],
            })  # fmt: skip
        out.sort(key=lambda r: (str(r["session_date"] or ""), str(r["note_id"])))
        return out

    def _note_row(self, note_id: str) -> PracticeRow:
        found = [r for r in self.store.items(kind="note")
                 if str(r.body.get("note_id", "")).startswith(note_id.strip())]  # fmt: skip
        if len(found) != 1:
            raise NotFoundError("no such practice note" if not found else "ambiguous note id")
        return found[0]

    def record(self, note_id: str) -> dict[str, Any]:
        """One note in full, with its co-signatures and whether each still matches. The
        read is audited."""
        self._require()
        row = self._note_row(note_id)
        current = note_hash(row.body)
        cosigns = [
            {"supervisor": self._email(c.author), "account_id": c.author, "at": c.at,
             "revision": c.body.get("revision"), "matches": c.body.get("note_hash") == current}
            for c in self.store.items(collection_id=row.collection_id, kind="cosign")
            if c.body.get("note_id") == row.body.get("note_id")
        ]  # fmt: skip
        self.store.record_view("practice_note", str(row.body.get("note_id")),
                               str(row.body.get("client_id")))  # fmt: skip
        subject = self._collections().get(row.collection_id, {}).get("subject")
        return {**row.body, "clinician": self._email(subject), "cosignatures": cosigns}

    def cosign(self, note_id: str) -> dict[str, Any]:
        """Co-sign a supervisee's note (supervisors). Queued for the next sync."""
        practice = self._require()
        if practice["role"] != "supervisor":
            raise UsageError("only a supervisor co-signs notes")
        row = self._note_row(note_id)
        subject = self._collections().get(row.collection_id, {}).get("subject")
        mine = self._directory().get(practice["account_id"], {})
        if subject not in mine.get("supervises", []):
            raise UsageError("you do not supervise this note's clinician")
        name = f"cosign:{row.item_id}:{practice['account_id']}:{row.body.get('revision')}"
        cosign_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        at = self.now()
        body = {"note_id": row.body.get("note_id"), "note_hash": note_hash(row.body),
                "revision": row.body.get("revision"), "supervisor": practice["account_id"],
                "at": at}  # fmt: skip
        self.store.enqueue(row.collection_id, cosign_id, "cosign", body, at)
        self.sync.store.record("practice", "co-signed a note")
        return {"note_id": body["note_id"], "revision": body["revision"], "queued": True}

    # -- appointments ----------------------------------------------------------------------
    def _contacts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(clinician, client id) -> contact body, from stored and queued contacts."""
        colls = self._collections()
        out = {}
        for row in self._rows("contact"):
            subject = colls.get(row.collection_id, {}).get("subject")
            out[(str(subject), str(row.body.get("client_id")))] = row.body
        return out

    def contacts(self) -> list[dict[str, Any]]:
        """The clients this member may book or bill, by name: the contact entries it can
        read and, for a clinician-like member, its own vault's clients. Each is
        ``{"clinician","clinician_email","client_id","name","email","phone"}``."""
        practice = self._require()
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for (who, client), body in self._contacts().items():
            out[(who, client)] = {
                "clinician": who, "clinician_email": self._email(who), "client_id": client,
                "name": body.get("name"), "email": body.get("email"), "phone": body.get("phone"),
            }  # fmt: skip
        me = str(practice["account_id"])
        if practice["role"] in pp.CLINICAL_ROLES:
            for c in self.vault.list_clients():
                out.setdefault((me, c.id), {"clinician": me, "clinician_email": self._email(me),
                                            "client_id": c.id, "name": c.name, "email": c.email,
                                            "phone": c.phone})  # fmt: skip
        return sorted(out.values(), key=lambda r: (str(r["name"] or "").casefold(),
                                                   str(r["clinician_email"] or ""),
                                                   r["client_id"]))  # fmt: skip

    def add_appointment(
        self, client_id: str, start: str, duration: int, *, clinician: str | None = None
    ) -> dict[str, Any]:  # fmt: skip
        practice = self._require()
        if practice["role"] == "admin" and clinician is None:
            raise UsageError("give --clinician (the member the appointment is with)")
        who = self._member(clinician) if clinician else practice["account_id"]
        if not MIN_DURATION <= duration <= MAX_DURATION:
            raise UsageError(f"a duration is {MIN_DURATION}-{MAX_DURATION} minutes")
        cid = self._collection_of("schedule", who)
        client = self._client(who, client_id)
        appointment_id, at = str(uuid.uuid4()), self.now()
        body = {"appointment_id": appointment_id, "client_id": client, "clinician": who,
                "start": _iso_minutes(start), "duration_min": duration,
                "status": "scheduled"}  # fmt: skip
        self.store.enqueue(cid, appointment_id, "appointment", body, at)
        self.sync.store.record("practice", "added an appointment")
        return {**body, "clinician_email": self._email(who)}

    def _client(self, clinician: str, client_id: str) -> str:
        practice = self._require()
        matches = {
            c for (who, c) in self._contacts() if who == clinician and c.startswith(client_id)
        }
        if clinician == practice["account_id"] and not matches:
            matches = {c.id for c in self.vault.list_clients() if c.id.startswith(client_id)}
        if len(matches) != 1:
            raise NotFoundError("no such client for that clinician" if not matches
                                else "ambiguous client id")  # fmt: skip
        return matches.pop()

    def appointments(self) -> list[dict[str, Any]]:
        self._require()
        contacts = self._contacts()
        out = []
        for row in self._rows("appointment"):
            b = row.body
            contact = contacts.get((str(b.get("clinician")), str(b.get("client_id"))), {})
            out.append({**b, "client": contact.get("name"), "email": contact.get("email"),
                        "phone": contact.get("phone"),
                        "clinician_email": self._email(b.get("clinician"))})  # fmt: skip
        out.sort(key=lambda a: (str(a.get("start")), str(a.get("appointment_id"))))
        return out

    def set_appointment_status(self, appointment_id: str, status: str) -> dict[str, Any]:
        self._require()
        if status not in pp.APPOINTMENT_STATUSES:
            raise UsageError(f"a status is one of {', '.join(pp.APPOINTMENT_STATUSES)}")
        row = self._one("appointment", "appointment_id", appointment_id)
        body = {**row.body, "status": status}
        self.store.enqueue(row.collection_id, row.item_id, "appointment", body, self.now())
        return body

    def _one(self, kind: str, key: str, wanted: str) -> PracticeRow | PracticeOutboxRow:
        found = [r for r in self._rows(kind) if str(r.body.get(key, "")).startswith(wanted.strip())]
        if len(found) != 1:
            raise NotFoundError(f"no such {kind}" if not found else f"ambiguous {kind} id")
        return found[0]

    # -- fees ------------------------------------------------------------------------------
    def add_fee(
        self, client_id: str, amount: str, *, clinician: str | None = None,
        appointment_id: str | None = None, paid: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        practice = self._require()
        if practice["role"] not in ("admin", "owner"):
            raise UsageError("only the owner and admin staff keep fees")
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise UsageError("give the amount as a number, e.g. 120.00") from None
        if not value.is_finite() or value < 0 or value > Decimal("1000000"):
            raise UsageError("an amount is between 0 and 1,000,000")
        cid = self._collection_of("billing", None)
        appointment = None
        if appointment_id:
            appointment = self._one("appointment", "appointment_id", appointment_id).body
        who = (str(appointment["clinician"]) if appointment else
               self._member(clinician) if clinician else practice["account_id"])  # fmt: skip
        client = self._client(who, client_id)
        fee_id, at = str(uuid.uuid4()), self.now()
        body = {"fee_id": fee_id, "client_id": client, "clinician": who,
                "appointment_id": appointment["appointment_id"] if appointment else None,
                "amount": f"{value.quantize(Decimal('0.01'))}", "paid": bool(paid)}  # fmt: skip
        self.store.enqueue(cid, fee_id, "fee", body, at)
        self.sync.store.record("practice", "added a fee")
        return body

    def fees(self) -> list[dict[str, Any]]:
        self._require()
        contacts = self._contacts()
        out = []
        for row in self._rows("fee"):
            b = row.body
            contact = contacts.get((str(b.get("clinician")), str(b.get("client_id"))), {})
            out.append({**b, "client": contact.get("name"), "at": row.at})
        out.sort(key=lambda f: (str(f["at"]), str(f.get("fee_id"))))
        return out

    def mark_paid(self, fee_id: str, paid: bool = True) -> dict[str, Any]:
        self._require()
        row = self._one("fee", "fee_id", fee_id)
        body = {**row.body, "paid": paid}
        self.store.enqueue(row.collection_id, row.item_id, "fee", body, self.now())
        return body

    # -- the owner's audit view ------------------------------------------------------------
    def practice_audit(
        self, *, limit: int | None = 200, member: str | None = None
    ) -> list[dict[str, Any]]:
        self._require(owner=True)
        who = self._member(member) if member else None
        rows = self.store.audit(limit=limit, member=who)
        return [{**asdict(r), "member_email": self._email(r.member)} for r in rows]
