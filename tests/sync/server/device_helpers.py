"""Helpers for the device, order and escrow tests: a second device on an account, the
account signing key (random here; a real client derives it from the master key), signed
orders, and full re-authentication bodies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import protocol
from tests.sync.server.helpers import Account, Api, new_device, raw_public_key


@dataclass
class Device:
    """One logged-in device of an account: its registration and its tokens."""

    info: dict[str, str]
    tokens: dict[str, str]

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def access(self) -> str:
        return self.tokens["access_token"]

    @property
    def control(self) -> dict[str, str]:
        return {protocol.CONTROL_TOKEN_HEADER: self.tokens["control_token"]}


def login_device(api: Api, acct: Account, info: dict[str, str] | None = None) -> Device:
    info = info or new_device("second")
    r = api.login_response(acct, device=info)
    assert r.status_code == 200, r.text
    acct.last_step = int(api.clock()) // 30
    return Device(info, dict(r.json()))


def first_device(acct: Account) -> Device:
    return Device(acct.device, acct.tokens)


def proof(key: Ed25519PrivateKey, account_id: str) -> str:
    return protocol.b64encode(key.sign(protocol.signing_key_proof_message(account_id)))


def register_signing_key(
    api: Api, acct: Account, key: Ed25519PrivateKey | None = None
) -> Ed25519PrivateKey:
    key = key or Ed25519PrivateKey.generate()
    r = api.put(
        protocol.PATH_SIGNING_KEY,
        token=acct.tokens["access_token"],
        json={
            "public_key": protocol.b64encode(raw_public_key(key)),
            "proof": proof(key, acct.account_id),
        },
    )
    assert r.status_code == 200, r.text
    return key


def order(
    api: Api,
    acct: Account,
    device_id: str,
    action: str,
    *,
    issued_offset_s: float = 0.0,
    **overrides: Any,
) -> protocol.DeviceOrder:
    ms = int((api.clock() + issued_offset_s) * 1000)
    body: dict[str, Any] = {
        "v": 1,
        "order_id": str(uuid.uuid4()),
        "account_id": acct.account_id,
        "device_id": device_id,
        "action": action,
        "issued_at": protocol.format_time(ms),
        **overrides,
    }
    return body  # type: ignore[return-value]


def signed(order_body: protocol.DeviceOrder, key: Ed25519PrivateKey) -> dict[str, Any]:
    return {
        "order": order_body,
        "signature": protocol.b64encode(key.sign(protocol.order_message(order_body))),
    }


def post_order(api: Api, token: str, device_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.post(protocol.device_orders_path(device_id), token=token, json=body)


def send_order(
    api: Api,
    acct: Account,
    issuer: Device,
    target: Device,
    action: str,
    key: Ed25519PrivateKey,
    **kwargs: Any,
) -> httpx.Response:
    body = signed(order(api, acct, target.id, action, **kwargs), key)
    return post_order(api, issuer.access, target.id, body)


def reauth(api: Api, acct: Account, *, totp: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A full re-authentication body with a fresh challenge and a fresh TOTP code."""
    ch = api.challenge(acct.username)
    body: dict[str, Any] = {
        "challenge_id": ch["challenge_id"],
        "signature": acct.sign(ch["challenge"]),
        "totp": totp or api.fresh_totp(acct),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def devices_by_id(api: Api, token: str) -> dict[str, dict[str, Any]]:
    r = api.get(protocol.PATH_DEVICES, token=token)
    assert r.status_code == 200, r.text
    return {d["id"]: d for d in r.json()}
