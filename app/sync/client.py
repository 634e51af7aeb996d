"""The HTTP transport to the sync server (httpx): TLS, certificate pin, tokens, errors.

What it owns:
- TLS: certificates are verified against the system store, or only against the CA file
  given (``--ca-file``). An optional **pin** is the base64 SHA-256 of the server
  certificate's SubjectPublicKeyInfo (``crypto.certificate_pin``; the ``curl
  --pinnedpubkey sha256//…`` form, so a renewed certificate with the same key keeps it).
  The pin is checked inside the TLS handshake, before a single byte of a request (or a
  token) is sent: a mismatch aborts the connection.
- errors: a non-2xx answer becomes the protocol's typed ``ApiError`` (from its error
  envelope); a network failure becomes ``OfflineError`` (code ``offline``); a failed
  certificate check becomes ``TlsError`` (``tls_error``), never "offline", so an
  attacker in between does not look like a flaky network. Never a traceback.
- tokens: the access token goes in the ``Authorization`` header only; an expired access
  token is refreshed once, **serialised** by a lock (a refresh token presented twice
  revokes the session), and the new tokens are handed to ``on_tokens`` (which stores
  them) before the new access token is used.

Invariants: no token, key or body ever reaches an exception message or a log line;
every request has a timeout.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import httpx

from app.errors import OfflineError, TlsError
from app.sync import protocol
from app.vault import crypto

TIMEOUT_S = 30.0
REFRESH_MARGIN_MS = 60_000  # refresh a little before the access token expires
PIN_PREFIX = "sha256//"


class PinMismatchError(ssl.SSLCertVerificationError):
    """The server's certificate key is not the pinned one (raised inside the handshake)."""


def normalize_pin(pin: str) -> str:
    """A pin as stored: base64 of 32 bytes, without the optional ``sha256//`` prefix.
    Raises ValueError on anything else."""
    value = pin.strip().removeprefix(PIN_PREFIX)
    if len(protocol.b64decode(value)) != 32:
        raise ValueError("a pin is the base64 SHA-256 of the certificate's public key")
    return value


