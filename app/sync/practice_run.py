"""One practice sync run (docs/PRACTICE.md): the steps ``PracticeService.sync`` takes,
in order, each idempotent so a run cut short by a dropped connection is finished by the
next one.

Invariants: a key is stored only from a grant the owner signed to this member; an item is
stored only if it opens with its collection key and its author's certified key verifies
it and the author's role may write that kind; the cursor of a collection moves only
after its page is stored; an outbox entry leaves the outbox only when the server gave it
a sequence number; audit entries are forwarded from the last one acknowledged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.errors import UsageError
from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.practice_api import PracticeApi
from app.sync.practice_keys import (
    Identity,
    PracticeTrustError,
    open_audit,
    open_grant,
    open_item,
    seal_audit,
    seal_item,
    verified_policy,
)
from app.sync.practice_publish import publishable
from app.vault.practicestore import PracticeAuditRow, PracticeRow

if TYPE_CHECKING:
    from app.sync.practice import PracticeService, Snapshot

AUDIT_BATCH = 200


def may_author(snap: Snapshot, coll: dict[str, Any], author: str, kind: str) -> bool:
    """Whether a certified member's role lets them write this kind into this collection."""
    doc = snap.certified.get(author)
    if doc is None or kind not in pp.ITEM_KINDS.get(coll["kind"], ()):
        return False
    role, subject = doc["role"], coll.get("subject")
    if coll["kind"] == "clinical":
        if kind == "cosign":
            return role in ("supervisor", "owner") and subject in doc["supervises"]
        return author == subject
    if coll["kind"] == "schedule":
        if kind == "contact":
            return author == subject
        return author == subject or role in ("admin", "owner")
    return role in ("admin", "owner")  # billing


def learn_keys(svc: PracticeService, me: Identity, practice: dict[str, Any],
               snap: Snapshot) -> int:  # fmt: skip
    """Store every key granted to this member that the owner signed for the collection's
    kind and subject. A collection's first verified grant also fixes its label (kind and
    subject) in the vault; from then on the server's label is ignored."""
    learned = 0
    labels: dict[str, dict[str, Any]] = svc.store.get_json("labels") or {}
    for cid, coll in snap.collections.items():
        known = svc.store.keys(cid)
        for grant in coll.get("grants", []):
            if grant.get("key_version") in known and coll.get("labelled"):
                continue
            try:
                version, key = open_grant(me, practice["owner_sign_public"], grant,
                                          practice_id=practice["practice_id"], collection_id=cid,
                                          kind=str(coll["kind"]), subject=coll.get("subject"),
                                          account_id=practice["account_id"])  # fmt: skip
            except PracticeTrustError:
                continue  # not the owner's, or relabelled by the server: ignored
            if cid not in labels:
                labels[cid] = {"kind": coll["kind"], "subject": coll.get("subject")}
                svc.store.put_json("labels", labels)
            if version not in known:
                svc.store.put_key(cid, version, key)
                known[version] = key
                learned += 1
    return learned


