"""Reading other tools' notes into an ``ImportPlan`` (app/vault/importer.py): a folder of
Markdown or text files, and a Standard Notes decrypted backup (JSON).

Pure: this reads the files it is given and touches no vault.

Invariants:
- one bad file or item never stops the others: it is reported as a ``Problem`` and
  skipped. Only input unusable as a whole raises: UsageError (a folder or file that
  cannot be read; notes at the top of the folder with no client), InvalidInputError
  (not JSON, not a Standard Notes backup, an encrypted one). Messages name the path the
  user gave, never anything read from a file;
- nothing leads out of the folder: a link to a file or folder outside it is a problem,
  and a linked folder inside it is skipped (its files are read by their own path);
  files are opened without following a last link and only if regular (no FIFO hangs);
- no note file is read past ``MAX_NOTE_BYTES``, no backup past ``MAX_BACKUP_BYTES``;
- front matter is a small, safe subset of YAML parsed here (``key: value``, quoted
  strings, ``[a, b]`` and ``- item`` lists); nothing in it is evaluated, and keys other
  than ``FRONT_MATTER_KEYS`` are ignored;
- the plan is deterministic: clients by name, their notes by date, title and source.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from app.errors import InvalidInputError, UsageError
from app.vault.importer import ImportPlan, PlannedClient, PlannedNote, Problem
from app.vault.models import NOTE_KINDS
from app.vault.store import MAX_BODY, MAX_NAME, MAX_TAG, MAX_TITLE

MAX_NOTE_BYTES = 5 * 1024 * 1024
MAX_BACKUP_BYTES = 256 * 1024 * 1024
NOTE_SUFFIXES = frozenset({".md", ".markdown", ".txt"})
FRONT_MATTER_KEYS = ("title", "date", "client", "kind", "template", "tags")
DEFAULT_SN_CLIENT = "Imported notes"
UNTITLED = "Untitled note"

_FILE_DATE = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")
_VALUE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.+\-]*Z?)?")
_HEADING = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_KEY = re.compile(r"([A-Za-z_][\w-]*)[ \t]*:(?:[ \t]+(.*))?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

FrontMatter = dict[str, str | list[str]]


class _Skip(Exception):
    """One file or item cannot be imported (``reason``: a key of importer.PROBLEMS)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- shared cleaning -----------------------------------------------------------------------
def _line(text: str, limit: int) -> str:
    """One line of text: control characters become spaces; cut to ``limit``."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit].strip()


def _name(text: str) -> str | None:
    """A client name, or None when it is empty or too long (never cut: two long names
    cut alike would merge two clients)."""
    name = " ".join(_CONTROL.sub(" ", text).split())
    return name if 0 < len(name) <= MAX_NAME else None


def _tags(values: list[str]) -> tuple[str, ...]:
    cleaned = {_line(v, MAX_TAG + 1).lstrip("#").strip() for v in values}
    return tuple(sorted(t for t in cleaned if 0 < len(t) <= MAX_TAG))


def _heading(body: str) -> str:
    match = _HEADING.search(body)
    return _line(match.group(1), MAX_TITLE) if match else ""


def _first_line(body: str) -> str:
    for raw in body.split("\n"):
        line = _line(raw.lstrip("#"), 80)
        if line:
            return line
    return ""


def _body(text: str) -> str:
    """Line ends as ``\\n``; leading and trailing blank lines dropped (so the same
    file read twice, or on another system, compares equal)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


# -- front matter --------------------------------------------------------------------------
def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)  # YAML's double-quoted escapes are JSON's, mostly
        except ValueError:
            return value[1:-1]
        return decoded if isinstance(decoded, str) else value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _flow_list(inner: str) -> list[str]:
    """``a, "b, c", 'd'`` → ["a", "b, c", "d"]."""
    items: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in inner:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [v for v in (_unquote(i) for i in items) if v]


def split_front_matter(text: str) -> tuple[FrontMatter, str]:
    """The front matter's fields we use and the rest of the text (``\\n`` line ends).
    No front matter (or no closing ``---``): no fields and the whole text."""
    if not text.startswith("---\n"):
        return {}, text
    lines = text.split("\n")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), 0)
    if not end:
        return {}, text
    fields: FrontMatter = {}
    items: list[str] | None = None  # the block list being read (``key:`` then ``- x``)
    for line in lines[1:end]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[:1] in (" ", "\t", "-"):
            if items is not None and (stripped == "-" or stripped.startswith("- ")):
                item = _unquote(stripped[1:])
                if item:
                    items.append(item)
            continue  # a nested value of a key we do not use
        items = None
        match = _KEY.fullmatch(line.rstrip())
        if match is None or match.group(1).lower() not in FRONT_MATTER_KEYS:
            continue
        key, value = match.group(1).lower(), (match.group(2) or "").strip()
        if not value:
            items = []
            fields[key] = items
        elif value.startswith("[") and value.endswith("]"):
            fields[key] = _flow_list(value[1:-1])
        else:
            fields[key] = _unquote(value)
    return fields, "\n".join(lines[end + 1 :])


