"""``SyncScheduler``: *when* the desktop app syncs. Pure logic on an injectable clock.

Triggers:
- unlock (``start``): at once;
- a local change (``changed``): ``debounce`` seconds (3 s) after the *last* change, so a
  burst of autosaves makes one sync;
- periodically: ``period`` seconds (5 min) after the last sync ended, to pull what other
  devices pushed;
- on demand (``request``, the "Sync now" action): at once, even while backing off.

Outcomes (``finish``):
- ``OK`` resets the backoff;
- ``OFFLINE`` and ``ERROR`` back off exponentially with jitter: ``base * 2**(n-1)``
  seconds after the n-th failure in a row (5 s, 10 s, 20 s …), capped at ``cap``
  (15 min), each delay shortened by up to ``jitter`` (25 %) at random so many devices
  do not retry in step. A server's ``retry_after`` is honoured when it is longer.
  Offline is the normal case for this app: it is an outcome like any other, never an
  exception the caller must surface;
- ``NEEDS_USER`` (not signed in, session revoked) pauses automatic syncing until the
  user signs in or asks for a sync (``request`` / ``start``); retrying cannot help.

Invariants:
- at most one sync runs: ``begin`` hands out a ticket only when none is outstanding;
- ``stop`` (the vault locked) invalidates the outstanding ticket: ``finish`` with it
  changes nothing and returns False, so the caller drops that run's result unseen;
- no Qt, no I/O, no threads: the driver (``app/ui/syncing.py``) polls ``begin`` from a
  timer, runs the sync in a worker and reports the outcome back with ``finish``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

DEBOUNCE_S = 3.0
PERIOD_S = 5 * 60.0
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 15 * 60.0
JITTER = 0.25


class MonotonicClock(Protocol):
    def monotonic(self) -> float: ...


class Outcome(enum.Enum):
    OK = "ok"
    OFFLINE = "offline"
    ERROR = "error"
    NEEDS_USER = "needs_user"


class Phase(enum.Enum):
    STOPPED = "stopped"  # locked, or not started
    IDLE = "idle"  # waiting for the next trigger
    SYNCING = "syncing"
    BACKING_OFF = "backing_off"  # the last run failed; retrying later
    PAUSED = "paused"  # needs the user (sign in); only ``request`` resumes


@dataclass(frozen=True, slots=True)
class Ticket:
    """One sync run. ``generation`` changes at every start/stop, which is what makes a
    ticket from before a lock stale."""

    generation: int
    number: int


class SyncScheduler:
    def __init__(
        self,
        clock: MonotonicClock,
        *,
        debounce: float = DEBOUNCE_S,
        period: float = PERIOD_S,
        backoff_base: float = BACKOFF_BASE_S,
        backoff_cap: float = BACKOFF_CAP_S,
        jitter: float = JITTER,
        rand: Callable[[], float] = random.random,
    ) -> None:
        timings_ok = debounce >= 0 and period > 0 and 0 < backoff_base <= backoff_cap
        if not (timings_ok and 0 <= jitter < 1):
            raise ValueError("invalid scheduler timings")
        self._clock = clock
        self.debounce = debounce
        self.period = period
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jitter = jitter
        self._rand = rand
        self._phase = Phase.STOPPED
        self._generation = 0
        self._runs = 0
        self._running: Ticket | None = None
        self._due: float | None = None
        self._failures = 0
        self._changed_while_running = False
        self._requested_while_running = False
        self.last_success: float | None = None  # monotonic time of the last OK

    # -- state -------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def failures(self) -> int:
        """Failed runs in a row (reset by a success)."""
        return self._failures

    @property
    def running(self) -> bool:
        return self._running is not None

    def due_in(self) -> float | None:
        """Seconds until the next sync may begin (0 when due), or None if none is
        scheduled (stopped, paused, or a sync is running)."""
        if self._due is None or self._running is not None:
            return None
        return max(0.0, self._due - self._clock.monotonic())

    def backoff_delay(self, failures: int) -> float:
        """The wait after ``failures`` failed runs in a row (before jitter is applied:
        the actual wait is between ``1 - jitter`` times this and this)."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 32)  # 5 s * 2**32 is far past any cap
        return float(min(self.backoff_cap, self.backoff_base * 2**exponent))

    # -- triggers ----------------------------------------------------------------------
    def start(self, *, paused: bool = False) -> None:
        """The vault is unlocked: sync at once (or, ``paused``, wait for the user: the
        vault has no sync account). A run from before is forgotten."""
        self._generation += 1
        self._running = None
        self._failures = 0
        self._changed_while_running = self._requested_while_running = False
        if paused:
            self._pause()
        else:
            self._phase = Phase.IDLE
            self._due = self._clock.monotonic()

    def stop(self) -> None:
        """The vault locked (or the app quits): nothing more is scheduled, and the
        outstanding ticket, if any, is stale."""
        self._generation += 1
        self._running = None
        self._phase = Phase.STOPPED
        self._due = None
        self._changed_while_running = self._requested_while_running = False

    def pause(self) -> None:
        """Automatic syncing off until ``request`` (signed out)."""
        if self._phase is Phase.STOPPED:
            return
        self._generation += 1
        self._running = None
        self._pause()

    def _pause(self) -> None:
        self._phase = Phase.PAUSED
        self._due = None
        self._failures = 0

    def changed(self) -> None:
        """A record changed locally: sync ``debounce`` seconds after the last change.
        While backing off the retry time stands (a change does not make the server
        reachable); while paused the change waits in the outbox."""
        if self._phase in (Phase.STOPPED, Phase.PAUSED):
            return
        if self._running is not None:
            self._changed_while_running = True
            return
        if self._phase is Phase.BACKING_OFF:
            return
        self._due = self._clock.monotonic() + self.debounce

    def request(self) -> None:
        """Sync now (the user asked, or just signed in): at once, also while backing off
        or paused. During a run, one more run follows it."""
        if self._phase is Phase.STOPPED:
            return
        if self._running is not None:
            self._requested_while_running = True
            return
        if self._phase is Phase.PAUSED:
            self._phase = Phase.IDLE
        self._due = self._clock.monotonic()

    # -- runs --------------------------------------------------------------------------
    def begin(self) -> Ticket | None:
        """A ticket to run a sync now, or None (not due, stopped, paused, or one runs)."""
        if self._running is not None or self._due is None:
            return None
        if self._phase in (Phase.STOPPED, Phase.PAUSED):
            return None
        if self._clock.monotonic() < self._due:
            return None
        self._runs += 1
        self._running = Ticket(self._generation, self._runs)
        self._phase = Phase.SYNCING
        self._due = None
        return self._running

    def finish(self, ticket: Ticket, outcome: Outcome, *, retry_after: float | None = None) -> bool:
        """Record how a run ended and schedule the next. Returns False (and changes
        nothing) for a stale ticket: the vault was locked meanwhile."""
        if self._running is None or ticket != self._running:
            return False
        self._running = None
        now = self._clock.monotonic()
        changed, requested = self._changed_while_running, self._requested_while_running
        self._changed_while_running = self._requested_while_running = False
        if outcome is Outcome.OK:
            self._failures = 0
            self.last_success = now
            self._phase = Phase.IDLE
            if requested:
                self._due = now
            elif changed:
                self._due = now + self.debounce
            else:
                self._due = now + self.period
        elif outcome is Outcome.NEEDS_USER:
            self._pause()
        else:
            self._failures += 1
            delay = self.backoff_delay(self._failures)
            delay *= 1.0 - self.jitter * min(max(self._rand(), 0.0), 1.0)
            if retry_after is not None and retry_after > delay:
                delay = min(float(retry_after), self.backoff_cap)
            self._phase = Phase.BACKING_OFF
            self._due = now + delay
        return True
