"""Templates the clinician adds: kept in the vault (table ``user_templates``) and synced.

The shipped templates (app/vault/templates.py) are plain files; a clinician's own
templates may name a practice's routines, so they live encrypted with the records. A
template is never deleted, only archived: notes keep naming the template they came from.

Invariants: names are unique among active templates (shipped ones included, compared
case-insensitively); every change writes an audit entry in the same transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from app.errors import InvalidInputError, NotFoundError
from app.vault.audit import AuditLog
from app.vault.db import Database
from app.vault.models import NOTE_KINDS, Template

MAX_NAME = 80
MAX_DESCRIPTION = 500
MAX_SECTIONS = 40
MAX_SECTION = 120
_COLUMNS = "id, name, kind, description, sections, archived"


def _clean(value: str, field: str, limit: int, *, required: bool = True) -> str:
    text = " ".join(value.split())  # one line: a section becomes a "## heading"
    if required and not text:
        raise InvalidInputError(f"{field} is required")
    if len(text) > limit:
        raise InvalidInputError(f"{field} is longer than {limit} characters")
    return text


def _sections(sections: Iterable[str]) -> tuple[str, ...]:
    cleaned = tuple(_clean(s, "a section name", MAX_SECTION) for s in sections)
    if not cleaned:
        raise InvalidInputError("a template needs at least one section")
    if len(cleaned) > MAX_SECTIONS:
        raise InvalidInputError(f"a template has at most {MAX_SECTIONS} sections")
    return cleaned


def _kind(kind: str) -> str:
    if kind not in NOTE_KINDS:
        raise InvalidInputError(f"kind must be one of: {', '.join(NOTE_KINDS)}")
    return kind


def _template(row: Any) -> Template:
    return Template(
        id=str(row[0]), name=str(row[1]), kind=str(row[2]), description=str(row[3]),
        sections=tuple(str(s) for s in json.loads(row[4])), custom=True,
        archived=bool(row[5]),
    )  # fmt: skip


class TemplateStore:
    def __init__(
        self, db: Database, now: Callable[[], str], shipped: Callable[[], tuple[Template, ...]],
        audit: AuditLog | None = None,
    ) -> None:  # fmt: skip
        self._db = db
        self._now = now
        self._shipped = shipped
        self._audit = audit

    def list(self, *, include_archived: bool = False) -> list[Template]:
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM user_templates"  # noqa: S608 - constant columns
            + ("" if include_archived else " WHERE archived = 0")
            + " ORDER BY name COLLATE NOCASE, id"
        )
        return [_template(r) for r in rows]

    def find(self, ref: str) -> Template | None:
        """By id, by a unique id prefix of 4+ characters, or by exact name (any case)."""
        ref = ref.strip()
        if not ref:
            return None
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM user_templates WHERE id = ? "  # noqa: S608
            "OR (length(?) >= 4 AND substr(id, 1, length(?)) = ?) "
            "OR (name = ? COLLATE NOCASE AND archived = 0)",
            (ref, ref, ref, ref.lower(), ref),
        )
        if len(rows) > 1:
            exact = [r for r in rows if r[0] == ref]
            rows = exact or rows
        if len(rows) > 1:
            raise InvalidInputError("that matches more than one template; use its id")
        return _template(rows[0]) if rows else None

    def _check_name(self, name: str, exclude: str | None = None) -> None:
        taken = {t.name.casefold() for t in self._shipped()}
        taken |= {t.name.casefold() for t in self.list() if t.id != exclude}
        if name.casefold() in taken:
            raise InvalidInputError("a template with that name already exists")

    def add(self, name: str, kind: str, sections: Iterable[str], description: str = "") -> Template:
        clean_name = _clean(name, "name", MAX_NAME)
        template = Template(
            id=str(uuid.uuid4()), name=clean_name, kind=_kind(kind),
            description=_clean(description, "description", MAX_DESCRIPTION, required=False),
            sections=_sections(sections), custom=True,
        )  # fmt: skip
        now = self._now()
        with self._db.transaction() as conn:
            self._check_name(clean_name)
            conn.execute(
                "INSERT INTO user_templates (id, name, kind, description, sections, archived, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (template.id, template.name, template.kind, template.description,
                 json.dumps(list(template.sections)), now, now),
            )  # fmt: skip
            self._log(conn, "create", template.id)
        return template

    def update(
        self, ref: str, *, name: str | None = None, kind: str | None = None,
        sections: Iterable[str] | None = None, description: str | None = None,
        archived: bool | None = None,
    ) -> Template:  # fmt: skip
        with self._db.transaction() as conn:
            current = self.find(ref)
            if current is None:
                raise NotFoundError("no such template of yours (shipped ones cannot change)")
            new_name = current.name if name is None else _clean(name, "name", MAX_NAME)
            if new_name.casefold() != current.name.casefold() or (
                archived is False and current.archived
            ):
                self._check_name(new_name, exclude=current.id)
            changed = Template(
                id=current.id, name=new_name,
                kind=current.kind if kind is None else _kind(kind),
                description=current.description if description is None
                else _clean(description, "description", MAX_DESCRIPTION, required=False),
                sections=current.sections if sections is None else _sections(sections),
                custom=True, archived=current.archived if archived is None else archived,
            )  # fmt: skip
            if changed == current:
                return current
            conn.execute(
                "UPDATE user_templates SET name = ?, kind = ?, description = ?, sections = ?, "
                "archived = ?, updated_at = ? WHERE id = ?",
                (changed.name, changed.kind, changed.description,
                 json.dumps(list(changed.sections)), int(changed.archived), self._now(),
                 changed.id),
            )  # fmt: skip
            self._log(conn, "edit", changed.id, "archived" if changed.archived else None)
        return changed

    def _log(self, conn: Any, action: str, template_id: str, detail: str | None = None) -> None:
        if self._audit is not None:
            self._audit.append(conn, action, "template", template_id, None, detail)
