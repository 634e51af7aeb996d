"""Record export (app/vault/export.py): the document, the encrypted archive and its
failure modes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from app.errors import IntegrityError, WrongPassphraseError
from app.vault import export
from app.vault.crypto import INSECURE_TEST_PARAMS, KdfParams, Passphrase
from app.vault.service import VaultService

CANARY = "canary-export-4471 hears voices at night"
SECRET = Passphrase.from_str("umbrella quartz meadow 93 lantern")


def _document(service: VaultService, *, include: bool) -> dict[str, object]:
    client = service.add_client("Export Client")
    signed = service.create_note(client.id, "soap", body=f"signed {CANARY}")
    service.sign_note(signed.id)
    service.add_addendum(signed.id, "an addendum")
    service.create_note(client.id, "process", body="process note, kept apart")
    notes = service.notes_for_release(client.id, include_psychotherapy=include)
    return export.client_document(
        service.get_client(client.id).to_dict(), notes, service.addenda,
        service.note_signature, exported_at="2026-11-29T10:00:00.000Z",
        include_psychotherapy=include,
    )  # fmt: skip


def test_the_document_leaves_out_psychotherapy_notes_unless_asked(service: VaultService) -> None:
    doc = _document(service, include=False)
    notes = doc["notes"]
    assert isinstance(notes, list) and [n["kind"] for n in notes] == ["progress"]
    assert notes[0]["signature"] is not None and len(notes[0]["addenda"]) == 1
    assert export.signature_checks(doc) == {notes[0]["id"]: True}
    both = export.client_document(
        {"name": "x"}, service.notes_for_release(notes[0]["client_id"], include_psychotherapy=True),
        service.addenda, service.note_signature, exported_at="t", include_psychotherapy=True,
    )  # fmt: skip
    assert sorted(n["kind"] for n in both["notes"]) == ["progress", "psychotherapy"]


def test_a_changed_note_fails_its_signature_check(service: VaultService) -> None:
    doc = _document(service, include=False)
    note = doc["notes"][0]  # type: ignore[index]
    note["body"] = note["body"] + " (altered)"
    assert export.signature_checks(doc) == {note["id"]: False}


def test_archive_round_trip_holds_no_plaintext(service: VaultService, tmp_path: Path) -> None:
    doc = _document(service, include=False)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "record.tacitexport"
    size = export.write_archive(path, doc, SECRET, INSECURE_TEST_PARAMS)
    data = path.read_bytes()
    assert size == len(data) and data.startswith(export.MAGIC)
    assert path.stat().st_mode & 0o777 == 0o600
    for needle in (CANARY, "Export Client", "canary-export"):
        assert needle.encode() not in data
    assert export.read_archive(path, SECRET) == json.loads(json.dumps(doc))
    assert [p.name for p in out.iterdir()] == [path.name]  # no temp file left


def test_wrong_passphrase_and_every_tampering_are_refused(
    service: VaultService, tmp_path: Path
) -> None:
    doc = _document(service, include=False)
    path = tmp_path / "record.tacitexport"
    export.write_archive(path, doc, SECRET, INSECURE_TEST_PARAMS)
    good = path.read_bytes()
    with pytest.raises(WrongPassphraseError):
        export.read_archive(path, Passphrase.from_str("another long passphrase 12"))
    (header_len,) = struct.unpack(">I", good[len(export.MAGIC) : len(export.MAGIC) + 4])
    body = len(export.MAGIC) + 4 + header_len
    for offset in (0, len(export.MAGIC) + 1, len(export.MAGIC) + 10, body - 3, body + 2,
                   len(good) // 2, len(good) - 1):  # fmt: skip
        bad = bytearray(good)
        bad[offset] ^= 0x40
        path.write_bytes(bytes(bad))
        with pytest.raises((IntegrityError, WrongPassphraseError)):
            export.read_archive(path, SECRET)
    for cut in (1, 16, len(good) // 2, len(good) - body):
        path.write_bytes(good[:-cut])
        with pytest.raises((IntegrityError, WrongPassphraseError)):
            export.read_archive(path, SECRET)
    path.write_bytes(b"not an archive at all")
    with pytest.raises(IntegrityError):
        export.read_archive(path, SECRET)


def test_key_parameters_out_of_range_are_refused_before_deriving(
    service: VaultService, tmp_path: Path
) -> None:
    doc = _document(service, include=False)
    huge = KdfParams(memory_kib=export.MAX_MEMORY_KIB * 2, iterations=1, parallelism=1)
    path = tmp_path / "huge.tacitexport"
    # Built by hand: writing it for real would need 8 GiB.
    header = json.dumps({"format": export.FORMAT, "v": 1, "kdf": huge.to_dict(),
                         "salt": "AAAAAAAAAAAAAAAAAAAAAA=="},
                        sort_keys=True, separators=(",", ":")).encode()  # fmt: skip
    path.write_bytes(export.MAGIC + struct.pack(">I", len(header)) + header + b"\0" * 64)
    with pytest.raises(IntegrityError, match="out of range"):
        export.read_archive(path, SECRET)
    assert doc  # the vault's document is untouched by any of this
