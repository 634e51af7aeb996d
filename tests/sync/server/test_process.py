"""The server as a real process: ``python -m app.sync.server`` on 127.0.0.1 over TLS with
a trustme CA, spoken to with httpx verifying that CA; and the entry points' refusals."""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import protocol
from app.sync.server.main import run
from tests.sync.server.helpers import (
    REPO_ROOT,
    new_device,
    raw_public_key,
    running_server,
    weak_kdf,
)


def test_real_server_over_tls(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert server.url.startswith("https://127.0.0.1:")
        # Without trusting the test CA the connection is refused.
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=server.url) as untrusting:
            untrusting.get(protocol.PATH_HEALTH)
        verify = ssl.create_default_context(cafile=str(server.ca_file))
        with httpx.Client(base_url=server.url, verify=verify, timeout=10) as client:
            assert client.get(protocol.PATH_HEALTH).json()["ok"] is True
            key = Ed25519PrivateKey.generate()
            device = new_device("process-test")
            r = client.post(
                protocol.PATH_ACCOUNTS,
                json={
                    "username": "proc-user",
                    "login_public_key": protocol.b64encode(raw_public_key(key)),
                    "kdf": weak_kdf(),
                    "device": device,
                },
            )
            assert r.status_code == 201, r.text
            secret = pyotp.parse_uri(r.json()["totp_uri"]).secret
            ch = client.post(protocol.PATH_AUTH_CHALLENGE, json={"username": "proc-user"}).json()
            # The client binds its signature to the origin *it* connected to.
            origin = protocol.canonical_origin(server.url)
            assert ch["origin"] == origin
            signature = key.sign(
                protocol.login_message(origin, protocol.b64decode(ch["challenge"]))
            )
            r = client.post(
                protocol.PATH_AUTH_LOGIN,
                json={
                    "challenge_id": ch["challenge_id"],
                    "username": "proc-user",
                    "signature": protocol.b64encode(signature),
                    "device": device,
                    "totp": pyotp.TOTP(secret).now(),
                },
            )
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            item_id = str(uuid.uuid4())
            r = client.post(
                protocol.PATH_ITEMS_BATCH,
                headers=auth,
                json={
                    "items": [
                        {
                            "id": item_id,
                            "kind": "note",
                            "expected_etag": None,
                            "deleted": False,
                            "key_id": "k",
                            "blob": protocol.b64encode(b"sealed"),
                        }
                    ]
                },
            )
            assert r.json()["results"][0]["status"] == "ok"
            pulled = client.get(protocol.PATH_ITEMS, headers=auth).json()
            assert [i["id"] for i in pulled["items"]] == [item_id]
    assert server.process.returncode == 0


def test_migrate_entry_point(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    argv = [sys.executable, "-m", "app.sync.server", "migrate", "--db", url]
    first = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "schema version" in first.stdout
    second = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert (second.returncode, "up to date" in second.stdout) == (0, True)


def test_run_refuses_plain_http_off_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert run(url, "0.0.0.0", 0, None, None, None) == 2  # noqa: S104 - the point of the test
    assert "refusing" in capsys.readouterr().err
    assert run(url, "127.0.0.1", 0, tmp_path / "cert.pem", None, None) == 2
    assert "both" in capsys.readouterr().err
    assert not (tmp_path / "r.sqlite3").exists()  # refused before touching anything


def test_migrate_refuses_a_newer_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from app.sync.server.db import open_database
    from app.sync.server.main import migrate
    from app.sync.server.migrations import LATEST_VERSION

    url = f"sqlite:///{tmp_path / 'n.sqlite3'}"
    assert migrate(url) == 0
    db = open_database(url)
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)",
            (LATEST_VERSION + 1,),
        )
    db.close()
    capsys.readouterr()
    assert migrate(url) == 8
    assert "newer" in capsys.readouterr().err
