"""Remote lock and wipe, on the vault side: device orders, the lost-device header state,
crypto-shredding, and the offline lease. No Qt, no network: the sync client fetches an
order and hands it here (docs/PROTOCOL.md, "What the client must do").

What this module owns:
- the bytes a device order is signed over. They must equal
  ``app.sync.protocol.order_message`` byte for byte; the vault may not import app.sync
  (import-linter), so the tiny canonical-JSON builder is written again here and a test
  pins both to identical output;
- ``verify_order``: version, account, device, action, Ed25519 signature against the
  account signing key kept in the header, and replay (``issued_at`` strictly later than
  the last order acted on; the order in effect may be delivered again, harmlessly);
- the header transformations of a lock, a wipe and a restore order, and the files a
  wipe removes (overwritten, then deleted);
- the offline lease check (days since the last check-in, and a clock rolled back).

Invariants:
- a lock or wipe writes the header (atomically) before anything else, and that header
  already has no slot the order destroys: a crash at any later point leaves a vault the
  passphrase (lock) or anything at all (wipe) cannot open; the remaining steps (keychain
  secret, database files) are idempotent and are finished by the next call;
- nothing here logs, returns or raises key material; audit notes hold order ids and
  times only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.errors import (
    ClockBackwardsError,
    DeviceLockedError,
    DeviceWipedError,
    IntegrityError,
    LeaseExpiredError,
    OrderRefusedError,
)
from app.vault import crypto, header
from app.vault.clock import iso
from app.vault.fsutil import fsync_dir
from app.vault.header import (
    SLOT_ESCROW,
    SLOT_PASSPHRASE,
    OrderMark,
    PendingAuditNote,
    VaultHeader,
)

ORDER_VERSION = 1
ORDER_ACTIONS = header.ORDER_ACTIONS
ORDER_SIGN_DOMAIN = crypto.SIGN_DOMAIN_DEVICE_ORDER
_ORDER_KEYS = frozenset({"v", "order_id", "account_id", "device_id", "action", "issued_at"})
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIGNATURE_BYTES = 64

MIN_LEASE_DAYS = 1
MAX_LEASE_DAYS = 3650
# How far the wall clock may fall behind the latest time the vault has seen before the
# lease refuses to count: NTP corrections are seconds; a clock a day behind was moved.
CLOCK_BACKWARDS_TOLERANCE = timedelta(hours=24)
_SHRED_CHUNK = 1 << 20


def is_uuid(value: object) -> bool:
    return isinstance(value, str) and _UUID_RE.fullmatch(value) is not None


# -- the signed bytes (a copy of app/sync/protocol.py's, pinned by a test) -------------
def _format_time(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _parse_time(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def canonical_order(order: Mapping[str, object]) -> bytes:
    """Exactly the six keys, sorted, no whitespace, ASCII. Raises ValueError on anything
    else (as app.sync.protocol.canonical_order does, for the same inputs)."""
    raw: dict[str, object] = dict(order)
    if set(raw) != _ORDER_KEYS:
        raise ValueError("an order has exactly the keys " + ", ".join(sorted(_ORDER_KEYS)))
    version = raw["v"]
    if type(version) is not int or version != ORDER_VERSION:
        raise ValueError("unknown order version")
    for key in ("order_id", "account_id", "device_id"):
        if not is_uuid(raw[key]):
            raise ValueError(f"order {key} is not a lowercase UUID")
    if raw["action"] not in ORDER_ACTIONS:
        raise ValueError("unknown order action")
    issued = raw["issued_at"]
    try:
        canonical_time = isinstance(issued, str) and _format_time(_parse_time(issued)) == issued
    except (ValueError, OverflowError):
        canonical_time = False
    if not canonical_time:
        raise ValueError("order issued_at is not a time as format_time writes it")
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def order_message(order: Mapping[str, object]) -> bytes:
    """``b"tacit/v1/device-order\\x00" + canonical_order(order)``: what the account
    signing key signs. Raises ValueError."""
    return ORDER_SIGN_DOMAIN + canonical_order(order)


# -- orders ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Order:
    """A device order that verified against the header it was checked with. ``current``:
    it is the order already in effect here, delivered again (applying it is a no-op that
    finishes anything a crash left undone)."""

    order_id: str
    account_id: str
    device_id: str
    action: str  # "lock" | "wipe" | "restore"
    issued_at: str
    signature: bytes
    current: bool = False
    v: int = ORDER_VERSION
    signer: str = "account"  # or "practice": signed by the practice owner's order key

    def to_dict(self) -> dict[str, object]:
        return {
            "v": self.v, "order_id": self.order_id, "account_id": self.account_id,
            "device_id": self.device_id, "action": self.action, "issued_at": self.issued_at,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What ``VaultService.apply_order`` did, for the acknowledgement to the server.

    ``ack_state`` is what to send in ``POST /v1/devices/self/order/ack`` (``"locked"`` or
    ``"wiped"``), or None for a restore order (nothing to acknowledge)."""

    order_id: str
    action: str
    ack_state: str | None
    applied_at: str
    already_applied: bool
    destroyed_slots: tuple[str, ...] = ()
    removed_files: tuple[str, ...] = ()
    was_unlocked: bool = False
    audit: str = "none"  # "recorded" | "pending" (at the next unlock) | "none"


