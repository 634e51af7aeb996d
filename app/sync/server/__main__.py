"""``python -m app.sync.server [run|migrate] --db URL --host H --port N [--tls-cert F
--tls-key F] [--origin O] [--insecure]``."""

import sys

from app.sync.server.main import cli

sys.exit(cli())
