"""Every parser of outside input, fuzzed: each input parses or is refused with the
project's own error (a ``TacitError``: app/errors.py, app/sync/protocol.py), never any
other exception, and within a time ceiling (no hang).

Parsers covered: the vault header (then its slots opened with it), the backup file
(then unlocked with it), the export archive (and the signature report of its
document), a folder of Markdown notes, a Standard Notes backup, and what the sync client
reads from a server: error envelopes, item blobs, wrapped items keys, KDF parameters,
pull pages and push answers (through the real engine), device orders and the control
record kept in the header.

Checksums that are not keyed (the header's ``checksum``, the backup's ``checksum``)
are recomputed after a structured mutation, as an attacker would, so the fuzzing reaches
the code behind them. Fast budgets run in CI; ``pytest -m soak`` runs the large ones.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import TacitError
from app.sync import account, protocol
from app.sync.devices import ControlRecord
from app.sync.engine import SyncEngine
from app.sync.items import ItemsKey, decrypt_item, encrypt_item, unwrap_items_key, wrap_items_key
from app.vault import backup, crypto, export, header, importformats, keyslots, remote
from app.vault.crypto import Passphrase, SymmetricKey
from app.vault.importformats import plan_markdown, plan_standardnotes
from app.vault.keychain import MemoryKeychain, NoKeychain
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.fuzz.conftest import Budget, ceiling
from tests.fuzz.strategies import deep_nesting, near

T = TypeVar("T")
PASS = Passphrase.from_str(PASSPHRASE)
SECONDS = 20.0  # the ceiling of one example (the slowest does two weak Argon2id runs)
COUNTS: dict[str, int] = {}  # examples run per parser, for the report


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    """With TACIT_FUZZ_REPORT=FILE, append the examples run per parser to FILE."""
    yield
    target = os.environ.get("TACIT_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"parsers": COUNTS}, sort_keys=True) + "\n")


def outcome(name: str, call: Callable[[], T]) -> T | TacitError:
    """``call()``'s result or its TacitError; anything else fails the test, and so does
    running past ``SECONDS``."""
    COUNTS[name] = COUNTS.get(name, 0) + 1
    with ceiling(SECONDS):
        try:
            return call()
        except TacitError as err:
            return err


def _cheap(doc: Any) -> Any:
    """Argon2id parameters in the costly-but-allowed range (memory above a few MiB, more
    than a few passes or lanes, up to the ceiling) are brought down so one example stays
    fast; values below the floor or above the ceiling are kept (those are the hostile
    ones, refused before any derivation)."""
    if isinstance(doc, dict):
        out = {k: _cheap(v) for k, v in doc.items()}
        for key, low, high in (
            ("memory_kib", 4096, crypto.MAX_MEMORY_KIB),
            ("iterations", 4, crypto.MAX_ITERATIONS),
            ("parallelism", 4, crypto.MAX_PARALLELISM),
        ):
            value = out.get(key)
            if type(value) is int and low < value <= high:
                out[key] = low
        return out
    if isinstance(doc, list):
        return [_cheap(v) for v in doc]
    return doc


def flips(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes changed, cut short, or grown."""
    n = len(data)

    def apply(edits: list[tuple[int, int]]) -> bytes:
        raw = bytearray(data)
        for index, value in edits:
            raw[index % n] = value
        return bytes(raw)

    edit = st.tuples(st.integers(0, n - 1), st.integers(0, 255))
    return st.one_of(
        st.lists(edit, min_size=1, max_size=4).map(apply),
        st.integers(0, n - 1).map(lambda cut: data[:cut]),
        st.binary(min_size=1, max_size=64).map(lambda extra: data + extra),
    )


# -- the vault header -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def created() -> keyslots.CreatedVault:
    made = keyslots.create(PASS, NoKeychain(), crypto.INSECURE_TEST_PARAMS, "2026-01-05T09:00:00Z")
    linked = replace(
        made.header,
        account=header.AccountLink(
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            bytes(32),
        ),
        lease_days=30,
    )
    return replace(made, header=linked.seal(keyslots._header_mac_key(made.db_key, linked)))


def _resealed(doc: Any) -> bytes:
    """The header as an attacker would write it: the checksum recomputed."""
    if isinstance(doc, dict):
        rest = {k: v for k, v in doc.items() if k != "checksum"}
        with contextlib.suppress(ValueError, TypeError, RecursionError):
            doc = {**rest, "checksum": crypto.sha256(header._canonical(rest)).hex()}
    return json.dumps(doc).encode()


