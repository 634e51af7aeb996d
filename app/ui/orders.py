"""``OrderWatcher``: a device-order long-poll kept open for as long as the app runs with
a vault — locked or unlocked — so a lock or wipe order from another device reaches the
running app within seconds, including a stolen laptop sitting at the unlock screen
(docs/PROTOCOL.md, "Devices, orders and escrow").

That works locked because ``DeviceService.check_order`` needs no key: the control record
(server, CA, pin, control token) is in the OS keychain or the vault header, the order is
verified against the account signing key in the header, and ``VaultService.apply_order``
carries it out on a locked vault too (destroying the passphrase slot, or every slot and
the database files).

The loop calls ``check_order(wait=25, quiet=True)`` on its own daemon thread — neither the
UI thread nor a pool worker, which a 25-second wait would hold. When offline (or the
server errs, or refuses an order) it backs off, 5 s doubling to 2 min; while the vault is
not linked to an account it looks again every 10 s (the user may sign in meanwhile).
``check_order`` carries a verified order out itself, so by the time the loop sees it the
vault is locked (or wiped): on an unlocked vault ``VaultLocked(REMOTE)`` reaches the
controller through its queued bridge; in either state ``carried_out`` (this object lives
on the UI thread, so the emit from the loop's thread is queued too) says which order it
was. After a lock it keeps watching (the owner may wipe the device next); after a wipe
it ends, as it does by itself once the vault is gone or wiped (nothing is left to
protect, and a wiped header has no slot an order could change).

Invariants:
- ``stop()`` returns at once: a long-poll in flight ends in its own thread and the loop
  exits (an order it carried out stays carried out — that is the point of it);
- at most one loop runs: ``start()`` is a no-op while one does (``started`` counts the
  loops begun); a stopped loop never emits again except for an order it actually carried
  out;
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
        self.started = 0  # loops begun (tests and diagnostics)

    @property
    def running(self) -> bool:
        """A loop is watching (it has not been stopped and has not ended by itself)."""
        return self._stop is not None and not self._stop.is_set()

    def start(self) -> None:
        """Begin watching (the app started with a vault, or it was unlocked again after
        the loop ended); a no-op while already watching."""
        if self.running:
            return
        stop = threading.Event()
        self._stop = stop
        self.started += 1
        self._thread = threading.Thread(
            target=self._loop, args=(stop,), name="tacit-order-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (quit); does not wait for a long-poll in flight."""
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
    def _vault_left(self) -> bool:
        """Whether there is still a vault an order could act on (not gone, not wiped)."""
        if not self._vault.exists():
            return False
        return not self._vault.read_header().wiped

    def _loop(self, stop: threading.Event) -> None:
        delay = BACKOFF_MIN_S
        devices: DeviceService | None = None
        while not stop.is_set():
            started = time.monotonic()
            try:
                if not self._vault_left():
                    stop.set()  # ends this loop: ``running`` is False, start() may begin anew
                    return
                if devices is None:
                    devices = self._factory(self._vault)
                if not devices.linked():
                    stop.wait(UNLINKED_RETRY_S)
                    continue
                check: OrderCheck = devices.check_order(wait=self.wait_s, quiet=True)
            except Exception as exc:  # an unreadable header, a storage error: keep going
                log.warning("device order check failed: %s", type(exc).__name__)
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.checks += 1
            if check.applied and check.action == "wipe":
                stop.set()  # before the emit: a handler may start a new loop
                self._emit("wipe")
                return
            if check.applied and check.action == "lock":
                self._emit("lock")  # and keep watching: the owner may wipe it next
                delay = BACKOFF_MIN_S
                continue
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
