"""An in-memory sync server with the push/pull rules of docs/PROTOCOL.md, and a transport
to it that can fail at chosen moments (for the engine's unit tests)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from app.errors import OfflineError
from app.sync import protocol


@dataclass
class FakeServer:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int = 0

    def _cursor(self, seq: int) -> str:
        return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode()

    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        after = 0 if cursor is None else int(base64.urlsafe_b64decode(cursor).decode()[3:])
        if after > self.seq:
            raise protocol.InvalidCursorError()
        changed = sorted((i for i in self.items.values() if i["seq"] > after),
                         key=lambda i: i["seq"])  # fmt: skip
        page = changed[:limit]
        last = page[-1]["seq"] if page else after
        return {
            "items": [dict(i) for i in page],  # type: ignore[misc]
            "cursor": self._cursor(last),
            "more": len(changed) > limit,
        }

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        results: list[Any] = []
        for it in items:
            blob = protocol.b64decode(it["blob"])
            etag = protocol.item_etag(kind=it["kind"], key_id=it["key_id"],
                                      deleted=it["deleted"], blob=blob)  # fmt: skip
            stored = self.items.get(it["id"])
            if stored is not None and stored["etag"] == etag:
                results.append({"id": it["id"], "status": "ok", "etag": etag, "seq": stored["seq"]})
                continue
            if (stored is None and it["expected_etag"] is None) or (
                stored is not None and stored["etag"] == it["expected_etag"]
            ):
                self.seq += 1
                self.items[it["id"]] = {
                    "id": it["id"],
                    "kind": it["kind"],
                    "etag": etag,
                    "deleted": it["deleted"],
                    "key_id": it["key_id"],
                    "blob": it["blob"],
                    "seq": self.seq,
                    "size": len(blob),
                    "modified_at": protocol.format_time(self.seq),
                }
                results.append({"id": it["id"], "status": "ok", "etag": etag, "seq": self.seq})
            else:
                results.append(
                    {
                        "id": it["id"],
                        "status": "conflict",
                        "current": dict(stored) if stored else None,
                    }
                )
        return {"results": results}

    def tamper(self, item_id: str, **changes: Any) -> None:
        """Change a stored item the way a malicious server would (new seq)."""
        self.seq += 1
        self.items[item_id] = {**self.items[item_id], **changes, "seq": self.seq}


class Boom(Exception):
    """An injected crash."""


@dataclass
class FakeTransport:
    server: FakeServer
    offline: bool = False
    # push calls: fail *before* the server sees the n-th push, or lose its *response*
    fail_push_before: int | None = None
    lose_push_response: int | None = None
    pushes: int = 0
    pulls: int = 0

    def pull(self, cursor: str | None, limit: int) -> protocol.PullResponse:
        if self.offline:
            raise OfflineError()
        self.pulls += 1
        return self.server.pull(cursor, limit)

    def push(self, items: list[protocol.PushItem]) -> protocol.PushResponse:
        if self.offline:
            raise OfflineError()
        self.pushes += 1
        if self.fail_push_before == self.pushes:
            raise Boom("before push")
        response = self.server.push(items)
        if self.lose_push_response == self.pushes:
            raise Boom("response lost")
        return response