def pull(svc: PracticeService, api: PracticeApi, practice: dict[str, Any],
         snap: Snapshot) -> tuple[int, int]:  # fmt: skip
    """Fetch every readable collection from its cursor. Returns (stored, refused)."""
    cursors: dict[str, str] = svc.store.get_json("cursors") or {}
    stored = refused = 0
    for cid, coll in snap.collections.items():
        keys = svc.store.keys(cid)
        if not keys:
            continue
        # Removed members write nothing new. The owner (the records custodian) still
        # reads what they signed before the removal it recorded; other members read
        # nothing more from them.
        removed_at: dict[str, str] = svc.store.get_json("removed_at") or {}
        custodian = practice["role"] == "owner"
        writers = {a: d["sign_public"] for a, d in snap.certified.items()
                   if (d.get("status") != "removed" and a not in removed_at)
                   or (custodian and a in removed_at)}  # fmt: skip
        have = svc.store.seqs(cid)
        while True:
            before = cursors.get(cid)
            page = api.items(cid, before)
            rows = []
            for item in page["items"]:
                if have.get(item["item_id"]) == int(item["seq"]):
                    continue  # already stored as pushed from here (acknowledged with it)
                key = keys.get(int(item["key_version"]))
                try:
                    if key is None:
                        raise PracticeTrustError("no key for this version")
                    opened = open_item(key, writers, practice_id=practice["practice_id"],
                                       collection_id=cid, item_id=item["item_id"],
                                       key_version=int(item["key_version"]),
                                       ciphertext=item["ciphertext"],
                                       author_account=item["author_account_id"])  # fmt: skip
                    if not may_author(snap, coll, opened.author, opened.kind):
                        raise PracticeTrustError("the author may not write this kind here")
                    _check_replacement(svc.store.item(cid, item["item_id"]), coll, opened)
                    if opened.author in removed_at and opened.at > removed_at[opened.author]:
                        raise PracticeTrustError("written after its author was removed")
                except PracticeTrustError:
                    refused += 1
                    continue
                rows.append(PracticeRow(
                    collection_id=cid, item_id=item["item_id"], kind=opened.kind,
                    body=opened.body, author=opened.author, at=opened.at,
                    seq=int(item["seq"]), key_version=int(item["key_version"]),
                ))  # fmt: skip
            if rows:
                svc.store.upsert_items(rows)
                stored += len(rows)
            if page.get("cursor") is not None:
                cursors[cid] = str(page["cursor"])
                svc.store.put_json("cursors", cursors)
            if not page.get("more") or cursors.get(cid) == before:
                break  # done, or a server that does not move the cursor
    return stored, refused


def _check_replacement(stored: PracticeRow | None, coll: dict[str, Any], new: Any) -> None:
    """An item that replaces a stored one keeps its kind, is not older than it (no
    rollback to an earlier signed version), and in a clinical collection keeps its
    author. Raises PracticeTrustError."""
    if stored is None:
        return
    if stored.kind != new.kind:
        raise PracticeTrustError("an item changed its kind")
    if coll["kind"] == "clinical" and stored.author != new.author:
        raise PracticeTrustError("another member replaced a clinical item")
    if new.at < stored.at:
        raise PracticeTrustError("an item was rolled back to an older version")


def own_collections(practice: dict[str, Any], snap: Snapshot) -> dict[str, str]:
    """This clinician's own collections: kind -> id."""
    return {c["kind"]: cid for cid, c in snap.collections.items()
            if c.get("subject") == practice["account_id"]}  # fmt: skip


def publish(svc: PracticeService, practice: dict[str, Any], snap: Snapshot) -> int:
    """Queue this clinician's changed records for their own collections."""
    if practice["role"] not in pp.CLINICAL_ROLES:
        return 0
    from app.sync.practice import item_id_for

    mine = own_collections(practice, snap)
    published = {cid: svc.store.published_all(cid) for cid in mine.values()}
    at = svc.now()
    rows = []
    for record in publishable(svc.vault):
        cid = mine.get(record.collection)
        if cid is None:
            continue
        item_id = item_id_for(cid, record.kind, record.ref)
        if published[cid].get(item_id) == record.stamp:
            continue
        rows.append((cid, item_id, record.kind, record.body(), at, record.stamp))
    return svc.store.publish_many(rows)  # one transaction for the whole run


def push(svc: PracticeService, api: PracticeApi, me: Identity, practice: dict[str, Any],
         snap: Snapshot) -> int:  # fmt: skip
    """Seal and push the outbox under each collection's current key."""
    pushed = 0
    by_collection: dict[str, list[Any]] = {}
    for entry in svc.store.outbox():
        by_collection.setdefault(entry.collection_id, []).append(entry)
    for cid, entries in by_collection.items():
        coll = snap.collections.get(cid)
        if coll is None:
            continue  # no grant (any more): kept, never sent in the clear or elsewhere
        # The newest version this vault holds from an owner-signed grant, never an older
        # one the server might claim is current (a removed member holds the older ones).
        held = svc.store.keys(cid)
        version = max(held, default=0)
        key = held.get(version)
        if key is None or int(coll["key_version"]) > version:
            continue  # the grant for the new version comes with a later run
        for start in range(0, len(entries), pp.MAX_ITEMS_PER_PUSH):
            batch = entries[start : start + pp.MAX_ITEMS_PER_PUSH]
            items: list[pp.PushedItem] = [{
                "item_id": e.item_id, "key_version": version,
                "ciphertext": seal_item(me, key, practice_id=practice["practice_id"],
                                        collection_id=cid, item_id=e.item_id,
                                        key_version=version, kind=e.kind, body=e.body,
                                        author=practice["account_id"], at=e.at),
            } for e in batch]  # fmt: skip
            try:
                answers = api.push(cid, items)
            except protocol.StaleKeyError:
                break  # rotated meanwhile: the next run learns the new key
            seqs = {a["item_id"]: int(a["seq"]) for a in answers}
            pushed += svc.store.ack_many(cid, seqs, version, practice["account_id"])
    return pushed


