"""End to end, remote lock: a real ``python -m app.sync.server`` over TLS, two vaults (A
and B) on one account, driven through the ``tacit`` CLI as subprocesses. B locks,
restores and wipes A; A carries the orders out, refuses a forged one, and comes back
with every note after ``tacit unlock --online``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import protocol
from app.sync.engine import SyncEngine
from app.sync.items import ItemRefusedError, ItemsKey, decrypt_item, unwrap_items_key
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.keychain import NoKeychain
from app.vault.service import VaultService
from tests.sync.server.helpers import RunningServer, running_server
from tests.sync.test_e2e import Device as SyncDevice
from tests.sync.test_e2e import server_rows
from tests.test_cli import NEW_PASSPHRASE

CANARIES: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


class Device(SyncDevice):
    def client(self, name: str) -> str:
        CANARIES.append(name)
        return super().client(name)

    def note(self, client_id: str, body: str) -> str:
        CANARIES.append(body)
        return super().note(client_id, body)

    def devices(self) -> list[dict[str, Any]]:
        doc = self.ok("devices", "list")
        assert isinstance(doc, list)
        return doc

    def header(self) -> dict[str, Any]:
        doc = json.loads((self.vault / "vault.header").read_text())
        assert isinstance(doc, dict)
        return doc

    def device_id(self) -> str:
        doc = self.ok("account", "status")
        assert isinstance(doc, dict)
        return str(doc["device_id"])


class Pair:
    def __init__(self, base: Path, srv: RunningServer) -> None:
        self.a, self.b = Device(base / "a", srv), Device(base / "b", srv)
        self.user = f"dr-{uuid.uuid4().hex[:10]}"
        created = self.a.create(self.user)
        self.totp = pyotp.parse_uri(created["totp_uri"])
        # Recovery codes for both sign-ins: the one TOTP code of the test stays unused.
        for device, code in ((self.a, created["recovery_codes"][0]),
                             (self.b, created["recovery_codes"][1])):  # fmt: skip
            result = device.login(self.user, "--recovery-code", code)
            assert result.code == 0, result.err
            assert result.json["signing_key"] == "registered"  # type: ignore[index]
        self.a_id = self.a.device_id()


@pytest.fixture
def pair(tmp_path: Path, server: RunningServer) -> Pair:
    return Pair(tmp_path, server)


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_lock_reaches_an_online_device_and_restore_keeps_every_note(
    pair: Pair, server: RunningServer
) -> None:
    a, b = pair.a, pair.b
    client = a.client("Lia Canary-Locke")
    synced = a.note(client, "synced before the lock canary-5001")
    first = a.sync()
    assert first["escrow_slot"] is True
    assert "escrow" in a.header()["slots"]
    status = a.ok("account", "status")
    assert isinstance(status, dict)
    assert status["escrow_slot"] is True and status["signing_key"] == "registered"
    assert status["control_token_in"] == "header"  # the tests run without an OS keychain
    offline = a.note(client, "written offline, never synced canary-5002")

    rows = b.devices()
    assert {"id", "name", "last_seen", "state", "current"} <= set(rows[0])
    by_id = _by_id(rows)
    assert len(rows) == 2 and by_id[pair.a_id]["current"] is False
    assert next(r for r in rows if r["current"])["id"] == b.device_id()  # B marks itself
    assert {r["state"] for r in rows} == {"active"}

    # A is online, waiting for an order (the app keeps this long-poll open).
    watcher = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--json", "devices", "check", "--wait", "20"],
        env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(2.0)  # let it start polling
    locked = b.ok("devices", "lock", pair.a_id[:8])
    sent = time.monotonic()
    assert isinstance(locked, dict) and locked["state"] == "lost"
    out, err = watcher.communicate(timeout=30)
    latency = time.monotonic() - sent
    assert watcher.returncode == 0, err
    check = json.loads(out)
    assert check["action"] == "lock" and check["applied"] and check["acknowledged"]
    assert latency < 5.0

    refused = a.run("note", "list")
    assert refused.code == 7 and refused.error["code"] == "device_locked"
    assert "passphrase" not in a.header()["slots"]  # the passphrase cannot open it any more
    with_old = a.run("status")
    assert with_old.code == 7 and with_old.error["code"] == "device_locked"

    shown = _by_id(b.devices())[pair.a_id]
    assert shown["state"] == "locked" and shown["order"]["acked_at"] is not None
    order = shown["order"]
    taken = protocol.parse_time(order["acked_at"]) - protocol.parse_time(order["received_at"])
    sys.stdout.write(f"\nremote lock latency (online device): server {taken} ms, "
                     f"seen by the test {latency * 1000:.0f} ms\n")  # fmt: skip
    (acked,) = server_rows(server, "SELECT acked_at FROM device_orders WHERE id = ?",
                           (order["id"],))  # fmt: skip
    assert acked[0] is not None

    # Release is refused while the device is still marked lost (before the credentials
    # are checked, so the TOTP code is not spent).
    early = a.run("unlock", "--online", "--totp", pair.totp.now(),
                  env={"TACIT_NEW_PASSPHRASE": NEW_PASSPHRASE})  # fmt: skip
    assert early.code == 10 and early.error["code"] == "device_lost"

    restored = b.ok("devices", "restore", pair.a_id)
    assert isinstance(restored, dict) and restored["state"] == "active"
    back = a.run("unlock", "--online", "--totp", pair.totp.now(),
                 env={"TACIT_NEW_PASSPHRASE": NEW_PASSPHRASE})  # fmt: skip
    assert back.code == 0, back.err
    assert back.json["restored"] is True  # type: ignore[index]

    a.env["TACIT_PASSPHRASE"] = NEW_PASSPHRASE
    assert a.body(synced) == "synced before the lock canary-5001"
    assert a.body(offline) == "written offline, never synced canary-5002"
    assert "passphrase" in a.header()["slots"] and "escrow" in a.header()["slots"]
    old = a("--json", "status", env={"TACIT_PASSPHRASE": "the old one is gone 1234"})
    assert old.code == 3
    a.sync()  # the new session works, and the offline note reaches B
    b.sync()
    assert b.body(offline) == "written offline, never synced canary-5002"
    audit = a.ok("audit", "list", "--action", "lock")
    assert isinstance(audit, list) and any("remote lock order" in e["detail"] for e in audit)


def test_a_wipe_shreds_the_vault_and_leaves_the_notes_on_b(pair: Pair) -> None:
    a, b = pair.a, pair.b
    note = a.note(a.client("Wim Canary-Wipe"), "wiped device's note canary-5101")
    a.sync()
    b.sync()
    wiped = b.ok("devices", "wipe", pair.a_id)
    assert isinstance(wiped, dict) and wiped["state"] == "lost"
    result = a.run("note", "list")  # the next contact carries it out
    assert result.code == 7 and result.error["code"] == "device_wiped"
    assert not (a.vault / "vault.db").exists()
    assert not [p for p in a.vault.iterdir() if p.name.startswith("vault.db")]
    assert a.header()["slots"] == {}
    recovery = a.run("recover", env={"TACIT_RECOVERY_KEY": "TACIT-0000"})
    assert recovery.code != 0
    assert _by_id(b.devices())[pair.a_id]["state"] == "wiped"
    assert b.body(note) == "wiped device's note canary-5101"


def test_a_forged_order_is_refused(pair: Pair, server: RunningServer) -> None:
    a = pair.a
    a.note(a.client("Fay Canary-Forge"), "forged order canary-5201")
    a.sync()
    forger = Ed25519PrivateKey.generate()
    (account,) = server_rows(server, "SELECT account_id FROM devices WHERE id = ?",
                             (pair.a_id,))[0]  # fmt: skip
    now = int(time.time() * 1000)
    order: protocol.DeviceOrder = {
        "v": 1, "order_id": str(uuid.uuid4()), "account_id": account,
        "device_id": pair.a_id, "action": "wipe", "issued_at": protocol.format_time(now),
    }  # fmt: skip
    signature = forger.sign(protocol.order_message(order))
    path = server.db_url.removeprefix("sqlite:///")
    import sqlite3

    with sqlite3.connect(path, timeout=10) as conn:  # a malicious server, or its database
        conn.execute(
            "INSERT INTO device_orders (account_id, id, device_id, action, issued_at, "
            "signature, received_at, acked_at) VALUES (?, ?, ?, 'wipe', ?, ?, ?, NULL)",
            (account, order["order_id"], pair.a_id, now, signature, now),
        )
        conn.execute("UPDATE devices SET state = 'lost', order_id = ? WHERE id = ?",
                     (order["order_id"], pair.a_id))  # fmt: skip
    check = a.run("devices", "check")
    assert check.code == 14 and check.error["code"] == "order_refused"
    assert check.error["reason"] == "signature"
    listed = a.run("note", "list")  # the command goes on; the order is only reported
    assert listed.code == 0, listed.err
    assert "order_refused" in listed.err
    assert (a.vault / "vault.db").exists() and "passphrase" in a.header()["slots"]
    (acked,) = server_rows(server, "SELECT acked_at FROM device_orders WHERE id = ?",
                           (order["order_id"],))  # fmt: skip
    assert acked[0] is None


def test_a_device_cannot_order_itself_and_an_unlinked_vault_is_untouched(
    pair: Pair, tmp_path: Path, server: RunningServer
) -> None:
    mine = pair.a.run("devices", "lock", pair.a_id)
    assert mine.code == 2 and "this device" in mine.error["message"]
    lone = Device(tmp_path / "lone", server)
    assert lone.run("note", "list").code == 0  # not linked: no order check at all
    assert lone.run("devices", "check").code == 13


def test_lock_and_remove_rotate_the_items_keys(pair: Pair, server: RunningServer) -> None:
    a, b = pair.a, pair.b
    client = a.client("Rory Canary-Rotate")
    before = a.note(client, "sealed before the rotation canary-5301")
    a.sync()
    b.sync()
    status = b.ok("account", "status")
    assert isinstance(status, dict)
    account = status["account_id"]

    def keys() -> list[str]:
        rows = server_rows(server, "SELECT id FROM items WHERE account_id = ? AND "
                           "kind = 'items_key'", (account,))  # fmt: skip
        return [r[0] for r in rows]

    def key_of(item_id: str) -> str:
        (row,) = server_rows(server, "SELECT key_id FROM items WHERE account_id = ? AND "
                             "id = ?", (account, item_id))  # fmt: skip
        return str(row[0])

    (first,) = keys()
    locked = b.ok("devices", "lock", pair.a_id)
    assert isinstance(locked, dict) and locked["rotated"]["generation"] == 1
    new_key = locked["rotated"]["key_id"]
    assert keys() == [first]  # queued: B's next sync pushes it
    after = b.note(b.client("Rhea Canary-Rotate"), "sealed after the lock canary-5302")
    b.sync()
    assert sorted(keys()) == sorted([first, new_key])
    assert key_of(after) == new_key and key_of(before) == first  # old ones: lazily
    assert b.body(before) == "sealed before the rotation canary-5301"

    removed = b.ok("devices", "remove", pair.a_id, "--totp", pair.totp.now())
    assert isinstance(removed, dict) and removed["state"] == "removed"
    assert removed["rotated"]["generation"] == 2
    rotated = b.ok("sync", "rotate-keys")  # by hand: one more, pushed at once
    assert isinstance(rotated, dict) and rotated["generation"] == 3
    assert len(keys()) == 4 and _by_id(b.devices())[pair.a_id]["state"] == "removed"
    CANARIES.append("changed after the removal canary-5303")
    b.edit(after, "changed after the removal canary-5303")
    b.sync()
    assert key_of(after) == rotated["key_id"]


def _stolen_keys(device: Device) -> tuple[SymmetricKey, dict[str, ItemsKey]]:
    """What a thief who copied A's unlocked vault holds: the master key and every items
    key (read here straight from A's vault, as such a copy would)."""
    vault = VaultService(device.vault, keychain=NoKeychain())
    vault.unlock(Passphrase.from_str(device.env["TACIT_PASSPHRASE"]))
    try:
        store = vault.sync_store()
        master = SymmetricKey(bytes.fromhex(str(store.get("master_key"))))
        keys = SyncEngine(store, None, master).keys()  # type: ignore[arg-type]
        return master, keys
    finally:
        vault.lock()


def test_after_a_new_key_epoch_a_stolen_copy_of_the_old_keys_reads_nothing_new(
    pair: Pair, server: RunningServer
) -> None:
    """The acceptance test of rotation: B locks A with the account password (a new key
    epoch). A copy of A's keys taken before, master key included, plus the server's
    whole database, opens nothing written afterwards; A itself, once restored with the
    password, reads everything."""
    a, b = pair.a, pair.b
    client = a.client("Esme Canary-Epoch")
    before = a.note(client, "written before the epoch canary-5401")
    a.sync()
    b.sync()
    master, stolen = _stolen_keys(a)
    (account,) = server_rows(server, "SELECT account_id FROM items WHERE id = ?", (before,))

    locked = b.ok("devices", "lock", pair.a_id)  # TACIT_ACCOUNT_PASSWORD is set
    assert isinstance(locked, dict) and locked["rotated"]["epoch"] == 2
    assert locked["rotated"]["sessions_ended"] >= 0
    after = b.note(client, "written after the epoch canary-5402")
    b.sync()

    rows = server_rows(server, "SELECT id, kind, key_id, ciphertext FROM items WHERE "
                       "account_id = ?", account)  # fmt: skip
    by_id = {r[0]: r for r in rows}
    opened = dict(stolen)
    for item_id, kind, key_id, blob in rows:
        if kind != "items_key":
            continue
        try:
            opened[item_id] = unwrap_items_key(master, item_id, _blob(blob), key_id)
        except ItemRefusedError:
            assert key_id == "master:2"  # only the new epoch's key stays shut
    _, _, note_key, note_blob = by_id[after]
    assert note_key == locked["rotated"]["key_id"]
    with pytest.raises(ItemRefusedError):
        decrypt_item(opened, after, "note", note_key, _blob(note_blob))
    _, _, old_key, old_blob = by_id[before]
    old = decrypt_item(opened, before, "note", old_key, _blob(old_blob))
    assert old["body"] == "written before the epoch canary-5401"  # it had that already

    # Nothing is lost: restored with the password, A derives epoch 2 and reads it all.
    assert a.run("note", "list").error["code"] == "device_locked"
    b.ok("devices", "restore", pair.a_id)
    back = a.run("unlock", "--online", "--totp", pair.totp.now(),
                 env={"TACIT_NEW_PASSPHRASE": NEW_PASSPHRASE})  # fmt: skip
    assert back.code == 0, back.err
    a.env["TACIT_PASSPHRASE"] = NEW_PASSPHRASE
    a.sync()
    assert a.body(after) == "written after the epoch canary-5402"
    assert a.body(before) == "written before the epoch canary-5401"
    a_new = a.note(client, "A again, under epoch 2 canary-5403")
    a.sync()
    b_sync = b.run("sync")
    if b_sync.code != 0:  # B's own session survived its epoch; nothing else should fail
        raise AssertionError(b_sync.err)
    assert b.body(a_new) == "A again, under epoch 2 canary-5403"


def _blob(value: Any) -> bytes:
    return protocol.b64decode(value) if isinstance(value, str) else bytes(value)


def test_zz_the_server_database_holds_no_plaintext(server: RunningServer) -> None:
    assert CANARIES
    path = Path(server.db_url.removeprefix("sqlite:///"))
    data = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    for text in CANARIES:
        for piece in {text, *text.split()}:
            if "canary" in piece.lower():
                assert piece.encode() not in data, piece
    assert os.environ.get("TACIT_TEST_SYNC_FAULT") is None
