"""The cryptographic primitives of Tacit, and the only module that touches them.

Everything else in the project calls this module; an import-linter contract keeps
``cryptography``, ``argon2`` and ``hmac`` out of every other module.

What lives here:
- typed secrets (``SecretBytes`` and its subclasses) with a redacted ``repr`` and
  ``wipe()``; no public function takes a raw ``bytes`` key;
- Argon2id (memory-hard passphrase stretching) with a production floor and a calibration
  routine; the single switch that lets tests use weak parameters;
- HKDF-SHA256 with purpose labels, ChaCha20-Poly1305 AEAD for key wrapping, HMAC-SHA256;
- Ed25519 signatures (the clinician's signing key that signs notes and addenda);
- practice mode: the X25519 sealed box (``seal_to``/``open_from``, AES-256-GCM), its
  signing domains, and invite codes with the keys derived from them.

Honest limit: CPython cannot guarantee that secrets are erased from memory. ``wipe()``
zeroes our own buffers; copies made by the interpreter or by C libraries may survive
until the memory is reused. docs/SECURITY.md says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self, TypeVar

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import InviteCodeInvalidError

K = TypeVar("K", bound="SymmetricKey")

KEY_BYTES = 32
NONCE_BYTES = 12
SALT_BYTES = 16

# Purpose labels for HKDF. Changing one changes every derived key: never do it without a
# format version bump. Known-answer tests pin them.
LABEL_PASSPHRASE_KEK = "tacit/v1/vault/passphrase-kek"  # noqa: S105 - a label
LABEL_RECOVERY_KEK = "tacit/v1/vault/recovery-kek"
LABEL_HEADER_MAC = "tacit/v1/vault/header-mac"
LABEL_AUDIT_CHAIN = "tacit/v1/vault/audit-chain"
LABEL_ACCOUNT_MASTER = "tacit/v1/account/master-key"
LABEL_ACCOUNT_LOGIN = "tacit/v1/account/login-key"
LABEL_ACCOUNT_EPOCH = "tacit/v1/account/epoch-key"
SIGN_DOMAIN_LOGIN = b"tacit/v1/login\x00"
# Domain separation for signatures: a signature over one kind of thing is never valid for
# another.
SIGN_DOMAIN_NOTE = b"tacit/v1/sign/note\x00"
SIGN_DOMAIN_ADDENDUM = b"tacit/v1/sign/addendum\x00"
# Remote lock and escrow (docs/PROTOCOL.md, "Devices, orders and escrow"). These equal
# app/sync/protocol.py's constants byte for byte (a test pins it); the vault may not
# import app.sync, so they are written here too.
SIGN_DOMAIN_DEVICE_ORDER = b"tacit/v1/device-order\x00"
HKDF_INFO_ACCOUNT_SIGNING = b"tacit/v1/account-signing-key"
HKDF_INFO_ESCROW_ACCOUNT = b"tacit/v1/escrow-account"
HKDF_INFO_ESCROW_SLOT = b"tacit/v1/escrow-slot\x00"  # + the device id (ASCII)

# The one switch that lets tests and benchmarks create vaults with tiny KDF parameters.
INSECURE_TEST_KDF_ENV = "TACIT_INSECURE_TEST_KDF"


class CryptoError(Exception):
    """Authentication of ciphertext failed. Internal: callers map it to a TacitError."""


class SecretBytes:
    """Secret material in a mutable buffer we can zero. Never printed, never compared
    in variable time."""

    __slots__ = ("_buf",)

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._buf = bytearray(data)

    @classmethod
    def generate(cls, length: int = KEY_BYTES) -> Self:
        return cls(secrets.token_bytes(length))

    def reveal(self) -> bytes:
        """The secret as bytes, for handing to a primitive. Keep the result short-lived."""
        if self.wiped:
            raise ValueError("secret was wiped")
        return bytes(self._buf)

    def hex(self) -> str:
        return self.reveal().hex()

    def wipe(self) -> None:
        for i in range(len(self._buf)):
            self._buf[i] = 0
        self._buf = bytearray()

    @property
    def wiped(self) -> bool:
        return len(self._buf) == 0

    def __len__(self) -> int:
        return len(self._buf)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretBytes):
            return NotImplemented
        return hmac.compare_digest(bytes(self._buf), bytes(other._buf))

    def __hash__(self) -> int:  # secrets are not dictionary keys
        raise TypeError("secrets are unhashable")

    def __repr__(self) -> str:
        state = "wiped" if self.wiped else f"{len(self._buf)} bytes"
        return f"<{type(self).__name__} redacted, {state}>"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets cannot be pickled")


class Passphrase(SecretBytes):
    """A user passphrase, NFC-normalised so the same words typed on any keyboard or input
    method derive the same key."""

    __slots__ = ()

    @classmethod
    def from_str(cls, text: str) -> Passphrase:
        return cls(unicodedata.normalize("NFC", text).encode("utf-8"))


class SymmetricKey(SecretBytes):
    """A 256-bit symmetric key."""

    __slots__ = ()

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) != KEY_BYTES:
            raise ValueError("a symmetric key is 32 bytes")
        super().__init__(data)


class DbKey(SymmetricKey):
    """The random key that opens the SQLCipher database."""

    __slots__ = ()


class DeviceSecret(SymmetricKey):
    """A random secret kept in the OS keychain that binds the passphrase slot to it."""

    __slots__ = ()


class RecoveryKey(SymmetricKey):
    """The random recovery key shown once at vault creation."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id parameters; stored in the vault header."""

    memory_kib: int
    iterations: int
    parallelism: int
    algorithm: str = "argon2id"
    version: int = 19

    def to_dict(self) -> dict[str, int | str]:
        return {
            "algorithm": self.algorithm,
            "version": self.version,
            "memory_kib": self.memory_kib,
            "iterations": self.iterations,
            "parallelism": self.parallelism,
        }

    def at_least(self, floor: KdfParams) -> bool:
        return (
            self.algorithm == floor.algorithm
            and self.version == floor.version
            and self.memory_kib >= floor.memory_kib
            and self.iterations >= floor.iterations
            and self.parallelism >= floor.parallelism
        )


