"""Merging a record changed here with the version another device pushed meanwhile.

Pure functions over item *contents* (app/vault/syncstore.py builds them), so the rules
are tested alone and run identically on every device.

Notes (one item per note, carrying its whole revision history):
- a signed note is immutable and always wins over an unsigned one; of two signed
  versions (two devices signed different texts) the earlier signature wins;
- otherwise, if one side's current text already appears in the other's history, that
  other side has seen it and moved on: it wins, and nothing is lost;
- otherwise the edits were concurrent: the newer ``updated_at`` wins (ties broken by the
  canonical JSON, so both devices would choose alike);
- every revision of the loser that the winner lacks is appended to the history, and the
  loser's current text becomes a revision flagged ``conflict``: **both texts are kept**,
  the clinician sees the other in the note's history and ``tacit sync conflicts``.
  A revision's ``conflict`` is 0 (none), 1 (open) or 2 (resolved); a revision both sides
  hold takes the higher state, so a resolution made on either device survives the merge.

Clients: field values are short and overwritten as a whole: the version with the newer
``updated_at`` wins (same tie-break), counted as one conflict. The older values of a
concurrently edited client are not kept (docs/PROTOCOL.md, client section).

Templates the clinician added merge like clients (the newer version wins as a whole).

Addenda, audit entries and signers never conflict: they are immutable, with unique ids.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

Content = dict[str, Any]


def _canonical(content: Mapping[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"))


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when ``a`` is the newer of two concurrent versions (deterministic)."""
    key_a, key_b = (
        (str(a.get("updated_at")), _canonical(a)),
        (str(b.get("updated_at")), _canonical(b)),
    )
    return key_a > key_b


def merge(kind: str, local: Content, remote: Content) -> tuple[Content, int]:
    """The merged content and the number of conflicts it records (0 or 1)."""
    if local == remote:
        return copy.deepcopy(remote), 0
    if kind == "note":
        return merge_note(local, remote)
    if kind in ("client", "template"):
        winner = local if _newer(local, remote) else remote
        return copy.deepcopy(winner), 1
    # Immutable kinds: the server's copy is the record (ids are unique per record).
    return copy.deepcopy(remote), 0


def _text(note: Mapping[str, Any]) -> tuple[str, str]:
    return str(note["title"]), str(note["body"])


def _history_texts(note: Mapping[str, Any]) -> set[tuple[str, str]]:
    return {(str(r["title"]), str(r["body"])) for r in note.get("revisions", [])}


def _revision_key(rev: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return str(rev["title"]), str(rev["body"]), str(rev["author"]), str(rev["saved_at"])


def _pick(local: Content, remote: Content) -> tuple[Content, Content]:
    """(winner, loser) of two different versions of one note."""
    l_signed, r_signed = local.get("signed_at"), remote.get("signed_at")
    if l_signed and r_signed:
        first_local = (str(l_signed), _canonical(local)) < (str(r_signed), _canonical(remote))
        return (local, remote) if first_local else (remote, local)
    if l_signed:
        return local, remote
    if r_signed:
        return remote, local
    if _text(local) in _history_texts(remote):
        return remote, local  # the other device saw our text and went on
    if _text(remote) in _history_texts(local):
        return local, remote
    return (local, remote) if _newer(local, remote) else (remote, local)


CONFLICT_OPEN = 1  # app/vault/models.py: CONFLICT_NONE, CONFLICT_OPEN, CONFLICT_RESOLVED


def conflict_state(rev: Mapping[str, Any]) -> int:
    """0, 1 or 2; ``true``/``false`` (contents written before resolutions) read as 1/0."""
    value = rev.get("conflict") or 0
    return int(value) if int(value) in (0, 1, 2) else 0


def merge_note(local: Content, remote: Content) -> tuple[Content, int]:
    winner, loser = _pick(local, remote)
    merged = copy.deepcopy(winner)
    revisions: list[dict[str, Any]] = merged.get("revisions", [])
    by_key = {_revision_key(r): r for r in revisions}
    for rev in loser.get("revisions", []):
        mine = by_key.get(_revision_key(rev))
        if mine is not None and conflict_state(rev) > conflict_state(mine):
            mine["conflict"] = conflict_state(rev)  # resolved on the other device
    seen = set(by_key)
    numbers = [int(r["revision"]) for r in revisions] + [int(merged["revision"])]
    next_number = max(numbers) + 1
    appended = False
    for rev in sorted(loser.get("revisions", []), key=lambda r: int(r["revision"])):
        if _revision_key(rev) in seen:
            continue
        revisions.append({**rev, "revision": next_number})
        seen.add(_revision_key(rev))
        next_number += 1
        appended = True
    known_texts = _history_texts(merged) | {_text(winner)}
    conflicts = 0
    if _text(loser) not in known_texts:
        revisions.append({
            "revision": next_number, "title": loser["title"], "body": loser["body"],
            "author": loser["author"], "saved_at": loser["updated_at"],
            "conflict": CONFLICT_OPEN,
        })  # fmt: skip
        next_number += 1
        appended = True
        conflicts = 1
    merged["revisions"] = revisions
    if appended and not merged.get("signed_at"):
        # The current text stays the newest revision (a signed note's number is part of
        # its signed hash and never changes; its history simply lists the others).
        merged["revision"] = next_number
    return merged, conflicts
