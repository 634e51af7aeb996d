"""The practice owner's key authority (docs/PRACTICE.md, "Keys" and "Offboarding"):
approving joins, making each clinician's collections, reconciling grants with roles, and
rotating keys when a member is removed. Only the owner's client runs these.

Invariants (each closes a way a malicious server could steer the owner's client):
- the owner trusts its own **roster** (kept in the vault and the keyring), never the
  server's member list: an account is certified once, a key pair is certified for one
  account only, a removed account is never certified or granted again, and a server
  certificate that contradicts the roster is ignored;
- an invite is consumed when its joiner is certified, and expired invites are dropped;
- a key is wrapped only to keys the roster holds; collection kind and subject come from
  the vault's own labels (see ``learn_keys``);
- removal first records, in the vault, the member as removed and every collection the
  verified roster says they held (plus any the server names) as pending rotation; the
  rotations finish on a later run if this one is cut short; a rotation always uses a
  fresh key the owner made for exactly the server's next version, and never overwrites
  a key the vault holds.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.sync import practice_protocol as pp
from app.sync import protocol
from app.sync.practice_api import PracticeApi
from app.sync.practice_keys import Identity, certificate, make_grant, proof_message
from app.vault import crypto
from app.vault.crypto import SymmetricKey

if TYPE_CHECKING:
    from app.sync.practice import PracticeService, Snapshot


def roster(svc: PracticeService) -> dict[str, dict[str, Any]]:
    doc = svc.store.get_json("roster")
    return dict(doc) if isinstance(doc, dict) else {}


def enroll(svc: PracticeService, account_id: str, cert_doc: dict[str, Any]) -> None:
    """Record what the owner certified for an account (role, keys, supervision)."""
    members = roster(svc)
    members[account_id] = {k: cert_doc[k] for k in ("role", "email", "enc_public", "sign_public",
                                                    "supervises")}  # fmt: skip
    svc.store.put_json("roster", members)


def removed(svc: PracticeService) -> set[str]:
    return set(svc.store.get_json("removed") or [])


def trusted_only(svc: PracticeService, snap: Snapshot) -> None:
    """Drop, in place, every certificate the owner's roster does not back."""
    members = roster(svc)
    for account in list(snap.certified):
        mine = members.get(account)
        doc = snap.certified[account]
        if mine is None or any(doc.get(k) != mine[k] for k in ("role", "enc_public",
                                                                "sign_public")):  # fmt: skip
            del snap.certified[account]


def _certified_keys(svc: PracticeService) -> set[str]:
    keys: set[str] = set()
    for doc in roster(svc).values():
        keys |= {doc["enc_public"], doc["sign_public"]}
    return keys


def approve(svc: PracticeService, api: PracticeApi, me: Identity, practice: dict[str, Any],
            snap: Snapshot) -> int:  # fmt: skip
    """Certify pending members whose join proof checks against an unexpired invite kept
    in the vault; consume the invite."""
    invites: dict[str, Any] = svc.store.get_json("invites") or {}
    now = svc.vault.clock.now()
    for lookup in [k for k, v in invites.items() if _expired(v, now)]:
        del invites[lookup]
    members, gone, seen_keys = roster(svc), removed(svc), _certified_keys(svc)
    approved = 0
    for member in snap.view.get("members", []):
        account = str(member.get("account_id"))
        lookup = str(member.get("lookup"))
        invite, proof = invites.get(lookup), member.get("proof")
        if member.get("status") != "pending" or invite is None or not isinstance(proof, str):
            continue
        if account in members or account in gone:
            continue  # certified once, or removed: a replayed join is never certified
        enc, sign = str(member.get("enc_public")), str(member.get("sign_public"))
        if enc in seen_keys or sign in seen_keys or not _keys_ok(enc, sign):
            continue
        if member.get("role") != invite["role"] or member.get("email") != invite["email"]:
            continue  # the server changed what the owner invited
        _lookup, _env, proof_key = crypto.invite_keys(
            crypto.InviteSecret(bytes.fromhex(invite["secret"])))  # fmt: skip
        message = proof_message(practice_id=practice["practice_id"], enc_public=enc,
                                sign_public=sign, role=invite["role"],
                                email=invite["email"])  # fmt: skip
        try:
            ok = crypto.mac_ok(proof_key, message, protocol.b64decode(proof))
        except ValueError:
            ok = False
        if not ok:
            continue
        cert = certificate(me.sign, practice_id=practice["practice_id"], account_id=account,
                           role=invite["role"], email=invite["email"], enc_public=enc,
                           sign_public=sign, supervises=[], issued_at=svc.now())  # fmt: skip
        api.certify(account, cert)
        enroll(svc, account, cert["doc"])
        seen_keys |= {enc, sign}
        del invites[lookup]
        approved += 1
    svc.store.put_json("invites", invites)
    return approved


def _expired(invite: dict[str, Any], now: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(invite["expires_at"]).replace("Z", "+00:00")) < now
    except (KeyError, ValueError):
        return True


def _keys_ok(enc: str, sign: str) -> bool:
    try:
        return crypto.is_x25519_public_key(protocol.b64decode(enc)) and len(
            protocol.b64decode(sign)) == 32  # fmt: skip
    except ValueError:
        return False