def test_vault_header(budget: Budget, created: keyslots.CreatedVault) -> None:
    valid = json.loads(created.header.encode())
    valid["device_state"] = {
        "remote_lock": {"order_id": "o", "action": "lock", "issued_at": "t", "applied_at": "t"},
        "pending_audit": [{"action": "lock", "detail": "d", "at": "t"}],
        "sync_control": "{}",
    }

    @budget.settings(fast=50, soak=5000)
    @given(
        data=st.one_of(
            near(valid).map(_cheap).map(_resealed),
            flips(created.header.encode()),
            deep_nesting(),
        )
    )
    def check(data: bytes) -> None:
        parsed = outcome("vault header", lambda: header.decode(data))
        if isinstance(parsed, header.VaultHeader):
            outcome(
                "vault header", lambda: keyslots.open_with_passphrase(parsed, PASS, NoKeychain())
            )
            outcome(
                "vault header",
                lambda: keyslots.open_with_recovery_key(parsed, created.recovery_key),
            )

    check()


@pytest.mark.parametrize(
    "kdf",
    [
        {"memory_kib": 2**33},  # past 32 bits: OverflowError from argon2-cffi
        {"memory_kib": 2**32 - 1},  # argon2 cannot allocate it: HashingError
        {"parallelism": 2**25},  # "memory cost is too small" for that many lanes
        {"iterations": 2**31},  # fits argon2, but would run for days
    ],
)
def test_header_kdf_past_the_ceiling_is_refused_before_deriving(
    created: keyslots.CreatedVault, kdf: dict[str, int]
) -> None:
    """Regression (issue 9): these escaped as OverflowError / argon2 HashingError, or hung."""
    doc = json.loads(created.header.encode())
    doc["kdf"].update(kdf)
    parsed = header.decode(_resealed(doc))
    with ceiling(5), pytest.raises(TacitError):
        keyslots.open_with_passphrase(parsed, PASS, NoKeychain())


def test_a_short_kdf_salt_is_refused() -> None:
    """Regression (issue 9): argon2's HashingError ("Salt is too short") escaped."""
    params = crypto.INSECURE_TEST_PARAMS
    slot = header.Slot(b"n" * 12, b"c" * 48)
    with pytest.raises(TacitError):
        keyslots.open_backup_with_passphrase("v", params, b"", slot, PASS)


# -- backups ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def made_backup(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    base = tmp_path_factory.mktemp("fuzz-backup")
    svc = VaultService(base / "vault", keychain=MemoryKeychain())
    recovery = svc.create(PASS)
    client = svc.add_client("Fuzz Client").id
    svc.create_note(client, "soap", title="t", body="b")
    report = backup.create_backup(svc, base / "backups")
    svc.lock()
    return report.file.read_bytes(), recovery


def _frame(header_bytes: bytes, body: bytes, tag: bytes) -> bytes:
    """A backup file around ``header_bytes`` with lengths and checksum made to fit."""
    head = b"TACITBAK" + struct.pack(">I", len(header_bytes)) + header_bytes
    head += struct.pack(">Q", len(body)) + body
    d = hashlib.sha256(head).digest()
    return head + tag + crypto.sha256(backup.CHECKSUM_DOMAIN + d + tag)


def _split(data: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    (hlen,) = struct.unpack(">I", data[8:12])
    doc = json.loads(data[12 : 12 + hlen])
    (blen,) = struct.unpack(">Q", data[12 + hlen : 20 + hlen])
    body = data[20 + hlen : 20 + hlen + blen]
    return doc, body, data[20 + hlen + blen : 20 + hlen + blen + 32]


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="tacit-fuzz-", dir=shm) as name:
        yield Path(name)


def test_backup_file(budget: Budget, made_backup: tuple[bytes, str]) -> None:
    data, recovery = made_backup
    doc, body, tag = _split(data)

    def framed(value: Any) -> bytes:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return _frame(raw, body, tag)

    @budget.settings(fast=40, soak=3000)
    @given(
        blob=st.one_of(
            flips(data),
            near(doc).map(_cheap).map(framed),
            deep_nesting().map(framed),
            st.binary(max_size=200),
        ),
        use_recovery=st.booleans(),
    )
    def check(blob: bytes, use_recovery: bool) -> None:
        with _scratch() as tmp:
            path = tmp / "f.tacitbackup"
            path.write_bytes(blob)
            parsed = outcome("backup file", lambda: backup.read_backup(path))
            if isinstance(parsed, backup.ParsedBackup):
                outcome(
                    "backup file",
                    lambda: backup.unlock_backup(
                        parsed, None if use_recovery else PASS, recovery if use_recovery else None
                    ),
                )

    check()


