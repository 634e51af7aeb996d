"""Item crypto: round trips, and the server cannot alter, swap, relabel or roll back."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sync.items import (
    ItemRefusedError,
    ItemsKey,
    check_not_rolled_back,
    decrypt_item,
    encrypt_item,
    unwrap_items_key,
    wrap_items_key,
)
from app.vault import crypto
from app.vault.crypto import KdfParams, Passphrase, SymmetricKey

KEY = ItemsKey("k1", SymmetricKey(bytes(range(32))))
KEYS = {"k1": KEY}
CONTENT = {"rev": 3, "title": "Session", "body": "Private words."}


def test_round_trip() -> None:
    blob = encrypt_item(KEY, "id-1", "note", CONTENT)
    assert b"Private words" not in blob
    assert decrypt_item(KEYS, "id-1", "note", "k1", blob) == CONTENT


def test_fresh_item_key_each_version() -> None:
    assert encrypt_item(KEY, "id-1", "note", CONTENT) != encrypt_item(KEY, "id-1", "note", CONTENT)


@pytest.mark.parametrize(
    ("item_id", "kind", "key_id"),
    [("id-2", "note", "k1"), ("id-1", "client", "k1"), ("id-1", "note", "k2")],
)
def test_swapped_or_relabelled_blob_is_refused(item_id: str, kind: str, key_id: str) -> None:
    blob = encrypt_item(KEY, "id-1", "note", CONTENT)
    keys = {**KEYS, "k2": ItemsKey("k2", KEY.key)}  # even under the same key material
    with pytest.raises(ItemRefusedError):
        decrypt_item(keys, item_id, kind, key_id, blob)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_altered_byte_is_refused(data: st.DataObject) -> None:
    blob = bytearray(encrypt_item(KEY, "id-1", "note", CONTENT))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        out = decrypt_item(KEYS, "id-1", "note", "k1", bytes(blob))
    except ItemRefusedError:
        return
    assert out == CONTENT  # only a no-op change (base64 padding is validated) can pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_garbage_never_crashes(blob: bytes) -> None:
    with pytest.raises(ItemRefusedError):
        decrypt_item(KEYS, "id-1", "note", "k1", blob)


def test_rollback_is_refused() -> None:
    check_not_rolled_back("id-1", {"rev": 4}, 4)
    check_not_rolled_back("id-1", {"rev": 5}, 4)
    check_not_rolled_back("id-1", {"rev": 1}, None)
    with pytest.raises(ItemRefusedError, match="rolled back"):
        check_not_rolled_back("id-1", {"rev": 3}, 4)


def test_unknown_items_key_and_missing_rev() -> None:
    blob = encrypt_item(KEY, "id-1", "note", {"body": "no rev"})
    with pytest.raises(ItemRefusedError, match="revision"):
        decrypt_item(KEYS, "id-1", "note", "k1", blob)
    with pytest.raises(ItemRefusedError, match="items key"):
        decrypt_item({}, "id-1", "note", "k1", blob)


def test_items_key_wrapping() -> None:
    master = SymmetricKey.generate()
    wrapped = wrap_items_key(master, KEY)
    assert unwrap_items_key(master, "k1", wrapped).key == KEY.key
    with pytest.raises(ItemRefusedError):
        unwrap_items_key(SymmetricKey.generate(), "k1", wrapped)
    with pytest.raises(ItemRefusedError):
        unwrap_items_key(master, "k2", wrapped)
    assert "redacted" in repr(KEY)
    assert json.loads(wrapped)["v"] == 2  # with its generation (format 1 still opens)


def test_account_keys_split_and_login_signature() -> None:
    params = KdfParams(memory_kib=1024, iterations=1, parallelism=1)
    master, login = crypto.derive_account_keys(Passphrase.from_str("pw"), b"s" * 16, params)
    again, login2 = crypto.derive_account_keys(Passphrase.from_str("pw"), b"s" * 16, params)
    assert master == again and login.public_key() == login2.public_key()
    assert master.reveal() != login.reveal()
    sig = crypto.login_signature(login, "https://127.0.0.1:8443", b"c" * 32)
    message = b"https://127.0.0.1:8443\x00" + b"c" * 32
    assert crypto.signature_ok(login.public_key(), crypto.SIGN_DOMAIN_LOGIN, message, sig)
    other = b"https://evil.example\x00" + b"c" * 32
    assert not crypto.signature_ok(login.public_key(), crypto.SIGN_DOMAIN_LOGIN, other, sig)
