"""The /account web page in a real browser: Debian's Chromium (/usr/bin/chromium), driven
headless by Playwright (never a downloaded browser), against a real
``python -m app.sync.server`` on 127.0.0.1 (plain HTTP on loopback, a secure context).

The account and its two devices are made by Python code (``app.vault.crypto``'s
``derive_account_keys`` and the protocol's login message), so a sign-in that succeeds in
the browser proves that the page's Argon2id + HKDF + Ed25519 give the same login key as
the Python client, byte for byte. The account signing key is registered from Python
(HKDF-SHA256 of the master key, empty salt, ``SIGNING_KEY_HKDF_INFO``), so an order the
server accepts from the page, and that verifies here against the Python-derived key over
``protocol.order_message``, proves the page's canonical JSON and signing key match too.

Without Chromium or Playwright the module is skipped with a loud reason, and fails when
the CI environment variable is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.sync import protocol
from app.vault import crypto
from tests.sync.server.helpers import REPO_ROOT, _read_listening_line, new_device

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WEB_DIR = REPO_ROOT / "app" / "sync" / "server" / "web"
# A password with a combining accent: Python derives from the NFC form, the browser is
# given the decomposed (NFD) form and must normalise it the same way.
PASSWORD = "orbit violet lantern 77 caf\u00e9"
PASSWORD_TYPED = unicodedata.normalize("NFD", PASSWORD)
# The Python client's insecure test parameters (crypto.INSECURE_TEST_PARAMS): the server
# accepts them under TACIT_INSECURE_TEST_KDF=1.
KDF = crypto.INSECURE_TEST_PARAMS
TIMEOUT_MS = 20_000


def _browser_missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return (
            "BROWSER TESTS SKIPPED: no /usr/bin/chromium (apt-get install chromium; "
            "packaging/system-deps.sh installs it; CI requires it)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "BROWSER TESTS SKIPPED: playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _browser_missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason.replace("SKIPPED", "MISSING (CI is set)"))
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Playwright gives each launch a fresh, empty user-data directory.
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server process on http://127.0.0.1:PORT (loopback: no TLS needed, and the
    browser treats it as a secure context, so Web Crypto is available)."""
    db = tmp_path_factory.mktemp("web") / "server.sqlite3"
    env = {**os.environ, "TACIT_INSECURE_TEST_KDF": "1", "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "app.sync.server", "--db", f"sqlite:///{db}"]
    proc = subprocess.Popen(
        [*argv, "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _read_listening_line(proc)
        yield line.split("listening on ", 1)[1].split(" ", 1)[0].rstrip("/")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# --- the Python side: an account with two devices, as a client makes it -----------------
def _hkdf(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 with no salt: how the protocol derives keys from the master key."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(ikm)


def _uuid_from(raw: bytes) -> str:
    b = bytearray(raw[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


@dataclass
class Owner:
    """An account made from PASSWORD, with devices A and B logged in."""

    url: str
    username: str
    account_id: str
    totp_secret: str
    recovery_codes: list[str]
    master: bytes
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> info+tokens

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(
            _hkdf(self.master, protocol.SIGNING_KEY_HKDF_INFO)
        )

    @property
    def web_device_id(self) -> str:
        return _uuid_from(_hkdf(self.master, b"tacit/v1/web-device/id", 16))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.devices[name]['access_token']}"}

    def control(self, name: str) -> dict[str, str]:
        return {protocol.CONTROL_TOKEN_HEADER: self.devices[name]["control_token"]}

    def devices_by_name(self, asking: str = "laptop B") -> dict[str, dict[str, Any]]:
        with self.client() as http:
            r = http.get(protocol.PATH_DEVICES, headers=self.bearer(asking))
        assert r.status_code == 200, r.text
        return {d["name"]: d for d in r.json()}


def make_owner(url: str, *, register_signing_key: bool = True) -> Owner:
    salt = os.urandom(16)
    master, login_key = crypto.derive_account_keys(crypto.Passphrase.from_str(PASSWORD), salt, KDF)
    username = f"dr-{uuid.uuid4().hex[:10]}@example.org"
    infos = {name: new_device(name) for name in ("laptop A", "laptop B")}
    with httpx.Client(base_url=url, timeout=30) as http:
        r = http.post(
            protocol.PATH_ACCOUNTS,
            json={
                "username": username,
                "login_public_key": protocol.b64encode(login_key.public_key()),
                "kdf": {**KDF.to_dict(), "salt": protocol.b64encode(salt)},
                "device": infos["laptop A"],
            },
        )
        assert r.status_code == 201, r.text
        doc = r.json()
        owner = Owner(
            url,
            username,
            doc["account_id"],
            pyotp.parse_uri(doc["totp_uri"]).secret,
            list(doc["recovery_codes"]),
            master.reveal(),
        )
        # Recovery codes for the Python logins: each TOTP step can be used once, and the
        # browser needs the current one.
        for name, info in infos.items():
            ch = http.post(protocol.PATH_AUTH_CHALLENGE, json={"username": username}).json()
            signature = crypto.login_signature(
                login_key, protocol.canonical_origin(url), protocol.b64decode(ch["challenge"])
            )
            r = http.post(
                protocol.PATH_AUTH_LOGIN,
                json={
                    "challenge_id": ch["challenge_id"],
                    "username": username,
                    "signature": protocol.b64encode(signature),
                    "recovery_code": owner.recovery_codes.pop(),
                    "device": info,
                },
            )
            assert r.status_code == 200, r.text
            owner.devices[name] = {**info, **r.json()}
        if register_signing_key:
            key = owner.signing_key
            proof = key.sign(protocol.signing_key_proof_message(owner.account_id))
            r = http.put(
                protocol.PATH_SIGNING_KEY,
                headers=owner.bearer("laptop B"),
                json={
                    "public_key": protocol.b64encode(key.public_key().public_bytes_raw()),
                    "proof": protocol.b64encode(proof),
                },
            )
            assert r.status_code == 200, r.text
    # Once the Python client derives the signing key itself, it must be this very key.
    client_derivation = getattr(crypto, "account_signing_key", None)
    if client_derivation is not None:
        seed = client_derivation(master)
        assert seed.public_key() == owner.signing_key.public_key().public_bytes_raw()
        seed.wipe()
    master.wipe()
    login_key.wipe()
    return owner


def current_totp(owner: Owner) -> str:
    return pyotp.TOTP(owner.totp_secret).now()


def wrong_totp(owner: Owner) -> str:
    totp = pyotp.TOTP(owner.totp_secret)
    now = time.time()
    valid = {totp.at(now + 30 * offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


# --- the browser side ---------------------------------------------------------------
@dataclass
class PageRun:
    page: Any
    requests: list[tuple[str, str, dict[str, str], bytes]]  # method, url, headers, body
    console: list[str]


@contextlib.contextmanager
def open_page(browser: Any, url: str) -> Iterator[PageRun]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    run = PageRun(page, [], [])
    page.on(
        "request",
        lambda r: run.requests.append(
            (r.method, r.url, dict(r.headers), r.post_data_buffer or b"")
        ),
    )
    page.on("console", lambda m: run.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: run.console.append(f"pageerror: {e}"))
    try:
        page.goto(url + "/account")
        page.wait_for_selector("#signin-button:not([disabled])")
        yield run
    finally:
        context.close()


def sign_in(run: PageRun, owner: Owner, *, password: str = PASSWORD_TYPED, code: str) -> None:
    page = run.page
    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Account password").fill(password)
    page.get_by_label("Authenticator code, or a recovery code").fill(code)
    page.get_by_role("button", name="Sign in").click()


def row(run: PageRun, device_id: str) -> Any:
    return run.page.locator(f'tr[data-device-id="{device_id}"]')


def assert_nothing_secret_sent_or_kept(run: PageRun) -> None:
    forms = {PASSWORD, PASSWORD_TYPED}
    needles = [f.encode() for f in forms]
    needles += [json.dumps(f).encode() for f in forms]  # as a JSON string, \u-escaped
    needles += [json.dumps(f, ensure_ascii=False).encode() for f in forms]
    needles += [quote(f).encode() for f in forms] + [quote_plus(f).encode() for f in forms]
    needles.append(b"orbit")  # the password's first word, in any encoding
    for method, url, headers, body in run.requests:
        blob = b"\n".join([method.encode(), url.encode(), json.dumps(headers).encode(), body])
        for needle in needles:
            assert needle not in blob, f"the password went out in {method} {url}"
    kept = run.page.evaluate(
        """() => [localStorage.length, sessionStorage.length, document.cookie,
                  performance.getEntriesByType("resource").map(e => e.name).join(" ")]"""
    )
    assert kept[:3] == [0, 0, ""], kept
    assert "orbit" not in kept[3]
    assert run.page.context.cookies() == []


# --- tests ------------------------------------------------------------------------------
def test_sign_in_lists_devices_locks_one_and_the_order_verifies_in_python(
    browser: Any, server_url: str
) -> None:
    owner = make_owner(server_url)
    a, b = owner.devices["laptop A"], owner.devices["laptop B"]
    with open_page(browser, server_url) as run:
        page = run.page
        sign_in(run, owner, code=current_totp(owner))
        page.wait_for_selector("#account:not([hidden])")
        assert page.locator("#error").is_hidden()
        assert page.input_value("#password") == ""  # cleared as soon as it was read

        # Both devices, and the page's own (derived, so the same one in every browser).
        for device in (a, b):
            assert row(run, device["id"]).locator("td").nth(0).inner_text() == device["name"]
            assert row(run, device["id"]).locator("td.state").inner_text() == "active"
        web = row(run, owner.web_device_id)
        assert web.locator("td").nth(0).inner_text() == "Account web page (this page)"
        assert web.locator("button").count() == 0  # it cannot order itself
        assert page.locator("#signing-key-note").is_hidden()  # registered key == derived

        # Lock A.
        page.get_by_role("button", name="Lock laptop A").click()
        row(run, a["id"]).locator("td.state", has_text="lost").wait_for()
        assert "waiting for the device" in row(run, a["id"]).locator("td").nth(4).inner_text()

        # The API agrees: A is lost, its session is gone, and its pending order is the
        # browser's, signed over protocol.order_message by the Python-derived key.
        listed = owner.devices_by_name()["laptop A"]
        assert listed["state"] == "lost" and listed["order"]["action"] == "lock"
        with owner.client() as http:
            assert (
                http.get(protocol.PATH_DEVICES, headers=owner.bearer("laptop A")).status_code == 401
            )
            r = http.get(protocol.PATH_SELF_ORDER, headers=owner.control("laptop A"))
            assert r.status_code == 200, r.text
            signed = r.json()
            order = signed["order"]
            assert order["device_id"] == a["id"] and order["account_id"] == owner.account_id
            assert order["action"] == "lock" and order["order_id"] == listed["order"]["id"]
            owner.signing_key.public_key().verify(
                protocol.b64decode(signed["signature"]), protocol.order_message(order)
            )
            # Byte for byte: the page's canonical JSON of this order is Python's.
            browser_bytes = page.evaluate(
                "o => Array.from(window.TacitAccountPage.canonicalOrder(o))", order
            )
            assert bytes(browser_bytes) == protocol.canonical_order(order)
            # A takes the order and says so: the page shows when it took effect.
            r = http.post(
                protocol.PATH_SELF_ORDER_ACK,
                headers=owner.control("laptop A"),
                json={"order_id": order["order_id"], "state": "locked"},
            )
            assert r.status_code == 200, r.text
        page.get_by_role("button", name="Refresh").click()
        row(run, a["id"]).locator("td.state", has_text="locked").wait_for()
        assert "took effect" in row(run, a["id"]).locator("td").nth(4).inner_text()

        # Restore it: the flag clears (the device re-authenticates on its own later).
        page.get_by_role("button", name="Restore laptop A").click()
        row(run, a["id"]).locator("td.state", has_text="active").wait_for()
        assert owner.devices_by_name()["laptop A"]["state"] == "active"
        assert owner.devices_by_name()["laptop B"]["state"] == "active"

        assert_nothing_secret_sent_or_kept(run)
        assert not [m for m in run.console if "Content Security Policy" in m or "pageerror" in m]

        # Sign out: the server session ends and the page forgets everything.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#signin:not([hidden])")
        assert page.locator("#device-rows tr").count() == 0
        logout = [r for r in run.requests if r[1].endswith(protocol.PATH_AUTH_LOGOUT)]
        assert len(logout) == 1


def test_wrong_password_and_wrong_totp_each_show_a_clear_error(
    browser: Any, server_url: str
) -> None:
    owner = make_owner(server_url)
    with open_page(browser, server_url) as run:
        page = run.page
        sign_in(run, owner, password="orbit violet lantern 78 cafe", code=current_totp(owner))
        page.wait_for_selector("#error:not([hidden])")
        assert page.locator("#error").inner_text() == "Wrong username or password."
        assert page.locator("#account").is_hidden()

        sign_in(run, owner, code=wrong_totp(owner))
        page.get_by_text("Wrong authenticator code").wait_for()
        assert page.locator("#account").is_hidden()
        assert page.locator("#error").get_attribute("role") == "alert"
        assert page.input_value("#password") == ""

        # The right pair still works afterwards (two failures are below the lockout).
        sign_in(run, owner, code=current_totp(owner))
        page.wait_for_selector("#account:not([hidden])")
        assert_nothing_secret_sent_or_kept(run)
    logins = [r for r in run.requests if r[1].endswith(protocol.PATH_AUTH_LOGIN)]
    assert len(logins) == 3


def test_first_sign_in_with_a_recovery_code_registers_the_derived_signing_key(
    browser: Any, server_url: str
) -> None:
    owner = make_owner(server_url, register_signing_key=False)
    with open_page(browser, server_url) as run:
        sign_in(run, owner, code=owner.recovery_codes.pop().lower().replace("-", " "))
        run.page.wait_for_selector("#account:not([hidden])")
        assert run.page.locator("#signing-key-note").is_hidden()
        with owner.client() as http:
            r = http.get(protocol.PATH_SIGNING_KEY, headers=owner.bearer("laptop B"))
        assert r.status_code == 200, r.text
        expected = owner.signing_key.public_key().public_bytes_raw()
        assert protocol.b64decode(r.json()["public_key"]) == expected
        # And an order from the page goes through against that key.
        b = owner.devices["laptop B"]
        run.page.once("dialog", lambda d: d.accept())  # the wipe confirmation
        run.page.get_by_role("button", name="Wipe laptop B").click()
        row(run, b["id"]).locator("td.state", has_text="lost").wait_for()
        listed = owner.devices_by_name(asking="laptop A")
        assert (
            listed["laptop B"]["state"] == "lost"
            and listed["laptop B"]["order"]["action"] == "wipe"
        )
        assert listed["laptop A"]["state"] == "active"
        assert row(run, b["id"]).locator("button").count() == 0  # a pending wipe is final


def test_a_mismatched_signing_key_disables_orders(browser: Any, server_url: str) -> None:
    owner = make_owner(server_url, register_signing_key=False)
    other = Ed25519PrivateKey.generate()
    with owner.client() as http:
        r = http.put(
            protocol.PATH_SIGNING_KEY,
            headers=owner.bearer("laptop B"),
            json={
                "public_key": protocol.b64encode(other.public_key().public_bytes_raw()),
                "proof": protocol.b64encode(
                    other.sign(protocol.signing_key_proof_message(owner.account_id))
                ),
            },
        )
        assert r.status_code == 200, r.text
    with open_page(browser, server_url) as run:
        sign_in(run, owner, code=current_totp(owner))
        run.page.wait_for_selector("#account:not([hidden])")
        assert (
            "not the one your password derives"
            in run.page.locator("#signing-key-note").inner_text()
        )
        assert run.page.get_by_role("button", name="Lock laptop A").is_disabled()


def test_the_page_builds_canonical_orders_exactly_as_python(browser: Any, server_url: str) -> None:
    def good(**overrides: Any) -> dict[str, Any]:
        return {
            "v": 1,
            "order_id": str(uuid.uuid4()),
            "account_id": str(uuid.uuid4()),
            "device_id": str(uuid.uuid4()),
            "action": "lock",
            "issued_at": protocol.format_time(1_767_603_600_123),
            **overrides,
        }

    accepted = [
        good(),
        good(action="wipe"),
        good(action="restore", issued_at="2030-12-31T23:59:59.999Z"),
    ]
    refused = [
        good(v="1"),
        good(v=True),
        good(v=2),
        good(order_id=str(uuid.uuid4()).upper()),
        good(action="LOCK"),
        good(issued_at="2026-01-05T09:00:00Z"),
        good(issued_at="2026-01-05T09:00:00.000+00:00"),
        good(extra="x"),
        {k: v for k, v in good().items() if k != "v"},
    ]
    with open_page(browser, server_url) as run:
        script = """o => { try { return Array.from(window.TacitAccountPage.canonicalOrder(o)); }
                            catch (e) { return null; } }"""
        for order in accepted:
            assert bytes(run.page.evaluate(script, order)) == protocol.canonical_order(order)  # type: ignore[arg-type]
        for order in refused:
            assert run.page.evaluate(script, order) is None, order
            with pytest.raises(ValueError, match="order"):
                protocol.canonical_order(order)  # type: ignore[arg-type]
        origin = run.page.evaluate("() => window.TacitAccountPage.pageOrigin()")
        assert origin == protocol.canonical_origin(server_url + "/account")


def test_security_headers_no_inline_code_and_the_vendored_asset(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as http:
        page = http.get("/account")
        assets = {
            name: http.get(f"/account/assets/{name}")
            for name in ("account.js", "account.css", "argon2.umd.min.js", "hash-wasm-LICENSE.txt")
        }
        assert http.get("/account/assets/../web_routes.py").status_code == 404
        assert http.get("/account/assets/account.html").status_code == 404
        assert http.post("/account", data={"password": "x"}).status_code == 405
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for response in (page, *assets.values()):
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self' 'wasm-unsafe-eval'" in csp
        assert "unsafe-inline" not in csp and "'unsafe-eval'" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert "set-cookie" not in response.headers
    assert assets["account.js"].headers["content-type"].startswith("text/javascript")
    html = page.text
    assert "{{" not in html
    assert 'data-kdf-min-memory-kib="8"' in html  # the server's (test) floor
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(" src=" in s for s in scripts)
    assert all(
        not body.strip() for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    )
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers
    # The vendored code is what packaging/web's lock file names (make web-assets).
    vendor = WEB_DIR / "vendor"
    for line in (vendor / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
    lock = json.loads((REPO_ROOT / "packaging" / "web" / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/hash-wasm"]
    assert entry["license"] == "MIT" and entry["integrity"].startswith("sha512-")
    assert assets["argon2.umd.min.js"].content == (vendor / "argon2.umd.min.js").read_bytes()
    assert b"MIT License" in assets["hash-wasm-LICENSE.txt"].content


def test_the_page_argon2id_matches_python_with_two_lanes(browser: Any, server_url: str) -> None:
    """The accounts above use one lane; real clients use p = 2 (hash-wasm computes the
    lanes one after the other, which must give the same bytes)."""
    params = crypto.KdfParams(memory_kib=4096, iterations=2, parallelism=2)
    salt = bytes(range(16))
    expected = crypto.argon2id(crypto.Passphrase.from_str(PASSWORD), salt, params).hex()
    with open_page(browser, server_url) as run:
        got = run.page.evaluate(
            """([password, salt]) => window.hashwasm.argon2id({
                 password: new TextEncoder().encode(password.normalize("NFC")),
                 salt: new Uint8Array(salt), parallelism: 2, iterations: 2,
                 memorySize: 4096, hashLength: 32, outputType: "hex"})""",
            [PASSWORD_TYPED, list(salt)],
        )
    assert got == expected
