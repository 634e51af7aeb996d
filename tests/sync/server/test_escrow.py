"""Escrow keys: created with a session, stored sealed, released only to the device's
control token with full re-authentication (no TOTP, a replayed TOTP, a wrong signature
and a lost device are refused; lockout as at login), and again after a restore. Every
test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pyotp

from app.sync import protocol
from app.sync.server import crypto
from app.sync.server.db import open_database
from tests.sync.server.device_helpers import (
    Device,
    first_device,
    login_device,
    reauth,
    register_signing_key,
    send_order,
)
from tests.sync.server.helpers import Account, Api, error_code


def _escrow(api: Api, device: Device) -> bytes:
    r = api.post(protocol.PATH_SELF_ESCROW, token=device.access)
    assert r.status_code == 200, r.text
    key = protocol.b64decode(r.json()["escrow_key"])
    assert len(key) == protocol.ESCROW_KEY_BYTES
    return key


def _release(api: Api, device: Device, body: dict[str, object]) -> httpx.Response:
    return api.post(protocol.PATH_SELF_ESCROW_RELEASE, headers=device.control, json=body)


def _setup(api: Api) -> tuple[Account, Device, Device, bytes]:
    acct = api.account("owner")
    one = first_device(acct)
    two = login_device(api, acct)
    return acct, one, two, _escrow(api, two)


def test_escrow_key_is_random_replaced_and_stored_sealed(api: Api, db_url: str) -> None:
    acct, _one, two, first = _setup(api)
    second = _escrow(api, two)
    assert second != first
    db = open_database(db_url)
    try:
        with db.transaction(write=False) as tx:
            rows = tx.all("SELECT account_id, device_id, sealed FROM escrow_keys")
            secret = bytes(tx.one("SELECT value FROM server_config WHERE key = 'server_secret'")[0])  # type: ignore[index]
    finally:
        db.close()
    assert [(r[0], r[1]) for r in rows] == [(acct.account_id, two.id)]
    sealed = bytes(rows[0][2])
    assert second not in sealed and first not in sealed
    assert crypto.open_escrow(secret, acct.account_id, two.id, sealed) == second
    # Bound to its device: the same row under another device id does not open.
    assert crypto.open_escrow(secret, acct.account_id, acct.device["id"], sealed) is None


def test_release_refuses_a_missing_totp(api: Api) -> None:
    acct, _one, two, _key = _setup(api)
    body = reauth(api, acct)
    del body["totp"]
    r = _release(api, two, body)
    assert (r.status_code, error_code(r)) == (401, "totp_required")


def test_release_refuses_a_replayed_totp(api: Api) -> None:
    acct, _one, two, _key = _setup(api)
    # The code the last login used (same step, same clock): replayed.
    used = pyotp.TOTP(acct.totp_secret).at(api.clock())
    r = _release(api, two, reauth(api, acct, totp=used))
    assert (r.status_code, error_code(r)) == (401, "totp_replayed")
    good = reauth(api, acct)
    r = _release(api, two, good)
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    new_two = Device(two.info, r.json()["session"])
    r = _release(api, new_two, reauth(api, acct, totp=good["totp"]))
    assert (r.status_code, error_code(r)) == (401, "totp_replayed")


def test_release_refuses_a_wrong_signature_and_locks_out(make_client: Callable[..., Api]) -> None:
    api = make_client(lockout_failures=3)
    acct, _one, two, _key = _setup(api)
    forged = reauth(api, acct, signature=protocol.b64encode(bytes(64)))
    r = _release(api, two, forged)
    assert (r.status_code, error_code(r)) == (401, "signature_invalid")
    # The login key signing over another origin is wrong too.
    ch = api.challenge(acct.username)
    other = {
        "challenge_id": ch["challenge_id"],
        "signature": acct.sign(ch["challenge"], "https://phish.test"),
        "totp": api.fresh_totp(acct),
    }
    assert error_code(_release(api, two, other)) == "signature_invalid"
    assert error_code(_release(api, two, reauth(api, acct, totp="000000"))) == "totp_invalid"
    # Three failures: the username is locked, for release and login alike.
    r = _release(api, two, reauth(api, acct))
    assert (r.status_code, error_code(r)) == (423, "account_locked")
    assert error_code(api.login_response(acct)) == "account_locked"


def test_release_is_refused_while_lost_and_works_after_restore(api: Api) -> None:
    acct, one, two, escrow_key = _setup(api)
    signing = register_signing_key(api, acct)
    assert send_order(api, acct, one, two, "lock", signing).status_code == 200
    r = _release(api, two, reauth(api, acct))
    assert (r.status_code, error_code(r)) == (403, "device_lost")
    order_id = api.get(protocol.PATH_SELF_ORDER, headers=two.control).json()["order"]["order_id"]
    ack = {"order_id": order_id, "state": "locked"}
    assert api.post(protocol.PATH_SELF_ORDER_ACK, headers=two.control, json=ack).status_code == 200
    assert error_code(_release(api, two, reauth(api, acct))) == "device_lost"
    # The owner restores it; the device re-authenticates and gets its key back.
    api.clock.advance(1)
    assert send_order(api, acct, one, two, "restore", signing).status_code == 200
    r = _release(api, two, reauth(api, acct))
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    body = r.json()
    assert protocol.b64decode(body["escrow_key"]) == escrow_key
    # Release was a login: a working session and a rotated control token.
    session = body["session"]
    assert api.get(protocol.PATH_ITEMS, token=session["access_token"]).status_code == 200
    assert error_code(api.get(protocol.PATH_SELF_ORDER, headers=two.control)) == "unauthorized"
    fresh = {protocol.CONTROL_TOKEN_HEADER: session["control_token"]}
    assert api.get(protocol.PATH_SELF_ORDER, headers=fresh).status_code == 204


def test_release_needs_the_control_token_and_an_escrow_key(api: Api) -> None:
    acct, one, two, _key = _setup(api)
    r = api.post(protocol.PATH_SELF_ESCROW_RELEASE, token=two.access, json=reauth(api, acct))
    assert (r.status_code, error_code(r)) == (401, "unauthorized")
    r = _release(api, one, reauth(api, acct))  # device one never created one
    assert (r.status_code, error_code(r)) == (404, "not_found")


def test_wipe_deletes_the_escrow_key(api: Api, db_url: str) -> None:
    acct, one, two, _key = _setup(api)
    signing = register_signing_key(api, acct)
    assert send_order(api, acct, one, two, "wipe", signing).status_code == 200
    db = open_database(db_url)
    try:
        with db.transaction(write=False) as tx:
            assert tx.one("SELECT COUNT(*) FROM escrow_keys") == (0,)
    finally:
        db.close()
    assert error_code(_release(api, two, reauth(api, acct))) == "device_lost"


def test_release_accepts_a_recovery_code(api: Api) -> None:
    acct, _one, two, key = _setup(api)
    body = reauth(api, acct)
    del body["totp"]
    body["recovery_code"] = acct.recovery_codes[0]
    r = _release(api, two, body)
    assert r.status_code == 200, r.text
    assert protocol.b64decode(r.json()["escrow_key"]) == key
