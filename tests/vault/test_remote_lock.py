"""Remote lock and wipe on the vault side (app/vault/remote.py and VaultService's
"remote lock" section): order verification, lock, wipe, escrow restore, offline lease."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app import errors
from app.errors import (
    ClockBackwardsError,
    DeviceLockedError,
    DeviceWipedError,
    EscrowSlotMissingError,
    IntegrityError,
    LeaseExpiredError,
    NotSignedInError,
    OrderRefusedError,
    VaultLockedError,
    WrongEscrowKeyError,
    WrongPassphraseError,
)
from app.sync import protocol
from app.vault import crypto, header, keyslots, remote
from app.vault.clock import ManualClock, iso
from app.vault.crypto import AccountEscrowKey, EscrowKey, Passphrase
from app.vault.keychain import MemoryKeychain
from app.vault.models import LockReason, VaultLocked
from app.vault.remote import Order
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE

NEW_PASSPHRASE = "violet lantern orbit 77 cascade"
CANARY = "Zanzibar-canary-7f3e"


class Account:
    """The account side of a test: the signing key, its id, escrow halves."""

    def __init__(self) -> None:
        self.id = str(uuid.uuid4())
        self.master = crypto.SymmetricKey.generate()
        self.signing = crypto.account_signing_key(self.master)
        self.server_escrow = EscrowKey.generate()

    @property
    def public_key(self) -> bytes:
        return self.signing.public_key()

    def escrow_half(self) -> AccountEscrowKey:
        return crypto.account_escrow_key(self.master)

    def order(
        self, device_id: str, action: str, at_ms: int, *, key: crypto.SigningKey | None = None,
        **overrides: Any,
    ) -> tuple[dict[str, Any], bytes]:  # fmt: skip
        body: dict[str, Any] = {
            "v": 1, "order_id": str(uuid.uuid4()), "account_id": self.id,
            "device_id": device_id, "action": action, "issued_at": protocol.format_time(at_ms),
        }  # fmt: skip
        body.update(overrides)
        signature = crypto.sign(key or self.signing, b"", protocol.order_message(body))  # type: ignore[arg-type]
        return body, signature


def ms(clock: ManualClock, offset_s: float = 0) -> int:
    return int((clock.now().timestamp() + offset_s) * 1000)


@pytest.fixture
def account() -> Account:
    return Account()


@pytest.fixture
def linked(service: VaultService, account: Account) -> VaultService:
    """An unlocked vault with one note holding the canary, linked, with an escrow slot."""
    client = service.add_client(f"Client {CANARY}")
    service.create_note(client.id, "soap", body=f"Session notes {CANARY} " * 50)
    service.set_account_signing_key(account.public_key, account.id)
    service.add_escrow_slot(account.server_escrow, account.escrow_half())
    return service


def reopen(svc: VaultService) -> VaultService:
    svc.lock()
    return VaultService(svc.paths.directory, clock=svc.clock, keychain=svc.keychain)


def give(
    svc: VaultService, account: Account, action: str, at_ms: int, **kw: Any
) -> tuple[Order, remote.OrderResult]:
    hdr = svc.read_header()
    assert hdr.account is not None
    body, sig = account.order(hdr.account.device_id, action, at_ms, **kw)
    order = svc.verify_order(body, sig)
    return order, svc.apply_order(order)


def all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


# -- the signed bytes ------------------------------------------------------------------
ORDER_ID = "abcdef01-2345-4678-9abc-def012345678"  # has letters: case matters
ORDER_CASES: list[dict[str, Any]] = [
    {"v": 1, "order_id": ORDER_ID, "account_id": str(uuid.UUID(int=2)),
     "device_id": str(uuid.UUID(int=3)), "action": a, "issued_at": t}
    for a in ("lock", "wipe", "restore")
    for t in ("2026-01-05T09:00:00.000Z", "1970-01-01T00:00:00.001Z", "2099-12-31T23:59:59.999Z")
]  # fmt: skip
BAD_ORDERS: list[dict[str, Any]] = [
    {**ORDER_CASES[0], "v": 2},
    {**ORDER_CASES[0], "v": True},
    {**ORDER_CASES[0], "v": "1"},
    {**ORDER_CASES[0], "action": "erase"},
    {**ORDER_CASES[0], "order_id": ORDER_ID.upper()},
    {**ORDER_CASES[0], "device_id": "not-a-uuid"},
    {**ORDER_CASES[0], "issued_at": "2026-01-05T09:00:00Z"},
    {**ORDER_CASES[0], "issued_at": "2026-01-05T09:00:00.000+00:00"},
    {**ORDER_CASES[0], "issued_at": "2026-01-05T09:00:00.000"},
    {**ORDER_CASES[0], "issued_at": 12345},
    {**ORDER_CASES[0], "extra": 1},
    {k: v for k, v in ORDER_CASES[0].items() if k != "issued_at"},
]


def test_order_bytes_equal_the_protocol_builders() -> None:
    for order in ORDER_CASES:
        assert remote.order_message(order) == protocol.order_message(order)  # type: ignore[arg-type]
        assert remote.canonical_order(order) == protocol.canonical_order(order)  # type: ignore[arg-type]
    for bad in BAD_ORDERS:  # refused by both, for the same reason
        with pytest.raises(ValueError, match="order") as theirs:
            protocol.order_message(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="order") as ours:
            remote.order_message(bad)
        assert str(ours.value) == str(theirs.value)


def test_labels_equal_the_protocol_constants() -> None:
    assert crypto.SIGN_DOMAIN_DEVICE_ORDER == protocol.ORDER_SIGN_DOMAIN
    assert crypto.HKDF_INFO_ACCOUNT_SIGNING == protocol.SIGNING_KEY_HKDF_INFO
    assert crypto.HKDF_INFO_ESCROW_ACCOUNT == protocol.ESCROW_ACCOUNT_HKDF_INFO
    assert crypto.HKDF_INFO_ESCROW_SLOT == protocol.ESCROW_SLOT_HKDF_INFO


def test_escrow_slot_key_follows_the_protocol_derivation() -> None:
    def hkdf(ikm: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)

    master, server, device = bytes(range(32)), bytes(range(32, 64)), str(uuid.UUID(int=9))
    k_account = hkdf(master, b"tacit/v1/escrow-account")
    expected = hkdf(server + k_account, b"tacit/v1/escrow-slot\x00" + device.encode())
    account = crypto.account_escrow_key(crypto.SymmetricKey(master))
    assert account.reveal() == k_account
    got = crypto.escrow_slot_key(EscrowKey(server), account, device)
    assert got.reveal() == expected
    signing = crypto.account_signing_key(crypto.SymmetricKey(master))
    assert signing.reveal() == hkdf(master, b"tacit/v1/account-signing-key")


def test_error_codes() -> None:
    assert (errors.DeviceLockedError.code, errors.DeviceLockedError.exit_status) == (
        "device_locked", 7,
    )  # fmt: skip
    assert DeviceWipedError.code == "device_wiped" and issubclass(
        DeviceWipedError, DeviceLockedError
    )
    assert LeaseExpiredError.code == "lease_expired"
    assert ClockBackwardsError.code == "clock_backwards"
    assert OrderRefusedError.code == "order_refused"


# -- verification ----------------------------------------------------------------------
def refused(svc: VaultService, body: dict[str, Any], sig: bytes) -> str:
    with pytest.raises(OrderRefusedError) as err:
        svc.verify_order(body, sig)
    return str(err.value.details["reason"])


def test_forged_and_wrong_key_orders_are_refused(linked: VaultService, account: Account) -> None:
    device, now = linked.device_id, ms(linked.clock)  # type: ignore[arg-type]
    body, sig = account.order(device, "lock", now)
    assert refused(linked, body, sig[:-1] + bytes([sig[-1] ^ 1])) == "signature"
    assert refused(linked, body, sig[:32]) == "signature"
    assert refused(linked, {**body, "action": "wipe"}, sig) == "signature"
    assert refused(linked, {**body, "issued_at": protocol.format_time(now + 1)}, sig) == "signature"
    other, other_sig = account.order(device, "lock", now, key=crypto.SigningKey.generate())
    assert refused(linked, other, other_sig) == "signature"
    for bad in BAD_ORDERS[:-2]:
        assert refused(linked, {**body, **{k: v for k, v in bad.items() if k != "order_id"}},
                       sig) in ("malformed", "signature")  # fmt: skip
    assert refused(linked, {**body, "extra": 1}, sig) == "malformed"
    assert linked.verify_order(body, sig).action == "lock"
    assert linked.is_unlocked  # verifying does nothing


def test_orders_for_another_account_or_device_are_refused(
    linked: VaultService, account: Account
) -> None:
    now = ms(linked.clock)  # type: ignore[arg-type]
    body, sig = account.order(str(uuid.uuid4()), "wipe", now)
    assert refused(linked, body, sig) == "device"
    body, sig = account.order(linked.device_id, "wipe", now, account_id=str(uuid.uuid4()))
    assert refused(linked, body, sig) == "account"


def test_an_unlinked_vault_accepts_no_order(service: VaultService, account: Account) -> None:
    body, sig = account.order(service.device_id, "lock", ms(service.clock))  # type: ignore[arg-type]
    assert refused(service, body, sig) == "no_signing_key"


def test_apply_order_checks_again(linked: VaultService, account: Account) -> None:
    body, sig = account.order(linked.device_id, "wipe", ms(linked.clock))  # type: ignore[arg-type]
    forged = Order(body["order_id"], account.id, linked.device_id, "wipe", body["issued_at"],
                   sig[:-1] + bytes([sig[-1] ^ 1]))  # fmt: skip
    with pytest.raises(OrderRefusedError):
        linked.apply_order(forged)
    assert linked.is_unlocked and linked.paths.database.exists()


def test_replayed_and_older_orders_are_refused(linked: VaultService, account: Account) -> None:
    clock: ManualClock = linked.clock  # type: ignore[assignment]
    device, t0 = linked.device_id, ms(clock)
    older, older_sig = account.order(device, "lock", t0 - 60_000)
    same_time, same_sig = account.order(device, "lock", t0)
    lock, result = give(linked, account, "lock", t0)
    assert result.ack_state == "locked"
    # The order in effect may come again (a lost ack): harmless, nothing more happens.
    again = linked.verify_order(lock.to_dict(), lock.signature)
    assert again.current and linked.apply_order(again).already_applied
    assert refused(linked, older, older_sig) == "replayed"
    assert refused(linked, same_time, same_sig) == "replayed"
    # After the owner restores, the old lock order cannot be replayed.
    linked.restore_from_escrow(
        account.server_escrow, account.escrow_half(), Passphrase.from_str(NEW_PASSPHRASE)
    )
    assert refused(linked, lock.to_dict(), lock.signature) == "replayed"
    clock.advance(5)
    _, result = give(linked, account, "lock", ms(clock))  # a newer order still works
    assert result.ack_state == "locked" and not linked.is_unlocked


# -- lock ------------------------------------------------------------------------------
def test_lock_while_unlocked(
    linked: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase
) -> None:
    events: list[object] = []
    linked.subscribe(events.append)
    vault_id = linked.read_header().vault_id
    assert keychain.load(vault_id) is not None
    order, result = give(linked, account, "lock", ms(linked.clock))  # type: ignore[arg-type]
    assert (result.ack_state, result.destroyed_slots, result.was_unlocked) == (
        "locked", ("passphrase",), True,
    )  # fmt: skip
    assert result.audit == "recorded" and not result.already_applied
    assert not linked.is_unlocked
    assert VaultLocked(LockReason.REMOTE) in events
    hdr = linked.read_header()
    assert set(hdr.slots) == {"recovery", "escrow"} and hdr.device_locked
    assert keychain.load(vault_id) is None
    with pytest.raises(DeviceLockedError) as err:
        linked.unlock(passphrase)
    assert (err.value.code, err.value.exit_status) == ("device_locked", 7)
    assert err.value.details["order_id"] == order.order_id
    status = linked.status()
    assert status["device_locked"] and status["remote"]["order"]["id"] == order.order_id
    assert status["state"] == "locked"
    linked.restore_from_escrow(account.server_escrow, account.escrow_half(),
                               Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    details = [e.detail for e in linked.audit_entries(action="lock")]
    assert details.count(remote.audit_detail(order)) == 1  # recorded once, not twice


def test_lock_overwrites_the_old_header_in_place(
    linked: VaultService, account: Account, tmp_path: Path
) -> None:
    old_copy = tmp_path / "old-header-link"
    old_copy.hardlink_to(linked.paths.header)  # sees the old file's blocks
    slot = linked.read_header().slots["passphrase"]
    give(linked, account, "lock", ms(linked.clock))  # type: ignore[arg-type]
    data = old_copy.read_bytes()
    assert data and set(data) == {0}
    assert header._b64(slot.ciphertext).encode() not in all_bytes(linked.paths.directory)


def test_shred_overwrites_before_deleting(tmp_path: Path) -> None:
    victim, link = tmp_path / "vault.db", tmp_path / "link"
    victim.write_bytes(CANARY.encode() * 100_000)
    link.hardlink_to(victim)
    assert remote.shred([victim, tmp_path / "missing"]) == ("vault.db",)
    assert not victim.exists() and set(link.read_bytes()) == {0}


def test_lock_while_locked_then_recovery_key_lifts_it(
    service: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase
) -> None:
    recovery = service_recovery(service)
    service.set_account_signing_key(account.public_key, account.id)
    svc = reopen(service)
    order, result = give(svc, account, "lock", ms(svc.clock))  # type: ignore[arg-type]
    assert result.audit == "pending" and not result.was_unlocked
    with pytest.raises(DeviceLockedError):
        svc.unlock(passphrase)
    # Decision (docs/SECURITY.md): the recovery key still opens a locked device; the owner
    # holds it, a thief does not. It lifts the lock; a new passphrase is set next.
    svc.unlock_with_recovery_key(recovery)
    assert not svc.read_header().device_locked
    svc.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    details = [e.detail for e in svc.audit_entries(action="lock")]
    assert details.count(remote.audit_detail(order)) == 1
    unlocks = [e.detail or "" for e in svc.audit_entries(action="unlock")]
    assert any(order.order_id in d and "recovery key" in d for d in unlocks)
    svc = reopen(svc)
    assert svc.read_header().device.pending_audit == ()
    with pytest.raises(WrongPassphraseError):
        svc.unlock(passphrase)
    svc.unlock(Passphrase.from_str(NEW_PASSPHRASE))
    assert [e.detail for e in svc.audit_entries(action="lock")].count(
        remote.audit_detail(order)
    ) == 1


def service_recovery(service: VaultService) -> str:
    """A fresh vault's recovery key (the fixture throws it away): make a new vault."""
    directory = service.paths.directory
    service.lock()
    for p in directory.iterdir():
        p.unlink()
    return service.create(Passphrase.from_str(PASSPHRASE))


