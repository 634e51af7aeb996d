"""``python -m bench`` runs the vault benchmark (the only one so far)."""

from __future__ import annotations

from bench.vault import main

if __name__ == "__main__":
    raise SystemExit(main())
