"""Fixtures of the sync client tests: an in-memory server and two vaults on it (the first
has made the account's items key)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.vault.clock import ManualClock
from tests.sync.devices import Device
from tests.sync.fakes import FakeServer


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def devices(
    tmp_path: Path, clock: ManualClock, server: FakeServer
) -> Iterator[tuple[Device, Device]]:
    a = Device(tmp_path / "a", clock, server)
    a.engine().ensure_items_key()
    b = Device(tmp_path / "b", clock, server)
    yield a, b
    a.vault.lock()
    b.vault.lock()
