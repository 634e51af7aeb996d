"""Item encryption: what the sync server stores, and how the client refuses anything the
server altered, swapped or rolled back.

Every synced thing is an item ``{id, kind, etag, deleted, key_id, blob}``. The blob is

    {"v": 1, "wk": b64(nonce || AEAD(items key, item key)),
             "c":  b64(nonce || AEAD(item key, canonical JSON content))}

with the item's id, kind and key_id (and the format version) as associated data for
both seals: a blob moved to another id or kind, or relabelled with another items key,
does not open. Each item key is random and used for one item version only.

Items keys (kind ``items_key``, key_id ``master``) are wrapped by the account master key:

    {"v": 2, "g": generation, "t": created_at (ms), "k": b64(nonce || AEAD(master, key))}

with id, kind, key_id, ``g`` and ``t`` as associated data (format 1, ``{"v": 1, "k"}``,
has generation 0). The account's **current** items key, the one new item versions are
sealed with, is the greatest by (generation, key id) among the keys a device holds
(``current_key``): a rotation makes generation = highest known + 1, so two devices that
rotate at once make two keys of one generation and agree on the one with the greater
id as soon as each has pulled the other's.

Rollback: the content carries ``rev``, a counter the writing client increments on every
change. The client remembers the highest ``rev`` it has seen per item; a pulled version
with a lower one is an old version replayed by the server and is refused.

Invariant: nothing here raises anything but ``ItemRefusedError`` (a TacitError) on bad
input from the server.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import IntegrityError
from app.sync import protocol
from app.vault import crypto
from app.vault.crypto import CryptoError, SymmetricKey

FORMAT = 1
KEY_FORMAT = 2  # items keys with a generation (format 1 ones still open)
MAX_BLOB = 8 * 1024 * 1024


class ItemRefusedError(IntegrityError):
    code = "item_refused"
    default_message = "the server sent an item that fails authentication"


@dataclass(frozen=True, slots=True)
class ItemsKey:
    """An account items key (random, wrapped by the master key for the server)."""

    key_id: str
    key: SymmetricKey
    generation: int = 0
    created_at: int = 0  # ms, the making device's clock (information only)
    epoch: int = 1  # the account key epoch whose key wraps it (1: the master key)

    def __repr__(self) -> str:
        return f"<ItemsKey {self.key_id} g{self.generation} redacted>"

    @property
    def rank(self) -> tuple[int, str]:
        return self.generation, self.key_id


def current_key(keys: Mapping[str, ItemsKey]) -> ItemsKey | None:
    """The key new item versions are sealed with: the greatest (generation, key id).
    Every device holding the same keys picks the same one."""
    return max(keys.values(), key=lambda k: k.rank, default=None)


def _aad(item_id: str, kind: str, key_id: str) -> bytes:
    doc = {"v": FORMAT, "id": item_id, "kind": kind, "key_id": key_id}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ItemRefusedError("malformed item blob")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ItemRefusedError("malformed item blob") from None


def encrypt_item(items_key: ItemsKey, item_id: str, kind: str, content: Mapping[str, Any]) -> bytes:
    """Seal one version of an item's content."""
    aad = _aad(item_id, kind, items_key.key_id)
    item_key = SymmetricKey.generate()
    try:
        wk_nonce, wk = crypto.seal(items_key.key, item_key.reveal(), aad)
        plaintext = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        c_nonce, c = crypto.seal(item_key, plaintext, aad)
    finally:
        item_key.wipe()
    blob = {"v": FORMAT, "wk": _b64(wk_nonce + wk), "c": _b64(c_nonce + c)}
    return json.dumps(blob, separators=(",", ":")).encode()


def decrypt_item(
    keys: Mapping[str, ItemsKey], item_id: str, kind: str, key_id: str, blob: bytes
) -> dict[str, Any]:
    """Open an item. Raises ItemRefusedError when anything does not authenticate."""
    if len(blob) > MAX_BLOB:
        raise ItemRefusedError("item blob too large")
    items_key = keys.get(key_id)
    if items_key is None:
        raise ItemRefusedError(f"item {item_id} uses an items key this device does not have")
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ItemRefusedError("malformed item blob") from None
    if not isinstance(doc, dict) or doc.get("v") != FORMAT:
        raise ItemRefusedError("unknown item format")
    wk, c = _unb64(doc.get("wk")), _unb64(doc.get("c"))
    n = crypto.NONCE_BYTES
    if len(wk) <= n or len(c) <= n:
        raise ItemRefusedError("malformed item blob")
    aad = _aad(item_id, kind, key_id)
    try:
        item_key = crypto.unwrap_key(items_key.key, wk[:n], wk[n:], aad, SymmetricKey)
        try:
            plaintext = crypto.open_sealed(item_key, c[:n], c[n:], aad)
        finally:
            item_key.wipe()
    except CryptoError:
        raise ItemRefusedError(
            f"item {item_id} failed authentication (altered, or moved from another item)"
        ) from None
    try:
        content = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ItemRefusedError("item content is not valid JSON") from None
    if not isinstance(content, dict) or not isinstance(content.get("rev"), int):
        raise ItemRefusedError("item content lacks its revision counter")
    return content


