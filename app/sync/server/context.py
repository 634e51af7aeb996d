"""What every request handler needs: the settings, the database and the server secret.

One ``ServerContext`` per app, built by ``create_app``. It holds no per-request or
per-user state: everything that changes lives in the database, so any number of app
processes can serve one PostgreSQL. The server secret is read once at start; it never
changes after the first migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.sync.server import crypto
from app.sync.server.db import Database
from app.sync.server.settings import Settings


@dataclass(frozen=True, slots=True)
class ServerContext:
    settings: Settings
    db: Database
    secret: bytes = field(repr=False)

    def now_ms(self) -> int:
        return self.settings.now_ms()

    def pseudonym(self, label: str, value: str) -> bytes:
        """HMAC(server secret, label, value): how client IPs and usernames appear in the
        rate-limit and lockout tables."""
        return crypto.keyed_hash(self.secret, label, value)
