"""``cipher_memory_security`` is opt-in (docs/SECURITY.md, "Memory"): off unless
``TACIT_MEMORY_SECURITY=on``, and ``tacit status`` says which. The setting is
process-wide and cannot be turned off once on, so each case runs in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys
from pathlib import Path
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.service import VaultService
svc = VaultService(Path(sys.argv[1]), keychain=MemoryKeychain())
svc.create(Passphrase.from_str("correct horse battery staple 42"))
print(json.dumps(svc.status()["process"]))
"""


@pytest.mark.parametrize(
    ("value", "expected"), [(None, False), ("on", True), ("1", True), ("off", False)]
)
def test_memory_security_follows_the_environment(
    tmp_path: Path, value: str | None, expected: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TACIT_MEMORY_SECURITY"}
    if value is not None:
        env["TACIT_MEMORY_SECURITY"] = value
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "vault")],
        env=env, capture_output=True, text=True, check=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1])["memory_security"] is expected
