"""Items-key rotation against the in-memory server: every device converges on one current
key (also when two rotate at once), new and changed items are sealed with it, old items
still open, and a holder of only the old keys cannot open what is sealed later. One test
pins down the limit docs/SECURITY.md states: a copy that also holds the master key can."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.sync import protocol
from app.sync.engine import NEEDS_PASSWORD, SyncEngine, SyncResult
from app.sync.items import (
    FORMAT,
    ItemRefusedError,
    ItemsKey,
    current_key,
    decrypt_item,
    unwrap_items_key,
)
from app.vault import crypto
from app.vault.clock import ManualClock
from app.vault.crypto import SymmetricKey
from tests.sync.devices import MASTER, Device, converge, server_items
from tests.sync.fakes import FakeServer


def _key_id_of(server: FakeServer, item_id: str) -> str:
    return str(server.items[item_id]["key_id"])


def _current(device: Device) -> str | None:
    return device.engine().current_key_id()


def test_rotation_converges_and_new_items_use_the_new_key(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    old_note = a.vault.create_note(client.id, "soap", body="before the rotation")
    converge(a, b)
    first = _current(a)
    assert first is not None and _current(b) == first
    assert _key_id_of(server, old_note.id) == first

    rotated = b.engine().rotate_items_key()
    assert rotated.generation == 1 and _current(b) == rotated.key_id
    new_note = b.vault.create_note(client.id, "soap", body="after the rotation")
    converge(a, b)
    assert server_items(server, "items_key") == 2
    assert _current(a) == _current(b) == rotated.key_id
    assert _key_id_of(server, new_note.id) == rotated.key_id
    assert _key_id_of(server, old_note.id) == first  # not re-sealed until it changes
    assert a.vault.get_note(new_note.id).body == "after the rotation"
    assert b.vault.get_note(old_note.id).body == "before the rotation"

    a.vault.edit_note(old_note.id, body="changed after the rotation")  # lazy re-seal
    converge(a, b)
    assert _key_id_of(server, old_note.id) == rotated.key_id
    assert b.vault.get_note(old_note.id).body == "changed after the rotation"
    assert a.records() == b.records()


def test_concurrent_rotations_converge_on_one_key(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    a, b = devices
    client = a.vault.add_client("Alex Example")
    converge(a, b)
    ka = a.engine().rotate_items_key()
    kb = b.engine().rotate_items_key()
    assert ka.generation == kb.generation == 1  # neither has seen the other's
    na = a.vault.create_note(client.id, "soap", body="A, sealed with A's new key")
    nb = b.vault.create_note(client.id, "soap", body="B, sealed with B's new key")
    converge(a, b)
    winner = max(ka, kb, key=lambda k: k.rank).key_id
    assert _current(a) == _current(b) == winner
    assert server_items(server, "items_key") == 3
    assert a.vault.get_note(nb.id).body == "B, sealed with B's new key"
    assert b.vault.get_note(na.id).body == "A, sealed with A's new key"
    later = a.vault.create_note(client.id, "soap", body="later")
    a.sync()
    assert _key_id_of(server, later.id) == winner
    # A third rotation goes one generation above both.
    assert b.engine().rotate_items_key().generation == 2


def test_current_key_is_the_greatest_generation_then_id() -> None:
    k = SymmetricKey(bytes(32))
    keys = {"b": ItemsKey("b", k, 1), "c": ItemsKey("c", k, 0), "a": ItemsKey("a", k, 1)}
    chosen = current_key(keys)
    assert chosen is not None and chosen.key_id == "b"
    assert current_key({}) is None


def test_wrapped_generation_is_authenticated_and_format_1_still_opens() -> None:
    master = SymmetricKey(MASTER)
    key = ItemsKey("k9", SymmetricKey.generate(), 3, 1_700_000_000_000)
    from app.sync.items import wrap_items_key

    doc = json.loads(wrap_items_key(master, key))
    opened = unwrap_items_key(master, "k9", json.dumps(doc).encode())
    assert (opened.generation, opened.created_at, opened.key) == (3, 1_700_000_000_000, key.key)
    for forged in ({**doc, "g": 99}, {**doc, "t": 0}, {**doc, "g": True}, {**doc, "g": "3"}):
        with pytest.raises(ItemRefusedError):  # a server cannot promote an old key
            unwrap_items_key(master, "k9", json.dumps(forged).encode())
    # A key wrapped before generations existed (format 1): generation 0.
    aad = json.dumps({"v": FORMAT, "id": "k0", "kind": "items_key", "key_id": "master"},
                     sort_keys=True, separators=(",", ":")).encode()  # fmt: skip
    nonce, ct = crypto.seal(master, key.key.reveal(), aad)
    old = json.dumps({"v": 1, "k": protocol.b64encode(nonce + ct)}).encode()
    assert unwrap_items_key(master, "k0", old).generation == 0


def test_a_copy_of_the_old_items_keys_cannot_open_later_items(
    devices: tuple[Device, Device], server: FakeServer, tmp_path: Path, clock: ManualClock
) -> None:
    """A copy taken before the rotation, holding the items keys but not the master key
    (whatever unwraps new items keys): it can open old items and nothing sealed later,
    whether it reads the server's items directly or syncs."""
    a, b = devices
    client = a.vault.add_client("Alex Example")
    old_note = a.vault.create_note(client.id, "soap", body="before the rotation")
    converge(a, b)
    stolen = a.engine().keys()

    b.engine().rotate_items_key()
    new_note = b.vault.create_note(client.id, "soap", body="after the rotation")
    converge(a, b)

    def open_item(item_id: str) -> dict[str, object]:
        item = server.items[item_id]
        blob = protocol.b64decode(item["blob"])
        return decrypt_item(stolen, item_id, item["kind"], item["key_id"], blob)

    assert open_item(old_note.id)["body"] == "before the rotation"
    with pytest.raises(ItemRefusedError, match="does not have"):
        open_item(new_note.id)

    # The same copy as a vault that syncs: the new items key does not open for it, and
    # the new note is refused, not applied.
    thief = Device(tmp_path / "copy", clock, server)
    store = thief.vault.sync_store()
    store.put({"items_keys": json.dumps({k: v.key.hex() for k, v in stolen.items()})})
    result = SyncResult()
    SyncEngine(store, thief.transport, SymmetricKey.generate()).pull(result)  # no master
    assert new_note.id in result.refused
    notes = thief.records()["notes"]
    assert old_note.id in notes and new_note.id not in notes


