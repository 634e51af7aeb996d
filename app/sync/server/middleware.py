"""Two pure-ASGI guards around the API: the request-size limit and the last-resort
error handler.

- ``BodyLimitMiddleware`` refuses a declared ``Content-Length`` above the limit before
  reading a byte, and counts streamed (chunked) bodies as they arrive, answering 413
  ``too_large`` the moment the count passes the limit; whatever the app would have said
  about the truncated body is discarded.
- ``CatchAllMiddleware`` turns any unexpected exception into 500 ``internal_error`` with
  a reference id, and logs only the exception type, the reference, the route and the
  stack frames: never the exception's message (a driver's message can quote row values),
  never headers or bodies (tokens, ciphertext). It does not re-raise, so the ASGI server
  does not print the message either.

Invariant: every response either guard produces is the protocol's error envelope.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.sync import protocol

log = logging.getLogger("tacit.server")


def error_body(
    code: str, message: str, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **(extra or {})}}


async def send_error(
    send: Send, err: protocol.ApiError, headers: Mapping[str, str] | None = None
) -> None:
    payload = json.dumps(error_body(err.code, err.message)).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": err.http_status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        too_large = protocol.TooLargeError(f"the request body exceeds {limit} bytes")
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, protocol.InvalidRequestError("bad Content-Length"))
                return
            if int(declared) > limit:
                await send_error(send, too_large, {"Connection": "close"})
                return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's reaction to a cut-off body; ours replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await send_error(send, too_large, {"Connection": "close"})


class CatchAllMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            reference = secrets.token_hex(6)
            route = scope.get("route")
            where = getattr(route, "path", None) or "unrouted"
            log.error(
                "internal error %s in %s %s: %s\n%s",
                reference,
                scope.get("method", "?"),
                where,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            if not started:
                await send_error(
                    send, protocol.ServerInternalError(f"internal server error (ref {reference})")
                )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None
