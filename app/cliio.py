"""Terminal I/O for the CLI: secrets from fds, env or a no-echo prompt; note bodies from
files or stdin; JSON and human output; the error envelope.

Invariants: secrets are never echoed or printed (except the recovery key, once, by
``tacit init`` whose whole point is to show it); with ``--json`` stdout carries exactly
one JSON document and errors go to stderr as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from app.errors import InvalidInputError, TacitError, UsageError
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

    def error(self, err: TacitError) -> int:
        if self.as_json:
            sys.stderr.write(json.dumps({"error": err.to_dict()}) + "\n")
        else:
            sys.stderr.write(f"tacit: {err.message} [{err.code}]\n")
        return err.exit_status


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
