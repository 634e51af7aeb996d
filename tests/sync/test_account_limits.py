"""What a sync server may ask of this client's key derivation: at least the floor, and
not so much that the client runs out of memory or time."""

from __future__ import annotations

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