def check_not_rolled_back(item_id: str, content: Mapping[str, Any], known_rev: int | None) -> None:
    """Refuse a version older than one this device has already seen."""
    rev = content.get("rev")
    if not isinstance(rev, int):
        raise ItemRefusedError("item content lacks its revision counter")
    if known_rev is not None and rev < known_rev:
        raise ItemRefusedError(
            f"item {item_id} was rolled back to an older version (rev {rev} < {known_rev})"
        )


MASTER_WRAP = "master"
MAX_EPOCH = protocol.MAX_KEY_EPOCH


def wrap_id(epoch: int) -> str:
    """The ``key_id`` of an items-key item wrapped under account key epoch ``epoch``:
    ``master`` for the first (the master key itself), ``master:N`` after."""
    return MASTER_WRAP if epoch == 1 else f"{MASTER_WRAP}:{epoch}"


def wrap_epoch(key_id: str) -> int | None:
    """Inverse of ``wrap_id``; None for anything else."""
    if key_id == MASTER_WRAP:
        return 1
    prefix, _, number = key_id.partition(":")
    if prefix != MASTER_WRAP or not number.isdigit() or number != str(int(number)):
        return None
    epoch = int(number)
    return epoch if 2 <= epoch <= MAX_EPOCH else None


def _key_aad(key_id: str, generation: int, created_at: int, wrap: str = MASTER_WRAP) -> bytes:
    doc = {"v": KEY_FORMAT, "id": key_id, "kind": "items_key", "key_id": wrap,
           "g": generation, "t": created_at}  # fmt: skip
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def wrap_items_key(wrap_key: SymmetricKey, items_key: ItemsKey) -> bytes:
    """The items key as an item blob sealed by the key of its account key epoch (the
    master key for epoch 1; kind ``items_key``), its generation, creation time and
    epoch (as the item's ``key_id``, ``wrap_id``) bound as associated data."""
    g, t = items_key.generation, items_key.created_at
    aad = _key_aad(items_key.key_id, g, t, wrap_id(items_key.epoch))
    nonce, ct = crypto.seal(wrap_key, items_key.key.reveal(), aad)
    doc = {"v": KEY_FORMAT, "g": g, "t": t, "k": _b64(nonce + ct)}
    return json.dumps(doc, separators=(",", ":")).encode()


def unwrap_items_key(
    wrap_key: SymmetricKey, key_id: str, blob: bytes, wrap: str = MASTER_WRAP
) -> ItemsKey:
    """Open an items-key item whose ``key_id`` is ``wrap`` with that epoch's key.
    Raises ItemRefusedError (malformed, unknown format, fails authentication)."""
    epoch = wrap_epoch(wrap)
    if epoch is None:
        raise ItemRefusedError("an items key is wrapped by an unknown key")
    try:
        doc = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ItemRefusedError("malformed items key") from None
    if not isinstance(doc, dict) or doc.get("v") not in (FORMAT, KEY_FORMAT):
        raise ItemRefusedError("unknown items key format")
    generation = created_at = 0
    if doc["v"] == KEY_FORMAT:
        g, t = doc.get("g"), doc.get("t")
        if (type(g) is not int or type(t) is not int  # not bool, not float
                or not 0 <= g < 2**31 or not 0 <= t < 2**53):  # fmt: skip
            raise ItemRefusedError("malformed items key")
        generation, created_at = g, t
        aad = _key_aad(key_id, generation, created_at, wrap)
    elif epoch == 1:
        aad = _aad(key_id, "items_key", MASTER_WRAP)
    else:
        raise ItemRefusedError("unknown items key format")
    raw = _unb64(doc.get("k"))
    n = crypto.NONCE_BYTES
    if len(raw) <= n:
        raise ItemRefusedError("malformed items key")
    try:
        key = crypto.unwrap_key(wrap_key, raw[:n], raw[n:], aad, SymmetricKey)
    except CryptoError:
        raise ItemRefusedError("an items key failed authentication") from None
    return ItemsKey(key_id, key, generation, created_at, epoch)
