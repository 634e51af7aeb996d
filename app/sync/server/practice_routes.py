"""Routes for practice mode (``/v1/practice``, docs/PRACTICE.md "Routes").

Handlers are thin: validate (``practice_schemas``), call the owning module (``practice``,
``practice_invites``, ``practice_collections``, ``practice_members``, ``practice_audit``),
return a protocol TypedDict. Every route takes a normal session (``Auth``) except the two
open invite routes, which are counted against the client IP (``IpLimited``) like sign-up.
Responses with owner-only fields (``holders``, ``proof``, ``lookup``) leave them out for
everyone else (``response_model_exclude_unset``) rather than sending nulls.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.server import (
    practice,
    practice_audit,
    practice_collections,
    practice_invites,
    practice_keyring,
    practice_members,
)
from app.sync.server.deps import Auth, Ctx, IpLimited
from app.sync.server.practice_schemas import (
    AuditPageOut,
    AuditPushIn,
    AuditStoredOut,
    CertificateIn,
    CollectionCreateIn,
    CollectionOut,
    GrantsIn,
    InviteCreatedOut,
    InviteCreateIn,
    InvitesOut,
    InviteViewOut,
    ItemsPageOut,
    ItemsPushedOut,
    ItemsPushIn,
    JoinIn,
    JoinOut,
    KeyringIn,
    KeyringOut,
    MemberDeviceOut,
    MemberOut,
    PolicyIn,
    PolicyOut,
    PracticeCreatedOut,
    PracticeCreateIn,
    PracticeViewOut,
    RemovalOut,
    RemoveIn,
    RotateIn,
)

router = APIRouter(prefix=protocol.API_PREFIX, tags=["practice"])

_ROOT = pp.PATH_PRACTICE.removeprefix(protocol.API_PREFIX)
_MEMBER = _ROOT + "/members/{account_id}"
_COLLECTION = pp.PATH_COLLECTIONS.removeprefix(protocol.API_PREFIX) + "/{collection_id}"
Cursor = Annotated[str | None, Query(max_length=40)]
Limit = Annotated[int | None, Query()]


def _id(value: str, what: str) -> str:
    if protocol.UUID_RE.fullmatch(value) is None:
        raise protocol.ResourceNotFoundError(f"no such {what}")
    return value


@router.post(_ROOT, status_code=201, response_model=PracticeCreatedOut)
def create_practice(body: PracticeCreateIn, principal: Auth, ctx: Ctx) -> dict[str, str]:
    """Create a practice owned by the caller (409 ``practice_exists`` if already in one)."""
    return practice.create(ctx, principal, body)


@router.get(_ROOT, response_model=PracticeViewOut, response_model_exclude_unset=True)
def get_practice(principal: Auth, ctx: Ctx) -> pp.PracticeView:
    """The caller's practice: members and the collections the caller holds grants on."""
    return practice.view(ctx, principal)


@router.put(pp.PATH_POLICY.removeprefix(protocol.API_PREFIX), response_model=PolicyOut)
def put_policy(body: PolicyIn, principal: Auth, ctx: Ctx) -> dict[str, pp.Signed]:
    """Replace the owner-signed policy (409 ``conflict`` if older than the stored one)."""
    return practice.put_policy(ctx, principal, body)


@router.post(
    pp.PATH_INVITES.removeprefix(protocol.API_PREFIX),
    status_code=201,
    response_model=InviteCreatedOut,
)
def create_invite(body: InviteCreateIn, principal: Auth, ctx: Ctx) -> dict[str, str]:
    """Store an invite's lookup and sealed envelope (owner)."""
    return practice_invites.create_invite(ctx, principal, body)


@router.get(pp.PATH_INVITES.removeprefix(protocol.API_PREFIX), response_model=InvitesOut)
def list_invites(principal: Auth, ctx: Ctx) -> dict[str, list[dict[str, Any]]]:
    """The practice's invites (owner)."""
    return practice_invites.list_invites(ctx, principal)


@router.get(
    pp.PATH_INVITES.removeprefix(protocol.API_PREFIX) + "/{lookup}",
    response_model=InviteViewOut,
    dependencies=[IpLimited],
)
def get_invite(lookup: str, ctx: Ctx) -> pp.InviteView:
    """Open: an unused invite's envelope (404 ``invite_invalid`` otherwise)."""
    return practice_invites.get_invite(ctx, lookup)


@router.post(
    pp.PATH_JOIN.removeprefix(protocol.API_PREFIX),
    status_code=201,
    response_model=JoinOut,
    dependencies=[IpLimited],
)
def join(body: JoinIn, ctx: Ctx) -> dict[str, Any]:
    """Open: sign up and join with an invite, in one transaction."""
    return practice_invites.join(ctx, body)


