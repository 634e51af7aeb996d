"""Sign-up and the KDF-parameter lookup: what is stored, what is refused, and that
usernames cannot be enumerated through /v1/auth/params."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pyotp
import pytest

from app.sync import protocol
from app.sync.server.settings import PRODUCTION_KDF_FLOOR, Settings, default_kdf_floor
from tests.sync.server.helpers import (
    SQLITE_ONLY,
    Api,
    error_code,
    new_device,
    raw_public_key,
    weak_kdf,
)


def test_signup_returns_enrollment_once(api: Api) -> None:
    acct = api.signup("Clinician.One@example.org")
    assert acct.username == "clinician.one@example.org"
    assert len(acct.recovery_codes) == protocol.RECOVERY_CODE_COUNT
    assert len(set(acct.recovery_codes)) == protocol.RECOVERY_CODE_COUNT
    assert len(acct.totp_secret) == 32  # base-32, 160 bits
    # The same name again (any case) is taken.
    r = api.post(
        protocol.PATH_ACCOUNTS,
        json={
            "username": "CLINICIAN.ONE@example.org",
            "login_public_key": protocol.b64encode(raw_public_key(acct.key)),
            "kdf": weak_kdf(),
            "device": new_device(),
        },
    )
    assert (r.status_code, error_code(r)) == (409, "account_exists")


def test_totp_uri_names_issuer_and_server(api: Api) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    r = api.post(
        protocol.PATH_ACCOUNTS,
        json={
            "username": "dana",
            "login_public_key": protocol.b64encode(raw_public_key(key)),
            "kdf": weak_kdf(),
            "device": new_device(),
        },
    )
    uri = r.json()["totp_uri"]
    assert uri.startswith("otpauth://totp/Tacit:dana%40tacit.test?secret=")
    assert "issuer=Tacit" in uri


def test_kdf_params_for_real_and_unknown_users_look_alike(api: Api) -> None:
    acct = api.signup("erin", kdf=weak_kdf(salt=b"\x07" * 16, memory_kib=64))
    real = api.get(protocol.PATH_AUTH_PARAMS, params={"username": "ERIN"})
    assert real.status_code == 200
    assert real.json()["kdf"] == weak_kdf(salt=b"\x07" * 16, memory_kib=64)
    fake1 = api.get(protocol.PATH_AUTH_PARAMS, params={"username": "nobody-here"}).json()
    fake2 = api.get(protocol.PATH_AUTH_PARAMS, params={"username": "nobody-here"}).json()
    other = api.get(protocol.PATH_AUTH_PARAMS, params={"username": "nobody-else"}).json()
    assert fake1 == fake2  # stable: asking twice reveals nothing
    assert fake1["kdf"]["salt"] != other["kdf"]["salt"]
    assert set(fake1["kdf"]) == set(real.json()["kdf"])
    assert len(protocol.b64decode(fake1["kdf"]["salt"])) == 16
    assert acct.username == "erin"
    # A challenge is issued for unknown names too.
    assert set(api.challenge("nobody-here")) == {
        "challenge_id",
        "challenge",
        "origin",
        "expires_at",
    }


@SQLITE_ONLY
@pytest.mark.parametrize("name", ["ab", "-lead", "has space", "x" * 65, "ünï"])
def test_bad_usernames_are_invalid_requests(api: Api, name: str) -> None:
    r = api.get(protocol.PATH_AUTH_PARAMS, params={"username": name})
    assert (r.status_code, error_code(r)) == (400, "invalid_request")


@SQLITE_ONLY
@pytest.mark.parametrize(
    "kdf",
    [
        weak_kdf(memory_kib=4),  # below the test floor of 8 KiB
        weak_kdf(iterations=0),
        weak_kdf(algorithm="argon2i"),
        weak_kdf(version=16),
        weak_kdf(salt=b"short"),
        weak_kdf(memory_kib="64"),
    ],
)
def test_signup_refuses_bad_kdf(api: Api, kdf: dict[str, object]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = {
        "username": "frank",
        "login_public_key": protocol.b64encode(raw_public_key(Ed25519PrivateKey.generate())),
        "kdf": kdf,
        "device": new_device(),
    }
    r = api.post(protocol.PATH_ACCOUNTS, json=body)
    assert r.status_code == 400
    expected = "kdf_too_weak" if kdf["memory_kib"] == 4 else "invalid_request"
    assert error_code(r) == expected


@SQLITE_ONLY
def test_production_floor_refuses_test_parameters(make_client: Callable[..., Api]) -> None:
    api = make_client(kdf_floor=PRODUCTION_KDF_FLOOR)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    body = {
        "username": "gina",
        "login_public_key": protocol.b64encode(raw_public_key(key)),
        "kdf": weak_kdf(memory_kib=65535, iterations=3),
        "device": new_device(),
    }
    r = api.post(protocol.PATH_ACCOUNTS, json=body)
    assert (r.status_code, error_code(r)) == (400, "kdf_too_weak")
    body["kdf"] = weak_kdf(memory_kib=262144, iterations=3, parallelism=2)
    assert api.post(protocol.PATH_ACCOUNTS, json=body).status_code == 201


def test_production_floor_value_and_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PRODUCTION_KDF_FLOOR.memory_kib == 65536
    assert PRODUCTION_KDF_FLOOR.iterations >= 3
    monkeypatch.delenv("TACIT_INSECURE_TEST_KDF", raising=False)
    assert default_kdf_floor() == PRODUCTION_KDF_FLOOR
    assert Settings(db_url="x", origin="https://h").kdf_floor == PRODUCTION_KDF_FLOOR
    monkeypatch.setenv("TACIT_INSECURE_TEST_KDF", "1")
    assert default_kdf_floor().memory_kib < PRODUCTION_KDF_FLOOR.memory_kib


def test_signup_refuses_a_login_key_that_is_not_a_point(api: Api) -> None:
    # 32 bytes, but not a valid Ed25519 encoding (y >= p).
    bogus = b"\xff" * 31 + b"\x7f"
    body = {
        "username": "hank",
        "login_public_key": protocol.b64encode(bogus),
        "kdf": weak_kdf(),
        "device": new_device(),
    }
    r = api.post(protocol.PATH_ACCOUNTS, json=body)
    if r.status_code != 201:  # some libraries accept non-canonical encodings
        assert (r.status_code, error_code(r)) == (400, "invalid_request")


@SQLITE_ONLY
def test_database_holds_no_secret_the_client_holds(api: Api, db_url: str) -> None:
    """Canary: after sign-up and login, no token, recovery code or TOTP code is in the
    database in plaintext (the TOTP *secret* is, as on every TOTP server; documented)."""
    acct = api.signup("ivy")
    tokens = api.login(acct)
    totp_code = pyotp.TOTP(acct.totp_secret).at(api.clock())
    path = Path(db_url.removeprefix("sqlite://"))
    api.client.close()
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    conn = sqlite3.connect(path)
    dump = "\n".join(conn.iterdump()).encode()
    conn.close()
    for haystack in (raw, dump):
        for needle in (
            tokens["access_token"],
            tokens["refresh_token"],
            *acct.recovery_codes,
            *(c.replace("-", "") for c in acct.recovery_codes),
        ):
            assert needle.encode() not in haystack
    assert f"'{totp_code}'".encode() not in dump