# Production floor (m = 256 MiB, t = 3, p = 2): stronger than the defaults of the
# libraries and password managers we compared against. Calibration only ever goes up.
PRODUCTION_FLOOR = KdfParams(memory_kib=256 * 1024, iterations=3, parallelism=2)
# Tiny parameters for tests and benchmarks only, behind INSECURE_TEST_KDF_ENV.
INSECURE_TEST_PARAMS = KdfParams(memory_kib=1024, iterations=1, parallelism=1)
MAX_ITERATIONS = 64
# The most a file may ask of an unlock (vault header, backup): more is refused before
# deriving, so a crafted file can neither exhaust memory nor keep Argon2id running for
# hours. Far above what calibration makes (memory and lanes stay at the floor).
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_PARALLELISM = 64


def kdf_within_ceiling(params: KdfParams) -> bool:
    """Whether parameters read from a file stay under the ceiling above."""
    return (
        params.memory_kib <= MAX_MEMORY_KIB
        and params.iterations <= MAX_ITERATIONS
        and params.parallelism <= MAX_PARALLELISM
    )


def insecure_test_kdf_enabled() -> bool:
    return os.environ.get(INSECURE_TEST_KDF_ENV, "") == "1"


def kdf_floor() -> KdfParams:
    """The weakest parameters this process accepts for unlocking."""
    return INSECURE_TEST_PARAMS if insecure_test_kdf_enabled() else PRODUCTION_FLOOR


def argon2id(passphrase: Passphrase, salt: bytes, params: KdfParams) -> SymmetricKey:
    """Stretch a passphrase. Raises ValueError on parameters argon2 rejects."""
    if params.algorithm != "argon2id" or params.version != 19:
        raise ValueError("unsupported KDF")
    try:
        raw = hash_secret_raw(
            secret=passphrase.reveal(),
            salt=salt,
            time_cost=params.iterations,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=KEY_BYTES,
            type=Type.ID,
            version=params.version,
        )
    except (HashingError, OverflowError, TypeError):
        # A salt too short, a value past 32 bits, memory it cannot allocate: parameters
        # from a file (issue 9's fuzzing found these escaping as other exceptions).
        raise ValueError("argon2 refused the KDF parameters") from None
    return SymmetricKey(raw)