# -- export archives -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz-export") / "a.tacitexport"
    document = {"format": export.DOC_FORMAT, "version": 1, "client": {}, "notes": []}
    export.write_archive(path, document, PASS, params=crypto.INSECURE_TEST_PARAMS)
    return path.read_bytes()


def test_export_archive(budget: Budget, archive: bytes) -> None:
    start = len(export.MAGIC) + 4
    (length,) = struct.unpack(">I", archive[len(export.MAGIC) : start])
    doc, rest = json.loads(archive[start : start + length]), archive[start + length :]

    def framed(value: Any) -> bytes:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return export.MAGIC + struct.pack(">I", len(raw)) + raw + rest

    @budget.settings(fast=40, soak=3000)
    @given(
        blob=st.one_of(
            flips(archive),
            near(doc).map(_cheap).map(framed),
            deep_nesting().map(lambda b: framed(b[: export.MAX_HEADER])),
        )
    )
    def check(blob: bytes) -> None:
        with _scratch() as tmp:
            path = tmp / "a.tacitexport"
            path.write_bytes(blob)
            outcome("export archive", lambda: export.read_archive(path, PASS))

    check()


@pytest.mark.parametrize(
    "header_bytes",
    [
        b"[" * 3000,  # RecursionError escaped
        json.dumps(
            {"format": "tacit-export", "v": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA==",
             "kdf": {"memory_kib": 1e400, "iterations": 1, "parallelism": 1,
                     "algorithm": "argon2id", "version": 19}}
        ).encode(),  # int(inf): OverflowError escaped
    ],
    ids=["deep-nesting", "infinite-memory"],
)  # fmt: skip
def test_export_header_regressions(tmp_path: Path, header_bytes: bytes) -> None:
    """Regression (issue 9): both escaped ``read_archive`` as non-Tacit exceptions."""
    path = tmp_path / "bad.tacitexport"
    path.write_bytes(export.MAGIC + struct.pack(">I", len(header_bytes)) + header_bytes + bytes(40))
    with pytest.raises(TacitError):
        export.read_archive(path, PASS)


NOTE_DOC = {
    "id": "n1", "client_id": "c1", "kind": "progress", "template": "soap", "title": "t",
    "session_date": "2026-01-05", "body": "b", "author": "a", "revision": 1,
    "signature": {"signed_at": "2026-01-05T09:00:00.000Z", "public_key": "00" * 32,
                  "signature": "00" * 64},
    "addenda": [],
}  # fmt: skip


def test_export_document_signature_report(budget: Budget) -> None:
    """``signature_checks`` reads the decrypted document of an archive made by whoever
    holds its passphrase: any shape gives a report, never an exception."""

    @budget.settings(fast=50, soak=5000)
    @given(document=near({"format": export.DOC_FORMAT, "notes": [NOTE_DOC]}))
    def check(document: Any) -> None:
        if not isinstance(document, dict):
            return  # read_archive refuses a document that is not an object
        result = outcome("export document", lambda: export.signature_checks(document))
        assert isinstance(result, dict)

    check()


# -- imports -----------------------------------------------------------------------------------
FRONT_MATTER = st.builds(
    lambda fields, body: "---\n" + "".join(f"{k}: {v}\n" for k, v in fields) + "---\n" + body,
    st.lists(
        st.tuples(
            st.sampled_from(["title", "date", "client", "kind", "template", "tags", "x"]),
            st.one_of(
                st.text(max_size=30),
                st.sampled_from(["2026-01-05", "0001-01-01", "9999-12-31", "[a, 'b', \"c\"]"]),
            ),
        ),
        max_size=6,
    ),
    st.text(max_size=200),
)
FILE_NAMES = st.one_of(
    st.sampled_from(["2026-01-05 session.md", "0000-00-00.md", "note.txt", "x.markdown"]),
    st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"),
        min_size=1,
        max_size=30,
    ).map(lambda s: s[:26] + ".md"),
)
MTIMES = st.one_of(
    st.floats(min_value=-1e13, max_value=1e13, allow_nan=False),
    st.sampled_from([0.0, -1.0, 253402300800.0, 1e12, -62135596801.0]),
)


