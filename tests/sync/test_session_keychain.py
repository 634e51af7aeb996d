"""Where the sync session's refresh token lives, end to end (app/sync/account.py).

- With a real OS keychain (gnome-keyring's Secret Service on a private D-Bus session
  from ``dbus-run-session``, with a throwaway HOME; ``PYTHON_KEYRING_BACKEND`` unset so
  ``keyring`` finds it): the refresh token is in the keychain only, never in the vault's
  session storage nor in plaintext in any file; refreshing rotates it there, and the
  old token is refused by the server.
- Without one (keyring's fail and null backends): the token lives inside the vault
  (SQLCipher), and sync keeps working across process runs and refreshes.

The access token is expired the way the server decides it (``sessions.access_expires_at``
in its database: the server has no lifetime switch or clock hook in the process), and,
in the fallback test, also from the client's side (the expiry kept in the vault), so both
the reactive (``token_expired``) and the proactive refresh paths run.

The keychain test is skipped with a loud reason where dbus-run-session or gnome-keyring
is missing, and fails instead under CI=1 (.ci/run installs both).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from app.sync import protocol
from tests.conftest import PASSPHRASE
from tests.sync.server.helpers import REPO_ROOT, RunningServer, running_server

ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"

# Keeps the private bus alive until its stdin is closed; gnome-keyring-daemon exits
# with the bus. The login keyring is created (and unlocked) with a throwaway password.
SESSION_SCRIPT = r"""
set -eu
printf '%s' "$KEYRING_UNLOCK" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
echo "bus $DBUS_SESSION_BUS_ADDRESS"
exec cat >/dev/null
"""

# Run in the same environment as the CLI (so in the same D-Bus session, through the
# same keyring backend): what the keychain holds for a vault.
KEYCHAIN_READER = r"""
import json, sys, keyring
backend = keyring.get_keyring()
print(json.dumps({
    "backend": f"{type(backend).__module__}.{type(backend).__name__}",
    "token": backend.get_password("tacit", f"sync-refresh:{sys.argv[1]}"),
}))
"""

# What the vault keeps of the session (its sync settings), read through the app with
# the vault unlocked; with ``expire`` also moves the access token's expiry (as the
# client sees it) into the past.
VAULT_READER = r"""
import json, os, sys
from pathlib import Path
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
vault = VaultService(Path(os.environ["TACIT_VAULT"]))
vault.unlock(Passphrase.from_str(os.environ["TACIT_PASSPHRASE"]))
try:
    store = vault.sync_store()
    if sys.argv[1:] == ["expire"]:
        doc = json.loads(store.get("session"))
        doc["access_expires_ms"] = 0
        store.put({"session": json.dumps(doc)})
    print(json.dumps({k: store.get(k) for k in ("session", "refresh_in", "refresh_token")}))
finally:
    vault.lock()
"""


# A keyring backend that keeps secrets in a plaintext file, as keyrings.alt's
# PlaintextKeyring does (keyring picks that one by itself where keyrings.alt is installed
# and no OS keychain is, or a keyringrc.cfg / PYTHON_KEYRING_BACKEND may name it). Written
# to the test's directory, so it is not part of the code base.
PLAINTEXT_BACKEND = r"""
import json, os
from pathlib import Path
from keyring.backend import KeyringBackend

class Keyring(KeyringBackend):
    priority = 1

    @property
    def path(self):
        return Path(os.environ["HOME"]) / "plaintext-keyring.json"

    def _all(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service, username):
        return self._all().get(f"{service} {username}")

    def set_password(self, service, username, password):
        items = self._all()
        items[f"{service} {username}"] = password
        self.path.write_text(json.dumps(items))

    def delete_password(self, service, username):
        items = self._all()
        items.pop(f"{service} {username}", None)
        self.path.write_text(json.dumps(items))
