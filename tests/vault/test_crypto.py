"""Known answers for every primitive and label, the production KDF floor, and the
behaviour of typed secrets."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.vault import crypto
from app.vault.crypto import (
    CryptoError,
    DbKey,
    KdfParams,
    Passphrase,
    SecretBytes,
    SymmetricKey,
)


def test_argon2id_known_answer() -> None:
    # Reference vector of the Argon2 reference implementation (Argon2id v1.3,
    # t=2, m=2^16 KiB, p=1, "password"/"somesalt", 32-byte tag).
    out = crypto.argon2id(
        Passphrase(b"password"), b"somesalt", KdfParams(memory_kib=1 << 16, iterations=2,
                                                         parallelism=1)
    )  # fmt: skip
    assert out.hex() == "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"


def test_hkdf_rfc5869_case_3() -> None:
    # RFC 5869 A.3 (SHA-256, empty salt and info): the first 32 bytes of its OKM.
    ikm = SecretBytes(bytes.fromhex("0b" * 22))
    out = crypto.hkdf(ikm, salt=b"", label="")
    assert out.hex() == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (
            crypto.LABEL_PASSPHRASE_KEK,
            "98b229f917e22e93fb6dcd7752cf47c625d912a9406e18dadae59b469089334b",
        ),
        (
            crypto.LABEL_RECOVERY_KEK,
            "50b518230aed1acfe0a0e1fe04a4aed692cd259bc00fd52b28de4052989dc8b2",
        ),
        (
            crypto.LABEL_HEADER_MAC,
            "a5fd08d34aea1cbb43a59d0861607d15d9cc1a740772b09d28b70f79f8dc9c4d",
        ),
    ],
)
def test_labels_are_pinned(label: str, expected: str) -> None:
    # A changed label silently makes every existing vault unopenable: pin them.
    ikm = SymmetricKey(bytes(range(32)))
    assert crypto.hkdf(ikm, salt=b"tacit-test-salt!", label=label).hex() == expected


def test_labels_give_independent_keys() -> None:
    ikm = SymmetricKey(bytes(32))
    keys = {
        crypto.hkdf(ikm, salt=b"s", label=lbl).hex()
        for lbl in (crypto.LABEL_PASSPHRASE_KEK, crypto.LABEL_RECOVERY_KEK, crypto.LABEL_HEADER_MAC)
    }
    assert len(keys) == 3


def test_seal_round_trip_and_tamper() -> None:
    key = SymmetricKey.generate()
    nonce, ct = crypto.seal(key, b"wrapped key material", b"aad")
    assert crypto.open_sealed(key, nonce, ct, b"aad") == b"wrapped key material"
    with pytest.raises(CryptoError):
        crypto.open_sealed(key, nonce, ct, b"other aad")
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(CryptoError):
        crypto.open_sealed(key, nonce, flipped, b"aad")
    with pytest.raises(CryptoError):
        crypto.open_sealed(SymmetricKey.generate(), nonce, ct, b"aad")


def test_nonces_are_fresh() -> None:
    key = SymmetricKey.generate()
    assert len({crypto.seal(key, b"x", b"")[0] for _ in range(200)}) == 200


def test_secret_repr_is_redacted_and_wipe_zeroes() -> None:
    key = DbKey(b"\x41" * 32)
    assert "41" not in repr(key)
    assert "AAAA" not in repr(key) and "AAAA" not in str(key)
    assert "redacted" in repr(key)
    key.wipe()
    assert key.wiped
    with pytest.raises(ValueError, match="wiped"):
        key.reveal()


def test_secrets_refuse_pickling_and_hashing() -> None:
    key = SymmetricKey.generate()
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        hash(key)


def test_passphrase_is_unicode_normalised() -> None:
    composed = Passphrase.from_str("caf\u00e9 au lait")
    decomposed = Passphrase.from_str("cafe\u0301 au lait")
    assert composed == decomposed


def test_production_floor_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.INSECURE_TEST_KDF_ENV, raising=False)
    floor = crypto.kdf_floor()
    assert floor == crypto.PRODUCTION_FLOOR
    assert floor.memory_kib >= 256 * 1024
    assert floor.iterations >= 3
    assert floor.parallelism >= 2
    assert not crypto.INSECURE_TEST_PARAMS.at_least(floor)
    # Creation without the switch calibrates, and never goes below the floor.
    fast = iter([0.0, 10.0])  # pretend one run at the floor took 10 s: stay at the floor
    params = crypto.calibrate_kdf(1.0, floor=KdfParams(1024, 3, 2), timer=lambda: next(fast))
    assert params.iterations == 3 and params.memory_kib == 1024 and params.parallelism == 2
    quick = iter([0.0, 0.1])  # 0.1 s at t=3 -> scale to ~1 s
    params = crypto.calibrate_kdf(1.0, floor=KdfParams(1024, 3, 2), timer=lambda: next(quick))
    assert params.iterations == 30


def test_switch_makes_new_vaults_weak_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.INSECURE_TEST_KDF_ENV, "1")
    assert crypto.new_creation_params() == crypto.INSECURE_TEST_PARAMS
    monkeypatch.setenv(crypto.INSECURE_TEST_KDF_ENV, "yes")  # only exactly "1" counts
    assert not crypto.insecure_test_kdf_enabled()


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=64), st.binary(max_size=64))
def test_wrap_unwrap_round_trip(raw: bytes, aad: bytes, other: bytes) -> None:
    kek = SymmetricKey.generate()
    nonce, ct = crypto.wrap_key(kek, DbKey(raw), aad)
    assert crypto.unwrap_key(kek, nonce, ct, aad, DbKey).reveal() == raw
    if other != aad:
        with pytest.raises(CryptoError):
            crypto.unwrap_key(kek, nonce, ct, other, DbKey)