def new_collection(svc: PracticeService, api: PracticeApi, me: Identity,
                   practice: dict[str, Any], kind: str, subject: str) -> str:  # fmt: skip
    cid, key = str(uuid.uuid4()), SymmetricKey.generate()
    grant = make_grant(me.sign, key, practice_id=practice["practice_id"], collection_id=cid,
                       kind=kind, subject=subject, key_version=1,
                       account_id=practice["account_id"], enc_public=me.enc_public)  # fmt: skip
    svc.store.put_key(cid, 1, key)
    labels = svc.store.get_json("labels") or {}
    labels[cid] = {"kind": kind, "subject": subject}
    svc.store.put_json("labels", labels)
    api.create_collection({"collection_id": cid, "kind": kind, "subject": subject,
                           "grants": [grant]})  # fmt: skip
    return cid


def ensure_collections(svc: PracticeService, api: PracticeApi, me: Identity,
                       practice: dict[str, Any]) -> int:  # fmt: skip
    """Every clinician-like member on the roster has a clinical and a schedule collection
    (a run cut short after a certificate makes them on the next run)."""
    labels: dict[str, dict[str, Any]] = svc.store.get_json("labels") or {}
    have = {(v["kind"], v.get("subject")) for v in labels.values()}
    gone = removed(svc)
    made = 0
    for account, doc in roster(svc).items():
        if doc["role"] not in pp.CLINICAL_ROLES or account in gone:
            continue
        for kind in ("clinical", "schedule"):
            if (kind, account) not in have:
                new_collection(svc, api, me, practice, kind, account)
                made += 1
    return made


def reconcile_grants(svc: PracticeService, api: PracticeApi, me: Identity,
                     practice: dict[str, Any], snap: Snapshot) -> int:  # fmt: skip
    """Grant every collection to every rostered member whose role should hold it and does
    not yet hold every version the owner has. One member's failure does not stop the
    others'."""
    granted = 0
    for cid, coll in snap.collections.items():
        holders: dict[str, set[int]] = {}
        for h in coll.get("holders", []):
            holders.setdefault(str(h["account_id"]), set()).add(int(h["key_version"]))
        for account in svc.should_hold(snap, coll):
            doc = snap.certified[account]
            have = holders.get(account, set())
            grants = [
                make_grant(me.sign, key, practice_id=practice["practice_id"], collection_id=cid,
                           kind=coll["kind"], subject=coll.get("subject"), key_version=v,
                           account_id=account, enc_public=doc["enc_public"])
                for v, key in sorted(svc.store.keys(cid).items()) if v not in have
            ]  # fmt: skip
            if not grants:
                continue
            try:
                api.grant(cid, grants)
            except protocol.ApiError:
                continue  # e.g. the member was removed meanwhile: the next run sees it
            granted += len(grants)
    return granted


def begin_removal(svc: PracticeService, snap: Snapshot, account: str) -> set[str]:
    """Before telling the server: mark the member removed and every collection the
    verified view says they held (by role or by grant) as pending rotation."""
    held = {
        cid for cid, coll in snap.collections.items()
        if account in svc.should_hold(snap, coll)
        or account in {str(h.get("account_id")) for h in coll.get("holders", [])}
    }  # fmt: skip
    svc.store.put_json("removed", sorted(removed(svc) | {account}))
    when = dict(svc.store.get_json("removed_at") or {})
    when.setdefault(account, svc.now())
    svc.store.put_json("removed_at", when)
    add_pending(svc, held)
    return held


def add_pending(svc: PracticeService, collections: set[str]) -> None:
    pending = dict(svc.store.get_json("pending_rotations") or {})
    for cid in collections:
        pending.setdefault(cid, None)
    svc.store.put_json("pending_rotations", pending)


def finish_rotations(svc: PracticeService, api: PracticeApi, me: Identity,
                     practice: dict[str, Any], snap: Snapshot) -> list[str]:  # fmt: skip
    """Rotate every pending collection: a fresh key for the server's next version,
    wrapped to the remaining holders only. Returns the collections rotated."""
    pending: dict[str, int | None] = dict(svc.store.get_json("pending_rotations") or {})
    done = []
    for cid in sorted(pending):
        coll = snap.collections.get(cid)
        if coll is None:
            continue  # not (yet) in the verified view: kept pending
        local = svc.store.keys(cid)
        version = int(coll["key_version"]) + 1
        fresh = pending[cid]
        if fresh == version and version in local:
            key = local[version]  # made by an attempt that did not finish
        elif max(local, default=0) >= version:
            continue  # the server understates the version: never reuse a held key
        else:
            key = SymmetricKey.generate()
            svc.store.put_key(cid, version, key)
            pending[cid] = version
            svc.store.put_json("pending_rotations", pending)
        grants = [
            make_grant(me.sign, key, practice_id=practice["practice_id"], collection_id=cid,
                       kind=coll["kind"], subject=coll.get("subject"), key_version=version,
                       account_id=holder, enc_public=snap.certified[holder]["enc_public"])
            for holder in sorted(svc.should_hold(snap, coll))
        ]  # fmt: skip
        api.rotate(cid, version, grants)
        del pending[cid]
        svc.store.put_json("pending_rotations", pending)
        done.append(cid)
    return done