def _refuse(reason: str, message: str) -> OrderRefusedError:
    return OrderRefusedError(message, reason=reason)


def verify_order(hdr: VaultHeader, order: Mapping[str, object], signature: bytes) -> Order:
    """Check a device order against this vault's header (works while locked). Raises
    OrderRefusedError whose ``details["reason"]`` is one of: ``no_signing_key`` (the
    vault is not linked to an account), ``malformed``, ``signature`` (not signed by the
    account signing key, nor a lock order signed by the practice order key the header
    holds: forged, or another account's), ``account``, ``device``,
    ``replayed`` (not later than the last order acted on)."""
    link = hdr.account
    if link is None:
        raise _refuse("no_signing_key", "this vault is not linked to a sync account")
    try:
        message = order_message(order)
    except ValueError:
        raise _refuse("malformed", "the order is malformed") from None
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise _refuse("signature", "the order signature is malformed")
    signer = "account"
    if not crypto.signature_ok(link.signing_public_key, b"", message, signature):
        # Practice mode: the practice owner may lock a member's devices (offboarding,
        # docs/PRACTICE.md), with the key the member's vault stored when it joined. Only
        # lock: a member's vault also holds their own records, which the owner may not
        # destroy, and restoring is the member's own business.
        practice = hdr.practice_order_key
        if (
            practice is None
            or order["action"] != "lock"
            or not crypto.signature_ok(practice, b"", message, signature)
        ):
            raise _refuse("signature", "the order is not signed by the account signing key")
        signer = "practice"
    if order["account_id"] != link.account_id:
        raise _refuse("account", "the order is for another account")
    if order["device_id"] != link.device_id:
        raise _refuse("device", "the order is for another device")
    order_id, issued_at = str(order["order_id"]), str(order["issued_at"])
    current = False
    last = hdr.device.last_order
    if last is not None:
        in_effect = hdr.device.remote_lock
        if order_id == last.order_id:
            # The order in effect, delivered again (the ack was lost, or a crash).
            if not (in_effect is not None and in_effect.order_id == order_id
                    and in_effect.issued_at == issued_at):  # fmt: skip
                raise _refuse("replayed", "the order was already acted on")
            current = True
        elif _parse_time(issued_at) <= _header_ms(last.issued_at):
            raise _refuse("replayed", "the order is not later than the last one acted on")
    return Order(
        order_id=order_id, account_id=link.account_id, device_id=link.device_id,
        action=str(order["action"]), issued_at=issued_at, signature=signature,
        current=current, signer=signer,
    )  # fmt: skip


def audit_detail(order: Order) -> str:
    """The audit entry's detail for an order (ids and times only)."""
    by = " by the practice owner" if order.signer == "practice" else ""
    return f"remote {order.action} order {order.order_id} issued {order.issued_at}{by}"


