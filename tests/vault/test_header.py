"""The header parser: round trips, and every malformed or altered input is refused with
the project's own error, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import IntegrityError, UnsupportedVersionError
from app.vault import crypto, header, keyslots
from app.vault.crypto import Passphrase
from app.vault.keychain import MemoryKeychain, NoKeychain

PASS = Passphrase.from_str("correct horse battery staple 42")


@pytest.fixture(scope="module")
def created() -> keyslots.CreatedVault:
    return keyslots.create(PASS, NoKeychain(), crypto.INSECURE_TEST_PARAMS, "2026-01-05T09:00:00Z")


def test_round_trip(created: keyslots.CreatedVault) -> None:
    data = created.header.encode()
    parsed = header.decode(data)
    assert parsed == created.header
    assert parsed.encode() == data
    assert keyslots.open_with_passphrase(parsed, PASS, NoKeychain()) == created.db_key


def test_header_holds_no_key_material(created: keyslots.CreatedVault) -> None:
    text = created.header.encode()
    assert created.db_key.hex().encode() not in text
    assert created.db_key.reveal() not in text


def _mutate(data: bytes, change: dict[str, object], fix_checksum: bool) -> bytes:
    doc = json.loads(data)
    doc.update(change)
    if fix_checksum:
        rest = {k: v for k, v in doc.items() if k != "checksum"}
        doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    return json.dumps(doc).encode()


def test_unknown_future_version(created: keyslots.CreatedVault) -> None:
    data = _mutate(created.header.encode(), {"format_version": 99}, fix_checksum=True)
    with pytest.raises(UnsupportedVersionError) as err:
        header.decode(data)
    assert err.value.code == "unsupported_version"
    assert err.value.exit_status == 5


def test_wrong_magic_and_garbage() -> None:
    for data in (b"", b"{}", b"[]", b"\xff\xfe", b'{"magic": "other"}', b"x" * 70_000):
        with pytest.raises(IntegrityError):
            header.decode(data)


def test_checksum_catches_accidental_change(created: keyslots.CreatedVault) -> None:
    data = _mutate(created.header.encode(), {"created_at": "2020-01-01"}, fix_checksum=False)
    with pytest.raises(IntegrityError, match="checksum"):
        header.decode(data)


def test_deliberate_kdf_downgrade_fails_to_open(created: keyslots.CreatedVault) -> None:
    doc = json.loads(created.header.encode())
    doc["kdf"]["iterations"] = 2
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    tampered = header.decode(json.dumps(doc).encode())
    from app.errors import WrongPassphraseError

    with pytest.raises(WrongPassphraseError):
        keyslots.open_with_passphrase(tampered, PASS, NoKeychain())


def test_mac_catches_swapped_recovery_slot(created: keyslots.CreatedVault) -> None:
    other = keyslots.create(PASS, NoKeychain(), crypto.INSECURE_TEST_PARAMS, "x")
    hdr = created.header.with_slot(header.SLOT_RECOVERY, other.header.slots["recovery"])
    reparsed = header.decode(hdr.encode())  # checksum is recomputed on encode
    with pytest.raises(IntegrityError, match="altered"):
        keyslots.open_with_passphrase(reparsed, PASS, NoKeychain())


def test_binding_flag_cannot_be_stripped() -> None:
    keychain = MemoryKeychain()
    bound = keyslots.create(PASS, keychain, crypto.INSECURE_TEST_PARAMS, "x")
    assert bound.header.keychain_bound
    doc = json.loads(bound.header.encode())
    doc["keychain_bound"] = False
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    from app.errors import WrongPassphraseError

    with pytest.raises(WrongPassphraseError):
        keyslots.open_with_passphrase(header.decode(json.dumps(doc).encode()), PASS, keychain)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_flipped_byte_is_refused(created: keyslots.CreatedVault, data: st.DataObject) -> None:
    raw = bytearray(created.header.encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[index] ^= 1 << bit
    # Any change is caught before a key is derived, or fails the slot/MAC after.
    try:
        parsed = header.decode(bytes(raw))
    except IntegrityError:
        return
    # A flip inside insignificant whitespace can leave the document equal.
    assert parsed == created.header


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(blob: bytes) -> None:
    with pytest.raises(IntegrityError):
        header.decode(blob)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                        max_size=4),
                    max_leaves=20))  # fmt: skip
def test_random_json_never_crashes(doc: object) -> None:
    with pytest.raises(IntegrityError):
        header.decode(json.dumps(doc).encode())


def test_truncated_header_is_refused(created: keyslots.CreatedVault) -> None:
    data = created.header.encode()
    for cut in (1, len(data) // 3, len(data) // 2, len(data) - 3):
        with pytest.raises(IntegrityError):
            header.decode(data[:cut])
