"""Process hardening while a vault is open: no core dumps, not dumpable.

On Linux we set RLIMIT_CORE to 0 and PR_SET_DUMPABLE to 0 (which also stops other
processes of the same user from ptrace-attaching and reading our memory, and makes
/proc/PID/mem unreadable to them). Elsewhere we only lower RLIMIT_CORE where it exists.
Best effort: failures are reported by ``status()`` but never stop the app.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """libc, loaded once: ``find_library`` runs ``ldconfig -p`` in a subprocess, which
    cost ~5 ms on every unlock before this was cached. The soname is tried first."""
    if not sys.platform.startswith("linux"):
        return None
    for name in ("libc.so.6", ctypes.util.find_library("c")):
        if name:
            try:
                return ctypes.CDLL(name, use_errno=True)
            except OSError:
                continue
    return None


def harden_process() -> bool:
    """Disable core dumps for this process. Returns True when fully applied."""
    ok = True
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        ok = False
    libc = _libc()
    if libc is not None:
        ok = libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 and ok
    return ok


def status() -> dict[str, bool | None]:
    """What is in force now (for `tacit status` and the self-test)."""
    core_off: bool | None = None
    try:
        import resource

        core_off = resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    except ImportError:
        pass
    dumpable: bool | None = None
    libc = _libc()
    if libc is not None:
        dumpable = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0
    return {"core_dumps_off": core_off, "dumpable": dumpable}
