"""``SyncScheduler`` alone, on a ManualClock: debounce, period, on demand, backoff with
jitter (growth, cap, reset), offline as an ordinary outcome, no overlap, stop on lock."""

from __future__ import annotations

import itertools

import pytest

from app.sync.scheduler import (
    BACKOFF_CAP_S,
    Outcome,
    Phase,
    SyncScheduler,
    Ticket,
)
from app.vault.clock import ManualClock


def make(clock: ManualClock, rand: float = 0.0, **kw: float) -> SyncScheduler:
    return SyncScheduler(clock, rand=lambda: rand, **kw)


def run_once(s: SyncScheduler, outcome: Outcome = Outcome.OK, **kw: float) -> Ticket:
    ticket = s.begin()
    assert ticket is not None
    assert s.finish(ticket, outcome, **kw)
    return ticket


def test_unlock_syncs_at_once_then_periodically(clock: ManualClock) -> None:
    s = make(clock)
    assert s.begin() is None  # stopped until started
    s.start()
    assert s.due_in() == 0
    run_once(s)
    assert s.phase is Phase.IDLE
    assert s.due_in() == pytest.approx(300)
    clock.advance(299)
    assert s.begin() is None
    clock.advance(1)
    run_once(s)  # the periodic sync
    assert s.last_success == clock.monotonic()


def test_changes_are_debounced_from_the_last_one(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    run_once(s)
    s.changed()
    clock.advance(2)
    s.changed()  # another autosave: the debounce starts again
    clock.advance(2)
    assert s.begin() is None
    clock.advance(1)
    assert s.begin() is not None


def test_a_change_during_a_run_is_synced_after_it(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    ticket = s.begin()
    assert ticket is not None
    s.changed()
    s.finish(ticket, Outcome.OK)
    assert s.due_in() == pytest.approx(3)


def test_never_two_syncs_at_once(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    first = s.begin()
    assert first is not None and s.running
    s.request()
    s.changed()
    clock.advance(1000)
    assert s.begin() is None  # one is running
    assert s.due_in() is None
    s.finish(first, Outcome.OK)
    second = s.begin()  # "Sync now" during the run: right after it
    assert second is not None and second != first


def test_sync_now(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    run_once(s)
    s.request()
    assert s.begin() is not None


def test_backoff_grows_is_capped_and_resets(clock: ManualClock) -> None:
    s = make(clock, rand=0.0)  # no jitter: the delays are exact
    s.start()
    delays = []
    for _ in range(10):
        run_once(s, Outcome.ERROR)
        assert s.phase is Phase.BACKING_OFF
        due = s.due_in()
        assert due is not None
        delays.append(due)
        clock.advance(due)
    assert delays[:5] == [5, 10, 20, 40, 80]
    assert delays[-1] == BACKOFF_CAP_S == 900
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert s.failures == 10
    run_once(s, Outcome.OK)
    assert s.failures == 0
    assert s.due_in() == pytest.approx(300)
    run_once_after(s, clock, Outcome.ERROR)
    assert s.due_in() == pytest.approx(5)  # back to the first step


def run_once_after(s: SyncScheduler, clock: ManualClock, outcome: Outcome) -> None:
    due = s.due_in()
    assert due is not None
    clock.advance(due)
    run_once(s, outcome)


def test_jitter_only_shortens_within_bounds(clock: ManualClock) -> None:
    s = make(clock, rand=1.0)
    s.start()
    run_once(s, Outcome.OFFLINE)
    assert s.due_in() == pytest.approx(5 * 0.75)
    assert s.backoff_delay(100) == BACKOFF_CAP_S
    values = iter([0.0, 0.5, 0.999])
    s2 = SyncScheduler(clock, rand=lambda: next(values))
    s2.start()
    seen = []
    for _ in range(3):
        run_once(s2, Outcome.OFFLINE)
        due = s2.due_in()
        assert due is not None
        seen.append(due)
        clock.advance(due)
    assert seen[0] == pytest.approx(5)
    assert 10 * 0.75 <= seen[1] <= 10
    assert 20 * 0.75 <= seen[2] <= 20


def test_offline_is_an_ordinary_outcome_with_backoff(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    run_once(s, Outcome.OFFLINE)  # no exception, no pause: just retry later
    assert s.phase is Phase.BACKING_OFF
    s.changed()  # a change does not cut the retry short...
    assert s.due_in() == pytest.approx(5)
    s.request()  # ...but "Sync now" does
    assert s.begin() is not None


def test_retry_after_from_the_server_is_honoured(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    run_once(s, Outcome.ERROR, retry_after=120)
    assert s.due_in() == pytest.approx(120)
    run_once_after(s, clock, Outcome.ERROR)
    assert s.due_in() == pytest.approx(10)  # a short retry_after does not shorten it
    s.start()
    run_once(s, Outcome.ERROR, retry_after=100_000)
    assert s.due_in() == BACKOFF_CAP_S


def test_needs_user_pauses_until_asked(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    run_once(s, Outcome.NEEDS_USER)
    assert s.phase is Phase.PAUSED
    s.changed()
    clock.advance(10_000)
    assert s.begin() is None and s.due_in() is None
    s.request()  # signed in again
    assert s.begin() is not None


def test_start_paused_when_there_is_no_account(clock: ManualClock) -> None:
    s = make(clock)
    s.start(paused=True)
    s.changed()
    clock.advance(1000)
    assert s.begin() is None
    s.request()
    assert s.begin() is not None


def test_pause_on_sign_out_drops_the_running_ticket(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    ticket = s.begin()
    assert ticket is not None
    s.pause()
    assert not s.finish(ticket, Outcome.OK)
    assert s.phase is Phase.PAUSED


def test_stop_on_lock_makes_the_running_ticket_stale(clock: ManualClock) -> None:
    s = make(clock)
    s.start()
    ticket = s.begin()
    assert ticket is not None
    s.stop()  # the vault locked mid-run
    assert s.phase is Phase.STOPPED and not s.running
    assert not s.finish(ticket, Outcome.ERROR)  # its (failed) result is dropped
    assert s.failures == 0
    s.changed()
    s.request()
    clock.advance(10_000)
    assert s.begin() is None  # nothing runs while locked
    s.start()  # unlocked again: a fresh run; the old ticket stays stale
    fresh = s.begin()
    assert fresh is not None and fresh != ticket
    assert not s.finish(ticket, Outcome.OK)
    assert s.running
    assert s.finish(fresh, Outcome.OK)


def test_invalid_timings_are_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="timings"):
        SyncScheduler(clock, jitter=1.5)
    with pytest.raises(ValueError, match="timings"):
        SyncScheduler(clock, backoff_base=10, backoff_cap=5)
