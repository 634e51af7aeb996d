"""The hash-chained audit trail: what it records, and that any edit, deletion or
reordering of entries is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import WrongPassphraseError
from app.vault.clock import ManualClock
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE


def _conn(service: VaultService):  # type: ignore[no-untyped-def]
    assert service._db is not None
    return service._db.conn


def _busy(service: VaultService, notes: int = 4) -> list[str]:
    cid = service.add_client("Audited").id
    ids = []
    for i in range(notes):
        note = service.create_note(cid, "free", body=f"body {i}")
        service.edit_note(note.id, body=f"body {i} edited")
        ids.append(note.id)
    service.sign_note(ids[0])
    service.add_addendum(ids[0], "late entry")
    service.get_note(ids[1])
    service.flush_audit()
    return ids


def _actions(service: VaultService) -> list[str]:
    return [e.action for e in service.audit_entries()]


def test_changes_and_reads_are_recorded(service: VaultService) -> None:
    ids = _busy(service, notes=2)
    entries = service.audit_entries()
    assert [e.action for e in entries] == [
        "unlock", "create", "create", "edit", "create", "edit", "sign", "addendum", "view",
    ]  # fmt: skip
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    sign = next(e for e in entries if e.action == "sign")
    assert (sign.record_type, sign.record_id) == ("note", ids[0])
    assert sign.client_id == entries[1].record_id  # the client created first
    assert all(e.device == service.status()["device_id"] for e in entries)
    assert all(e.actor == "Clinician" for e in entries)
    assert service.verify_audit().ok


def test_entries_hold_no_content(service: VaultService) -> None:
    canary = "AUDITCANARY"
    cid = service.add_client(f"{canary} name", email=f"{canary}@x.org").id
    note = service.create_note(cid, "free", title=f"{canary} title", body=f"{canary} body")
    service.update_client(cid, name=f"{canary} renamed")
    service.search(canary, audit=True)
    service.get_note(note.id)
    service.flush_audit()
    for row in _conn(service).execute("SELECT * FROM audit"):
        assert canary.lower() not in repr(row).lower()


def test_lock_and_unlock_are_recorded_and_failures_noted(
    service: VaultService, passphrase: Passphrase, clock: ManualClock
) -> None:
    service.lock()
    for _ in range(2):
        with pytest.raises(WrongPassphraseError):
            service.unlock(Passphrase.from_str("wrong horse battery staple 42"))
    clock.advance(5)
    service.unlock(passphrase)
    service.flush_audit()
    assert _actions(service) == ["unlock", "lock", "failed_unlock", "failed_unlock", "unlock"]
    assert not service.paths.failures.exists()  # moved into the trail
    assert service.verify_audit().ok


def test_filters(service: VaultService, clock: ManualClock) -> None:
    ids = _busy(service)
    assert {e.record_id for e in service.audit_entries(record_id=ids[2])} == {ids[2]}
    assert [e.action for e in service.audit_entries(action="sign")] == ["sign"]
    clock.advance(86400 * 3)
    service.get_note(ids[3])
    service.flush_audit()
    later = service.audit_entries(since=clock.now().date().isoformat())
    assert [e.action for e in later] == ["view"]
    from app.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        service.audit_entries(action="dance")
    with pytest.raises(InvalidInputError):
        service.audit_entries(since="last tuesday")


def _tamper(service: VaultService, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = _conn(service)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for sql, params in statements:
        conn.execute(sql, params)


def test_edit_is_detected(service: VaultService) -> None:
    _busy(service)
    _tamper(service, ("UPDATE audit SET action = 'view' WHERE seq = 4", ()))
    verdict = service.verify_audit()
    assert not verdict.ok and verdict.first_bad_seq == 4


def test_edited_time_is_detected(service: VaultService) -> None:
    _busy(service)
    _tamper(service, ("UPDATE audit SET at = '2020-01-01T00:00:00.000Z' WHERE seq = 6", ()))
    assert service.verify_audit().first_bad_seq == 6


def test_deletion_is_detected(service: VaultService) -> None:
    _busy(service)
    _tamper(service, ("DELETE FROM audit WHERE seq = 3", ()))
    verdict = service.verify_audit()
    assert not verdict.ok and verdict.first_bad_seq == 3


def test_deleting_the_newest_entries_is_detected(service: VaultService) -> None:
    _busy(service)
    last = _conn(service).execute("SELECT max(seq) FROM audit").fetchone()[0]
    _tamper(service, ("DELETE FROM audit WHERE seq >= ?", (last - 1,)))
    verdict = service.verify_audit()
    assert not verdict.ok and verdict.first_bad_seq == last - 1


def test_reordering_is_detected(service: VaultService) -> None:
    _busy(service)
    # Swap entries 2 and 3 (their contents and macs trade places).
    _tamper(
        service,
        ("UPDATE audit SET seq = -2 WHERE seq = 2", ()),
        ("UPDATE audit SET seq = 2 WHERE seq = 3", ()),
        ("UPDATE audit SET seq = 3 WHERE seq = -2", ()),
    )
    verdict = service.verify_audit()
    assert not verdict.ok and verdict.first_bad_seq == 2


def test_forged_entry_is_detected(service: VaultService) -> None:
    _busy(service)
    last = _conn(service).execute("SELECT max(seq), mac FROM audit").fetchone()
    _tamper(service, (
        "INSERT INTO audit (seq, at, actor, device, action, mac) VALUES (?, 'x', 'x', 'x', "
        "'view', ?)", (last[0] + 1, bytes(last[1])),
    ))  # fmt: skip
    assert not service.verify_audit().ok


def test_the_database_refuses_edits(service: VaultService) -> None:
    import sqlcipher3.dbapi2 as sqlcipher

    _busy(service)
    with pytest.raises(sqlcipher.IntegrityError):
        _conn(service).execute("UPDATE audit SET action = 'view' WHERE seq = 2")
    with pytest.raises(sqlcipher.IntegrityError):
        _conn(service).execute("DELETE FROM audit WHERE seq = 2")


def test_chain_survives_reopen_and_passphrase_change(vault_dir: Path) -> None:
    svc = VaultService(vault_dir, keychain=MemoryKeychain())
    svc.create(Passphrase.from_str(PASSPHRASE))
    _busy(svc)
    svc.change_passphrase(Passphrase.from_str("violet lantern orbit 77 cascade"))
    svc.lock()
    svc.unlock(Passphrase.from_str("violet lantern orbit 77 cascade"))
    verdict = svc.verify_audit()
    assert verdict.ok and verdict.entries > 10
    assert "passphrase_change" in _actions(svc)
    svc.lock()


def test_change_and_its_entry_commit_together(service: VaultService) -> None:
    """If the change fails, neither it nor its audit entry is written."""
    from app.errors import InvalidInputError

    service.flush_audit()
    before = len(service.audit_entries())
    with pytest.raises(InvalidInputError):
        service.add_client("X", dob="not a date")
    cid = service.add_client("Y").id
    _conn(service).execute("DROP TRIGGER IF EXISTS audit_no_update")
    # Make the audit insert itself fail: the client must not be created either.
    _conn(service).execute(
        "CREATE TRIGGER audit_fail BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    with pytest.raises(Exception, match=r"."):
        service.add_client("Z")
    names = [c.name for c in service.list_clients()]
    assert names == ["Y"] and cid
    _conn(service).execute("DROP TRIGGER audit_fail")
    assert len(service.audit_entries()) == before + 1  # only Y's creation
