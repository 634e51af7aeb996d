"""A record export rendered as PDF (plaintext by nature: the caller has the user's
explicit consent and audits it; app/vault/export.py builds the document).

Qt lays the text out (``QTextDocument``) and writes the PDF (``QPrinter`` in PDF mode),
so every script the system's fonts cover renders. Every value from the record is
HTML-escaped before it reaches the layout. The file is written under a temporary name
in the target folder (mode 0600) and renamed into place, so a crash leaves no half PDF
under the name the user chose. Without a running Qt application (the CLI) one is made
on the offscreen platform.
"""

from __future__ import annotations

import contextlib
import html
import os
import secrets
from pathlib import Path
from typing import Any

from app.errors import StorageError
from app.ui.qt import QGuiApplication, QPrinter, QTextDocument
from app.vault import fsutil

KIND_NAMES = {
    "intake": "Intake", "progress": "Progress note", "mse": "Mental status exam",
    "treatment_plan": "Treatment plan", "psychotherapy": "Psychotherapy note",
}  # fmt: skip


def _app() -> QGuiApplication:
    existing = QGuiApplication.instance()
    if isinstance(existing, QGuiApplication):
        return existing
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return QGuiApplication(["tacit"])


def _text(value: Any) -> str:
    """Escaped, with line breaks kept."""
    return html.escape("" if value is None else str(value)).replace("\n", "<br>")


def document_html(document: dict[str, Any]) -> str:
    client = document.get("client") or {}
    parts = [
        "<html><body style='font-size:10pt'>",
        f"<h1>{_text(client.get('name'))}</h1>",
        "<p>",
        f"Date of birth: {_text(client.get('dob') or '—')}<br>",
        f"Email: {_text(client.get('email') or '—')}<br>",
        f"Phone: {_text(client.get('phone') or '—')}<br>",
        f"Record export of {_text(document.get('exported_at'))}; "
        f"{len(document.get('notes') or [])} notes; psychotherapy notes "
        f"{'included' if document.get('includes_psychotherapy_notes') else 'not included'}.",
        "</p>",
    ]
    for note in document.get("notes") or []:
        kind = KIND_NAMES.get(str(note.get("kind")), str(note.get("kind")))
        parts.append("<hr>")
        parts.append(f"<h2>{_text(note.get('title') or kind)}</h2>")
        parts.append(
            f"<p><i>{_text(kind)} · session {_text(note.get('session_date') or '—')} · "
            f"{_text(note.get('author'))} · revision {_text(note.get('revision'))}</i></p>"
        )
        parts.append(f"<p>{_text(note.get('body'))}</p>")
        sig = note.get("signature")
        if isinstance(sig, dict):
            parts.append(
                f"<p><i>Signed {_text(sig.get('signed_at'))} by {_text(sig.get('signer'))}; "
                f"key {_text(str(sig.get('public_key'))[:16])}…</i></p>"
            )
        for addendum in note.get("addenda") or []:
            parts.append(
                f"<p><b>Addendum</b> {_text(addendum.get('created_at'))}, "
                f"{_text(addendum.get('author'))}:<br>{_text(addendum.get('body'))}</p>"
            )
    parts.append("</body></html>")
    return "".join(parts)


def render_pdf(document: dict[str, Any], path: Path) -> int:
    """Write ``document`` to ``path`` as PDF. Returns its size. Raises StorageError."""
    _app()
    layout = QTextDocument()
    layout.setHtml(document_html(document))
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(tmp))
    printer.setCreator("Tacit")
    printer.setDocName("Record export")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)  # made private before Qt writes into it
        layout.print_(printer)
        if tmp.stat().st_size == 0:
            raise OSError(0, "nothing was written")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsutil.fsync_dir(path.parent)
        return path.stat().st_size
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"could not write {path.name}: {exc.strerror or 'I/O error'}") from None