def calibrate_kdf(
    target_seconds: float = 1.0,
    *,
    floor: KdfParams = PRODUCTION_FLOOR,
    timer: Callable[[], float] = time.perf_counter,
) -> KdfParams:
    """Pick Argon2id parameters that take about ``target_seconds`` here, never below
    ``floor``: one measured run at the floor, then iterations scaled up linearly (cost
    is linear in t). Memory stays at the floor so low-memory machines are not hurt."""
    probe = Passphrase(b"calibration")
    salt = secrets.token_bytes(SALT_BYTES)
    start = timer()
    argon2id(probe, salt, floor).wipe()
    elapsed = max(timer() - start, 1e-6)
    scale = target_seconds / elapsed
    iterations = min(MAX_ITERATIONS, max(floor.iterations, round(floor.iterations * scale)))
    return KdfParams(
        memory_kib=floor.memory_kib, iterations=iterations, parallelism=floor.parallelism
    )


def new_creation_params() -> KdfParams:
    """Parameters for a new vault: calibrated, or tiny under the test switch."""
    if insecure_test_kdf_enabled():
        return INSECURE_TEST_PARAMS
    return calibrate_kdf()


def hkdf(ikm: SecretBytes, *, salt: bytes, label: str) -> SymmetricKey:
    """HKDF-SHA256 to one 256-bit key for one purpose."""
    derived = HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=label.encode("ascii")
    ).derive(ikm.reveal())
    return SymmetricKey(derived)


def concat(*parts: SecretBytes) -> SecretBytes:
    return SecretBytes(b"".join(p.reveal() for p in parts))


