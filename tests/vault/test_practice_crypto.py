"""Practice-mode primitives (app/vault/crypto.py, "practice mode"): the X25519 sealed box
(``seal_to``/``open_from``), invite codes and the keys derived from them, and the signing
domains. Known-answer values are computed here independently (hashlib/hmac HKDF)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from app.errors import InviteCodeInvalidError, UsageError
from app.vault import crypto
from app.vault.crypto import CryptoError, InviteSecret, PracticeEncKey

AAD = b'{"collection_id":"c","key_version":1}'
# Small-order X25519 points (RFC 7748 / libsodium's blocklist): every exchange with them
# yields all zeros.
SMALL_ORDER = (
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
)


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """RFC 5869 HKDF-SHA256 to 32 bytes, written out."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


# -- sealed box ---------------------------------------------------------------------------
def test_seal_to_round_trip_and_format() -> None:
    key = PracticeEncKey.generate()
    sealed = crypto.seal_to(key.public_key(), b"collection key bytes", AAD)
    assert sealed[0] == 1
    assert len(sealed) == 1 + 32 + 12 + len(b"collection key bytes") + 16
    assert crypto.open_from(key, sealed, AAD) == b"collection key bytes"
    # A fresh ephemeral key and nonce every time.
    assert crypto.seal_to(key.public_key(), b"collection key bytes", AAD) != sealed
    assert crypto.open_from(key, crypto.seal_to(key.public_key(), b"", b""), b"") == b""


