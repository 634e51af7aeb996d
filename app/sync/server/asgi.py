"""The ASGI application: ``create_app(settings)`` wires routes, error mapping and guards.

Error mapping (every response that is not 2xx is ``{"error": {"code", "message"}}``):
- ``ApiError`` → its own status and code (``Retry-After`` for rate limits and lockouts,
  ``WWW-Authenticate: Bearer`` for 401s, ``current`` for item conflicts);
- request validation (malformed JSON, wrong types, unknown fields, bad base64, bad ids)
  → 400 ``invalid_request``, naming the field but never echoing the value;
- unknown path → 404 ``not_found``; wrong method → 405 ``method_not_allowed``;
- ``StorageUnavailable`` (busy, locked, unreachable database) → 503 ``unavailable``;
- anything else → 500 ``internal_error`` (``CatchAllMiddleware``), no details leaked.

Invariants: the app refuses to start on a database whose schema is not current (run
``migrate`` first); it keeps no state beyond the immutable ``ServerContext``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.sync import protocol
from app.sync.server import (
    auth_routes,
    data_routes,
    device_routes,
    epoch_routes,
    practice_routes,
    web_routes,
)
from app.sync.server.context import ServerContext
from app.sync.server.db import Database, StorageUnavailable, UniqueViolation, open_database
from app.sync.server.middleware import BodyLimitMiddleware, CatchAllMiddleware, error_body
from app.sync.server.migrations import LATEST_VERSION, load_server_secret, schema_version
from app.sync.server.schemas import ErrorOut
from app.sync.server.settings import Settings

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "invalid_request and other client errors"),
        (401, "unauthorized, token_expired and the login failures"),
        # Any route may answer these too (issue 9: the API fuzzer found them undeclared):
        (403, "forbidden, device_lost, device_removed, reauth_required and the like"),
        (404, "not_found and the other unknown-resource codes"),
        (409, "conflict, account_exists and the other state clashes"),
        (413, "too_large / quota_exceeded"),
        (423, "account_locked (with Retry-After)"),
        (429, "rate_limited (with Retry-After)"),
        (503, "unavailable (retry shortly)"),
    )
}
_MAX_VALIDATION_MESSAGE = 300


def _api_error_response(err: protocol.ApiError) -> JSONResponse:
    extra: dict[str, object] = {}
    headers: dict[str, str] = {}
    retry_after = err.details.get("retry_after")
    if isinstance(retry_after, int):
        extra["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    if "current" in err.details:
        extra["current"] = err.details["current"]
    if err.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error_body(err.code, err.message, extra), status_code=err.http_status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors()[:3]:
        if error.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
            continue
        location = ".".join(str(p) for p in error.get("loc", ()))
        # pydantic's messages describe the rule, not the value ("Input should be a valid
        # integer"); the input itself ("input", "ctx") is never copied.
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return ("invalid request: " + "; ".join(parts))[:_MAX_VALIDATION_MESSAGE]


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, protocol.ApiError):
        raise exc
    return _api_error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        raise exc
    return _api_error_response(protocol.InvalidRequestError(_validation_message(exc)))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    err: protocol.ApiError
    if exc.status_code == 404:
        err = protocol.ResourceNotFoundError("no such endpoint")
    elif exc.status_code == 405:
        err = protocol.MethodNotAllowedError()
    elif exc.status_code == 400:
        err = protocol.InvalidRequestError("the body could not be read")
    elif exc.status_code == 413:
        err = protocol.TooLargeError()
    elif exc.status_code == 401:
        err = protocol.UnauthorizedError()
    else:
        err = protocol.ServerInternalError()
    response = _api_error_response(err)
    if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


async def _on_storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A unique clash that escaped the owning module is a lost race: retrying resolves it.
    return _api_error_response(protocol.UnavailableError(retry_after=1))


def create_app(settings: Settings, *, db: Database | None = None) -> FastAPI:
    """Build the API. Opens ``settings.db_url`` unless a database is given (it is then
    closed with the app). Raises RuntimeError when the schema is not current."""
    database = db or open_database(settings.db_url, pool_size=_pool_size(settings.db_url, settings))
    try:
        if schema_version(database) != LATEST_VERSION:
            raise RuntimeError(
                "the sync database schema is not current; run `tacit server migrate` first"
            )
        secret = load_server_secret(database)
    except BaseException:
        database.close()
        raise
    ctx = ServerContext(settings=settings, db=database, secret=secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        database.close()

    app = FastAPI(
        title="Tacit sync",
        version=protocol.APP_VERSION,
        summary="End-to-end-encrypted sync: the server stores ciphertext only.",
        openapi_url=protocol.PATH_OPENAPI,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
    )
    app.state.ctx = ctx
    app.add_exception_handler(protocol.ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(StorageUnavailable, _on_storage_unavailable)
    app.add_exception_handler(UniqueViolation, _on_storage_unavailable)
    # Added last = outermost: the catch-all sees everything, the size limit runs first.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.include_router(auth_routes.router)
    app.include_router(data_routes.router)
    app.include_router(device_routes.router)
    app.include_router(epoch_routes.router)
    app.include_router(practice_routes.router)
    web_routes.install(app, settings.kdf_floor)  # the /account page (no API)
    _install_openapi(app)
    return app


def _pool_size(url: str, settings: Settings) -> int:
    if url.startswith(("postgresql://", "postgres://")):
        return settings.pg_pool_size
    return settings.sqlite_pool_size


def _install_openapi(app: FastAPI) -> None:
    """Our validation errors are 400 ``invalid_request``, not FastAPI's 422: drop the
    422 entries and their schemas from the document so it tells the truth."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
