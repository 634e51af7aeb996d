"""Record export for a records request: one client's designated record set, as an
encrypted archive with its own passphrase, or as a document for a plaintext rendering
(PDF, by the caller: app/ui/pdf.py).

The **document** (``client_document``) holds the client's details and every note that
belongs in a release, oldest first, each with its addenda and, for a signed note, its
signature and signer key. Psychotherapy (process) notes are left out unless asked for
(``notes_for_release``). Revision history and the audit trail are not part of it.

The **archive** (``write_archive``) is ``MAGIC ‖ u32 header length ‖ header JSON ‖
nonce ‖ AEAD ciphertext``. The header (format, version, Argon2id parameters and salt;
nothing about the content) is the associated data, so it cannot be changed without the
archive failing to open. The key is HKDF(Argon2id(archive passphrase), "tacit/v1/
export/archive"). Argon2id parameters are those of a new vault (calibrated, never below
the production floor); reading refuses parameters below the floor or absurdly high
ones, so a crafted file can neither make the key cheap to guess nor exhaust memory.

``export_client`` is the one way a client's record leaves the vault, for the CLI and
the app alike: it builds the document, writes the archive (or has the caller's renderer
write the PDF), and records one ``export`` audit entry (format, count, whether
psychotherapy notes were included).

Invariants: the archive is written atomically with mode 0600 and never passes through
a plaintext file; every failure to open is ``integrity_error`` or
``wrong_passphrase``, never the content of the file; an existing file is never
overwritten, and an export whose audit entry cannot be written is removed again.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import IntegrityError, InvalidInputError, WrongPassphraseError
from app.vault import crypto, fsutil
from app.vault.clock import iso
from app.vault.crypto import KdfParams, Passphrase
from app.vault.models import Note
from app.vault.passphrase import require_strong
from app.vault.signing import note_hash

if TYPE_CHECKING:
    from app.vault.service import VaultService

# Called with the fraction done (0..1) after each step, for a progress bar.
ProgressFn = Callable[[float], None]
# Writes the document as a PDF to a path and returns its size (app/ui/pdf.py).
PdfWriter = Callable[[dict[str, Any], Path], int]

MAGIC = b"TACITEXP\x01"
FORMAT = "tacit-export"
VERSION = 1
DOC_FORMAT = "tacit-record-export"
_LABEL = "tacit/v1/export/archive"
_AAD_DOMAIN = b"tacit/v1/export/archive\x00"
MAX_HEADER = 4096
MAX_ARCHIVE = 512 * 1024 * 1024
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB: more than any calibration makes


def client_document(
    client: dict[str, Any], notes: list[Note], addenda: Callable[[str], list[Any]],
    signature: Callable[[str], Any], *, exported_at: str, include_psychotherapy: bool,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The export document. ``addenda(note_id)`` and ``signature(note_id)`` come from the
    vault (``VaultService.addenda`` / ``note_signature``); ``progress`` gets the fraction
    of notes done."""
    out = []
    for number, note in enumerate(notes, 1):
        doc = note.to_dict()
        sig = signature(note.id)
        doc["signature"] = None if sig is None else sig.to_dict()
        doc["addenda"] = [a.to_dict() for a in addenda(note.id)]
        out.append(doc)
        if progress is not None:
            progress(number / len(notes))
    return {
        "format": DOC_FORMAT, "version": VERSION, "exported_at": exported_at,
        "includes_psychotherapy_notes": include_psychotherapy,
        "client": client, "notes": out,
    }  # fmt: skip


