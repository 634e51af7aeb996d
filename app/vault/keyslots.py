"""Key slots: creating a header around a fresh DB key, and opening it again.

Key hierarchy (docs/SECURITY.md):

    DB key (random 256 bit)  -- opens SQLCipher as a raw key
      wrapped in the passphrase slot by
          KEK_p = HKDF(Argon2id(passphrase, salt, params) || device secret,
                       salt, "tacit/v1/vault/passphrase-kek")
      wrapped in the recovery slot by
          KEK_r = HKDF(recovery key, slot salt, "tacit/v1/vault/recovery-kek")
      wrapped in the escrow slot (once the vault syncs) by
          KEK_e = HKDF(server escrow key || K_account, no salt,
                       "tacit/v1/escrow-slot\0" + device id)      (docs/PROTOCOL.md)
    header MAC key = HKDF(DB key, vault id, "tacit/v1/vault/header-mac")

Backups (app/vault/backup.py; docs/SECURITY.md, "Backups") carry the DB key in two slots
of their own, because the vault's passphrase slot needs this machine's keychain:
    backup passphrase slot: KEK_b = HKDF(Argon2id(passphrase, salt, params), salt,
                                          "tacit/v1/backup/passphrase-kek")
        (the same Argon2id run as the vault's passphrase slot, without the device secret,
        under its own label; derived at unlock and kept, wiped, by the service)
    backup recovery slot: a copy of the vault's recovery slot
    backup file MAC key = HKDF(DB key, vault id, "tacit/v1/backup/file-mac")

Invariants: the DB key never leaves this module unwrapped except as a ``DbKey`` object;
changing the passphrase rewraps the same DB key (the database is never re-encrypted);
every failure is a TacitError with a stable code.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, replace

from app.errors import (
    DeviceSecretMissingError,
    EscrowSlotMissingError,
    IntegrityError,
    TacitError,
    WeakKdfError,
    WrongEscrowKeyError,
    WrongPassphraseError,
    WrongRecoveryKeyError,
)
from app.vault import crypto, recoverykey
from app.vault.crypto import (
    AccountEscrowKey,
    CryptoError,
    DbKey,
    DeviceSecret,
    EscrowKey,
    KdfParams,
    Passphrase,
    RecoveryKey,
    SecretBytes,
    SymmetricKey,
)
from app.vault.header import (
    SLOT_ESCROW,
    SLOT_PASSPHRASE,
    SLOT_RECOVERY,
    Slot,
    VaultHeader,
)
from app.vault.keychain import Keychain

# Purpose labels of the backup keys (known-answer tests pin them; tests/vault/test_backup.py).
LABEL_BACKUP_PASSPHRASE_KEK = "tacit/v1/backup/passphrase-kek"  # noqa: S105 - a label
LABEL_BACKUP_FILE_MAC = "tacit/v1/backup/file-mac"
BACKUP_AAD_MAGIC = "tacit-backup"


class BackupKek(SymmetricKey):
    """The key that wraps the DB key in a backup's passphrase slot: derived from the
    passphrase's Argon2id output *without* the device secret (a backup must open on
    another machine). Held by the unlocked service; never written anywhere."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CreatedVault:
    header: VaultHeader
    db_key: DbKey
    recovery_key: str  # the printable form, shown once
    backup_kek: BackupKek | None = None


@dataclass(frozen=True, slots=True)
class BackupKeys:
    """What a backup file needs from the vault's keys: the two wrapped copies of the DB
    key and the key of the whole-file MAC (the caller wipes ``mac_key``)."""

    passphrase: Slot
    recovery: Slot
    mac_key: SymmetricKey


def _header_mac_key(db_key: DbKey, header: VaultHeader) -> SymmetricKey:
    return crypto.hkdf(db_key, salt=header.vault_id.encode(), label=crypto.LABEL_HEADER_MAC)


