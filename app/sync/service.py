"""``SyncService``: what the CLI (and later the app) drives: sign up, sign in, sync, status.

It ties an unlocked ``VaultService`` (its ``SyncStore``), the HTTP transport and the
engine together. Sign-up sends only the login *public* key, the KDF parameters and a
device public key; the account password never leaves this object, and the derived keys
are wiped after use (the master key is also kept inside the vault so sync runs without
the password; see app/sync/account.py).

Invariants: every call needs an unlocked vault; a vault is linked to at most one
account (signing in to another is refused, so two accounts' records never mix); each
sign-up, sign-in and sync leaves an audit entry (``account`` / ``sync``, counts only);
the ``sync`` entry is written before the run's push, which carries it, so a sync leaves
nothing queued behind it.

Sync runs reuse one ``HttpTransport`` (one kept-alive TLS connection) for as long as the
server settings and the stored session stay the same; the desktop app syncs again and
again, and a new connection (TCP and TLS handshakes) per run would cost more than the
run itself. ``close()`` ends it (at lock); a failed run ends it too, so the next run
starts on a fresh connection.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.errors import (
    DeviceLockedError,
    DeviceWipedError,
    NotSignedInError,
    TacitError,
    UsageError,
    WrongPassphraseError,
)
from app.sync import protocol
from app.sync.account import SessionStore, kdf_from_wire, kdf_to_wire, new_kdf
from app.sync.client import HttpTransport, Session, normalize_pin
from app.sync.devices import ControlRecord, DeviceService, full_reauth
from app.sync.engine import NEEDS_PASSWORD, Fault, RunRecord, SyncEngine, SyncResult
from app.vault import crypto
from app.vault.clock import iso
from app.vault.crypto import EscrowKey, Passphrase, SigningKey, SymmetricKey
from app.vault.header import SLOT_ESCROW
from app.vault.passphrase import require_strong
from app.vault.service import VaultService

DEFAULT_DEVICE_NAME = "Tacit device"  # neutral: the server stores device names in plaintext
# An app sync that has only audit entries to push leaves them queued until they are this
# old (or something else is pushed): a pull does not cost a push (docs/PROTOCOL.md).
DEFER_AUDIT_S = 600
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
        # The transport kept between sync runs, the settings it was made for, and the
        # stored session (raw meta value) its tokens match.
        self._kept_lock = threading.Lock()
        self._kept: HttpTransport | None = None
        self._kept_for: tuple[str, str | None, str | None] | None = None
        self._kept_session: str | None = None

    def close(self) -> None:
        """End the connection kept between syncs (idempotent; a later sync opens a new
        one). Safe to call from another thread than the one syncing."""
        with self._kept_lock:
            kept, self._kept, self._kept_for, self._kept_session = self._kept, None, None, None
        if kept is not None:
            kept.close()

    # -- settings ----------------------------------------------------------------------
    def _transport(
        self, server: str, ca_file: str | None, pin: str | None, session: Session | None = None,
        on_tokens: Callable[[Session], None] | None = None,
    ) -> HttpTransport:  # fmt: skip
        return self._transport_factory(
            server, ca_file=Path(ca_file) if ca_file else None, pin=pin, session=session,
            on_tokens=on_tokens or self.sessions.save,
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
        signup: Callable[[HttpTransport, protocol.SignupRequest], protocol.SignupResponse]
        | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Sign up. ``signup`` replaces the plain sign-up request (practice mode joins
        with an invite in the same request). Raises UsageError (already linked, bad URL
        or pin), WeakPassphraseError, an ApiError (e.g. account_exists), OfflineError,
        TlsError."""
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
                created = signup(transport, body) if signup else transport.signup(body)
            self._link(origin, username, created["account_id"], body["kdf"], master,
                       ca_file, pin, device_name)  # fmt: skip
            # Sign-up opens no session: the signing key is registered at the first login.
            self._link_vault(master, created["account_id"])
            self._save_control(origin, username, created.get("control_token"), ca_file, pin)
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
                # The login rotated this device's control token: keep the new one first,
                # so a failure below cannot leave the device deaf to orders.
                where = self._save_control(origin, username, tokens.get("control_token"),
                                           ca_file, pin)  # fmt: skip
                self.sessions.save(Session.from_tokens(tokens))
                self._link(origin, username, tokens["account_id"], kdf, master, ca_file, pin,
                           device_name)  # fmt: skip
                self._link_vault(master, tokens["account_id"])
                signing = self._register_signing_key(transport, master, tokens["account_id"])
                self._learn_epochs(transport, password)
            finally:
                master.wipe()
                login_key.wipe()
        if linked is None:
            self.store.enqueue_all()
        self.store.record("account", "signed in")
        self._adopt_practice()
        return {"account_id": tokens["account_id"], "device_id": tokens["device_id"],
                "username": username, "server": origin, "signing_key": signing,
                "control_token_in": where}  # fmt: skip

    def logout(self) -> dict[str, Any]:
        self.close()
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
            "signing_key": self.store.get("signing_key"),
            "control_token_in": DeviceService(self.vault).control.where(),
            "escrow_slot": SLOT_ESCROW in self.vault.read_header().slots,
        }  # fmt: skip

    # -- sync --------------------------------------------------------------------------
    def session_transport(self) -> HttpTransport:
        """A new transport on the stored session (the caller closes it). Raises
        NotSignedInError."""
        return self._session_transport()

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

    def account_keys(self) -> dict[int, SymmetricKey]:
        """Every account key epoch's key this vault holds (1 is the sign-up's master key).
        Raises NotSignedInError when the vault is not linked."""
        return {1: self._master(), **self._epochs()}

    def _engine_for_keys(self) -> SyncEngine:
        return SyncEngine(self.store, _NoTransport(), self._master(), epochs=self._epochs())

    # -- account key epochs (docs/SECURITY.md, "Items-key rotation") -------------------
    def _epochs(self) -> dict[int, SymmetricKey]:
        """The keys of the account key epochs after the first that this vault holds."""
        raw = self.store.get("epoch_keys")
        doc: dict[str, str] = json.loads(raw) if raw else {}
        return {int(e): SymmetricKey(bytes.fromhex(h)) for e, h in doc.items()}

    def _save_epochs(self, keys: dict[int, SymmetricKey]) -> None:
        doc = {str(e): k.hex() for e, k in sorted(keys.items())}
        self.store.put({"epoch_keys": json.dumps(doc)})

    def _learn_epochs(self, transport: HttpTransport, password: Passphrase) -> int:
        """Derive the key of every epoch the server lists that this vault lacks (one
        Argon2id each) and keep them; items refused for want of one are pulled again at
        the next sync. Returns the highest epoch (1: none after the first)."""
        listed = transport.key_epochs()
        keys = self._epochs()
        highest = 1
        for entry in listed:
            try:
                epoch = int(entry["epoch"])
                params, salt = kdf_from_wire(entry["kdf"])
            except (KeyError, TypeError, ValueError):
                raise protocol.ApiError("the sync server sent a malformed key epoch") from None
            if not protocol.FIRST_KEY_EPOCH < epoch <= protocol.MAX_KEY_EPOCH:
                raise protocol.ApiError("the sync server sent a malformed key epoch")
            highest = max(highest, epoch)
            if epoch not in keys:
                keys[epoch] = crypto.derive_epoch_key(password, salt, params)
        self._save_epochs(keys)
        if self.store.forget_refused(NEEDS_PASSWORD):
            self.store.put({"cursor": None})  # pull from the start: known items are skipped
        return highest

    def learn_epochs(self, password: Passphrase) -> int:
        """``_learn_epochs`` on this device's session (after a restore by escrow)."""
        with self._session_transport() as transport:
            return self._learn_epochs(transport, password)

    def _check_password(self, password: Passphrase) -> None:
        """Raises WrongPassphraseError unless ``password`` derives this vault's master key
        (a new epoch made with a mistyped password would lock every device out of it)."""
        kdf = self.store.get("kdf")
        if kdf is None:
            raise NotSignedInError()
        params, salt = kdf_from_wire(json.loads(kdf))
        master = self._master()
        derived, login_key = crypto.derive_account_keys(password, salt, params)
        try:
            if not crypto.constant_time_equal(derived.reveal(), master.reveal()):
                raise WrongPassphraseError("that is not this account's password")
        finally:
            for key in (master, derived, login_key):
                key.wipe()

    def new_key_epoch(self, password: Passphrase, *, checked: bool = False) -> dict[str, Any]:
        """After a device was locked, wiped or removed: a new account key epoch (a key
        derived from the account password with a fresh salt, which the revoked device's
        keys cannot give), registered with the server (which signs out every other
        session of the account, so the other devices sign in again and derive it), and
        a new items key wrapped under it (``checked``: the server has just verified the
        password, as a removal's full re-authentication does). Raises
        WrongPassphraseError, NotSignedInError, an ApiError, OfflineError, TlsError."""
        if not checked:
            self._check_password(password)
        with self._session_transport() as transport:
            for _attempt in range(3):
                epoch = self._learn_epochs(transport, password) + 1
                params, salt = new_kdf()
                key = crypto.derive_epoch_key(password, salt, params)
                try:
                    added = transport.add_key_epoch(epoch, kdf_to_wire(params, salt))
                except protocol.EpochConflictError:
                    key.wipe()
                    continue  # another device made this one first: learn it, go on
                except BaseException:
                    key.wipe()
                    raise
                self._save_epochs({**self._epochs(), epoch: key})
                break
            else:
                raise protocol.ApiError("could not register a new key epoch; try again")
        rotated = self.rotate_keys()
        self.store.record("account", f"made key epoch {epoch}")
        return {**rotated, "epoch": epoch,
                "sessions_ended": int(added.get("sessions_ended", 0))}  # fmt: skip

    def _kept_transport(self) -> HttpTransport:
        """The transport sync runs share: reused while the server settings and the
        stored session are unchanged (a refresh by this transport updates both), else
        made anew (or, same server, given the stored session). Raises NotSignedInError."""
        server = self.store.get("server")
        if server is None:
            raise NotSignedInError()
        wanted = (server, self.store.get("ca_file"), self.store.get("pin"))
        raw = self.store.get("session")
        with self._kept_lock:
            kept, kept_for, kept_session = self._kept, self._kept_for, self._kept_session
        if kept is not None and kept_for == wanted and kept_session == raw and raw is not None:
            return kept
        session = self.sessions.load()
        if session is None:
            raise NotSignedInError("this device is not signed in; run 'tacit account login'")
        if kept is not None and kept_for == wanted:
            kept.session = session  # signed in again, or refreshed by another process
            transport = kept
        else:
            if kept is not None:
                self.close()
            transport = self._transport(*wanted, session, on_tokens=self._tokens_refreshed)
        with self._kept_lock:
            self._kept, self._kept_for, self._kept_session = transport, wanted, raw
        return transport

    def _tokens_refreshed(self, session: Session) -> None:
        self.sessions.save(session)
        with self._kept_lock:
            self._kept_session = self.store.get("session")

    def sync(self, *, check_orders: bool = True, defer_audit: bool = False) -> dict[str, Any]:
        """Check for a device order (``check_orders``: off where a long-poll watches for
        orders already, as in the app), pull, then push, on the kept connection
        (``defer_audit``: the app's background syncs let audit entries younger than
        ``DEFER_AUDIT_S`` wait for the next push); then, for a linked vault, register the
        account signing key if that is not done and add the escrow slot if there is
        none. Raises NotSignedInError, OfflineError (the outbox is kept), TlsError, an
        ApiError (e.g. token_reused: sign in again), DeviceLockedError /
        DeviceWipedError (an order arrived and was carried out: the vault is closed)."""
        master = self._master()
        try:
            transport = self._kept_transport()
            account_id = self.store.get("account_id")
            if check_orders and account_id is not None:
                self._check_orders(transport)
            engine = SyncEngine(self.store, transport, master, epochs=self._epochs(),
                                fault=self._fault)  # fmt: skip
            defer_after = None
            if defer_audit:
                oldest = self.vault.clock.now() - timedelta(seconds=DEFER_AUDIT_S)
                defer_after = iso(oldest)
            result = engine.sync(_RUN_RECORD, defer_after=defer_after)
            extra: dict[str, Any] = {}
            if account_id is not None:
                self._link_vault(master, account_id)
                if self.store.get("signing_key") != "registered":
                    extra["signing_key"] = self._register_signing_key(transport, master,
                                                                      account_id)  # fmt: skip
                if SLOT_ESCROW not in self.vault.read_header().slots:
                    extra["escrow_slot"] = self.renew_escrow(master, transport)
                self.vault.record_checkin(server_time=transport.server_time)
        except BaseException:
            self.close()  # whatever broke, the next run starts on a fresh connection
            raise
        finally:
            master.wipe()
        if result.pulled:
            self.vault.sync_changed()
        practice = self._practice_run()
        if practice is not None:
            extra["practice"] = practice
        return {**result.to_dict(), **extra}

    def _adopt_practice(self, *, force: bool = True) -> bool:
        """On another device of a practice member: take the member's practice keyring
        from the server (docs/PRACTICE.md). Never raises for a network or server problem."""
        from app.sync.practice import PracticeService

        try:
            return PracticeService(self).adopt(force=force)
        except TacitError:
            return False

    def _practice_run(self) -> dict[str, Any] | None:
        """After a member's sync, the practice's (docs/PRACTICE.md). Its failure is
        reported in the result, not raised: the account's own sync has succeeded."""
        from app.sync.practice import PracticeService

        practice = PracticeService(self)
        if practice.membership() is None and not self._adopt_practice(force=False):
            return None
        try:
            return practice.sync_run()
        except (DeviceLockedError, DeviceWipedError):
            raise
        except TacitError as err:
            return {"error": err.code}

    # -- remote lock (docs/PROTOCOL.md, "What the client must do") -----------------------
    def _check_orders(self, transport: HttpTransport) -> None:
        devices = DeviceService(self.vault, transport_factory=self._transport_factory)
        check = devices.check_order(transport=transport)
        if check.applied:
            raise DeviceWipedError() if check.action == "wipe" else DeviceLockedError()

    def _save_control(
        self, origin: str, username: str, token: str | None, ca_file: str | None,
        pin: str | None,
    ) -> str | None:  # fmt: skip
        """Keep the control token (and how to reach the server) where a locked vault can
        read it. Returns where it went, or None when the server sent none."""
        if not token:
            return None
        ca = str(Path(ca_file).resolve()) if ca_file else None
        record = ControlRecord(origin, username, token, ca, pin)
        return DeviceService(self.vault).control.save(record)

    def _link_vault(self, master: SymmetricKey, account_id: str) -> None:
        """Put the account signing key (derived here, never taken from the server) into
        the vault header, so orders verify while the vault is locked."""
        key = crypto.account_signing_key(master)
        try:
            public = key.public_key()
        finally:
            key.wipe()
        link = self.vault.read_header().account
        if (link is None or link.account_id != account_id or link.device_id != self.vault.device_id
                or link.signing_public_key != public):  # fmt: skip
            self.vault.set_account_signing_key(public, account_id)

    def _register_signing_key(
        self, transport: HttpTransport, master: SymmetricKey, account_id: str
    ) -> str:
        """Register the account signing key with the server (with its proof) unless it is
        already. Returns ``registered``, or ``mismatch`` when another key is registered:
        the server then refuses this device's orders (and every device refuses orders
        signed with the other key) until the owner replaces it, which needs full
        re-authentication."""
        key = crypto.account_signing_key(master)
        try:
            public = protocol.b64encode(key.public_key())
            try:
                current: str | None = transport.signing_key()["public_key"]
            except protocol.SigningKeyMissingError:
                current = None
            if current is None:
                proof = crypto.sign(key, b"", protocol.signing_key_proof_message(account_id))
                body: protocol.SigningKeyRequest = {"public_key": public,
                                                    "proof": protocol.b64encode(proof)}  # fmt: skip
                current = transport.put_signing_key(body)["public_key"]
        finally:
            key.wipe()
        state = "registered" if current == public else "mismatch"
        self.store.put({"signing_key": state})
        return state

    def renew_escrow(self, master: SymmetricKey, transport: HttpTransport | None = None) -> bool:
        """A new escrow key from the server, wrapped into the vault's escrow slot with the
        account's half (replacing any earlier slot). Raises NotSignedInError, OfflineError,
        TlsError, an ApiError, StorageError."""
        doc = (transport or self._kept_transport()).new_escrow_key()
        try:
            server_key = EscrowKey(protocol.b64decode(doc["escrow_key"]))
        except (KeyError, ValueError):
            raise protocol.ApiError("the sync server sent a malformed escrow key") from None
        account_key = crypto.account_escrow_key(master)
        try:
            self.vault.add_escrow_slot(server_key, account_key)
        finally:
            server_key.wipe()
            account_key.wipe()
        return True

    def devices(self) -> list[dict[str, Any]]:
        """The account's devices: id, name, last_seen, state, current, created_at and the
        latest order (with ``acked_at``: when it took effect)."""
        with self._session_transport() as transport:
            listed = transport.devices()
        return [{"id": d["id"], "name": d["name"], "last_seen": d["last_seen_at"],
                 "state": d.get("state", "active"), "current": d["current"],
                 "created_at": d["created_at"], "order": d.get("order")}
                for d in listed]  # fmt: skip

    def send_order(
        self, device: str, action: str, *, password: Passphrase | None = None
    ) -> dict[str, Any]:
        """Sign a ``lock``, ``wipe`` or ``restore`` order for another device of the
        account (``device``: its id or a unique prefix) with the account signing key and
        send it. Returns the device as the server now shows it. Raises UsageError (this
        device, unknown or ambiguous id, another signing key registered),
        NotSignedInError, an ApiError (device_state, ...), OfflineError, TlsError."""
        if action not in protocol.ORDER_ACTIONS:
            raise UsageError("an order is lock, wipe or restore")
        account_id = self.store.get("account_id")
        if account_id is None:
            raise NotSignedInError()
        master = self._master()
        try:
            with self._session_transport() as transport:
                target = _pick(transport.devices(), device)
                if self.store.get("signing_key") != "registered" and self._register_signing_key(
                    transport, master, account_id) != "registered":  # fmt: skip
                    raise UsageError(
                        "the server holds a different account signing key than this device "
                        "derives: other devices would refuse its orders. Replace it with "
                        "full re-authentication first"
                    )
                order: protocol.DeviceOrder = {
                    "v": protocol.ORDER_VERSION, "order_id": str(uuid.uuid4()),
                    "account_id": account_id, "device_id": target["id"],
                    "action": action,  # type: ignore[typeddict-item]
                    "issued_at": protocol.format_time(_now_ms()),
                }  # fmt: skip
                key = crypto.account_signing_key(master)
                try:
                    signature = crypto.sign(key, b"", protocol.order_message(order))
                finally:
                    key.wipe()
                shown = transport.send_order(
                    target["id"], {"order": order, "signature": protocol.b64encode(signature)}
                )
        finally:
            master.wipe()
        self.store.record("account", f"sent a {action} order to device {target['id']}")
        # A revoked device must not read what is synced from now on (docs/SECURITY.md
        # says how far that goes): rotate the items keys; the next sync pushes the key.
        # With the account password, under a new key epoch its keys cannot give.
        rotated = None
        if action in ("lock", "wipe"):
            rotated = self.new_key_epoch(password) if password else self.rotate_keys()
        return {"id": shown["id"], "name": shown["name"], "last_seen": shown["last_seen_at"],
                "state": shown.get("state"), "order": shown.get("order"),
                "rotated": rotated}  # fmt: skip

    def remove_device(
        self, device: str, password: Passphrase, *, totp: str | None = None,
        recovery_code: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Remove another device of the account for good (full re-authentication: the
        account password and a TOTP or recovery code), then rotate the items keys.
        Raises UsageError (this device, unknown or ambiguous id, no second factor),
        NotSignedInError, an ApiError (signature_invalid, totp_invalid, device_state,
        ...), OfflineError, TlsError."""
        if (totp is None) == (recovery_code is None):
            raise UsageError("give exactly one of a TOTP code or a recovery code")
        username, kdf = self.store.get("username"), self.store.get("kdf")
        if username is None or kdf is None or self.store.get("account_id") is None:
            raise NotSignedInError()
        params, salt = kdf_from_wire(json.loads(kdf))  # the account's, kept at sign-in
        with self._session_transport() as transport:
            target = _pick(transport.devices(), device)
            master, login_key = crypto.derive_account_keys(password, salt, params)
            try:
                reauth = full_reauth(transport, login_key, username, totp, recovery_code)
                shown = transport.remove_device(target["id"], reauth)
            finally:
                master.wipe()
                login_key.wipe()
        self.store.record("account", f"removed device {target['id']}")
        rotated = self.new_key_epoch(password, checked=True)  # the reauth checked it
        return {"id": shown["id"], "name": shown["name"], "last_seen": shown["last_seen_at"],
                "state": shown.get("state"), "rotated": rotated}  # fmt: skip

    def rotate_keys(self) -> dict[str, Any]:
        """A new items key (app/sync/engine.py, ``rotate_items_key``): current for every
        device once they have pulled it; pushed at the next sync. Raises
        NotSignedInError (no account master key in this vault), StorageError."""
        key = self._engine_for_keys().rotate_items_key()
        self.store.record("account", f"rotated the items keys (generation {key.generation})")
        return {"key_id": key.key_id, "generation": key.generation, "epoch": key.epoch}

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


def _pick(devices: list[protocol.Device], wanted: str) -> protocol.Device:
    wanted = wanted.strip().lower()
    exact = [d for d in devices if d["id"] == wanted]
    found = exact or [d for d in devices if wanted and d["id"].startswith(wanted)]
    if not found:
        raise UsageError("no device of this account has that id (tacit devices list)")
    if len(found) > 1:
        raise UsageError("that id prefix matches several devices; give more of it")
    if found[0]["current"]:
        raise UsageError("that is this device; give orders from another device")
    return found[0]


def _detail(result: SyncResult, queued: int) -> str:
    # Written before the push (which carries this entry), so: what the pull did, and
    # how many queued records the push is about to send. last_result has final counts.
    return (f"pulled {result.pulled}, conflicts {result.conflicts}, "
            f"refused {len(result.refused)}, pushing {queued}")  # fmt: skip


def _settings(result: SyncResult) -> dict[str, str | None]:
    return {"last_sync": protocol.format_time(_now_ms()),
            "last_result": json.dumps(result.to_dict())}  # fmt: skip


_RUN_RECORD = RunRecord(_detail, _settings)


class _NoTransport:
    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        raise NotSignedInError()

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        raise NotSignedInError()


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
