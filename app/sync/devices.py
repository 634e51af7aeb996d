"""Remote lock on the client, the parts that work while the vault is LOCKED: where the
device's control record is kept, checking for (and carrying out) a lock or wipe order,
and restoring a locked vault by full re-authentication (docs/PROTOCOL.md, "What the
client must do"; the vault half is app/vault/remote.py).

What it owns:
- the **control record**: the server URL, CA file, pin, username and the device control
  token, everything needed to reach the server while the vault cannot be opened. It is
  kept in the OS keychain (service ``tacit``, account ``sync-control:<vault id>``) when
  there is one, otherwise in the vault header's unauthenticated device state
  (``VaultService.set_sync_control``): plaintext, as docs/SECURITY.md says. Never in a
  file of its own, never in a log.
- ``DeviceService.check_order``: ``GET /v1/devices/self/order`` with the control token,
  ``verify_order`` against the key the vault derived itself, ``apply_order``, then the
  acknowledgement (only after the order took effect), and a check-in. Offline is quiet
  and quick (short connect timeout) in the check run before each command.
- ``DeviceService.restore_online``: password -> master key (with the server's salt and
  parameters, under this client's KDF floor), a fresh challenge and a second factor ->
  ``escrow/release`` -> ``restore_from_escrow`` with a new passphrase -> the new
  session and control token stored -> a new escrow key.

Invariants: an order is applied only after it verified against the vault's own account
signing key; an acknowledgement is sent only after ``apply_order`` returned; no token,
key or password reaches a message, a ``repr`` or a log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.errors import NotSignedInError, OfflineError, OrderRefusedError, TlsError, UsageError
from app.sync import protocol
from app.sync.account import _Keyring, kdf_from_wire
from app.sync.client import TIMEOUT_S, HttpTransport, Session
from app.vault import crypto
from app.vault.crypto import EscrowKey, Passphrase, SymmetricKey
from app.vault.passphrase import require_strong
from app.vault.service import VaultService

CONNECT_TIMEOUT_S = 3.0  # the check before each command: an offline laptop must not wait
CONTROL_VERSION = 1

TransportFactory = Callable[..., HttpTransport]


def control_keychain_account(vault_id: str) -> str:
    return f"sync-control:{vault_id}"


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """What reaching the server needs while the vault is locked. ``repr`` hides the
    token."""

    server: str
    username: str
    token: str = field(repr=False)
    ca_file: str | None = None
    pin: str | None = None

    def to_json(self) -> str:
        return json.dumps({"v": CONTROL_VERSION, "server": self.server,
                           "username": self.username, "token": self.token,
                           "ca_file": self.ca_file, "pin": self.pin},
                          sort_keys=True, separators=(",", ":"))  # fmt: skip

    @classmethod
    def from_json(cls, raw: str | None) -> ControlRecord | None:
        """None for a missing or malformed record (the header is plaintext: anything)."""
        if not raw:
            return None
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != CONTROL_VERSION:
                return None
            ca_file, pin = doc.get("ca_file"), doc.get("pin")
            record = cls(str(doc["server"]), str(doc["username"]), str(doc["token"]),
                         None if ca_file is None else str(ca_file),
                         None if pin is None else str(pin))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
        return record if record.token else None


class ControlStore:
    """Load and save this vault's control record; works locked."""

    def __init__(self, vault: VaultService, *, keychain: _Keyring | None = None) -> None:
        self._vault = vault
        self._keychain = keychain or _Keyring()

    def _account(self) -> str:
        return control_keychain_account(self._vault.read_header().vault_id)

    def where(self) -> str | None:
        """``keychain``, ``header`` or None (no record: sign in to make one)."""
        if ControlRecord.from_json(self._keychain.get(self._account())) is not None:
            return "keychain"
        if ControlRecord.from_json(self._vault.sync_control()) is not None:
            return "header"
        return None

    def load(self) -> ControlRecord | None:
        record = ControlRecord.from_json(self._keychain.get(self._account()))
        return record or ControlRecord.from_json(self._vault.sync_control())

    def save(self, record: ControlRecord) -> str:
        """Keep the record (replacing the previous one); returns where it went."""
        raw = record.to_json()
        if self._keychain.set(self._account(), raw):
            self._vault.set_sync_control(None)
            return "keychain"
        self._vault.set_sync_control(raw)
        return "header"

    def clear(self) -> None:
        self._keychain.delete(self._account())
        self._vault.set_sync_control(None)


