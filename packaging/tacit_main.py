"""The frozen bundle's entry point: the ``tacit`` command (packaging/tacit.spec).

Owns nothing but the hand-off to ``app.cli.main``, so the bundle and the installed
console script behave the same (exit codes, ``--json``, ``tacit gui``).
"""

import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