def _stretch(passphrase: Passphrase, salt: bytes, params: KdfParams) -> SymmetricKey:
    if not crypto.kdf_within_ceiling(params):  # a crafted file: no hours-long derivation
        raise IntegrityError("vault header has invalid KDF parameters")
    try:
        return crypto.argon2id(passphrase, salt, params)
    except ValueError:  # argon2 refused the header's parameters
        raise IntegrityError("vault header has invalid KDF parameters") from None


def _backup_kek(stretched: SymmetricKey, salt: bytes) -> BackupKek:
    derived = crypto.hkdf(stretched, salt=salt, label=LABEL_BACKUP_PASSPHRASE_KEK)
    try:
        return BackupKek(derived.reveal())
    finally:
        derived.wipe()


def _passphrase_keks(
    passphrase: Passphrase, header: VaultHeader, device_secret: DeviceSecret | None
) -> tuple[SymmetricKey, BackupKek]:
    """One Argon2id run gives both the vault slot's KEK (with the device secret) and the
    backup slot's KEK (without it, its own label)."""
    stretched = _stretch(passphrase, header.kdf_salt, header.kdf)
    parts: list[SecretBytes] = [stretched]
    if device_secret is not None:
        parts.append(device_secret)
    ikm = crypto.concat(*parts)
    try:
        kek = crypto.hkdf(ikm, salt=header.kdf_salt, label=crypto.LABEL_PASSPHRASE_KEK)
        return kek, _backup_kek(stretched, header.kdf_salt)
    finally:
        ikm.wipe()
        stretched.wipe()


def _recovery_kek(key: RecoveryKey, salt: bytes) -> SymmetricKey:
    return crypto.hkdf(key, salt=salt, label=crypto.LABEL_RECOVERY_KEK)


def _device_secret(header: VaultHeader, keychain: Keychain) -> DeviceSecret | None:
    if not header.keychain_bound:
        return None
    secret = keychain.load(header.vault_id)
    if secret is None:
        raise DeviceSecretMissingError()
    return secret


def _wrap_passphrase_slot(
    header: VaultHeader, db_key: DbKey, passphrase: Passphrase, device: DeviceSecret | None
) -> tuple[VaultHeader, BackupKek]:
    kek, backup = _passphrase_keks(passphrase, header, device)
    try:
        nonce, ct = crypto.wrap_key(kek, db_key, header.slot_aad(SLOT_PASSPHRASE))
    except BaseException:
        backup.wipe()
        raise
    finally:
        kek.wipe()
    return header.with_slot(SLOT_PASSPHRASE, Slot(nonce=nonce, ciphertext=ct)), backup


def _bind_device(
    header: VaultHeader, keychain: Keychain
) -> tuple[VaultHeader, DeviceSecret | None]:
    """Create and store a fresh device secret; binding off when the keychain refuses."""
    secret = DeviceSecret.generate()
    if keychain.store(header.vault_id, secret):
        return replace(header, keychain_bound=True), secret
    secret.wipe()
    return replace(header, keychain_bound=False), None


def create(
    passphrase: Passphrase, keychain: Keychain, params: KdfParams, created_at: str
) -> CreatedVault:
    db_key = DbKey.generate()
    header = VaultHeader(
        vault_id=str(uuid.uuid4()),
        created_at=created_at,
        kdf=params,
        kdf_salt=crypto.random_bytes(crypto.SALT_BYTES),
        keychain_bound=False,
    )
    header, device = _bind_device(header, keychain)
    try:
        header, backup_kek = _wrap_passphrase_slot(header, db_key, passphrase, device)
    finally:
        if device is not None:
            device.wipe()
    printable, rkey = recoverykey.generate()
    salt = crypto.random_bytes(crypto.SALT_BYTES)
    kek = _recovery_kek(rkey, salt)
    try:
        nonce, ct = crypto.wrap_key(kek, db_key, header.slot_aad(SLOT_RECOVERY))
    finally:
        kek.wipe()
        rkey.wipe()
    header = header.with_slot(SLOT_RECOVERY, Slot(nonce=nonce, ciphertext=ct, salt=salt))
    mac_key = _header_mac_key(db_key, header)
    try:
        header = header.seal(mac_key)
    finally:
        mac_key.wipe()
    return CreatedVault(header=header, db_key=db_key, recovery_key=printable,
                        backup_kek=backup_kek)  # fmt: skip


