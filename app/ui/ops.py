"""``OpRunner``: the one way the UI runs a long operation off the UI thread.

Creating a vault (Argon2id calibration, ~2 s), unlocking (~1 s), changing the passphrase
and searching a large vault run here; the UI thread never blocks on them. The callable
runs in a ``QThreadPool`` worker; its result, or the ``TacitError`` it raised, is handed
back on the UI thread through a queued signal, and a busy indicator is on meanwhile.

Invariants:
- callbacks always run on the UI thread, never in the worker;
- ``cancel_all()`` (called when the vault locks) bumps an epoch: results of operations
  started before it are dropped unseen, so nothing read before a lock reaches a widget
  after it;
- an unexpected exception becomes a generic ``TacitError`` whose message says nothing
  about its cause (a lower-level message could quote note text); only the exception's
  type name is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from app.errors import TacitError
from app.ui.qt import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

T = TypeVar("T")


class BusyIndicator(Protocol):
    """Something that can show that work is in progress (a spinner, a disabled form)."""

    def set_busy(self, busy: bool, message: str = "") -> None: ...


class UnexpectedError(TacitError):
    code = "unexpected"
    default_message = "something unexpected went wrong; nothing was changed"


class _Relay(QObject):
    """Lives on the UI thread; the worker emits through it, so delivery is queued."""

    done = Signal(int, object)
    failed = Signal(int, object)


class _Task(QRunnable):
    def __init__(self, task_id: int, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._id = task_id
        self._fn = fn
        self._relay = relay

    def run(self) -> None:
        try:
            result = self._fn()
        except TacitError as exc:
            self._relay.failed.emit(self._id, exc)
        except Exception as exc:  # a bug: report its type only, never its text
            log.error("background operation failed: %s", type(exc).__name__)
            self._relay.failed.emit(self._id, UnexpectedError())
        else:
            self._relay.done.emit(self._id, result)


class _Pending:
    __slots__ = ("busy", "epoch", "on_done", "on_error")

    def __init__(
        self,
        epoch: int,
        on_done: Callable[[Any], None],
        on_error: Callable[[TacitError], None],
        busy: BusyIndicator | None,
    ) -> None:
        self.epoch = epoch
        self.on_done = on_done
        self.on_error = on_error
        self.busy = busy


class OpRunner(QObject):
    """Runs callables in a worker thread and calls back on the UI thread."""

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._epoch = 0

    def run(
        self,
        fn: Callable[[], T],
        on_done: Callable[[T], None],
        on_error: Callable[[TacitError], None],
        *,
        busy: BusyIndicator | None = None,
        message: str = "",
    ) -> int:
        """Start ``fn`` in a worker; returns an id for ``is_running``."""
        self._next_id += 1
        task_id = self._next_id
        self._pending[task_id] = _Pending(self._epoch, on_done, on_error, busy)
        if busy is not None:
            busy.set_busy(True, message)
        self._pool.start(_Task(task_id, fn, self._relay))
        return task_id

    def is_running(self, task_id: int) -> bool:
        return task_id in self._pending

    @property
    def active(self) -> int:
        return len(self._pending)

    def cancel_all(self) -> None:
        """Forget every running operation: their results will be dropped."""
        self._epoch += 1
        for pending in self._pending.values():
            if pending.busy is not None:
                pending.busy.set_busy(False)
        self._pending.clear()

    def wait(self, msecs: int = -1) -> bool:
        """Block until the workers are idle (shutdown and tests only)."""
        return bool(self._pool.waitForDone(msecs))

    def _take(self, task_id: int) -> _Pending | None:
        pending = self._pending.pop(task_id, None)
        if pending is None or pending.epoch != self._epoch:
            return None
        if pending.busy is not None:
            pending.busy.set_busy(False)
        return pending

    def _on_done(self, task_id: int, result: object) -> None:
        pending = self._take(task_id)
        if pending is not None:
            pending.on_done(result)

    def _on_failed(self, task_id: int, error: object) -> None:
        pending = self._take(task_id)
        if pending is None:
            return
        pending.on_error(error if isinstance(error, TacitError) else UnexpectedError())
