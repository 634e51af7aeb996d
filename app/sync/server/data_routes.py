"""Routes for items and attachments (``/v1``), all authenticated and account-scoped.

Invariant: every handler passes the authenticated ``Principal`` down; no handler takes an
account id from the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.sync import protocol
from app.sync.server import attachments, items
from app.sync.server.deps import Auth, Ctx
from app.sync.server.schemas import (
    AttachmentOut,
    ChunkPutOut,
    ItemOut,
    OkOut,
    PullOut,
    PushIn,
    PushOut,
    PushResultOkOut,
    PutItemIn,
)

router = APIRouter(prefix=protocol.API_PREFIX)

_BINARY_SCHEMA = {"type": "string", "format": "binary"}
ChunkIndex = Annotated[int, Path(ge=0, le=protocol.MAX_CHUNK_INDEX)]


def _uuid(value: str, what: str) -> str:
    if not protocol.is_uuid(value):
        raise protocol.InvalidRequestError(f"{what}: not a lowercase UUID")
    return value


@router.get("/items", response_model=PullOut, tags=["items"])
def pull_items(
    principal: Auth,
    ctx: Ctx,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=protocol.MAX_PULL_LIMIT)] = protocol.DEFAULT_PULL_LIMIT,
) -> protocol.PullResponse:
    """Changes after ``cursor`` in change order; call again while ``more`` is true."""
    return items.pull(ctx, principal, cursor, limit)


@router.post("/items:batch", response_model=PushOut, tags=["items"])
def push_items(body: PushIn, principal: Auth, ctx: Ctx) -> protocol.PushResponse:
    """Push up to 500 items in one transaction; stale etags come back as conflicts."""
    return items.push(ctx, principal, body.items)


@router.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
def get_item(item_id: str, principal: Auth, ctx: Ctx) -> protocol.Item:
    """One item in its current state."""
    return items.get_item(ctx, principal, _uuid(item_id, "item id"))


@router.put("/items/{item_id}", response_model=PushResultOkOut, tags=["items"])
def put_item(item_id: str, body: PutItemIn, principal: Auth, ctx: Ctx) -> protocol.PushResultOk:
    """Write one item; 409 ``conflict`` (with ``current``) on a stale etag."""
    return items.put_item(ctx, principal, _uuid(item_id, "item id"), body)


@router.get("/attachments/{attachment_id}", response_model=AttachmentOut, tags=["attachments"])
def describe_attachment(attachment_id: str, principal: Auth, ctx: Ctx) -> protocol.AttachmentInfo:
    """The attachment's chunks (number, size, etag) and total size."""
    return attachments.describe(ctx, principal, _uuid(attachment_id, "attachment id"))


@router.delete("/attachments/{attachment_id}", response_model=OkOut, tags=["attachments"])
def delete_attachment(attachment_id: str, principal: Auth, ctx: Ctx) -> protocol.OkResponse:
    """Delete every chunk of the attachment and release its quota."""
    attachments.delete(ctx, principal, _uuid(attachment_id, "attachment id"))
    return {"ok": True}


@router.put(
    "/attachments/{attachment_id}/chunks/{n}",
    response_model=ChunkPutOut,
    tags=["attachments"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_chunk(
    attachment_id: str, n: ChunkIndex, request: Request, principal: Auth, ctx: Ctx
) -> protocol.ChunkPutResponse:
    """Store one chunk: the raw request body (at most 1 MiB), not JSON."""
    _uuid(attachment_id, "attachment id")
    limit = ctx.settings.max_chunk_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise protocol.TooLargeError(f"a chunk is at most {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise protocol.TooLargeError(f"a chunk is at most {limit} bytes")
        parts.append(part)
    data = b"".join(parts)
    # The database call blocks; keep it off the event loop.
    return await run_in_threadpool(attachments.put_chunk, ctx, principal, attachment_id, n, data)


@router.get(
    "/attachments/{attachment_id}/chunks/{n}",
    tags=["attachments"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_chunk(attachment_id: str, n: ChunkIndex, principal: Auth, ctx: Ctx) -> Response:
    """One chunk's raw bytes; the ETag header is its hex SHA-256."""
    data, etag = attachments.get_chunk(ctx, principal, _uuid(attachment_id, "attachment id"), n)
    return Response(
        content=data, media_type="application/octet-stream", headers={"ETag": f'"{etag}"'}
    )
