"""``OrderWatcher``: a device-order long-poll kept open while the vault is unlocked, so a
lock or wipe order from another device reaches the running app within seconds
(docs/PROTOCOL.md, "Devices, orders and escrow").

The loop calls ``DeviceService.check_order(wait=25, quiet=True)`` on its own daemon
thread — neither the UI thread nor a pool worker, which a 25-second wait would hold.
When offline (or the server errs, or refuses an order) it backs off, 5 s doubling to
2 min; while the vault is not linked to an account it looks again every 10 s (the user
may sign in meanwhile). ``check_order`` carries a verified order out itself, so by the
time the loop sees it the vault has locked (or been wiped): ``VaultLocked(REMOTE)``
reaches the controller through its queued bridge, and ``carried_out`` (this object lives
on the UI thread, so the emit from the loop's thread is queued too) says which order it
was.

Invariants:
- ``stop()`` returns at once: a long-poll in flight ends in its own thread and the loop
  exits (an order it carried out stays carried out — that is the point of it);
- at most one loop runs per ``start()``; a stopped loop never emits again except for an
  order it actually carried out;
- only error codes and exception type names reach a log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from app.sync.devices import DeviceService, OrderCheck
from app.ui.qt import QObject, Signal
from app.vault.service import VaultService

log = logging.getLogger(__name__)

DeviceFactory = Callable[[VaultService], DeviceService]
LONG_POLL_S = 25
UNLINKED_RETRY_S = 10.0
BACKOFF_MIN_S = 5.0
BACKOFF_MAX_S = 120.0
MIN_INTERVAL_S = 1.0  # a server answering at once must not make this a busy loop
ORDER_ACTIONS = ("lock", "wipe")


class OrderWatcher(QObject):
    carried_out = Signal(str)  # "lock" or "wipe", after the vault carried it out

    def __init__(
        self, vault: VaultService, factory: DeviceFactory = DeviceService, *,
        wait_s: int = LONG_POLL_S, parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self._vault = vault
        self._factory = factory
        self.wait_s = wait_s
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self.checks = 0  # completed checks (tests and diagnostics)

    @property
    def running(self) -> bool:
        return self._stop is not None and not self._stop.is_set()

    def start(self) -> None:
        """Begin watching (the vault was unlocked); a no-op while already watching."""
        if self.running:
            return
        stop = threading.Event()
        self._stop = stop
        devices = self._factory(self._vault)
        self._thread = threading.Thread(
            target=self._loop, args=(devices, stop), name="tacit-order-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (lock, quit); does not wait for a long-poll in flight."""
        if self._stop is not None:
            self._stop.set()
        self._stop = None

    def wait(self, timeout_s: float) -> bool:
        """Block until the loop's thread has ended (tests and shutdown only)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    # -- the loop (its own thread) ---------------------------------------------------------
    def _loop(self, devices: DeviceService, stop: threading.Event) -> None:
        delay = BACKOFF_MIN_S
        while not stop.is_set():
            started = time.monotonic()
            try:
                if not devices.linked():
                    stop.wait(UNLINKED_RETRY_S)
                    continue
                check: OrderCheck = devices.check_order(wait=self.wait_s, quiet=True)
            except Exception as exc:  # the vault went away, a storage error: keep going
                log.warning("device order check failed: %s", type(exc).__name__)
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.checks += 1
            if check.applied and check.action in ORDER_ACTIONS:
                self._emit(str(check.action))
                return
            if check.problem == "not_linked":
                stop.wait(UNLINKED_RETRY_S)
            elif check.problem is not None:
                if check.problem != "offline":
                    log.info("device order check: %s", check.problem)
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
            else:
                delay = BACKOFF_MIN_S
                stop.wait(max(0.0, MIN_INTERVAL_S - (time.monotonic() - started)))

    def _emit(self, action: str) -> None:
        with contextlib.suppress(RuntimeError):  # the app is gone: nothing to tell
            self.carried_out.emit(action)
