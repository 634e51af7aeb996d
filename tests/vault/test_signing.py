"""Sign & lock, addenda, verification, and psychotherapy notes kept out of releases."""

from __future__ import annotations

import pytest

from app.errors import InvalidInputError, NoteNotSignedError, NoteSignedError
from app.vault.clock import ManualClock
from app.vault.models import Note
from app.vault.service import VaultService


def _note(service: VaultService, body: str = "Assessment: stable.") -> Note:
    cid = service.add_client("Signer Client").id
    return service.create_note(cid, "soap", body=body, session_date="2026-04-01")


def _conn(service: VaultService):  # type: ignore[no-untyped-def]
    """The open SQLCipher connection, keyed: tests tamper the way an attacker holding the
    vault key (or a bug) would."""
    assert service._db is not None
    return service._db.conn


def test_sign_then_edit_is_refused(service: VaultService) -> None:
    note = _note(service)
    signature = service.sign_note(note.id)
    assert signature.note_id == note.id
    assert len(bytes.fromhex(signature.signature)) == 64
    signed = service.get_note(note.id)
    assert signed.signed and signed.signed_at == signature.signed_at
    with pytest.raises(NoteSignedError) as err:
        service.edit_note(note.id, body="changed")
    assert err.value.code == "note_signed"
    with pytest.raises(NoteSignedError):
        service.edit_note(note.id, body="changed", autosave=True)
    with pytest.raises(NoteSignedError):
        service.sign_note(note.id)
    assert service.get_note(note.id).body == "Assessment: stable."


def test_database_itself_refuses_changes_to_signed_notes(service: VaultService) -> None:
    import sqlcipher3.dbapi2 as sqlcipher

    note = _note(service)
    service.sign_note(note.id)
    conn = _conn(service)
    with pytest.raises(sqlcipher.IntegrityError, match="note_signed"):
        conn.execute("UPDATE notes SET body = 'x' WHERE id = ?", (note.id,))
    with pytest.raises(sqlcipher.IntegrityError, match="note_signed"):
        conn.execute("DELETE FROM notes WHERE id = ?", (note.id,))


def test_addendum_keeps_the_original(service: VaultService, clock: ManualClock) -> None:
    note = _note(service)
    with pytest.raises(NoteNotSignedError):
        service.add_addendum(note.id, "too early")
    service.sign_note(note.id)
    clock.advance(3600)
    first = service.add_addendum(note.id, "Correction: the session lasted 50 minutes.")
    clock.advance(60)
    second = service.add_addendum(note.id, "Client called to reschedule.")
    assert service.get_note(note.id).body == "Assessment: stable."
    assert [a.id for a in service.addenda(note.id)] == [first.id, second.id]
    assert first.created_at < second.created_at
    result = service.verify_note(note.id)
    assert result.ok and result.addenda == 2
    with pytest.raises(InvalidInputError, match="text"):
        service.add_addendum(note.id, "   ")


def test_verify_unsigned(service: VaultService) -> None:
    result = service.verify_note(_note(service).id)
    assert not result.ok


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("notes", "body", "Assessment: deteriorating."),
        ("notes", "title", "Other title"),
        ("notes", "session_date", "2026-04-02"),
        ("notes", "kind", "psychotherapy"),
        ("notes", "author", "Someone else"),
        ("notes", "client_id", None),  # moved to another client
        ("note_signatures", "signature", b"\x00" * 64),
        ("note_signatures", "content_hash", b"\x11" * 32),
        ("note_signatures", "public_key", None),  # signed by another key
    ],
)
def test_signature_check_fails_after_any_change(
    service: VaultService, table: str, column: str, value: object
) -> None:
    note = _note(service)
    service.sign_note(note.id)
    assert service.verify_note(note.id).ok
    conn = _conn(service)
    if column == "client_id":
        value = service.add_client("Other").id
    if column == "public_key":
        from app.vault.crypto import SigningKey

        value = SigningKey.generate().public_key()
    conn.execute("DROP TRIGGER IF EXISTS notes_signed_no_update")
    conn.execute("DROP TRIGGER IF EXISTS note_signatures_immutable")
    key_col = "id" if table == "notes" else "note_id"
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE {key_col} = ?", (value, note.id))  # noqa: S608
    result = service.verify_note(note.id)
    assert not result.ok
    assert result.problems


def test_addendum_tampering_is_detected(service: VaultService) -> None:
    note = _note(service)
    service.sign_note(note.id)
    addendum = service.add_addendum(note.id, "Original addendum text.")
    conn = _conn(service)
    conn.execute("DROP TRIGGER addenda_immutable")
    conn.execute("UPDATE addenda SET body = 'Rewritten' WHERE id = ?", (addendum.id,))
    result = service.verify_note(note.id)
    assert not result.ok
    assert any(addendum.id in p for p in result.problems)


def test_signing_key_is_per_vault_and_exportable(service: VaultService, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.vault.crypto import Passphrase
    from app.vault.keychain import NoKeychain

    public = service.signing_public_key()
    assert len(bytes.fromhex(public)) == 32
    assert service.status()["signing_public_key"] == public
    other = VaultService(tmp_path / "other", keychain=NoKeychain())
    other.create(Passphrase.from_str("correct horse battery staple 42"))
    assert other.signing_public_key() != public
    other.lock()


def test_psychotherapy_notes_are_kept_out_of_releases(service: VaultService) -> None:
    cid = service.add_client("Release").id
    progress = service.create_note(cid, "soap", session_date="2026-01-01")
    process = service.create_note(cid, "process", session_date="2026-01-02")
    intake = service.create_note(cid, "intake", session_date="2025-12-01")
    assert process.kind == "psychotherapy"
    default = service.notes_for_release(cid)
    assert [n.id for n in default] == [intake.id, progress.id]
    included = service.notes_for_release(cid, include_psychotherapy=True)
    assert {n.id for n in included} == {intake.id, progress.id, process.id}


def test_locked_service_cannot_sign(service: VaultService) -> None:
    note = _note(service)
    service.lock()
    from app.errors import VaultLockedError

    for call in (lambda: service.sign_note(note.id), lambda: service.verify_note(note.id),
                 lambda: service.signing_public_key(), lambda: service.verify_audit()):  # fmt: skip
        with pytest.raises(VaultLockedError):
            call()
