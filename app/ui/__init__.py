"""The PySide6 desktop app: a thin client of ``app.vault.service.VaultService``.

Importing this package has no side effect and does not import Qt: ``main`` loads the
Qt application lazily, so the CLI (and a machine without the ``gui`` extra) never pays
for it. ``app.ui.qt`` is the only module that imports PySide6.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["main"]


def main(vault_dir: Path, argv: list[str] | None = None) -> int:
    """Run the desktop app on the vault in ``vault_dir`` (first run creates one there).
    ``argv`` are extra arguments for Qt (e.g. ``-platform offscreen``). Returns the exit
    code."""
    from app.ui.application import run

    return run(Path(vault_dir), argv)
