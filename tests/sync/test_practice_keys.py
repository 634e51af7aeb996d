"""Practice statements alone (app/sync/practice_keys.py): what verifies, and what a forger,
a stranger or a server that moves things around gets refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.sync import practice_keys as pk
from app.sync.practice import Snapshot
from app.sync.practice_run import may_author
from app.vault import crypto
from app.vault.crypto import SymmetricKey

PRACTICE = str(uuid.uuid4())
NOW = "2026-11-30T09:00:00.000Z"


def _member(owner: pk.Identity, me: pk.Identity, account: str, role: str,
            supervises: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    cert = pk.certificate(owner.sign, practice_id=PRACTICE, account_id=account, role=role,
                          email=f"{account}@p.test", enc_public=me.enc_public,
                          sign_public=me.sign_public, supervises=supervises or [],
                          issued_at=NOW)  # fmt: skip
    return {"account_id": account, "role": role, "enc_public": me.enc_public,
            "sign_public": me.sign_public, "certificate": cert}  # fmt: skip


def test_a_certificate_verifies_only_under_the_owner_key_and_only_for_its_row() -> None:
    owner, member, stranger = pk.Identity.generate(), pk.Identity.generate(), pk.Identity.generate()
    row = _member(owner, member, "a1", "clinician")
    assert pk.verified_certificate(owner.sign_public, PRACTICE, row)["role"] == "clinician"
    assert pk.verified_certificate(stranger.sign_public, PRACTICE, row) is None
    assert pk.verified_certificate(owner.sign_public, str(uuid.uuid4()), row) is None
    # The server swaps in its own key or upgrades the role: the signed doc no longer matches.
    assert pk.verified_certificate(owner.sign_public, PRACTICE,
                                   {**row, "enc_public": stranger.enc_public}) is None  # fmt: skip
    assert pk.verified_certificate(owner.sign_public, PRACTICE, {**row, "role": "owner"}) is None
    forged = _member(stranger, member, "a1", "clinician")
    assert pk.verified_certificate(owner.sign_public, PRACTICE, forged) is None


def test_a_grant_opens_for_its_member_only_and_only_if_the_owner_signed_it() -> None:
    owner, member, other = pk.Identity.generate(), pk.Identity.generate(), pk.Identity.generate()
    key, cid = SymmetricKey.generate(), str(uuid.uuid4())
    label = {"kind": "clinical", "subject": "c1"}
    grant = pk.make_grant(owner.sign, key, practice_id=PRACTICE, collection_id=cid, **label,
                          key_version=3, account_id="m1", enc_public=member.enc_public)  # fmt: skip
    version, opened = pk.open_grant(member, owner.sign_public, grant, practice_id=PRACTICE,
                                    collection_id=cid, **label, account_id="m1")  # fmt: skip
    assert version == 3 and opened == key
    with pytest.raises(pk.PracticeTrustError):  # another member's private key
        pk.open_grant(other, owner.sign_public, grant, practice_id=PRACTICE, collection_id=cid,
                      **label, account_id="m1")  # fmt: skip
    with pytest.raises(pk.PracticeTrustError):  # moved to another collection
        pk.open_grant(member, owner.sign_public, grant, practice_id=PRACTICE,
                      collection_id=str(uuid.uuid4()), **label, account_id="m1")  # fmt: skip
    # A server that relabels the collection (a clinician's records shown as a schedule,
    # or as another clinician's) makes the grant stop verifying.
    for relabel in ({"kind": "schedule", "subject": "c1"}, {"kind": "clinical", "subject": "c2"},
                    {"kind": "billing", "subject": None}):  # fmt: skip
        with pytest.raises(pk.PracticeTrustError):
            pk.open_grant(member, owner.sign_public, grant, practice_id=PRACTICE,
                          collection_id=cid, **relabel, account_id="m1")  # fmt: skip
    # A server that wraps a key of its own choosing cannot sign it as the owner.
    server_made = pk.make_grant(other.sign, SymmetricKey.generate(), practice_id=PRACTICE,
                                collection_id=cid, **label, key_version=3, account_id="m1",
                                enc_public=member.enc_public)  # fmt: skip
    with pytest.raises(pk.PracticeTrustError):
        pk.open_grant(member, owner.sign_public, server_made, practice_id=PRACTICE,
                      collection_id=cid, **label, account_id="m1")  # fmt: skip


def _sealed(author: pk.Identity, key: SymmetricKey, cid: str, item_id: str,
            account: str = "c1") -> str:  # fmt: skip
    return pk.seal_item(author, key, practice_id=PRACTICE, collection_id=cid, item_id=item_id,
                        key_version=1, kind="note", body={"body": "canary-9101"},
                        author=account, at=NOW)  # fmt: skip


def test_an_item_opens_only_with_its_key_context_and_a_certified_author() -> None:
    author, stranger = pk.Identity.generate(), pk.Identity.generate()
    key, cid, item_id = SymmetricKey.generate(), str(uuid.uuid4()), str(uuid.uuid4())
    sealed = _sealed(author, key, cid, item_id)
    writers = {"c1": author.sign_public}
    opened = pk.open_item(key, writers, practice_id=PRACTICE, collection_id=cid, item_id=item_id,
                          key_version=1, ciphertext=sealed, author_account="c1")  # fmt: skip
    assert opened.body == {"body": "canary-9101"} and "canary" not in repr(opened)
    refusals: list[dict[str, Any]] = [
        {"key": SymmetricKey.generate()},
        {"item_id": str(uuid.uuid4())},  # moved to another item
        {"author_account": "c2"},  # the server claims another author
        {"writers": {"c1": stranger.sign_public}},  # not the certified key
        {"writers": {}},  # an author who may not write here
    ]
    for change in refusals:
        args: dict[str, Any] = {"key": key, "writers": writers, "item_id": item_id,
                                "author_account": "c1", **change}  # fmt: skip
        with pytest.raises(pk.PracticeTrustError):
            pk.open_item(args["key"], args["writers"], practice_id=PRACTICE, collection_id=cid,
                         item_id=args["item_id"], key_version=1, ciphertext=sealed,
                         author_account=args["author_account"])  # fmt: skip
    raw = bytearray(crypto_b64(sealed))
    raw[-1] ^= 1
    with pytest.raises(pk.PracticeTrustError):
        pk.open_item(key, writers, practice_id=PRACTICE, collection_id=cid, item_id=item_id,
                     key_version=1, ciphertext=b64(bytes(raw)), author_account="c1")  # fmt: skip


def crypto_b64(text: str) -> bytes:
    from app.sync.protocol import b64decode

    return b64decode(text)


def b64(data: bytes) -> str:
    from app.sync.protocol import b64encode

    return b64encode(data)


def test_policies_verify_under_the_owner_key_with_sane_limits() -> None:
    owner, stranger = pk.Identity.generate(), pk.Identity.generate()
    good = pk.make_policy(owner.sign, practice_id=PRACTICE, require_totp=True,
                          max_idle_minutes=10, offline_lease_days=7, issued_at=NOW)  # fmt: skip
    assert pk.verified_policy(owner.sign_public, PRACTICE, good)["offline_lease_days"] == 7
    assert pk.verified_policy(stranger.sign_public, PRACTICE, good) is None
    assert pk.verified_policy(owner.sign_public, str(uuid.uuid4()), good) is None
    assert pk.verified_policy(owner.sign_public, PRACTICE, None) is None
    tampered = {"doc": {**good["doc"], "max_idle_minutes": 999}, "signature": good["signature"]}
    assert pk.verified_policy(owner.sign_public, PRACTICE, tampered) is None
    silly = pk.make_policy(owner.sign, practice_id=PRACTICE, require_totp=True,
                           max_idle_minutes=0, offline_lease_days=None, issued_at=NOW)  # fmt: skip
    assert pk.verified_policy(owner.sign_public, PRACTICE, silly) is None


def test_audit_entries_open_for_the_owner_only_and_cannot_be_moved() -> None:
    owner, member, other = pk.Identity.generate(), pk.Identity.generate(), pk.Identity.generate()
    entry = {"action": "view", "record_type": "note", "record_id": "n1", "client_id": "c1",
             "at": NOW}  # fmt: skip
    sealed = pk.seal_audit(member, owner.enc_public, practice_id=PRACTICE, author="m1",
                           entry_id="d1:5", entry=entry)  # fmt: skip
    keys = {"m1": member.sign_public, "m2": other.sign_public}
    doc = pk.open_audit(owner, keys, practice_id=PRACTICE, author="m1", entry_id="d1:5",
                        sealed=sealed)  # fmt: skip
    assert doc["record_id"] == "n1"
    with pytest.raises(pk.PracticeTrustError):  # not the owner
        pk.open_audit(other, keys, practice_id=PRACTICE, author="m1", entry_id="d1:5",
                      sealed=sealed)  # fmt: skip
    with pytest.raises(pk.PracticeTrustError):  # the server re-labels the author
        pk.open_audit(owner, keys, practice_id=PRACTICE, author="m2", entry_id="d1:5",
                      sealed=sealed)  # fmt: skip
    # A member who seals an entry claiming to be another member fails the signature check.
    forged = pk.seal_audit(other, owner.enc_public, practice_id=PRACTICE, author="m1",
                           entry_id="d1:6", entry=entry)  # fmt: skip
    with pytest.raises(pk.PracticeTrustError):
        pk.open_audit(owner, keys, practice_id=PRACTICE, author="m1", entry_id="d1:6",
                      sealed=forged)  # fmt: skip


def test_an_invite_envelope_opens_only_with_its_code() -> None:
    secret = crypto.InviteSecret.generate()
    _lookup, envelope_key, _proof = crypto.invite_keys(secret)
    envelope = pk.seal_envelope(envelope_key, {"practice_id": PRACTICE, "role": "admin"})
    assert pk.open_envelope(envelope_key, envelope)["role"] == "admin"
    _l2, wrong, _p2 = crypto.invite_keys(crypto.InviteSecret.generate())
    with pytest.raises(pk.PracticeTrustError):
        pk.open_envelope(wrong, envelope)
    with pytest.raises(pk.PracticeTrustError):
        pk.open_envelope(envelope_key, "bm90IGFuIGVudmVsb3Bl")


@pytest.mark.parametrize(
    ("coll_kind", "subject", "author", "kind", "allowed"),
    [
        ("clinical", "c1", "c1", "note", True),
        ("clinical", "c1", "c2", "note", False),  # another clinician
        ("clinical", "c1", "sup", "note", False),  # a supervisor writes co-signatures only
        ("clinical", "c1", "sup", "cosign", True),
        ("clinical", "c2", "sup", "cosign", False),  # not their supervisee
        ("clinical", "c1", "adm", "note", False),
        ("clinical", "c1", "c1", "fee", False),  # a kind that does not belong there
        ("schedule", "c1", "adm", "appointment", True),
        ("schedule", "c1", "adm", "contact", False),
        ("schedule", "c1", "c2", "appointment", False),
        ("billing", None, "adm", "fee", True),
        ("billing", None, "c1", "fee", False),
        ("billing", None, "own", "fee", True),
    ],
)
def test_who_may_author_what(coll_kind: str, subject: str | None, author: str, kind: str,
                             allowed: bool) -> None:  # fmt: skip
    certified = {
        "own": {"role": "owner", "supervises": []},
        "c1": {"role": "clinician", "supervises": []},
        "c2": {"role": "clinician", "supervises": []},
        "sup": {"role": "supervisor", "supervises": ["c1"]},
        "adm": {"role": "admin", "supervises": []},
    }
    snap = Snapshot(view={}, certified=certified, collections={})
    assert may_author(snap, {"kind": coll_kind, "subject": subject}, author, kind) is allowed


def test_a_stored_item_is_replaced_only_by_its_own_kind_author_and_a_newer_version() -> None:
    from app.sync.practice_run import _check_replacement
    from app.vault.practicestore import PracticeRow

    stored = PracticeRow(collection_id="c", item_id="i", kind="note", body={}, author="c1",
                         at="2026-11-30T10:00:00.000Z", seq=5, key_version=1)  # fmt: skip
    clinical, schedule = {"kind": "clinical"}, {"kind": "schedule"}
    newer = pk.OpenedItem("note", {}, "c1", "2026-11-30T11:00:00.000Z")
    _check_replacement(stored, clinical, newer)  # the clinician's own edit
    _check_replacement(None, clinical, newer)  # a new item
    for bad, coll in (
        (
            pk.OpenedItem("cosign", {}, "sup", "2026-11-30T11:00:00.000Z"),
            clinical,
        ),  # a note overwritten
        (pk.OpenedItem("note", {}, "c2", "2026-11-30T11:00:00.000Z"), clinical),  # another author
        (pk.OpenedItem("note", {}, "c1", "2026-11-30T09:00:00.000Z"), clinical),  # rolled back
    ):
        with pytest.raises(pk.PracticeTrustError):
            _check_replacement(stored, coll, bad)
    appt = PracticeRow(collection_id="c", item_id="a", kind="appointment", body={}, author="adm",
                       at="2026-11-30T10:00:00.000Z", seq=6, key_version=1)  # fmt: skip
    # Appointments are shared work: the clinician may mark one attended.
    _check_replacement(appt, schedule, pk.OpenedItem("appointment", {}, "c1",
                                                     "2026-11-30T12:00:00.000Z"))  # fmt: skip