def test_markdown_folder(budget: Budget) -> None:
    content = st.one_of(
        FRONT_MATTER.map(lambda t: t.encode()),
        st.binary(max_size=300),
        st.sampled_from([b"\xef\xbb\xbf# t\n", b"\xff\xfe#\x00", b"\x00\x01", b"---\n"]),
    )

    @budget.settings(fast=40, soak=3000)
    @given(
        files=st.lists(
            st.tuples(st.sampled_from(["", "Client A", "deep/er"]), FILE_NAMES, content, MTIMES),
            min_size=1,
            max_size=4,
        ),
        client=st.one_of(st.none(), st.text(max_size=5)),
    )
    def check(files: list[tuple[str, str, bytes, float]], client: str | None) -> None:
        with _scratch() as root:
            for sub, name, data, mtime in files:
                if name in (".md", "..md"):
                    continue
                path = root / sub / name if sub else root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                with contextlib.suppress(OSError, OverflowError, ValueError):
                    os.utime(path, (mtime, mtime))
            outcome("markdown folder", lambda: plan_markdown(root, client=client))

    check()


SN_BACKUP = {
    "version": "004",
    "items": [
        {"uuid": "n1", "content_type": "Note", "created_at": "2026-01-05T09:00:00.000Z",
         "content": {"title": "t", "text": "b", "noteType": "super", "trashed": False,
                     "references": [{"uuid": "t1", "content_type": "Tag"}]}},
        {"uuid": "t1", "content_type": "Tag", "deleted": False,
         "content": {"title": "Client", "references": [{"uuid": "n1", "content_type": "Note"}]}},
    ],
}  # fmt: skip
SUPER_TEXT = {
    "root": {"type": "root", "children": [
        {"type": "heading", "tag": "h2", "children": [{"type": "text", "text": "x"}]},
        {"type": "listitem", "children": [{"type": "linebreak"}]},
    ]}
}  # fmt: skip


def test_standard_notes_backup(budget: Budget) -> None:
    def with_super(doc: Any, text: Any) -> Any:
        """Put a fuzzed "Super" (Lexical JSON) document into the first note's text."""
        with contextlib.suppress(KeyError, TypeError, IndexError, AttributeError):
            doc["items"][0]["content"]["text"] = json.dumps(text)
        return doc

    @budget.settings(fast=50, soak=5000)
    @given(
        doc=st.one_of(
            near(SN_BACKUP),
            st.builds(with_super, near(SN_BACKUP), near(SUPER_TEXT)),
        ),
        raw=st.one_of(st.none(), st.binary(max_size=100), deep_nesting()),
    )
    def check(doc: Any, raw: bytes | None) -> None:
        with _scratch() as tmp:
            path = tmp / "backup.txt"
            path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
            outcome("standard notes", lambda: plan_standardnotes(path))

    check()


@pytest.mark.parametrize(
    "text",
    [
        {"root": {"type": "heading", "tag": "h²", "children": []}},  # isdigit, not int()
        {"root": {"type": "paragraph", "children": 5}},  # not a list of children
        {"root": {"type": "heading", "tag": "h99999999999"}},  # a 100 GB heading marker
        {"root": {"type": "heading", "tag": ["h1"]}},  # unhashable where a name belongs
    ],
    ids=["superscript-digit", "children-not-a-list", "huge-heading-level", "tag-a-list"],
)
def test_standard_notes_super_regressions(tmp_path: Path, text: dict[str, Any]) -> None:
    """Regression (issue 9): each crashed the Standard Notes import (ValueError,
    TypeError, MemoryError)."""
    doc = json.loads(json.dumps(SN_BACKUP))
    doc["items"][0]["content"]["text"] = json.dumps(text)
    path = tmp_path / "backup.txt"
    path.write_text(json.dumps(doc))
    with ceiling(10):
        plan = plan_standardnotes(path)
    assert sum(len(c.notes) for c in plan.clients) + len(plan.problems) == 1


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_standard_notes_date_at_the_edge_of_time(tmp_path: Path, when: str) -> None:
    """Regression (issue 9): a date whose local day falls outside year 1..9999 escaped
    as OverflowError."""
    doc = json.loads(json.dumps(SN_BACKUP))
    doc["items"][0]["created_at"] = when
    path = tmp_path / "backup.txt"
    path.write_text(json.dumps(doc))
    plan = plan_standardnotes(path)
    assert sum(len(c.notes) for c in plan.clients) + len(plan.problems) == 1