def locked_header(hdr: VaultHeader, order: Order, applied_at: str) -> VaultHeader:
    """The header after a lock order: no passphrase slot, the order in effect, and an
    audit note for the next unlock (recovery and escrow slots stay)."""
    mark = OrderMark(order.order_id, order.action, order.issued_at, applied_at)
    note = PendingAuditNote("lock", audit_detail(order), applied_at)
    notes = hdr.device.pending_audit
    if note.detail not in {n.detail for n in notes}:
        notes = (*notes, note)[-header.MAX_PENDING_AUDIT :]
    return hdr.without_slot(SLOT_PASSPHRASE).with_device(
        remote_lock=mark, last_order=mark, pending_audit=notes
    )


def wiped_header(hdr: VaultHeader, order: Order, applied_at: str) -> VaultHeader:
    """The header after a wipe order: no slot at all (nothing can open the database,
    whatever is left of it on disk), no MACs, the order in effect."""
    mark = OrderMark(order.order_id, order.action, order.issued_at, applied_at)
    # The sync client's control record stays until the wipe is acknowledged (it needs
    # the control token for that), then it drops it (app/sync/devices.py).
    state = replace(hdr.device, remote_lock=mark, last_order=mark, pending_audit=())
    return replace(hdr, slots={}, mac=b"", mac_locked=b"", device=state)


def restore_order_header(hdr: VaultHeader, order: Order, applied_at: str) -> VaultHeader:
    """A restore order only moves the replay mark: it is the server clearing the flag.
    The vault itself is restored by the escrow slot (full re-authentication) or the
    recovery key, never by an order (a forged header could otherwise undo a lock)."""
    mark = OrderMark(order.order_id, order.action, order.issued_at, applied_at)
    return hdr.with_device(last_order=mark)


def refuse_if_remote_locked(hdr: VaultHeader) -> None:
    """Raises DeviceWipedError or DeviceLockedError when an order is in effect."""
    mark = hdr.device.remote_lock
    if mark is None:
        return
    details = {"order_id": mark.order_id, "applied_at": mark.applied_at}
    if mark.action == "wipe":
        raise DeviceWipedError(**details)
    raise DeviceLockedError(**details)


# -- files -----------------------------------------------------------------------------
def write_header(path: Path, hdr: VaultHeader) -> None:
    """Write the header atomically, then overwrite the old file's blocks (it held the slot
    just destroyed). The overwrite goes through a descriptor opened before the rename, so
    the new header is durable first; it is best effort (copy-on-write file systems and
    SSD wear levelling may keep the old blocks), the slot and keychain-secret
    destruction is what makes the lock hold. Raises StorageError."""
    old_fd: int | None = None
    if os.name == "posix":  # elsewhere an open file cannot be replaced
        with contextlib.suppress(OSError):
            old_fd = os.open(path, os.O_RDWR)
    try:
        header.write(path, hdr)
        if old_fd is not None:
            with contextlib.suppress(OSError):
                _overwrite(old_fd)
    finally:
        if old_fd is not None:
            os.close(old_fd)


def _overwrite(fd: int) -> None:
    size = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    zeros = bytes(min(size, _SHRED_CHUNK))
    left = size
    while left > 0:
        left -= os.write(fd, zeros[: min(left, len(zeros))])
    os.fsync(fd)


def shred(paths: Iterable[Path]) -> tuple[str, ...]:
    """Overwrite each file with zeros, fsync, delete it. Returns the names removed.
    Missing files are skipped (idempotent). Raises StorageError-free: a file that cannot
    be overwritten is still deleted; one that cannot be deleted is left and reported by
    the caller's next ``shred`` (the slots are already gone, so it is ciphertext nobody
    can open)."""
    removed: list[str] = []
    directories: set[Path] = set()
    for path in paths:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                with contextlib.suppress(OSError):
                    _overwrite(fd)
            finally:
                os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path.name)
            directories.add(path.parent)
    for directory in directories:
        fsync_dir(directory)
    return tuple(removed)


