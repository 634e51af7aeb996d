"""Login: the signed challenge bound to the origin, TOTP with replay protection, one-time
recovery codes, and the lockout and per-IP limits."""

from __future__ import annotations

from collections.abc import Callable

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.sync import protocol
from tests.sync.server.helpers import SQLITE_ONLY, Api, error_code, new_device


def _login_body(api: Api, acct: object, **overrides: object) -> dict[str, object]:
    from tests.sync.server.helpers import Account

    assert isinstance(acct, Account)
    ch = api.challenge(acct.username)
    body: dict[str, object] = {
        "challenge_id": ch["challenge_id"],
        "username": acct.username,
        "signature": acct.sign(ch["challenge"]),
        "device": acct.device,
        "totp": api.fresh_totp(acct),
    }
    body.update(overrides)
    return body


def test_login_opens_a_session(api: Api) -> None:
    acct = api.signup("alice")
    tokens = api.login(acct)
    assert tokens["account_id"] == acct.account_id
    assert tokens["device_id"] == acct.device["id"]
    assert tokens["access_token"] != tokens["refresh_token"]
    ch = api.challenge("alice")
    assert ch["origin"] == "https://tacit.test"
    assert len(protocol.b64decode(ch["challenge"])) == 32
    assert protocol.parse_time(ch["expires_at"]) - int(api.clock() * 1000) <= 60_000


def test_wrong_signature_is_refused(api: Api) -> None:
    acct = api.signup("bob")
    other_key = Ed25519PrivateKey.generate()
    ch = api.challenge("bob")
    forged = protocol.b64encode(
        other_key.sign(
            protocol.login_message("https://tacit.test", protocol.b64decode(ch["challenge"]))
        )
    )
    r = api.post(
        protocol.PATH_AUTH_LOGIN,
        json={
            "challenge_id": ch["challenge_id"],
            "username": "bob",
            "signature": forged,
            "device": acct.device,
            "totp": api.fresh_totp(acct),
        },
    )
    assert (r.status_code, error_code(r)) == (401, "signature_invalid")


def test_signature_bound_to_another_origin_is_refused(api: Api) -> None:
    acct = api.signup("carol")
    for origin in ("https://evil.example", "https://tacit.test:8443", "http://tacit.test"):
        r = api.login_response(acct, origin=origin)
        assert (r.status_code, error_code(r)) == (401, "signature_invalid"), origin


def test_unknown_username_fails_like_a_wrong_signature(api: Api) -> None:
    ghost = api.signup("ghost-source")
    ghost.username = "no-such-user"
    r = api.login_response(ghost)
    assert (r.status_code, error_code(r)) == (401, "signature_invalid")


def test_expired_challenge_is_refused(api: Api) -> None:
    acct = api.signup("dave")
    body = _login_body(api, acct)
    api.clock.advance(61)
    body["totp"] = api.fresh_totp(acct)
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert (r.status_code, error_code(r)) == (401, "challenge_expired")


def test_challenge_is_single_use(api: Api) -> None:
    acct = api.signup("emma")
    body = _login_body(api, acct, totp="000000")
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert error_code(r) in {"totp_invalid", "totp_replayed"}
    # Same challenge, now with a correct code: the challenge is gone.
    body["totp"] = api.fresh_totp(acct)
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert (r.status_code, error_code(r)) == (401, "challenge_expired")
    # And a successful login's challenge cannot be used again either.
    body = _login_body(api, acct)
    assert api.post(protocol.PATH_AUTH_LOGIN, json=body).status_code == 200
    api.clock.advance(30)
    body["totp"] = pyotp.TOTP(acct.totp_secret).at(api.clock())
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert (r.status_code, error_code(r)) == (401, "challenge_expired")


def test_challenge_is_bound_to_its_username(api: Api) -> None:
    a, b = api.signup("fay"), api.signup("gus")
    ch = api.challenge(a.username)
    r = api.post(
        protocol.PATH_AUTH_LOGIN,
        json={
            "challenge_id": ch["challenge_id"],
            "username": b.username,
            "signature": b.sign(ch["challenge"]),
            "device": b.device,
            "totp": api.fresh_totp(b),
        },
    )
    assert (r.status_code, error_code(r)) == (401, "challenge_expired")


def test_wrong_totp_is_refused(api: Api) -> None:
    acct = api.signup("hal")
    good = pyotp.TOTP(acct.totp_secret).at(api.clock())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    r = api.login_response(acct, totp=wrong)
    assert (r.status_code, error_code(r)) == (401, "totp_invalid")
    # Codes two steps away are outside the window.
    far = pyotp.TOTP(acct.totp_secret).at(api.clock() + 90)
    r = api.login_response(acct, totp=far)
    assert (r.status_code, error_code(r)) == (401, "totp_invalid")


def test_adjacent_step_is_accepted_within_the_window(api: Api) -> None:
    acct = api.signup("ida")
    previous = pyotp.TOTP(acct.totp_secret).at(api.clock() - 30)
    assert api.login_response(acct, totp=previous).status_code == 200