def test_a_crash_after_the_header_write_still_locks(
    linked: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    vault_id = linked.read_header().vault_id

    def crash(_vault_id: str) -> None:
        raise KeyboardInterrupt  # the process dies between the two steps

    monkeypatch.setattr(keychain, "delete", crash)
    with pytest.raises(KeyboardInterrupt):
        give(linked, account, "lock", ms(linked.clock))  # type: ignore[arg-type]
    monkeypatch.undo()
    svc = VaultService(linked.paths.directory, clock=linked.clock, keychain=keychain)
    assert keychain.load(vault_id) is not None
    with pytest.raises(DeviceLockedError):
        svc.unlock(passphrase)
    assert keychain.load(vault_id) is None  # finished on the way


def test_another_process_locked_the_vault(
    linked: VaultService, account: Account, keychain: MemoryKeychain
) -> None:
    other = VaultService(linked.paths.directory, clock=linked.clock, keychain=keychain)
    give(other, account, "lock", ms(linked.clock))  # type: ignore[arg-type]
    # The app still has the vault open; it must not write a passphrase slot back.
    with pytest.raises(DeviceLockedError):
        linked.change_passphrase(Passphrase.from_str(NEW_PASSPHRASE))
    assert not linked.is_unlocked
    assert "passphrase" not in linked.read_header().slots


def test_header_mac_still_guards_a_locked_vault(service: VaultService, account: Account) -> None:
    recovery = service_recovery(service)
    service.set_account_signing_key(account.public_key, account.id)
    svc = reopen(service)
    give(svc, account, "lock", ms(svc.clock))  # type: ignore[arg-type]
    hdr = svc.read_header()
    # mac_locked authenticates the header minus the passphrase slot, nothing more.
    elsewhere = keyslots.create(
        Passphrase.from_str(PASSPHRASE), MemoryKeychain(), crypto.INSECURE_TEST_PARAMS, "x"
    )
    other = elsewhere.header.slots["recovery"]
    for tampered in (
        hdr.with_slot("escrow", other),  # a slot grafted from elsewhere
        header.VaultHeader(**{**_fields(hdr), "lease_days": 30}),
        header.VaultHeader(**{**_fields(hdr), "account": header.AccountLink(
            account.id, str(uuid.uuid4()), account.public_key)}),
    ):  # fmt: skip
        with pytest.raises(IntegrityError, match="altered"):
            keyslots.open_with_recovery_key(tampered, recovery)
    keyslots.open_with_recovery_key(hdr, recovery).wipe()


def _fields(hdr: header.VaultHeader) -> dict[str, Any]:
    return {name: getattr(hdr, name) for name in header.VaultHeader.__dataclass_fields__}


def test_mac_locked_is_not_accepted_while_a_passphrase_slot_exists(
    service: VaultService, passphrase: Passphrase
) -> None:
    service.lock()
    doc = json.loads(service.paths.header.read_bytes())
    doc["mac"] = doc["mac_locked"]
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    service.paths.header.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="altered"):
        service.unlock(passphrase)


