"""The client half of remote lock, alone with fakes (app/sync/devices.py): where the
control record lives, and what an order check does with each answer. The real server
and CLI are in test_remote_lock_e2e.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.errors import NotSignedInError, OfflineError, OrderRefusedError
from app.sync import protocol
from app.sync.devices import ControlRecord, DeviceService
from app.vault import crypto
from app.vault.clock import ManualClock
from app.vault.service import VaultService

RECORD = ControlRecord("https://sync.example.org", "tacit-abc", "control-token-secret")


class FakeKeyring:
    def __init__(self, works: bool) -> None:
        self.works = works
        self.values: dict[str, str] = {}

    def get(self, account: str) -> str | None:
        return self.values.get(account) if self.works else None

    def set(self, account: str, value: str) -> bool:
        if self.works:
            self.values[account] = value
        return self.works

    def delete(self, account: str) -> None:
        self.values.pop(account, None)


class FakeTransport:
    """The control-token half of HttpTransport."""

    def __init__(self, order: Any = None, *, offline: bool = False, ack_offline: bool = False):
        self.order, self.offline, self.ack_offline = order, offline, ack_offline
        self.acks: list[tuple[str, str, str]] = []
        self.server_time = None

    def __enter__(self) -> FakeTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def pending_order(self, control: str, wait: int = 0) -> Any:
        if self.offline:
            raise OfflineError()
        return self.order

    def ack_order(self, control: str, order_id: str, state: str) -> None:
        if self.ack_offline:
            raise OfflineError()
        self.acks.append((control, order_id, state))


def _devices(vault: VaultService, transport: FakeTransport, *, keychain: bool = False) -> Any:
    return DeviceService(vault, transport_factory=lambda url, **kw: transport,
                         keychain=FakeKeyring(keychain))  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def master() -> crypto.SymmetricKey:
    return crypto.SymmetricKey.generate()


@pytest.fixture
def linked(service: VaultService, master: crypto.SymmetricKey) -> tuple[VaultService, str]:
    account_id = str(uuid.uuid4())
    service.set_account_signing_key(crypto.account_signing_key(master).public_key(), account_id)
    return service, account_id


def _signed(
    master: crypto.SymmetricKey, account_id: str, device_id: str, action: str, clock: ManualClock
) -> dict[str, Any]:
    order = {"v": 1, "order_id": str(uuid.uuid4()), "account_id": account_id,
             "device_id": device_id, "action": action,
             "issued_at": protocol.format_time(int(clock.now().timestamp() * 1000))}  # fmt: skip
    key = crypto.account_signing_key(master)
    signature = crypto.sign(key, b"", protocol.order_message(order))  # type: ignore[arg-type]
    return {"order": order, "signature": protocol.b64encode(signature)}


def test_the_record_round_trips_hides_its_token_and_refuses_garbage() -> None:
    assert ControlRecord.from_json(RECORD.to_json()) == RECORD
    assert "control-token-secret" not in repr(RECORD)
    for raw in (None, "", "{", "[]", '{"v": 2}', '{"v": 1, "server": "x"}'):
        assert ControlRecord.from_json(raw) is None


@pytest.mark.parametrize(("os_keychain", "where"), [(True, "keychain"), (False, "header")])
def test_the_record_is_readable_while_locked(
    service: VaultService, os_keychain: bool, where: str
) -> None:
    devices = _devices(service, FakeTransport(), keychain=os_keychain)
    assert devices.control.save(RECORD) == where
    in_header = service.sync_control()
    assert (in_header is not None) == (where == "header")
    assert RECORD.token not in repr(service.read_header())
    service.lock()
    locked = VaultService(service.paths.directory, clock=service.clock, keychain=service.keychain)
    devices = DeviceService(locked, keychain=devices.control._keychain)
    assert devices.control.load() == RECORD and devices.control.where() == where
    locked.record_checkin()  # a header rewrite keeps it
    assert devices.control.load() == RECORD


def test_no_record_or_no_link_is_quiet_unless_asked(service: VaultService) -> None:
    devices = _devices(service, FakeTransport())
    assert devices.check_order().problem == "not_linked"
    with pytest.raises(NotSignedInError):
        devices.check_order(quiet=False)


def test_offline_is_quiet_and_records_no_checkin(linked: tuple[VaultService, str]) -> None:
    vault, _ = linked
    devices = _devices(vault, FakeTransport(offline=True))
    devices.control.save(RECORD)
    check = devices.check_order()
    assert (check.contacted, check.problem) == (False, "offline")
    assert vault.read_header().device.last_checkin is None
    with pytest.raises(OfflineError):
        devices.check_order(quiet=False)


def test_a_verified_lock_is_applied_then_acknowledged(
    linked: tuple[VaultService, str], master: crypto.SymmetricKey, clock: ManualClock
) -> None:
    vault, account_id = linked
    transport = FakeTransport(_signed(master, account_id, vault.device_id, "lock", clock))
    devices = _devices(vault, transport)
    devices.control.save(RECORD)
    check = devices.check_order()
    assert check.applied and check.acknowledged and check.action == "lock"
    assert not vault.is_unlocked and vault.read_header().device_locked
    assert transport.acks == [(RECORD.token, check.order_id, "locked")]
    assert vault.read_header().device.last_checkin is not None


def test_a_lost_ack_is_sent_again_at_the_next_delivery(
    linked: tuple[VaultService, str], master: crypto.SymmetricKey, clock: ManualClock
) -> None:
    vault, account_id = linked
    transport = FakeTransport(_signed(master, account_id, vault.device_id, "lock", clock),
                              ack_offline=True)  # fmt: skip
    devices = _devices(vault, transport)
    devices.control.save(RECORD)
    assert devices.check_order().acknowledged is False
    transport.ack_offline = False
    again = devices.check_order()  # the same order, delivered again: a no-op, then the ack
    assert again.acknowledged and len(transport.acks) == 1


def test_a_forged_order_is_refused_and_not_acknowledged(
    linked: tuple[VaultService, str], clock: ManualClock
) -> None:
    vault, account_id = linked
    forged = _signed(crypto.SymmetricKey.generate(), account_id, vault.device_id, "wipe", clock)
    transport = FakeTransport(forged)
    devices = _devices(vault, transport)
    devices.control.save(RECORD)
    check = devices.check_order()
    assert check.refused == "signature" and not check.applied
    assert vault.is_unlocked and transport.acks == []
    with pytest.raises(OrderRefusedError):
        devices.check_order(quiet=False)
    transport.order = {"order": "not an order", "signature": "AAAA"}
    assert devices.check_order().refused == "malformed"


def test_the_header_refuses_an_oversized_record(service: VaultService) -> None:
    from app.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        service.set_sync_control("x" * 5000)
    assert service.sync_control() is None


class KeyServer:
    """GET/PUT /v1/account/signing-key, as a fake."""

    def __init__(self, registered: str | None) -> None:
        self.registered = registered
        self.puts: list[dict[str, Any]] = []

    def signing_key(self) -> dict[str, str]:
        if self.registered is None:
            raise protocol.SigningKeyMissingError()
        return {"public_key": self.registered, "registered_at": "x"}

    def put_signing_key(self, body: dict[str, Any]) -> dict[str, str]:
        self.puts.append(body)
        self.registered = body["public_key"]
        return {"public_key": body["public_key"], "registered_at": "x"}


def test_the_signing_key_is_registered_with_a_proof_or_a_mismatch_is_said(
    service: VaultService, master: crypto.SymmetricKey
) -> None:
    from app.sync.service import SyncService

    sync = SyncService(service)
    account_id = str(uuid.uuid4())
    fresh = KeyServer(None)
    assert sync._register_signing_key(fresh, master, account_id) == "registered"  # type: ignore[arg-type]
    (body,) = fresh.puts
    public = protocol.b64decode(body["public_key"])
    assert public == crypto.account_signing_key(master).public_key()
    proof = protocol.b64decode(body["proof"])
    assert crypto.signature_ok(public, b"", protocol.signing_key_proof_message(account_id), proof)
    assert sync._register_signing_key(fresh, master, account_id) == "registered"  # type: ignore[arg-type]
    assert len(fresh.puts) == 1  # already registered: nothing sent
    other = KeyServer(protocol.b64encode(crypto.SymmetricKey.generate().reveal()))
    assert sync._register_signing_key(other, master, account_id) == "mismatch"  # type: ignore[arg-type]
    assert other.puts == [] and sync.status()["signing_key"] == "mismatch"