def signature_checks(document: dict[str, Any]) -> dict[str, bool]:
    """For each signed note of a document: does its signature verify against the public
    key it carries, over the note's fields as exported? (Proves the note is unchanged
    since it was signed with that key; who holds the key is for the reader to know.)"""
    results: dict[str, bool] = {}
    notes = document.get("notes")
    # The document is whatever the archive's maker wrote: any shape gives a report.
    for raw in notes if isinstance(notes, list) else []:
        if not isinstance(raw, dict):
            continue
        sig = raw.get("signature")
        if not isinstance(sig, dict):
            continue
        try:
            fields = {k: raw[k] for k in Note.__dataclass_fields__}
            note = Note(**fields)
            digest = note_hash(note, str(sig["signed_at"]))
            ok = crypto.signature_ok(
                bytes.fromhex(str(sig["public_key"])), crypto.SIGN_DOMAIN_NOTE, digest,
                bytes.fromhex(str(sig["signature"])),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            ok = False
        results[str(raw.get("id"))] = ok
    return results


# -- the archive --------------------------------------------------------------------------
def _aad(header: bytes) -> bytes:
    return _AAD_DOMAIN + MAGIC + header


def write_archive(
    path: Path, document: dict[str, Any], passphrase: Passphrase,
    params: KdfParams | None = None, progress: ProgressFn | None = None,
) -> int:  # fmt: skip
    """Encrypt ``document`` to ``path`` (atomically, 0600). Returns the file's size.
    ``progress`` gets the fraction done after each step (the key derivation is most of
    the time). Raises StorageError."""
    report = progress or _ignore
    report(0.0)
    params = params or crypto.new_creation_params()
    salt = crypto.random_bytes(crypto.SALT_BYTES)
    header = json.dumps(
        {"format": FORMAT, "v": VERSION, "kdf": params.to_dict(),
         "salt": base64.b64encode(salt).decode()},
        sort_keys=True, separators=(",", ":"),
    ).encode()  # fmt: skip
    key = _key(passphrase, salt, params)
    report(0.7)
    try:
        plaintext = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        nonce, ciphertext = crypto.seal(key, plaintext, _aad(header))
    finally:
        key.wipe()
    report(0.8)
    data = MAGIC + struct.pack(">I", len(header)) + header + nonce + ciphertext
    fsutil.atomic_write(path, data)
    report(1.0)
    return len(data)


def _ignore(_fraction: float) -> None:
    return None


def _part(progress: ProgressFn | None, low: float, high: float) -> ProgressFn:
    if progress is None:
        return _ignore
    return lambda fraction: progress(low + (high - low) * max(0.0, min(1.0, fraction)))


# -- the one export procedure (CLI and app) ------------------------------------------------
@dataclass(frozen=True, slots=True)
class ExportReport:
    file: Path
    notes: int
    bytes: int
    format: str  # "archive" or "pdf"
    psychotherapy_notes: bool

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "notes": self.notes, "bytes": self.bytes,
                "format": self.format, "psychotherapy_notes": self.psychotherapy_notes}  # fmt: skip


def check_destination(out: Path) -> None:
    """Refuse a file that exists or a folder that does not (before asking for anything).
    Raises InvalidInputError."""
    if out.exists():
        raise InvalidInputError(f"{out.name} exists; choose a new file name")
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out.parent} is not a folder")


def export_client(
    svc: VaultService, client_id: str, out: Path, *, passphrase: Passphrase | None = None,
    pdf_writer: PdfWriter | None = None, include_psychotherapy: bool = False,
    progress: ProgressFn | None = None,
) -> ExportReport:  # fmt: skip
    """Export a client's designated record set to ``out``: an encrypted archive with
    ``passphrase`` (strength-checked), or a PDF through ``pdf_writer`` — plaintext, so
    the caller must have the user's explicit consent. Exactly one of the two is given.
    Psychotherapy notes only with ``include_psychotherapy``. The export is audited
    (``export``, counts only); if that entry cannot be written the file is removed.
    ``progress`` gets the fraction done. Raises InvalidInputError (an existing file, no
    folder, neither or both formats), WeakPassphraseError, NotFoundError,
    AmbiguousIdError, VaultLockedError, StorageError."""
    if (passphrase is None) == (pdf_writer is None):
        raise InvalidInputError("an export is either an archive (a passphrase) or a PDF")
    check_destination(out)
    if passphrase is not None:
        require_strong(passphrase)
    report = progress or _ignore
    report(0.0)
    client = svc.get_client(client_id)
    notes = svc.notes_for_release(client.id, include_psychotherapy=include_psychotherapy)
    report(0.1)
    document = client_document(
        client.to_dict(), notes, svc.addenda, svc.note_signature,
        exported_at=iso(svc.clock.now()), include_psychotherapy=include_psychotherapy,
        progress=_part(progress, 0.1, 0.3),
    )  # fmt: skip
    check_destination(out)  # again: it may have appeared meanwhile
    if passphrase is not None:
        size = write_archive(out, document, passphrase, progress=_part(progress, 0.3, 0.95))
        detail = f"archive, {len(notes)} notes"
    elif pdf_writer is not None:
        size = pdf_writer(document, out)
        detail = f"pdf plaintext, {len(notes)} notes"
    else:  # refused above; kept so no path writes without a format
        raise InvalidInputError("an export is either an archive (a passphrase) or a PDF")
    report(0.95)
    if include_psychotherapy:
        detail += ", psychotherapy notes included"
    try:  # an export that cannot be audited does not stay
        svc.record_event("export", record_type="client", record_id=client.id,
                         client_id=client.id, detail=detail)  # fmt: skip
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    report(1.0)
    return ExportReport(out, len(notes), size, "archive" if passphrase is not None else "pdf",
                        include_psychotherapy)  # fmt: skip


