"""What a clinician's vault publishes to the practice (docs/PRACTICE.md, "Roles").

``publishable(vault)`` yields, for the clinician's own collections, one body per record:
the full client record and every note except psychotherapy (process) notes to the
clinical collection, and the client's name and contact details (nothing clinical) to the
schedule collection, where admin staff read them.

Invariants: psychotherapy notes never appear here; a contact entry holds only the name,
email, phone and status (no date of birth, no note); bodies are plain JSON values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from app.vault.service import VaultService

PRIVATE_NOTE_KINDS = frozenset({"psychotherapy"})


@dataclass(frozen=True)
class Published:
    collection: str  # "clinical" | "schedule"
    kind: str  # "client" | "note" | "contact"
    ref: str  # the vault record id
    stamp: str  # changes whenever the body would (compared with what was published)
    body: Callable[[], dict[str, Any]] = field(repr=False)  # read only when stamp changed


def _const(body: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: body


def _stamp(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


NOTE_PAGE = 500


def publishable(vault: VaultService) -> Iterator[Published]:
    for client in vault.list_clients():
        full = {
            "client_id": client.id, "name": client.name, "dob": client.dob,
            "email": client.email, "phone": client.phone, "status": client.status,
        }  # fmt: skip
        contact = {
            "client_id": client.id, "name": client.name, "email": client.email,
            "phone": client.phone, "status": client.status,
        }  # fmt: skip
        yield Published("clinical", "client", client.id, _stamp(full), _const(full))
        yield Published("schedule", "contact", client.id, _stamp(contact), _const(contact))
    offset = 0
    while True:
        page = vault.list_notes(limit=NOTE_PAGE, offset=offset)
        for summary in page:
            if summary.kind in PRIVATE_NOTE_KINDS:
                continue
            stamp = f"{summary.revision}:{summary.updated_at}:{summary.signed_at}"
            yield Published("clinical", "note", summary.id, stamp,
                            partial(note_body, vault, summary.id))  # fmt: skip
        if len(page) < NOTE_PAGE:
            return
        offset += NOTE_PAGE


def note_body(vault: VaultService, note_id: str) -> dict[str, Any]:
    note = vault.get_note(note_id, record_view=False)
    return {
        "note_id": note.id, "client_id": note.client_id, "kind": note.kind,
        "template": note.template, "title": note.title, "session_date": note.session_date,
        "body": note.body, "author": note.author, "revision": note.revision,
        "signed_at": note.signed_at, "updated_at": note.updated_at,
    }  # fmt: skip
