"""The CLI's commands about the installation itself (a mixin of ``app.cli.Cli``, like
app/clisync.py), none of which opens a vault:

- ``tacit selftest`` → the self-test report (app/selftest.py); exit 0 when every check
  passes or only warns, ``EXIT_FAILED`` (15) when one fails;
- ``tacit update status|enable [--url URL]|disable`` → the update setting
  (app/update.py): ``{"enabled", "feed_url", "last_checked"}``;
- ``tacit update check [--url URL]`` → ``{"current", "latest", "newer", "published",
  "url", "security"}``; refused (``usage``, ``reason: disabled``) while the check is
  off, before anything is sent.

Invariant: no command here reads or writes the vault or any secret.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from app import selftest, update
from app.cliio import ArgParser as _Parser
from app.cliio import Output


def add_ship_commands(cmd: Callable[..., argparse.ArgumentParser], sub: Any) -> None:
    cmd("selftest", "check this installation (crypto, SQLCipher, keychain, Qt); no vault")
    group = cmd("update", "the update check: off by default, sends nothing identifying")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True,
                                   parser_class=_Parser)  # fmt: skip
    p = cmd("check", "ask the release feed whether a newer Tacit is out", actions)
    p.add_argument("--url", help="this feed instead of the configured one")
    p = cmd("enable", "turn the update check on", actions)
    p.add_argument("--url", help="the release feed (https://…)")
    cmd("disable", "turn the update check off", actions)
    cmd("status", "whether the check is on, its feed and the last check", actions)


class ShipCommands:
    """``selftest`` and ``update`` of ``app.cli.Cli`` (which provides these attributes)."""

    args: argparse.Namespace
    out: Output

    def selftest(self) -> int:
        report = selftest.run_checks()
        self.out.emit(report.to_dict(), report.to_text())
        return 0 if report.ok else selftest.EXIT_FAILED

    def update(self) -> None:
        a = self.args
        if a.action == "check":
            result = update.check(url=a.url)
            self.out.emit(result.to_dict(), result.message())
            return
        if a.action in ("enable", "disable"):
            settings = update.set_enabled(a.action == "enable", feed_url=getattr(a, "url", None))
        else:
            settings = update.load_settings()
        state = "on" if settings.enabled else "off"
        feed = settings.feed() or "(none set)"
        self.out.emit(settings.to_dict(), f"Update check: {state}; release feed: {feed}")
