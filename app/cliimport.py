"""The CLI's ``import`` commands (a mixin of ``app.cli.Cli``, like app/clisync.py):
``import markdown DIR`` and ``import standardnotes FILE``, each with ``--dry-run``.

Invariants: as app/cli.py's. The input is read and checked before the passphrase is
asked for, so a bad folder or file costs no unlock. A dry run leaves no trace in the
vault, not even its unlock in the audit trail (it locks without recording). Client
names and note titles appear only in the human output of a dry run and in the list of
files not imported, on the user's own terminal; ``--json`` carries counts only.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cliio import ArgParser as _Parser
from app.cliio import Output, table
from app.vault.importer import DEFAULT_TEMPLATE, SKIPS, ImportPlan, ImportReport, apply_plan
from app.vault.importformats import DEFAULT_SN_CLIENT, plan_markdown, plan_standardnotes
from app.vault.models import NOTE_KINDS
from app.vault.service import VaultService

_DATE_FROM = {
    "front_matter": "date from front matter",
    "file_name": "date from file name",
    "modified": "date from file's modification time",
    "created_at": "date created in Standard Notes",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(text: str) -> str:
    """Text from the files, safe for a terminal (no escape sequences)."""
    return _CONTROL.sub("\ufffd", text)


def add_import_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    """``import markdown`` and ``import standardnotes`` (issue 7)."""
    group = cmd("import", "bring notes in from other tools (--dry-run shows what)")
    sources = group.add_subparsers(
        dest="action", metavar="SOURCE", required=True, parser_class=_Parser
    )
    p = cmd("markdown", "a folder: a sub-folder per client, a .md/.txt file per note", sources)
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--client", metavar="NAME", help="the client of files at the top of DIR")
    _options(p)
    p = cmd("standardnotes", "a decrypted Standard Notes backup: a tag per client", sources)
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument(
        "--client", metavar="NAME",
        help=f"the client of untagged notes (default: {DEFAULT_SN_CLIENT!r})",
    )  # fmt: skip
    _options(p)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="show what would be created; write nothing"
    )
    p.add_argument(
        "--kind", choices=NOTE_KINDS,
        help="the notes' kind, unless a file says (default: the template's)",
    )  # fmt: skip
    p.add_argument(
        "--template", default=DEFAULT_TEMPLATE,
        help=f"the notes' template, unless a file says (default: {DEFAULT_TEMPLATE})",
    )  # fmt: skip


class ImportCommands:
    """The import commands of ``app.cli.Cli`` (which provides these attributes)."""

    args: argparse.Namespace
    out: Output
    service: VaultService
    unlock: Callable[..., VaultService]

    def import_notes(self) -> None:
        a = self.args
        if a.action == "markdown":
            plan = plan_markdown(a.folder, client=a.client)
        else:
            plan = plan_standardnotes(a.file, client=a.client)
        svc = self.unlock()
        with self.out.progress("Checking" if a.dry_run else "Importing") as progress:
            report = apply_plan(
                svc, plan, kind=a.kind, template=a.template, dry_run=a.dry_run, progress=progress
            )
        if a.dry_run:
            svc.lock(record=False)  # a dry run leaves no trace, not even its unlock
        self.out.emit(report.to_dict(), _human(report, plan))


def _human(report: ImportReport, plan: ImportPlan) -> str:
    lines: list[str] = []
    if report.dry_run:
        for client in report.outcomes:
            state = "new client" if client.new else "existing client"
            lines.append(f"{_shown(client.name)}  ({state})")
            rows = [
                {"date": o.note.session_date, "title": o.note.title, "kind": o.kind,
                 "from": _DATE_FROM.get(o.note.date_from, o.note.date_from),
                 "action": "create" if o.status == "created" else "skip: already there",
                 "source": o.note.source, "note": o.note.remark or ""}
                for o in client.notes
            ]  # fmt: skip
            columns: tuple[str, ...] = ("date", "title", "kind", "from", "action", "source")
            if any(o.note.remark for o in client.notes):
                columns += ("note",)
            lines += ["  " + line for line in table(rows, columns).splitlines()] + [""]
    verb = "Would create" if report.dry_run else "Created"
    summary = f"{verb} {report.clients} new clients and {report.notes} notes"
    if report.clients_reused:
        summary += f" (and added to {report.clients_reused} existing clients)"
    lines.append(summary + ".")
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"Skipped {count}: {SKIPS.get(reason, reason)}.")
    if plan.remarks.get("several_tags"):
        lines.append(
            f"{plan.remarks['several_tags']} notes had several tags: each went to the client "
            "of its first tag by name; the others became its tags."
        )
    if report.problems:
        lines.append(f"Not imported ({len(report.problems)}):")
        rows = [{"source": p.where, "reason": p.text} for p in report.problems]
        lines += ["  " + line for line in table(rows, ("source", "reason")).splitlines()]
    if report.dry_run:
        lines.append("Nothing was written (dry run).")
    return "\n".join(lines)
