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

Invariants: the DB key never leaves this module unwrapped except as a ``DbKey`` object;
changing the passphrase rewraps the same DB key (the database is never re-encrypted);
every failure is a TacitError with a stable code.
"""

from __future__ import annotations

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
from app.vault.header import SLOT_ESCROW, SLOT_PASSPHRASE, SLOT_RECOVERY, Slot, VaultHeader
from app.vault.keychain import Keychain


@dataclass(frozen=True, slots=True)
class CreatedVault:
    header: VaultHeader
    db_key: DbKey
    recovery_key: str  # the printable form, shown once


def _header_mac_key(db_key: DbKey, header: VaultHeader) -> SymmetricKey:
    return crypto.hkdf(db_key, salt=header.vault_id.encode(), label=crypto.LABEL_HEADER_MAC)


def _passphrase_kek(
    passphrase: Passphrase, header: VaultHeader, device_secret: DeviceSecret | None
) -> SymmetricKey:
    try:
        stretched = crypto.argon2id(passphrase, header.kdf_salt, header.kdf)
    except ValueError:  # argon2 refused the header's parameters
        raise IntegrityError("vault header has invalid KDF parameters") from None
    parts: list[SecretBytes] = [stretched]
    if device_secret is not None:
        parts.append(device_secret)
    ikm = crypto.concat(*parts)
    try:
        return crypto.hkdf(ikm, salt=header.kdf_salt, label=crypto.LABEL_PASSPHRASE_KEK)
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
) -> VaultHeader:
    kek = _passphrase_kek(passphrase, header, device)
    try:
        nonce, ct = crypto.wrap_key(kek, db_key, header.slot_aad(SLOT_PASSPHRASE))
    finally:
        kek.wipe()
    return header.with_slot(SLOT_PASSPHRASE, Slot(nonce=nonce, ciphertext=ct))


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
        header = _wrap_passphrase_slot(header, db_key, passphrase, device)
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
    return CreatedVault(header=header, db_key=db_key, recovery_key=printable)


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
    if not header.kdf.at_least(crypto.kdf_floor()):
        raise WeakKdfError()
    slot = header.slots.get(SLOT_PASSPHRASE)
    if slot is None:
        raise WrongPassphraseError("this vault has no passphrase slot; use the recovery key")
    device = _device_secret(header, keychain)
    try:
        kek = _passphrase_kek(passphrase, header, device)
    finally:
        if device is not None:
            device.wipe()
    return _open_slot(header, SLOT_PASSPHRASE, kek, WrongPassphraseError)


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
    header = replace(header, kdf=params, kdf_salt=crypto.random_bytes(crypto.SALT_BYTES), mac=b"")
    device = keychain.load(header.vault_id) if header.keychain_bound else None
    if device is None:
        header, device = _bind_device(header, keychain)
    try:
        header = _wrap_passphrase_slot(header, db_key, new_passphrase, device)
    finally:
        if device is not None:
            device.wipe()
    mac_key = _header_mac_key(db_key, header)
    try:
        return header.seal(mac_key)
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
