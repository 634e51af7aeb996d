"""``tacit selftest`` (app/selftest.py, app/cliship.py): the known answers are the
published ones, every check catches the breakage it is there for, the report holds no
personal data, the vault is never touched, and a failure exits 15.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from app import cli, selftest
from app.vault import crypto, db

CHECK_NAMES = [name for name, _ in selftest.CHECKS]


def hkdf_reference(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 written out with hmac, independent of app/vault/crypto.py."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:length]


def test_pinned_label_vectors_are_independently_right() -> None:
    ikm = bytes(range(32))
    for name, expected in selftest.LABEL_VECTORS.items():
        label = getattr(crypto, name).encode("ascii")
        assert hkdf_reference(ikm, selftest.LABEL_SALT, label).hex() == expected, name
    for name, expected in selftest.INFO_VECTORS.items():
        assert hkdf_reference(ikm, b"", getattr(crypto, name)).hex() == expected, name
    a3 = hkdf_reference(bytes([0x0B] * 22), b"", b"", 42).hex()
    assert a3.startswith(selftest.HKDF_RFC5869_A3)
    assert hashlib.sha256(b"abc").hexdigest() == selftest.SHA256_ABC


def test_the_released_labels_are_pinned() -> None:
    # Every label vaults, accounts and practices depend on: a label added to the crypto
    # module without a pinned vector here fails this test.
    released = {"LABEL_PASSPHRASE_KEK", "LABEL_RECOVERY_KEK", "LABEL_HEADER_MAC",
                "LABEL_AUDIT_CHAIN", "LABEL_ACCOUNT_MASTER", "LABEL_ACCOUNT_LOGIN",
                "LABEL_ACCOUNT_EPOCH", "LABEL_PRACTICE_SEAL", "LABEL_INVITE_LOOKUP",
                "LABEL_INVITE_ENVELOPE", "LABEL_INVITE_PROOF"}  # fmt: skip
    assert set(selftest.LABEL_VECTORS) == released
    assert released == {n for n in dir(crypto) if n.startswith("LABEL_")}
    assert set(selftest.INFO_VECTORS) <= {n for n in dir(crypto) if n.startswith("HKDF_INFO_")}


def run_cli(*args: str, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "HOME": str(tmp / "home"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "TACIT_VAULT": str(tmp / "vault"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "QT_QPA_PLATFORM": "offscreen",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True, text=True, env=environ, timeout=180, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    tmp = tmp_path_factory.mktemp("selftest")
    done = run_cli("selftest", "--json", tmp=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout), done.stdout + done.stderr, tmp


def test_selftest_passes_here(report: tuple[dict[str, Any], str, Path]) -> None:
    data, _, _ = report
    assert data["ok"] is True
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert list(statuses) == CHECK_NAMES
    for name in ("crypto.argon2id", "crypto.hkdf", "crypto.aead", "crypto.ed25519",
                 "crypto.sha256", "sqlcipher", "qt", "resources"):  # fmt: skip
        assert statuses[name] == "pass", data["checks"]
    # keyring's "fail" backend: reported, a warning, never a failure
    assert statuses["keychain"] == "warn"
    assert "fail" in next(c["detail"] for c in data["checks"] if c["name"] == "keychain")


def test_report_holds_no_personal_data(report: tuple[dict[str, Any], str, Path]) -> None:
    data, raw, tmp = report
    for private in (str(tmp), str(Path.home()), socket.gethostname(), getpass.getuser(),
                    "tacit-selftest-", "site-packages"):  # fmt: skip
        assert private not in raw
    assert set(data) == {"ok", "version", "python", "system", "frozen", "checks"}


def test_the_vault_is_never_touched(report: tuple[dict[str, Any], str, Path]) -> None:
    _, _, tmp = report
    assert not (tmp / "vault").exists()
    assert not (tmp / "data").exists()


def test_human_report(tmp_path: Path) -> None:
    done = run_cli("selftest", tmp=tmp_path)
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Tacit ")
    assert "PASSED" in lines[-1]
    for name in CHECK_NAMES:
        assert any(name in line for line in lines)


def only(name: str) -> tuple[tuple[str, Any], ...]:
    return tuple(c for c in selftest.CHECKS if c[0] == name)


def flip_first(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


@pytest.mark.parametrize(
    ("check", "target", "broken"),
    [
        ("crypto.argon2id", "argon2id", lambda *a: crypto.SymmetricKey(bytes(32))),
        ("crypto.hkdf", "hkdf", lambda ikm, *, salt, label: crypto.SymmetricKey(bytes(32))),
        ("crypto.hkdf", "hkdf_info", lambda ikm, info: crypto.SymmetricKey(bytes(32))),
        # an AEAD that ignores its tag: the tampered vector "opens"
        ("crypto.aead", "open_sealed", lambda key, nonce, ct, aad: selftest.AEAD_PLAINTEXT),
        ("crypto.ed25519", "sign", lambda key, domain, msg: bytes(64)),
        ("crypto.ed25519", "signature_ok", lambda *a: True),
        ("crypto.sha256", "sha256", lambda data: bytes(32)),
    ],
)
def test_each_check_catches_a_broken_primitive(
    monkeypatch: pytest.MonkeyPatch, check: str, target: str, broken: Any
) -> None:
    assert selftest.run_checks(only(check)).ok
    monkeypatch.setattr(crypto, target, broken)
    result = selftest.run_checks(only(check))
    assert not result.ok
    assert result.checks[0].status == selftest.FAIL


def test_sqlcipher_check_catches_an_unencrypted_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # A keying step that does nothing leaves a plain SQLite file with the canary in it.
    monkeypatch.setattr(db, "key_pragma", lambda key: "SELECT 1")
    result = selftest.run_checks(only("sqlcipher"))
    assert result.checks[0].status == selftest.FAIL
    assert "not encrypted" in result.checks[0].detail or "plain" in result.checks[0].detail


def test_sqlcipher_check_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert selftest.run_checks(only("sqlcipher")).ok
    assert list(tmp_path.iterdir()) == []


def test_qt_platform_choices(monkeypatch: pytest.MonkeyPatch, qapp: Any) -> None:
    for var in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    if sys.platform.startswith("linux"):
        status, detail = selftest.check_qt()
        assert status == selftest.WARN and "no display" in detail
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    with pytest.raises(selftest.CheckFailed, match="missing"):
        selftest.check_qt()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert selftest.check_qt()[0] == selftest.PASS


def test_an_unexpected_error_fails_one_check_and_the_rest_run() -> None:
    def explodes() -> tuple[str, str]:
        raise RuntimeError("/home/someone/secret path")

    result = selftest.run_checks((("boom", explodes), *only("crypto.sha256")))
    assert [c.status for c in result.checks] == [selftest.FAIL, selftest.PASS]
    assert result.checks[0].detail == "unexpected RuntimeError"  # never the message
    assert "FAILED: 1 check(s) failed" in result.to_text()


def test_a_failure_exits_15_with_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TACIT_VAULT", str(tmp_path / "vault"))
    monkeypatch.setattr(crypto, "sha256", lambda data: bytes(32))
    real, checks = selftest.run_checks, only("crypto.sha256")
    monkeypatch.setattr(selftest, "run_checks", lambda: real(checks))
    assert cli.main(["selftest", "--json"]) == selftest.EXIT_FAILED == 15
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    (check,) = data["checks"]
    assert (check["name"], check["status"]) == ("crypto.sha256", "fail")
    assert not (tmp_path / "vault").exists()
