"""The device secret in a real OS keychain: gnome-keyring's Secret Service on a private
D-Bus session, with a throwaway HOME (the developer's keyrings are never touched).

Skipped with a loud reason where dbus-run-session or gnome-keyring is missing; required
in CI (.ci/run installs both), where a skip would hide a regression.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PASSPHRASE

pytestmark = pytest.mark.keychain

SCRIPT = r"""
set -eu
printf '%s' "$KEYRING_UNLOCK" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
"$PYTHON" -m app.cli --json init > init.json
"$PYTHON" -m app.cli --json status > status1.json
"$PYTHON" - <<'PY'
import json, keyring
vault_id = json.load(open("status1.json"))["vault_id"]
keyring.delete_password("tacit", f"vault-device-secret:{vault_id}")
PY
set +e
"$PYTHON" -m app.cli --json status > status2.json 2> status2.err
echo $? > status2.rc
"""


def _have_secret_service() -> str | None:
    for tool in ("dbus-run-session", "gnome-keyring-daemon"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install dbus gnome-keyring)"
    return None


def test_vault_is_bound_to_the_os_keychain(tmp_path: Path) -> None:
    missing = _have_secret_service()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the keychain test: {missing}")
        pytest.skip(f"NO REAL KEYCHAIN TEST: {missing}")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TACIT_VAULT": str(tmp_path / "vault"),
        "TACIT_PASSPHRASE": PASSPHRASE,
        "TACIT_INSECURE_TEST_KDF": "1",
        "KEYRING_UNLOCK": "throwaway-login-keyring",
    }
    proc = subprocess.run(
        ["dbus-run-session", "--", "bash", "-c", SCRIPT],
        cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    status = json.loads((tmp_path / "status1.json").read_text())
    assert status["keychain_available"] is True
    assert status["keychain_bound"] is True
    # With the keychain entry gone, the passphrase alone no longer opens the vault.
    assert (tmp_path / "status2.rc").read_text().strip() == "3"
    error = json.loads((tmp_path / "status2.err").read_text().splitlines()[0])
    assert error["error"]["code"] == "device_secret_missing"