def test_replayed_totp_is_refused(api: Api) -> None:
    acct = api.signup("jon")
    code = pyotp.TOTP(acct.totp_secret).at(api.clock())
    assert api.login_response(acct, totp=code).status_code == 200
    r = api.login_response(acct, totp=code)
    assert (r.status_code, error_code(r)) == (401, "totp_replayed")
    # An older step (still inside the window) is also a replay once a later one was used.
    older = pyotp.TOTP(acct.totp_secret).at(api.clock() - 30)
    r = api.login_response(acct, totp=older)
    assert (r.status_code, error_code(r)) == (401, "totp_replayed")
    api.clock.advance(30)
    assert (
        api.login_response(acct, totp=pyotp.TOTP(acct.totp_secret).at(api.clock())).status_code
        == 200
    )


def test_recovery_codes_are_single_use(api: Api) -> None:
    acct = api.signup("kim")
    code = acct.recovery_codes[3]
    # Case and separators do not matter; the code still works once.
    assert api.login_response(acct, recovery_code=code.lower().replace("-", " ")).status_code == 200
    r = api.login_response(acct, recovery_code=code)
    assert (r.status_code, error_code(r)) == (401, "recovery_code_invalid")
    r = api.login_response(acct, recovery_code="AAAA-BBBB-CCCC-DDDD")
    assert (r.status_code, error_code(r)) == (401, "recovery_code_invalid")
    assert api.login_response(acct, recovery_code=acct.recovery_codes[4]).status_code == 200


def test_a_second_factor_is_required(api: Api) -> None:
    acct = api.signup("lee")
    r = api.login_response(acct, second_factor=False)
    assert (r.status_code, error_code(r)) == (401, "totp_required")
    body = _login_body(api, acct, recovery_code=acct.recovery_codes[0])
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert (r.status_code, error_code(r)) == (400, "invalid_request")


def test_lockout_after_repeated_failures(make_client: Callable[..., Api]) -> None:
    api = make_client(lockout_failures=3, lockout_s=900)
    acct = api.signup("mia")
    for _ in range(3):
        r = api.login_response(acct, totp="000000")
        assert error_code(r) in {"totp_invalid", "totp_replayed"}
    r = api.login_response(acct)  # correct now, but locked
    assert (r.status_code, error_code(r)) == (423, "account_locked")
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 900
    assert r.json()["error"]["retry_after"] == retry
    api.clock.advance(retry)
    assert api.login_response(acct).status_code == 200


def test_unknown_usernames_lock_out_alike(make_client: Callable[..., Api]) -> None:
    api = make_client(lockout_failures=2)
    ghost = api.signup("ghost-template")
    ghost.username = "never-signed-up"
    for _ in range(2):
        assert error_code(api.login_response(ghost)) == "signature_invalid"
    assert error_code(api.login_response(ghost)) == "account_locked"


def test_per_ip_failure_limit(make_client: Callable[..., Api]) -> None:
    api = make_client(ip_failure_limit=4, ip_failure_window_s=600, lockout_failures=100)
    accounts = [api.signup(f"nia-{i}") for i in range(3)]
    failures = 0
    for acct in accounts * 2:
        r = api.login_response(acct, totp="000000")
        if r.status_code == 429:
            break
        failures += 1
    assert failures == 4
    assert error_code(r) == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 600
    # Another address is not affected.
    other = make_client(client_ip="203.0.113.9")
    assert other.login_response(accounts[0]).status_code == 200


@SQLITE_ONLY
def test_per_ip_request_limit(make_client: Callable[..., Api]) -> None:
    api = make_client(ip_request_limit=5, ip_request_window_s=60)
    statuses = [
        api.get(protocol.PATH_AUTH_PARAMS, params={"username": "someone"}).status_code
        for _ in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2
    api.clock.advance(60)
    assert api.get(protocol.PATH_AUTH_PARAMS, params={"username": "someone"}).status_code == 200


def test_new_device_is_registered_at_login(api: Api) -> None:
    acct = api.signup("oli")
    tablet = new_device("tablet")
    tokens = api.login(acct, device=tablet)
    devices = api.get(protocol.PATH_DEVICES, token=tokens["access_token"]).json()
    assert {d["name"] for d in devices} == {"laptop", "tablet"}
    assert [d["current"] for d in devices if d["name"] == "tablet"] == [True]


@SQLITE_ONLY
@pytest.mark.parametrize(
    "patch",
    [
        {"signature": "AAAA"},
        {"totp": "12345"},
        {"totp": 123456},
        {"device": {"id": "not-a-uuid", "name": "x", "public_key": "AAAA"}},
        {"challenge_id": ""},
        {"extra": 1},
    ],
)
def test_malformed_login_is_invalid_request(api: Api, patch: dict[str, object]) -> None:
    acct = api.signup("pat")
    body = _login_body(api, acct, **patch)
    r = api.post(protocol.PATH_AUTH_LOGIN, json=body)
    assert (r.status_code, error_code(r)) == (400, "invalid_request")
