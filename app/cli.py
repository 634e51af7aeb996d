"""``tacit``: everything the desktop app can do, headless, with ``--json``.

Global: ``tacit [--vault DIR] [--json] [--passphrase-fd N] COMMAND``. The vault defaults
to the platform's user data folder; ``TACIT_VAULT`` overrides it. Exit statuses follow
the error codes (app/errors.py): usage 2, wrong_passphrase 3, not_found 4,
integrity_error 5, vault_exists/vault_missing 6, vault_locked/device_locked 7,
storage_error 8, note_signed 9, a sync server error 10, offline 11, tls_error 12,
not_signed_in 13, order_refused 14. The sync commands are in app/clisync.py.

Invariants: a command never prints a traceback (unless TACIT_DEBUG=1), never writes a
secret or record outside the vault, and a failed command leaves the vault as it was.
Each command unlocks, does its work and locks again.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import platformdirs

from app import __version__
from app.cliexport import ExportCommands, add_export_commands, fraction_progress
from app.cliimport import ImportCommands, add_import_commands
from app.cliio import (
    NEW_PASSPHRASE_ENV,
    PASSPHRASE_ENV,
    RECOVERY_KEY_ENV,
    Output,
    read_body,
    read_passphrase,
    read_secret,
    table,
)
from app.cliio import ArgParser as _Parser
from app.clipractice import PracticeCommands, add_practice_commands
from app.cliship import ShipCommands, add_ship_commands
from app.clisync import SyncCommands, add_sync_commands
from app.errors import (
    IntegrityError,
    InternalError,
    NotFoundError,
    TacitError,
    UsageError,
    VaultExistsError,
)
from app.vault import backup, backup_restore
from app.vault.audit import ACTIONS, to_csv
from app.vault.fsutil import atomic_write
from app.vault.models import NOTE_KINDS
from app.vault.service import VaultService

VAULT_ENV = "TACIT_VAULT"
DEBUG_ENV = "TACIT_DEBUG"


def default_vault_dir() -> Path:
    env = os.environ.get(VAULT_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("tacit", appauthor=False)) / "vault"


def _common() -> argparse.ArgumentParser:
    """Options accepted before or after the command (``tacit note list --json``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--vault", type=Path, default=argparse.SUPPRESS, help="vault folder")
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )
    common.add_argument(
        "--passphrase-fd", type=int, default=argparse.SUPPRESS, metavar="N",
        help=f"read the passphrase from file descriptor N (else ${PASSPHRASE_ENV}, else a prompt)",
    )  # fmt: skip
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(
        prog="tacit",
        description="Tacit: encrypted, offline-first notes for psychotherapists.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"tacit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common])
        return p

    cmd("gui", "start the desktop app (the default)")
    p = cmd("init", "create a new vault and show its recovery key once")
    p.add_argument("--clinician", help="your name as author of notes")
    cmd("status", "vault facts: format, KDF, keychain binding, counts")
    cmd("check", "verify every page of the database and its indexes")
    cmd("templates", "list the shipped note templates (no unlock)")
    template = cmd("template", "your own note templates (kept in the vault, synced)")
    template_sub = template.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("list", "shipped templates and yours", template_sub)
    p.add_argument("--archived", action="store_true", help="include archived ones")
    for name, help_text in (("add", "add a template of your own"),
                            ("edit", "change one of your templates")):  # fmt: skip
        p = cmd(name, help_text, template_sub)
        p.add_argument("name" if name == "add" else "id")
        if name == "edit":
            p.add_argument("--name")
        p.add_argument("--kind", choices=NOTE_KINDS, required=name == "add")
        p.add_argument("--section", action="append", required=name == "add",
                       help="a section heading (repeat, in order)")  # fmt: skip
        p.add_argument("--description")
    for name, help_text in (("archive", "stop offering a template (notes keep it)"),
                            ("restore", "offer an archived template again")):  # fmt: skip
        cmd(name, help_text, template_sub).add_argument("id")
    p = cmd("passwd", "change the passphrase (rewraps the key; no re-encryption)")
    p.add_argument("--new-passphrase-fd", type=int, metavar="N")
    p = cmd("recover", "unlock with the recovery key and set a new passphrase")
    p.add_argument("--new-passphrase-fd", type=int, metavar="N")
    p.add_argument("--recovery-key-fd", type=int, metavar="N")

    client = cmd("client", "clients").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("add", "add a client", client)
    p.add_argument("name")
    _client_fields(p)
    p = cmd("list", "list clients", client)
    p.add_argument("--status", choices=("active", "discharged"))
    p.add_argument("--query", help="part of the name")
    p = cmd("show", "show a client", client)
    p.add_argument("id")
    p = cmd("edit", "change a client's details", client)
    p.add_argument("id")
    p.add_argument("--name")
    _client_fields(p)
    p = cmd("discharge", "mark a client discharged", client)
    p.add_argument("id")

    note = cmd("note", "session notes").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("new", "new note from a template (body from stdin or --body-file)", note)
    p.add_argument("--client", required=True, help="client id (or a unique prefix)")
    p.add_argument("--template", required=True)
    p.add_argument("--kind", choices=NOTE_KINDS)
    p.add_argument("--title")
    p.add_argument("--session-date", metavar="YYYY-MM-DD")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--body-file", metavar="F", help="file with the body ('-' for stdin)")
    p = cmd("list", "list notes, newest session first", note)
    p.add_argument("--client")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p = cmd("show", "show a note", note)
    p.add_argument("id")
    p = cmd("edit", "save a new revision (body from stdin or --body-file)", note)
    p.add_argument("id")
    p.add_argument("--title")
    p.add_argument("--session-date", metavar="YYYY-MM-DD")
    p.add_argument("--body-file", metavar="F")
    p = cmd("history", "every revision of a note", note)
    p.add_argument("id")
    p = cmd("search", "full-text search, best match first", note)
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=20)
    p = cmd("sign", "sign and lock a note (it can then only take addenda)", note)
    p.add_argument("id")
    p = cmd("addendum", "add a signed addendum to a signed note (stdin or --body-file)", note)
    p.add_argument("id")
    p.add_argument("--body-file", metavar="F")
    p = cmd("verify", "check a signed note's signature and its addenda", note)
    p.add_argument("id")
    p = cmd("resolve", "resolve a sync conflict: keep the current text or the other", note)
    p.add_argument("id")
    p.add_argument("revision", type=int, help="the conflict's revision (tacit sync conflicts)")
    p.add_argument("--keep", choices=("current", "conflict"), required=True)

    audit = cmd("audit", "the audit trail").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("list", "audit entries, oldest first", audit)
    p.add_argument("--record", help="a note or client id")
    p.add_argument("--action", dest="audit_action", choices=ACTIONS)
    p.add_argument("--since", metavar="DATE", help="YYYY-MM-DD or an ISO time")
    p.add_argument("--limit", type=int)
    cmd("verify", "verify the whole hash chain", audit)
    p = cmd("export", "write the trail as CSV (plaintext: needs explicit consent)", audit)
    p.add_argument("--out", required=True, type=Path, metavar="FILE")
    p.add_argument(
        "--i-understand-plaintext", action="store_true",
        help="confirm that FILE will not be encrypted",
    )  # fmt: skip
    cmd("key", "print the clinician's public signing key")
    _backup_commands(cmd, sub)
    add_export_commands(cmd, sub)
    add_sync_commands(cmd, sub)
    add_practice_commands(cmd, sub)
    add_import_commands(cmd, sub)
    add_ship_commands(cmd, sub)
    return parser