def _one(fields: FrontMatter, key: str) -> str | None:
    value = fields.get(key)
    if isinstance(value, list):
        if value:
            raise _Skip("bad_front_matter")  # a list where one value belongs
        return None
    if value is None:
        return None
    return value.strip() or None


def _date_value(value: str) -> str:
    match = _VALUE_DATE.fullmatch(value.strip())
    try:
        if match is None:
            raise ValueError
        return date.fromisoformat(match.group(1)).isoformat()
    except ValueError:
        raise _Skip("bad_front_matter") from None


def _kind(value: str | None) -> str | None:
    if value is None:
        return None
    kind = value.lower().replace("-", "_").replace(" ", "_")
    if kind not in NOTE_KINDS:
        # Never guessed: a misspelt "psychotherapy" must not land in the releasable record.
        raise _Skip("bad_front_matter")
    return kind


# -- a folder of Markdown or text files ----------------------------------------------------
def _root(folder: Path) -> Path:
    try:
        root = folder.expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise UsageError(f"no folder {folder}") from None
    if not root.is_dir():
        raise UsageError(f"{folder} is not a folder (give the folder that holds the notes)")
    return root


def _walk(root: Path, plan: ImportPlan) -> Iterator[tuple[Path, str]]:
    """(path to read, name relative to the folder) of each note file, in name order."""
    stack = [root]
    while stack:
        here = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            if here == root:
                raise UsageError(f"cannot read the folder {root}") from None
            plan.problems.append(Problem(here.relative_to(root).as_posix(), "unreadable"))
            continue
        folders: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):  # .obsidian, .DS_Store, .git: not notes
                continue
            path = Path(entry.path)
            rel = path.relative_to(root).as_posix()
            try:
                if entry.is_symlink():
                    path = path.resolve()
                    if not path.is_relative_to(root):
                        plan.problems.append(Problem(rel, "outside_folder"))
                        continue
                    if path.is_dir():
                        plan.skipped["linked_folder"] += 1
                        continue
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(path)
                    continue
            except (OSError, RuntimeError):  # a link loop, a vanished entry
                plan.problems.append(Problem(rel, "unreadable"))
                continue
            if Path(entry.name).suffix.lower() not in NOTE_SUFFIXES:
                plan.skipped["unsupported_file"] += 1
                continue
            yield path, rel
        stack.extend(reversed(folders))


