"""``PracticeRecords.contacts`` (what the app's client pickers list): the contact entries a
member can read, plus a clinician's own vault clients; admin staff get no vault clients."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.sync.practice_records import PracticeRecords

ME, OTHER = "acct-me", "acct-other"


class StubStore:
    def __init__(self) -> None:
        self.docs: dict[str, Any] = {
            "collections": {"s-me": {"kind": "schedule", "subject": ME},
                            "s-other": {"kind": "schedule", "subject": OTHER}},
            "directory": {ME: {"email": "me@example.org"}, OTHER: {"email": "o@example.org"}},
        }  # fmt: skip

    def get_json(self, key: str) -> Any:
        return self.docs.get(key)

    def items(self, collection_id: str | None = None, kind: str | None = None) -> list[Any]:
        rows = [
            SimpleNamespace(collection_id="s-other", item_id="i1", kind="contact",
                            body={"client_id": "c-o", "name": "Zed Other", "email": "z@x.org",
                                  "phone": "123"}),
            SimpleNamespace(collection_id="s-me", item_id="i2", kind="contact",
                            body={"client_id": "c-m", "name": "Ann Mine", "email": None,
                                  "phone": None}),
        ]  # fmt: skip
        return [r for r in rows if kind in (None, r.kind)]

    def outbox(self) -> list[Any]:
        return []


class StubVault:
    def list_clients(self) -> list[Any]:
        return [
            SimpleNamespace(id="c-m", name="Ann Mine", email=None, phone=None),
            SimpleNamespace(id="c-new", name="Bo New", email="b@x.org", phone=None),
        ]


class Records(PracticeRecords):
    def __init__(self, role: str) -> None:
        self.role = role
        self.store = StubStore()  # type: ignore[assignment]
        self.vault = StubVault()  # type: ignore[assignment]

    def _require(self, *, owner: bool = False) -> dict[str, Any]:
        return {"account_id": ME, "role": self.role}


@pytest.mark.parametrize("role", ["owner", "clinician"])
def test_a_clinician_like_member_gets_its_own_vault_clients_too(role: str) -> None:
    rows = Records(role).contacts()
    assert [(r["name"], r["clinician"]) for r in rows] == [
        ("Ann Mine", ME), ("Bo New", ME), ("Zed Other", OTHER)]  # fmt: skip
    assert rows[2] == {"clinician": OTHER, "clinician_email": "o@example.org",
                       "client_id": "c-o", "name": "Zed Other", "email": "z@x.org",
                       "phone": "123"}  # fmt: skip


def test_admin_staff_get_the_published_contacts_only() -> None:
    rows = Records("admin").contacts()
    assert [r["client_id"] for r in rows] == ["c-m", "c-o"]