def _check_mac(header: VaultHeader, db_key: DbKey) -> None:
    mac_key = _header_mac_key(db_key, header)
    try:
        if not header.mac_ok(mac_key):
            db_key.wipe()
            raise IntegrityError("vault header was altered (authentication failed)")
    finally:
        mac_key.wipe()


def open_with_passphrase(header: VaultHeader, passphrase: Passphrase, keychain: Keychain) -> DbKey:
    """Unwrap the DB key. Raises WrongPassphraseError, DeviceSecretMissingError,
    WeakKdfError, IntegrityError."""
    db_key, backup = open_with_passphrase_keys(header, passphrase, keychain)
    backup.wipe()
    return db_key


def open_with_passphrase_keys(
    header: VaultHeader, passphrase: Passphrase, keychain: Keychain
) -> tuple[DbKey, BackupKek]:
    """Unwrap the DB key and derive, from the same Argon2id run, the KEK of a backup's
    passphrase slot. Raises as ``open_with_passphrase``."""
    if not header.kdf.at_least(crypto.kdf_floor()):
        raise WeakKdfError()
    slot = header.slots.get(SLOT_PASSPHRASE)
    if slot is None:
        raise WrongPassphraseError("this vault has no passphrase slot; use the recovery key")
    device = _device_secret(header, keychain)
    try:
        kek, backup = _passphrase_keks(passphrase, header, device)
    finally:
        if device is not None:
            device.wipe()
    try:
        return _open_slot(header, SLOT_PASSPHRASE, kek, WrongPassphraseError), backup
    except BaseException:
        backup.wipe()
        raise


def open_with_recovery_key(header: VaultHeader, recovery: str) -> DbKey:
    """Unwrap the DB key with the printable recovery key. Raises WrongRecoveryKeyError
    (typo or wrong key) or IntegrityError."""
    slot = header.slots.get(SLOT_RECOVERY)
    if slot is None:
        raise IntegrityError("this vault has no recovery slot")
    rkey = recoverykey.parse(recovery)
    try:
        kek = _recovery_kek(rkey, slot.salt)
    finally:
        rkey.wipe()
    return _open_slot(header, SLOT_RECOVERY, kek, WrongRecoveryKeyError)


def set_passphrase(
    header: VaultHeader,
    db_key: DbKey,
    new_passphrase: Passphrase,
    keychain: Keychain,
    params: KdfParams,
) -> VaultHeader:
    """Rewrap the DB key under a new passphrase (fresh salt and parameters). The recovery
    slot is untouched; the database is not re-encrypted.

    The existing device secret is reused: replacing it before the new header is safely on
    disk would lock the user out if the write failed. A fresh one is made only where there
    was none (unbound vault, or a keychain that lost it - the recovery path)."""
    new, backup = set_passphrase_keys(header, db_key, new_passphrase, keychain, params)
    backup.wipe()
    return new


def set_passphrase_keys(
    header: VaultHeader,
    db_key: DbKey,
    new_passphrase: Passphrase,
    keychain: Keychain,
    params: KdfParams,
) -> tuple[VaultHeader, BackupKek]:
    """``set_passphrase``, also returning the new passphrase's backup KEK."""
    header = replace(header, kdf=params, kdf_salt=crypto.random_bytes(crypto.SALT_BYTES), mac=b"")
    device = keychain.load(header.vault_id) if header.keychain_bound else None
    if device is None:
        header, device = _bind_device(header, keychain)
    try:
        header, backup = _wrap_passphrase_slot(header, db_key, new_passphrase, device)
    finally:
        if device is not None:
            device.wipe()
    mac_key = _header_mac_key(db_key, header)
    try:
        return header.seal(mac_key), backup
    except BaseException:
        backup.wipe()
        raise
    finally:
        mac_key.wipe()


