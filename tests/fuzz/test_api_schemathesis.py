"""API fuzzing of the sync server from its own OpenAPI document (schemathesis), in
process over ASGI, on SQLite: requests that fit the schema (positive) and requests that
break it (negative), without credentials and with a valid session and control token.

Checks on every response (schemathesis' own): ``not_a_server_error`` (no 5xx, ever),
``status_code_conformance`` (the status is one the document declares),
``content_type_conformance`` and ``response_schema_conformance`` (the body fits the
declared schema). A self-test runs the same harness against a deliberately broken app
to prove a 5xx and an undeclared body are caught.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis.errors import Unsatisfiable

from app.sync import protocol
from app.sync.server.db import open_database
from app.sync.server.migrations import migrate
from app.sync.server.settings import TEST_KDF_FLOOR
from tests.fuzz.conftest import Budget
from tests.sync.server.device_helpers import login_device
from tests.sync.server.helpers import Api, ManualClock, make_api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Report:
    examples: int = 0
    operations: int = 0
    unsatisfiable: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    # (signed in?, status) -> count: proves the signed-in half got past authentication
    statuses: Counter[tuple[bool, int]] = field(default_factory=Counter)


def fuzz_app(
    app: Any, path: str, budget: Budget, headers: Callable[[str], dict[str, str]],
    fast: int, soak: int, before: Callable[[], None] = lambda: None,
) -> Report:  # fmt: skip
    """Run every operation of ``app``'s schema (``before`` each one); collect failures
    (the first per operation and mode) instead of stopping at one."""
    schema = schemathesis.openapi.from_asgi(path, app)
    report = Report()
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        before()
        try:
            _operation_run(operation, report, budget, headers, fast, soak)()
        except Unsatisfiable:
            report.unsatisfiable.append(operation.label)
    return report


def _operation_run(
    operation: Any, report: Report, budget: Budget,
    headers: Callable[[str], dict[str, str]], fast: int, soak: int,
) -> Callable[[], None]:  # fmt: skip
    """One hypothesis run over an operation: cases that fit its schema and (when it has
    parameters or a body to break) cases that do not, mixed in one run."""
    has_input = any(
        len(part) for part in (operation.path_parameters, operation.query, operation.headers,
                               operation.body)
    )  # fmt: skip
    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if has_input:
        cases = cases | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

    @budget.settings(fast=fast, soak=soak)
    @given(case=cases)
    def run(case: Any) -> None:
        report.examples += 1
        mode = case.meta.generation.mode.value if case.meta is not None else "?"
        key = f"{operation.label} [{mode}]"
        _shorten_long_poll(case)
        sent = headers(operation.path)
        try:
            response = case.call(headers=sent, timeout=LONG_POLL_LIMIT)
        except Exception as crash:  # the app raised through the ASGI transport: a 5xx
            report.failures.setdefault(key, f"server crashed: {crash!r}"[:1500])
            return
        report.statuses[("Authorization" in sent, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as failure:  # the checks that failed
            report.failures.setdefault(key, str(failure)[:1500])

    return run  # type: ignore[no-any-return]


# GET /v1/devices/self/order?wait=N holds the request for up to N (≤ 25) real seconds;
# its timing has its own tests (test_devices_orders.py). Here a valid wait of 2..25 is
# sent as 1, so a soak run does not spend hours waiting; invalid values go as they are.
LONG_POLL_LIMIT = protocol.MAX_ORDER_WAIT_S + 15


def _shorten_long_poll(case: Any) -> None:
    wait = (case.query or {}).get("wait") if isinstance(case.query, dict) else None
    if type(wait) is int and 1 < wait <= protocol.MAX_ORDER_WAIT_S:
        case.query["wait"] = 1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Api]:
    path = tmp_path / "server.sqlite3"
    db = open_database(f"sqlite:///{path}")
    try:
        migrate(db, now_ms=int(time.time() * 1000))
    finally:
        db.close()
    # No rate limits: the fuzzer sends hundreds of requests from one address.
    with make_api(f"sqlite:///{path}", ManualClock(), kdf_floor=TEST_KDF_FLOOR,
                  ip_request_limit=0, ip_failure_limit=10**9, account_request_limit=0,
                  lockout_failures=10**6) as api:  # fmt: skip
        yield api
    shutil.rmtree(tmp_path, ignore_errors=True)


def _record(name: str, report: Report) -> None:
    line = {
        "api": name,
        "operations": report.operations,
        "examples": report.examples,
        "failures": len(report.failures),
        "unsatisfiable": len(report.unsatisfiable),
        "statuses": {
            f"{'signed-in' if k[0] else 'anonymous'} {k[1]}": v
            for k, v in sorted(report.statuses.items())
        },
    }
    print("schemathesis:", json.dumps(line))
    target = os.environ.get("TACIT_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def _explain(report: Report) -> str:
    return "\n\n".join(f"{k}:\n{v}" for k, v in sorted(report.failures.items()))


def test_the_api_from_its_openapi_document(budget: Budget, server: Api) -> None:
    """Every other example is sent signed in (a session and a control token), the rest
    without credentials: both halves of every operation in one pass."""
    account = server.account("fuzzer")
    device = login_device(server, account)  # a second device: its control token
    session: dict[str, str] = {}
    sent = {"signed-in": 0, "anonymous": 0}
    renewed = {"session": 0, "control": 0}

    def alive() -> None:
        """A fuzzed request may have ended the session (logout) or the control token:
        sign in again before the next operation, so the signed-in half stays signed in."""
        nonlocal device
        token = session.get("Authorization", "").removeprefix("Bearer ")
        if not token or server.get(protocol.PATH_DEVICES, token=token).status_code != 200:
            server.login(account)
            session["Authorization"] = f"Bearer {account.tokens['access_token']}"
            renewed["session"] += 1
        control = {protocol.CONTROL_TOKEN_HEADER: device.tokens["control_token"]}
        if server.get(protocol.PATH_SELF_ORDER, headers=control).status_code == 401:
            device = login_device(server, account, device.info)
            renewed["control"] += 1
        session[protocol.CONTROL_TOKEN_HEADER] = device.tokens["control_token"]

    def headers(path: str) -> dict[str, str]:
        signed_in = sum(sent.values()) % 2 == 0
        sent["signed-in" if signed_in else "anonymous"] += 1
        return dict(session) if signed_in else {}

    app = server.client.app
    report = fuzz_app(app, protocol.PATH_OPENAPI, budget, headers, fast=4, soak=400, before=alive)
    _record(json.dumps({**sent, "renewed": renewed}), report)
    assert report.operations >= 20 and report.examples >= report.operations
    assert min(sent.values()) > report.operations
    # The signed-in half got past authentication (not just 401s), sometimes all the way.
    past_auth = {status for (signed, status) in report.statuses if signed and status != 401}
    assert sum(report.statuses[(True, status)] for status in past_auth) >= report.operations
    assert any(status < 300 for status in past_auth)
    assert not report.failures, _explain(report)


def test_the_harness_catches_a_5xx_and_an_undeclared_body(budget: Budget) -> None:
    """The checks above can fail: a small app that breaks on some inputs is caught."""
    from fastapi import FastAPI
    from pydantic import BaseModel

    broken = FastAPI()

    class Out(BaseModel):
        n: int

    @broken.get("/crash", response_model=Out)
    def crash(n: int) -> dict[str, Any]:
        if n > 3:
            raise RuntimeError("boom")  # a 500
        return {"n": n}

    @broken.get("/lie", response_model=Out)
    def lie() -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"n": "not a number"})  # not what the schema declares

    report = fuzz_app(broken, "/openapi.json", budget, lambda p: {}, fast=15, soak=15)
    failed = " ".join(report.failures)
    assert "GET /crash" in failed and "GET /lie" in failed, report.failures


def test_error_statuses_the_api_returns_are_declared(server: Api) -> None:
    """Regression (issue 9): the document declared no 403, 404, 409 or 423 although
    the API answers them (the fuzzer's ``status_code_conformance`` found 404s)."""
    doc = server.get(protocol.PATH_OPENAPI).json()
    acct = server.account("declared")
    token = acct.tokens["access_token"]
    missing = protocol.item_path(str(uuid.uuid4()))
    stale = {"kind": "note", "expected_etag": "0" * 64, "deleted": False, "key_id": "k",
             "blob": "AAAA"}  # fmt: skip
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.sync.server.helpers import new_device, raw_public_key, weak_kdf

    key = protocol.b64encode(raw_public_key(Ed25519PrivateKey.generate()))
    again = {"username": "declared", "login_public_key": key, "kdf": weak_kdf()}
    taken = server.post(protocol.PATH_ACCOUNTS, json={**again, "device": new_device()})
    answers = [
        ("get", "/v1/items/{item_id}", server.get(missing, token=token)),
        ("put", "/v1/items/{item_id}", server.put(missing, token=token, json=stale)),
        ("post", "/v1/accounts", taken),
    ]
    assert [r.status_code for _, _, r in answers] == [404, 409, 409]
    for method, path, r in answers:
        assert str(r.status_code) in doc["paths"][path][method]["responses"], (path, r.text)
    for status in ("403", "404", "409", "423"):
        assert status in doc["paths"]["/v1/items"]["get"]["responses"]
