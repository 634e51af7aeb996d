"""The vault side of practice mode (app/vault/practicestore.py): state, collection keys,
items, outbox, published digests, the merged practice audit, audited reads, forgetting
the practice; nothing readable outside the encrypted database; a locked vault refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import InvalidInputError, VaultLockedError
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.practicestore import PracticeAuditRow, PracticeRow, PracticeStore
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE

CANARY = "Quetzalcoatl-practice-canary-5b1d"
COL = "0b5f6c3e-1111-4a5b-9c3d-000000000001"
COL2 = "0b5f6c3e-1111-4a5b-9c3d-000000000002"
AUTHOR = "6d2a0c1e-2222-4b5b-9c3d-000000000003"


@pytest.fixture
def store(service: VaultService) -> PracticeStore:
    return service.practice_store()


def row(item_id: str, seq: int, *, at: str = "2026-01-01T10:00:00Z", col: str = COL,
        kind: str = "note", body: dict[str, object] | None = None) -> PracticeRow:  # fmt: skip
    return PracticeRow(col, item_id, kind, body or {"text": f"body {item_id}"}, AUTHOR, at, seq, 1)


def test_state_get_put_and_json(store: PracticeStore) -> None:
    assert store.get("membership") is None
    store.put({"membership": "active", "role": "clinician"})
    assert store.get("membership") == "active" and store.get("role") == "clinician"
    store.put({"membership": None, "role": "owner"})
    assert store.get("membership") is None and store.get("role") == "owner"
    store.put_json("policy", {"max_idle_minutes": 10, "require_totp": True})
    assert store.get_json("policy") == {"max_idle_minutes": 10, "require_totp": True}
    store.put_json("policy", None)
    assert store.get_json("policy") is None
    with pytest.raises(InvalidInputError):
        store.put({"": "x"})
    with pytest.raises(InvalidInputError):
        store.put({"k": 5})  # type: ignore[dict-item]
    with pytest.raises(InvalidInputError):
        store.put_json("k", {"x": object()})


def test_collection_keys(store: PracticeStore) -> None:
    assert store.latest_key(COL) is None and store.keys(COL) == {}
    one, two = SymmetricKey.generate(), SymmetricKey.generate()
    store.put_key(COL, 2, two)
    store.put_key(COL, 1, one)
    store.put_key(COL2, 7, SymmetricKey.generate())
    assert store.key(COL, 1) == one and store.key(COL, 2) == two and store.key(COL, 3) is None
    assert store.keys(COL) == {1: one, 2: two}
    latest = store.latest_key(COL)
    assert latest is not None and latest[0] == 2 and latest[1] == two
    replaced = SymmetricKey.generate()
    store.put_key(COL, 2, replaced)
    assert store.key(COL, 2) == replaced
    with pytest.raises(InvalidInputError):
        store.put_key(COL, 3, b"\x00" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.put_key(COL, -1, one)
    assert "redacted" in repr(store.key(COL, 1))


def test_items_upsert_order_and_last_writer_wins(store: PracticeStore) -> None:
    store.upsert_items([
        row("b", 2, at="2026-01-01T10:00:00Z"),
        row("a", 1, at="2026-01-01T09:00:00Z"),
        row("c", 3, at="2026-01-01T10:00:00Z", kind="cosign"),
        row("x", 1, col=COL2, kind="appointment"),
    ])  # fmt: skip
    assert [r.item_id for r in store.items(COL)] == ["a", "b", "c"]
    assert [r.item_id for r in store.items(kind="cosign")] == ["c"]
    assert [r.item_id for r in store.items(COL2, kind="appointment")] == ["x"]
    assert len(store.items()) == 4
    got = store.item(COL, "a")
    assert got == row("a", 1, at="2026-01-01T09:00:00Z")
    assert store.item(COL, "missing") is None
    # A newer seq replaces; an older one does not.
    store.upsert_items([row("a", 5, body={"text": "newer"})])
    store.upsert_items([row("a", 4, body={"text": "older"})])
    a = store.item(COL, "a")
    assert a is not None and a.seq == 5 and a.body == {"text": "newer"}
    assert "newer" not in repr(a)
    assert store.delete_collection_items(COL) == 3
    assert store.items(COL) == [] and len(store.items()) == 1
    with pytest.raises(InvalidInputError):
        store.upsert_items([row("bad", 1, body=["not", "a", "dict"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.upsert_items([PracticeRow(COL, "i", "note", {}, AUTHOR, "t", True, 1)])


def test_outbox_enqueue_and_ack(store: PracticeStore) -> None:
    store.enqueue(COL, "n1", "note", {"text": "first"}, "2026-01-01T10:00:00Z")
    store.enqueue(COL, "n2", "client", {"name": "C"}, "2026-01-01T09:00:00Z")
    store.enqueue(COL, "n1", "note", {"text": "second"}, "2026-01-01T11:00:00Z")  # upsert
    queued = store.outbox()
    assert [(q.item_id, q.body) for q in queued] == [("n2", {"name": "C"}),
                                                     ("n1", {"text": "second"})]  # fmt: skip
    assert "second" not in repr(queued)
    stored = store.ack(COL, "n1", 17, 2, AUTHOR)
    assert stored is not None and stored.seq == 17 and stored.key_version == 2
    assert store.item(COL, "n1") == stored and stored.body == {"text": "second"}
    assert [q.item_id for q in store.outbox()] == ["n2"]
    assert store.ack(COL, "n1", 17, 2, AUTHOR) is None  # already acknowledged
    with pytest.raises(InvalidInputError):
        store.enqueue(COL, "n3", "note", "text", "2026-01-01T10:00:00Z")  # type: ignore[arg-type]


def test_published_digests(store: PracticeStore) -> None:
    assert store.published(COL, "n1") is None
    store.set_published(COL, "n1", "aa" * 32)
    store.set_published(COL, "n1", "bb" * 32)
    assert store.published(COL, "n1") == "bb" * 32
    assert store.published(COL2, "n1") is None


def audit_row(entry: str, member: str, at: str, record_id: str | None = "r1") -> PracticeAuditRow:
    return PracticeAuditRow(entry, member, "view", "note", record_id, "c1", at)


def test_practice_audit_is_idempotent_and_filtered(store: PracticeStore) -> None:
    assert store.last_audit_seq() == 0 and store.audit() == []
    added = store.add_audit([
        audit_row("e2", "m1", "2026-01-01T10:00:02Z"),
        audit_row("e1", "m1", "2026-01-01T10:00:01Z"),
        audit_row("e1", "m2", "2026-01-01T10:00:03Z", record_id=None),
    ])  # fmt: skip
    assert added == 3
    assert store.add_audit([PracticeAuditRow("e9", "m3", "unlock", "", None, None, "2026-01-01")])
    assert store.audit(member="m3")[0].record_type == ""
    with pytest.raises(InvalidInputError):
        store.add_audit([PracticeAuditRow("", "m3", "view", "note", None, None, "t")])
    assert store.add_audit([audit_row("e1", "m1", "2026-01-01T10:00:01Z")]) == 0
    entries = store.audit()
    assert [(e.member, e.entry_id) for e in entries] == [
        ("m3", "e9"), ("m1", "e1"), ("m1", "e2"), ("m2", "e1"),
    ]  # fmt: skip
    assert all(e.seq is not None for e in entries)
    assert [e.entry_id for e in store.audit(member="m1")] == ["e1", "e2"]
    assert [e.member for e in store.audit(record_id="r1")] == ["m1", "m1"]
    assert [(e.member, e.entry_id) for e in store.audit(limit=2)] == [("m1", "e2"), ("m2", "e1")]
    assert store.last_audit_seq() == 4


def test_record_view_is_audited_in_the_vault(service: VaultService, store: PracticeStore) -> None:
    store.record_view("practice_note", "item-1", "client-9")
    store.record_view("practice_client", "item-2", now=True)
    entries = service.audit_entries(action="view")
    assert [(e.record_type, e.record_id, e.client_id) for e in entries][-2:] == [
        ("practice_note", "item-1", "client-9"), ("practice_client", "item-2", None),
    ]  # fmt: skip
    assert service.verify_audit().ok


def test_practice_tables_are_not_queued_for_own_sync(service: VaultService,
                                                     store: PracticeStore) -> None:  # fmt: skip
    assert service._db is not None
    before = service._db.query("SELECT kind, ref FROM sync_outbox WHERE kind != 'audit'")
    store.put({"k": "v"})
    store.put_key(COL, 1, SymmetricKey.generate())
    store.upsert_items([row("a", 1)])
    store.enqueue(COL, "b", "note", {"t": 1}, "2026-01-01T10:00:00Z")
    store.set_published(COL, "b", "d")
    store.add_audit([audit_row("e1", "m1", "2026-01-01T10:00:01Z")])
    after = service._db.query("SELECT kind, ref FROM sync_outbox WHERE kind != 'audit'")
    assert after == before


def test_forget_practice_removes_everything(service: VaultService, store: PracticeStore) -> None:
    store.put({"membership": "active"})
    store.put_key(COL, 1, SymmetricKey.generate())
    store.upsert_items([row("a", 1)])
    store.enqueue(COL, "b", "note", {"t": 1}, "2026-01-01T10:00:00Z")
    store.set_published(COL, "b", "d")
    store.add_audit([audit_row("e1", "m1", "2026-01-01T10:00:01Z")])
    store.forget_practice()
    assert store.get("membership") is None and store.keys(COL) == {}
    assert store.items() == [] and store.outbox() == [] and store.published(COL, "b") is None
    assert store.audit() == [] and store.last_audit_seq() == 0
    assert service.audit_entries(action="practice")[-1].detail == "practice data removed"


def test_locked_vault_refuses(service: VaultService) -> None:
    store = service.practice_store()
    service.lock()
    with pytest.raises(VaultLockedError):
        service.practice_store()
    for call in (
        lambda: store.get("k"), lambda: store.put({"k": "v"}), lambda: store.items(),
        lambda: store.key(COL, 1), lambda: store.put_key(COL, 1, SymmetricKey.generate()),
        lambda: store.outbox(), lambda: store.audit(), lambda: store.forget_practice(),
        lambda: store.record_view("practice_note", "x"), lambda: store.upsert_items([row("a", 1)]),
    ):  # fmt: skip
        with pytest.raises(VaultLockedError):
            call()
    # A store from before the lock stays refused after a new unlock, too.
    service.unlock(Passphrase.from_str(PASSPHRASE))
    with pytest.raises(VaultLockedError):
        store.get("k")
    assert service.practice_store().get("k") is None


def test_no_plaintext_outside_the_encrypted_database(service: VaultService) -> None:
    store = service.practice_store()
    key = SymmetricKey.generate()
    store.put({"identity": CANARY})
    store.put_key(COL, 1, key)
    store.upsert_items([row("a", 1, body={"text": CANARY * 20})])
    store.enqueue(COL, "b", "note", {"text": CANARY}, "2026-01-01T10:00:00Z")
    store.add_audit([PracticeAuditRow("e1", CANARY, "view", "note", CANARY, None, "t")])
    needles = (CANARY.encode(), CANARY.encode("utf-16-le"), key.reveal())
    # While open (WAL and all), and again after the lock.
    for when in ("open", "locked"):
        if when == "locked":
            service.lock()
        files = [p for p in Path(service.paths.directory).rglob("*") if p.is_file()]
        assert any(p.name.endswith("-wal") for p in files) or when == "locked"
        for path in files:
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, f"{needle!r:.12} in {path.name} ({when})"