def reseal(header: VaultHeader, db_key: DbKey) -> VaultHeader:
    """The header with fresh MACs, after a change made while the vault is unlocked."""
    mac_key = _header_mac_key(db_key, header)
    try:
        return header.seal(mac_key)
    finally:
        mac_key.wipe()


def _escrow_kek(header: VaultHeader, server: EscrowKey, account: AccountEscrowKey) -> SymmetricKey:
    if header.account is None:
        raise EscrowSlotMissingError("this vault is not linked to a sync account")
    try:
        return crypto.escrow_slot_key(server, account, header.account.device_id)
    except ValueError:  # a device id that is not ASCII: never written by us
        raise IntegrityError("vault header has a malformed device id") from None


def add_escrow_slot(
    header: VaultHeader, db_key: DbKey, server: EscrowKey, account: AccountEscrowKey
) -> VaultHeader:
    """Wrap the DB key in the escrow slot (replacing any earlier one) and reseal. The
    header must carry the account link (its device id is part of the derivation).
    Raises EscrowSlotMissingError when it does not."""
    kek = _escrow_kek(header, server, account)
    try:
        nonce, ct = crypto.wrap_key(kek, db_key, header.slot_aad(SLOT_ESCROW))
    finally:
        kek.wipe()
    return reseal(header.with_slot(SLOT_ESCROW, Slot(nonce=nonce, ciphertext=ct)), db_key)


def open_with_escrow(header: VaultHeader, server: EscrowKey, account: AccountEscrowKey) -> DbKey:
    """Unwrap the DB key with the escrow key the server released and the account's half.
    Raises EscrowSlotMissingError, WrongEscrowKeyError, IntegrityError."""
    slot = header.slots.get(SLOT_ESCROW)
    if slot is None:
        raise EscrowSlotMissingError()
    return _open_slot(header, SLOT_ESCROW, _escrow_kek(header, server, account),
                      WrongEscrowKeyError)  # fmt: skip


def _open_slot(header: VaultHeader, name: str, kek: SymmetricKey, wrong: type[TacitError]) -> DbKey:
    """Unwrap slot ``name`` with ``kek`` (wiped here), raising ``wrong`` when it does not
    open, then check the header MAC with the key. Raises ``wrong``, IntegrityError."""
    slot = header.slots[name]
    try:
        db_key = crypto.unwrap_key(kek, slot.nonce, slot.ciphertext, header.slot_aad(name),
                                   DbKey)  # fmt: skip
    except CryptoError:
        raise wrong() from None
    finally:
        kek.wipe()
    _check_mac(header, db_key)
    return db_key


# -- backups (app/vault/backup.py owns the file format) ----------------------------------
def backup_slot_aad(vault_id: str, kdf: KdfParams, salt: bytes) -> bytes:
    """Associated data of a backup's passphrase slot: the backup format, the vault id and
    the KDF parameters and salt, so a downgrade of the parameters does not open."""
    bound = {
        "magic": BACKUP_AAD_MAGIC,
        "format_version": 1,
        "vault_id": vault_id,
        "slot": SLOT_PASSPHRASE,
        "kdf": kdf.to_dict(),
        "kdf_salt": base64.b64encode(salt).decode("ascii"),
    }
    return json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def backup_mac_key(db_key: DbKey, vault_id: str) -> SymmetricKey:
    """The key of a backup file's whole-file MAC."""
    return crypto.hkdf(db_key, salt=vault_id.encode(), label=LABEL_BACKUP_FILE_MAC)


