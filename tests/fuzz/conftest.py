"""Shared set-up for the hostile-input tests (issue 9).

Every fuzz test runs twice over: a small, derandomized budget in the default run (CI:
the same examples every time, so a failure reproduces) and a large, randomized one
under the ``soak`` marker, which the default run deselects (pyproject's ``addopts``)
and ``make soak`` selects with ``pytest -m soak``.

A test asks for the ``budget`` fixture and wraps its inner ``@given`` function with
``budget.settings(fast, soak)``; the numbers are ``max_examples``. ``TACIT_SOAK_SCALE``
multiplies the soak budgets (default 1) for a longer run.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Budget:
    """How hard one test pushes: ``soak`` or the fast CI subset."""

    soak: bool

    def examples(self, fast: int, soak: int) -> int:
        if not self.soak:
            return fast
        return max(1, int(soak * float(os.environ.get("TACIT_SOAK_SCALE", "1"))))

    def settings(self, fast: int, soak: int) -> Callable[[F], F]:
        """Hypothesis settings for this budget: derandomized (the same examples on every
        run) in the fast subset, random in the soak run; no example database either
        way (nothing written into the work tree), no deadline (a shared 2-core machine
        has jitter; hangs are caught by the per-example ceiling of each test instead)."""
        return settings(
            max_examples=self.examples(fast, soak),
            derandomize=not self.soak,
            database=None,
            deadline=None,
            print_blob=True,
            # No "explain" phase: it traces coverage of every example, which costs more
            # than the examples themselves here.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
                HealthCheck.function_scoped_fixture,
            ],
        )


@pytest.fixture(params=["fast", pytest.param("soak", marks=pytest.mark.soak)])
def budget(request: pytest.FixtureRequest) -> Budget:
    return Budget(soak=request.param == "soak")


class Hang(BaseException):
    """An example ran past its ceiling: a parser that hangs on hostile input. (Not an
    Exception, so no ``except Exception`` in the code under test can swallow it.)"""


@contextlib.contextmanager
def ceiling(seconds: float) -> Iterator[None]:
    """Raise ``Hang`` in the main thread if the block runs longer than ``seconds``."""

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