def tls_context(ca_file: Path | None, pin: str | None) -> ssl.SSLContext:
    """Verification on (hostname and chain), TLS >= 1.2, and the pin if given."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if pin is not None:
        expected = normalize_pin(pin).encode("ascii")

        class PinnedSocket(ssl.SSLSocket):
            def do_handshake(self, block: bool = False) -> None:
                super().do_handshake(block)
                der = self.getpeercert(binary_form=True)
                got = crypto.certificate_pin(der).encode("ascii") if der else b""
                if not crypto.constant_time_equal(got, expected):
                    raise PinMismatchError("the server certificate does not match the pin")

        ctx.sslsocket_class = PinnedSocket
    return ctx


@dataclass(slots=True)
class Session:
    """Tokens of one login. ``repr`` shows no token."""

    access_token: str = field(repr=False)
    access_expires_ms: int
    refresh_token: str = field(repr=False)
    refresh_expires_ms: int

    @classmethod
    def from_tokens(cls, tokens: protocol.SessionTokens) -> Session:
        return cls(
            tokens["access_token"], protocol.parse_time(tokens["access_expires_at"]),
            tokens["refresh_token"], protocol.parse_time(tokens["refresh_expires_at"]),
        )  # fmt: skip


# The connection ended during the handshake (dropped, reset, the server restarting): the
# network failed, not the certificate check, so "offline" (and a retry), not tls_error.
_CUT_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def _no_constant(name: str) -> Any:
    """Python's json reads ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON and
    which no Tacit server sends; numbers like these broke the KDF parser (an
    OverflowError), so an answer holding one is malformed."""
    raise ValueError(f"not JSON: {name}")


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _CUT_IN_HANDSHAKE):
            return False
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class HttpTransport:
    """One server; unauthenticated calls always work, authenticated ones need
    ``session`` (set by login, or loaded from the vault by app/sync/service.py)."""

    def __init__(
        self, server_url: str, *, ca_file: Path | None = None, pin: str | None = None,
        timeout: float | httpx.Timeout = TIMEOUT_S, session: Session | None = None,
        on_tokens: Callable[[Session], None] | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:  # fmt: skip
        self.origin = protocol.canonical_origin(server_url)
        try:
            verify: ssl.SSLContext | bool = tls_context(ca_file, pin)
        except (OSError, ValueError):
            raise TlsError("the CA file or the pin could not be used") from None
        if not self.origin.startswith("https://"):
            verify = False  # plain http: loopback development only (the server refuses more)
        self._http = httpx.Client(base_url=self.origin, verify=verify, timeout=timeout)
        self.session = session
        self._on_tokens = on_tokens
        self._refresh_lock = threading.Lock()
        self._now_ms = now_ms or _system_ms
        # The server's clock (its Date header) at the last answer, for the offline lease.
        self.server_time: datetime | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------
    def _send(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
        token: str | None = None, control: str | None = None, timeout: float | None = None,
    ) -> Any:  # fmt: skip
        """One request; ``None`` for a ``204``. ``control``: the device control token (its
        own header, never with a bearer token)."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if control is not None:
            headers[protocol.CONTROL_TOKEN_HEADER] = control
        extra: dict[str, Any] = {}
        if timeout is not None:  # a long poll reads for longer than other requests
            extra["timeout"] = httpx.Timeout(timeout, connect=self._http.timeout.connect)
        try:
            response = self._http.request(
                method, path, json=body, params=params, headers=headers, **extra
            )
        except httpx.TransportError as exc:
            if _is_tls_failure(exc):
                raise TlsError() from None
            raise OfflineError() from None
        self.server_time = _server_date(response) or self.server_time
        if response.status_code == 204:
            return None
        try:
            doc = json.loads(response.content, parse_constant=_no_constant)
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError):
            doc = None
        if response.is_success:
            if doc is None:
                raise protocol.ApiError("the sync server sent a malformed answer")
            return doc
        raise protocol.error_from_envelope(response.status_code, doc)

    def _authed(self, method: str, path: str, **kwargs: Any) -> Any:
        session = self._fresh_session()
        try:
            return self._send(method, path, token=session.access_token, **kwargs)
        except protocol.TokenExpiredError:
            session = self.refresh(stale=session)
            return self._send(method, path, token=session.access_token, **kwargs)

    def _fresh_session(self) -> Session:
        session = self.session
        if session is None:
            raise protocol.UnauthorizedError("not signed in")
        if session.access_expires_ms - REFRESH_MARGIN_MS <= self._now_ms():
            return self.refresh(stale=session)
        return session

    def refresh(self, *, stale: Session | None = None) -> Session:
        """Rotate the tokens (one refresh at a time). If another thread refreshed while
        this one waited, its tokens are used instead of refreshing again."""
        with self._refresh_lock:
            session = self.session
            if session is None:
                raise protocol.UnauthorizedError("not signed in")
            if stale is not None and session is not stale:
                return session
            body: protocol.RefreshRequest = {"refresh_token": session.refresh_token}
            tokens = cast(protocol.SessionTokens, self._send("POST", protocol.PATH_AUTH_REFRESH,
                                                             body=body))  # fmt: skip
            fresh = Session.from_tokens(tokens)
            if self._on_tokens is not None:
                self._on_tokens(fresh)  # stored before it is used
            self.session = fresh
            return fresh

    def call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:  # fmt: skip
        """One request to a route without a typed wrapper here (practice mode's, in
        app/sync/practice_api.py): with the session's bearer token unless ``auth`` is
        False. Raises the route's ApiError, OfflineError, TlsError."""
        if auth:
            return self._authed(method, path, body=body, params=params)
        return self._send(method, path, body=body, params=params)

    # -- unauthenticated -----------------------------------------------------------------
    def health(self) -> protocol.HealthResponse:
        return cast(protocol.HealthResponse, self._send("GET", protocol.PATH_HEALTH))

    def signup(self, body: protocol.SignupRequest) -> protocol.SignupResponse:
        return cast(protocol.SignupResponse, self._send("POST", protocol.PATH_ACCOUNTS, body=body))

    def auth_params(self, username: str) -> protocol.KdfParamsResponse:
        doc = self._send("GET", protocol.PATH_AUTH_PARAMS, params={"username": username})
        return cast(protocol.KdfParamsResponse, doc)

    def challenge(self, username: str) -> protocol.ChallengeResponse:
        body: protocol.ChallengeRequest = {"username": username}
        return cast(protocol.ChallengeResponse,
                    self._send("POST", protocol.PATH_AUTH_CHALLENGE, body=body))  # fmt: skip

    def login(self, body: protocol.LoginRequest) -> protocol.LoginResponse:
        tokens = cast(protocol.LoginResponse,
                      self._send("POST", protocol.PATH_AUTH_LOGIN, body=body))  # fmt: skip
        self.session = Session.from_tokens(tokens)
        return tokens

    # -- authenticated ---------------------------------------------------------------------
    def logout(self) -> None:
        self._authed("POST", protocol.PATH_AUTH_LOGOUT, body={})

    def devices(self) -> list[protocol.Device]:
        return cast(list[protocol.Device], self._authed("GET", protocol.PATH_DEVICES))

    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        return cast(protocol.PullResponse, self._authed("GET", protocol.PATH_ITEMS, params=params))

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        body: protocol.PushRequest = {"items": items}
        return cast(protocol.PushResponse,
                    self._authed("POST", protocol.PATH_ITEMS_BATCH, body=body))  # fmt: skip

    def get_item(self, item_id: str) -> protocol.Item:
        return cast(protocol.Item, self._authed("GET", protocol.item_path(item_id)))

    # -- devices, orders, escrow (docs/PROTOCOL.md, "Devices, orders and escrow") --------
    def signing_key(self) -> protocol.SigningKeyResponse:
        """The registered account signing key. Raises SigningKeyMissingError."""
        return cast(protocol.SigningKeyResponse, self._authed("GET", protocol.PATH_SIGNING_KEY))

    def put_signing_key(self, body: protocol.SigningKeyRequest) -> protocol.SigningKeyResponse:
        return cast(protocol.SigningKeyResponse,
                    self._authed("PUT", protocol.PATH_SIGNING_KEY, body=body))  # fmt: skip

    def send_order(self, device_id: str, body: protocol.SignedOrder) -> protocol.Device:
        path = protocol.device_orders_path(device_id)
        return cast(protocol.Device, self._authed("POST", path, body=body))

    def remove_device(self, device_id: str, reauth: protocol.Reauth) -> protocol.Device:
        path = protocol.device_remove_path(device_id)
        return cast(protocol.Device, self._authed("POST", path, body=reauth))

    # -- account key epochs (docs/PROTOCOL.md, "Account key epochs") --------------------
    def key_epochs(self) -> list[dict[str, Any]]:
        """The account's key epochs after the first: ``[{"epoch", "kdf", "created_at"}]``."""
        doc = self._authed("GET", protocol.PATH_KEY_EPOCHS)
        epochs = doc.get("epochs") if isinstance(doc, dict) else None
        if not isinstance(epochs, list):
            raise protocol.ApiError("the sync server sent a malformed list of key epochs")
        return epochs

    def add_key_epoch(self, epoch: int, kdf: protocol.KdfParams) -> dict[str, Any]:
        """Register the next key epoch; the server signs out the account's other sessions.
        Raises EpochConflictError when another device registered that number first."""
        doc = self._authed("POST", protocol.PATH_KEY_EPOCHS, body={"epoch": epoch, "kdf": kdf})
        return cast(dict[str, Any], doc)

    def new_escrow_key(self) -> protocol.EscrowKeyResponse:
        return cast(protocol.EscrowKeyResponse,
                    self._authed("POST", protocol.PATH_SELF_ESCROW, body={}))  # fmt: skip

    # -- with the device control token (works while the sessions are revoked) -----------
    def pending_order(self, control: str, wait: int = 0) -> protocol.SignedOrder | None:
        """The pending lock or wipe order, or None (``204`` after ``wait`` seconds)."""
        wait = max(0, min(int(wait), protocol.MAX_ORDER_WAIT_S))
        doc = self._send("GET", protocol.PATH_SELF_ORDER, params={"wait": wait},
                         control=control, timeout=wait + TIMEOUT_S)  # fmt: skip
        return cast(protocol.SignedOrder | None, doc)

    def ack_order(self, control: str, order_id: str, state: str) -> None:
        body = {"order_id": order_id, "state": state}
        self._send("POST", protocol.PATH_SELF_ORDER_ACK, body=body, control=control)

    def release_escrow(
        self, control: str, reauth: protocol.Reauth
    ) -> protocol.EscrowReleaseResponse:
        doc = self._send("POST", protocol.PATH_SELF_ESCROW_RELEASE, body=reauth, control=control)
        release = cast(protocol.EscrowReleaseResponse, doc)
        self.session = Session.from_tokens(release["session"])
        return release


def _server_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _system_ms() -> int:
    import time

    return int(time.time() * 1000)
