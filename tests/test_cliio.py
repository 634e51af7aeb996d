"""Human-readable CLI output never passes a control character to the terminal."""

from __future__ import annotations

from app.cliio import table


def test_table_cells_cannot_carry_terminal_escapes() -> None:
    out = table([{"name": "laptop\x1b]0;owned\x07\x9b2J", "id": "a"}], ("name", "id"))
    assert not any((ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F for ch in out)
    assert "laptop" in out and "\ufffd" in out