@pytest.mark.parametrize("mtime", [1e12, -1e12, 253402300800.0])
def test_markdown_file_time_out_of_range(mtime: float) -> None:
    """Regression (issue 9): a note file dated outside year 1..9999 (no date in its
    front matter or name) crashed the import with ValueError / OverflowError; it is now
    listed as a problem. (Called directly: not every file system keeps such a time.)"""
    with pytest.raises(importformats._Skip) as skipped:
        importformats.markdown_note("# A note\nbody\n", file_name="note.md", mtime=mtime)
    assert skipped.value.reason == "bad_time"


# -- what the sync client reads from a server ------------------------------------------------
def test_error_envelopes(budget: Budget) -> None:
    @budget.settings(fast=50, soak=5000)
    @given(
        status=st.integers(100, 599),
        body=near({"error": {"code": "conflict", "message": "m", "retry_after": 1}}),
    )
    def check(status: int, body: Any) -> None:
        err = outcome("error envelope", lambda: protocol.error_from_envelope(status, body))
        assert isinstance(err, protocol.ApiError)  # returned, never raised

    check()


ITEM_ID = "00000000-0000-4000-8000-0000000000aa"


@pytest.fixture(scope="module")
def items_key() -> ItemsKey:
    return ItemsKey("k1", SymmetricKey(bytes(range(32))), generation=1, created_at=5)


def test_item_blobs(budget: Budget, items_key: ItemsKey) -> None:
    sealed = encrypt_item(items_key, ITEM_ID, "note", {"rev": 1, "body": "b"})
    valid = json.loads(sealed)

    @budget.settings(fast=50, soak=5000)
    @given(
        blob=st.one_of(flips(sealed), near(valid).map(lambda d: json.dumps(d).encode())),
        kind=st.sampled_from(["note", "client"]),
    )
    def check(blob: bytes, kind: str) -> None:
        keys = {"k1": items_key}
        outcome("item blob", lambda: decrypt_item(keys, ITEM_ID, kind, "k1", blob))

    check()


def test_wrapped_items_keys(budget: Budget, items_key: ItemsKey) -> None:
    master = SymmetricKey(bytes(32))
    sealed = wrap_items_key(master, items_key)
    valid = json.loads(sealed)

    @budget.settings(fast=50, soak=5000)
    @given(
        blob=st.one_of(flips(sealed), near(valid).map(lambda d: json.dumps(d).encode())),
        wrap=st.sampled_from(["master", "master:2", "master:02", "x", "master:99999"]),
    )
    def check(blob: bytes, wrap: str) -> None:
        outcome("items key", lambda: unwrap_items_key(master, "k1", blob, wrap))

    check()


def test_server_kdf_parameters(budget: Budget) -> None:
    valid = account.kdf_to_wire(crypto.INSECURE_TEST_PARAMS, b"s" * 16)

    @budget.settings(fast=50, soak=5000)
    @given(doc=near(valid))
    def check(doc: Any) -> None:
        outcome("server kdf", lambda: account.kdf_from_wire(doc))

    check()


def test_control_record(budget: Budget) -> None:
    valid = ControlRecord("https://s.test", "u", "tok").to_json()

    @budget.settings(fast=50, soak=5000)
    @given(raw=st.one_of(near(json.loads(valid)).map(json.dumps), st.text(max_size=50)))
    def check(raw: str) -> None:
        result = outcome("control record", lambda: ControlRecord.from_json(raw))
        assert result is None or isinstance(result, ControlRecord)

    check()


ORDER = {
    "v": 1,
    "order_id": "00000000-0000-4000-8000-0000000000b1",
    "account_id": "00000000-0000-4000-8000-000000000001",
    "device_id": "00000000-0000-4000-8000-000000000002",
    "action": "lock",
    "issued_at": "2026-01-05T09:00:00.000Z",
}


def test_device_orders(budget: Budget, created: keyslots.CreatedVault) -> None:
    @budget.settings(fast=50, soak=5000)
    @given(order=near(ORDER), signature=st.binary(max_size=80))
    def check(order: Any, signature: bytes) -> None:
        if not isinstance(order, dict):
            return  # the device service refuses a non-object before verifying
        outcome("device order", lambda: remote.verify_order(created.header, order, signature))
        # The two copies of the signed bytes agree on every input, valid or not.
        outcome("device order", lambda: _same_order_bytes(order))

    check()