"""


class Device:
    """A vault driven through the real CLI, in a given environment (not inherited from
    the test process, whose keyring is pointed at the null backend)."""

    def __init__(self, base: Path, srv: RunningServer, env: dict[str, str]) -> None:
        self.base = base
        self.srv = srv
        tmp = base / "tmp"
        tmp.mkdir(parents=True)
        self.env = {
            **env,
            "PYTHONPATH": str(REPO_ROOT),
            "TACIT_VAULT": str(base / "vault"),
            "TACIT_PASSPHRASE": PASSPHRASE,
            "TACIT_ACCOUNT_PASSWORD": ACCOUNT_PASSWORD,
            "TACIT_INSECURE_TEST_KDF": "1",
            "TMPDIR": str(tmp),
        }

    def python(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv], cwd=self.base, env=self.env, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip

    def run(self, *args: str) -> tuple[int, Any, str]:
        proc = self.python("-m", "app.cli", "--json", *args)
        assert "Traceback" not in proc.stderr, proc.stderr
        out = json.loads(proc.stdout) if proc.returncode == 0 else None
        return proc.returncode, out, proc.stderr

    def ok(self, *args: str) -> Any:
        code, out, err = self.run(*args)
        assert code == 0, err
        return out

    def error(self, *args: str) -> tuple[int, str]:
        code, _, err = self.run(*args)
        assert code != 0
        return code, str(json.loads(err.strip().splitlines()[-1])["error"]["code"])

    def sign_up(self) -> dict[str, Any]:
        user = f"kc-{uuid.uuid4().hex[:10]}"
        tls = ("--server", self.srv.url, "--ca-file", str(self.srv.ca_file), "--username", user)
        created = self.ok("account", "create", *tls)
        totp = pyotp.parse_uri(created["totp_uri"]).now()
        return dict(self.ok("account", "login", *tls, "--totp", totp))

    def note(self, body: str) -> None:
        client = self.ok("client", "add", f"Key Client {uuid.uuid4().hex[:6]}")
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", "--json", "note", "new", "--client",
             str(client["id"]), "--template", "soap"],
            input=body, cwd=self.base, env=self.env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    def keychain_token(self, vault_id: str) -> tuple[str, str | None]:
        proc = self.python("-c", KEYCHAIN_READER, vault_id)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        return str(doc["backend"]), doc["token"]

    def vault_session(self, *mode: str) -> dict[str, str | None]:
        proc = self.python("-c", VAULT_READER, *mode)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))


# -- the private Secret Service --------------------------------------------------------
def _missing_secret_service() -> str | None:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install dbus gnome-keyring)"
    return None


def require_secret_service() -> None:
    missing = _missing_secret_service()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the keychain session test: {missing}")
        pytest.skip(f"NO REAL KEYCHAIN TEST: {missing}")


@contextlib.contextmanager
def secret_service(base: Path) -> Iterator[dict[str, str]]:
    """A D-Bus session with an unlocked gnome-keyring in a throwaway HOME; yields the
    environment a process needs to use it (and nothing from the test process's own)."""
    home, runtime = base / "home", base / "run"
    home.mkdir(parents=True)
    runtime.mkdir(mode=0o700)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(runtime),
    }
    with (base / "session.err").open("wb") as err:
        proc = subprocess.Popen(
            ["dbus-run-session", "--", "bash", "-c", SESSION_SCRIPT], cwd=base,
            env={**env, "KEYRING_UNLOCK": "throwaway-login-keyring"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)  # fmt: skip
        reader.start()
        reader.join(30)
        if not lines or not lines[0].startswith("bus "):
            raise AssertionError(
                f"no D-Bus session: {lines!r} {(base / 'session.err').read_text()[-2000:]}"
            )
        yield {**env, "DBUS_SESSION_BUS_ADDRESS": lines[0].removeprefix("bus ").strip()}
    finally:
        proc.stdin.close()  # cat ends, bash ends, dbus-run-session takes the bus down
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# -- the server's side -----------------------------------------------------------------
def server_rows(srv: RunningServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def live_refresh_hash(srv: RunningServer, account_id: str) -> bytes:
    (row,) = server_rows(srv, "SELECT refresh_hash FROM sessions WHERE account_id = ?",
                         (account_id,))  # fmt: skip
    return bytes(row[0])


def sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def expire_access_token(srv: RunningServer, account_id: str) -> None:
    """What an hour's wait does: the server now answers ``token_expired`` to it."""
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        changed = conn.execute(
            "UPDATE sessions SET access_expires_at = ? WHERE account_id = ?",
            (int(time.time() * 1000) - 1000, account_id),
        ).rowcount
    assert changed == 1


def refresh_with(srv: RunningServer, token: str) -> httpx.Response:
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    with httpx.Client(base_url=srv.url, verify=ctx, timeout=30) as http:
        return http.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": token})


def assert_refused_as_reused(srv: RunningServer, token: str) -> None:
    response = refresh_with(srv, token)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "token_reused"


def assert_nowhere_in_plaintext(root: Path, *tokens: str) -> list[Path]:
    """No file under ``root`` holds a token: as text, as its raw bytes, or as hex.
    Returns the files read."""
    needles: list[bytes] = []
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        needles += [token.encode(), raw, raw.hex().encode()]
    scanned = []
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue  # sockets and the like
        data = path.read_bytes()
        scanned.append(path)
        for needle in needles:
            assert needle not in data, f"a session token in plaintext in {path}"
    assert any(p.name == "vault.db" for p in scanned)  # the vault's database was read
    return scanned


def _start_server(base: Path) -> contextlib.AbstractContextManager[RunningServer]:
    base.mkdir()
    return running_server(base)


# -- tests -----------------------------------------------------------------------------
def test_the_refresh_token_lives_in_the_os_keychain_and_rotates_there(tmp_path: Path) -> None:
    require_secret_service()
    with _start_server(tmp_path / "server") as srv, secret_service(tmp_path / "s") as env:
        home = Path(env["HOME"])
        d = Device(home / "work", srv, env)  # inside HOME: one scan covers both
        d.ok("init")
        status = d.ok("status")
        assert status["keychain_available"] is True, status  # the Secret Service works
        vault_id = str(status["vault_id"])
        account_id = str(d.sign_up()["account_id"])

        assert d.ok("account", "status")["refresh_token_in"] == "keychain"
        backend, token = d.keychain_token(vault_id)
        assert "SecretService" in backend, backend
        assert token and live_refresh_hash(srv, account_id) == sha256(token)
        stored = d.vault_session()
        assert stored["refresh_in"] == "keychain"
        assert stored["refresh_token"] is None
        assert stored["session"] is not None and token not in stored["session"]
        scanned = assert_nowhere_in_plaintext(tmp_path, token)
        # gnome-keyring's own file was read too (it encrypts what it keeps)
        assert any(p.suffix == ".keyring" for p in scanned)

        d.note("keychain session text")
        assert d.ok("sync")["pushed"] >= 1  # the access token still valid: no refresh
        assert d.keychain_token(vault_id)[1] == token

        expire_access_token(srv, account_id)
        d.note("after the access token expired")
        assert d.ok("sync")["pushed"] >= 1  # refreshed on token_expired, then retried
        _, rotated = d.keychain_token(vault_id)
        assert rotated and rotated != token
        assert live_refresh_hash(srv, account_id) == sha256(rotated)
        stored = d.vault_session()
        assert stored["refresh_in"] == "keychain" and stored["refresh_token"] is None
        assert d.ok("account", "status")["refresh_token_in"] == "keychain"
        assert_nowhere_in_plaintext(tmp_path, token, rotated)
        assert d.ok("sync")["conflicts"] == 0  # and again, in a new process

        # The old refresh token is dead; presenting it is reuse: the session ends.
        assert_refused_as_reused(srv, token)
        assert d.error("sync") == (10, "unauthorized")
        # Signing out removes the keychain entry and the vault's session.
        assert d.ok("account", "logout") == {"signed_in": False}
        assert d.keychain_token(vault_id)[1] is None
        assert d.vault_session() == {"session": None, "refresh_in": None, "refresh_token": None}


@pytest.mark.parametrize(
    "backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]
)
def test_without_a_keychain_the_refresh_token_stays_inside_the_vault(
    tmp_path: Path, backend: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHON_KEYRING_BACKEND": backend}
    with _start_server(tmp_path / "server") as srv:
        d = Device(home / "work", srv, env)
        d.ok("init")
        assert d.ok("status")["keychain_available"] is False
        account_id = str(d.sign_up()["account_id"])
        assert d.ok("account", "status")["refresh_token_in"] == "vault"
        stored = d.vault_session()
        token = stored["refresh_token"]
        assert stored["refresh_in"] == "vault" and token
        assert live_refresh_hash(srv, account_id) == sha256(token)
        assert_nowhere_in_plaintext(tmp_path, token)  # SQLCipher: encrypted at rest

        # Sync works across process runs (each one loads the session from the vault).
        d.note("fallback session text")
        assert d.ok("sync")["pushed"] >= 1
        assert d.ok("sync")["conflicts"] == 0
        assert d.vault_session()["refresh_token"] == token

        # Proactive refresh: the client sees its access token expired.
        d.vault_session("expire")
        assert d.ok("sync")["conflicts"] == 0
        second = d.vault_session()["refresh_token"]
        assert second and second != token
        assert live_refresh_hash(srv, account_id) == sha256(second)

        # Reactive refresh: the server says the access token expired.
        expire_access_token(srv, account_id)
        d.note("after the server expired the access token")
        assert d.ok("sync")["pushed"] >= 1
        third = d.vault_session()["refresh_token"]
        assert third and third not in (token, second)
        assert live_refresh_hash(srv, account_id) == sha256(third)
        assert d.ok("account", "status")["refresh_token_in"] == "vault"
        assert_nowhere_in_plaintext(tmp_path, token, second, third)

        assert_refused_as_reused(srv, second)
        assert d.error("sync") == (10, "unauthorized")
        assert d.ok("account", "logout") == {"signed_in": False}
        assert d.vault_session() == {"session": None, "refresh_in": None, "refresh_token": None}


def test_a_file_backed_keyring_is_not_a_keychain(tmp_path: Path) -> None:
    """keyring configured with a backend that writes a plaintext file: the refresh token
    must stay inside the vault (encrypted), not go to that file."""
    home = tmp_path / "home"
    (home / "backend").mkdir(parents=True)
    (home / "backend" / "plainfile.py").write_text(PLAINTEXT_BACKEND)
    env = {"PATH": os.environ["PATH"], "HOME": str(home),
           "PYTHON_KEYRING_BACKEND": "plainfile.Keyring"}  # fmt: skip
    with _start_server(tmp_path / "server") as srv:
        d = Device(home / "work", srv, env)
        d.env["PYTHONPATH"] = os.pathsep.join((str(REPO_ROOT), str(home / "backend")))
        d.ok("init")
        vault_id = str(d.ok("status")["vault_id"])
        account_id = str(d.sign_up()["account_id"])
        backend, in_file = d.keychain_token(vault_id)
        assert backend == "plainfile.Keyring"  # keyring really is using it
        assert in_file is None
        assert d.ok("account", "status")["refresh_token_in"] == "vault"
        token = d.vault_session()["refresh_token"]
        assert token and live_refresh_hash(srv, account_id) == sha256(token)
        assert_nowhere_in_plaintext(tmp_path, token)
        d.note("file-backed keyring text")
        assert d.ok("sync")["pushed"] >= 1


def _backend_from(module: str, **attrs: Any) -> object:
    return type("Keyring", (), {"__module__": module, **attrs})()


def test_only_os_keychain_backends_count_as_a_keychain() -> None:
    from app.vault.keychain import is_os_keychain

    secret_service = _backend_from("keyring.backends.SecretService")
    macos = _backend_from("keyring.backends.macOS")
    plaintext = _backend_from("keyrings.alt.file")
    for os_backend in (secret_service, macos, _backend_from("keyring.backends.Windows")):
        assert is_os_keychain(os_backend)
    for other in (plaintext, _backend_from("keyring.backends.null"),
                  _backend_from("keyring.backends.fail"), _backend_from("plainfile")):  # fmt: skip
        assert not is_os_keychain(other)
    # a chain writes to the next backend when one fails: all of them must be keychains
    chain = "keyring.backends.chainer"
    assert is_os_keychain(_backend_from(chain, backends=[secret_service, macos]))
    assert not is_os_keychain(_backend_from(chain, backends=[secret_service, plaintext]))
    assert not is_os_keychain(_backend_from(chain, backends=[]))