def backup_keys(header: VaultHeader, db_key: DbKey, backup_kek: BackupKek) -> BackupKeys:
    """The DB key wrapped for a backup: under ``backup_kek`` (fresh nonce) and, as the
    vault's own recovery slot (copied: it is bound to the vault id only), plus the MAC key.
    Raises IntegrityError when the vault has no recovery slot."""
    recovery = header.slots.get(SLOT_RECOVERY)
    if recovery is None:
        raise IntegrityError("this vault has no recovery slot to put into a backup")
    aad = backup_slot_aad(header.vault_id, header.kdf, header.kdf_salt)
    nonce, ct = crypto.wrap_key(backup_kek, db_key, aad)
    return BackupKeys(Slot(nonce=nonce, ciphertext=ct), recovery,
                      backup_mac_key(db_key, header.vault_id))  # fmt: skip


def _identity(vault_id: str, kdf: KdfParams, salt: bytes) -> VaultHeader:
    """A header carrying only the identity a backup's slots are bound to."""
    return VaultHeader(vault_id=vault_id, created_at="", kdf=kdf, kdf_salt=salt,
                       keychain_bound=False)  # fmt: skip


def open_backup_with_passphrase(
    vault_id: str, kdf: KdfParams, salt: bytes, slot: Slot, passphrase: Passphrase
) -> DbKey:
    """Unwrap a backup's DB key with the passphrase (no device secret). Raises
    WeakKdfError, WrongPassphraseError, IntegrityError."""
    if not kdf.at_least(crypto.kdf_floor()):
        raise WeakKdfError("the backup asks for key-derivation parameters below the floor")
    stretched = _stretch(passphrase, salt, kdf)
    try:
        kek = _backup_kek(stretched, salt)
    finally:
        stretched.wipe()
    try:
        return crypto.unwrap_key(kek, slot.nonce, slot.ciphertext,
                                 backup_slot_aad(vault_id, kdf, salt), DbKey)  # fmt: skip
    except CryptoError:
        raise WrongPassphraseError() from None
    finally:
        kek.wipe()


def open_backup_with_recovery_key(vault_id: str, slot: Slot, recovery: str) -> DbKey:
    """Unwrap a backup's DB key with the printable recovery key (its slot is the vault's
    own recovery slot). Raises WrongRecoveryKeyError."""
    rkey = recoverykey.parse(recovery)
    try:
        kek = _recovery_kek(rkey, slot.salt)
    finally:
        rkey.wipe()
    aad = _identity(vault_id, crypto.INSECURE_TEST_PARAMS, b"").slot_aad(SLOT_RECOVERY)
    try:
        return crypto.unwrap_key(kek, slot.nonce, slot.ciphertext, aad, DbKey)
    except CryptoError:
        raise WrongRecoveryKeyError() from None
    finally:
        kek.wipe()


def restored_header(
    vault_id: str,
    created_at: str,
    db_key: DbKey,
    passphrase: Passphrase,
    keychain: Keychain,
    params: KdfParams,
    recovery: Slot,
) -> VaultHeader:
    """A vault header for a restored vault: a normal passphrase slot (fresh salt and
    parameters, bound to this machine's keychain) and the backup's recovery slot, sealed.
    A device secret this keychain already holds for the vault id is reused (the vault the
    backup came from may live on this machine and must keep opening); otherwise a new one
    is made, or binding is off where there is no keychain."""
    hdr = VaultHeader(vault_id=vault_id, created_at=created_at, kdf=params,
                      kdf_salt=crypto.random_bytes(crypto.SALT_BYTES),
                      keychain_bound=False)  # fmt: skip
    device = keychain.load(vault_id)
    if device is None:
        hdr, device = _bind_device(hdr, keychain)
    else:
        hdr = replace(hdr, keychain_bound=True)
    try:
        hdr, backup = _wrap_passphrase_slot(hdr, db_key, passphrase, device)
        backup.wipe()
    finally:
        if device is not None:
            device.wipe()
    return reseal(hdr.with_slot(SLOT_RECOVERY, recovery), db_key)
