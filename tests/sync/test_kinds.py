"""Templates the clinician added and the devices' signing keys sync: a note signed on
one device verifies on the others, a template added or archived on one appears so on
the others, and a signer item that does not match its id is refused."""

from __future__ import annotations

import pytest

from app.vault.clock import ManualClock
from app.vault.signing import signer_id
from app.vault.syncstore import KIND_SIGNER, _write
from tests.sync.devices import Device, converge


def test_a_note_signed_on_one_device_verifies_on_the_other(
    devices: tuple[Device, Device],
) -> None:
    a, b = devices
    client = a.vault.add_client("Sam Example")
    note = a.vault.create_note(client.id, "soap", body="signed on A")
    a.vault.sign_note(note.id)
    addendum = a.vault.add_addendum(note.id, "addendum on A")
    converge(a, b)
    assert a.vault.signing_public_key() != b.vault.signing_public_key()
    result = b.vault.verify_note(note.id)
    assert result.ok, result.problems
    assert result.addenda == 1 and b.vault.addenda(note.id)[0].id == addendum.id
    # and the other way round: B's addendum verifies on A
    b.vault.add_addendum(note.id, "addendum on B")
    converge(a, b)
    assert a.vault.verify_note(note.id).ok


def test_an_unknown_key_is_still_refused(devices: tuple[Device, Device]) -> None:
    a, b = devices
    client = a.vault.add_client("Sam Example")
    note = a.vault.create_note(client.id, "soap", body="signed on A")
    a.vault.sign_note(note.id)
    converge(a, b)
    assert b.vault._db is not None
    with b.vault._db.transaction() as conn:  # B forgets A's key, as if never synced
        conn.execute("DROP TRIGGER signers_no_delete")
        conn.execute("DELETE FROM signers WHERE public_key = ?",
                     (bytes.fromhex(a.vault.signing_public_key()),))  # fmt: skip
    result = b.vault.verify_note(note.id)
    assert not result.ok
    assert "not the clinician's" in " ".join(result.problems)


def test_templates_sync_both_ways(devices: tuple[Device, Device], clock: ManualClock) -> None:
    a, b = devices
    t = a.vault.add_template("Family session", "progress", ["Who came", "Plan"])
    converge(a, b)
    assert b.vault.template("family session").sections == ("Who came", "Plan")
    clock.advance(5)
    b.vault.update_template(t.id, archived=True)
    converge(a, b)
    assert a.vault.template(t.id).archived
    assert a.records() == b.records()


def test_a_signer_item_must_match_its_id(devices: tuple[Device, Device]) -> None:
    a, _ = devices
    key = bytes(range(32))
    assert a.vault._db is not None
    with pytest.raises(ValueError, match="derived"), a.vault._db.transaction() as conn:
        _write(conn, KIND_SIGNER, signer_id(bytes(32)),
               {"public_key": key.hex(), "device": "x", "added_at": "t"}, None)  # fmt: skip
    with a.vault._db.transaction() as conn:
        _write(conn, KIND_SIGNER, signer_id(key),
               {"public_key": key.hex(), "device": "x", "added_at": "t"}, None)  # fmt: skip
    assert a.vault._signing is not None and key in a.vault._signing.trusted_keys()


def test_a_storage_failure_while_applying_refuses_nothing(
    devices: tuple[Device, Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or a busy database) mid-pull is not the item's fault: the page rolls
    back and is pulled again next time; nothing is refused for good."""
    import sqlcipher3.dbapi2 as sqlcipher

    from app.errors import TacitError
    from app.vault import syncstore

    a, b = devices
    client = a.vault.add_client("Disk Full")
    note = a.vault.create_note(client.id, "soap", body="must arrive")
    a.sync()
    real = syncstore._write
    calls = {"n": 0}

    def failing(conn: object, kind: str, *args: object) -> None:
        if kind == "note" and calls["n"] == 0:
            calls["n"] += 1
            raise sqlcipher.OperationalError("database or disk is full")
        real(conn, kind, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(syncstore, "_write", failing)
    with pytest.raises(TacitError):
        b.sync()
    assert b.vault.sync_store().refused() == []
    b.sync()
    assert b.vault.get_note(note.id).body == "must arrive"
