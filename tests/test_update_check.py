"""The update check (app/update.py, ``tacit update``): off by default, nothing sent while
off, and when on, one bare GET that carries nothing identifying.

A loopback HTTP server (127.0.0.1, a free port, a bounded lifetime) records every
request it gets; the tests assert on exactly what reached it.
"""

from __future__ import annotations

import getpass
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app import __version__, update
from app.errors import InvalidInputError, UsageError

# What a bare GET from httpx may carry; anything else would be something we added.
GENERIC_HEADERS = {"host", "accept", "accept-encoding", "connection", "user-agent"}


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    body: bytes = b""
    status: int = 200
    extra_headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    state = FeedServer(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(
                Recorded(self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            self.send_response(state.status)
            for name, value in state.extra_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopper = threading.Timer(60, server.shutdown)  # stops by itself, whatever happens
    stopper.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/feed.json"
    state.body = feed("9.9.9")
    try:
        yield state
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


def feed(version: str, **extra: object) -> bytes:
    return json.dumps({"latest": {"version": version, **extra}}).encode()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config folder: the real one is never read or written."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(update.FEED_URL_ENV, raising=False)
    return tmp_path


def assert_anonymous(request: Recorded) -> None:
    assert request.path == "/feed.json"  # no query string: not even the version
    assert set(request.headers) <= GENERIC_HEADERS, request.headers
    assert request.headers["user-agent"] == update.USER_AGENT
    assert "cookie" not in request.headers
    assert "authorization" not in request.headers
    sent = request.path + " ".join(request.headers.values())
    for identifying in (__version__, socket.gethostname(), getpass.getuser()):
        assert identifying not in sent


def test_off_by_default(config: Path) -> None:
    settings = update.load_settings()
    assert settings.enabled is False
    assert not settings.due(now=1e9)
    assert not update.settings_path().exists()


def test_nothing_is_requested_while_off(config: Path, feed_server: FeedServer) -> None:
    with pytest.raises(UsageError) as caught:
        update.check(url=feed_server.url)
    assert caught.value.details["reason"] == "disabled"
    assert update.check_if_due() is None
    update.set_enabled(True, feed_url=feed_server.url)
    update.set_enabled(False)
    assert update.check_if_due() is None
    with pytest.raises(UsageError):
        update.check()
    assert feed_server.requests == []


def test_a_check_sends_nothing_identifying(config: Path, feed_server: FeedServer) -> None:
    update.set_enabled(True, feed_url=feed_server.url)
    # A cookie set by the feed and a .netrc entry for its host must never come back.
    feed_server.extra_headers = {"Set-Cookie": "tracker=abc123; Path=/"}
    netrc = config / "home" / ".netrc"
    netrc.parent.mkdir()
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    first = update.check()
    second = update.check()
    assert len(feed_server.requests) == 2
    for request in feed_server.requests:
        assert_anonymous(request)
    assert first.newer and first.latest == "9.9.9" and first.current == __version__
    assert second.to_dict() == first.to_dict()


def test_versions_are_compared_locally(config: Path, feed_server: FeedServer) -> None:
    update.set_enabled(True, feed_url=feed_server.url)
    feed_server.body = feed("0.0.1", url="https://example.org/r", security=True)
    result = update.check()
    assert not result.newer
    assert "up to date" in result.message()
    feed_server.body = feed(__version__ + ".1", url="https://example.org/r", security=True)
    result = update.check()
    assert result.newer and result.security and result.url == "https://example.org/r"
    assert "security update" in result.message()


def test_automatic_checks_at_most_daily(config: Path, feed_server: FeedServer) -> None:
    update.set_enabled(True, feed_url=feed_server.url)
    now = 2_000_000_000.0
    assert update.check_if_due(now=now) is not None
    assert update.check_if_due(now=now + 3600) is None  # within the day: nothing sent
    assert len(feed_server.requests) == 1
    assert update.check_if_due(now=now + update.CHECK_INTERVAL_S) is not None
    assert len(feed_server.requests) == 2


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (302, b""),  # a redirect is not followed
        (404, b""),
        (200, b"not json"),
        (200, feed("latest")),
        (200, b'{"latest": {}}'),
        (200, b"[" * (update.MAX_FEED_BYTES + 10)),
    ],
)
def test_bad_answers_are_refused(
    config: Path, feed_server: FeedServer, status: int, body: bytes
) -> None:
    update.set_enabled(True, feed_url=feed_server.url)
    feed_server.status, feed_server.body = status, body
    if status == 302:
        feed_server.extra_headers = {"Location": feed_server.url + "?next"}
    with pytest.raises(InvalidInputError):
        update.check()
    assert len(feed_server.requests) == 1


def test_parse_version_orders_numerically() -> None:
    assert update.parse_version("0.10.0") > update.parse_version("0.9.9")
    assert update.parse_version("1.0") == update.parse_version("1.0.0")
    for bad in ("1.0-beta", "v1.0", "", "1..2"):
        with pytest.raises(InvalidInputError):
            update.parse_version(bad)


def test_a_bad_settings_file_means_off(config: Path) -> None:
    path = update.settings_path()
    path.parent.mkdir(parents=True)
    for text in ("not json", "[]", '{"enabled": "yes"}', '{"enabled": 1}'):
        path.write_text(text)
        assert update.load_settings().enabled is False
    with pytest.raises(UsageError):
        update.set_enabled(True, feed_url="file:///etc/passwd")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def test_cli(config: Path, feed_server: FeedServer) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config / "config"), "HOME": str(config / "home")}
    env["TACIT_VAULT"] = str(config / "no-vault")
    off = run_cli("update", "check", "--url", feed_server.url, "--json", env=env)
    assert off.returncode == 2
    assert json.loads(off.stderr)["error"]["reason"] == "disabled"
    assert feed_server.requests == []
    status = run_cli("update", "status", "--json", env=env)
    assert json.loads(status.stdout)["enabled"] is False
    on = run_cli("update", "enable", "--url", feed_server.url, "--json", env=env)
    assert json.loads(on.stdout) == {"enabled": True, "feed_url": feed_server.url,
                                     "last_checked": None}  # fmt: skip
    checked = run_cli("update", "check", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["newer"] is True
    assert len(feed_server.requests) == 1
    assert_anonymous(feed_server.requests[0])
    assert run_cli("update", "disable", env=env).returncode == 0
    assert run_cli("update", "check", env=env).returncode == 2
    assert len(feed_server.requests) == 1
    assert not (config / "no-vault").exists()


def test_settings_dialog_turns_the_check_on_and_off(config: Path, qtbot: Any) -> None:
    from app.ui.prefs import Preferences
    from app.ui.settings_dialog import SettingsDialog

    applied: list[Preferences] = []
    dialog = SettingsDialog(Preferences(), applied.append)
    qtbot.addWidget(dialog)
    assert not dialog.updates.isChecked()  # off by default
    dialog.accept()
    assert not update.settings_path().exists()  # unchanged: nothing written
    dialog = SettingsDialog(Preferences(), applied.append)
    qtbot.addWidget(dialog)
    dialog.updates.setChecked(True)
    dialog.accept()
    assert update.load_settings().enabled
    dialog = SettingsDialog(Preferences(), applied.append)
    qtbot.addWidget(dialog)
    assert dialog.updates.isChecked()
    dialog.updates.setChecked(False)
    dialog.accept()
    assert not update.load_settings().enabled
    assert len(applied) == 3
