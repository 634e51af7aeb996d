"""Records of the vault as typed values, and the events the service emits.

Invariant: no ``repr`` of a record shows client data or note text (those fields are
``repr=False``), so a record that ends up in a log or a traceback leaks nothing.

Records are plain slotted dataclasses (built positionally from rows: a frozen dataclass
costs four times as much per row, which showed in list pages); treat them as values.
Events are frozen.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

NOTE_KINDS = ("intake", "progress", "mse", "treatment_plan", "psychotherapy")
CLIENT_STATUSES = ("active", "discharged")

# Snippet highlight markers: control characters that never occur in typed text. Callers
# turn them into whatever their medium uses (HTML <b>, ** in the CLI).
MARK_START = "\x02"
MARK_END = "\x03"


@dataclass(slots=True)
class Client:
    id: str
    name: str = field(repr=False)
    dob: str | None = field(repr=False)
    email: str | None = field(repr=False)
    phone: str | None = field(repr=False)
    status: str
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class NoteSummary:
    """A note without its body, for lists."""

    id: str
    client_id: str
    kind: str
    template: str
    title: str = field(repr=False)
    session_date: str | None
    author: str = field(repr=False)
    revision: int
    created_at: str
    updated_at: str
    signed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Note:
    id: str
    client_id: str
    kind: str
    template: str
    title: str = field(repr=False)
    session_date: str | None
    body: str = field(repr=False)
    author: str = field(repr=False)
    revision: int
    created_at: str
    updated_at: str
    signed_at: str | None = None
    tags: tuple[str, ...] = field(default=(), repr=False)

    @property
    def signed(self) -> bool:
        return self.signed_at is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d


# note_revisions.conflict: a revision kept from a concurrent edit on another device.
CONFLICT_NONE, CONFLICT_OPEN, CONFLICT_RESOLVED = 0, 1, 2


@dataclass(slots=True)
class Revision:
    note_id: str
    revision: int
    title: str = field(repr=False)
    body: str = field(repr=False)
    author: str = field(repr=False)
    saved_at: str
    current: bool
    # An open conflict: the text another device had when both edited this note at once
    # (app/sync/merge.py). It stays in the history once resolved, no longer flagged.
    conflict: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Conflict:
    """An open sync conflict: revision ``revision`` of note ``note_id`` holds the text
    another device saved concurrently; the note's current text won (newer edit)."""

    note_id: str
    client_id: str
    revision: int
    title: str = field(repr=False)  # the conflicting revision's title
    author: str = field(repr=False)
    saved_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SearchHit:
    id: str
    client_id: str
    kind: str
    title: str = field(repr=False)
    session_date: str | None
    snippet: str = field(repr=False)  # highlights between MARK_START and MARK_END
    score: float

    def snippet_with(self, start: str, end: str) -> str:
        return self.snippet.replace(MARK_START, start).replace(MARK_END, end)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["snippet"] = self.snippet_with("**", "**")
        return d


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    name: str
    kind: str
    description: str
    sections: tuple[str, ...]
    custom: bool = False  # added by the clinician (kept in the vault, synced)
    archived: bool = False  # no longer offered for new notes; existing notes keep it

    def initial_body(self) -> str:
        return "".join(f"## {s}\n\n\n" for s in self.sections).rstrip("\n") + (
            "\n" if self.sections else ""
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sections"] = list(self.sections)
        return d


class LockState(enum.Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"


class LockReason(enum.Enum):
    USER = "user"
    IDLE = "idle"
    SLEEP = "sleep"
    SCREEN_LOCK = "screen_lock"
    QUIT = "quit"
    REMOTE = "remote"  # a lock or wipe order from another device (app/vault/remote.py)


@dataclass(frozen=True, slots=True)
class VaultUnlocked:
    vault_id: str


@dataclass(frozen=True, slots=True)
class VaultLocked:
    reason: LockReason


@dataclass(frozen=True, slots=True)
class RecordChanged:
    """A client or note was created or changed (lists should refresh)."""

    kind: str  # "client" | "note"
    id: str


VaultEvent = VaultUnlocked | VaultLocked | RecordChanged