def test_limit_without_a_new_epoch_a_copy_with_the_master_key_opens_later_items(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    """The limit docs/SECURITY.md states for a rotation made without the account
    password: the new items key is wrapped by the same master key, so a copy that holds
    it and later gets the server's items (a backup, say) opens them. A new key epoch
    (the next test) is what stops that."""
    a, b = devices
    client = a.vault.add_client("Alex Example")
    converge(a, b)
    b.engine().rotate_items_key()
    new_note = b.vault.create_note(client.id, "soap", body="after the rotation")
    converge(a, b)
    master = SymmetricKey(MASTER)
    keys = {i["id"]: unwrap_items_key(master, i["id"], protocol.b64decode(i["blob"]))
            for i in server.items.values() if i["kind"] == "items_key"}  # fmt: skip
    item = server.items[new_note.id]
    content = decrypt_item(keys, new_note.id, "note", item["key_id"],
                           protocol.b64decode(item["blob"]))  # fmt: skip
    assert content["rev"] == 1


def test_a_new_key_epoch_cuts_off_a_copy_with_the_master_key(
    devices: tuple[Device, Device], server: FakeServer
) -> None:
    """After a device is revoked, B makes key epoch 2 (a key from the account password
    and a fresh salt) and rotates under it. A copy of A's keys, master key included,
    plus every item on the server, opens nothing sealed afterwards. A, still holding only
    the master key, refuses the new items until it signs in (derives epoch 2), and then
    pulls them all: nothing is lost."""
    a, b = devices
    client = a.vault.add_client("Alex Example")
    old_note = a.vault.create_note(client.id, "soap", body="before the epoch")
    converge(a, b)
    stolen_keys = a.engine().keys()
    epoch_key = crypto.derive_epoch_key(
        crypto.Passphrase.from_str("account password 123"), b"s" * 16, crypto.INSECURE_TEST_PARAMS
    )
    rotated = b.engine(epochs={2: epoch_key}).rotate_items_key()
    assert rotated.epoch == 2
    new_note = b.vault.create_note(client.id, "soap", body="after the epoch canary-8841")
    b.engine(epochs={2: epoch_key}).sync()
    assert server.items[rotated.key_id]["key_id"] == "master:2"

    # The thief: the master key and every old items key, and the server's items.
    master = SymmetricKey(MASTER)
    wrapped = protocol.b64decode(server.items[rotated.key_id]["blob"])
    for wrap in ("master", "master:2"):
        with pytest.raises(ItemRefusedError):
            unwrap_items_key(master, rotated.key_id, wrapped, wrap)
    item = server.items[new_note.id]
    with pytest.raises(ItemRefusedError):
        decrypt_item(stolen_keys, new_note.id, "note", item["key_id"],
                     protocol.b64decode(item["blob"]))  # fmt: skip

    # A without the epoch key: refuses, applies nothing it cannot open, loses nothing.
    result = a.sync()
    assert rotated.key_id in result.refused and new_note.id in result.refused
    reasons = {r["item_id"]: r["reason"] for r in a.vault.sync_store().refused()}
    assert reasons[rotated.key_id] == NEEDS_PASSWORD
    assert new_note.id not in a.records()["notes"]
    # A's own new note is still sealed with a key B can open (the old current one).
    a_note = a.vault.create_note(client.id, "soap", body="written on A meanwhile")
    a.sync()
    b.engine(epochs={2: epoch_key}).sync()
    assert b.vault.get_note(a_note.id).body == "written on A meanwhile"

    # A signs in (as SyncService.login does: derive, forget those refusals, pull again).
    store = a.vault.sync_store()
    assert store.forget_refused(NEEDS_PASSWORD) >= 1
    store.put({"cursor": None})
    a.engine(epochs={2: epoch_key}).sync()
    assert a.vault.get_note(new_note.id).body == "after the epoch canary-8841"
    assert a.engine(epochs={2: epoch_key}).current_key_id() == rotated.key_id
    assert a.vault.get_note(old_note.id).body == "before the epoch"