def _backup_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    group = cmd("backup", "encrypted backups: create, verify, restore").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("create", "write an encrypted backup file of the vault", group)
    p.add_argument("--to", type=Path, metavar="DIR", help="folder (default: the data folder)")
    for name, help_text in (
        ("verify", "open a backup and check everything in it"),
        ("restore", "restore a backup into a new vault (--vault DIR)"),
    ):
        p = cmd(name, help_text, group)
        p.add_argument("file", type=Path, metavar="FILE")
        p.add_argument(
            "--recovery-key",
            action="store_true",
            help=f"open it with the recovery key (${RECOVERY_KEY_ENV} or a prompt)",
        )
        p.add_argument("--recovery-key-fd", type=int, metavar="N")
        if name == "restore":
            p.add_argument(
                "--force",
                action="store_true",
                help="move an existing vault aside (never deleted) and restore",
            )
            p.add_argument(
                "--new-passphrase-fd",
                type=int,
                metavar="N",
                help="with --recovery-key: the restored vault's passphrase",
            )


def _client_fields(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dob", metavar="YYYY-MM-DD", help="date of birth")
    p.add_argument("--email")
    p.add_argument("--phone")


class Cli(SyncCommands, PracticeCommands, ExportCommands, ImportCommands, ShipCommands):
    """One invocation: parsed arguments, the service, and where output goes."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Output(bool(getattr(args, "json", False)))
        self.vault_dir: Path = getattr(args, "vault", None) or default_vault_dir()
        self.service = VaultService(self.vault_dir)

    def passphrase_fd(self) -> int | None:
        fd: int | None = getattr(self.args, "passphrase_fd", None)
        return fd

    def unlock(self, *, check_orders: bool = True) -> VaultService:
        """Open the vault, first carrying out a lock or wipe order waiting on the sync
        server (``check_orders``; app/clisync.py)."""
        hdr = self.service.read_header()  # vault_missing / integrity_error before any prompt
        if check_orders and hdr.account is not None:  # linked: an order may be waiting
            self.check_orders()
        self.service.refuse_if_remote_locked()  # device_locked before asking for a passphrase
        self.service.unlock(
            read_passphrase("Passphrase", fd=self.passphrase_fd(), env=PASSPHRASE_ENV)
        )
        return self.service

    # -- commands ----------------------------------------------------------------------
    def init(self) -> None:
        if self.service.exists():  # before prompting for anything
            raise VaultExistsError(f"a vault already exists in {self.vault_dir}")
        passphrase = read_passphrase(
            "New passphrase", fd=self.passphrase_fd(), env=PASSPHRASE_ENV, confirm=True
        )
        recovery = self.service.create(passphrase, clinician=self.args.clinician)
        data = {"vault": str(self.vault_dir), "recovery_key": recovery}
        self.out.emit(
            data,
            f"Created the vault in {self.vault_dir}\n\n"
            f"Recovery key (shown once; print it or write it down and keep it safe):\n\n"
            f"    {recovery}\n\n"
            "Anyone with this key can open the vault. Without it, a forgotten passphrase\n"
            "means the notes are lost.",
        )

    def status(self) -> None:
        svc = self.unlock()
        self.out.emit(svc.status())

    def check(self) -> None:
        problems = self.unlock().check()
        if problems:
            raise IntegrityError(f"integrity check found {len(problems)} problem(s)")
        self.out.emit({"ok": True}, "The vault database is intact.")

    def templates(self) -> None:
        items = [t.to_dict() for t in VaultService.templates(self.service)]
        self.out.emit(items, table(items, ("id", "name", "kind", "sections")))

    def template(self) -> None:
        a = self.args
        svc = self.unlock()
        if a.action == "list":
            items = [t.to_dict() for t in svc.templates(include_archived=a.archived)]
            self.out.emit(items, table(items, ("id", "name", "kind", "custom", "archived")))
            return
        if a.action == "add":
            t = svc.add_template(a.name, a.kind, a.section, a.description or "")
        elif a.action == "edit":
            t = svc.update_template(a.id, name=a.name, kind=a.kind, sections=a.section,
                                    description=a.description)  # fmt: skip
        else:
            t = svc.update_template(a.id, archived=a.action == "archive")
        self.out.emit(t.to_dict(), f"{t.id}  {t.name}" + ("  (archived)" if t.archived else ""))

    def passwd(self) -> None:
        svc = self.unlock()
        new = read_passphrase(
            "New passphrase", fd=self.args.new_passphrase_fd, env=NEW_PASSPHRASE_ENV,
            confirm=True,
        )  # fmt: skip
        svc.change_passphrase(new)
        self.out.emit({"ok": True}, "Passphrase changed.")

    def recover(self) -> None:
        self.service.read_header()
        key = read_secret("Recovery key", fd=self.args.recovery_key_fd, env=RECOVERY_KEY_ENV)
        self.service.unlock_with_recovery_key(key)
        new = read_passphrase(
            "New passphrase", fd=self.args.new_passphrase_fd, env=NEW_PASSPHRASE_ENV,
            confirm=True,
        )  # fmt: skip
        self.service.change_passphrase(new)
        self.out.emit({"ok": True}, "Vault recovered; the new passphrase is set.")

    def client(self) -> None:
        a = self.args
        svc = self.unlock()
        if a.action == "add":
            c = svc.add_client(a.name, dob=a.dob, email=a.email, phone=a.phone)
            self.out.emit({"id": c.id}, c.id)
        elif a.action == "list":
            clients = svc.list_clients(status=a.status, query=a.query, audit=True)
            rows = [c.to_dict() for c in clients]
            self.out.emit(rows, table(rows, ("id", "name", "dob", "status")))
        elif a.action == "show":
            self.out.emit(svc.get_client(a.id, record_view=True).to_dict())
        elif a.action == "edit":
            changes = {
                k: v
                for k, v in (("name", a.name), ("dob", a.dob), ("email", a.email),
                             ("phone", a.phone))
                if v is not None
            }  # fmt: skip
            self.out.emit(svc.update_client(a.id, **changes).to_dict())
        elif a.action == "discharge":
            self.out.emit(svc.discharge_client(a.id).to_dict())

    def note(self) -> None:
        a = self.args
        if a.action == "new":
            body = read_body(a.body_file, required=False)
            svc = self.unlock()
            n = svc.create_note(
                a.client, a.template, kind=a.kind, title=a.title, body=body,
                session_date=a.session_date, tags=a.tag,
            )  # fmt: skip
            self.out.emit({"id": n.id}, n.id)
        elif a.action == "edit":
            body = read_body(a.body_file, required=a.title is None and a.session_date is None)
            n = self.unlock().edit_note(a.id, body=body, title=a.title, session_date=a.session_date)
            self.out.emit({"id": n.id, "revision": n.revision}, f"{n.id} revision {n.revision}")
        elif a.action == "list":
            notes = self.unlock().list_notes(a.client, limit=a.limit, offset=a.offset, audit=True)
            rows = [s.to_dict() for s in notes]
            self.out.emit(rows, table(rows, ("id", "session_date", "kind", "template", "title")))
        elif a.action == "show":
            self.show_note(a.id)
        elif a.action == "sign":
            sig = self.unlock().sign_note(a.id)
            self.out.emit(
                {"id": sig.note_id, "signed_at": sig.signed_at, "signature": sig.signature},
                f"Signed {sig.note_id} at {sig.signed_at}. It can now change only by addenda.",
            )
        elif a.action == "addendum":
            body = read_body(a.body_file, required=True) or ""
            added = self.unlock().add_addendum(a.id, body)
            self.out.emit({"id": added.id}, added.id)
        elif a.action == "verify":
            result = self.unlock().verify_note(a.id)
            if not result.ok:
                raise IntegrityError(
                    "verification failed: " + "; ".join(result.problems),
                    problems=list(result.problems),
                )
            self.out.emit(
                {"ok": True, "addenda": result.addenda},
                f"The signature is valid ({result.addenda} addenda verified).",
            )
        elif a.action == "resolve":
            n = self.unlock().resolve_conflict(a.id, a.revision, keep=a.keep)
            self.out.emit(
                {"id": n.id, "revision": n.revision, "kept": a.keep},
                f"Resolved: {n.id} is at revision {n.revision} ({a.keep} text).",
            )
        elif a.action == "history":
            revs = [r.to_dict() for r in self.unlock().note_history(a.id)]
            self.out.emit(revs, table(revs, ("revision", "saved_at", "author", "title")))
        elif a.action == "search":
            hits = self.unlock().search(a.query, limit=a.limit, audit=True)
            rows = [h.to_dict() for h in hits]
            human = "\n\n".join(f"{h.id}  {h.title}\n    {h.snippet_with('[', ']')}" for h in hits)
            self.out.emit(
                [{"id": r["id"], "title": r["title"], "snippet": r["snippet"],
                  "client_id": r["client_id"], "kind": r["kind"],
                  "session_date": r["session_date"], "score": r["score"]} for r in rows],
                human or "(no matches)",
            )  # fmt: skip

    def show_note(self, note_id: str) -> None:
        svc = self.unlock()
        n = svc.get_note(note_id)  # records the view
        data = n.to_dict()
        signature = svc.note_signature(n.id)
        data["signature"] = signature.signature if signature else None
        addenda = svc.addenda(n.id)
        data["addenda"] = [a.to_dict() for a in addenda]
        state = f"signed {n.signed_at}" if n.signed_at else f"rev {n.revision}, unsigned"
        lines = [n.title, f"{n.session_date} · {n.kind} · {n.template} · {state}", "", n.body]
        for a in addenda:
            lines += ["", f"— Addendum {a.created_at} ({a.author})", a.body]
        self.out.emit(data, "\n".join(lines))

    def audit(self) -> None:
        a = self.args
        svc = self.unlock()
        if a.action == "list":
            record = None
            if a.record:
                try:
                    record = svc.get_note(a.record, record_view=False).id
                except NotFoundError:
                    record = svc.get_client(a.record).id
            entries = svc.audit_entries(
                record_id=record, action=a.audit_action, since=a.since, limit=a.limit
            )
            rows = [e.to_dict() for e in entries]
            self.out.emit(rows, table(rows, ("seq", "at", "action", "record_type", "record_id",
                                             "detail")))  # fmt: skip
        elif a.action == "export":
            self.export_audit(svc)
        else:
            verdict = svc.verify_audit()
            if not verdict.ok:
                raise IntegrityError(
                    f"the audit trail is broken at entry {verdict.first_bad_seq}: {verdict.reason}",
                    first_bad_seq=verdict.first_bad_seq,
                )
            self.out.emit({"ok": True, "entries": verdict.entries},
                          f"The audit trail is intact ({verdict.entries} entries).")  # fmt: skip

    def export_audit(self, svc: VaultService) -> None:
        a = self.args
        if not a.i_understand_plaintext:
            raise UsageError(
                "the CSV is not encrypted; add --i-understand-plaintext to write it anyway "
                "(it holds record ids, actions and times, never record content)"
            )
        if a.out.exists():
            raise UsageError(f"{a.out} exists; choose a new file name")
        entries = svc.audit_entries()
        atomic_write(a.out, to_csv(entries).encode("utf-8"))
        try:  # a plaintext export that cannot be audited does not stay
            svc.record_event("export", record_type="audit", detail=f"csv, {len(entries)} rows")
        except BaseException:
            a.out.unlink(missing_ok=True)
            raise
        self.out.emit({"out": str(a.out), "entries": len(entries)},
                      f"Wrote {len(entries)} entries to {a.out}.")  # fmt: skip

    def backup(self) -> None:
        a = self.args
        if a.action == "create":
            svc = self.unlock()
            with fraction_progress(self.out, "Backing up") as progress:
                report = backup.create_backup(svc, a.to, progress=progress)
            self.out.emit(
                report.to_dict(),
                f"Wrote {report.file} ({report.notes} notes, "
                f"{report.bytes} bytes, {report.seconds:.2f} s).",
            )
            return
        if a.action == "restore":  # before asking for any secret
            backup_restore.check_target(self.vault_dir, force=a.force)
        recovery: str | None = None
        passphrase = new = None
        if a.recovery_key or a.recovery_key_fd is not None:
            recovery = read_secret("Recovery key", fd=a.recovery_key_fd, env=RECOVERY_KEY_ENV)
            if a.action == "restore":
                new = read_passphrase(
                    "New passphrase",
                    fd=a.new_passphrase_fd,
                    env=NEW_PASSPHRASE_ENV,
                    confirm=True,
                )
        else:
            passphrase = read_passphrase("Passphrase", fd=self.passphrase_fd(), env=PASSPHRASE_ENV)
        if a.action == "verify":
            with fraction_progress(self.out, "Verifying") as progress:
                found = backup_restore.verify_backup(
                    a.file, passphrase=passphrase, recovery_key=recovery, progress=progress
                )
            self.out.emit(
                found.to_dict(),
                f"The backup is intact: {found.notes} notes, "
                f"{found.clients} clients, {found.audit_entries} audit entries.",
            )
            return
        with fraction_progress(self.out, "Restoring") as progress:
            done = backup_restore.restore_backup(
                a.file,
                self.vault_dir,
                passphrase=passphrase,
                recovery_key=recovery,
                new_passphrase=new,
                force=a.force,
                keychain=self.service.keychain,
                progress=progress,
            )
        aside = f"\nThe vault that was there is now {done.moved_aside}." if done.moved_aside else ""
        self.out.emit(
            done.to_dict(),
            f"Restored {done.notes} notes into {done.vault} in {done.seconds:.2f} s.{aside}",
        )

    def key(self) -> None:
        public = self.unlock().signing_public_key()
        self.out.emit({"algorithm": "ed25519", "public_key": public}, public)

    def gui(self) -> int:
        try:
            from app.ui import main as gui_main
        except ImportError:
            raise UsageError(
                "the desktop app needs PySide6: install Tacit with the 'gui' extra"
            ) from None
        return int(gui_main(self.vault_dir, sys.argv[:1]))


# Commands whose method has another name (``Cli.unlock`` opens the vault for the others).
_HANDLERS = {"unlock": "unlock_online", "import": "import_notes"}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args_list
    out = Output(as_json)
    cli: Cli | None = None
    succeeded = False
    try:
        args = build_parser().parse_args(args_list)
        cli = Cli(args)
        command = args.command or "gui"
        handler: Callable[[], Any] = getattr(cli, _HANDLERS.get(command, command))
        result = handler()
        code = int(result) if isinstance(result, int) else 0
        succeeded = code == 0
        return code
    except TacitError as err:
        return out.error(err)
    except KeyboardInterrupt:
        sys.stderr.write("tacit: interrupted\n")
        return 130
    except Exception:
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        return out.error(InternalError())
    finally:
        if cli is not None:
            # A failed command leaves the vault as it was: its deferred audit events
            # (unlock, views) are dropped rather than written.
            cli.service.close(record=succeeded)


if __name__ == "__main__":
    raise SystemExit(main())