def forward_audit(svc: PracticeService, api: PracticeApi, me: Identity,
                  practice: dict[str, Any]) -> int:  # fmt: skip
    """Send this vault's audit entries after the last forwarded one, sealed to the owner."""
    last = int(svc.store.get("audit_forwarded") or 0)
    sent = 0
    while True:
        entries = svc.vault.audit_entries(after_seq=last, limit=AUDIT_BATCH)
        if not entries:
            return sent
        batch: list[pp.AuditEntryIn] = []
        for e in entries:
            entry_id = f"{svc.vault.device_id}:{e.seq}"
            body = {"action": e.action, "record_type": e.record_type, "record_id": e.record_id,
                    "client_id": e.client_id, "at": e.at}  # fmt: skip
            batch.append({"entry_id": entry_id, "sealed": seal_audit(
                me, practice["owner_enc_public"], practice_id=practice["practice_id"],
                author=practice["account_id"], entry_id=entry_id, entry=body)})  # fmt: skip
        api.send_audit(batch)
        last = entries[-1].seq
        svc.store.put({"audit_forwarded": str(last)})
        sent += len(batch)
        if len(entries) < AUDIT_BATCH:
            return sent


def pull_audit(svc: PracticeService, api: PracticeApi, me: Identity, practice: dict[str, Any],
               snap: Snapshot) -> int:  # fmt: skip
    """The owner merges every member's forwarded entries into this vault."""
    if practice["role"] != "owner":
        return 0
    keys = {a: d["sign_public"] for a, d in snap.certified.items()}
    cursor = svc.store.get("audit_cursor")
    merged = 0
    while True:
        before = cursor
        page = api.audit(cursor)
        rows = []
        for entry in page["entries"]:
            try:
                doc = open_audit(me, keys, practice_id=practice["practice_id"],
                                 author=entry["author_account_id"], entry_id=entry["entry_id"],
                                 sealed=entry["sealed"])  # fmt: skip
            except PracticeTrustError:
                continue
            rows.append(PracticeAuditRow(
                entry_id=entry["entry_id"], member=entry["author_account_id"],
                action=str(doc.get("action")), record_type=str(doc.get("record_type") or ""),
                record_id=_opt_str(doc.get("record_id")),
                client_id=_opt_str(doc.get("client_id")), at=str(doc.get("at")),
            ))  # fmt: skip
        if rows:
            merged += svc.store.add_audit(rows)
        if page.get("cursor") is not None:
            cursor = str(page["cursor"])
            svc.store.put({"audit_cursor": cursor})
        if not page.get("more") or cursor == before:
            return merged


def apply_policy(svc: PracticeService, practice: dict[str, Any], snap: Snapshot) -> bool:
    """Adopt a newer owner-signed policy and enforce what the vault can: the offline
    lease. (The app clamps its idle lock to ``max_idle_minutes``.)"""
    doc = verified_policy(practice["owner_sign_public"], practice["practice_id"],
                          snap.view.get("policy"))  # fmt: skip
    current = svc.store.get_json("policy") or {}
    changed = False
    if doc is not None and str(doc["issued_at"]) >= str(current.get("issued_at", "")):
        changed = doc != current
        svc.store.put_json("policy", doc)
        current = doc
    lease = current.get("offline_lease_days")
    if isinstance(lease, int):
        held = svc.vault.read_header().lease_days
        if held is None or held > lease:
            svc.vault.set_lease(lease)
    return changed


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def require_role(practice: dict[str, Any], *roles: str) -> None:
    if practice["role"] not in roles:
        raise UsageError(f"your role ({practice['role']}) cannot do that")
