"""Practice-signed device orders (docs/PRACTICE.md, "Offboarding"): a member's vault also
obeys lock orders signed by the practice owner's key kept in its header, under the
header MAC."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from app.errors import (
    DeviceLockedError,
    IntegrityError,
    InvalidInputError,
    OrderRefusedError,
    VaultLockedError,
)
from app.vault import crypto, header
from app.vault.crypto import Passphrase
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.vault.test_remote_lock import Account, reopen


class Owner:
    """The practice owner's signing key, signing orders for a member's device."""

    def __init__(self) -> None:
        self.key = crypto.SigningKey.generate()

    @property
    def public_key(self) -> bytes:
        return self.key.public_key()


@pytest.fixture
def member(service: VaultService) -> tuple[VaultService, Account, Owner]:
    account, owner = Account(), Owner()
    service.add_client("Client of a member")
    service.set_account_signing_key(account.public_key, account.id)
    service.set_practice_order_key(owner.public_key)
    return service, account, owner


def ms(svc: VaultService, offset_s: float = 0) -> int:
    return int((svc.clock.now().timestamp() + offset_s) * 1000)


def device_of(svc: VaultService) -> str:
    link = svc.read_header().account
    assert link is not None
    return link.device_id


def test_an_order_signed_by_the_practice_key_locks_the_vault(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    body, sig = account.order(device_of(svc), "lock", ms(svc), key=owner.key)
    order = svc.verify_order(body, sig)
    assert order.signer == "practice"
    result = svc.apply_order(order)
    assert result.ack_state == "locked" and result.was_unlocked and not svc.is_unlocked
    with pytest.raises(DeviceLockedError):
        svc.unlock(Passphrase.from_str(PASSPHRASE))
    # Delivered again, it is the order in effect (idempotent), not a replay.
    assert svc.verify_order(body, sig).current


def test_the_practice_key_works_while_locked(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    svc = reopen(svc)
    body, sig = account.order(device_of(svc), "lock", ms(svc), key=owner.key)
    result = svc.apply_order(svc.verify_order(body, sig))
    assert result.ack_state == "locked" and not result.was_unlocked
    assert svc.read_header().device_locked
    assert "by the practice owner" in svc.read_header().device.pending_audit[-1].detail


def test_the_account_key_still_works(member: tuple[VaultService, Account, Owner]) -> None:
    svc, account, _ = member
    body, sig = account.order(device_of(svc), "lock", ms(svc))
    assert svc.verify_order(body, sig).signer == "account"


def test_other_keys_and_other_actions_are_refused(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    stranger = Owner()
    for key, action in ((stranger.key, "lock"), (owner.key, "wipe"), (owner.key, "restore")):
        body, sig = account.order(device_of(svc), action, ms(svc), key=key)
        with pytest.raises(OrderRefusedError) as err:
            svc.verify_order(body, sig)
        assert err.value.details["reason"] == "signature"
    # The same checks as for the account's orders: account, device (replay: below).
    for device, overrides, reason in (
        (device_of(svc), {"account_id": str(uuid.uuid4())}, "account"),
        (str(uuid.uuid4()), {}, "device"),
    ):
        body, sig = account.order(device, "lock", ms(svc), key=owner.key, **overrides)
        with pytest.raises(OrderRefusedError) as err:
            svc.verify_order(body, sig)
        assert err.value.details["reason"] == reason
    assert svc.is_unlocked


def test_replay_is_refused_for_practice_orders(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    body, sig = account.order(device_of(svc), "lock", ms(svc), key=owner.key)
    svc.apply_order(svc.verify_order(body, sig))
    older, older_sig = account.order(device_of(svc), "lock", ms(svc, -60), key=owner.key)
    with pytest.raises(OrderRefusedError) as err:
        svc.verify_order(older, older_sig)
    assert err.value.details["reason"] == "replayed"


def test_after_removal_the_practice_key_is_refused(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    svc.set_practice_order_key(None)
    assert svc.read_header().practice_order_key is None
    body, sig = account.order(device_of(svc), "lock", ms(svc), key=owner.key)
    with pytest.raises(OrderRefusedError) as err:
        svc.verify_order(body, sig)
    assert err.value.details["reason"] == "signature"
    svc = reopen(svc)
    with pytest.raises(OrderRefusedError):
        svc.verify_order(body, sig)
    assert "practice_order_key" not in json.loads(svc.paths.header.read_bytes())


def test_the_key_survives_lock_unlock_and_header_rewrites(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, owner = member
    svc.set_lease(30)
    svc.set_sync_control("opaque control record")
    svc.record_checkin()
    svc.set_account_signing_key(account.public_key, account.id)
    svc.change_passphrase(Passphrase.from_str("a brand new passphrase 99 zebra"))
    svc = reopen(svc)
    assert svc.read_header().practice_order_key == owner.public_key
    svc.unlock(Passphrase.from_str("a brand new passphrase 99 zebra"))
    assert svc.read_header().practice_order_key == owner.public_key
    body, sig = account.order(device_of(svc), "lock", ms(svc), key=owner.key)
    assert svc.verify_order(body, sig).signer == "practice"
    actions = [(e.action, e.detail) for e in svc.audit_entries(action="account")]
    assert ("account", "practice order key set") in actions


def test_relinking_to_another_account_drops_the_practice_key(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, account, _ = member
    svc.set_account_signing_key(account.public_key, account.id)  # the same account: kept
    assert svc.read_header().practice_order_key is not None
    other = Account()
    svc.set_account_signing_key(other.public_key, other.id)
    assert svc.read_header().practice_order_key is None


def test_a_swapped_practice_key_is_caught_by_the_header_mac(
    member: tuple[VaultService, Account, Owner],
) -> None:
    svc, _, _ = member
    svc.lock()
    attacker = Owner()
    hdr = svc.read_header()
    # A consistent checksum (header.write recomputes it), the old MAC.
    header.write(svc.paths.header, replace(hdr, practice_order_key=attacker.public_key))
    assert svc.read_header().practice_order_key == attacker.public_key
    with pytest.raises(IntegrityError):
        svc.unlock(Passphrase.from_str(PASSPHRASE))
    # So is removing it (a member dodging offboarding), and adding one to a header that
    # had none.
    header.write(svc.paths.header, replace(hdr, practice_order_key=None))
    with pytest.raises(IntegrityError):
        svc.unlock(Passphrase.from_str(PASSPHRASE))
    header.write(svc.paths.header, hdr)
    svc.unlock(Passphrase.from_str(PASSPHRASE))
    svc.set_practice_order_key(None)
    svc.lock()
    plain = svc.read_header()
    header.write(svc.paths.header, replace(plain, practice_order_key=attacker.public_key))
    with pytest.raises(IntegrityError):
        svc.unlock(Passphrase.from_str(PASSPHRASE))


def test_header_field_round_trip_and_old_headers(service: VaultService) -> None:
    hdr = service.read_header()
    assert hdr.practice_order_key is None  # a header without the field, as before
    assert b"practice_order_key" not in hdr.encode()
    key = Owner().public_key
    again = header.decode(replace(hdr, practice_order_key=key).encode())
    assert again.practice_order_key == key
    doc = json.loads(replace(hdr, practice_order_key=key).encode())
    doc["practice_order_key"] = "AAAA"  # 3 bytes
    rest = {k: v for k, v in doc.items() if k != "checksum"}
    doc["checksum"] = crypto.sha256(header._canonical(rest)).hex()
    with pytest.raises(IntegrityError):
        header.decode(json.dumps(doc).encode())


def test_setting_the_key_needs_an_unlocked_vault_and_a_valid_key(service: VaultService) -> None:
    with pytest.raises(InvalidInputError):
        service.set_practice_order_key(b"\x01" * 31)
    with pytest.raises(InvalidInputError):
        service.set_practice_order_key(bytes(32) + b"x")
    service.lock()
    with pytest.raises(VaultLockedError):
        service.set_practice_order_key(Owner().public_key)