def test_headers_from_before_remote_lock_still_open(
    service: VaultService, passphrase: Passphrase
) -> None:
    service.lock()
    doc = json.loads(service.paths.header.read_bytes())
    del doc["mac_locked"]
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    service.paths.header.write_text(json.dumps(doc))
    service.unlock(passphrase)
    assert service.status()["remote"]["linked"] is False
    assert service.status()["device_locked"] is False


# -- wipe ------------------------------------------------------------------------------
def assert_wiped(svc: VaultService, passphrase: Passphrase, account: Account) -> None:
    directory = svc.paths.directory
    left = sorted(p.name for p in directory.iterdir())
    assert left in (["vault.header"], ["vault.header", "vault.lock"])
    lock_file = directory / "vault.lock"
    assert not lock_file.exists() or lock_file.stat().st_size == 0  # the empty lock file
    hdr = svc.read_header()
    assert hdr.slots == {} and hdr.wiped
    assert CANARY.encode() not in all_bytes(directory)
    with pytest.raises(DeviceWipedError):
        svc.unlock(passphrase)
    with pytest.raises(DeviceWipedError):
        svc.unlock_with_recovery_key("anything")
    with pytest.raises(DeviceWipedError):
        svc.restore_from_escrow(account.server_escrow, account.escrow_half(),
                                Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    assert svc.status()["remote"]["wiped"]


@pytest.mark.parametrize("unlocked", [True, False])
def test_wipe(
    linked: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase,
    unlocked: bool,
) -> None:  # fmt: skip
    vault_id = linked.read_header().vault_id
    svc = linked if unlocked else reopen(linked)
    if unlocked:
        svc.add_client(f"Unflushed {CANARY}")  # something in the WAL too
    order, result = give(svc, account, "wipe", ms(svc.clock))  # type: ignore[arg-type]
    assert result.ack_state == "wiped" and result.was_unlocked is unlocked
    assert set(result.destroyed_slots) == {"passphrase", "recovery", "escrow"}
    assert "vault.db" in result.removed_files
    assert keychain.load(vault_id) is None and not svc.is_unlocked
    assert_wiped(svc, passphrase, account)
    again = svc.apply_order(svc.verify_order(order.to_dict(), order.signature))
    assert again.already_applied and again.ack_state == "wiped"


def test_a_crash_mid_wipe_leaves_nothing_that_opens(
    linked: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    hdr_before = linked.read_header()

    def crash(_paths: object) -> tuple[str, ...]:
        raise KeyboardInterrupt

    monkeypatch.setattr(remote, "shred", crash)
    with pytest.raises(KeyboardInterrupt):
        give(linked, account, "wipe", ms(linked.clock))  # type: ignore[arg-type]
    monkeypatch.undo()
    assert linked.paths.database.exists()  # the files are still there...
    hdr = VaultService(linked.paths.directory, clock=linked.clock, keychain=keychain).read_header()
    assert hdr.slots == {}  # ...but no slot opens them
    for slot_opener in (
        lambda: keyslots.open_with_passphrase(hdr, passphrase, keychain),
        lambda: keyslots.open_with_escrow(hdr, account.server_escrow, account.escrow_half()),
    ):
        with pytest.raises((WrongPassphraseError, EscrowSlotMissingError, IntegrityError)):
            slot_opener()
    # Even the slots from before cannot be grafted back: the device secret is gone.
    assert keychain.load(hdr_before.vault_id) is None
    svc = VaultService(linked.paths.directory, clock=linked.clock, keychain=keychain)
    with pytest.raises(DeviceWipedError):
        svc.unlock(passphrase)  # ...and finishes the wipe
    assert_wiped(svc, passphrase, account)


def test_a_crash_writing_the_wipe_header_leaves_the_vault_as_it_was(
    linked: VaultService, account: Account, passphrase: Passphrase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    before = linked.paths.header.read_bytes()
    svc = reopen(linked)
    body, sig = account.order(svc.read_header().account.device_id, "wipe", ms(svc.clock))  # type: ignore[union-attr]
    order = svc.verify_order(body, sig)

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(header, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        svc.apply_order(order)
    monkeypatch.undo()
    assert svc.paths.header.read_bytes() == before
    svc.apply_order(svc.verify_order(body, sig))  # the order comes again (no ack was sent)
    assert_wiped(svc, passphrase, account)


# -- escrow ----------------------------------------------------------------------------
def test_escrow_restore_round_trip(
    linked: VaultService, account: Account, keychain: MemoryKeychain, passphrase: Passphrase
) -> None:
    notes = {n.id: linked.get_note(n.id).body for n in linked.list_notes()}
    vault_id = linked.read_header().vault_id
    old_secret = keychain.load(vault_id)
    svc = reopen(linked)
    order, _ = give(svc, account, "lock", ms(svc.clock))  # type: ignore[arg-type]
    with pytest.raises(WrongEscrowKeyError):
        svc.restore_from_escrow(EscrowKey.generate(), account.escrow_half(),
                                Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    with pytest.raises(WrongEscrowKeyError):  # the server's key alone is not enough
        svc.restore_from_escrow(account.server_escrow, AccountEscrowKey.generate(),
                                Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    svc.restore_from_escrow(account.server_escrow, account.escrow_half(),
                            Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    assert svc.is_unlocked and not svc.read_header().device_locked
    # the used escrow slot is gone with the lock (its key is replaced on the server next)
    assert header.SLOT_ESCROW not in svc.read_header().slots
    assert {n.id: svc.get_note(n.id).body for n in svc.list_notes()} == notes
    new_secret = keychain.load(vault_id)
    assert new_secret is not None and new_secret != old_secret
    entries = [(e.action, e.detail or "") for e in svc.audit_entries()]
    assert ("lock", remote.audit_detail(order)) in entries
    assert any(a == "unlock" and "escrow key" in d and order.order_id in d for a, d in entries)
    assert any(a == "passphrase_change" and "escrow" in d for a, d in entries)
    svc = reopen(svc)
    with pytest.raises(WrongPassphraseError):
        svc.unlock(passphrase)
    svc.unlock(Passphrase.from_str(NEW_PASSPHRASE))
    assert len(svc.list_notes()) == len(notes)
    assert svc.verify_audit().ok


def test_escrow_slot_needs_a_linked_unlocked_vault(service: VaultService, account: Account) -> None:
    with pytest.raises(NotSignedInError):
        service.add_escrow_slot(account.server_escrow, account.escrow_half())
    service.set_account_signing_key(account.public_key, account.id)
    service.add_escrow_slot(account.server_escrow, account.escrow_half())
    first = service.read_header().slots["escrow"]
    service.add_escrow_slot(EscrowKey.generate(), account.escrow_half())  # replaced
    assert service.read_header().slots["escrow"] != first
    service.lock()
    with pytest.raises(VaultLockedError):
        service.add_escrow_slot(account.server_escrow, account.escrow_half())
    with pytest.raises(VaultLockedError):
        service.set_account_signing_key(account.public_key, account.id)


def test_no_escrow_slot_is_a_clear_error(service: VaultService, account: Account) -> None:
    service.set_account_signing_key(account.public_key, account.id)
    service.lock()
    with pytest.raises(EscrowSlotMissingError) as err:
        service.restore_from_escrow(account.server_escrow, account.escrow_half(),
                                    Passphrase.from_str(NEW_PASSPHRASE))  # fmt: skip
    assert err.value.code == "no_escrow_slot"


def test_relinking_to_another_account_drops_the_escrow_slot(
    linked: VaultService, account: Account
) -> None:
    other = Account()
    linked.set_account_signing_key(other.public_key, other.id)
    assert "escrow" not in linked.read_header().slots
    body, sig = account.order(linked.device_id, "lock", ms(linked.clock))  # type: ignore[arg-type]
    assert refused(linked, body, sig) == "signature"


# -- offline lease ---------------------------------------------------------------------
def test_lease_is_off_by_default(service: VaultService, passphrase: Passphrase) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    service.lock()
    clock.advance(400 * 86400)
    service.unlock(passphrase)
    clock.advance(-300 * 86400)
    service.lock()
    service.unlock(passphrase)


def test_lease_expires_and_a_checkin_renews_it(
    service: VaultService, passphrase: Passphrase
) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    service.set_lease(7)
    service.lock()
    clock.advance(6 * 86400)
    service.unlock(passphrase)
    service.lock()
    clock.advance(2 * 86400)
    with pytest.raises(LeaseExpiredError) as err:
        service.unlock(passphrase)
    assert err.value.code == "lease_expired" and err.value.exit_status == 7
    service.record_checkin()  # the control token reached the server: not enough now
    with pytest.raises(LeaseExpiredError):
        service.unlock(passphrase)
    service.record_checkin(reauthenticated=True)  # password + second factor checked
    service.unlock(passphrase)
    assert service.status()["remote"]["lease_days"] == 7
    service.set_lease(None)
    service.lock()
    clock.advance(30 * 86400)
    service.unlock(passphrase)


def test_lease_refuses_a_clock_set_back(service: VaultService, passphrase: Passphrase) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    service.set_lease(7)
    service.lock()
    clock.advance(5 * 86400)
    service.unlock(passphrase)  # the vault has now seen day 5
    service.lock()
    clock.advance(3 * 86400)
    with pytest.raises(LeaseExpiredError):
        service.unlock(passphrase)
    clock.advance(-6 * 86400)  # back to day 2: inside the lease, but the clock was moved
    with pytest.raises(ClockBackwardsError) as err:
        service.unlock(passphrase)
    assert err.value.code == "clock_backwards"
    # A server contact with the server's time sets things right.
    service.record_checkin(server_time=clock.now() + timedelta(days=6))
    clock.advance(6 * 86400)
    service.unlock(passphrase)


def test_lease_setting_is_under_the_header_mac(
    service: VaultService, passphrase: Passphrase
) -> None:
    service.set_lease(7)
    service.lock()
    doc = json.loads(service.paths.header.read_bytes())
    del doc["lease_days"]  # a thief switching the lease off
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    service.paths.header.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        service.unlock(passphrase)


def test_lease_bounds(service: VaultService) -> None:
    for bad in (0, -1, 3651):
        with pytest.raises(errors.InvalidInputError):
            service.set_lease(bad)
    entries = service.audit_entries(action="settings_change")
    assert entries == []
    service.set_lease(30)
    assert "30" in (service.audit_entries(action="settings_change")[-1].detail or "")


def test_status_while_locked(linked: VaultService, account: Account) -> None:
    status: Callable[[], dict[str, Any]] = linked.status
    assert status()["remote"]["linked"] and status()["remote"]["escrow_slot"]
    linked.lock()
    info = linked.status()
    assert info["remote"]["account_id"] == account.id and not info["device_locked"]
    assert info["remote"]["last_checkin"] is None
    linked.record_checkin()
    assert linked.status()["remote"]["last_checkin"] == iso(linked.clock.now())


def test_a_full_header_round_trips_and_refuses_any_flipped_byte(
    linked: VaultService, account: Account
) -> None:
    linked.set_lease(30)
    linked.record_checkin()
    svc = reopen(linked)
    give(svc, account, "lock", ms(svc.clock))  # type: ignore[arg-type]
    data = svc.paths.header.read_bytes()
    hdr = header.decode(data)
    assert hdr.encode() == data and hdr.device.pending_audit and hdr.lease_days == 30
    for index in range(0, len(data), 7):
        raw = bytearray(data)
        raw[index] ^= 0x04
        try:
            parsed = header.decode(bytes(raw))
        except IntegrityError:
            continue
        assert parsed == hdr  # only insignificant whitespace can flip unnoticed


# -- review fixes: concurrency and trust in what comes from outside ---------------------
def test_header_updates_from_two_processes_are_serialised(
    linked: VaultService, account: Account
) -> None:
    """A read-modify-write of the header (here: a check-in) waits for another one in
    progress (here: a lock order), then reads the fresh header: it cannot write back
    the passphrase slot the order destroyed."""
    import threading

    other = VaultService(linked.paths.directory, clock=linked.clock, keychain=linked.keychain)
    hdr = linked.read_header()
    assert hdr.account is not None
    body, sig = account.order(hdr.account.device_id, "lock", ms(linked.clock))  # type: ignore[arg-type]
    order = other.verify_order(body, sig)
    done = threading.Event()
    with other._header_txn():
        worker = threading.Thread(target=lambda: (linked.record_checkin(), done.set()))
        worker.start()
        assert not done.wait(0.3)  # blocked on the file lock
        other.apply_order(order)
    worker.join(5)
    assert done.is_set()
    after = linked.read_header()
    assert after.device_locked and header.SLOT_PASSPHRASE not in after.slots
    assert after.device.last_checkin is not None


def test_an_edited_header_is_not_adopted_by_an_open_vault(
    linked: VaultService, account: Account
) -> None:
    evil = crypto.account_signing_key(crypto.SymmetricKey.generate())
    hdr = linked.read_header()
    assert hdr.account is not None
    link = header.AccountLink(hdr.account.account_id, hdr.account.device_id, evil.public_key())
    header.write(linked.paths.header, replace(hdr, account=link, lease_days=None))
    linked.record_checkin()  # writes the device state back, keeps the authenticated fields
    body, sig = account.order(hdr.account.device_id, "lock", ms(linked.clock), key=evil)  # type: ignore[arg-type]
    with pytest.raises(OrderRefusedError):
        linked.verify_order(body, sig)
    linked.set_lease(30)  # a reseal: the MAC goes over the fields read at unlock
    svc = reopen(linked)
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    resealed = svc.read_header().account
    assert resealed is not None and resealed.signing_public_key == account.public_key


def test_a_server_clock_far_ahead_cannot_push_the_lease_away(
    service: VaultService, passphrase: Passphrase
) -> None:
    from datetime import UTC, datetime

    clock: ManualClock = service.clock  # type: ignore[assignment]
    service.set_lease(7)
    service.record_checkin(server_time=datetime(9999, 12, 31, tzinfo=UTC))
    assert service.status()["remote"]["lease_days"] == 7  # no overflow
    service.lock()
    clock.advance(9 * 86400)  # 9 days: past a check-in capped one day ahead + 7
    with pytest.raises(LeaseExpiredError):
        service.unlock(passphrase)


def test_check_ins_are_written_at_most_every_ten_minutes(service: VaultService) -> None:
    clock: ManualClock = service.clock  # type: ignore[assignment]
    service.record_checkin()
    first = service.read_header().device.last_checkin
    before = service.paths.header.read_bytes()
    clock.advance(60)
    service.record_checkin()  # a sync a minute later: no header write (no fsync)
    assert service.paths.header.read_bytes() == before
    clock.advance(10 * 60)
    service.record_checkin()
    assert service.read_header().device.last_checkin != first