def _read_file(path: Path, limit: int) -> tuple[bytes, float]:
    """The bytes and modification time of a regular file, refusing a last link and
    never blocking on a FIFO. Raises _Skip."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError:
        raise _Skip("unreadable") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Skip("not_a_file")
        if info.st_size > limit:
            raise _Skip("too_large")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(limit + 1)
    except OSError:
        raise _Skip("unreadable") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _Skip("too_large")
    return data, info.st_mtime


def _text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Skip("not_utf8")  # UTF-16: say so rather than "binary"
    if b"\x00" in data:
        raise _Skip("binary")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Skip("not_utf8") from None


def markdown_note(text: str, *, file_name: str, mtime: float) -> tuple[PlannedNote, str | None]:
    """One file's note and the client its front matter names (if any). The date comes
    from the front matter, else a YYYY-MM-DD in the file name, else the file's
    modification day; the title from the front matter, else the first ``# heading``,
    else the file name. Raises _Skip."""
    fields, rest = split_front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    body = _body(rest)
    if len(body) > MAX_BODY:
        raise _Skip("too_large")
    stem = Path(file_name).stem
    title = _line(_one(fields, "title") or "", MAX_TITLE) or _heading(body)
    title = title or _line(stem, MAX_TITLE) or UNTITLED
    given, found = _one(fields, "date"), _FILE_DATE.search(stem)
    when: str | None = None
    if given is not None:
        when, source = _date_value(given), "front_matter"
    elif found is not None:
        try:
            when, source = date.fromisoformat(found.group(1)).isoformat(), "file_name"
        except ValueError:  # 2024-13-45 is no date: fall back to the file's
            when = None
    if when is None:
        try:
            when, source = date.fromtimestamp(mtime).isoformat(), "modified"
        except (ValueError, OverflowError, OSError):  # a file time outside years 1..9999
            raise _Skip("bad_time") from None
    raw_tags = fields.get("tags", [])
    tags = _tags(raw_tags if isinstance(raw_tags, list) else raw_tags.split(","))
    note = PlannedNote(
        title=title, body=body, session_date=when, date_from=source, source=file_name,
        kind=_kind(_one(fields, "kind")), template=_one(fields, "template"), tags=tags,
    )  # fmt: skip
    named = _one(fields, "client")
    return note, named


def plan_markdown(folder: Path, *, client: str | None = None) -> ImportPlan:
    """Each sub-folder of ``folder`` is a client (its name the client's), each
    ``.md``/``.markdown``/``.txt`` file under it a note; a file's front matter may name
    another client. Files at the top go to ``client``. Raises UsageError (the folder
    cannot be read; notes at the top and no ``client``; a bad ``client``)."""
    root = _root(folder)
    default = _name(client) if client is not None else None
    if client is not None and default is None:
        raise UsageError("the client name is empty or longer than 200 characters")
    plan = ImportPlan("markdown")
    clients: dict[str, PlannedClient] = {}
    orphans = 0
    for path, rel in _walk(root, plan):
        try:
            data, mtime = _read_file(path, MAX_NOTE_BYTES)
            note, named = markdown_note(_text(data), file_name=rel, mtime=mtime)
        except _Skip as skip:
            plan.problems.append(Problem(rel, skip.reason))
            continue
        top, _, below = rel.partition("/")
        if named is not None:
            name = _name(named)
        elif below:
            name = _name(top)
        elif default is not None:
            name = default
        else:
            orphans += 1
            continue
        if name is None:
            plan.problems.append(Problem(rel, "bad_name"))
            continue
        clients.setdefault(name, PlannedClient(name)).notes.append(note)
    if orphans:
        raise UsageError(
            f"{orphans} note file(s) at the top of {folder} belong to no client: name one "
            "for them (--client NAME), or put each client's files in a folder named for "
            "the client"
        )
    plan.clients = _sorted(clients)
    return plan


def _sorted(clients: dict[str, PlannedClient]) -> list[PlannedClient]:
    ordered = sorted(clients.values(), key=lambda c: (c.name.casefold(), c.name))
    for c in ordered:
        c.notes.sort(key=lambda n: (n.session_date, n.title.casefold(), n.title, n.source))
    return ordered


# -- a Standard Notes decrypted backup -----------------------------------------------------
def _load_backup(path: Path) -> dict[str, Any]:
    try:
        data, _ = _read_file(path.expanduser().resolve(), MAX_BACKUP_BYTES)
    except (_Skip, OSError, RuntimeError) as skip:
        if isinstance(skip, _Skip) and skip.reason == "too_large":
            raise InvalidInputError(f"{path} is larger than 256 MiB", reason="too_large") from None
        if path.is_dir():
            raise UsageError(f"{path} is a folder; give the backup file (.txt or .json)") from None
        if not path.exists():
            raise UsageError(f"no file {path}") from None
        raise UsageError(f"cannot read {path}") from None
    if data.startswith(b"PK\x03\x04"):
        raise InvalidInputError(
            f"{path} is a zip archive: unzip it and import the backup file inside it (.txt)",
            reason="not_standard_notes",
        )
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 JSON", reason="malformed_json") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno})",
            reason="malformed_json",
        ) from None
    except RecursionError:
        raise InvalidInputError(f"{path} is nested too deeply", reason="malformed_json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise InvalidInputError(
            f"{path} is not a Standard Notes backup (it has no list of items)",
            reason="not_standard_notes",
        )
    return doc


def _encrypted(items: list[Any]) -> bool:
    """An encrypted backup keeps each item's content as a string (``004:…``)."""
    return any(
        isinstance(item, dict) and isinstance(item.get("content"), str)
        and (item.get("content_type") in ("Note", "Tag") or "enc_item_key" in item)
        for item in items
    )  # fmt: skip


def _sn_date(item: dict[str, Any]) -> str:
    for key in ("created_at", "updated_at"):
        value = item.get(key)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                # The day it was in this computer's time zone (a session's day, not UTC's).
                return (moment.astimezone() if moment.tzinfo else moment).date().isoformat()
            except (ValueError, OverflowError):  # not a date, or its day is past year 9999
                continue
    raise _Skip("no_date")


def _refs(content: dict[str, Any], content_type: str) -> set[str]:
    refs = content.get("references")
    if not isinstance(refs, list):
        return set()
    return {
        r["uuid"] for r in refs
        if isinstance(r, dict) and r.get("content_type") == content_type
        and isinstance(r.get("uuid"), str)
    }  # fmt: skip


_SUPER_BLOCKS = frozenset({"paragraph", "heading", "listitem", "quote", "code", "table", "row"})
_HEADING_TAGS = frozenset(f"h{n}" for n in range(1, 7))  # Lexical's; anything else is text


def _super_text(text: str) -> str | None:
    """The plain text of a note in Standard Notes' "Super" format (the Lexical editor's
    JSON): headings as ``#`` lines, a line per block. None if it is not that JSON."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("root"), dict):
        return None
    out: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > 200:
            return
        kind = node.get("type")
        tag = node.get("tag")
        if kind == "heading" and isinstance(tag, str) and tag in _HEADING_TAGS:
            out.append("#" * int(node["tag"][1:]) + " ")
        elif kind == "listitem":
            out.append("- ")
        if isinstance(node.get("text"), str):
            out.append(node["text"])
        elif kind == "linebreak":
            out.append("\n")
        children = node.get("children")
        for child in children if isinstance(children, list) else ():
            walk(child, depth + 1)
        if kind in _SUPER_BLOCKS:
            out.append("\n")

    walk(doc["root"], 0)
    return "".join(out)


def _sn_note(item: dict[str, Any], names: list[str]) -> PlannedNote:
    content = item.get("content")
    if not isinstance(content, dict):
        raise _Skip("malformed_item")
    text, title = content.get("text", ""), content.get("title", "")
    if not isinstance(text, str) or not isinstance(title, str):
        raise _Skip("malformed_item")
    if content.get("noteType") == "super":
        text = _super_text(text) or text
    if "\x00" in text:
        raise _Skip("binary")
    body = _body(text)
    if len(body) > MAX_BODY:
        raise _Skip("too_large")
    remark = None
    if len(names) > 1:
        remark = f"has {len(names)} tags; filed under the first by name"
    return PlannedNote(
        title=_line(title, MAX_TITLE) or _first_line(body) or UNTITLED, body=body,
        session_date=_sn_date(item), date_from="created_at",
        source=str(item.get("uuid", "")), tags=_tags(names[1:]), remark=remark,
    )  # fmt: skip


def plan_standardnotes(path: Path, *, client: str | None = None) -> ImportPlan:
    """Each tag is a client; a note with several tags goes to the first by name (the
    others become its tags), an untagged one to ``client`` (default "Imported notes").
    Deleted items, trashed notes and items that are not notes are skipped. Raises
    UsageError (unreadable file, bad ``client``), InvalidInputError (``details["reason"]``:
    malformed_json, not_standard_notes, encrypted_backup, too_large)."""
    default = _name(client if client is not None else DEFAULT_SN_CLIENT)
    if default is None:
        raise UsageError("the client name is empty or longer than 200 characters")
    items: list[Any] = _load_backup(path)["items"]
    if _encrypted(items):
        raise InvalidInputError(
            f"{path} is an encrypted Standard Notes backup, which Tacit cannot open: in "
            "Standard Notes, open Preferences → Backups and download a backup with "
            "'Decrypted' chosen, then import that file",
            reason="encrypted_backup",
        )
    plan = ImportPlan("standardnotes")
    tag_names: dict[str, str] = {}
    note_tags: dict[str, set[str]] = {}
    notes: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"item {i + 1}"
        if isinstance(item, dict) and isinstance(item.get("uuid"), str):
            where = item["uuid"]
        if not isinstance(item, dict):
            plan.problems.append(Problem(where, "malformed_item"))
        elif item.get("deleted") is True:
            plan.skipped["deleted"] += 1
        elif item.get("content_type") == "Note":
            notes.append(item)
        elif item.get("content_type") == "Tag" and isinstance(item.get("content"), dict):
            title = item["content"].get("title")
            name = _name(title) if isinstance(title, str) else None
            if name is None:
                plan.problems.append(Problem(where, "bad_name"))
                continue
            tag_names[where] = name
            for note_id in _refs(item["content"], "Note"):
                note_tags.setdefault(note_id, set()).add(where)
        else:
            plan.skipped["not_a_note"] += 1
    clients: dict[str, PlannedClient] = {}
    for item in notes:
        uuid = str(item.get("uuid", ""))
        content = item.get("content")
        if isinstance(content, dict) and content.get("trashed") is True:
            plan.skipped["trashed"] += 1
            continue
        tag_ids = note_tags.get(uuid, set())
        if isinstance(content, dict):
            tag_ids = tag_ids | _refs(content, "Tag")  # newer apps: the note points at tags
        names = sorted({tag_names[t] for t in tag_ids if t in tag_names},
                       key=lambda n: (n.casefold(), n))  # fmt: skip
        try:
            note = _sn_note(item, names)
        except _Skip as skip:
            plan.problems.append(Problem(uuid or "a note", skip.reason))
            continue
        if len(names) > 1:
            plan.remarks["several_tags"] += 1
        name = names[0] if names else default
        clients.setdefault(name, PlannedClient(name)).notes.append(note)
    plan.clients = _sorted(clients)
    return plan
