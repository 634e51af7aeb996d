"""Moving in from other tools: the import plan and its application to the vault.

Two steps. A reader (app/vault/importformats.py: a folder of Markdown or text files, a
Standard Notes decrypted backup) turns its input into an ``ImportPlan`` — clients with
their notes — without touching any vault. ``apply_plan`` then creates what the plan
holds through ``VaultService``, so every client and note gets its audit entry and its
sync outbox row like any other record, and records one audit entry for the import
itself. A dry run goes through the same steps and creates nothing.

Invariants:
- importing the same input twice creates nothing the second time: a client whose name
  is already in the vault is reused, and a note equal to one already there or earlier
  in the plan (same client, session date, title and body) is skipped as a duplicate;
- a dry run writes nothing: it only reads the vault (existing clients, duplicates);
- a client is created only when at least one of its notes is;
- the audit entry of an import holds counts only, never a name, a title or text; no
  error message and no ``repr`` here holds them either (the plan's fields that do are
  ``repr=False``; problems name the file, shown only on the user's own terminal).

Each record is its own transaction (the service's API); an import that stops half way
(disk full) keeps what it created, says how much in its error, and records that in the
audit trail: running it again creates only the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import InvalidInputError, NotFoundError, TacitError
from app.vault.models import NOTE_KINDS, Client, Template

if TYPE_CHECKING:
    from app.vault.service import VaultService

DEFAULT_TEMPLATE = "free"
# The audit entry of an import: an existing action (the trail's action list is closed),
# told apart by its record type.
AUDIT_ACTION = "create"
AUDIT_RECORD_TYPE = "import"

# Why a file or an item was not imported: what the user should look at.
PROBLEMS = {
    "not_utf8": "not UTF-8 text",
    "binary": "a binary file, not text",
    "too_large": "too large for a note",
    "outside_folder": "a link to something outside the folder",
    "unreadable": "could not be read",
    "not_a_file": "not a regular file",
    "bad_front_matter": "front matter with an invalid date or kind",
    "bad_name": "a client name that is empty or longer than 200 characters",
    "unknown_template": "front matter names a template that does not exist",
    "no_date": "no date (created_at) on the item",
    "bad_time": "a file time outside the years 1 to 9999 (and no date in it or its name)",
    "malformed_item": "an item that is not a well-formed note",
}
# Left out on purpose (counted, not listed one by one).
SKIPS = {
    "duplicate": "already in the vault (same client, date, title and body)",
    "deleted": "deleted in Standard Notes",
    "trashed": "in the Standard Notes trash",
    "not_a_note": "not a note (tags are clients; settings, components and the like)",
    "unsupported_file": "not a .md, .markdown or .txt file",
    "linked_folder": "a linked folder inside the folder (its files are imported once)",
}

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PlannedNote:
    title: str = field(repr=False)
    body: str = field(repr=False)
    session_date: str
    # Where the date came from: front_matter, file_name, modified (the file's time) or
    # created_at (Standard Notes).
    date_from: str
    source: str = field(repr=False)  # the file, relative to the folder; or an item uuid
    kind: str | None = None
    template: str | None = None
    tags: tuple[str, ...] = field(default=(), repr=False)
    remark: str | None = field(default=None, repr=False)  # e.g. which of several tags


@dataclass(slots=True)
class PlannedClient:
    name: str = field(repr=False)
    notes: list[PlannedNote] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Problem:
    where: str = field(repr=False)  # a file name (may hold a client's name)
    reason: str  # a key of PROBLEMS

    @property
    def text(self) -> str:
        return PROBLEMS.get(self.reason, self.reason)


@dataclass(slots=True)
class ImportPlan:
    source: str  # "markdown" or "standardnotes"
    clients: list[PlannedClient] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    remarks: Counter[str] = field(default_factory=Counter)  # e.g. several_tags

    @property
    def note_count(self) -> int:
        return sum(len(c.notes) for c in self.clients)


@dataclass(frozen=True, slots=True)
class NoteOutcome:
    """What happened (or would happen) to one planned note."""

    note: PlannedNote
    status: str  # "created" or "duplicate"
    kind: str
    template: str


@dataclass(slots=True)
class ClientOutcome:
    name: str = field(repr=False)
    new: bool
    notes: list[NoteOutcome] = field(default_factory=list)


@dataclass(slots=True)
class ImportReport:
    source: str
    dry_run: bool
    clients: int = 0  # created (or, in a dry run, that would be)
    clients_reused: int = 0
    notes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    dates: Counter[str] = field(default_factory=Counter)
    remarks: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    outcomes: list[ClientOutcome] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Counts only: safe for logs and scripts."""
        return {
            "clients": self.clients,
            "notes": self.notes,
            "dry_run": self.dry_run,
            "source": self.source,
            "clients_reused": self.clients_reused,
            "skipped": dict(sorted(self.skipped.items())),
            "problems": dict(sorted(Counter(p.reason for p in self.problems).items())),
            "dates": dict(sorted(self.dates.items())),
            "remarks": dict(sorted(self.remarks.items())),
            "seconds": round(self.seconds, 3),
        }

    def audit_detail(self) -> str:
        problems = len(self.problems)
        skipped = sum(self.skipped.values())
        return (
            f"{self.source}: {self.clients} clients, {self.notes} notes, "
            f"{skipped} skipped, {problems} problems"
        )


