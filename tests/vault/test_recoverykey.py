"""The printable recovery key: round trip, forgiving input, typo detection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import WrongRecoveryKeyError
from app.vault import recoverykey
from app.vault.crypto import RecoveryKey


@given(st.binary(min_size=32, max_size=32))
def test_round_trip(raw: bytes) -> None:
    text = recoverykey.format_key(RecoveryKey(raw))
    assert text.startswith("TACIT-")
    assert recoverykey.parse(text).reveal() == raw


def test_forgiving_input() -> None:
    text, key = recoverykey.generate()
    sloppy = text.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert recoverykey.parse(sloppy) == key
    assert recoverykey.parse(text.removeprefix("TACIT-")) == key


def test_typo_is_detected() -> None:
    text, _ = recoverykey.generate()
    i = len(text) // 2
    replacement = "2" if text[i] != "2" else "3"
    typo = text[:i] + replacement + text[i + 1 :]
    with pytest.raises(WrongRecoveryKeyError, match="typo"):
        recoverykey.parse(typo)


@pytest.mark.parametrize("bad", ["", "TACIT", "hello world", "TACIT-" + "U" * 56, "Z" * 57])
def test_malformed(bad: str) -> None:
    with pytest.raises(WrongRecoveryKeyError):
        recoverykey.parse(bad)
