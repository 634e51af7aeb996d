"""Tacit: offline-first, end-to-end-encrypted notes for psychotherapists.

The package is layered (see docs/ARCHITECTURE.md): ``app.vault`` and ``app.sync`` are a
headless core with no Qt import; ``app.ui`` and ``app.cli`` are thin clients of it.
"""

__version__ = "0.1.0"
