"""``tacit practice``, ``appointment`` and ``fee`` on a vault that is in no practice:
clear refusals with stable codes, before any network contact (the end-to-end flows are in
tests/sync/test_practice_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import Tacit


@pytest.fixture
def tacit(tmp_path: Path) -> Tacit:
    t = Tacit(tmp_path)
    t.ok("init")
    return t


def test_a_vault_outside_a_practice_says_so(tacit: Tacit) -> None:
    assert tacit.ok("practice", "status") == {"in_practice": False}
    for args in (("appointment", "list"), ("fee", "list"), ("practice", "records"),
                 ("practice", "invite", "a@b.test", "--role", "admin"),
                 ("practice", "policy")):  # fmt: skip
        result = tacit("--json", *args)
        assert result.code == 2 and result.error["code"] == "usage", args
        assert "not in a practice" in result.error["message"]


def test_creating_a_practice_needs_a_signed_in_account(tacit: Tacit) -> None:
    result = tacit("--json", "practice", "create", "Canary Practice")
    assert result.code != 0 and result.error["code"] == "not_signed_in"


@pytest.mark.parametrize("code", ["TP-1234", "not a code", "TP-" + "U" * 31])
def test_a_malformed_invite_code_is_refused_before_any_contact(tacit: Tacit, code: str) -> None:
    # Port 9 on loopback: nothing listens, so reaching the network would say "offline".
    result = tacit("--json", "practice", "join", code, "--server", "https://127.0.0.1:9",
                   env={"TACIT_ACCOUNT_PASSWORD": "orbit violet lantern 77 cascade"})  # fmt: skip
    assert result.code == 2 and result.error["code"] == "invite_code_invalid"


def test_the_role_and_status_choices_are_checked(tacit: Tacit) -> None:
    result = tacit("--json", "practice", "invite", "a@b.test", "--role", "owner")
    assert result.code == 2
    result = tacit("--json", "appointment", "status", "abcd", "lost")
    assert result.code == 2