def read_archive(path: Path, passphrase: Passphrase) -> dict[str, Any]:
    """Open an archive. Raises IntegrityError (not an archive, damaged, tampered) or
    WrongPassphraseError."""
    try:
        size = path.stat().st_size
        if size > MAX_ARCHIVE:
            raise IntegrityError("the file is too large to be a Tacit export archive")
        data = path.read_bytes()
    except OSError:
        raise IntegrityError("the export archive could not be read") from None
    header, nonce, ciphertext, params, salt = _parse(data)
    key = _key(passphrase, salt, params)
    try:
        plaintext = crypto.open_sealed(key, nonce, ciphertext, _aad(header))
    except crypto.CryptoError:
        # A wrong passphrase and a damaged body look the same to an AEAD.
        raise WrongPassphraseError("wrong export passphrase, or the archive is damaged") from None
    finally:
        key.wipe()
    try:
        document = json.loads(plaintext)
    except (ValueError, RecursionError):
        raise IntegrityError("the export archive's content is malformed") from None
    if not isinstance(document, dict) or document.get("format") != DOC_FORMAT:
        raise IntegrityError("the export archive's content is malformed")
    notes, client = document.get("notes", []), document.get("client", {})
    if not (isinstance(notes, list) and all(isinstance(n, dict) for n in notes)
            and isinstance(client, dict)):  # fmt: skip
        raise IntegrityError("the export archive's content is malformed")
    return document


def _parse(data: bytes) -> tuple[bytes, bytes, bytes, KdfParams, bytes]:
    bad = IntegrityError("not a Tacit export archive, or a damaged one")
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise bad
    (length,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if not 0 < length <= MAX_HEADER or len(data) < start + length + crypto.NONCE_BYTES + 16:
        raise bad
    header = data[start : start + length]
    rest = data[start + length :]
    try:
        doc = json.loads(header)
        kdf = doc["kdf"]
        params = KdfParams(
            memory_kib=int(kdf["memory_kib"]), iterations=int(kdf["iterations"]),
            parallelism=int(kdf["parallelism"]), algorithm=str(kdf["algorithm"]),
            version=int(kdf["version"]),
        )  # fmt: skip
        salt = base64.b64decode(doc["salt"], validate=True)
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        # OverflowError: int(1e400); RecursionError: "[[[[…" (both found by fuzzing)
        raise bad from None
    if doc.get("format") != FORMAT or doc.get("v") != VERSION or len(salt) != crypto.SALT_BYTES:
        raise bad
    if (
        not params.at_least(crypto.kdf_floor())
        or params.memory_kib > MAX_MEMORY_KIB
        or (params.iterations > crypto.MAX_ITERATIONS or params.parallelism > 64)
    ):
        raise IntegrityError("the export archive's key parameters are out of range")
    return header, rest[: crypto.NONCE_BYTES], rest[crypto.NONCE_BYTES :], params, salt


def _key(passphrase: Passphrase, salt: bytes, params: KdfParams) -> crypto.SymmetricKey:
    stretched = crypto.argon2id(passphrase, salt, params)
    try:
        return crypto.hkdf(stretched, salt=b"", label=_LABEL)
    finally:
        stretched.wipe()
