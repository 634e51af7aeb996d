"""The owner's key authority alone (app/sync/practice_owner.py), against a server that
lies: replayed or substituted joins, certificates that contradict the owner's roster,
understated key versions, cut-short removals. Regression tests for the practice-mode
security review."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from app.errors import OfflineError
from app.sync import practice_owner as owner
from app.sync import protocol
from app.sync.practice import PracticeService, Snapshot
from app.sync.practice_keys import Identity, certificate, proof_message
from app.vault import crypto
from app.vault.clock import ManualClock
from app.vault.crypto import SymmetricKey
from app.vault.service import VaultService

PRACTICE = str(uuid.uuid4())
OWNER = "owner-account"


class FakeApi:
    def __init__(self) -> None:
        self.certified: list[str] = []
        self.rotations: list[tuple[str, int, list[str]]] = []
        self.fail_rotate = False

    def certify(self, account: str, cert: Any) -> dict[str, Any]:
        self.certified.append(account)
        return {}

    def rotate(self, cid: str, version: int, grants: list[Any]) -> dict[str, Any]:
        if self.fail_rotate:
            raise OfflineError()
        self.rotations.append((cid, version, [g["account_id"] for g in grants]))
        return {}


@pytest.fixture
def svc(service: VaultService, clock: ManualClock) -> Any:
    """The parts of PracticeService the owner functions use, on a real vault."""

    def now() -> str:
        return protocol.format_time(int(clock.now().timestamp() * 1000))

    fake = SimpleNamespace(store=service.practice_store(), vault=service, now=now)
    fake.should_hold = lambda snap, coll: PracticeService.should_hold(fake, snap, coll)  # type: ignore[arg-type]
    fake._active = lambda snap: PracticeService._active(fake, snap)  # type: ignore[arg-type]
    return fake


def _invite(
    svc: Any, role: str = "admin", email: str = "a@p.test", days: int = 7
) -> tuple[str, Any]:
    secret = crypto.InviteSecret.generate()
    lookup, _env, proof_key = crypto.invite_keys(secret)
    expires = svc.vault.clock.now() + timedelta(days=days)
    invites = svc.store.get_json("invites") or {}
    when = protocol.format_time(int(expires.timestamp() * 1000))
    invites[lookup] = {"secret": secret.hex(), "role": role, "email": email, "expires_at": when}
    svc.store.put_json("invites", invites)
    return lookup, proof_key


def _pending(account: str, lookup: str, proof_key: Any, joiner: Identity, role: str = "admin",
             email: str = "a@p.test") -> dict[str, Any]:  # fmt: skip
    proof = crypto.mac(proof_key, proof_message(practice_id=PRACTICE, enc_public=joiner.enc_public,
                                                sign_public=joiner.sign_public, role=role,
                                                email=email))  # fmt: skip
    return {"account_id": account, "status": "pending", "role": role, "email": email,
            "enc_public": joiner.enc_public, "sign_public": joiner.sign_public,
            "lookup": lookup, "proof": protocol.b64encode(proof)}  # fmt: skip


def _snap(members: list[dict[str, Any]], collections: dict[str, Any] | None = None) -> Snapshot:
    return Snapshot(view={"members": members}, certified={}, collections=collections or {})


PRACTICE_DOC = {"practice_id": PRACTICE, "account_id": OWNER}


def test_a_join_is_certified_once_and_its_invite_is_consumed(svc: Any) -> None:
    me, joiner = Identity.generate(), Identity.generate()
    lookup, proof_key = _invite(svc)
    api = FakeApi()
    row = _pending("acct-x", lookup, proof_key, joiner)
    assert owner.approve(svc, api, me, PRACTICE_DOC, _snap([row])) == 1
    assert api.certified == ["acct-x"] and lookup not in (svc.store.get_json("invites") or {})
    # The server replays the same join under another account id (the substitution and
    # the replay-after-removal attacks): nothing is certified again.
    replay = {**row, "account_id": "acct-a"}
    assert owner.approve(svc, api, me, PRACTICE_DOC, _snap([replay])) == 0
    # Even with a fresh invite, keys certified once are never certified for another account.
    lookup2, proof2 = _invite(svc)
    reuse = _pending("acct-b", lookup2, proof2, joiner)
    assert owner.approve(svc, api, me, PRACTICE_DOC, _snap([reuse])) == 0
    assert api.certified == ["acct-x"]


def test_removed_accounts_expired_invites_and_bad_keys_are_never_certified(svc: Any) -> None:
    me, api = Identity.generate(), FakeApi()
    svc.store.put_json("removed", ["acct-gone"])
    lookup, proof_key = _invite(svc)
    assert (
        owner.approve(
            svc,
            api,
            me,
            PRACTICE_DOC,
            _snap([_pending("acct-gone", lookup, proof_key, Identity.generate())]),
        )
        == 0
    )
    old, old_key = _invite(svc, days=-1)
    assert (
        owner.approve(
            svc,
            api,
            me,
            PRACTICE_DOC,
            _snap([_pending("acct-late", old, old_key, Identity.generate())]),
        )
        == 0
    )
    assert old not in (svc.store.get_json("invites") or {})  # pruned
    bad = _pending("acct-bad", lookup, proof_key, Identity.generate())
    bad["enc_public"] = protocol.b64encode(bytes(32))  # a low-order point: no shared secret
    assert owner.approve(svc, api, me, PRACTICE_DOC, _snap([bad])) == 0
    assert api.certified == []


def test_the_owner_trusts_its_roster_over_the_servers_certificates(svc: Any) -> None:
    me, member, stranger = Identity.generate(), Identity.generate(), Identity.generate()
    cert = certificate(me.sign, practice_id=PRACTICE, account_id="acct-c", role="clinician",
                       email="c@p.test", enc_public=member.enc_public,
                       sign_public=member.sign_public, supervises=[], issued_at="t")  # fmt: skip
    owner.enroll(svc, "acct-c", cert["doc"])
    snap = _snap([])
    snap.certified["acct-c"] = {**cert["doc"], "status": "active"}
    snap.certified["acct-x"] = {**cert["doc"], "account_id": "acct-x", "status": "active"}
    snap.certified["acct-c2"] = {**cert["doc"], "enc_public": stranger.enc_public}
    owner.trusted_only(svc, snap)
    assert set(snap.certified) == {"acct-c"}


def test_a_rotation_never_reuses_a_held_key_and_resumes_with_its_own(svc: Any) -> None:
    me = Identity.generate()
    holder = Identity.generate()
    cid = str(uuid.uuid4())
    svc.store.put_key(cid, 1, SymmetricKey.generate())
    svc.store.put_key(cid, 2, SymmetricKey.generate())
    coll = {"kind": "billing", "subject": None, "key_version": 2, "holders": []}
    snap = Snapshot(view={}, certified={
        OWNER: {"role": "owner", "supervises": [], "status": "active", "enc_public": me.enc_public},
        "adm": {"role": "admin", "supervises": [], "status": "active",
                "enc_public": holder.enc_public}}, collections={cid: coll})  # fmt: skip
    owner.add_pending(svc, {cid})
    api = FakeApi()
    # The server understates the version: the owner would rotate "to" a key it holds.
    understated = Snapshot(view={}, certified=snap.certified,
                           collections={cid: {**coll, "key_version": 1}})  # fmt: skip
    assert owner.finish_rotations(svc, api, me, PRACTICE_DOC, understated) == []
    assert api.rotations == [] and cid in svc.store.get_json("pending_rotations")
    # A first attempt that is cut short keeps its fresh key for the retry.
    api.fail_rotate = True
    with pytest.raises(OfflineError):
        owner.finish_rotations(svc, api, me, PRACTICE_DOC, snap)
    fresh = svc.store.key(cid, 3)
    assert fresh is not None
    api.fail_rotate = False
    assert owner.finish_rotations(svc, api, me, PRACTICE_DOC, snap) == [cid]
    assert api.rotations == [(cid, 3, sorted([OWNER, "adm"]))]
    assert svc.store.key(cid, 3) == fresh
    assert not svc.store.get_json("pending_rotations")


def test_a_removal_is_recorded_before_the_server_is_told(svc: Any) -> None:
    cid = str(uuid.uuid4())
    snap = Snapshot(view={}, certified={
        "sup": {"role": "supervisor", "supervises": ["c1"], "status": "active"}},
        collections={cid: {"kind": "clinical", "subject": "c1", "key_version": 1,
                           "holders": [{"account_id": "sup", "key_version": 1}]}})  # fmt: skip
    held = owner.begin_removal(svc, snap, "sup")
    assert held == {cid}
    assert "sup" in svc.store.get_json("removed")
    assert cid in svc.store.get_json("pending_rotations")
    assert "sup" in svc.store.get_json("removed_at")