def database_files(directory: Path) -> list[Path]:
    """Every file a wipe removes: the database under both its names with SQLite's side
    files, the failed-unlock note, and leftovers of interrupted header writes. Nothing
    else in the folder is touched (the sync client may keep its control token there)."""
    names = [
        f"{base}{suffix}"
        for base in ("vault.db", "vault.db.creating")
        for suffix in ("", "-wal", "-shm", "-journal")
    ]
    paths = [directory / name for name in (*names, "vault.failures")]
    with contextlib.suppress(OSError):
        paths += sorted(directory.glob(".vault.header.tmp-*"))
    return paths


# -- the offline lease ----------------------------------------------------------------
def parse_iso(value: str) -> datetime:
    """A time from the header. Raises IntegrityError on garbage (the header is plaintext)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise IntegrityError("vault header has a malformed time") from None
    if moment.tzinfo is None:
        raise IntegrityError("vault header has a time without a zone")
    return moment


def _header_ms(value: str) -> int:
    return (parse_iso(value) - _EPOCH) // timedelta(milliseconds=1)


def later(a: str | None, b: datetime) -> str:
    """The later of a header time and ``b``, as a header time."""
    if a is None:
        return iso(b)
    return a if parse_iso(a) >= b else iso(b)


def lease_expires_at(hdr: VaultHeader) -> datetime | None:
    if hdr.lease_days is None or hdr.device.last_checkin is None:
        return None
    try:
        return parse_iso(hdr.device.last_checkin) + timedelta(days=hdr.lease_days)
    except OverflowError:  # a time near year 9999 (the header is plaintext)
        raise IntegrityError("vault header has a time out of range") from None


def lease_expired(hdr: VaultHeader, now: datetime) -> bool:
    """Whether the lease is on and has run out (a missing check-in counts as run out)."""
    if hdr.lease_days is None:
        return False
    expires = lease_expires_at(hdr)
    return expires is None or now > expires


def trusted_time(server_time: datetime | None, now: datetime) -> datetime:
    """The time a check-in records: the server's clock corrects a wrong local one, but
    never by more than CLOCK_BACKWARDS_TOLERANCE into the future (a server, or whoever
    answers in its place, must not be able to push the lease out of reach)."""
    if server_time is None:
        return now
    return min(server_time.astimezone(UTC), now + CLOCK_BACKWARDS_TOLERANCE)


def check_lease(hdr: VaultHeader, now: datetime) -> None:
    """Refuse a passphrase unlock when the offline lease is on and has run out, or when
    the clock is far behind the latest time seen. No-op when the lease is off. Raises
    LeaseExpiredError, ClockBackwardsError."""
    if hdr.lease_days is None:
        return
    if hdr.device.max_seen is not None:
        seen = parse_iso(hdr.device.max_seen)
        if now < seen - CLOCK_BACKWARDS_TOLERANCE:
            raise ClockBackwardsError(max_seen=hdr.device.max_seen)
    expires = lease_expires_at(hdr)
    if expires is None:  # the lease is on and no check-in is recorded: fail closed
        raise LeaseExpiredError(lease_days=hdr.lease_days)
    if now > expires:
        raise LeaseExpiredError(lease_days=hdr.lease_days, expired_at=iso(expires))


def status(hdr: VaultHeader) -> dict[str, Any]:
    """The lost-device facts ``tacit status`` shows (header only: works locked)."""
    mark = hdr.device.remote_lock
    expires = lease_expires_at(hdr)
    return {
        "linked": hdr.account is not None,
        "account_id": hdr.account.account_id if hdr.account else None,
        "device_id": hdr.account.device_id if hdr.account else None,
        "device_locked": hdr.device_locked,
        "wiped": hdr.wiped,
        "order": None
        if mark is None
        else {"id": mark.order_id, "action": mark.action, "issued_at": mark.issued_at,
              "applied_at": mark.applied_at},
        "escrow_slot": SLOT_ESCROW in hdr.slots,
        "lease_days": hdr.lease_days,
        "last_checkin": hdr.device.last_checkin,
        "lease_expires_at": iso(expires) if expires is not None else None,
    }  # fmt: skip
