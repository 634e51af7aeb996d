"""``SyncService``: what the CLI (and later the app) drives: sign up, sign in, sync, status.

It ties an unlocked ``VaultService`` (its ``SyncStore``), the HTTP transport and the
engine together. Sign-up sends only the login *public* key, the KDF parameters and a
device public key; the account password never leaves this object, and the derived keys
are wiped after use (the master key is also kept inside the vault so sync runs without
the password; see app/sync/account.py).

Invariants: every call needs an unlocked vault; a vault is linked to at most one
account (signing in to another is refused, so two accounts' records never mix); each
sign-up, sign-in and sync leaves an audit entry (``account`` / ``sync``, counts only).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import NotSignedInError, UsageError
from app.sync import protocol
from app.sync.account import SessionStore, kdf_from_wire, kdf_to_wire, new_kdf
from app.sync.client import HttpTransport, Session, normalize_pin
from app.sync.engine import Fault, SyncEngine, SyncResult
from app.vault import crypto
from app.vault.crypto import Passphrase, SigningKey, SymmetricKey
from app.vault.passphrase import require_strong
from app.vault.service import VaultService

DEFAULT_DEVICE_NAME = "Tacit device"  # neutral: the server stores device names in plaintext
FAULT_ENV = "TACIT_TEST_SYNC_FAULT"  # tests only, and only under the insecure-KDF switch

TransportFactory = Callable[..., HttpTransport]


def fault_from_env() -> Fault | None:
    """``STEP:N[:kill|raise]``: at the Nth time the engine reaches STEP, SIGKILL this
    process (default) or raise. Honoured only with TACIT_INSECURE_TEST_KDF=1."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or not crypto.insecure_test_kdf_enabled():
        return None
    parts = spec.split(":")
    step, count = parts[0], int(parts[1]) if len(parts) > 1 else 1
    mode = parts[2] if len(parts) > 2 else "kill"
    seen = {"n": 0}

    def fault(name: str) -> None:
        if name != step:
            return
        seen["n"] += 1
        if seen["n"] == count:
            if mode == "raise":
                raise RuntimeError(f"injected fault at {name}")
            os.kill(os.getpid(), signal.SIGKILL)

    return fault


