"""Templates the clinician adds: validation, lookup by id/prefix/name, archive (never
delete), notes made from them, audit entries, and nothing of them outside the vault."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidInputError, NotFoundError, VaultLockedError
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE


def test_add_list_and_make_a_note(service: VaultService) -> None:
    t = service.add_template(
        "  Couples   session ", "progress", ["Presenting issue", "Interventions", " Plan "],
        description="Conjoint sessions",
    )  # fmt: skip
    assert (t.name, t.kind, t.sections, t.custom) == (
        "Couples session", "progress", ("Presenting issue", "Interventions", "Plan"), True,
    )  # fmt: skip
    names = [x.name for x in service.templates()]
    assert names[-1] == "Couples session" and "SOAP" in " ".join(names)
    for ref in (t.id, t.id[:8], "couples SESSION"):
        assert service.template(ref).id == t.id
    client = service.add_client("Jo Example")
    note = service.create_note(client.id, "couples session")
    assert note.template == t.id
    assert note.body.startswith("## Presenting issue")
    actions = {(e.action, e.record_type) for e in service.audit_entries(record_id=t.id)}
    assert ("create", "template") in actions


def test_validation(service: VaultService) -> None:
    with pytest.raises(InvalidInputError):
        service.add_template("", "progress", ["A"])
    with pytest.raises(InvalidInputError):
        service.add_template("X", "gossip", ["A"])
    with pytest.raises(InvalidInputError):
        service.add_template("X", "progress", [])
    with pytest.raises(InvalidInputError):
        service.add_template("X", "progress", ["A" * 500])
    with pytest.raises(InvalidInputError):  # the name of a shipped template, any case
        service.add_template(service.templates()[0].name.upper(), "progress", ["A"])
    service.add_template("Mine", "progress", ["A"])
    with pytest.raises(InvalidInputError):
        service.add_template("MINE", "intake", ["B"])
    assert [t.name for t in service.templates() if t.custom] == ["Mine"]


def test_edit_archive_restore(service: VaultService) -> None:
    t = service.add_template("Family", "progress", ["One"])
    client = service.add_client("Kai Example")
    note = service.create_note(client.id, t.id)
    edited = service.update_template(t.id, sections=["One", "Two"], name="Family work")
    assert edited.sections == ("One", "Two") and edited.name == "Family work"
    archived = service.update_template(t.id, archived=True)
    assert archived.archived
    assert all(x.id != t.id for x in service.templates())
    assert any(x.id == t.id for x in service.templates(include_archived=True))
    with pytest.raises(InvalidInputError):
        service.create_note(client.id, t.id)
    assert service.get_note(note.id).template == t.id  # old notes keep their template
    service.update_template(t.id, archived=False)
    service.create_note(client.id, "family work")
    with pytest.raises(NotFoundError):  # shipped templates cannot change
        service.update_template(service.templates()[0].id, name="Renamed")


def test_templates_need_the_vault_unlocked_and_stay_inside_it(
    service: VaultService, vault_dir: Path
) -> None:
    canary = "Canary-Template-Section-7731"
    t = service.add_template("Canary template", "progress", [canary])
    service.lock()
    assert all(not x.custom for x in service.templates())  # locked: shipped ones only
    with pytest.raises(VaultLockedError):
        service.add_template("Another", "progress", ["A"])
    for path in vault_dir.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes()
    service.unlock(Passphrase.from_str(PASSPHRASE))
    assert service.template(t.id).sections == (canary,)
