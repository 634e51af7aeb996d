"""``tacit selftest``: does this installation work? A pass/fail report to paste into a
support request.

Checks (each one a ``Check`` with a stable ``name``):
- ``crypto.argon2id``: the Argon2 reference implementation's Argon2id vectors, and one
  derivation at the production floor (256 MiB: what every unlock needs);
- ``crypto.hkdf``: RFC 5869 A.3 and every purpose label of app/vault/crypto.py pinned
  to its derived key (a changed label would make every existing vault unopenable);
- ``crypto.aead``: RFC 8439 §2.8.2 (ChaCha20-Poly1305) opens, a flipped bit, a wrong AAD
  and a wrong key are refused, a fresh seal opens;
- ``crypto.ed25519``: RFC 8032 §7.1 tests 1 and 2 (public keys and signatures), a
  flipped bit is refused;
- ``crypto.sha256``: FIPS 180-2 "abc";
- ``sqlcipher``: a throwaway database in a private temporary folder under a random key:
  the canary is not in the file, the file is not plain SQLite, the key reopens it and a
  wrong key does not; the folder is deleted;
- ``keychain``: the OS keychain backend's name and whether it is usable (nothing read
  or stored);
- ``hardening``: core dumps off and not dumpable can be applied to this process;
- ``qt``: PySide6 imports, the Qt version, the platform plugin that would be used and
  whether it loads (a QGuiApplication only for ``offscreen``/``minimal``: no window);
- ``resources``: the shipped templates, icons, stylesheet and the sync server's web page.

Invariants: the user's vault is never opened or touched (nothing here takes a vault
path); the report holds no personal data: no user name, host name, path, vault id or
key, only versions, backend names and pass/warn/fail; a failure of one check never stops
the others. ``ok`` is false only when a check fails (``warn`` is information: no
keychain, no display, no desktop app installed); the CLI then exits ``EXIT_FAILED``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import __version__
from app.errors import TacitError
from app.vault import crypto, hardening, keychain
from app.vault.templates import load_templates, resources_dir

EXIT_FAILED = 15  # README's exit table: "selftest_failed"
PASS, WARN, FAIL = "pass", "warn", "fail"

# Argon2 reference implementation (src/test.c), Argon2id v1.3, "password"/"somesalt",
# 32-byte tags: (memory KiB, passes, lanes) -> tag.
ARGON2ID_VECTORS = (
    (256, 2, 1, "9dfeb910e80bad0311fee20f9c0e2b12c17987b4cac90c2ef54d5b3021c68bfe"),
    (256, 2, 2, "6d093c501fd5999645e0ea3bf620d7b8be7fd2db59c20d9fff9539da2bf57037"),
)
# RFC 5869 A.3: IKM 22 x 0x0b, empty salt and info; the first 32 bytes of its OKM.
HKDF_RFC5869_A3 = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
# Every purpose label, derived from IKM 00..1f: ``hkdf`` labels with salt
# "tacit-test-salt!", ``hkdf_info`` infos with no salt. Computed with an independent
# HMAC-based HKDF (tests/test_selftest.py recomputes them).
LABEL_SALT = b"tacit-test-salt!"
LABEL_VECTORS = {
    "LABEL_PASSPHRASE_KEK": "98b229f917e22e93fb6dcd7752cf47c625d912a9406e18dadae59b469089334b",
    "LABEL_RECOVERY_KEK": "50b518230aed1acfe0a0e1fe04a4aed692cd259bc00fd52b28de4052989dc8b2",
    "LABEL_HEADER_MAC": "a5fd08d34aea1cbb43a59d0861607d15d9cc1a740772b09d28b70f79f8dc9c4d",
    "LABEL_AUDIT_CHAIN": "81f894baaf662cead496ee81c9fab3fd69c3793123e59a1970b91d9fffbba71e",
    "LABEL_ACCOUNT_MASTER": "f2bb8acc3f1713db3f3a8ab89bc7b170f879eb4913b33427f762bdd80d2b2aa8",
    "LABEL_ACCOUNT_LOGIN": "1cb06d40b2be9d59b5a4c0362bc2b8a92d0bbbdf13e80e133f1ae885964cea4f",
    "LABEL_ACCOUNT_EPOCH": "f9a57caae7db5aa1daa1252aec7419687f229bcb9b1e03523cef4a8d395b491b",
    "LABEL_PRACTICE_SEAL": "f212fc6cc61aa7b43409548ba35eb5a939395b156d90b69d86cf8aaa9c267d92",
    "LABEL_INVITE_LOOKUP": "e3d009eecf4fcd18430b6b2bbe6225aa0b8add90af9ce072330d8f23be493cf2",
    "LABEL_INVITE_ENVELOPE": "2e18f353ee23b318d59cdce6ff747fd843f6f0efff6e40ae255d97781d4e574f",
    "LABEL_INVITE_PROOF": "f33faf338216a0453f3fd858d0be4c5561b1b77b5c5d85135c561c512eee886b",
}
INFO_VECTORS = {
    "HKDF_INFO_ACCOUNT_SIGNING": "7c76bab49a5d63dc11c9cc615ec054465001a622b5564cdb9c3e803db77400a8",
    "HKDF_INFO_ESCROW_ACCOUNT": "aee65d9a6fff87c7e2f33baaa46e7c45e99be726d0d37ce6b5e82c6121839cfe",
    "HKDF_INFO_ESCROW_SLOT": "642ddb2b01535c341578e7a2b70c3979a412b4b35f9140dbed1bd3390067cf6b",
    "HKDF_INFO_PRACTICE_KEYRING": (
        "6f084c83a4eb195c7fcb84abfd59c6ce202725aba67ba85dc4c7af46b9584de7"
    ),
}
# RFC 8439 §2.8.2.
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = bytes.fromhex("070000004041424344454647")
AEAD_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
AEAD_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
AEAD_CIPHERTEXT_AND_TAG = bytes.fromhex(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691"
)
# RFC 8032 §7.1, Ed25519 tests 1 and 2: (seed, public key, message, signature).
ED25519_VECTORS = (
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
        "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e45"
        "8f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
)
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SQLITE_MAGIC = b"SQLite format 3\x00"


class CheckFailed(Exception):
    """A check's finding (its message is a fixed text of ours, safe to print)."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # PASS, WARN or FAIL
    detail: str
    ms: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "ms": self.ms}


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    environment: dict[str, object]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            **self.environment,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_text(self) -> str:
        env = self.environment
        lines = [
            f"Tacit {env['version']} self-test ({'bundle' if env['frozen'] else 'python'}, "
            f"Python {env['python']}, {env['system']})",
            "",
        ]
        width = max(len(c.name) for c in self.checks)
        lines += [f"  {c.status.upper():<4}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        failed = sum(c.status == FAIL for c in self.checks)
        warned = sum(c.status == WARN for c in self.checks)
        lines += [
            "",
            (f"FAILED: {failed} check(s) failed" if failed else "PASSED")
            + (f", {warned} warning(s)" if warned else "")
            + ". No personal data is in this report; paste it into a support request.",
        ]
        return "\n".join(lines)


def environment() -> dict[str, object]:
    """Versions and the kind of machine: nothing that names a person or a host."""
    return {
        "version": __version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "frozen": bool(getattr(sys, "frozen", False)),
    }


# -- the checks: each returns (status, detail) or raises CheckFailed ---------------------
def check_argon2id() -> tuple[str, str]:
    for memory, passes, lanes, tag in ARGON2ID_VECTORS:
        params = crypto.KdfParams(memory_kib=memory, iterations=passes, parallelism=lanes)
        out = crypto.argon2id(crypto.Passphrase(b"password"), b"somesalt", params)
        if out.hex() != tag:
            raise CheckFailed(f"reference vector m={memory} t={passes} p={lanes} differs")
    floor = crypto.PRODUCTION_FLOOR
    start = time.perf_counter()
    crypto.argon2id(crypto.Passphrase(b"selftest"), bytes(crypto.SALT_BYTES), floor).wipe()
    seconds = time.perf_counter() - start
    return PASS, (
        f"{len(ARGON2ID_VECTORS)} reference vectors; floor m={floor.memory_kib // 1024} MiB "
        f"t={floor.iterations} p={floor.parallelism} in {seconds:.2f} s"
    )


def check_hkdf() -> tuple[str, str]:
    a3 = crypto.SecretBytes(bytes.fromhex("0b" * 22))
    if crypto.hkdf(a3, salt=b"", label="").hex() != HKDF_RFC5869_A3:
        raise CheckFailed("RFC 5869 A.3 differs (hkdf)")
    if crypto.hkdf_info(a3, b"").hex() != HKDF_RFC5869_A3:
        raise CheckFailed("RFC 5869 A.3 differs (hkdf_info)")
    ikm = crypto.SymmetricKey(bytes(range(32)))
    for name, expected in LABEL_VECTORS.items():
        label = getattr(crypto, name)
        if crypto.hkdf(ikm, salt=LABEL_SALT, label=label).hex() != expected:
            raise CheckFailed(f"the key derived for {name} changed")
    for name, expected in INFO_VECTORS.items():
        if crypto.hkdf_info(ikm, getattr(crypto, name)).hex() != expected:
            raise CheckFailed(f"the key derived for {name} changed")
    return PASS, f"RFC 5869 A.3; {len(LABEL_VECTORS) + len(INFO_VECTORS)} purpose labels pinned"


def check_aead() -> tuple[str, str]:
    key = crypto.SymmetricKey(AEAD_KEY)
    sealed = AEAD_CIPHERTEXT_AND_TAG
    if crypto.open_sealed(key, AEAD_NONCE, sealed, AEAD_AAD) != AEAD_PLAINTEXT:
        raise CheckFailed("RFC 8439 vector opened to other text")
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    other_key = crypto.SymmetricKey(bytes(32))
    for args in ((key, flipped, AEAD_AAD), (key, sealed, b"other"), (other_key, sealed, AEAD_AAD)):
        try:
            crypto.open_sealed(args[0], AEAD_NONCE, args[1], args[2])
        except crypto.CryptoError:
            continue
        raise CheckFailed("altered ciphertext, AAD or key was accepted")
    fresh = crypto.SymmetricKey.generate()
    nonce, box = crypto.seal(fresh, b"round trip", b"aad")
    if crypto.open_sealed(fresh, nonce, box, b"aad") != b"round trip":
        raise CheckFailed("a fresh seal did not open")
    return PASS, "ChaCha20-Poly1305: RFC 8439 2.8.2; tampering, wrong AAD and wrong key refused"


def check_ed25519() -> tuple[str, str]:
    for seed, public, message, signature in ED25519_VECTORS:
        key = crypto.SigningKey(bytes.fromhex(seed))
        msg, sig, pub = bytes.fromhex(message), bytes.fromhex(signature), bytes.fromhex(public)
        if key.public_key() != pub:
            raise CheckFailed("RFC 8032 public key differs")
        if crypto.sign(key, b"", msg) != sig:
            raise CheckFailed("RFC 8032 signature differs")
        if not crypto.signature_ok(pub, b"", msg, sig):
            raise CheckFailed("RFC 8032 signature does not verify")
        if crypto.signature_ok(pub, b"", msg, bytes([sig[0] ^ 1]) + sig[1:]):
            raise CheckFailed("a flipped signature verified")
    return PASS, f"RFC 8032 7.1 tests 1-{len(ED25519_VECTORS)}; a flipped signature is refused"


def check_sha256() -> tuple[str, str]:
    if crypto.sha256(b"abc").hex() != SHA256_ABC:
        raise CheckFailed("SHA-256('abc') differs")
    return PASS, "FIPS 180-2 'abc'"


def check_sqlcipher() -> tuple[str, str]:
    # sqlcipher3 loads here: its absence is this check's finding, not a crash.
    import sqlcipher3.dbapi2 as sqlcipher

    from app.vault import db

    folder = Path(tempfile.mkdtemp(prefix="tacit-selftest-"))  # 0700, removed below
    try:
        path = folder / "canary.db"
        canary = b"tacit-canary-" + crypto.random_bytes(16).hex().encode("ascii")
        key = crypto.DbKey.generate()
        conn = db.connect(path, key, create=True)
        try:
            version = conn.execute("PRAGMA cipher_version").fetchone()
            provider = conn.execute("PRAGMA cipher_provider").fetchone()
            conn.execute("CREATE TABLE t (v BLOB)")
            conn.execute("INSERT INTO t VALUES (?)", (canary,))
        finally:
            conn.close()
        if not version or not version[0]:
            raise CheckFailed("the SQLite library is not SQLCipher (no cipher_version)")
        raw = b"".join(p.read_bytes() for p in folder.iterdir() if p.is_file())
        if canary in raw:
            raise CheckFailed("the canary is readable in the database file: not encrypted")
        if path.read_bytes()[: len(SQLITE_MAGIC)] == SQLITE_MAGIC:
            raise CheckFailed("the database file is plain SQLite")
        conn = db.connect(path, key, create=False)
        try:
            row = conn.execute("SELECT v FROM t").fetchone()
        finally:
            conn.close()
        if row is None or bytes(row[0]) != canary:
            raise CheckFailed("the key did not read the canary back")
        _quiet_sqlcipher(sqlcipher)  # a wrong key is the point here: not an error worth a log line
        try:
            db.connect(path, crypto.DbKey.generate(), create=False).close()
        except TacitError:
            pass
        else:
            raise CheckFailed("a wrong key opened the database")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    engine = f"SQLCipher {version[0]}" + (f" ({provider[0]})" if provider and provider[0] else "")
    return PASS, f"{engine}: encrypted on disk, wrong key refused"


def _quiet_sqlcipher(sqlcipher: Any) -> None:
    """SQLCipher's own log (process-wide) off: it would print the failed page check."""
    conn = sqlcipher.connect(":memory:")
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")
    finally:
        conn.close()


def check_keychain() -> tuple[str, str]:
    name, usable = keychain.describe_backend()
    if usable:
        return PASS, f"backend '{name}': usable (vaults bind to a device secret in it)"
    return WARN, (
        f"backend '{name}': no OS keychain; vaults work without device binding (docs/SECURITY.md)"
    )


def check_hardening() -> tuple[str, str]:
    applied = hardening.harden_process()
    state = hardening.status()
    facts = ", ".join(f"{k}={v}" for k, v in state.items() if v is not None)
    return (PASS if applied else WARN), (facts or "not available on this system")


def check_qt() -> tuple[str, str]:
    try:
        from app.ui import qt
    except ImportError:
        if getattr(sys, "frozen", False):
            raise CheckFailed("PySide6 is missing from the bundle") from None
        return WARN, "PySide6 is not installed: the CLI works, the desktop app needs 'gui'"
    version = qt.QLibraryInfo.version().toString()
    plugins = _platform_plugins(qt.QCoreApplication.libraryPaths())
    wanted = _wanted_platform()
    if wanted is None:
        return WARN, (
            f"Qt {version}; no display here (DISPLAY/WAYLAND_DISPLAY unset): the desktop "
            f"app needs one, or QT_QPA_PLATFORM=offscreen; plugins: {', '.join(sorted(plugins))}"
        )
    if wanted not in plugins:
        raise CheckFailed(f"Qt {version}: the '{wanted}' platform plugin is missing")
    problem = _load_problem(plugins[wanted])
    if problem:
        raise CheckFailed(f"Qt {version}: the '{wanted}' platform plugin cannot load: {problem}")
    if wanted in ("offscreen", "minimal"):
        # A QApplication (not only a QGuiApplication), so a process that goes on to show
        # widgets can still do so; no window is created.
        app = qt.QApplication.instance() or qt.QApplication([sys.argv[0] or "tacit"])
        name = app.platformName() if isinstance(app, qt.QGuiApplication) else "?"
        return PASS, f"Qt {version}, PySide6 imports; platform '{name}' started (no window)"
    return PASS, f"Qt {version}, PySide6 imports; platform '{wanted}' loads"


def _wanted_platform() -> str | None:
    """The QPA platform Qt would pick here: QT_QPA_PLATFORM, else the desktop's own."""
    forced = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if forced:
        return forced
    if sys.platform == "darwin":
        return "cocoa"
    if sys.platform == "win32":
        return "windows"
    if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    if os.environ.get("DISPLAY"):
        return "xcb"
    return None


def _platform_plugins(library_paths: list[str]) -> dict[str, Path]:
    """Platform plugin name -> file, from Qt's plugin folders (``libqxcb.so`` -> xcb)."""
    found: dict[str, Path] = {}
    for folder in library_paths:
        platforms = Path(folder) / "platforms"
        if not platforms.is_dir():
            continue
        for f in platforms.iterdir():
            m = re.fullmatch(r"(?:lib)?q(\w+?)(?:\.so|\.dylib|\.dll)", f.name)
            if m:
                found.setdefault(m.group(1), f)
    return found


def _load_problem(plugin: Path) -> str | None:
    """Whether the plugin's shared libraries resolve (loading a Qt plugin runs no Qt
    code). The problem names the missing library, never a path."""
    if sys.platform == "win32":
        return None
    import ctypes

    try:
        ctypes.CDLL(str(plugin))
    except OSError as exc:
        libs = [
            x for x in re.findall(r"[\w.+-]+\.(?:so|dylib)[\w.]*", str(exc)) if x != plugin.name
        ]
        return (libs[0] + " is missing") if libs else "a library it needs is missing"
    return None


def check_resources() -> tuple[str, str]:
    root = resources_dir()
    templates = load_templates(root / "templates")
    needed = [root / "icons" / "tacit.svg", root / "styles" / "tacit.qss"]
    try:
        from app.sync.server.web_routes import WEB_DIR

        needed.append(WEB_DIR / "account.html")
    except ImportError:  # the server extra is not installed: not the desktop's business
        pass
    missing = [p.name for p in needed if not p.is_file()]
    if missing or not templates:
        raise CheckFailed("missing: " + ", ".join(missing or ["note templates"]))
    return PASS, f"{len(templates)} note templates, icons, stylesheet" + (
        ", web page" if len(needed) == 3 else ""
    )


CHECKS: tuple[tuple[str, Callable[[], tuple[str, str]]], ...] = (
    ("crypto.argon2id", check_argon2id),
    ("crypto.hkdf", check_hkdf),
    ("crypto.aead", check_aead),
    ("crypto.ed25519", check_ed25519),
    ("crypto.sha256", check_sha256),
    ("sqlcipher", check_sqlcipher),
    ("keychain", check_keychain),
    ("hardening", check_hardening),
    ("qt", check_qt),
    ("resources", check_resources),
)


def run_checks(
    checks: tuple[tuple[str, Callable[[], tuple[str, str]]], ...] = CHECKS,
) -> Report:
    """Run every check (one failing, even with an unexpected exception, never stops the
    others) and return the report."""
    results = []
    for name, func in checks:
        start = time.perf_counter()
        try:
            status, detail = func()
        except CheckFailed as exc:
            status, detail = FAIL, str(exc)
        except Exception as exc:  # report the kind of failure only: no text, no path
            status, detail = FAIL, f"unexpected {type(exc).__name__}"
        ms = round(1000 * (time.perf_counter() - start))
        results.append(Check(name, status, detail, ms))
    return Report(tuple(results), environment())