@router.post(_MEMBER + "/certificate", response_model=MemberOut)
def certify(account_id: str, body: CertificateIn, principal: Auth, ctx: Ctx) -> pp.Member:
    """Store the owner-signed certificate of a member; a pending member becomes active."""
    return practice.certify(ctx, principal, _id(account_id, "member"), body)


@router.get(_MEMBER + "/devices", response_model=list[MemberDeviceOut])
def member_devices(account_id: str, principal: Auth, ctx: Ctx) -> list[dict[str, Any]]:
    """A member's devices, for the owner to sign lock orders."""
    return practice.member_devices(ctx, principal, _id(account_id, "member"))


@router.post(_MEMBER + "/remove", response_model=RemovalOut)
def remove_member(account_id: str, body: RemoveIn, principal: Auth, ctx: Ctx) -> pp.Removal:
    """Remove a member: queue the lock orders, drop their grants, end their sessions."""
    return practice_members.remove_member(ctx, principal, _id(account_id, "member"), body)


@router.post(
    pp.PATH_COLLECTIONS.removeprefix(protocol.API_PREFIX),
    status_code=201,
    response_model=CollectionOut,
    response_model_exclude_unset=True,
)
def create_collection(body: CollectionCreateIn, principal: Auth, ctx: Ctx) -> pp.Collection:
    """Create a collection at key version 1 (owner)."""
    return practice_collections.create_collection(ctx, principal, body)


@router.post(
    _COLLECTION + "/grants", response_model=CollectionOut, response_model_exclude_unset=True
)
def add_grants(collection_id: str, body: GrantsIn, principal: Auth, ctx: Ctx) -> pp.Collection:
    """Grant existing key versions to active members (owner)."""
    return practice_collections.add_grants(ctx, principal, _id(collection_id, "collection"), body)


@router.post(
    _COLLECTION + "/rotate", response_model=CollectionOut, response_model_exclude_unset=True
)
def rotate(collection_id: str, body: RotateIn, principal: Auth, ctx: Ctx) -> pp.Collection:
    """Make the next key version current, with its grants (owner)."""
    return practice_collections.rotate(ctx, principal, _id(collection_id, "collection"), body)


@router.get(_COLLECTION + "/items", response_model=ItemsPageOut)
def pull_items(
    collection_id: str, principal: Auth, ctx: Ctx, cursor: Cursor = None, limit: Limit = None
) -> pp.ItemsPage:
    """Items after ``cursor`` (the last seq seen), for holders of a grant."""
    return practice_collections.pull_items(
        ctx, principal, _id(collection_id, "collection"), cursor, limit
    )


@router.post(_COLLECTION + "/items", response_model=ItemsPushedOut)
def push_items(
    collection_id: str, body: ItemsPushIn, principal: Auth, ctx: Ctx
) -> dict[str, list[dict[str, Any]]]:
    """Upsert items sealed under the current key (holders of a current grant)."""
    return practice_collections.push_items(ctx, principal, _id(collection_id, "collection"), body)


@router.post(pp.PATH_AUDIT.removeprefix(protocol.API_PREFIX), response_model=AuditStoredOut)
def push_audit(body: AuditPushIn, principal: Auth, ctx: Ctx) -> dict[str, int]:
    """Forward sealed audit entries (active members); repeats are no-ops."""
    return practice_audit.push(ctx, principal, body)


@router.get(pp.PATH_AUDIT.removeprefix(protocol.API_PREFIX), response_model=AuditPageOut)
def pull_audit(
    principal: Auth, ctx: Ctx, cursor: Cursor = None, limit: Limit = None
) -> pp.AuditPage:
    """The practice's sealed audit entries after ``cursor`` (owner)."""
    return practice_audit.pull(ctx, principal, cursor, limit)


_KEYRING = pp.PATH_KEYRING.removeprefix(protocol.API_PREFIX)


@router.get(_KEYRING, response_model=KeyringOut)
def get_keyring(principal: Auth, ctx: Ctx) -> dict[str, str]:
    """The caller's sealed practice keyring (404 ``not_found`` until one is stored)."""
    return practice_keyring.get_keyring(ctx, principal)


@router.put(_KEYRING, response_model=KeyringOut)
def put_keyring(body: KeyringIn, principal: Auth, ctx: Ctx) -> dict[str, str]:
    """Store the caller's sealed practice keyring (pending members too)."""
    return practice_keyring.put_keyring(ctx, principal, body)
