"""Devices, signed orders and control tokens: the account signing key, forged, wrong-key,
cross-account and replayed orders refused, lock revoking one device's sessions at once,
the long-poll (across two app instances on one database), acknowledgements, restore,
removal. Every test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
import time
import typing
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from app.sync import protocol
from app.sync.server import schemas
from tests.sync.server.conftest import TEST_SETTINGS
from tests.sync.server.device_helpers import (
    Device,
    devices_by_id,
    first_device,
    login_device,
    order,
    post_order,
    proof,
    reauth,
    register_signing_key,
    send_order,
    signed,
)
from tests.sync.server.helpers import (
    Account,
    Api,
    ManualClock,
    error_code,
    make_api,
    raw_public_key,
)


def _two_devices(api: Api) -> tuple[Account, Device, Device, Ed25519PrivateKey]:
    acct = api.account("owner")
    one = first_device(acct)
    two = login_device(api, acct)
    key = register_signing_key(api, acct)
    return acct, one, two, key


# --- the wire format ------------------------------------------------------------------
def test_order_message_layout_is_pinned() -> None:
    body: protocol.DeviceOrder = {
        "v": 1,
        "order_id": "00000000-0000-4000-8000-000000000001",
        "account_id": "00000000-0000-4000-8000-000000000002",
        "device_id": "00000000-0000-4000-8000-000000000003",
        "action": "lock",
        "issued_at": "2026-01-05T09:00:00.000Z",
    }
    assert protocol.order_message(body) == (
        b"tacit/v1/device-order\x00"
        b'{"account_id":"00000000-0000-4000-8000-000000000002","action":"lock",'
        b'"device_id":"00000000-0000-4000-8000-000000000003",'
        b'"issued_at":"2026-01-05T09:00:00.000Z",'
        b'"order_id":"00000000-0000-4000-8000-000000000001","v":1}'
    )
    for bad in (
        {**body, "extra": 1},
        {**body, "v": True},
        {**body, "action": "shred"},
        {**body, "issued_at": "2026-01-05T09:00:00Z"},
        {**body, "device_id": "0000000A-0000-4000-8000-000000000003"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - the messages are for humans
            protocol.order_message(bad)  # type: ignore[arg-type]
    assert protocol.signing_key_proof_message("a") == b"tacit/v1/signing-key\x00a"


@pytest.mark.parametrize(
    ("typed_dict", "model"),
    [
        (protocol.LoginResponse, schemas.LoginOut),
        (protocol.Device, schemas.DeviceOut),
        (protocol.DeviceOrderSummary, schemas.DeviceOrderSummaryOut),
        (protocol.DeviceOrder, schemas.DeviceOrderIn),
        (protocol.DeviceOrder, schemas.DeviceOrderOut),
        (protocol.SignedOrder, schemas.SignedOrderIn),
        (protocol.SignedOrder, schemas.SignedOrderOut),
        (protocol.OrderAckRequest, schemas.OrderAckIn),
        (protocol.Reauth, schemas.ReauthIn),
        (protocol.SigningKeyRequest, schemas.SigningKeyIn),
        (protocol.SigningKeyResponse, schemas.SigningKeyOut),
        (protocol.EscrowKeyResponse, schemas.EscrowKeyOut),
        (protocol.EscrowReleaseResponse, schemas.EscrowReleaseOut),
        (protocol.SignupResponse, schemas.SignupOut),
    ],
)
def test_new_models_match_protocol_shapes(typed_dict: type, model: type[BaseModel]) -> None:
    assert set(typing.get_type_hints(typed_dict)) == set(model.model_fields)


# --- control tokens and the signing key -----------------------------------------------
def test_signup_and_login_issue_a_control_token_that_login_rotates(api: Api) -> None:
    acct = api.signup("carol")
    r = api.login_response(acct)
    first = r.json()["control_token"]
    acct.last_step = int(api.clock()) // 30
    headers = {protocol.CONTROL_TOKEN_HEADER: first}
    assert api.get(protocol.PATH_SELF_ORDER, headers=headers).status_code == 204
    second = api.login_response(acct).json()["control_token"]
    acct.last_step = int(api.clock()) // 30
    assert second != first
    r = api.get(protocol.PATH_SELF_ORDER, headers=headers)
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
    ok = api.get(protocol.PATH_SELF_ORDER, headers={protocol.CONTROL_TOKEN_HEADER: second})
    assert ok.status_code == 204
    # A bearer token is not a control token, and a control token is not a bearer token.
    r = api.get(protocol.PATH_SELF_ORDER, token=api.login(acct)["access_token"])
    assert error_code(r) == "unauthorized"
    assert error_code(api.get(protocol.PATH_DEVICES, token=second)) == "unauthorized"


def test_signing_key_registration_and_replacement(api: Api) -> None:
    acct = api.account("dana")
    token = acct.tokens["access_token"]
    r = api.get(protocol.PATH_SIGNING_KEY, token=token)
    assert (r.status_code, error_code(r)) == (409, "signing_key_missing")
    key = register_signing_key(api, acct)
    got = api.get(protocol.PATH_SIGNING_KEY, token=token).json()
    assert got["public_key"] == protocol.b64encode(raw_public_key(key))
    register_signing_key(api, acct, key)  # the same key again: a no-op
    other = Ed25519PrivateKey.generate()
    body: dict[str, Any] = {
        "public_key": protocol.b64encode(raw_public_key(other)),
        "proof": proof(other, acct.account_id),
    }
    r = api.put(protocol.PATH_SIGNING_KEY, token=token, json=body)
    assert (r.status_code, error_code(r)) == (403, "reauth_required")
    r = api.put(
        protocol.PATH_SIGNING_KEY,
        token=token,
        json={**body, "reauth": reauth(api, acct, totp="000000")},
    )
    assert error_code(r) == "totp_invalid"
    # A proof by another key (or over another account id) is refused.
    bad = {**body, "proof": proof(key, acct.account_id), "reauth": reauth(api, acct)}
    assert (
        error_code(api.put(protocol.PATH_SIGNING_KEY, token=token, json=bad)) == "invalid_request"
    )
    r = api.put(protocol.PATH_SIGNING_KEY, token=token, json={**body, "reauth": reauth(api, acct)})
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    assert (
        api.get(protocol.PATH_SIGNING_KEY, token=token).json()["public_key"] == body["public_key"]
    )


# --- refused orders -------------------------------------------------------------------
def test_forged_and_wrong_key_orders_are_refused(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    forger = Ed25519PrivateKey.generate()
    r = send_order(api, acct, one, two, "lock", forger)
    assert (r.status_code, error_code(r)) == (403, "order_signature_invalid")
    # Signed by the login key (a key the server knows, but not the signing key).
    r = send_order(api, acct, one, two, "lock", acct.key)
    assert error_code(r) == "order_signature_invalid"
    # The right key over the bare JSON (no domain label), and a body altered after signing.
    body = order(api, acct, two.id, "lock")
    bare = key.sign(protocol.canonical_order(body))
    r = post_order(api, one.access, two.id, {"order": body, "signature": protocol.b64encode(bare)})
    assert error_code(r) == "order_signature_invalid"
    tampered = signed(order(api, acct, two.id, "lock"), key)
    tampered["order"]["action"] = "wipe"
    assert error_code(post_order(api, one.access, two.id, tampered)) == "order_signature_invalid"
    # Nothing happened to the device.
    assert api.get(protocol.PATH_DEVICES, token=two.access).status_code == 200
    assert devices_by_id(api, one.access)[two.id]["state"] == "active"


def test_order_without_a_registered_key_is_refused(api: Api) -> None:
    acct = api.account("erin")
    two = login_device(api, acct)
    r = send_order(api, acct, first_device(acct), two, "lock", Ed25519PrivateKey.generate())
    assert (r.status_code, error_code(r)) == (409, "signing_key_missing")


def test_cross_account_orders_are_not_found(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    mallory = api.account("mallory")
    m_key = register_signing_key(api, mallory)
    m_dev = first_device(mallory)
    # Mallory's session, an order for Alice's device signed with either key: 404.
    for k, account in ((m_key, mallory), (key, acct)):
        body = signed(order(api, account, two.id, "lock"), k)
        r = post_order(api, m_dev.access, two.id, body)
        assert (r.status_code, error_code(r)) == (404, "not_found")
    # Alice's own signed order replayed through Mallory's session: 404 too.
    alice_order = signed(order(api, acct, two.id, "wipe"), key)
    assert error_code(post_order(api, m_dev.access, two.id, alice_order)) == "not_found"
    # An order naming another account, for a device in the caller's account: refused.
    m_two = login_device(api, mallory)
    wrong_account = signed(order(api, acct, m_two.id, "lock"), m_key)
    r = post_order(api, m_dev.access, m_two.id, wrong_account)
    assert (r.status_code, error_code(r)) == (400, "order_invalid")
    assert devices_by_id(api, one.access)[two.id]["state"] == "active"
    assert api.get(protocol.PATH_DEVICES, token=two.access).status_code == 200


def test_replayed_and_older_orders_are_refused(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    lock = signed(order(api, acct, two.id, "lock"), key)
    assert post_order(api, one.access, two.id, lock).status_code == 200
    api.clock.advance(5)
    assert send_order(api, acct, one, two, "restore", key).status_code == 200
    r = post_order(api, one.access, two.id, lock)  # the same order again
    assert (r.status_code, error_code(r)) == (409, "order_replayed")
    # A new id, but issued before the last order.
    r = send_order(api, acct, one, two, "lock", key, issued_offset_s=-2)
    assert error_code(r) == "order_replayed"
    assert devices_by_id(api, one.access)[two.id]["state"] == "active"


def test_order_fields_must_match_the_request_and_the_clock(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    # Signed for device two, posted to device one's path (or the other way round).
    body = signed(order(api, acct, two.id, "lock"), key)
    r = post_order(api, two.access, one.id, body)
    assert (r.status_code, error_code(r)) == (400, "order_invalid")
    for offset in (-protocol.ORDER_MAX_AGE_S - 1, protocol.ORDER_MAX_FUTURE_S + 1):
        r = send_order(api, acct, one, two, "lock", key, issued_offset_s=offset)
        assert error_code(r) == "order_invalid", offset
    odd_time = order(api, acct, two.id, "lock", issued_at="2026-01-05T09:00:00+00:00")
    sig = protocol.b64encode(key.sign(b"whatever"))
    r = post_order(api, one.access, two.id, {"order": odd_time, "signature": sig})
    assert error_code(r) == "order_invalid"
    extra = {"order": {**order(api, acct, two.id, "lock"), "why": "x"}, "signature": sig}
    assert error_code(post_order(api, one.access, two.id, extra)) == "invalid_request"


def test_a_device_cannot_order_itself(api: Api) -> None:
    acct, one, _two, key = _two_devices(api)
    r = send_order(api, acct, one, one, "lock", key)
    assert (r.status_code, error_code(r)) == (403, "forbidden")


# --- lock, the long-poll, acks --------------------------------------------------------
def test_lock_revokes_that_device_at_once_and_only_it(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    assert api.get(protocol.PATH_ITEMS, token=two.access).status_code == 200
    r = send_order(api, acct, one, two, "lock", key)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "lost" and r.json()["order"]["action"] == "lock"
    # Two's very next request with its old tokens is refused; one keeps working.
    r = api.get(protocol.PATH_ITEMS, token=two.access)
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": two.tokens["refresh_token"]})
    assert r.status_code == 401
    assert api.get(protocol.PATH_ITEMS, token=one.access).status_code == 200
    # It cannot sign in again while lost, even with the password and TOTP...
    r = api.login_response(acct, device=two.info)
    assert (r.status_code, error_code(r)) == (403, "device_lost")
    # ...but its control token still reaches its order.
    r = api.get(protocol.PATH_SELF_ORDER, headers=two.control)
    assert r.status_code == 200
    got = r.json()
    assert got["order"]["device_id"] == two.id and got["order"]["action"] == "lock"
    key.public_key().verify(
        protocol.b64decode(got["signature"]), protocol.order_message(got["order"])
    )
    # Device one has no order.
    assert api.get(protocol.PATH_SELF_ORDER, headers=one.control).status_code == 204


def test_long_poll_receives_an_order_posted_on_another_instance(
    db_url: str, clock: ManualClock
) -> None:
    with (
        make_api(db_url, clock, **TEST_SETTINGS) as waiter_api,
        make_api(db_url, clock, **TEST_SETTINGS) as owner_api,
    ):
        acct, one, two, key = _two_devices(owner_api)
        result: dict[str, Any] = {}

        def wait() -> None:
            started = time.monotonic()
            r: httpx.Response = waiter_api.get(
                protocol.PATH_SELF_ORDER, headers=two.control, params={"wait": 15}
            )
            result["response"], result["at"] = r, time.monotonic()
            result["waited"] = result["at"] - started

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(1.0)  # the waiter is inside its wait now
        assert "response" not in result
        posted = time.monotonic()
        assert send_order(owner_api, acct, one, two, "wipe", key).status_code == 200
        thread.join(timeout=10)
        assert not thread.is_alive()
        response = result["response"]
        assert response.status_code == 200, response.text
        assert response.json()["order"]["action"] == "wipe"
        latency = result["at"] - posted
        assert latency < 5.0, latency
        print(f"order delivered {latency:.2f} s after it was posted")


def test_long_poll_times_out_with_204(api: Api) -> None:
    acct = api.account("fay")
    control = {protocol.CONTROL_TOKEN_HEADER: acct.tokens["control_token"]}
    started = time.monotonic()
    r = api.get(protocol.PATH_SELF_ORDER, headers=control, params={"wait": 1})
    assert r.status_code == 204 and r.content == b""
    assert time.monotonic() - started >= 0.9
    r = api.get(protocol.PATH_SELF_ORDER, headers=control, params={"wait": 26})
    assert error_code(r) == "invalid_request"


def test_ack_shows_in_the_device_list(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    send_order(api, acct, one, two, "lock", key)
    order_id = api.get(protocol.PATH_SELF_ORDER, headers=two.control).json()["order"]["order_id"]
    api.clock.advance(3)
    wrong = api.post(
        protocol.PATH_SELF_ORDER_ACK,
        headers=two.control,
        json={"order_id": order_id, "state": "wiped"},
    )
    assert (wrong.status_code, error_code(wrong)) == (409, "device_state")
    unknown = {"order_id": str(uuid.uuid4()), "state": "locked"}
    r = api.post(protocol.PATH_SELF_ORDER_ACK, headers=two.control, json=unknown)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    ack = {"order_id": order_id, "state": "locked"}
    for _ in range(2):  # repeating an ack is harmless
        r = api.post(protocol.PATH_SELF_ORDER_ACK, headers=two.control, json=ack)
        assert r.json() == {"ok": True}
    entry = devices_by_id(api, one.access)[two.id]
    assert entry["state"] == "locked" and entry["current"] is False
    assert entry["order"]["id"] == order_id
    assert entry["order"]["acked_at"] is not None
    acked = protocol.parse_time(entry["order"]["acked_at"])
    assert acked - protocol.parse_time(entry["order"]["received_at"]) == 3000
    assert devices_by_id(api, one.access)[one.id]["current"] is True
    # Acknowledged: nothing is pending any more.
    assert api.get(protocol.PATH_SELF_ORDER, headers=two.control).status_code == 204


def test_state_transitions(api: Api) -> None:
    acct, one, two, key = _two_devices(api)

    def step(action: str) -> httpx.Response:
        api.clock.advance(1)
        return send_order(api, acct, one, two, action, key)

    assert error_code(step("restore")) == "device_state"  # active: nothing to restore
    assert step("lock").json()["state"] == "lost"
    assert error_code(step("lock")) == "device_state"  # already lost
    restored = step("restore").json()
    assert restored["state"] == "active" and restored["order"]["action"] == "restore"
    # Restored: the device may sign in again and is active.
    two = login_device(api, acct, two.info)
    assert api.get(protocol.PATH_ITEMS, token=two.access).status_code == 200
    assert step("lock").status_code == 200
    assert step("wipe").json()["state"] == "lost"  # escalate a lock to a wipe
    assert error_code(step("restore")) == "device_state"  # a wipe is final
    assert error_code(step("lock")) == "device_state"


def test_remove_device_needs_reauth_and_is_final(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    path = protocol.device_remove_path(two.id)
    r = api.post(path, token=one.access, json={"challenge_id": "x", "signature": "AAAA"})
    assert error_code(r) == "invalid_request"
    r = api.post(path, token=one.access, json=reauth(api, acct, totp=None, signature=None))
    assert error_code(r) == "invalid_request"  # no signature at all
    body = reauth(api, acct)
    del body["totp"]
    assert error_code(api.post(path, token=one.access, json=body)) == "totp_required"
    r = api.post(protocol.device_remove_path(one.id), token=one.access, json=reauth(api, acct))
    assert (r.status_code, error_code(r)) == (403, "forbidden")
    r = api.post(path, token=one.access, json=reauth(api, acct))
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    assert r.json()["state"] == "removed"
    assert error_code(api.get(protocol.PATH_ITEMS, token=two.access)) == "unauthorized"
    r = api.login_response(acct, device=two.info)
    assert (r.status_code, error_code(r)) == (403, "device_removed")
    assert error_code(send_order(api, acct, one, two, "lock", key)) == "device_state"
    r = api.post(path, token=one.access, json=reauth(api, acct))
    assert error_code(r) == "device_state"


def test_removed_device_still_receives_its_pending_order(api: Api) -> None:
    acct, one, two, key = _two_devices(api)
    send_order(api, acct, one, two, "wipe", key)
    r = api.post(protocol.device_remove_path(two.id), token=one.access, json=reauth(api, acct))
    assert r.status_code == 200, r.text
    got = api.get(protocol.PATH_SELF_ORDER, headers=two.control).json()
    ack = {"order_id": got["order"]["order_id"], "state": "wiped"}
    assert api.post(protocol.PATH_SELF_ORDER_ACK, headers=two.control, json=ack).status_code == 200
    entry = devices_by_id(api, one.access)[two.id]
    assert entry["state"] == "removed" and entry["order"]["acked_at"] is not None


def test_control_token_routes_are_rate_limited(make_client: Callable[..., Api]) -> None:
    api = make_client(account_request_limit=3)
    acct = api.signup("gil")
    control = {protocol.CONTROL_TOKEN_HEADER: acct_control(api, acct)}
    codes = [api.get(protocol.PATH_SELF_ORDER, headers=control).status_code for _ in range(5)]
    assert codes[:2] == [204, 204] and codes[-1] == 429


def acct_control(api: Api, acct: Account) -> str:
    r = api.login_response(acct)
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    return str(r.json()["control_token"])