def seal(key: SymmetricKey, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """ChaCha20-Poly1305 with a fresh random nonce. Returns (nonce, ciphertext+tag)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce, ChaCha20Poly1305(key.reveal()).encrypt(nonce, plaintext, aad)


def open_sealed(key: SymmetricKey, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Inverse of ``seal``. Raises CryptoError when anything was altered or the key is
    wrong (the two are indistinguishable by design)."""
    try:
        return ChaCha20Poly1305(key.reveal()).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("authentication failed") from exc


def wrap_key(kek: SymmetricKey, key: SymmetricKey, aad: bytes) -> tuple[bytes, bytes]:
    return seal(kek, key.reveal(), aad)


def unwrap_key(
    kek: SymmetricKey, nonce: bytes, ciphertext: bytes, aad: bytes, key_type: type[K]
) -> K:
    raw = open_sealed(kek, nonce, ciphertext, aad)
    if len(raw) != KEY_BYTES:
        raise CryptoError("wrapped key has the wrong length")
    return key_type(raw)


def mac(key: SymmetricKey, data: bytes) -> bytes:
    return hmac.new(key.reveal(), data, hashlib.sha256).digest()


def mac_ok(key: SymmetricKey, data: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(mac(key, data), tag)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(length: int) -> bytes:
    return secrets.token_bytes(length)


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class SigningKey(SymmetricKey):
    """An Ed25519 private key (its 32-byte seed). Kept only inside the vault."""

    __slots__ = ()

    def public_key(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.reveal()).public_key().public_bytes_raw()


def sign(key: SigningKey, domain: bytes, message: bytes) -> bytes:
    """Ed25519 signature over ``domain || message``."""
    return Ed25519PrivateKey.from_private_bytes(key.reveal()).sign(domain + message)


def signature_ok(public_key: bytes, domain: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, domain + message)
    except (InvalidSignature, ValueError):
        return False
    return True


class MacChain:
    """HMAC-SHA256 over a sequence of entries, each committing to the one before: the
    primitive behind the audit trail. Verification of long chains stays in this module
    so the hot loop does not re-enter the typed-key machinery per entry."""

    def __init__(self, key: SymmetricKey) -> None:
        self._key = key.reveal()

    def link(self, previous: bytes, entry: bytes) -> bytes:
        return hmac.digest(self._key, previous + entry, "sha256")

    def same(self, a: bytes, b: bytes) -> bool:
        return hmac.compare_digest(a, b)

    def wipe(self) -> None:
        self._key = b""


def derive_account_keys(
    password: Passphrase, salt: bytes, params: KdfParams
) -> tuple[SymmetricKey, SigningKey]:
    """Account password -> (master key, Ed25519 login key). The master key never leaves
    the device; only the login key's public half goes to the server, so the server
    never receives anything password-equivalent."""
    stretched = argon2id(password, salt, params)
    try:
        master = hkdf(stretched, salt=salt, label=LABEL_ACCOUNT_MASTER)
        login = hkdf(stretched, salt=salt, label=LABEL_ACCOUNT_LOGIN)
        return master, SigningKey(login.reveal())
    finally:
        stretched.wipe()


def derive_epoch_key(password: Passphrase, salt: bytes, params: KdfParams) -> SymmetricKey:
    """Account password -> the wrapping key of one account key epoch (2, 3, ...; each
    with its own fresh salt): what wraps items keys made after a device was revoked, so
    a stolen copy of that device's keys (which hold the earlier epochs') cannot open
    them (docs/SECURITY.md, "Items-key rotation")."""
    stretched = argon2id(password, salt, params)
    try:
        return hkdf(stretched, salt=salt, label=LABEL_ACCOUNT_EPOCH)
    finally:
        stretched.wipe()


def login_signature(key: SigningKey, origin: str, challenge: bytes) -> bytes:
    """The signed login challenge, bound to the server origin the client believes it
    talks to (a relayed challenge from another origin does not verify)."""
    return sign(key, SIGN_DOMAIN_LOGIN, origin.encode("utf-8") + b"\x00" + challenge)


# -- sync (appended): device keys and TLS certificate pins ------------------------------
def new_device_key() -> SigningKey:
    """A fresh Ed25519 device key pair (its seed); the public half registers the device
    with the sync server, the seed stays inside the vault."""
    return SigningKey.generate()


def certificate_pin(der_certificate: bytes) -> str:
    """The pin of a TLS certificate: base64 SHA-256 of its SubjectPublicKeyInfo (the
    HPKP / ``curl --pinnedpubkey sha256//…`` form), so a renewed certificate with the
    same key keeps its pin. Raises ValueError on bytes that are not a certificate."""
    import base64

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_der_x509_certificate(der_certificate)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


# -- remote lock and escrow (appended) ---------------------------------------------------
class EscrowKey(SymmetricKey):
    """The server's half of the escrow slot key: 32 random bytes the sync server keeps
    per device and releases only after full re-authentication."""

    __slots__ = ()


class AccountEscrowKey(SymmetricKey):
    """The account's half of the escrow slot key (``K_account``), derived from the account
    master key, so what the server holds cannot open a stolen vault by itself."""

    __slots__ = ()


def hkdf_info(ikm: SecretBytes, info: bytes) -> SymmetricKey:
    """HKDF-SHA256 with no salt (RFC 5869: a hash-length string of zeros) and a binary
    ``info``: the derivations the sync protocol specifies that way."""
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        ikm.reveal()
    )
    return SymmetricKey(derived)


def account_signing_key(master: SymmetricKey) -> SigningKey:
    """The account signing key (Ed25519 seed) every device of the account derives from
    the master key; it signs device orders."""
    key = hkdf_info(master, HKDF_INFO_ACCOUNT_SIGNING)
    try:
        return SigningKey(key.reveal())
    finally:
        key.wipe()


def account_escrow_key(master: SymmetricKey) -> AccountEscrowKey:
    """``K_account = HKDF(master key, info "tacit/v1/escrow-account")``."""
    key = hkdf_info(master, HKDF_INFO_ESCROW_ACCOUNT)
    try:
        return AccountEscrowKey(key.reveal())
    finally:
        key.wipe()


def escrow_slot_key(server: EscrowKey, account: AccountEscrowKey, device_id: str) -> SymmetricKey:
    """``HKDF(server escrow key || K_account, info "tacit/v1/escrow-slot\\0" + device id)``:
    the key that wraps the DB key in the escrow slot. Raises ValueError on a device id
    that is not ASCII."""
    ikm = concat(server, account)
    try:
        return hkdf_info(ikm, HKDF_INFO_ESCROW_SLOT + device_id.encode("ascii"))
    finally:
        ikm.wipe()


def is_public_key(public_key: bytes) -> bool:
    """Whether ``public_key`` is a raw 32-byte Ed25519 public key."""
    if len(public_key) != 32:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return False
    return True


# -- practice mode (appended; docs/PRACTICE.md) -------------------------------------------
# Labels and domains of practice mode. Known-answer tests pin them; changing one breaks
# every practice already created.
LABEL_PRACTICE_SEAL = "tacit/v1/practice/seal"
LABEL_INVITE_LOOKUP = "tacit/v1/practice/invite-lookup"
LABEL_INVITE_ENVELOPE = "tacit/v1/practice/invite-envelope"
LABEL_INVITE_PROOF = "tacit/v1/practice/invite-proof"
# The member's practice keyring (app/sync/practice_keys.py), from an account epoch key.
HKDF_INFO_PRACTICE_KEYRING = b"tacit/v1/practice/keyring"
SIGN_DOMAIN_PRACTICE_MEMBER = b"tacit/v1/practice/member\x00"
SIGN_DOMAIN_PRACTICE_GRANT = b"tacit/v1/practice/grant\x00"
SIGN_DOMAIN_PRACTICE_ITEM = b"tacit/v1/practice/item\x00"
SIGN_DOMAIN_PRACTICE_POLICY = b"tacit/v1/practice/policy\x00"
SIGN_DOMAIN_PRACTICE_AUDIT = b"tacit/v1/practice/audit\x00"

X25519_BYTES = 32
SEAL_TO_VERSION = b"\x01"
_GCM_TAG_BYTES = 16
_SEAL_TO_OVERHEAD = len(SEAL_TO_VERSION) + X25519_BYTES + NONCE_BYTES + _GCM_TAG_BYTES
INVITE_SECRET_BYTES = 20  # 160 bits: 32 base-32 characters
INVITE_CODE_PREFIX = "TP-"
_INVITE_CODE_CHARS = 32
# Typing slips we can undo without guessing: these digits are not in the RFC 4648
# base-32 alphabet, and each looks like exactly one letter that is.
_INVITE_TYPOS = str.maketrans({"0": "O", "1": "I", "8": "B"})
_BASE32_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


class PracticeEncKey(SymmetricKey):
    """A member's X25519 private key (32 random bytes): what grants and audit entries are
    sealed to (``seal_to``). Kept only inside the member's vault."""

    __slots__ = ()

    def public_key(self) -> bytes:
        return X25519PrivateKey.from_private_bytes(self.reveal()).public_key().public_bytes_raw()


class InviteSecret(SecretBytes):
    """The 160-bit secret behind a one-time practice invite code. Not a SymmetricKey
    (those are 32 bytes); the keys it yields come from ``invite_keys``."""

    __slots__ = ()

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) != INVITE_SECRET_BYTES:
            raise ValueError("an invite secret is 20 bytes")
        super().__init__(data)

    @classmethod
    def generate(cls, length: int = INVITE_SECRET_BYTES) -> Self:
        return cls(secrets.token_bytes(length))


