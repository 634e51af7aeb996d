"""The sync server's few cryptographic primitives, and the only server module that
touches ``cryptography`` or ``hmac``.

The server never encrypts or decrypts user data (it holds none in plaintext). It needs
only to verify Ed25519 signatures (logins, device orders, signing-key proofs), make
random tokens and codes, hash tokens and recovery codes for storage, key pseudonyms (fake
KDF salts, rate-limit keys) with an HMAC under the server secret, compare secrets in
constant time, and seal the per-device escrow keys at rest (AES-256-GCM under a key
derived from the server secret, bound to the account and device ids).

Invariants: verification never raises on malformed input (it returns False); random
values come from ``secrets``; nothing here logs or formats a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_BYTES = 32
SERVER_SECRET_BYTES = 32
# Crockford-like base-32 alphabet without I, L, O, U: recovery codes are read off paper.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 4
_CODE_GROUP_LEN = 4  # 16 symbols x 5 bits = 80 bits per recovery code
_MISREADINGS = str.maketrans("OIL", "011")


def _dummy_public_key() -> bytes:
    # A valid key nobody holds a signature for (its private half is a public constant, but
    # it is only ever used to fail): verifying against it costs what a real check costs.
    return Ed25519PrivateKey.from_private_bytes(b"\x01" * 32).public_key().public_bytes_raw()


DUMMY_PUBLIC_KEY = _dummy_public_key()


def ed25519_public_key_valid(raw: bytes) -> bool:
    """Whether ``raw`` is a well-formed 32-byte Ed25519 public key."""
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return False
    return True


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify an Ed25519 signature. Malformed keys or signatures verify as False."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def ed25519_verify_statement(
    public_key: bytes, domain: bytes, message: bytes, signature: bytes
) -> bool:
    """Verify a domain-separated statement signed as the vault's ``sign`` does it:
    Ed25519 over ``domain || message``. Malformed input verifies as False."""
    return ed25519_verify(public_key, domain + message, signature)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(length: int) -> bytes:
    return secrets.token_bytes(length)


def new_token() -> str:
    """A bearer token: 32 random bytes, url-safe base64 (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    """A random opaque id (challenge ids, session ids): 16 bytes, url-safe base64."""
    return secrets.token_urlsafe(16)


def token_hash(token: str) -> bytes:
    """What the database stores for a token: SHA-256 of its text. Tokens carry 256 bits
    of entropy, so a fast hash is enough (no dictionary to attack)."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_recovery_code() -> str:
    """A one-time recovery code such as ``7K3Q-M2XD-9PAW-4TNB`` (80 random bits)."""
    groups = [
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUP_LEN))
        for _ in range(_CODE_GROUPS)
    ]
    return "-".join(groups)


def normalize_recovery_code(code: str) -> str:
    """Uppercase, without separators or spaces, with the usual misreadings mapped."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    return cleaned.translate(_MISREADINGS)


def recovery_code_hash(code: str) -> bytes:
    """What the database stores for a recovery code (80 random bits, so SHA-256)."""
    data = b"tacit/v1/recovery-code\x00" + normalize_recovery_code(code).encode("ascii", "replace")
    return hashlib.sha256(data).digest()


def keyed_hash(secret: bytes, label: str, value: str) -> bytes:
    """HMAC-SHA256(server secret, label NUL value): stable pseudonyms for values the
    server should not store raw (client IPs, unknown usernames) and fake KDF salts."""
    return hmac.new(secret, label.encode() + b"\x00" + value.encode("utf-8"), "sha256").digest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


_ESCROW_AD = b"tacit/v1/escrow-at-rest\x00"
_NONCE_BYTES = 12


def _escrow_cipher(secret: bytes) -> AESGCM:
    return AESGCM(hmac.new(secret, b"escrow-at-rest", "sha256").digest())


def _escrow_ad(account_id: str, device_id: str) -> bytes:
    return _ESCROW_AD + account_id.encode("ascii") + b"\x00" + device_id.encode("ascii")


def seal_escrow(secret: bytes, account_id: str, device_id: str, escrow_key: bytes) -> bytes:
    """Encrypt an escrow key for storage: nonce (12 bytes) + AES-256-GCM ciphertext, with
    the account and device ids as associated data (a row moved to another device fails
    to open)."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + _escrow_cipher(secret).encrypt(
        nonce, escrow_key, _escrow_ad(account_id, device_id)
    )


def open_escrow(secret: bytes, account_id: str, device_id: str, sealed: bytes) -> bytes | None:
    """The escrow key, or None when the stored value does not authenticate (tampered,
    moved, or sealed under another server secret)."""
    try:
        return _escrow_cipher(secret).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _escrow_ad(account_id, device_id)
        )
    except (InvalidTag, ValueError):
        return None
