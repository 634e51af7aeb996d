"""The one error hierarchy of Tacit.

Every error a user (or a program driving the CLI, or the sync API) can see is a
``TacitError`` with a stable machine ``code`` and a CLI ``exit_status``. Codes never
change once released; messages may.

Invariant: a message never contains note text, client data or key material. Messages are
written by us from fixed strings plus identifiers (record ids, file names), never from
user content or from the text of a lower-level exception.
"""

from __future__ import annotations

from typing import ClassVar


class TacitError(Exception):
    """Base of every error with a stable code."""

    code: ClassVar[str] = "error"
    exit_status: ClassVar[int] = 1
    default_message: ClassVar[str] = "something went wrong"

    def __init__(self, message: str | None = None, **details: object) -> None:
        super().__init__(message or self.default_message)
        # Machine-readable specifics (ids, sequence numbers; never record content).
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


class InternalError(TacitError):
    code = "internal_error"
    exit_status = 70
    default_message = "internal error (run with TACIT_DEBUG=1 to see details)"


class UsageError(TacitError):
    code = "usage"
    exit_status = 2
    default_message = "invalid usage"


class InvalidInputError(TacitError):
    code = "invalid_input"
    exit_status = 2
    default_message = "invalid input"


class InviteCodeInvalidError(UsageError):
    """A practice invite code that is not ``TP-`` and 32 base-32 characters."""

    code = "invite_code_invalid"
    default_message = "that is not a practice invite code (TP- and 32 letters and digits)"


class WeakPassphraseError(TacitError):
    code = "weak_passphrase"
    exit_status = 2
    default_message = "passphrase is too weak"


class WrongPassphraseError(TacitError):
    code = "wrong_passphrase"
    exit_status = 3
    default_message = "wrong passphrase"


class WrongRecoveryKeyError(TacitError):
    code = "wrong_recovery_key"
    exit_status = 3
    default_message = "wrong recovery key"


class DeviceSecretMissingError(TacitError):
    code = "device_secret_missing"
    exit_status = 3
    default_message = (
        "this vault is bound to a device secret in the OS keychain, and the keychain no "
        "longer has it; unlock with the recovery key (tacit recover)"
    )


class NoteNotSignedError(InvalidInputError):
    code = "note_not_signed"
    default_message = "only a signed note takes addenda; edit an unsigned note instead"


class NotFoundError(TacitError):
    code = "not_found"
    exit_status = 4
    default_message = "no such record"


class AmbiguousIdError(TacitError):
    code = "ambiguous_id"
    exit_status = 4
    default_message = "that id prefix matches more than one record"


class IntegrityError(TacitError):
    code = "integrity_error"
    exit_status = 5
    default_message = "the vault is corrupt or has been tampered with"


class UnsupportedVersionError(IntegrityError):
    code = "unsupported_version"
    default_message = "the vault was written by a newer version of Tacit"


class WeakKdfError(IntegrityError):
    code = "weak_kdf"
    default_message = (
        "the vault header asks for key-derivation parameters below the production floor"
    )


class VaultExistsError(TacitError):
    code = "vault_exists"
    exit_status = 6
    default_message = "a vault already exists there"


class VaultMissingError(TacitError):
    code = "vault_missing"
    exit_status = 6
    default_message = "no vault there; create one with 'tacit init'"


class VaultLockedError(TacitError):
    code = "vault_locked"
    exit_status = 7
    default_message = "the vault is locked"


class StorageError(TacitError):
    code = "storage_error"
    exit_status = 8
    default_message = "the vault could not be written (disk full or not writable?)"


class NoteSignedError(TacitError):
    code = "note_signed"
    exit_status = 9
    default_message = "the note is signed and cannot change; add an addendum instead"


# -- sync (client side; the server's codes are app.sync.protocol.ApiError, exit 10) ------
class OfflineError(TacitError):
    code = "offline"
    exit_status = 11
    default_message = "the sync server cannot be reached; changes stay queued in the vault"


class TlsError(TacitError):
    code = "tls_error"
    exit_status = 12
    default_message = (
        "the sync server's certificate could not be verified (wrong CA file, pin "
        "mismatch, or someone in between)"
    )


class NotSignedInError(TacitError):
    code = "not_signed_in"
    exit_status = 13
    default_message = "this vault has no sync account; run 'tacit account create' or 'login'"


# -- lost device: remote lock and wipe, escrow, offline lease (app/vault/remote.py) -------
class DeviceLockedError(TacitError):
    code = "device_locked"
    exit_status = 7
    default_message = (
        "this device was locked by the owner from another device; restore it online "
        "(tacit unlock --online) or unlock with the recovery key"
    )


class DeviceWipedError(DeviceLockedError):
    code = "device_wiped"
    default_message = (
        "this device was wiped by the owner from another device; its notes are gone from "
        "here (synced notes are safe on the server and the other devices)"
    )


class LeaseExpiredError(TacitError):
    code = "lease_expired"
    exit_status = 7
    default_message = (
        "this device has not checked in with the sync server for longer than the offline "
        "lease allows; go online and sign in again to unlock"
    )


class ClockBackwardsError(LeaseExpiredError):
    code = "clock_backwards"
    default_message = (
        "the system clock is far behind a time this vault has already seen, so the "
        "offline lease cannot be checked; fix the clock or go online and sign in again"
    )


class OrderRefusedError(TacitError):
    """A device order that does not verify. ``details["reason"]`` says which check
    failed: malformed, no_signing_key, account, device, signature, replayed."""

    code = "order_refused"
    exit_status = 14
    default_message = "the device order was refused (not a valid order for this device)"


class WrongEscrowKeyError(TacitError):
    code = "wrong_escrow_key"
    exit_status = 3
    default_message = "the escrow key does not open this vault's escrow slot"


class EscrowSlotMissingError(TacitError):
    code = "no_escrow_slot"
    exit_status = 14
    default_message = "this vault has no escrow slot; unlock with the recovery key instead"
