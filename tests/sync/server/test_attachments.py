"""Attachments: chunk upload and download, listing, deletion, chunk size limit, quota."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from app.sync import protocol
from tests.sync.server.helpers import Api, error_code


def test_chunks_round_trip(api: Api) -> None:
    acct = api.account("alice")
    token = acct.tokens["access_token"]
    att = str(uuid.uuid4())
    chunks = [bytes([n]) * (1000 + n) for n in range(3)]
    for n, data in enumerate(chunks):
        r = api.put(protocol.chunk_path(att, n), token=token, content=data)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "id": att,
            "n": n,
            "size": len(data),
            "etag": hashlib.sha256(data).hexdigest(),
        }
    info = api.get(protocol.attachment_path(att), token=token).json()
    assert info["id"] == att
    assert [(c["n"], c["size"]) for c in info["chunks"]] == [(0, 1000), (1, 1001), (2, 1002)]
    assert info["size"] == 3003
    r = api.get(protocol.chunk_path(att, 1), token=token)
    assert r.content == chunks[1]
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["etag"] == f'"{protocol.chunk_etag(chunks[1])}"'
    # Re-putting identical bytes is a no-op; different bytes replace the chunk.
    assert api.put(protocol.chunk_path(att, 1), token=token, content=chunks[1]).status_code == 200
    assert api.put(protocol.chunk_path(att, 1), token=token, content=b"new").json()["size"] == 3
    assert api.get(protocol.chunk_path(att, 1), token=token).content == b"new"
    assert api.delete(protocol.attachment_path(att), token=token).json() == {"ok": True}
    r = api.get(protocol.attachment_path(att), token=token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.get(protocol.chunk_path(att, 0), token=token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.delete(protocol.attachment_path(att), token=token)
    assert (r.status_code, error_code(r)) == (404, "not_found")


def test_chunk_limits(make_client: Callable[..., Api]) -> None:
    api = make_client(max_chunk_bytes=1024)
    acct = api.account("bob")
    token = acct.tokens["access_token"]
    att = str(uuid.uuid4())
    r = api.put(protocol.chunk_path(att, 0), token=token, content=b"x" * 1025)
    assert (r.status_code, error_code(r)) == (413, "too_large")

    def streamed() -> object:
        # No Content-Length: the server must count as the bytes arrive.
        for _ in range(3):
            yield b"y" * 500

    r = api.put(protocol.chunk_path(att, 0), token=token, content=streamed())
    assert (r.status_code, error_code(r)) == (413, "too_large")
    for bad in (-1, protocol.MAX_CHUNK_INDEX + 1):
        r = api.put(protocol.chunk_path(att, bad), token=token, content=b"z")
        assert (r.status_code, error_code(r)) == (400, "invalid_request")
    r = api.put(protocol.chunk_path("not-a-uuid", 0), token=token, content=b"z")
    assert (r.status_code, error_code(r)) == (400, "invalid_request")
    assert (
        api.put(
            protocol.chunk_path(att, protocol.MAX_CHUNK_INDEX), token=token, content=b""
        ).status_code
        == 200
    )


def test_quota_covers_attachments_and_items(make_client: Callable[..., Api]) -> None:
    api = make_client(quota_bytes=3000)
    acct = api.account("cyd")
    token = acct.tokens["access_token"]
    att = str(uuid.uuid4())
    assert api.put(protocol.chunk_path(att, 0), token=token, content=b"a" * 2000).status_code == 200
    r = api.put(protocol.chunk_path(att, 1), token=token, content=b"b" * 1001)
    assert (r.status_code, error_code(r)) == (413, "quota_exceeded")
    item = {
        "id": str(uuid.uuid4()),
        "kind": "note",
        "expected_etag": None,
        "deleted": False,
        "key_id": "k",
        "blob": protocol.b64encode(b"c" * 1001),
    }
    r = api.post(protocol.PATH_ITEMS_BATCH, token=token, json={"items": [item]})
    assert (r.status_code, error_code(r)) == (413, "quota_exceeded")
    # Replacing a chunk with a smaller one, or deleting, frees room.
    assert api.put(protocol.chunk_path(att, 0), token=token, content=b"a" * 1000).status_code == 200
    assert (
        api.post(protocol.PATH_ITEMS_BATCH, token=token, json={"items": [item]}).status_code == 200
    )
    api.delete(protocol.attachment_path(att), token=token)
    assert api.put(protocol.chunk_path(att, 0), token=token, content=b"d" * 1999).status_code == 200
