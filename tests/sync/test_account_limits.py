"""What a sync server may ask of this client's key derivation: at least the floor, and
not so much that the client runs out of memory or time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.sync import protocol
from app.sync.account import MAX_KDF_MEMORY_KIB, MAX_KDF_PARALLELISM, kdf_from_wire
from app.vault import crypto


def wire(**changes: Any) -> dict[str, Any]:
    floor = crypto.kdf_floor()
    doc = {"memory_kib": floor.memory_kib, "iterations": floor.iterations,
           "parallelism": floor.parallelism, "algorithm": "argon2id", "version": 19,
           "salt": protocol.b64encode(bytes(16))}  # fmt: skip
    doc.update(changes)
    return doc


def test_the_floor_is_accepted() -> None:
    params, salt = kdf_from_wire(wire())
    assert params.at_least(crypto.kdf_floor()) and salt == bytes(16)


@pytest.mark.parametrize(
    "changes",
    [{"memory_kib": MAX_KDF_MEMORY_KIB + 1}, {"parallelism": MAX_KDF_PARALLELISM + 1},
     {"iterations": 1001}, {"memory_kib": 8}],
)  # fmt: skip
def test_out_of_bounds_parameters_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(protocol.KdfTooWeakError):
        kdf_from_wire(wire(**changes))


def test_malformed_parameters_are_refused() -> None:
    with pytest.raises(protocol.InvalidRequestError):
        kdf_from_wire({"memory_kib": "lots"})


@pytest.mark.parametrize(
    "changes",
    [{"memory_kib": float("inf")}, {"iterations": float("nan")}, {"memory_kib": 262144.9},
     {"parallelism": True}, {"version": "19"}, {"algorithm": 1}, {"salt": None}],
)  # fmt: skip
def test_parameters_of_the_wrong_json_type_are_refused(changes: dict[str, Any]) -> None:
    """Found by the soak fuzzing: ``Infinity`` (which Python's json accepts) raised
    OverflowError out of the parser; a float was truncated and ``true`` read as 1."""
    with pytest.raises(protocol.InvalidRequestError):
        kdf_from_wire(wire(**changes))


def test_infinity_from_a_server_document_is_refused() -> None:
    doc = json.loads('{"memory_kib": Infinity}')
    with pytest.raises(protocol.InvalidRequestError):
        kdf_from_wire(wire(**doc))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_an_answer_holding_a_non_json_number_is_malformed(constant: str) -> None:
    """Python's json reads these; a server answer holding one is refused whole (the
    parsers behind the transport never see it)."""
    import httpx

    from app.sync.client import HttpTransport

    body = f'{{"memory_kib": {constant}, "iterations": 3}}'.encode()
    transport = HttpTransport("http://127.0.0.1:9")
    transport._http = httpx.Client(
        base_url=transport.origin,
        transport=httpx.MockTransport(lambda _request: httpx.Response(200, content=body)),
    )
    with transport, pytest.raises(protocol.ApiError, match="malformed answer"):
        transport.auth_params("someone")