class _Seen:
    """The notes of one client, to spot duplicates: those already in the vault (read on
    first need; bodies only for a matching date and title) and those of this plan."""

    def __init__(self, svc: VaultService, client_id: str | None) -> None:
        self._svc = svc
        self._client_id = client_id
        self._loaded = client_id is None
        self._ids: dict[tuple[str | None, str], list[str]] = {}
        self._bodies: dict[tuple[str | None, str], set[str]] = {}

    def _load(self) -> None:
        self._loaded = True
        if self._client_id is None:
            return
        count = self._svc.count_notes(self._client_id)
        for s in self._svc.list_notes(self._client_id, limit=max(count, 1)):
            self._ids.setdefault((s.session_date, s.title), []).append(s.id)

    def has(self, session_date: str, title: str, body: str) -> bool:
        if not self._loaded:
            self._load()
        key = (session_date, title)
        bodies = self._bodies.setdefault(key, set())
        if body in bodies:
            return True
        # Reading a note here to compare it is no view by anyone: not audited.
        for note_id in self._ids.pop(key, []):
            bodies.add(self._svc.get_note(note_id, record_view=False).body)
        return body in bodies

    def add(self, session_date: str, title: str, body: str) -> None:
        self._bodies.setdefault((session_date, title), set()).add(body)


def _existing_clients(svc: VaultService) -> dict[str, Client]:
    """Clients by name; of two with the same name, the first in the list's order."""
    found: dict[str, Client] = {}
    for client in svc.list_clients():
        found.setdefault(client.name, client)
    return found


def apply_plan(
    svc: VaultService,
    plan: ImportPlan,
    *,
    kind: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Create the plan's clients and notes (``dry_run``: only say what would be). Each
    note takes its front matter's kind and template, else ``kind`` and ``template``;
    with no kind anywhere, the template's. Raises VaultLockedError, NotFoundError (no
    such ``template``), InvalidInputError (bad ``kind``, archived template),
    StorageError (then with how much was created; see the module docstring)."""
    started = time.monotonic()
    if kind is not None and kind not in NOTE_KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(NOTE_KINDS)}")
    default = svc.template(template)
    if default.archived:
        raise InvalidInputError("that template is archived; restore it or pick another")
    report = ImportReport(plan.source, dry_run, problems=list(plan.problems))
    report.skipped.update(plan.skipped)
    report.remarks.update(plan.remarks)
    existing = _existing_clients(svc)
    templates: dict[str, Template | None] = {default.id: default}
    total, done = plan.note_count, 0
    try:
        for planned in plan.clients:
            client = existing.get(planned.name)
            outcome = ClientOutcome(planned.name, new=client is None)
            seen = _Seen(svc, client.id if client is not None else None)
            used = False
            for note in planned.notes:
                done += 1
                chosen = _template(svc, templates, note.template, default)
                if chosen is None:
                    report.problems.append(Problem(note.source, "unknown_template"))
                    _tick(progress, done, total)
                    continue
                note_kind = note.kind or kind or chosen.kind
                body = note.body or chosen.initial_body()
                if seen.has(note.session_date, note.title, body):
                    report.skipped["duplicate"] += 1
                    outcome.notes.append(NoteOutcome(note, "duplicate", note_kind, chosen.id))
                    _tick(progress, done, total)
                    continue
                if client is None and not dry_run:
                    client = svc.add_client(planned.name)
                    existing[planned.name] = client
                if not used:  # the client's first note
                    used = True
                    if outcome.new:
                        report.clients += 1
                    else:
                        report.clients_reused += 1
                if client is not None and not dry_run:
                    svc.create_note(
                        client.id, chosen.id, kind=note_kind, title=note.title, body=body,
                        session_date=note.session_date, tags=note.tags,
                    )  # fmt: skip
                seen.add(note.session_date, note.title, body)
                report.notes += 1
                report.dates[note.date_from] += 1
                outcome.notes.append(NoteOutcome(note, "created", note_kind, chosen.id))
                _tick(progress, done, total)
            report.outcomes.append(outcome)
    except TacitError as err:
        if dry_run or not (report.clients or report.notes):
            raise
        _record(svc, report, started, stopped=True)
        raise type(err)(
            f"{err.message} (the import stopped after creating {report.clients} clients "
            f"and {report.notes} notes; running it again creates only the rest)",
            **err.details, created_clients=report.clients, created_notes=report.notes,
        ) from None  # fmt: skip
    report.seconds = time.monotonic() - started
    if not dry_run:
        _record(svc, report, started, stopped=False)
    return report


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _template(
    svc: VaultService, cache: dict[str, Template | None], wanted: str | None, default: Template
) -> Template | None:
    """The template a note asks for (None: it does not exist or is archived)."""
    if wanted is None:
        return default
    if wanted not in cache:
        try:
            found: Template | None = svc.template(wanted)
        except NotFoundError:
            found = None
        cache[wanted] = None if found is None or found.archived else found
    return cache[wanted]


def _record(svc: VaultService, report: ImportReport, started: float, *, stopped: bool) -> None:
    report.seconds = time.monotonic() - started
    detail = report.audit_detail() + (" (stopped by an error)" if stopped else "")
    try:
        svc.record_event(AUDIT_ACTION, record_type=AUDIT_RECORD_TYPE, detail=detail)
    except TacitError:
        if not stopped:
            raise
        # Stopping on a broken disk: each record created has its own entry already.
