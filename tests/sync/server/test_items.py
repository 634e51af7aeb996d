"""Items: push with expected etags (batch and single), conflicts, idempotent retries,
tombstones, pull paging by cursor, limits and quota, and race-free sequence numbers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

from app.sync import protocol
from tests.sync.server.helpers import Account, Api, error_code


def item(
    blob: bytes = b"ciphertext",
    *,
    id: str | None = None,
    expected: str | None = None,
    deleted: bool = False,
    kind: str = "note",
    key_id: str = "k1",
) -> dict[str, Any]:
    return {
        "id": id or str(uuid.uuid4()),
        "kind": kind,
        "expected_etag": expected,
        "deleted": deleted,
        "key_id": key_id,
        "blob": protocol.b64encode(blob),
    }


def push(api: Api, acct: Account, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = api.post(
        protocol.PATH_ITEMS_BATCH, token=acct.tokens["access_token"], json={"items": list(items)}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def pull_all(
    api: Api, acct: Account, cursor: str | None = None, limit: int = 500
) -> tuple[list[dict[str, Any]], str, int]:
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = api.get(protocol.PATH_ITEMS, token=acct.tokens["access_token"], params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        seen += doc["items"]
        cursor = doc["cursor"]
        pages += 1
        if not doc["more"]:
            return seen, cursor, pages


def test_push_new_items_and_pull_them(api: Api) -> None:
    acct = api.account("alice")
    a, b = item(b"one"), item(b"two", kind="template", key_id="items-2")
    results = push(api, acct, a, b)
    assert [r["status"] for r in results] == ["ok", "ok"]
    assert [r["seq"] for r in results] == [1, 2]
    assert results[0]["etag"] == protocol.item_etag(
        kind="note", key_id="k1", deleted=False, blob=b"one"
    )
    items, _, _ = pull_all(api, acct)
    assert [(i["id"], protocol.b64decode(i["blob"]), i["size"]) for i in items] == [
        (a["id"], b"one", 3),
        (b["id"], b"two", 3),
    ]
    assert items[1]["kind"] == "template" and items[1]["key_id"] == "items-2"
    assert items[0]["modified_at"] == protocol.format_time(int(api.clock() * 1000))


def test_pull_pages_by_cursor_and_resumes(api: Api) -> None:
    acct = api.account("bob")
    batch = [item(bytes([n])) for n in range(7)]
    for one in batch:
        push(api, acct, one)
    ids = [one["id"] for one in batch]
    items, cursor, pages = pull_all(api, acct, limit=3)
    assert pages == 3
    assert [i["id"] for i in items] == ids
    assert [i["seq"] for i in items] == list(range(1, 8))
    # Nothing new: an empty page, same position.
    again, cursor2, _ = pull_all(api, acct, cursor)
    assert again == [] and cursor2 == cursor
    # An edit moves the item to the end of the change order; the cursor sees only it.
    current = items[2]
    push(api, acct, item(b"edited", id=current["id"], expected=current["etag"]))
    changed, _, _ = pull_all(api, acct, cursor)
    assert [(c["id"], c["seq"]) for c in changed] == [(current["id"], 8)]


def test_pull_limit_bounds(api: Api) -> None:
    acct = api.account("cat")
    token = acct.tokens["access_token"]
    for bad in (0, 1001, -1, "x"):
        r = api.get(protocol.PATH_ITEMS, token=token, params={"limit": bad})
        assert (r.status_code, error_code(r)) == (400, "invalid_request")


def test_bad_and_future_cursors(api: Api) -> None:
    acct = api.account("dan")
    token = acct.tokens["access_token"]
    r = api.get(protocol.PATH_ITEMS, token=token, params={"cursor": "garbage!"})
    assert (r.status_code, error_code(r)) == (400, "invalid_cursor")
    from app.sync.server.items import encode_cursor

    r = api.get(protocol.PATH_ITEMS, token=token, params={"cursor": encode_cursor(5)})
    assert (r.status_code, error_code(r)) == (400, "invalid_cursor")


def test_stale_etag_is_a_conflict_in_a_batch(api: Api) -> None:
    acct = api.account("eli")
    a = item(b"v1")
    (ok,) = push(api, acct, a)
    v2 = item(b"v2", id=a["id"], expected=ok["etag"])
    (ok2,) = push(api, acct, v2)
    assert ok2["status"] == "ok" and ok2["seq"] == 2
    # Another device still believes v1 is current.
    stale = item(b"v2-other", id=a["id"], expected=ok["etag"])
    fresh = item(b"new")
    results = push(api, acct, stale, fresh)
    assert results[0]["status"] == "conflict"
    assert results[0]["current"]["etag"] == ok2["etag"]
    assert protocol.b64decode(results[0]["current"]["blob"]) == b"v2"
    assert results[1]["status"] == "ok" and results[1]["seq"] == 3
    # A new item whose id already exists is a conflict too (expected_etag null).
    (dup,) = push(api, acct, item(b"x", id=a["id"]))
    assert dup["status"] == "conflict"
    # Expecting an item the server does not have: conflict with current null.
    (missing,) = push(api, acct, item(b"x", expected="0" * 64))
    assert missing == {"id": missing["id"], "status": "conflict", "current": None}


def test_put_single_item_and_409(api: Api) -> None:
    acct = api.account("fay")
    token = acct.tokens["access_token"]
    item_id = str(uuid.uuid4())
    body = {k: v for k, v in item(b"v1").items() if k != "id"}
    r = api.put(protocol.item_path(item_id), token=token, json=body)
    assert r.status_code == 200, r.text
    etag = r.json()["etag"]
    assert r.json() == {"id": item_id, "status": "ok", "etag": etag, "seq": 1}
    # Retry of the same write (the response was lost): ok, same etag, no new seq.
    r = api.put(protocol.item_path(item_id), token=token, json=body)
    assert r.json() == {"id": item_id, "status": "ok", "etag": etag, "seq": 1}
    stale = {**body, "blob": protocol.b64encode(b"other"), "expected_etag": None}
    r = api.put(protocol.item_path(item_id), token=token, json=stale)
    assert (r.status_code, error_code(r)) == (409, "conflict")
    assert r.json()["error"]["current"]["etag"] == etag
    got = api.get(protocol.item_path(item_id), token=token).json()
    assert protocol.b64decode(got["blob"]) == b"v1"
    r = api.get(protocol.item_path(str(uuid.uuid4())), token=token)
    assert (r.status_code, error_code(r)) == (404, "not_found")
    r = api.get(protocol.item_path("NOT-A-UUID"), token=token)
    assert (r.status_code, error_code(r)) == (400, "invalid_request")


def test_retried_batch_is_idempotent(api: Api) -> None:
    acct = api.account("gwen")
    a, b = item(b"a"), item(b"b")
    first = push(api, acct, a, b)
    # The client crashed before recording the results and pushes the same batch again.
    second = push(api, acct, a, b)
    assert second == first
    items, _, _ = pull_all(api, acct)
    assert len(items) == 2
    # A retry of an update (expected_etag now stale, content already stored): ok.
    upd = item(b"a2", id=a["id"], expected=first[0]["etag"])
    (u1,) = push(api, acct, upd)
    (u2,) = push(api, acct, upd)
    assert u1 == u2 and u1["status"] == "ok"
    items, _, _ = pull_all(api, acct)
    assert len(items) == 2


def test_tombstones_are_kept(api: Api) -> None:
    acct = api.account("hal")
    a = item(b"doomed")
    (ok,) = push(api, acct, a)
    (gone,) = push(api, acct, item(b"", id=a["id"], expected=ok["etag"], deleted=True))
    assert gone["status"] == "ok"
    items, _, _ = pull_all(api, acct)
    assert items == [
        {
            **items[0],
            "id": a["id"],
            "deleted": True,
            "blob": "",
            "size": 0,
            "etag": protocol.item_etag(kind="note", key_id="k1", deleted=True, blob=b""),
        }
    ]


def test_batch_validation(api: Api) -> None:
    acct = api.account("ian")
    token = acct.tokens["access_token"]
    a = item()

    def post(body: object) -> tuple[int, str]:
        r = api.post(protocol.PATH_ITEMS_BATCH, token=token, json=body)
        return r.status_code, error_code(r)

    assert post({"items": [a, a]}) == (400, "invalid_request")  # same id twice
    assert post({"items": [item() for _ in range(501)]}) == (400, "invalid_request")
    assert post({"items": [{**a, "kind": "Bad Kind"}]}) == (400, "invalid_request")
    assert post({"items": [{**a, "blob": "not base64!"}]}) == (400, "invalid_request")
    assert post({"items": [{**a, "deleted": 0}]}) == (400, "invalid_request")
    assert post({"items": [{**a, "expected_etag": "abc"}]}) == (400, "invalid_request")
    missing = {k: v for k, v in a.items() if k != "expected_etag"}
    assert post({"items": [missing]}) == (400, "invalid_request")
    assert post({"items": [{**a, "expected_etg": None}]}) == (400, "invalid_request")
    assert push(api, acct) == []  # an empty batch is fine


def test_item_size_limit_and_quota(make_client: Callable[..., Api]) -> None:
    api = make_client(max_item_bytes=1000, quota_bytes=2500)
    acct = api.account("joe")
    token = acct.tokens["access_token"]
    r = api.post(protocol.PATH_ITEMS_BATCH, token=token, json={"items": [item(b"x" * 1001)]})
    assert (r.status_code, error_code(r)) == (413, "too_large")
    (a,) = push(api, acct, item(b"x" * 1000, id=str(uuid.uuid4())))
    push(api, acct, item(b"x" * 1000))
    r = api.post(protocol.PATH_ITEMS_BATCH, token=token, json={"items": [item(b"x" * 600)]})
    assert (r.status_code, error_code(r)) == (413, "quota_exceeded")
    # The refused batch wrote nothing; shrinking an item frees room.
    items, _, _ = pull_all(api, acct)
    assert len(items) == 2
    shrink = item(b"y", id=a["id"], expected=a["etag"])
    assert push(api, acct, shrink)[0]["status"] == "ok"
    assert push(api, acct, item(b"z" * 600))[0]["status"] == "ok"


def test_concurrent_pushes_get_unique_contiguous_seqs(api: Api) -> None:
    acct = api.account("kai")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                push(api, acct, item(), item())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    items, _, _ = pull_all(api, acct)
    assert sorted(i["seq"] for i in items) == list(range(1, 61))
