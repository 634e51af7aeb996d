"""Terminal I/O for the CLI: secrets from fds, env or a no-echo prompt; note bodies from
files or stdin; JSON and human output; the error envelope; progress bars.

Invariants: secrets are never echoed or printed (except the recovery key, once, by
``tacit init`` whose whole point is to show it); with ``--json`` stdout carries exactly
one JSON document and errors go to stderr as ``{"error": {"code", "message"}}``; a
progress bar is drawn only on a terminal's stderr and never with ``--json``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TextIO

from app.errors import InvalidInputError, TacitError, UsageError
from app.vault.clock import human_duration
from app.vault.crypto import Passphrase

PASSPHRASE_ENV = "TACIT_PASSPHRASE"  # noqa: S105 - a variable name
NEW_PASSPHRASE_ENV = "TACIT_NEW_PASSPHRASE"  # noqa: S105 - a variable name
RECOVERY_KEY_ENV = "TACIT_RECOVERY_KEY"
MAX_SECRET_BYTES = 4096
MAX_BODY_BYTES = 8 * 1024 * 1024


class ArgParser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, the error envelope) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _read_fd(fd: int) -> str:
    """One line from an inherited file descriptor (the trailing newline is dropped)."""
    try:
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(MAX_SECRET_BYTES + 1)
    except OSError:
        raise UsageError(f"cannot read from file descriptor {fd}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise UsageError("the secret read from the file descriptor is too long")
    text = data.decode("utf-8", errors="strict").split("\n", 1)[0]
    return text.removesuffix("\r")


def _prompt(label: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError(
            f"{label} needed: no terminal to prompt on (use a --…-fd option or the "
            "documented environment variable)"
        )
    try:
        return getpass.getpass(f"{label}: ")
    except (EOFError, KeyboardInterrupt):
        raise UsageError(f"{label} not given") from None


def read_secret(label: str, *, fd: int | None, env: str, confirm: bool = False) -> str:
    if fd is not None:
        return _read_fd(fd)
    value = os.environ.get(env)
    if value is not None:
        return value
    first = _prompt(label)
    if confirm and _prompt(f"{label} (again)") != first:
        raise UsageError("the two entries do not match")
    return first


def read_passphrase(label: str, *, fd: int | None, env: str, confirm: bool = False) -> Passphrase:
    text = read_secret(label, fd=fd, env=env, confirm=confirm)
    if not text:
        raise UsageError(f"{label} is empty")
    return Passphrase.from_str(text)


def read_body(body_file: str | None, *, required: bool) -> str | None:
    """A note body from ``--body-file`` (``-`` is stdin) or piped stdin. None when none
    was given and none is required."""
    try:
        if body_file is not None and body_file != "-":
            data = Path(body_file).read_bytes()
        elif body_file == "-" or not sys.stdin.isatty():
            data = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            data = b""
    except OSError as exc:
        raise UsageError(f"cannot read the body: {exc.strerror}") from None
    if len(data) > MAX_BODY_BYTES:
        raise InvalidInputError("the note body is larger than 8 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the note body is not UTF-8 text") from None
    if not text.strip():
        if required:
            raise UsageError("give the new body on stdin or with --body-file")
        return None
    return text


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, human: str | None = None) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        else:
            sys.stdout.write((human if human is not None else _human(data)) + "\n")

    def progress(self, label: str) -> Progress:
        """A progress bar for a long command (backup, verify, restore, export, import):
        drawn on stderr when it is a terminal and the output is not JSON, else silent."""
        return Progress(label, enabled=not self.as_json and sys.stderr.isatty())

    def error(self, err: TacitError) -> int:
        if self.as_json:
            sys.stderr.write(json.dumps({"error": err.to_dict()}) + "\n")
        else:
            sys.stderr.write(f"tacit: {err.message} [{err.code}]\n")
        return err.exit_status


class Progress:
    """``progress(done, total)`` redraws one line on stderr: a bar, the count and the
    time left (from the rate so far). At most ten redraws a second; closing clears the
    line. Disabled, every call does nothing, so callers need not check. Use it as a
    context manager, or call ``close()``."""

    WIDTH = 24
    INTERVAL = 0.1

    def __init__(
        self, label: str, *, enabled: bool, stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.label = label
        self.enabled = enabled
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._drawn_at: float | None = None
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        now = self._clock()
        if done < total and self._drawn_at is not None and now - self._drawn_at < self.INTERVAL:
            return
        self._drawn_at = now
        self._write("\r" + self.line(done, total, now - self._started) + "\x1b[K")
        self._shown = True

    def line(self, done: int, total: int, elapsed: float) -> str:
        """The bar as text, e.g. ``Importing [######------] 50% 500/1000  ~3 s left``."""
        done = max(0, min(done, total))
        filled = self.WIDTH * done // total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        text = f"{self.label} [{bar}] {100 * done // total:3d}% {done}/{total}"
        if 0 < done < total and elapsed >= 0.5:
            text += f"  ~{human_duration(elapsed / done * (total - done))} left"
        return text

    def close(self) -> None:
        if self._shown:
            self._write("\r\x1b[K")
            self._shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(text)
        stream.flush()


def _human(data: Any) -> str:
    if isinstance(data, Mapping):
        width = max((len(str(k)) for k in data), default=0)
        return "\n".join(f"{k:<{width}}  {_scalar(v)}" for k, v in data.items())
    if isinstance(data, Sequence) and not isinstance(data, str):
        return "\n".join(_scalar(item) for item in data) if data else "(none)"
    return str(data)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    if value is None:
        return "—"
    # Table cells may hold text from elsewhere (a device name the server stored): no
    # control character reaches the terminal (escape sequences could rewrite the screen).
    return _CONTROL.sub("\ufffd", str(value))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_scalar(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)
