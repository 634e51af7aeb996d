"""The CLI's sync commands: ``account``, ``sync``, ``devices``, ``unlock --online`` and
``server`` (a mixin of ``app.cli.Cli``; kept apart so neither module grows past a
screenful of commands), and the device-order check run before every command that
unlocks a vault linked to a sync account.

Invariants: as app/cli.py's. The order check before a command is quiet and quick when
offline (a short connect timeout) and never stops the command for a network or server
problem; an order that verifies is carried out before the vault is opened, so a locked
device answers ``device_locked`` (exit 7) at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cliio import NEW_PASSPHRASE_ENV, Output, read_passphrase, read_secret, table
from app.cliio import ArgParser as _Parser
from app.errors import UsageError
from app.sync import protocol
from app.vault.crypto import Passphrase
from app.vault.service import VaultService

if TYPE_CHECKING:
    from app.sync.service import SyncService

ACCOUNT_PASSWORD_ENV = "TACIT_ACCOUNT_PASSWORD"  # noqa: S105 - a variable name
TOTP_ENV = "TACIT_TOTP"


def _default_username(vault_id: str) -> str:
    """A neutral username when none is given (the server stores it in plaintext)."""
    return f"tacit-{vault_id.replace('-', '')[:12]}"


def _password_fd(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-fd", type=int, metavar="N",
        help=f"account password from fd N (else ${ACCOUNT_PASSWORD_ENV})",
    )  # fmt: skip


def add_sync_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    """``account``, ``sync``, ``devices``, ``unlock`` and ``server`` (issues 5 and 6)."""
    account = cmd("account", "the sync account of this vault").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    for name, help_text in (("create", "sign up on a sync server (shows the TOTP QR code)"),
                            ("login", "sign in on a sync server (password + TOTP)")):  # fmt: skip
        p = cmd(name, help_text, account)
        p.add_argument("--server", required=name == "create", metavar="URL")
        p.add_argument("--username", metavar="U")
        p.add_argument("--ca-file", metavar="F", help="trust only this CA for the server")
        p.add_argument("--pin", metavar="SHA256", help="base64 SHA-256 of the server's key")
        p.add_argument("--device-name", metavar="N", help="shown in the device list")
        _password_fd(p)
        if name == "login":
            factor = p.add_mutually_exclusive_group()
            factor.add_argument("--totp", metavar="CODE")
            factor.add_argument("--recovery-code", metavar="C")
    cmd("status", "the account this vault syncs with", account)
    cmd("logout", "end this device's session", account)
    p = cmd("sync", "sync now; 'status': pending changes; 'conflicts': kept texts")
    p.add_argument("sync_action", nargs="?",
                   choices=("run", "status", "conflicts", "refused", "rotate-keys"),
                   default="run", metavar="[status|conflicts|refused|rotate-keys]")  # fmt: skip
    p.add_argument("--note", help="conflicts of one note")
    _password_fd(p)  # rotate-keys: with the account password, under a new key epoch
    devices = cmd("devices", "this account's devices; lock, wipe or restore a lost one")
    devices_sub = devices.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    cmd("list", "id, name, last seen and state of each device (this one marked)", devices_sub)
    for name, help_text in (
        ("lock", "lock a lost device: its passphrase stops opening it (notes kept)"),
        ("wipe", "wipe a lost device: every key slot and its database destroyed"),
        ("restore", "clear a device's lost flag (it then needs 'tacit unlock --online')"),
    ):
        p = cmd(name, help_text, devices_sub)
        p.add_argument("id", help="device id or a unique prefix")
        if name != "restore":  # the password makes a new key epoch (docs/SECURITY.md)
            _password_fd(p)
    p = cmd("remove", "remove another device for good (password + TOTP), then rotate keys",
            devices_sub)  # fmt: skip
    p.add_argument("id", help="device id or a unique prefix")
    factor = p.add_mutually_exclusive_group()
    factor.add_argument("--totp", metavar="CODE")
    factor.add_argument("--recovery-code", metavar="C")
    _password_fd(p)
    p = cmd("check", "ask the server for an order for this device now", devices_sub)
    p.add_argument("--wait", type=int, default=0, metavar="S", help="long-poll up to S s (25)")
    p = cmd("unlock", "restore a remotely locked vault online (password + TOTP)")
    p.add_argument("--online", action="store_true", required=True,
                   help="re-authenticate with the sync server")  # fmt: skip
    factor = p.add_mutually_exclusive_group()
    factor.add_argument("--totp", metavar="CODE")
    factor.add_argument("--recovery-code", metavar="C")
    _password_fd(p)
    p.add_argument("--new-passphrase-fd", type=int, metavar="N")
    server = cmd("server", "run the sync server (needs the 'server' extra)").add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=_Parser
    )
    p = cmd("run", "serve the sync API", server)
    p.add_argument("--db", metavar="URL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--tls-cert", type=Path, metavar="F")
    p.add_argument("--tls-key", type=Path, metavar="F")
    p.add_argument("--origin", metavar="URL")
    p.add_argument("--insecure", action="store_true", help="plain HTTP behind a TLS proxy")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes (about one per core)")  # fmt: skip
    p = cmd("migrate", "create or upgrade the server database", server)
    p.add_argument("--db", metavar="URL")


class SyncCommands:
    """The sync commands of ``app.cli.Cli`` (which provides these attributes)."""

    args: argparse.Namespace
    out: Output
    service: VaultService
    unlock: Callable[..., VaultService]

    def check_orders(self) -> None:
        """Before a command opens a vault linked to a sync account: fetch and carry out
        a pending order (wait 0; offline is quiet). A refused order is reported on
        stderr and otherwise ignored."""
        from app.sync.devices import DeviceService

        check = DeviceService(self.service).check_order(wait=0)
        if check.refused is not None:
            warning = {"code": "order_refused", "reason": check.refused}
            sys.stderr.write(json.dumps({"warning": warning}) + "\n" if self.out.as_json else
                             f"tacit: refused a device order that did not verify "
                             f"({check.refused})\n")  # fmt: skip

    def _sync_service(self, *, check_orders: bool = True) -> SyncService:
        from app.sync.service import SyncService, fault_from_env

        return SyncService(self.unlock(check_orders=check_orders), fault=fault_from_env())

    def account(self) -> None:
        a = self.args
        if a.action in ("create", "login"):
            password = read_passphrase(
                "Account password", fd=a.password_fd, env=ACCOUNT_PASSWORD_ENV,
                confirm=a.action == "create",
            )  # fmt: skip
            # Signing up or in makes its own first contact, with the settings given (a
            # wrong pin must send nothing); a refused login checks for an order below.
            sync = self._sync_service(check_orders=False)
            if a.action == "create":
                self._account_created(sync.create_account(
                    a.server, a.username or _default_username(sync.store.vault_id), password,
                    ca_file=a.ca_file, pin=a.pin, device_name=a.device_name,
                ))  # fmt: skip
                return
            totp, code = a.totp, a.recovery_code
            if totp is None and code is None:
                totp = read_secret("TOTP code", fd=None, env=TOTP_ENV)
            try:
                info = sync.login(
                    password, server=a.server, username=a.username, totp=totp,
                    recovery_code=code, ca_file=a.ca_file, pin=a.pin, device_name=a.device_name,
                )  # fmt: skip
            except (protocol.DeviceLostError, protocol.DeviceRemovedError) as err:
                self.check_orders()  # the owner marked it lost: the order may be waiting
                raise type(err)("the account's owner locked, wiped or removed this device; "
                                "a restored one signs in again with 'tacit unlock --online'",
                                **err.details) from None  # fmt: skip
            human = f"Signed in to {info['server']} as {info['username']}."
            if info.get("signing_key") == "mismatch":
                human += (
                    "\nWarning: the server holds a different account signing key than this "
                    "account's password gives. Lock and wipe orders from this device would be "
                    "refused until it is replaced (this needs full re-authentication)."
                )
            self.out.emit(info, human)
        elif a.action == "status":
            self.out.emit(self._sync_service().status())
        else:
            self.out.emit(self._sync_service().logout(), "Signed out.")

    def _account_created(self, info: dict[str, Any]) -> None:
        if self.out.as_json:
            self.out.emit(info)
            return
        import io

        import segno

        qr = io.StringIO()
        segno.make(info["totp_uri"], error="m").terminal(out=qr, compact=True)
        codes = "\n".join(f"    {c}" for c in info["recovery_codes"])
        self.out.emit(info, (
            f"Created sync account {info['account_id']} (username {info['username']}).\n\n"
            "Scan this with your authenticator app (TOTP), then sign in with "
            "'tacit account login':\n\n"
            f"{qr.getvalue()}\n{info['totp_uri']}\n\n"
            f"Recovery codes (shown once; each works once):\n{codes}"
        ))  # fmt: skip

    def sync(self) -> None:
        a = self.args
        sync = self._sync_service()
        if a.sync_action == "status":
            self.out.emit(sync.sync_status())
        elif a.sync_action == "conflicts":
            rows = [c.to_dict() for c in sync.vault.conflicts(a.note)]
            self.out.emit(rows, table(rows, ("note_id", "revision", "saved_at", "title")))
        elif a.sync_action == "refused":
            rows = sync.refused()
            self.out.emit(rows, table(rows, ("item_id", "kind", "reason", "at")))
        elif a.sync_action == "rotate-keys":
            password = self._optional_password()
            rotated = sync.new_key_epoch(password) if password else sync.rotate_keys()
            counts = sync.sync(check_orders=False)  # pushes the new key (offline: queued)
            self.out.emit({**rotated, **counts},
                          f"New items key {rotated['key_id']} (generation "
                          f"{rotated['generation']}); pushed {counts['pushed']}.")  # fmt: skip
        else:
            counts = sync.sync(check_orders=False)  # unlock() has just checked
            self.out.emit(counts, f"Pushed {counts['pushed']}, pulled {counts['pulled']}, "
                                  f"conflicts {counts['conflicts']}.")  # fmt: skip

    def server(self) -> int:
        a = self.args
        try:
            from app.sync.server import main as server_main
        except ImportError:
            raise UsageError("the sync server needs the 'server' extra (pip install "
                             "'tacit[server]')") from None  # fmt: skip
        if a.action == "migrate":
            return server_main.migrate(a.db)
        return server_main.run(a.db, a.host, a.port, a.tls_cert, a.tls_key, a.origin,
                               allow_insecure=a.insecure, workers=a.workers)  # fmt: skip

    def devices(self) -> None:
        a = self.args
        if a.action == "check":
            from app.sync.devices import DeviceService

            self.service.read_header()
            check = DeviceService(self.service).check_order(wait=a.wait, quiet=False)
            human = (f"Carried out a {check.action} order ({check.order_id})."
                     if check.order_id else "No order for this device.")  # fmt: skip
            self.out.emit(check.to_dict(), human)
            return
        sync = self._sync_service()
        if a.action == "list":
            rows = sync.devices()
            for row in rows:
                row["this"] = "*" if row["current"] else ""
            self.out.emit(rows, table(rows, ("this", "id", "name", "last_seen", "state")))
            return
        if a.action == "remove":
            password = read_passphrase("Account password", fd=a.password_fd,
                                       env=ACCOUNT_PASSWORD_ENV)  # fmt: skip
            totp, code = a.totp, a.recovery_code
            if totp is None and code is None:
                totp = read_secret("TOTP code", fd=None, env=TOTP_ENV)
            shown = sync.remove_device(a.id, password, totp=totp, recovery_code=code)
            self.out.emit(shown, f"Removed {shown['id']}; a new items key goes out at the "
                                 "next sync.")  # fmt: skip
            return
        epoch_password = self._optional_password() if a.action in ("lock", "wipe") else None
        shown = sync.send_order(a.id, a.action, password=epoch_password)
        rotated = shown.get("rotated") or {}
        then = ""
        if rotated:
            then = " A new items key goes out at the next sync."
            if rotated.get("epoch", 1) == 1:
                then += (" Without the account password it is wrapped like the old "
                         "ones; run 'tacit sync rotate-keys' with it to cut the device "
                         "off for good.")  # fmt: skip
        self.out.emit(shown, f"Sent a {a.action} order to {shown['id']}: it is now "
                             f"{shown['state']}.{then}")  # fmt: skip

    def _optional_password(self) -> Passphrase | None:
        """The account password for a new key epoch: from ``--password-fd`` or the
        environment, else asked on a terminal (Enter skips), else none."""
        fd = getattr(self.args, "password_fd", None)
        if fd is not None or os.environ.get(ACCOUNT_PASSWORD_ENV):
            return read_passphrase("Account password", fd=fd, env=ACCOUNT_PASSWORD_ENV)
        if not sys.stdin.isatty():
            return None
        label = ("Account password, to cut that device off from notes written from now "
                 "on (Enter to skip)")  # fmt: skip
        text = read_secret(label, fd=None, env=ACCOUNT_PASSWORD_ENV)
        return Passphrase.from_str(text) if text else None

    def unlock_online(self) -> None:
        """``tacit unlock --online``: every secret is read before the server is asked,
        so a TOTP code is not spent on a missing passphrase."""
        from app.sync.devices import DeviceService

        a = self.args
        self.service.read_header()
        password = read_passphrase("Account password", fd=a.password_fd, env=ACCOUNT_PASSWORD_ENV)
        new = read_passphrase("New passphrase", fd=a.new_passphrase_fd, env=NEW_PASSPHRASE_ENV,
                              confirm=True)  # fmt: skip
        totp, code = a.totp, a.recovery_code
        if totp is None and code is None:
            totp = read_secret("TOTP code", fd=None, env=TOTP_ENV)
        devices = DeviceService(self.service)
        devices.check_order(wait=0)  # a wipe that is waiting comes first
        info = devices.restore_online(password, new, totp=totp, recovery_code=code)
        self.out.emit(info, "The vault is restored and the new passphrase is set.")
