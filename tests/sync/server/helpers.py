"""Test helpers: a manual clock, a thin client for the API, and a test account that holds
its login key and TOTP secret the way a real client would (the login key here is random;
a real client derives it from the account password with Argon2id)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

with warnings.catch_warnings():
    # Starlette's TestClient warns at import that it will move to httpx2; not ours.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from app.sync import protocol
from app.sync.server.asgi import create_app
from app.sync.server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]
ORIGIN = "https://tacit.test"
START = 1_767_603_600.0  # 2026-01-05 09:00:00 UTC
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class ManualClock:
    """Seconds since the epoch; moves only when told to."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def raw_public_key(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_device(name: str = "laptop") -> dict[str, str]:
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "public_key": protocol.b64encode(raw_public_key(Ed25519PrivateKey.generate())),
    }


def weak_kdf(salt: bytes = b"s" * 16, **overrides: Any) -> dict[str, Any]:
    return {
        "algorithm": "argon2id",
        "version": 19,
        "memory_kib": 8,
        "iterations": 1,
        "parallelism": 1,
        "salt": protocol.b64encode(salt),
        **overrides,
    }


@dataclass
class Account:
    username: str
    key: Ed25519PrivateKey
    account_id: str
    totp_secret: str
    recovery_codes: list[str]
    device: dict[str, str]
    last_step: int | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    def sign(self, challenge_b64: str, origin: str = ORIGIN) -> str:
        message = protocol.login_message(origin, protocol.b64decode(challenge_b64))
        return protocol.b64encode(self.key.sign(message))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}


class Api:
    """A TestClient plus the steps of the protocol, as a client would perform them."""

    def __init__(self, client: TestClient, clock: ManualClock) -> None:
        self.client = client
        self.clock = clock

    # plain requests -------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # protocol steps ---------------------------------------------------------------------
    def signup(self, username: str | None = None, **overrides: Any) -> Account:
        key = Ed25519PrivateKey.generate()
        username = username or f"user-{uuid.uuid4().hex[:12]}"
        device = overrides.pop("device", None) or new_device()
        body = {
            "username": username,
            "login_public_key": protocol.b64encode(raw_public_key(key)),
            "kdf": weak_kdf(),
            "device": device,
            **overrides,
        }
        r = self.post(protocol.PATH_ACCOUNTS, json=body)
        assert r.status_code == 201, r.text
        doc = r.json()
        secret = pyotp.parse_uri(doc["totp_uri"]).secret
        return Account(
            username.lower(), key, doc["account_id"], secret, doc["recovery_codes"], device
        )

    def challenge(self, username: str) -> dict[str, Any]:
        r = self.post(protocol.PATH_AUTH_CHALLENGE, json={"username": username})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def fresh_totp(self, account: Account) -> str:
        """A TOTP code for a time step this account has not used yet (moves the clock)."""
        step = int(self.clock()) // 30
        if account.last_step is not None and step <= account.last_step:
            self.clock.advance(30 * (account.last_step - step + 1))
        return pyotp.TOTP(account.totp_secret).at(self.clock())

    def login_response(
        self,
        account: Account,
        *,
        totp: str | None = None,
        recovery_code: str | None = None,
        origin: str = ORIGIN,
        device: dict[str, str] | None = None,
        signature: str | None = None,
        second_factor: bool = True,
    ) -> httpx.Response:
        ch = self.challenge(account.username)
        body: dict[str, Any] = {
            "challenge_id": ch["challenge_id"],
            "username": account.username,
            "signature": signature or account.sign(ch["challenge"], origin),
            "device": device or account.device,
        }
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        elif second_factor:
            body["totp"] = totp or self.fresh_totp(account)
        return self.post(protocol.PATH_AUTH_LOGIN, json=body)

    def login(self, account: Account, **kwargs: Any) -> dict[str, str]:
        r = self.login_response(account, **kwargs)
        assert r.status_code == 200, r.text
        if kwargs.get("recovery_code") is None:
            account.last_step = int(self.clock()) // 30
        account.tokens = dict(r.json())
        return account.tokens

    def account(self, username: str | None = None) -> Account:
        """Sign up and log in."""
        acct = self.signup(username)
        self.login(acct)
        return acct


@contextlib.contextmanager
def make_api(
    db_url: str, clock: ManualClock, *, client_ip: str = "198.51.100.7", **settings: Any
) -> Iterator[Api]:
    app = create_app(Settings(db_url=db_url, origin=ORIGIN, clock=clock, **settings))
    with TestClient(
        app, base_url=ORIGIN, client=(client_ip, 50000), raise_server_exceptions=False
    ) as client:
        yield Api(client, clock)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str)
    return str(body["error"]["code"])


# --- a real server process over TLS (also usable by end-to-end tests) -----------------
@dataclass(frozen=True)
class RunningServer:
    url: str  # e.g. https://127.0.0.1:41234
    ca_file: Path  # trust this CA to verify the server's certificate
    db_url: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def running_server(
    tmp_path: Path, *, db_url: str | None = None, extra_args: Sequence[str] = ()
) -> Iterator[RunningServer]:
    """Start ``python -m app.sync.server`` on 127.0.0.1 (a free port) with a trustme
    certificate; stop it (SIGTERM, then SIGKILL) on exit. Weak KDF parameters allowed."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(key_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    ca.cert_pem.write_to_path(str(ca_file))
    db_url = db_url or f"sqlite:///{tmp_path / 'server.sqlite3'}"
    env = {**os.environ, "TACIT_INSECURE_TEST_KDF": "1", "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "app.sync.server", "--db", db_url, "--host", "127.0.0.1"]
    argv += ["--port", "0", "--tls-cert", str(cert_file), "--tls-key", str(key_file)]
    with _serve([*argv, *extra_args], env, ca_file, db_url) as server:
        yield server


@contextlib.contextmanager
def _serve(
    argv: list[str], env: dict[str, str], ca_file: Path, db_url: str
) -> Iterator[RunningServer]:
    """Run the server process until the block ends (SIGTERM, then SIGKILL)."""
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = _read_listening_line(proc)
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        yield RunningServer(url, ca_file, db_url, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _read_listening_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if not ready or "listening on" not in ready[0]:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise AssertionError(f"the server did not start: {ready!r}\n{err[-3000:]}")
    return ready[0]


@contextlib.contextmanager
def running_server_from_ca(
    ca: Any, tmp_path: Path, *, port: int = 0, db_url: str | None = None
) -> Iterator[RunningServer]:
    """Like ``running_server``, but with a given ``trustme.CA``, port and database: each
    call issues a new certificate (with a new key) from that CA, so a server can be
    restarted on the same URL, trusted by the same CA file, with a different key."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tmp_path.mkdir(parents=True, exist_ok=True)
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(ca_file))
    db_url = db_url or f"sqlite:///{tmp_path / 'server.sqlite3'}"
    env = {**os.environ, "TACIT_INSECURE_TEST_KDF": "1", "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "app.sync.server", "--db", db_url, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--tls-cert", str(cert_file), "--tls-key", str(key_file)]
    with _serve(argv, env, ca_file, db_url) as server:
        yield server
