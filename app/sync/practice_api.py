"""Typed calls to the practice routes (docs/PRACTICE.md, "Routes") over an
``HttpTransport``. No logic: shapes in, shapes out; a malformed answer raises ApiError.

Invariants: the open routes (an invite's envelope, joining) never send a bearer token;
every other call needs the transport's session.
"""

from __future__ import annotations

from typing import Any, cast

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.client import HttpTransport


def _dict(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise protocol.ApiError(f"the sync server sent a malformed {what}")
    return doc


class PracticeApi:
    def __init__(self, transport: HttpTransport) -> None:
        self.t = transport

    # -- open --------------------------------------------------------------------------
    def invite(self, lookup: str) -> pp.InviteView:
        doc = self.t.call("GET", pp.invite_path(lookup), auth=False)
        return cast(pp.InviteView, _dict(doc, "invite"))

    def join(self, body: pp.JoinRequest) -> dict[str, Any]:
        return _dict(self.t.call("POST", pp.PATH_JOIN, body=body, auth=False), "join answer")

    # -- members -----------------------------------------------------------------------
    def create(self, body: pp.PracticeCreate) -> dict[str, Any]:
        return _dict(self.t.call("POST", pp.PATH_PRACTICE, body=body), "practice")

    def view(self) -> pp.PracticeView:
        doc = _dict(self.t.call("GET", pp.PATH_PRACTICE), "practice")
        for key in ("practice_id", "members", "collections", "you"):
            if key not in doc:
                raise protocol.ApiError("the sync server sent a malformed practice")
        return cast(pp.PracticeView, doc)

    def put_policy(self, policy: pp.Signed) -> dict[str, Any]:
        return _dict(self.t.call("PUT", pp.PATH_POLICY, body={"policy": policy}), "policy")

    def create_invite(self, body: pp.InviteCreate) -> dict[str, Any]:
        return _dict(self.t.call("POST", pp.PATH_INVITES, body=body), "invite")

    def invites(self) -> list[dict[str, Any]]:
        doc = _dict(self.t.call("GET", pp.PATH_INVITES), "invite list")
        return cast(list[dict[str, Any]], doc.get("invites", []))

    def certify(self, account_id: str, certificate: pp.Signed) -> dict[str, Any]:
        path = pp.member_path(account_id, "certificate")
        return _dict(self.t.call("POST", path, body={"certificate": certificate}), "member")

    def member_devices(self, account_id: str) -> list[dict[str, Any]]:
        doc = self.t.call("GET", pp.member_path(account_id, "devices"))
        if not isinstance(doc, list):
            raise protocol.ApiError("the sync server sent a malformed device list")
        return cast(list[dict[str, Any]], doc)

    def remove(self, account_id: str, orders: list[protocol.SignedOrder]) -> pp.Removal:
        doc = self.t.call("POST", pp.member_path(account_id, "remove"), body={"orders": orders})
        return cast(pp.Removal, _dict(doc, "removal"))

    # -- collections ---------------------------------------------------------------------
    def create_collection(self, body: pp.CollectionCreate) -> dict[str, Any]:
        return _dict(self.t.call("POST", pp.PATH_COLLECTIONS, body=body), "collection")

    def grant(self, collection_id: str, grants: list[pp.Grant]) -> dict[str, Any]:
        path = pp.collection_path(collection_id, "grants")
        return _dict(self.t.call("POST", path, body={"grants": grants}), "collection")

    def rotate(
        self, collection_id: str, key_version: int, grants: list[pp.Grant]
    ) -> dict[str, Any]:
        path = pp.collection_path(collection_id, "rotate")
        body = {"key_version": key_version, "grants": grants}
        return _dict(self.t.call("POST", path, body=body), "collection")

    def items(self, collection_id: str, cursor: str | None) -> pp.ItemsPage:
        params: dict[str, Any] = {"limit": pp.MAX_ITEMS_PER_PULL}
        if cursor is not None:
            params["cursor"] = cursor
        path = pp.collection_path(collection_id, "items")
        return cast(pp.ItemsPage, _dict(self.t.call("GET", path, params=params), "item page"))

    def push(self, collection_id: str, items: list[pp.PushedItem]) -> list[dict[str, Any]]:
        path = pp.collection_path(collection_id, "items")
        doc = _dict(self.t.call("POST", path, body={"items": items}), "push answer")
        return cast(list[dict[str, Any]], doc.get("items", []))

    # -- the member's keyring -------------------------------------------------------------
    def keyring(self) -> str:
        doc = _dict(self.t.call("GET", pp.PATH_KEYRING), "keyring")
        return str(doc.get("keyring", ""))

    def put_keyring(self, sealed: str) -> None:
        self.t.call("PUT", pp.PATH_KEYRING, body={"keyring": sealed})

    # -- audit -----------------------------------------------------------------------------
    def send_audit(self, entries: list[pp.AuditEntryIn]) -> int:
        doc = _dict(self.t.call("POST", pp.PATH_AUDIT, body={"entries": entries}), "audit")
        return int(doc.get("stored", 0))

    def audit(self, cursor: str | None) -> pp.AuditPage:
        params: dict[str, Any] = {"limit": pp.MAX_ITEMS_PER_PULL}
        if cursor is not None:
            params["cursor"] = cursor
        return cast(pp.AuditPage, _dict(self.t.call("GET", pp.PATH_AUDIT, params=params), "audit"))