def test_seal_to_matches_an_independent_derivation() -> None:
    """The box key is HKDF(shared, salt = eph_pub || recipient_pub, label) and the cipher
    AES-256-GCM: open a box by hand with the recipient's raw key."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = PracticeEncKey.generate()
    sealed = crypto.seal_to(key.public_key(), b"payload", AAD)
    eph, nonce, body = sealed[1:33], sealed[33:45], sealed[45:]
    shared = X25519PrivateKey.from_private_bytes(key.reveal()).exchange(
        X25519PublicKey.from_public_bytes(eph)
    )
    box_key = _hkdf(shared, eph + key.public_key(), b"tacit/v1/practice/seal")
    assert AESGCM(box_key).decrypt(nonce, body, AAD) == b"payload"


def test_open_from_refuses_the_wrong_key_and_aad() -> None:
    key = PracticeEncKey.generate()
    sealed = crypto.seal_to(key.public_key(), b"secret", AAD)
    with pytest.raises(CryptoError):
        crypto.open_from(PracticeEncKey.generate(), sealed, AAD)
    with pytest.raises(CryptoError):
        crypto.open_from(key, sealed, AAD + b"x")
    with pytest.raises(CryptoError):
        crypto.open_from(key, sealed, b"")


def test_open_from_refuses_every_flipped_byte() -> None:
    key = PracticeEncKey.generate()
    sealed = crypto.seal_to(key.public_key(), b"abc", AAD)
    for i in range(len(sealed)):
        for bit in (0x01, 0x80):
            damaged = bytearray(sealed)
            damaged[i] ^= bit
            with pytest.raises(CryptoError):
                crypto.open_from(key, bytes(damaged), AAD)


def test_open_from_refuses_truncated_and_extended_boxes() -> None:
    key = PracticeEncKey.generate()
    sealed = crypto.seal_to(key.public_key(), b"abc", AAD)
    for cut in range(len(sealed)):
        with pytest.raises(CryptoError):
            crypto.open_from(key, sealed[:cut], AAD)
    with pytest.raises(CryptoError):
        crypto.open_from(key, sealed + b"\x00", AAD)
    with pytest.raises(CryptoError):
        crypto.open_from(key, b"\x02" + sealed[1:], AAD)


@pytest.mark.parametrize("point", SMALL_ORDER)
def test_small_order_points_are_refused(point: bytes) -> None:
    assert not crypto.is_x25519_public_key(point)
    with pytest.raises(CryptoError):
        crypto.seal_to(point, b"x", AAD)
    # A box whose ephemeral key is such a point does not open either.
    key = PracticeEncKey.generate()
    forged = b"\x01" + point + bytes(12) + bytes(20)
    with pytest.raises(CryptoError):
        crypto.open_from(key, forged, AAD)


def test_public_key_check() -> None:
    key = PracticeEncKey.generate()
    assert crypto.is_x25519_public_key(key.public_key())
    for bad in (b"", key.public_key()[:31], key.public_key() + b"\x00"):
        assert not crypto.is_x25519_public_key(bad)
        with pytest.raises(CryptoError):
            crypto.seal_to(bad, b"x", AAD)


def test_practice_enc_key_is_redacted_and_wipes() -> None:
    key = PracticeEncKey.generate()
    text = repr(key) + str(key)
    assert key.hex() not in text and "redacted" in text
    assert len(key.public_key()) == 32
    # RFC 7748 section 6.1 (Alice): the public key of a known private key.
    alice = PracticeEncKey(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    assert alice.public_key().hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    key.wipe()
    assert key.wiped
    with pytest.raises(ValueError, match="wiped"):
        key.public_key()


# -- signing domains ----------------------------------------------------------------------
def test_practice_signing_domains_are_pinned_and_separate() -> None:
    domains = {
        crypto.SIGN_DOMAIN_PRACTICE_MEMBER: b"tacit/v1/practice/member\x00",
        crypto.SIGN_DOMAIN_PRACTICE_GRANT: b"tacit/v1/practice/grant\x00",
        crypto.SIGN_DOMAIN_PRACTICE_ITEM: b"tacit/v1/practice/item\x00",
        crypto.SIGN_DOMAIN_PRACTICE_POLICY: b"tacit/v1/practice/policy\x00",
        crypto.SIGN_DOMAIN_PRACTICE_AUDIT: b"tacit/v1/practice/audit\x00",
    }
    for got, want in domains.items():
        assert got == want
    signer = crypto.SigningKey.generate()
    signature = crypto.sign(signer, crypto.SIGN_DOMAIN_PRACTICE_GRANT, b"{}")
    assert crypto.signature_ok(
        signer.public_key(), crypto.SIGN_DOMAIN_PRACTICE_GRANT, b"{}", signature
    )
    for other in domains:
        if other != crypto.SIGN_DOMAIN_PRACTICE_GRANT:
            assert not crypto.signature_ok(signer.public_key(), other, b"{}", signature)


# -- invite codes ---------------------------------------------------------------------------
def test_invite_code_format_and_round_trip() -> None:
    secret = InviteSecret.generate()
    code = crypto.invite_code(secret)
    assert code.startswith("TP-")
    groups = code[3:].split("-")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups)
    assert code == code.upper() and "=" not in code
    assert base64.b32decode("".join(groups)) == secret.reveal()
    assert crypto.parse_invite_code(code) == secret
    known = InviteSecret(bytes(range(20)))
    assert crypto.invite_code(known) == "TP-AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQT"


def test_invite_code_tolerates_how_people_type_it() -> None:
    secret = InviteSecret(bytes(range(20)))
    code = crypto.invite_code(secret)
    bare = code[3:].replace("-", "")
    for typed in (
        code.lower(),
        f"  {code}  \n",
        bare,
        bare.lower(),
        "tp" + bare,
        "TP " + " ".join(code[3:].split("-")),
        code.replace("-", "--"),
        "TP-" + bare[:5] + "-" + bare[5:],
        code.replace("O", "0").replace("I", "1").replace("B", "8"),
    ):
        assert crypto.parse_invite_code(typed) == secret, typed


@pytest.mark.parametrize(
    "garbage",
    ["", "TP-", "TP-AAAA", "hello world", "TP-" + "A" * 31, "TP-" + "A" * 33,
     "TP-" + "9" * 32, "TP-" + "A" * 31 + "=", "X" * 10_000,
     "TP-AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4IB-CEQ!"],
)  # fmt: skip
def test_invite_code_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InviteCodeInvalidError) as err:
        crypto.parse_invite_code(garbage)
    assert err.value.code == "invite_code_invalid"
    assert err.value.exit_status == UsageError.exit_status
    assert "hello" not in err.value.message and "AAAA" not in err.value.message


def test_invite_secret_is_redacted_and_sized() -> None:
    secret = InviteSecret.generate()
    assert len(secret) == 20 and "redacted" in repr(secret)
    assert secret.hex() not in repr(secret)
    with pytest.raises(ValueError, match="20 bytes"):
        InviteSecret(bytes(32))


def test_invite_keys_known_answer() -> None:
    raw = bytes(range(20))
    lookup, envelope, proof = crypto.invite_keys(InviteSecret(raw))
    assert lookup == _hkdf(raw, b"", b"tacit/v1/practice/invite-lookup").hex()
    assert envelope.reveal() == _hkdf(raw, b"", b"tacit/v1/practice/invite-envelope")
    assert proof.reveal() == _hkdf(raw, b"", b"tacit/v1/practice/invite-proof")
    # Pinned, so a change to the labels or the derivation cannot pass unnoticed.
    assert lookup == PINNED_LOOKUP
    assert len({lookup, envelope.hex(), proof.hex()}) == 3
    assert lookup not in repr(envelope) + repr(proof)


def test_invite_proof_uses_the_mac_helpers() -> None:
    _, _, proof = crypto.invite_keys(InviteSecret.generate())
    tag = crypto.mac(proof, b'{"practice_id":"p"}')
    assert crypto.mac_ok(proof, b'{"practice_id":"p"}', tag)
    _, _, other = crypto.invite_keys(InviteSecret.generate())
    assert not crypto.mac_ok(other, b'{"practice_id":"p"}', tag)


PINNED_LOOKUP = "d133af665911ae4e9dfa10f84d95b2c84c087ebf9883ee2ca7a0dc1fcbbee798"
