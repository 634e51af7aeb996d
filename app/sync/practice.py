"""``PracticeService``: practice mode on the client (docs/PRACTICE.md) — creating a
practice, invites and joining, the owner's key authority (certificates, grants,
rotation on removal), policies, and the practice sync run.

A practice sync run (``sync``, also run after every ``tacit sync`` of a member):
fetch the practice; check every certificate against the owner key this vault learned
when it created or joined (never from the server's answer); the owner's client approves
pending members whose join proof checks out and reconciles grants with the roles; learn
the keys granted to this member; pull every collection it can read (each item checked
against its author's certificate and role); publish this clinician's records; push the
outbox; forward this vault's audit entries to the owner; the owner pulls the merged
audit; apply the owner-signed policy.

Invariants:
- the owner's signing key is pinned at creation or join, in the vault; certificates,
  grants and policies that do not verify against it are ignored, whatever the server
  says; nothing is wrapped to a key without an owner-signed certificate, except the
  joiner's keys that the owner checks against the invite's proof first;
- psychotherapy (process) notes are never published;
- practice data lives only in the vault (``PracticeStore``); nothing here logs or raises
  note text, client data or key material.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.errors import NotSignedInError, UsageError
from app.sync import practice_owner as owner
from app.sync import practice_protocol as pp
from app.sync import practice_run as run
from app.sync import protocol
from app.sync.practice_api import PracticeApi
from app.sync.practice_keys import (
    Identity,
    PracticeTrustError,
    certificate,
    keyring_epoch,
    make_grant,
    make_policy,
    open_envelope,
    open_keyring,
    proof_message,
    seal_envelope,
    seal_keyring,
    verified_certificate,
)
from app.sync.practice_records import PracticeRecords
from app.vault import crypto
from app.vault.crypto import SymmetricKey
from app.vault.practicestore import PracticeStore

if TYPE_CHECKING:
    from app.sync.service import SyncService

KEYRING_PARTS = (
    "identity",
    "practice",
    "invites",
    "policy",
    "labels",
    "removed",
    "removed_at",
    "roster",
    "pending_rotations",
)
ADOPT_PROBE_EVERY = timedelta(hours=1)
ITEM_NAMESPACE = uuid.UUID("5f0c7a4e-2b1d-4c55-9d9e-7a1f3f7c2e10")


def item_id_for(collection_id: str, kind: str, ref: str) -> str:
    """The stable item id of a published record (the same record, the same item)."""
    return str(uuid.uuid5(ITEM_NAMESPACE, f"{collection_id}:{kind}:{ref}"))


def _now(sync: SyncService) -> str:
    return protocol.format_time(int(sync.vault.clock.now().timestamp() * 1000))


@dataclass
class Snapshot:
    """One verified view of the practice: what the server said, after the checks."""

    view: dict[str, Any] = field(repr=False)
    certified: dict[str, dict[str, Any]]  # account id -> certificate doc (active or removed)
    collections: dict[str, dict[str, Any]]  # id -> {"kind","subject","key_version",...}


class PracticeService(PracticeRecords):
    def __init__(self, sync: SyncService) -> None:
        self.sync = sync
        self.vault = sync.vault
        self.store: PracticeStore = sync.vault.practice_store()

    def now(self) -> str:
        return _now(self.sync)

    # -- the sync run --------------------------------------------------------------------
    def sync_run(self) -> dict[str, Any]:
        """One practice sync run (module docstring). Returns counts. Raises
        NotSignedInError, an ApiError (member_removed, ...), OfflineError, TlsError."""
        practice = self._require()
        me = self._identity()
        api, transport = self._api()
        out: dict[str, Any] = {}
        with transport:
            try:
                snap = self._snapshot(api, practice)
            except protocol.MemberRemovedError:
                # Kept, not forgotten: a server's say-so must not destroy the owner's
                # authority or a member's queued work; the owner's lock order follows.
                if practice.get("status") != "removed" and practice["role"] != "owner":
                    self.store.put_json("practice", {**practice, "status": "removed"})
                    self.sync.store.record("practice", "removed from the practice")
                raise
            status = snap.view["you"].get("status", "pending")
            if status != practice.get("status") or snap.view.get("name") != practice.get("name"):
                practice = {**practice, "status": status, "name": snap.view.get("name", "")}
                self.store.put_json("practice", practice)
            out["keyring"] = self._upload_keyring(api, practice)
            out["keys_learned"] = run.learn_keys(self, me, practice, snap)
            snap = self._verified(self._checked(snap.view, practice))  # labels now pinned
            if practice["role"] == "owner":
                out["approved"] = owner.approve(self, api, me, practice, snap)
                out["created"] = owner.ensure_collections(self, api, me, practice)
                if out["approved"] or out["created"]:
                    snap = self._verified(self._snapshot(api, practice))
                out["rotated"] = owner.finish_rotations(self, api, me, practice, snap)
                out["granted"] = owner.reconcile_grants(self, api, me, practice, snap)
                if out["granted"] or out["rotated"]:
                    snap = self._verified(self._snapshot(api, practice))
            out["policy_changed"] = run.apply_policy(self, practice, snap)
            if status != "active":
                return {**out, "status": status}
            out["published"] = run.publish(self, practice, snap)
            out["pushed"] = run.push(self, api, me, practice, snap)
            out["pulled"], out["refused"] = run.pull(self, api, practice, snap)
            out["audit_forwarded"] = run.forward_audit(self, api, me, practice)
            out["audit_merged"] = run.pull_audit(self, api, me, practice, snap)
            self.store.put_json("directory", {
                a: {"email": d["email"], "role": d["role"], "status": d.get("status"),
                    "supervises": d["supervises"]}
                for a, d in snap.certified.items()})  # fmt: skip
            self.store.put_json("collections", {
                cid: {"kind": c["kind"], "subject": c.get("subject"),
                      "key_version": c["key_version"]}
                for cid, c in snap.collections.items()})  # fmt: skip
        return {**out, "status": status}

    # -- the member's other devices ------------------------------------------------------
    def _keyring_doc(self) -> dict[str, Any]:
        return {"v": 1, **{k: self.store.get_json(k) for k in KEYRING_PARTS}}

    def _upload_keyring(self, api: PracticeApi, practice: dict[str, Any]) -> bool:
        """Seal this member's practice state for their other devices (under the newest
        account key epoch this vault holds), when it changed since the last upload."""
        keys = self.sync.account_keys()
        epoch = max(keys)
        doc = self._keyring_doc()
        marker = f"{epoch}:{crypto.sha256(pp.canonical(doc)).hex()}"
        if self.store.get("keyring_marker") == marker:
            return False
        api.put_keyring(seal_keyring(keys[epoch], epoch, practice["account_id"], doc))
        self.store.put({"keyring_marker": marker})
        return True

    def adopt(self, *, force: bool = True) -> bool:
        """On another device of a member: take their practice state from the keyring on
        the server. ``force`` off: at most once an hour (the app's syncs call it for
        accounts in no practice). True when this vault is (now) in a practice. Raises
        OfflineError, TlsError, PracticeTrustError (a keyring that does not open)."""
        if self.membership() is not None:
            return True
        account_id = self.sync.store.get("account_id")
        if account_id is None or self.sync.sessions.load() is None:
            return False
        if not force:
            now = self.vault.clock.now()
            last = self.store.get("practice_probe_at")
            if last is not None and now - datetime.fromisoformat(last) < ADOPT_PROBE_EVERY:
                return False
            self.store.put({"practice_probe_at": now.isoformat()})
        api, transport = self._api()
        with transport:
            try:
                sealed = api.keyring()
            except (protocol.NotInPracticeError, protocol.ResourceNotFoundError,
                    protocol.MemberRemovedError):  # fmt: skip
                return False
        keys = self.sync.account_keys()
        epoch = keyring_epoch(sealed)
        if epoch not in keys:
            return False  # sealed under an epoch only the password gives: sign in again
        doc = open_keyring(keys[epoch], account_id, sealed)
        practice, identity = doc.get("practice"), doc.get("identity")
        if not (isinstance(practice, dict) and isinstance(identity, dict)
                and practice.get("account_id") == account_id):  # fmt: skip
            raise PracticeTrustError("the practice keyring is for another account")
        for part in KEYRING_PARTS:
            if doc.get(part) is not None:
                self.store.put_json(part, doc[part])
        self.vault.set_practice_order_key(protocol.b64decode(practice["owner_sign_public"]))
        self.sync.store.record("practice", "took this member's practice keys on a new device")
        return True

    def status(self) -> dict[str, Any]:
        practice = self.membership()
        if practice is None:
            return {"in_practice": False}
        return {"in_practice": True, "practice_id": practice["practice_id"],
                "name": practice.get("name"), "role": practice["role"],
                "status": practice.get("status"), "account_id": practice["account_id"],
                "policy": self.policy(), "queued": len(self.store.outbox())}  # fmt: skip

    # -- local state ---------------------------------------------------------------------
    def membership(self) -> dict[str, Any] | None:
        doc = self.store.get_json("practice")
        return dict(doc) if isinstance(doc, dict) else None

    def _require(self, *, owner: bool = False) -> dict[str, Any]:
        practice = self.membership()
        if practice is None:
            raise UsageError("this vault is not in a practice: 'tacit practice create' or "
                             "'tacit practice join'")  # fmt: skip
        if owner and practice["role"] != "owner":
            raise UsageError("only the practice owner can do that")
        return practice

    def _identity(self) -> Identity:
        doc = self.store.get_json("identity")
        if doc is None:
            raise UsageError("this vault holds no practice keys")
        return Identity.from_state(doc)

    def _api(self) -> tuple[PracticeApi, Any]:
        transport = self.sync.session_transport()
        return PracticeApi(transport), transport

    # -- create, invite, join -------------------------------------------------------------
    def create(self, name: str, email: str) -> dict[str, Any]:
        """Create a practice with this account as its owner. Raises UsageError (already
        in a practice, not signed in), PracticeExistsError, OfflineError."""
        if self.membership() is not None:
            raise UsageError("this vault is already in a practice")
        account_id = self.sync.store.get("account_id")
        if account_id is None or self.sync.sessions.load() is None:
            raise NotSignedInError("sign in first: 'tacit account login'")
        name, email = name.strip(), email.strip()
        if not 1 <= len(name) <= pp.MAX_NAME_CHARS:
            raise UsageError(f"a practice name is 1-{pp.MAX_NAME_CHARS} characters")
        me, practice_id, now = Identity.generate(), str(uuid.uuid4()), _now(self.sync)
        cert = certificate(me.sign, practice_id=practice_id, account_id=account_id, role="owner",
                           email=email, enc_public=me.enc_public, sign_public=me.sign_public,
                           supervises=[], issued_at=now)  # fmt: skip
        policy = make_policy(me.sign, practice_id=practice_id, require_totp=True,
                             max_idle_minutes=None, offline_lease_days=None,
                             issued_at=now)  # fmt: skip
        keys: dict[str, SymmetricKey] = {}
        labels: dict[str, dict[str, str | None]] = {}
        collections: list[pp.CollectionCreate] = []
        for kind, subject in (("billing", None), ("clinical", account_id),
                              ("schedule", account_id)):  # fmt: skip
            cid, key = str(uuid.uuid4()), SymmetricKey.generate()
            keys[cid] = key
            grant = make_grant(me.sign, key, practice_id=practice_id, collection_id=cid,
                               kind=kind, subject=subject, key_version=1,
                               account_id=account_id, enc_public=me.enc_public)  # fmt: skip
            labels[cid] = {"kind": kind, "subject": subject}
            collections.append({"collection_id": cid, "kind": kind, "subject": subject,
                                "grants": [grant]})  # fmt: skip
        body: pp.PracticeCreate = {
            "practice_id": practice_id, "name": name, "email": email,
            "enc_public": me.enc_public, "sign_public": me.sign_public, "certificate": cert,
            "policy": policy, "collections": collections,
        }  # fmt: skip
        api, transport = self._api()
        with transport:
            api.create(body)
        self.store.put_json("identity", me.to_state())
        self.store.put_json("labels", labels)
        for cid, key in keys.items():
            self.store.put_key(cid, 1, key)
        self.store.put_json("practice", {
            "practice_id": practice_id, "name": name, "account_id": account_id, "role": "owner",
            "email": email, "owner_account_id": account_id, "owner_sign_public": me.sign_public,
            "owner_enc_public": me.enc_public, "status": "active",
        })  # fmt: skip
        self.store.put_json("policy", dict(policy["doc"]))
        owner.enroll(self, account_id, cert["doc"])
        self.sync.store.record("practice", "created a practice")
        return {"practice_id": practice_id, "name": name, "role": "owner"}

    def invite(self, email: str, role: str) -> dict[str, Any]:
        """A one-time invite code for ``email`` with ``role``. Raises UsageError."""
        practice = self._require(owner=True)
        if role not in pp.INVITE_ROLES:
            raise UsageError(f"a role is one of {', '.join(pp.INVITE_ROLES)}")
        email = email.strip()
        if not 3 <= len(email) <= pp.MAX_EMAIL_CHARS or "@" not in email:
            raise UsageError("give the new member's email address")
        secret = crypto.InviteSecret.generate(crypto.INVITE_SECRET_BYTES)
        lookup, envelope_key, _proof_key = crypto.invite_keys(secret)
        envelope = seal_envelope(envelope_key, {
            "practice_id": practice["practice_id"], "name": practice["name"],
            "owner_account_id": practice["owner_account_id"],
            "owner_sign_public": practice["owner_sign_public"],
            "owner_enc_public": practice["owner_enc_public"], "role": role, "email": email,
        })  # fmt: skip
        expires = self.vault.clock.now() + timedelta(days=pp.INVITE_TTL_DAYS)
        expires_at = protocol.format_time(int(expires.timestamp() * 1000))
        api, transport = self._api()
        with transport:
            api.create_invite({"lookup": lookup, "role": role, "email": email,
                               "envelope": envelope, "expires_at": expires_at})  # fmt: skip
        invites = self.store.get_json("invites") or {}
        invites[lookup] = {"secret": secret.hex(), "role": role, "email": email,
                           "expires_at": expires_at}  # fmt: skip
        self.store.put_json("invites", invites)
        self.sync.store.record("practice", f"invited a {role}")
        return {"code": crypto.invite_code(secret), "role": role, "email": email,
                "expires_at": expires_at}  # fmt: skip

    def join(
        self, code: str, server: str, password: crypto.Passphrase, *, ca_file: str | None = None,
        pin: str | None = None, device_name: str | None = None, username: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Join with an invite code: create this member's account and vault link in one
        request. Raises InviteCodeInvalidError, PracticeTrustError (the code does not open
        the invite), InviteInvalidError, UsageError, AccountExistsError, OfflineError."""
        if self.membership() is not None:
            raise UsageError("this vault is already in a practice")
        secret = crypto.parse_invite_code(code)
        lookup, envelope_key, proof_key = crypto.invite_keys(secret)
        me = Identity.generate()
        box: dict[str, Any] = {}

        def signup(transport: Any, body: protocol.SignupRequest) -> protocol.SignupResponse:
            api = PracticeApi(transport)
            invite = open_envelope(envelope_key, api.invite(lookup)["envelope"])
            for key in ("practice_id", "owner_sign_public", "owner_enc_public", "role", "email"):
                if not isinstance(invite.get(key), str):
                    raise PracticeTrustError("the invite is malformed")
            box.update(invite)
            proof = crypto.mac(proof_key, proof_message(
                practice_id=invite["practice_id"], enc_public=me.enc_public,
                sign_public=me.sign_public, role=invite["role"],
                email=invite["email"]))  # fmt: skip
            answer = api.join({"lookup": lookup, "signup": dict(body),
                               "enc_public": me.enc_public, "sign_public": me.sign_public,
                               "proof": protocol.b64encode(proof)})  # fmt: skip
            return answer  # type: ignore[return-value]

        created = self.sync.create_account(
            server, username or f"m-{uuid.uuid4().hex[:12]}", password, ca_file=ca_file, pin=pin,
            device_name=device_name, signup=signup,
        )  # fmt: skip
        self.store.put_json("identity", me.to_state())
        self.store.put_json("practice", {
            "practice_id": box["practice_id"], "name": box.get("name", ""),
            "account_id": created["account_id"], "role": box["role"], "email": box["email"],
            "owner_account_id": box.get("owner_account_id"),
            "owner_sign_public": box["owner_sign_public"],
            "owner_enc_public": box["owner_enc_public"], "status": "pending",
        })  # fmt: skip
        # Lock orders from the practice owner (offboarding) are trusted from now on.
        self.vault.set_practice_order_key(protocol.b64decode(box["owner_sign_public"]))
        self.sync.store.record("practice", f"joined a practice as {box['role']}")
        return {**created, "practice_id": box["practice_id"], "practice": box.get("name", ""),
                "role": box["role"], "email": box["email"]}  # fmt: skip

    # -- the verified view ---------------------------------------------------------------
    def _snapshot(self, api: PracticeApi, practice: dict[str, Any]) -> Snapshot:
        view: dict[str, Any] = dict(api.view())
        if view["practice_id"] != practice["practice_id"]:
            raise PracticeTrustError("the server answered for another practice")
        return self._checked(view, practice)

    def _checked(self, view: dict[str, Any], practice: dict[str, Any]) -> Snapshot:
        """The server's view after this vault's checks (certificates, labels, roster),
        with no request: run again on the same view once ``learn_keys`` pinned labels."""
        owner_key = practice["owner_sign_public"]
        certified: dict[str, dict[str, Any]] = {}
        for member in view.get("members", []):
            doc = verified_certificate(owner_key, practice["practice_id"], member)
            if doc is not None:
                certified[doc["account_id"]] = {**doc, "status": member.get("status")}
        # Kind and subject as this vault verified them (from an owner-signed grant, or
        # because its owner made the collection), never as the server says.
        labels: dict[str, dict[str, Any]] = self.store.get_json("labels") or {}
        collections = {}
        for c in view.get("collections", []):
            cid = c["collection_id"]
            collections[cid] = {**c, **labels.get(cid, {}), "labelled": cid in labels}
        snap = Snapshot(view, certified, collections)
        if practice["role"] == "owner":
            owner.trusted_only(self, snap)  # the owner's own roster, not the server's list
        for account in self.store.get_json("removed") or []:
            if account in certified:  # the owner removed them: never a holder again
                certified[account]["status"] = "removed"
        return snap

    @staticmethod
    def _verified(snap: Snapshot) -> Snapshot:
        """Only the collections whose kind and subject this vault has verified."""
        kept = {cid: c for cid, c in snap.collections.items() if c.get("labelled")}
        return Snapshot(snap.view, snap.certified, kept)

    def _active(self, snap: Snapshot) -> dict[str, dict[str, Any]]:
        return {a: d for a, d in snap.certified.items() if d.get("status") == "active"}

    def should_hold(self, snap: Snapshot, coll: dict[str, Any]) -> set[str]:
        """The active members whose role grants a collection (the owner always); never
        a member this vault knows was removed."""
        kind, subject = coll["kind"], coll.get("subject")
        holders: set[str] = set()
        for account, doc in self._active(snap).items():
            role = doc["role"]
            if (role == "owner" or (kind == "billing" and role == "admin")
                    or (kind == "schedule" and (account == subject or role == "admin"))
                    or (kind == "clinical" and (account == subject
                                                or subject in doc["supervises"]))):  # fmt: skip
                holders.add(account)
        return holders

    def members(self) -> list[dict[str, Any]]:
        """Every member the server lists, with whether the owner certified them."""
        practice = self._require()
        api, transport = self._api()
        with transport:
            snap = self._snapshot(api, practice)
        out = []
        for member in snap.view.get("members", []):
            doc = snap.certified.get(member["account_id"])
            out.append({
                "account_id": member["account_id"], "email": member.get("email"),
                "role": member.get("role"), "status": member.get("status"),
                "certified": doc is not None,
                "supervises": doc["supervises"] if doc else [],
                "you": member["account_id"] == practice["account_id"],
            })  # fmt: skip
        return out

    def _pick_member(self, snap: Snapshot, wanted: str) -> dict[str, Any]:
        wanted = wanted.strip().lower()
        found = [m for m in snap.view.get("members", [])
                 if m["account_id"].startswith(wanted)
                 or str(m.get("email", "")).lower() == wanted]  # fmt: skip
        if len(found) != 1:
            raise UsageError("no such member" if not found else "that matches several members")
        return dict(found[0])

    # -- owner: keys and certificates ---------------------------------------------------
    def supervise(self, supervisor: str, clinician: str) -> dict[str, Any]:
        """Let ``supervisor`` read and co-sign ``clinician``'s notes (owner only)."""
        practice = self._require(owner=True)
        me = self._identity()
        api, transport = self._api()
        with transport:
            snap = self._snapshot(api, practice)
            sup, cli = self._pick_member(snap, supervisor), self._pick_member(snap, clinician)
            doc = snap.certified.get(sup["account_id"])
            if doc is None or doc["role"] != "supervisor":
                raise UsageError("the first member must be a certified supervisor")
            target = snap.certified.get(cli["account_id"])
            if target is None or target["role"] not in pp.CLINICAL_ROLES:
                raise UsageError("the second member must be a certified clinician")
            supervises = sorted({*doc["supervises"], cli["account_id"]})
            cert = certificate(me.sign, practice_id=practice["practice_id"],
                               account_id=sup["account_id"], role="supervisor",
                               email=doc["email"], enc_public=doc["enc_public"],
                               sign_public=doc["sign_public"], supervises=supervises,
                               issued_at=_now(self.sync))  # fmt: skip
            api.certify(sup["account_id"], cert)
            owner.enroll(self, sup["account_id"], cert["doc"])
            snap = self._verified(self._snapshot(api, practice))
            granted = owner.reconcile_grants(self, api, me, practice, snap)
        self.sync.store.record("practice", "assigned a supervisor")
        return {"supervisor": sup["account_id"], "clinician": cli["account_id"],
                "grants": granted}  # fmt: skip

    def set_policy(
        self, *, require_totp: bool | None = None, max_idle_minutes: int | None = None,
        offline_lease_days: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Sign and publish a new policy (owner only); unspecified fields keep their
        value. 0 switches a limit off."""
        practice = self._require(owner=True)
        current = self.store.get_json("policy") or {}

        def pick(value: int | None, key: str, limit: int) -> int | None:
            if value is None:
                return current.get(key)
            if value == 0:
                return None
            if not 1 <= value <= limit:
                raise UsageError(f"{key.replace('_', ' ')} is 1-{limit} (0 switches it off)")
            return value

        idle = pick(max_idle_minutes, "max_idle_minutes", pp.MAX_IDLE_MINUTES)
        lease = pick(offline_lease_days, "offline_lease_days", pp.MAX_LEASE_DAYS)
        totp = current.get("require_totp", True) if require_totp is None else require_totp
        policy = make_policy(self._identity().sign, practice_id=practice["practice_id"],
                             require_totp=bool(totp), max_idle_minutes=idle,
                             offline_lease_days=lease, issued_at=_now(self.sync))  # fmt: skip
        api, transport = self._api()
        with transport:
            api.put_policy(policy)
        self.store.put_json("policy", dict(policy["doc"]))
        self.sync.store.record("practice", "changed the practice policy")
        return self.policy()

    def policy(self) -> dict[str, Any]:
        self._require()
        doc = self.store.get_json("policy") or {}
        return {"require_totp": bool(doc.get("require_totp", True)),
                "max_idle_minutes": doc.get("max_idle_minutes"),
                "offline_lease_days": doc.get("offline_lease_days"),
                "issued_at": doc.get("issued_at")}  # fmt: skip

    def remove(self, member: str) -> dict[str, Any]:
        """Offboard a member (owner only): lock orders for each of their devices, the
        server ends their sessions and drops their grants, then every collection they
        held gets a new key version wrapped to the remaining holders only."""
        practice = self._require(owner=True)
        me = self._identity()
        api, transport = self._api()
        with transport:
            snap = self._verified(self._snapshot(api, practice))
            target = self._pick_member(snap, member)
            account = target["account_id"]
            if account == practice["account_id"]:
                raise UsageError("the owner cannot remove themselves")
            # Recorded first: a run cut short below still never grants them again, and
            # the next sync finishes the rotations.
            owner.begin_removal(self, snap, account)
            orders: list[protocol.SignedOrder] = []
            for device in api.member_devices(account):
                if device.get("state") == "removed":
                    continue
                order: protocol.DeviceOrder = {
                    "v": protocol.ORDER_VERSION, "order_id": str(uuid.uuid4()),
                    "account_id": account, "device_id": str(device["device_id"]),
                    "action": "lock", "issued_at": _now(self.sync),
                }  # fmt: skip
                signature = crypto.sign(me.sign, b"", protocol.order_message(order))
                orders.append({"order": order, "signature": protocol.b64encode(signature)})
            try:
                removal: dict[str, Any] = dict(api.remove(account, orders))
            except protocol.ConflictError:
                removal = {}  # removed by an earlier attempt: finish its rotations below
            owner.add_pending(self, {c for c in removal.get("collections", [])
                                     if c in snap.collections})  # fmt: skip
            snap = self._verified(self._snapshot(api, practice))
            rotated = owner.finish_rotations(self, api, me, practice, snap)
        self.sync.store.record("practice", "removed a member")
        return {"account_id": account, "removed_at": removal.get("removed_at"),
                "sessions_ended": removal.get("sessions_ended"),
                "devices_locked": removal.get("orders_queued"), "rotated": rotated}  # fmt: skip
