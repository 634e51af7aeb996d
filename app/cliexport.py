"""The CLI's record export commands (a mixin of ``app.cli.Cli``, like app/clisync.py):

- ``tacit export client ID --out FILE [--format archive|pdf]
  [--include-psychotherapy-notes] [--i-understand-plaintext] [--export-passphrase-fd N]``
  → ``{"file", "notes"}``;
- ``tacit export open FILE [--export-passphrase-fd N]`` → the archive's document plus
  ``signatures`` (note id → verifies), for whoever received it.

Invariants: an archive is encrypted with its own passphrase (strength-checked like a
vault's); a PDF is plaintext, so it is written only with ``--i-understand-plaintext``;
both are recorded in the audit trail (counts only), and a file whose audit entry could
not be written is removed again. Psychotherapy notes are left out unless asked for.
An existing FILE is never overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.cliio import ArgParser as _Parser
from app.cliio import Output, read_passphrase, table
from app.errors import IntegrityError, UsageError
from app.vault import export
from app.vault.passphrase import require_strong
from app.vault.service import VaultService

EXPORT_PASSPHRASE_ENV = "TACIT_EXPORT_PASSPHRASE"  # noqa: S105 - a variable name


def add_export_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    group = cmd("export", "export a client's record (encrypted archive or PDF)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True,
                                   parser_class=_Parser)  # fmt: skip
    p = cmd("client", "a client's designated record set, for a records request", actions)
    p.add_argument("id", help="client id or a unique prefix")
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument("--format", choices=("archive", "pdf"), default="archive",
                   dest="export_format")  # fmt: skip
    p.add_argument("--include-psychotherapy-notes", action="store_true",
                   help="also export psychotherapy (process) notes")  # fmt: skip
    p.add_argument("--i-understand-plaintext", action="store_true",
                   help="confirm that a PDF is not encrypted")  # fmt: skip
    _passphrase_fd(p)
    p = cmd("open", "open an export archive (prints its content)", actions)
    p.add_argument("file", type=Path)
    _passphrase_fd(p)


@contextlib.contextmanager
def fraction_progress(out: Output, label: str) -> Iterator[Callable[[float], None]]:
    """``Output.progress`` fed with fractions (0..1), as the backup and export code
    reports them: drawn in percent on a terminal, silent otherwise (and with --json)."""
    with out.progress(label) as bar:
        yield lambda fraction: bar(round(100 * max(0.0, min(1.0, fraction))), 100)


def _passphrase_fd(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--export-passphrase-fd", type=int, metavar="N",
        help=f"the archive's passphrase from fd N (else ${EXPORT_PASSPHRASE_ENV})",
    )  # fmt: skip


class ExportCommands:
    """The export commands of ``app.cli.Cli`` (which provides these attributes)."""

    args: argparse.Namespace
    out: Output
    service: VaultService
    unlock: Callable[..., VaultService]

    def export(self) -> None:
        if self.args.action == "open":
            self._export_open()
        else:
            self._export_client()

    def _export_client(self) -> None:
        a = self.args
        pdf = a.export_format == "pdf"
        if pdf and not a.i_understand_plaintext:
            raise UsageError(
                "a PDF is not encrypted: anyone with the file can read the record; add "
                "--i-understand-plaintext to write it anyway (or use --format archive)"
            )
        out: Path = a.out
        if out.exists():
            raise UsageError(f"{out} exists; choose a new file name")
        if not out.parent.is_dir():
            raise UsageError(f"{out.parent} is not a folder")
        passphrase = None
        if not pdf:
            passphrase = read_passphrase("Export passphrase (give it to the recipient apart)",
                                         fd=a.export_passphrase_fd, env=EXPORT_PASSPHRASE_ENV,
                                         confirm=True)  # fmt: skip
            require_strong(passphrase)
        include = bool(a.include_psychotherapy_notes)
        writer = None
        if pdf:
            from app.ui.pdf import render_pdf  # Qt only for this format

            writer = render_pdf
        try:
            svc = self.unlock()
            with fraction_progress(self.out, "Exporting") as progress:
                done = export.export_client(
                    svc, a.id, out, passphrase=passphrase, pdf_writer=writer,
                    include_psychotherapy=include, progress=progress,
                )  # fmt: skip
        finally:
            if passphrase is not None:
                passphrase.wipe()
        self.out.emit(
            done.to_dict(),
            f"Exported {done.notes} notes to {out} "
            f"({'PDF, not encrypted' if pdf else 'encrypted archive'}).",
        )  # fmt: skip

    def _export_open(self) -> None:
        a = self.args
        passphrase = read_passphrase("Export passphrase", fd=a.export_passphrase_fd,
                                     env=EXPORT_PASSPHRASE_ENV)  # fmt: skip
        try:
            document = export.read_archive(a.file, passphrase)
        finally:
            passphrase.wipe()
        checks = export.signature_checks(document)
        if any(not ok for ok in checks.values()):
            bad = sorted(i for i, ok in checks.items() if not ok)
            raise IntegrityError(f"a note's signature does not verify: {', '.join(bad)}")
        notes = document.get("notes") or []
        rows = [
            {"id": n.get("id"), "session_date": n.get("session_date"), "kind": n.get("kind"),
             "title": n.get("title"), "signed": n.get("id") in checks}
            for n in notes
        ]  # fmt: skip
        client = document.get("client") or {}
        self.out.emit(
            {**document, "signatures": checks},
            f"{client.get('name')}: {len(notes)} notes (exported {document.get('exported_at')})\n"
            + table(rows, ("id", "session_date", "kind", "title", "signed")),
        )