def _same_order_bytes(order: dict[str, Any]) -> None:
    results = []
    for fn in (protocol.canonical_order, remote.canonical_order):
        try:
            results.append(fn(order))  # type: ignore[arg-type]
        except ValueError:  # their documented refusal
            results.append(None)
    assert results[0] == results[1]


# -- pull pages and push answers, through the real engine ------------------------------------
class HostileTransport:
    """Answers the engine's first pull and first push with fuzzed documents, then as an
    empty server would."""

    def __init__(self, page: Any, answer: Any) -> None:
        self.page, self.answer = page, answer

    def pull(self, cursor: str | None, limit: int) -> Any:
        page, self.page = self.page, None
        if page is not None:
            return page
        return {"items": [], "cursor": cursor or "c0", "more": False}

    def push(self, items: list[protocol.PushItem]) -> Any:
        answer, self.answer = self.answer, None
        if answer is not None:
            return answer
        return {"results": [{"id": i["id"], "status": "ok", "etag": "0" * 64, "seq": 1}
                            for i in items]}  # fmt: skip


MASTER = SymmetricKey(bytes(range(32)))
ITEM = {
    "id": ITEM_ID, "kind": "note", "etag": "e" * 64, "deleted": False, "key_id": "k1",
    "blob": "AAAA", "seq": 1, "size": 3, "modified_at": "2026-01-05T09:00:00.000Z",
}  # fmt: skip


@pytest.fixture(scope="module")
def synced_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultService]:
    svc = VaultService(tmp_path_factory.mktemp("fuzz-sync") / "v", keychain=MemoryKeychain())
    svc.create(PASS)
    svc.sync_store().put({"master_key": bytes(range(32)).hex()})
    svc.add_client("Outbox Client")  # something to push
    yield svc
    svc.lock()


def test_pull_pages_and_push_answers(budget: Budget, synced_vault: VaultService) -> None:
    blob = base64.b64encode(b'{"v":1}').decode()
    page = {"items": [{**ITEM, "blob": blob}, {**ITEM, "kind": "items_key", "key_id": "master"}],
            "cursor": "c1", "more": False}  # fmt: skip
    answer = {"results": [{"id": ITEM_ID, "status": "conflict", "current": ITEM}]}

    @budget.settings(fast=30, soak=2000)
    @given(page=near(page), answer=near(answer))
    def check(page: Any, answer: Any) -> None:
        store = synced_vault.sync_store()
        store.enqueue_all()
        engine = SyncEngine(store, HostileTransport(page, answer), MASTER)  # type: ignore[arg-type]
        outcome("pull page / push answer", engine.sync)

    check()


@pytest.mark.parametrize(
    ("page", "answer"),
    [
        ({"items": []}, None),  # no cursor: KeyError escaped
        ({"items": [5], "cursor": "c", "more": False}, None),  # an item not an object
        ({"items": "", "cursor": "c", "more": False}, None),
        (None, {"results": []}),  # fewer results than pushed: ValueError from zip
        (None, {"results": [{"id": ITEM_ID, "status": "conflict", "current": {"etag": 1}}]}),
        (None, []),
    ],
    ids=["no-cursor", "item-not-object", "items-not-list", "short-answer", "bad-current",
         "answer-not-object"],
)  # fmt: skip
def test_malformed_server_answers_are_api_errors(
    synced_vault: VaultService, page: Any, answer: Any
) -> None:
    """Regression (issue 9): the engine read pages and push answers unchecked."""
    store = synced_vault.sync_store()
    store.enqueue_all()
    engine = SyncEngine(store, HostileTransport(page, answer), MASTER)  # type: ignore[arg-type]
    with pytest.raises(protocol.ApiError, match="malformed"):
        engine.sync()


@pytest.mark.parametrize("signed", [[], "order", 5, {"signature": "AAAA"}])
def test_a_malformed_pending_order_is_refused(signed: Any, tmp_path: Path) -> None:
    """Regression (issue 9): a pending order that is not an object crashed the device
    check with AttributeError."""
    from app.errors import OrderRefusedError
    from app.sync.devices import DeviceService

    class Transport:
        server_time = None

        def pending_order(self, token: str, wait: int) -> Any:
            return signed

    svc = VaultService(tmp_path / "v", keychain=MemoryKeychain())
    svc.create(PASS)
    try:
        with pytest.raises(OrderRefusedError):
            DeviceService(svc)._check(Transport(), "token", 0)  # type: ignore[arg-type]
    finally:
        svc.lock()
