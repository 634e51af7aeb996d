"""TOTP (RFC 6238) for the second login factor, through pyotp.

Invariants: codes are 6 digits over 30-second steps with SHA-1 (what every authenticator
app supports); a code is accepted for the current step and one step either side
(``valid_window=1`` in pyotp's terms); the caller refuses any step not greater than the
last one it accepted, which is what makes a code single use. Comparison is constant time.
"""

from __future__ import annotations

import pyotp

from app.sync import protocol
from app.sync.server import crypto

VALID_WINDOW = 1


def new_secret() -> str:
    """A fresh base-32 secret (160 bits)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, username: str, origin: str) -> str:
    """The otpauth:// URI the app shows as a QR code. The label names the server so one
    authenticator can hold accounts on several servers."""
    host = origin.split("://", 1)[-1]
    return pyotp.TOTP(secret).provisioning_uri(name=f"{username}@{host}", issuer_name="Tacit")


def matching_step(secret: str, code: str, *, now_s: float) -> int | None:
    """The time step whose code equals ``code`` (current step first), or None."""
    if protocol.TOTP_RE.fullmatch(code) is None:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now_s) // protocol.TOTP_PERIOD_S
    for step in (current, current - VALID_WINDOW, current + VALID_WINDOW):
        if crypto.constant_time_equal(totp.generate_otp(step), code):
            return step
    return None
