"""Note templates shipped in ``resources/templates/*.json``.

A template names its default note kind and its sections; a note created from it starts
with one ``## Section`` heading per section. Templates hold no client data, so they live
outside the vault as plain files.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

from app.errors import NotFoundError
from app.vault.models import NOTE_KINDS, Template


def resources_dir() -> Path:
    """``resources/`` beside the package (source tree, editable install) or inside a
    frozen bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


@cache
def load_templates(directory: Path | None = None) -> tuple[Template, ...]:
    folder = directory or resources_dir() / "templates"
    found: list[tuple[int, Template]] = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        kind = doc["kind"]
        if kind not in NOTE_KINDS:
            raise ValueError(f"template {path.name} has unknown kind {kind!r}")
        found.append(
            (
                int(doc.get("order", 100)),
                Template(
                    id=str(doc["id"]),
                    name=str(doc["name"]),
                    kind=kind,
                    description=str(doc.get("description", "")),
                    sections=tuple(str(s) for s in doc.get("sections", [])),
                ),
            )
        )
    return tuple(t for _, t in sorted(found, key=lambda pair: (pair[0], pair[1].id)))


def get_template(template_id: str) -> Template:
    for template in load_templates():
        if template.id == template_id.lower():
            return template
    names = ", ".join(t.id for t in load_templates())
    raise NotFoundError(f"no template {template_id!r}; available: {names}")
