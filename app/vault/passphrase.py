"""Passphrase strength policy, shared by the CLI and the desktop app.

A passphrase is refused when it is shorter than 12 characters or when zxcvbn (a
pattern- and dictionary-aware estimator) scores it below 3 of 4. The estimate runs in
memory only; the passphrase is never logged or echoed in a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import WeakPassphraseError
from app.vault.crypto import Passphrase

MIN_LENGTH = 12
MIN_SCORE = 3
_MAX_SCORED = 100  # zxcvbn slows on very long input; beyond this length, length suffices


@dataclass(frozen=True, slots=True)
class Strength:
    score: int  # 0..4
    acceptable: bool
    feedback: str  # safe to show: generic advice, never the passphrase
    crack_time: str


def assess(passphrase: Passphrase) -> Strength:
    text = passphrase.reveal().decode("utf-8", errors="replace")
    if len(text) < MIN_LENGTH:
        return Strength(0, False, f"Use at least {MIN_LENGTH} characters.", "instantly")
    from zxcvbn import zxcvbn  # imported on first use: its dictionaries load slowly

    result = zxcvbn(text[:_MAX_SCORED])
    score = int(result["score"])
    feedback = result.get("feedback", {})
    hints = [feedback.get("warning") or "", *feedback.get("suggestions", [])]
    advice = " ".join(h for h in hints if h) or (
        "Good." if score >= MIN_SCORE else "Add more unrelated words."
    )
    crack = str(result["crack_times_display"]["offline_slow_hashing_1e4_per_second"])
    return Strength(score, score >= MIN_SCORE, advice, crack)


def require_strong(passphrase: Passphrase) -> None:
    """Raises WeakPassphraseError with the estimator's advice."""
    strength = assess(passphrase)
    if not strength.acceptable:
        raise WeakPassphraseError(f"passphrase is too weak: {strength.feedback}")
