"""The printable recovery key.

256 random bits written as 52 Crockford base-32 characters plus 4 check characters, in
groups of four: ``TACIT-XXXX-XXXX-…``. Parsing forgives case, spaces, dashes and the
look-alikes O/0 and I/L/1, so a key copied from paper works; the check characters tell a
typo apart from a wrong key.
"""

from __future__ import annotations

from app.errors import WrongRecoveryKeyError
from app.vault import crypto
from app.vault.crypto import RecoveryKey

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_PREFIX = "TACIT"
_DATA_CHARS = 52  # ceil(256 / 5)
_CHECK_CHARS = 4


def _encode(data: bytes, chars: int) -> str:
    number = int.from_bytes(data, "big")
    out = []
    for _ in range(chars):
        out.append(_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(out))


def _check(data: bytes) -> str:
    return _encode(crypto.sha256(b"tacit-recovery-check" + data)[:3], _CHECK_CHARS)


def format_key(key: RecoveryKey) -> str:
    raw = key.reveal()
    body = _encode(raw, _DATA_CHARS) + _check(raw)
    groups = [body[i : i + 4] for i in range(0, len(body), 4)]
    return "-".join([_PREFIX, *groups])


def generate() -> tuple[str, RecoveryKey]:
    key = RecoveryKey.generate()
    return format_key(key), key


def parse(text: str) -> RecoveryKey:
    """Raises WrongRecoveryKeyError for anything that is not a well-formed key."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if cleaned.startswith(_PREFIX):
        cleaned = cleaned[len(_PREFIX) :]
    cleaned = cleaned.translate(_LOOKALIKES)
    if len(cleaned) != _DATA_CHARS + _CHECK_CHARS or any(c not in _ALPHABET for c in cleaned):
        raise WrongRecoveryKeyError("that is not a recovery key (wrong length or characters)")
    number = 0
    for ch in cleaned[:_DATA_CHARS]:
        number = (number << 5) | _ALPHABET.index(ch)
    if number >> 256:
        raise WrongRecoveryKeyError("that is not a recovery key")
    raw = number.to_bytes(32, "big")
    if not crypto.constant_time_equal(_check(raw).encode(), cleaned[_DATA_CHARS:].encode()):
        raise WrongRecoveryKeyError(
            "the recovery key has a typo (its check characters do not match)"
        )
    return RecoveryKey(raw)