class SyncService:
    def __init__(
        self, vault: VaultService, *, fault: Fault | None = None,
        transport_factory: TransportFactory = HttpTransport,
    ) -> None:  # fmt: skip
        self.vault = vault
        self.store = vault.sync_store()
        self.sessions = SessionStore(self.store)
        self._fault = fault
        self._transport_factory = transport_factory

    # -- settings ----------------------------------------------------------------------
    def _transport(
        self, server: str, ca_file: str | None, pin: str | None, session: Session | None = None
    ) -> HttpTransport:
        return self._transport_factory(
            server, ca_file=Path(ca_file) if ca_file else None, pin=pin, session=session,
            on_tokens=self.sessions.save,
        )  # fmt: skip

    def _device_key(self) -> SigningKey:
        raw = self.store.get("device_key")
        if raw is None:
            key = crypto.new_device_key()
            self.store.put({"device_key": key.hex()})
            return key
        return SigningKey(bytes.fromhex(raw))

    def _device(self, name: str | None) -> protocol.DeviceInfo:
        key = self._device_key()
        try:
            public = key.public_key()
        finally:
            key.wipe()
        return {"id": self.vault.device_id, "name": (name or DEFAULT_DEVICE_NAME)[:100],
                "public_key": protocol.b64encode(public)}  # fmt: skip

    @staticmethod
    def _check_server(server: str) -> str:
        try:
            return protocol.canonical_origin(server)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    # -- account -----------------------------------------------------------------------
    def create_account(
        self, server: str, username: str, password: Passphrase, *, ca_file: str | None = None,
        pin: str | None = None, device_name: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Sign up. Raises UsageError (already linked, bad URL or pin), WeakPassphraseError,
        an ApiError (e.g. account_exists), OfflineError, TlsError."""
        if self.store.get("account_id") is not None:
            raise UsageError("this vault is already linked to a sync account")
        origin = self._check_server(server)
        pin = self._pin(pin)
        require_strong(password)
        username = protocol.normalize_username(username)
        if protocol.USERNAME_RE.fullmatch(username) is None:
            raise UsageError("a username is 3-64 characters of a-z 0-9 . _ @ + -")
        params, salt = new_kdf()
        master, login_key = crypto.derive_account_keys(password, salt, params)
        try:
            body: protocol.SignupRequest = {
                "username": username,
                "login_public_key": protocol.b64encode(login_key.public_key()),
                "kdf": kdf_to_wire(params, salt), "device": self._device(device_name),
            }  # fmt: skip
            with self._transport(origin, ca_file, pin) as transport:
                created = transport.signup(body)
            self._link(origin, username, created["account_id"], body["kdf"], master,
                       ca_file, pin, device_name)  # fmt: skip
        finally:
            master.wipe()
            login_key.wipe()
        self._engine_for_keys().ensure_items_key()
        self.store.enqueue_all()
        self.store.record("account", "created a sync account")
        return {
            "account_id": created["account_id"], "username": username,
            "totp_uri": created["totp_uri"], "recovery_codes": created["recovery_codes"],
        }  # fmt: skip

    def _pin(self, pin: str | None) -> str | None:
        if pin is None:
            return None
        try:
            return normalize_pin(pin)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def _link(
        self, origin: str, username: str, account_id: str, kdf: protocol.KdfParams,
        master: SymmetricKey, ca_file: str | None, pin: str | None, device_name: str | None,
    ) -> None:  # fmt: skip
        self.store.put({
            "server": origin, "username": username, "account_id": account_id,
            "kdf": json.dumps(kdf), "master_key": master.hex(),
            "ca_file": str(Path(ca_file).resolve()) if ca_file else None, "pin": pin,
            "device_name": device_name or DEFAULT_DEVICE_NAME,
        })  # fmt: skip

    def login(
        self, password: Passphrase, *, server: str | None = None, username: str | None = None,
        totp: str | None = None, recovery_code: str | None = None, ca_file: str | None = None,
        pin: str | None = None, device_name: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Sign in (password + TOTP or a recovery code). Raises UsageError, an ApiError
        (signature_invalid, totp_invalid, totp_replayed, ...), OfflineError, TlsError."""
        server = server or self.store.get("server")
        username = username or self.store.get("username")
        if server is None or username is None:
            raise UsageError("give --server and --username (this vault has no account yet)")
        if (totp is None) == (recovery_code is None):
            raise UsageError("give exactly one of a TOTP code or a recovery code")
        origin = self._check_server(server)
        username = protocol.normalize_username(username)
        ca_file = ca_file or self.store.get("ca_file")
        pin = self._pin(pin) if pin else self.store.get("pin")
        device_name = device_name or self.store.get("device_name")
        with self._transport(origin, ca_file, pin) as transport:
            kdf = transport.auth_params(username)["kdf"]
            params, salt = kdf_from_wire(kdf)
            master, login_key = crypto.derive_account_keys(password, salt, params)
            try:
                challenge = transport.challenge(username)
                signature = crypto.login_signature(
                    login_key, transport.origin, protocol.b64decode(challenge["challenge"])
                )
                body: protocol.LoginRequest = {
                    "challenge_id": challenge["challenge_id"], "username": username,
                    "signature": protocol.b64encode(signature),
                    "device": self._device(device_name),
                }  # fmt: skip
                if totp is not None:
                    body["totp"] = totp.strip()
                else:
                    body["recovery_code"] = str(recovery_code)
                tokens = transport.login(body)
                linked = self.store.get("account_id")
                if linked is not None and linked != tokens["account_id"]:
                    transport.logout()
                    raise UsageError("this vault is linked to another sync account")
                self.sessions.save(Session.from_tokens(tokens))
                self._link(origin, username, tokens["account_id"], kdf, master, ca_file, pin,
                           device_name)  # fmt: skip
            finally:
                master.wipe()
                login_key.wipe()
        if linked is None:
            self.store.enqueue_all()
        self.store.record("account", "signed in")
        return {"account_id": tokens["account_id"], "device_id": tokens["device_id"],
                "username": username, "server": origin}  # fmt: skip

    def logout(self) -> dict[str, Any]:
        if self.store.get("session") is not None:
            try:
                with self._session_transport() as transport:
                    transport.logout()
            except Exception:  # noqa: S110 - ending the local session matters most
                pass
        self.sessions.clear()
        return {"signed_in": False}

    def status(self) -> dict[str, Any]:
        session = self.sessions.load()
        return {
            "linked": self.store.get("account_id") is not None,
            "signed_in": session is not None,
            "server": self.store.get("server"), "username": self.store.get("username"),
            "account_id": self.store.get("account_id"), "device_id": self.vault.device_id,
            "refresh_token_in": self.sessions.where() if session else None,
            "session_expires_at": protocol.format_time(session.refresh_expires_ms)
            if session else None,
            "pin": self.store.get("pin"), "ca_file": self.store.get("ca_file"),
        }  # fmt: skip

    # -- sync --------------------------------------------------------------------------
    def _session_transport(self) -> HttpTransport:
        server = self.store.get("server")
        session = self.sessions.load()
        if server is None:
            raise NotSignedInError()
        if session is None:
            raise NotSignedInError("this device is not signed in; run 'tacit account login'")
        return self._transport(server, self.store.get("ca_file"), self.store.get("pin"), session)

    def _master(self) -> SymmetricKey:
        raw = self.store.get("master_key")
        if raw is None:
            raise NotSignedInError()
        return SymmetricKey(bytes.fromhex(raw))

    def _engine_for_keys(self) -> SyncEngine:
        return SyncEngine(self.store, _NoTransport(), self._master())

    def sync(self) -> dict[str, Any]:
        """Pull, then push. Raises NotSignedInError, OfflineError (the outbox is kept),
        TlsError, an ApiError (e.g. token_reused: sign in again)."""
        master = self._master()
        try:
            with self._session_transport() as transport:
                engine = SyncEngine(self.store, transport, master, fault=self._fault)
                result = engine.sync()
        finally:
            master.wipe()
        self._finish(result)
        return result.to_dict()

    def _finish(self, result: SyncResult) -> None:
        now = protocol.format_time(_now_ms())
        self.store.record(
            "sync", f"pulled {result.pulled}, pushed {result.pushed}, "
            f"conflicts {result.conflicts}, refused {len(result.refused)}",
            {"last_sync": now, "last_result": json.dumps(result.to_dict())},
        )  # fmt: skip
        if result.pulled:
            self.vault.sync_changed()

    def sync_status(self) -> dict[str, Any]:
        last = self.store.get("last_result")
        return {
            "pending": self.store.pending_count(),
            "pending_by_kind": self.store.pending_by_kind(),
            "last_sync": self.store.get("last_sync"),
            "last_result": json.loads(last) if last else None,
            "conflicts": len(self.store.conflicts()),
            "refused": len(self.store.refused()),
            "linked": self.store.get("account_id") is not None,
            "server": self.store.get("server"),
        }

    def conflicts(self, note_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.conflicts(note_id)

    def refused(self) -> list[dict[str, str]]:
        return self.store.refused()


class _NoTransport:
    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        raise NotSignedInError()

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        raise NotSignedInError()


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
