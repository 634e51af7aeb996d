"""The certificate pin, end to end: the real ``tacit`` CLI against a real
``python -m app.sync.server`` over TLS (trustme certificates) on 127.0.0.1.

A pin is the base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (the
``curl --pinnedpubkey sha256//…`` form). The expected pins here are computed
independently of the app (``cryptography`` on the certificate the server presents), so
the tests also pin down the format. A refused pin must be a ``tls_error`` (exit 12) and
must refuse before a request is sent: the server's rate-limit counters, which every
processed request bumps, are compared before and after.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import sqlite3
import ssl
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.sync.server.helpers import RunningServer, running_server, running_server_from_ca
from tests.test_cli import Result, Tacit

ACCOUNT_PASSWORD = "orbit violet lantern 77 cascade"
# A well-formed pin of no key in these tests (SHA-256 of nothing in particular).
WRONG_PIN = base64.b64encode(hashlib.sha256(b"some other key").digest()).decode()


def served_pin(srv: RunningServer) -> str:
    """The pin of the certificate the server presents, as an operator would compute it
    (``openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256 | base64``)."""
    parts = urlsplit(srv.url)
    host, port = str(parts.hostname), int(parts.port or 443)
    ctx = ssl.create_default_context(cafile=str(srv.ca_file))
    # The server prints its URL once the socket is bound, a moment before uvicorn
    # listens on it: retry a refused connection briefly.
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=10)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock, ctx.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    spki = x509.load_der_x509_certificate(der).public_key()
    raw = spki.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(raw).digest()).decode()


def server_rows(srv: RunningServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def requests_seen(srv: RunningServer) -> list[Any]:
    """Every request the server processes (signup, params, challenge, login, refresh,
    and any authenticated call) bumps a rate-limit row: a snapshot of all of them."""
    return sorted(server_rows(srv, "SELECT key, window_start, hits FROM rate_limits"))


class Device(Tacit):
    def __init__(self, base: Path, srv: RunningServer) -> None:
        base.mkdir(parents=True)
        super().__init__(base)
        self.srv = srv
        self.env["TACIT_ACCOUNT_PASSWORD"] = ACCOUNT_PASSWORD
        self.ok("init")

    def run(self, *args: str) -> Result:
        return self("--json", *args)

    def create(self, username: str, *extra: str) -> Result:
        return self.run("account", "create", "--server", self.srv.url, "--ca-file",
                        str(self.srv.ca_file), "--username", username, *extra)  # fmt: skip

    def login(self, username: str, *extra: str) -> Result:
        return self.run("account", "login", "--server", self.srv.url, "--ca-file",
                        str(self.srv.ca_file), "--username", username, *extra)  # fmt: skip

    def status(self) -> dict[str, Any]:
        doc = self.ok("account", "status")
        assert isinstance(doc, dict)
        return doc

    def note(self, body: str) -> str:
        client = self.ok("client", "add", f"Pin Client {uuid.uuid4().hex[:6]}")
        assert isinstance(client, dict)
        doc = self.ok("note", "new", "--client", str(client["id"]), "--template", "soap",
                      stdin=body)  # fmt: skip
        assert isinstance(doc, dict)
        return str(doc["id"])

    def sync(self) -> dict[str, Any]:
        doc = self.ok("sync")
        assert isinstance(doc, dict)
        return doc

    def pending_notes(self) -> int:
        """Notes in the outbox (each CLI run also queues its own audit entries)."""
        doc = self.ok("sync", "status")
        assert isinstance(doc, dict)
        return int(doc["pending_by_kind"].get("note", 0))


def _user() -> str:
    return f"pin-{uuid.uuid4().hex[:10]}"


def _signed_up(d: Device, *pin: str) -> dict[str, Any]:
    """Create an account (with ``--pin`` if given) and sign in with a TOTP code."""
    user = _user()
    created = d.create(user, *pin)
    assert created.code == 0, created.err
    doc = created.json
    assert isinstance(doc, dict)
    totp = pyotp.parse_uri(doc["totp_uri"]).now()
    login = d.login(user, "--totp", totp)
    assert login.code == 0, login.err
    return {**doc, "username": user}


def test_the_right_pin_is_accepted_stored_and_sync_works(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as srv:
        pin = served_pin(srv)
        a, b = Device(tmp_path / "a", srv), Device(tmp_path / "b", srv)
        # the curl form at sign-up; stored without the prefix, reused by login and sync
        account = _signed_up(a, "--pin", f"sha256//{pin}")
        assert a.status()["pin"] == pin
        note = a.note("pinned sync text")
        assert a.sync()["pushed"] >= 1
        # the bare form at login, on a second device
        login = b.login(account["username"], "--pin", pin, "--recovery-code",
                        account["recovery_codes"][0])  # fmt: skip
        assert login.code == 0, login.err
        assert b.status()["pin"] == pin
        assert b.sync()["pulled"] >= 1
        shown = b.ok("note", "show", note)
        assert isinstance(shown, dict) and shown["body"] == "pinned sync text"


def test_a_wrong_pin_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server") as srv:
        pin = served_pin(srv)
        assert pin != WRONG_PIN
        d = Device(tmp_path / "d", srv)
        user = _user()
        before = requests_seen(srv)
        for form in (WRONG_PIN, f"sha256//{WRONG_PIN}"):
            refused = d.create(user, "--pin", form)
            assert refused.code == 12 and refused.error["code"] == "tls_error", refused.err
        # the right pin does not stand in for the chain: no CA file, no trust
        no_ca = d.run("account", "create", "--server", srv.url, "--pin", pin, "--username", user)
        assert no_ca.code == 12 and no_ca.error["code"] == "tls_error", no_ca.err
        assert requests_seen(srv) == before  # not even /v1/accounts was processed
        assert server_rows(srv, "SELECT id FROM accounts") == []
        assert d.status()["linked"] is False
        # a malformed pin is a usage error, found before any connection
        malformed = d.create(user, "--pin", "sha256//not-a-pin")
        assert malformed.code == 2 and malformed.error["code"] == "usage", malformed.err

        # an existing account: signing in with a wrong pin sends nothing either (no
        # KDF parameters asked for, no challenge, no session)
        account = _signed_up(d, "--pin", pin)
        sessions = server_rows(srv, "SELECT id, access_hash FROM sessions")
        before = requests_seen(srv)
        refused = d.login(account["username"], "--pin", WRONG_PIN, "--recovery-code",
                          account["recovery_codes"][0])  # fmt: skip
        assert refused.code == 12 and refused.error["code"] == "tls_error", refused.err
        assert requests_seen(srv) == before
        assert server_rows(srv, "SELECT id, access_hash FROM sessions") == sessions
        # the refused login left the stored pin (and the session) as they were
        status = d.status()
        assert status["pin"] == pin and status["signed_in"] is True
        d.note("still syncing with the right pin")
        assert d.sync()["pushed"] >= 1


def test_a_pin_kept_at_login_refuses_a_server_restarted_with_another_key(
    tmp_path: Path,
) -> None:
    """Same URL, same CA, same database; only the server's key changed (a certificate
    mis-issued by the trusted CA looks exactly like this). The pinned vault refuses it
    and keeps its outbox; an unpinned vault trusts it (so the refusal is the pin's)."""
    ca = trustme.CA()
    with running_server_from_ca(ca, tmp_path / "one") as first:
        old_pin = served_pin(first)
        pinned, plain = Device(tmp_path / "pinned", first), Device(tmp_path / "plain", first)
        account = _signed_up(pinned, "--pin", old_pin)
        _signed_up(plain)
        assert plain.status()["pin"] is None
        pinned.note("before the restart")
        assert pinned.sync()["pushed"] >= 1
        port = urlsplit(first.url).port
    assert port is not None
    with running_server_from_ca(ca, tmp_path / "two", port=port, db_url=first.db_url) as second:
        assert second.url == first.url
        new_pin = served_pin(second)
        assert new_pin != old_pin
        pinned.note("after the restart")
        assert pinned.pending_notes() == 1
        before = requests_seen(second)
        refused = pinned.run("sync")
        assert refused.code == 12 and refused.error["code"] == "tls_error", refused.err
        assert requests_seen(second) == before  # the access token was never sent
        assert pinned.pending_notes() == 1  # the change stays queued
        assert plain.sync()["conflicts"] == 0  # same CA, no pin: accepted
        # Re-pinning is an explicit act: sign in again with the new pin.
        login = pinned.login(account["username"], "--pin", new_pin, "--recovery-code",
                             account["recovery_codes"][0])  # fmt: skip
        assert login.code == 0, login.err
        assert pinned.status()["pin"] == new_pin
        assert pinned.sync()["pushed"] >= 1
        assert pinned.pending_notes() == 0
