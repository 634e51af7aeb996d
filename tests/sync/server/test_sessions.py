"""Sessions: bearer tokens, expiry on the injected clock, refresh rotation and reuse
detection, logout, the device registry and last-seen."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.sync import protocol
from tests.sync.server.helpers import SQLITE_ONLY, Api, error_code


def test_access_token_expires(api: Api) -> None:
    acct = api.account("alice")
    token = acct.tokens["access_token"]
    assert api.get(protocol.PATH_DEVICES, token=token).status_code == 200
    expires = protocol.parse_time(acct.tokens["access_expires_at"])
    assert expires - int(api.clock() * 1000) == 3600 * 1000
    api.clock.advance(3600)
    r = api.get(protocol.PATH_DEVICES, token=token)
    assert (r.status_code, error_code(r)) == (401, "token_expired")
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_refresh_rotates_both_tokens(api: Api) -> None:
    acct = api.account("bea")
    old = dict(acct.tokens)
    api.clock.advance(3000)
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": old["refresh_token"]})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["access_token"] != old["access_token"]
    assert new["refresh_token"] != old["refresh_token"]
    assert (new["account_id"], new["device_id"]) == (old["account_id"], old["device_id"])
    # The old access token died with the rotation; the new one works.
    assert error_code(api.get(protocol.PATH_DEVICES, token=old["access_token"])) == "unauthorized"
    assert api.get(protocol.PATH_DEVICES, token=new["access_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_session(api: Api) -> None:
    acct = api.account("cal")
    first = acct.tokens["refresh_token"]
    second = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": first}).json()
    # Someone replays the rotated token: the whole family dies.
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": first})
    assert (r.status_code, error_code(r)) == (401, "token_reused")
    assert (
        error_code(api.get(protocol.PATH_DEVICES, token=second["access_token"])) == "unauthorized"
    )
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": second["refresh_token"]})
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_refresh_token_expires(api: Api) -> None:
    acct = api.account("dee")
    assert (
        protocol.parse_time(acct.tokens["refresh_expires_at"]) - int(api.clock() * 1000)
        == 30 * 86400 * 1000
    )
    api.clock.advance(30 * 86400)
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": acct.tokens["refresh_token"]})
    assert (r.status_code, error_code(r)) in {(401, "token_expired"), (401, "unauthorized")}


def test_unknown_refresh_token(api: Api) -> None:
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": "nope"})
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_logout_ends_the_session(api: Api) -> None:
    acct = api.account("eve")
    token = acct.tokens["access_token"]
    assert api.post(protocol.PATH_AUTH_LOGOUT, token=token).json() == {"ok": True}
    assert error_code(api.get(protocol.PATH_DEVICES, token=token)) == "unauthorized"
    r = api.post(protocol.PATH_AUTH_REFRESH, json={"refresh_token": acct.tokens["refresh_token"]})
    assert error_code(r) == "unauthorized"


def test_new_login_from_a_device_ends_its_older_session(api: Api) -> None:
    acct = api.account("fin")
    old = dict(acct.tokens)
    api.login(acct)
    assert error_code(api.get(protocol.PATH_DEVICES, token=old["access_token"])) == "unauthorized"
    assert api.get(protocol.PATH_DEVICES, token=acct.tokens["access_token"]).status_code == 200


def test_devices_list_and_last_seen(api: Api) -> None:
    acct = api.account("gil")
    token = acct.tokens["access_token"]
    before = api.get(protocol.PATH_DEVICES, token=token).json()
    assert len(before) == 1
    (device,) = before
    assert device["id"] == acct.device["id"]
    assert device["public_key"] == acct.device["public_key"]
    assert device["current"] is True
    api.clock.advance(30)  # inside the resolution: not written
    assert (
        api.get(protocol.PATH_DEVICES, token=token).json()[0]["last_seen_at"]
        == device["last_seen_at"]
    )
    api.clock.advance(60)
    api.get(protocol.PATH_DEVICES, token=token)
    after = api.get(protocol.PATH_DEVICES, token=token).json()[0]
    assert protocol.parse_time(after["last_seen_at"]) == int(api.clock() * 1000)
    assert after["created_at"] == device["created_at"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic abc", "bearer " + "x" * 300, "Token abc"],
)
def test_malformed_authorization_is_unauthorized(api: Api, header: str) -> None:
    r = api.get(protocol.PATH_DEVICES, headers={"Authorization": header})
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


def test_missing_authorization_is_unauthorized(api: Api) -> None:
    r = api.get(protocol.PATH_ITEMS)
    assert (r.status_code, error_code(r)) == (401, "unauthorized")


@SQLITE_ONLY
def test_per_account_request_limit(make_client: Callable[..., Api]) -> None:
    api = make_client(account_request_limit=3, account_request_window_s=60)
    acct = api.account("hope")
    codes = [
        api.get(protocol.PATH_DEVICES, token=acct.tokens["access_token"]).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    api.clock.advance(60)
    assert api.get(protocol.PATH_DEVICES, token=acct.tokens["access_token"]).status_code == 200
