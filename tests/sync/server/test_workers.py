"""The server with several worker processes (``--workers N``): one listening socket, any
worker answers any request (all state is in the database), a worker that dies is
replaced, SIGTERM stops them all; and the refusals that keep a bad start from turning
into workers restarted for ever."""

from __future__ import annotations

import os
import pickle
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import protocol
from app.sync.server import main as server_main
from app.sync.server.settings import Settings
from tests.sync.server.helpers import new_device, raw_public_key, running_server, weak_kdf


def _workers(supervisor: int) -> set[int]:
    """The supervisor's worker processes (its children running multiprocessing's spawn
    entry point; the resource tracker is a child too, and is not a worker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == supervisor and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _sign_up_and_log_in(url: str, verify: ssl.SSLContext) -> str:
    """Sign up and log in, each request on a new connection (so, with several workers,
    the challenge and the login are likely answered by different processes). Returns
    the access token."""

    def post(path: str, body: dict[str, object]) -> httpx.Response:
        with httpx.Client(base_url=url, verify=verify, timeout=10) as client:
            return client.post(path, json=body)

    key = Ed25519PrivateKey.generate()
    device = new_device("workers-test")
    r = post(
        protocol.PATH_ACCOUNTS,
        {
            "username": "workers-user",
            "login_public_key": protocol.b64encode(raw_public_key(key)),
            "kdf": weak_kdf(),
            "device": device,
        },
    )
    assert r.status_code == 201, r.text
    secret = pyotp.parse_uri(r.json()["totp_uri"]).secret
    ch = post(protocol.PATH_AUTH_CHALLENGE, {"username": "workers-user"}).json()
    origin = protocol.canonical_origin(url)
    signature = key.sign(protocol.login_message(origin, protocol.b64decode(ch["challenge"])))
    r = post(
        protocol.PATH_AUTH_LOGIN,
        {
            "challenge_id": ch["challenge_id"],
            "username": "workers-user",
            "signature": protocol.b64encode(signature),
            "totp": pyotp.TOTP(secret).now(),
            "device": device,
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_share_the_socket_and_the_database_and_are_replaced(tmp_path: Path) -> None:
    with running_server(tmp_path, extra_args=["--workers", "2"]) as server:
        supervisor = server.process.pid
        _wait_for(lambda: len(_workers(supervisor)) == 2)
        first = _workers(supervisor)
        verify = ssl.create_default_context(cafile=str(server.ca_file))
        token = _sign_up_and_log_in(server.url, verify)
        auth = {"Authorization": f"Bearer {token}"}
        item = {
            "id": "0b7e7c4e-2f5d-4a53-9d53-8c1b3b9a0f11",
            "kind": "note",
            "expected_etag": None,
            "deleted": False,
            "key_id": "items-1",
            "blob": protocol.b64encode(b"ciphertext"),
        }
        with httpx.Client(base_url=server.url, verify=verify, timeout=10) as client:
            r = client.post(protocol.PATH_ITEMS_BATCH, json={"items": [item]}, headers=auth)
            assert r.status_code == 200, r.text

        # A worker killed outright is replaced; the other one answers meanwhile.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: len(_workers(supervisor) - {victim}) == 2)
        assert victim not in _workers(supervisor)
        for _ in range(6):  # fresh connections: whichever worker takes them
            with httpx.Client(base_url=server.url, verify=verify, timeout=10) as client:
                r = client.get(protocol.PATH_ITEMS, headers=auth)
                assert r.status_code == 200, r.text
                assert [i["id"] for i in r.json()["items"]] == [item["id"]]

        workers = _workers(supervisor)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.parametrize("workers", [0, -1, server_main.MAX_WORKERS + 1])
def test_run_refuses_a_bad_worker_count(
    workers: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = server_main.run(
        str(tmp_path / "s.sqlite3"), "127.0.0.1", 0, None, None, None, workers=workers
    )
    assert status == server_main.EXIT_USAGE
    assert "--workers" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite3").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bad_tls_pair_is_refused_before_serving(workers: str, tmp_path: Path) -> None:
    """Not a traceback (one worker), not workers restarted for ever (several)."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    tls = ["--tls-cert", str(bad), "--tls-key", str(bad)]
    proc = subprocess.run(
        [*server_main_argv(tmp_path), "--workers", workers, *tls],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == server_main.EXIT_USAGE
    assert "cannot load the TLS certificate and key" in proc.stderr
    assert "Traceback" not in proc.stderr


def server_main_argv(tmp_path: Path) -> list[str]:
    db = f"sqlite:///{tmp_path / 's.sqlite3'}"
    return [sys.executable, "-m", "app.sync.server", "--db", db, "--port", "0"]


def test_the_worker_factory_carries_only_the_url_and_origin() -> None:
    """The supervisor pickles it to each worker: it must pickle, and carry nothing but
    the two settings the command line sets (a test clock or weakened limits must not
    silently reach production workers, and cannot: they are not in it)."""
    settings = Settings(
        db_url="sqlite:///x.sqlite3", origin="https://sync.example.org", lockout_failures=1
    )
    factory = server_main._worker_app_factory(settings)
    clone = pickle.loads(pickle.dumps(factory))  # noqa: S301 - our own bytes
    assert clone.args == ("sqlite:///x.sqlite3", "https://sync.example.org")
    assert not clone.keywords