@dataclass(slots=True)
class OrderCheck:
    """What one order check did. ``contacted``: the server answered (a check-in was
    recorded). ``problem``: the error code when it could not ask (quiet mode)."""

    contacted: bool
    order_id: str | None = None
    action: str | None = None
    applied: bool = False
    acknowledged: bool = False
    refused: str | None = None  # the OrderRefusedError reason
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"contacted": self.contacted, "order_id": self.order_id, "action": self.action,
                "applied": self.applied, "acknowledged": self.acknowledged,
                "refused": self.refused, "problem": self.problem}  # fmt: skip


class DeviceService:
    """Orders and restore for one vault, locked or not."""

    def __init__(
        self, vault: VaultService, *, transport_factory: TransportFactory = HttpTransport,
        keychain: _Keyring | None = None,
    ) -> None:  # fmt: skip
        self.vault = vault
        self.control = ControlStore(vault, keychain=keychain)
        self._transport_factory = transport_factory

    def linked(self) -> bool:
        """The vault header names an account (orders can be verified)."""
        return self.vault.read_header().account is not None

    def _transport(self, record: ControlRecord, *, connect_timeout: float) -> HttpTransport:
        return self._transport_factory(
            record.server, ca_file=Path(record.ca_file) if record.ca_file else None,
            pin=record.pin, timeout=httpx.Timeout(TIMEOUT_S, connect=connect_timeout),
        )  # fmt: skip

    def check_order(
        self, *, wait: int = 0, quiet: bool = True, connect_timeout: float = CONNECT_TIMEOUT_S,
        transport: HttpTransport | None = None,
    ) -> OrderCheck:  # fmt: skip
        """Ask the server for a pending order (waiting up to ``wait`` s), and carry out one
        that verifies. ``transport``: one already open to the same server (a sync run's),
        else a new one with a short connect timeout. ``quiet``: offline, TLS and server
        errors, and a refused order, are reported in the result instead of raised (the
        check before a command must never stop it for those). Raises (not quiet)
        NotSignedInError (no control record), OfflineError, TlsError, ApiError,
        OrderRefusedError; StorageError."""
        record = self.control.load()
        if record is None or not self.linked():
            if quiet:
                return OrderCheck(False, problem="not_linked")
            raise NotSignedInError("this device has no control token; sign in again")
        try:
            if transport is not None:
                return self._check(transport, record.token, wait)
            with self._transport(record, connect_timeout=connect_timeout) as made:
                return self._check(made, record.token, wait)
        except (OfflineError, TlsError, protocol.ApiError, OrderRefusedError) as err:
            if not quiet:
                raise
            refused = err.details.get("reason") if isinstance(err, OrderRefusedError) else None
            return OrderCheck(not isinstance(err, OfflineError | TlsError),
                              refused=None if refused is None else str(refused),
                              problem=err.code)  # fmt: skip

    def _check(self, transport: HttpTransport, token: str, wait: int) -> OrderCheck:
        signed = transport.pending_order(token, wait)
        self.vault.record_checkin(server_time=transport.server_time)
        if signed is None:
            return OrderCheck(True)
        raw = signed.get("order") if isinstance(signed, dict) else None
        if not isinstance(raw, dict):  # before anything else reads ``signed`` (issue 9)
            raise OrderRefusedError("the server sent a malformed order", reason="malformed")
        try:
            signature = protocol.b64decode(str(signed.get("signature", "")))
        except ValueError:
            signature = b""
        order = self.vault.verify_order(raw, signature)
        result = self.vault.apply_order(order)
        check = OrderCheck(True, order.order_id, order.action, applied=True)
        if result.ack_state is not None:  # only now that it took effect
            try:
                transport.ack_order(token, order.order_id, result.ack_state)
                check.acknowledged = True
            except (OfflineError, protocol.ApiError):
                pass  # the order stays pending and is delivered (and acked) again
            if check.acknowledged and result.ack_state == "wiped":
                # Nothing of the account stays on a wiped device: the control record
                # (server, username, token) goes once the server knows.
                self.control.clear()
        return check

    # -- restore ---------------------------------------------------------------------
    def restore_online(
        self, password: Passphrase, new_passphrase: Passphrase, *, totp: str | None = None,
        recovery_code: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Restore a remotely locked vault after the owner cleared the flag: full
        re-authentication releases the escrow key, the vault opens through its escrow
        slot and takes ``new_passphrase``; the new session and control token are kept
        and a new escrow key is made. Leaves the vault unlocked. Raises UsageError,
        NotSignedInError, WeakPassphraseError, an ApiError (device_lost while the device
        is still marked lost, totp_invalid, ...), OfflineError, TlsError,
        EscrowSlotMissingError, WrongEscrowKeyError, DeviceWipedError."""
        from app.sync.service import SyncService  # it needs the unlocked vault

        if (totp is None) == (recovery_code is None):
            raise UsageError("give exactly one of a TOTP code or a recovery code")
        record = self.control.load()
        if record is None or not self.linked():
            raise NotSignedInError("this vault has no control token for its sync account")
        require_strong(new_passphrase)  # before a TOTP code is spent
        with self._transport(record, connect_timeout=TIMEOUT_S) as transport:
            kdf = transport.auth_params(record.username)["kdf"]
            params, salt = kdf_from_wire(kdf)
            master, login_key = crypto.derive_account_keys(password, salt, params)
            try:
                reauth = full_reauth(transport, login_key, record.username, totp, recovery_code)
                release = transport.release_escrow(record.token, reauth)
                session = release["session"]
                # The release rotated the control token on the server: keep the new one
                # at once (this works locked), so a failure below cannot leave the
                # device deaf to orders.
                self.control.save(ControlRecord(record.server, record.username,
                                                session["control_token"], record.ca_file,
                                                record.pin))  # fmt: skip
                self._restore(master, release, new_passphrase)
                sync = SyncService(self.vault, transport_factory=self._transport_factory)
                try:
                    sync.sessions.save(Session.from_tokens(session))
                    escrow = sync.renew_escrow(master)
                    sync.learn_epochs(password)  # keys made since this device was locked
                finally:
                    sync.close()
            finally:
                master.wipe()
                login_key.wipe()
        self.vault.record_checkin(server_time=transport.server_time)
        return {"restored": True, "account_id": session["account_id"],
                "device_id": session["device_id"], "escrow_slot": escrow}  # fmt: skip

    def _restore(
        self, master: SymmetricKey, release: protocol.EscrowReleaseResponse,
        new_passphrase: Passphrase,
    ) -> None:  # fmt: skip
        try:
            server_key = EscrowKey(protocol.b64decode(release["escrow_key"]))
        except (KeyError, ValueError):
            raise protocol.ApiError("the sync server sent a malformed escrow key") from None
        account_key = crypto.account_escrow_key(master)
        try:
            self.vault.restore_from_escrow(server_key, account_key, new_passphrase)
        finally:
            server_key.wipe()
            account_key.wipe()


def full_reauth(
    transport: HttpTransport, login_key: crypto.SigningKey, username: str, totp: str | None,
    recovery_code: str | None,
) -> protocol.Reauth:  # fmt: skip
    """Full re-authentication: a fresh challenge signed for this client's configured
    origin (never the one the server names), plus the second factor."""
    challenge = transport.challenge(username)
    signature = crypto.login_signature(
        login_key, transport.origin, protocol.b64decode(challenge["challenge"])
    )
    body: protocol.Reauth = {"challenge_id": challenge["challenge_id"],
                             "signature": protocol.b64encode(signature)}  # fmt: skip
    if totp is not None:
        body["totp"] = totp.strip()
    else:
        body["recovery_code"] = str(recovery_code)
    return body