def _x25519_shared(private: X25519PrivateKey, public_key: bytes) -> SecretBytes:
    """The X25519 shared secret; CryptoError for a malformed or small-order point (whose
    shared secret is all zeros: OpenSSL refuses it, and we check again)."""
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError:
        raise CryptoError("not a usable X25519 public key") from None
    if not any(shared):
        raise CryptoError("not a usable X25519 public key")
    return SecretBytes(shared)


def is_x25519_public_key(public_key: bytes) -> bool:
    """Whether ``public_key`` is 32 bytes that yield a usable shared secret (not one of
    the small-order points, all-zero among them, for which every exchange gives zeros)."""
    if not isinstance(public_key, bytes) or len(public_key) != X25519_BYTES:
        return False
    try:
        _x25519_shared(X25519PrivateKey.generate(), public_key).wipe()
    except CryptoError:
        return False
    return True


def _seal_to_key(shared: SecretBytes, eph_public: bytes, recipient: bytes) -> SymmetricKey:
    try:
        return hkdf(shared, salt=eph_public + recipient, label=LABEL_PRACTICE_SEAL)
    finally:
        shared.wipe()


def seal_to(public_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Seal ``plaintext`` to an X25519 public key (ephemeral-static box): key =
    HKDF-SHA256(shared, salt = eph_pub || recipient_pub, label "tacit/v1/practice/seal"),
    AES-256-GCM with a random nonce. Returns ``0x01 || eph_pub(32) || nonce(12) ||
    ciphertext+tag``. Raises CryptoError for a public key that is not a usable point."""
    if not isinstance(public_key, bytes) or len(public_key) != X25519_BYTES:
        raise CryptoError("not a usable X25519 public key")
    ephemeral = X25519PrivateKey.generate()
    eph_public = ephemeral.public_key().public_bytes_raw()
    key = _seal_to_key(_x25519_shared(ephemeral, public_key), eph_public, public_key)
    try:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key.reveal()).encrypt(nonce, plaintext, aad)
    finally:
        key.wipe()
    return SEAL_TO_VERSION + eph_public + nonce + sealed


def open_from(key: PracticeEncKey, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of ``seal_to`` with the recipient's private key. Raises CryptoError when
    anything is wrong (version, length, point, tag, key, associated data)."""
    if (
        not isinstance(sealed, bytes)
        or len(sealed) < _SEAL_TO_OVERHEAD
        or sealed[:1] != SEAL_TO_VERSION
    ):
        raise CryptoError("not a sealed box of a known version")
    eph_public = sealed[1 : 1 + X25519_BYTES]
    nonce = sealed[1 + X25519_BYTES : 1 + X25519_BYTES + NONCE_BYTES]
    body = sealed[1 + X25519_BYTES + NONCE_BYTES :]
    private = X25519PrivateKey.from_private_bytes(key.reveal())
    recipient = private.public_key().public_bytes_raw()
    box_key = _seal_to_key(_x25519_shared(private, eph_public), eph_public, recipient)
    try:
        return AESGCM(box_key.reveal()).decrypt(nonce, body, aad)
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("authentication failed") from exc
    finally:
        box_key.wipe()


def invite_code(secret: InviteSecret) -> str:
    """``TP-`` and the secret in RFC 4648 base 32 (no padding: 20 bytes are 32
    characters), uppercase, in groups of four joined by dashes."""
    text = base64.b32encode(secret.reveal()).decode("ascii")
    return INVITE_CODE_PREFIX + "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def parse_invite_code(text: str) -> InviteSecret:
    """The secret of an invite code as a person may type it: any case, spaces or dashes
    anywhere (or none), with or without ``TP-``, and 0/1/8 for O/I/B. Raises
    InviteCodeInvalidError (never quoting the input)."""
    if not isinstance(text, str) or len(text) > 200:
        raise InviteCodeInvalidError()
    compact = "".join(c for c in text.upper() if not c.isspace() and c not in "-_")
    if len(compact) == _INVITE_CODE_CHARS + 2 and compact.startswith("TP"):
        compact = compact[2:]
    compact = compact.translate(_INVITE_TYPOS)
    if len(compact) != _INVITE_CODE_CHARS or not set(compact) <= _BASE32_ALPHABET:
        raise InviteCodeInvalidError()
    try:
        raw = base64.b32decode(compact, casefold=False)
    except (binascii.Error, ValueError):
        raise InviteCodeInvalidError() from None
    return InviteSecret(raw)


def invite_keys(secret: InviteSecret) -> tuple[str, SymmetricKey, SymmetricKey]:
    """``(lookup, envelope key, proof key)`` of an invite: HKDF-SHA256 of the secret (empty
    salt) with the labels ``tacit/v1/practice/invite-lookup``, ``…/invite-envelope`` and
    ``…/invite-proof``. The lookup (hex) is all the server learns."""
    lookup = hkdf(secret, salt=b"", label=LABEL_INVITE_LOOKUP)
    try:
        lookup_hex = lookup.hex()
    finally:
        lookup.wipe()
    return (
        lookup_hex,
        hkdf(secret, salt=b"", label=LABEL_INVITE_ENVELOPE),
        hkdf(secret, salt=b"", label=LABEL_INVITE_PROOF),
    )
