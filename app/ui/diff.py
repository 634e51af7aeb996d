"""Readable differences between two versions of a note's text, as HTML for the history.

Lines are matched first (``difflib.SequenceMatcher``), then words inside each changed
block, so a changed word is highlighted rather than its whole paragraph. A block that was
mostly rewritten is shown as removed then added, and runs of spaces or punctuation left
"unchanged" between changes are folded into them, so the diff never interleaves two
unrelated texts word by word. Inserted text is underlined on green, deleted text struck
through on red (colour is never the only cue); a removed line break shows as ¶.

Invariants:
- every piece of note text is HTML-escaped before it is wrapped in markup, so a note can
  never inject markup (a note containing ``<b>x</b>`` shows those characters);
- pure Python, no Qt: the history dialog renders the result in a read-only view.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

# Above this many token pairs a changed block is shown as deleted + inserted whole: word
# matching is quadratic in the worst case and a block that big was rewritten anyway.
MAX_WORD_DIFF_CELLS = 4_000_000
# Below this similarity (difflib's ratio) a changed block counts as rewritten.
MIN_WORD_DIFF_RATIO = 0.4

INSERT_STYLE = "background-color:#c9efd2; color:#0b3d17; text-decoration:underline;"
DELETE_STYLE = "background-color:#f8d3d3; color:#5c0b0b; text-decoration:line-through;"
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_WORD = re.compile(r"\w")
DELETED_LINE_BREAK = "¶"  # a removed line break is otherwise invisible


@dataclass(frozen=True, slots=True)
class DiffStats:
    words_added: int
    words_removed: int

    @property
    def changed(self) -> bool:
        return bool(self.words_added or self.words_removed)

    def summary(self) -> str:
        if not self.changed:
            return "no changes to the words"
        added = f"{self.words_added} word{'s' * (self.words_added != 1)} added"
        removed = f"{self.words_removed} removed"
        return f"{added}, {removed}"


def _words(text: str) -> int:
    return sum(1 for token in _TOKEN.findall(text) if _WORD.match(token))


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.added = 0
        self.removed = 0

    def same(self, text: str) -> None:
        self.parts.append(html.escape(text))

    def insert(self, text: str) -> None:
        if text:
            self.added += _words(text)
            shown = html.escape(text)
            self.parts.append(f'<span class="ins" style="{INSERT_STYLE}">{shown}</span>')

    def delete(self, text: str) -> None:
        if text:
            self.removed += _words(text)
            shown = html.escape(text).replace("\n", DELETED_LINE_BREAK + "\n")
            self.parts.append(f'<span class="del" style="{DELETE_STYLE}">{shown}</span>')

    def html(self) -> str:
        # pre-wrap keeps the note's own spaces and line breaks and still wraps long lines.
        return '<div style="white-space:pre-wrap;">' + "".join(self.parts) + "</div>"


def _word_diff(builder: _Builder, old: str, new: str) -> None:
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    if len(a) * len(b) > MAX_WORD_DIFF_CELLS:
        builder.delete(old)
        builder.insert(new)
        return
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < MIN_WORD_DIFF_RATIO:
        builder.delete(old)
        builder.insert(new)
        return
    # (unchanged, removed, added) runs; an "unchanged" run of spaces or punctuation
    # between two changes joins them (it only made the matcher interleave the texts).
    runs: list[tuple[str, str, str]] = []
    opcodes = matcher.get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        same = "".join(a[i1:i2]) if tag == "equal" else ""
        inner = 0 < n < len(opcodes) - 1
        if tag == "equal" and not (inner and not _WORD.search(same)):
            runs.append((same, "", ""))
            continue
        removed, added = "".join(a[i1:i2]), "".join(b[j1:j2])
        if runs and not runs[-1][0]:  # extend the change before
            _, before_removed, before_added = runs.pop()
            removed, added = before_removed + removed, before_added + added
        runs.append(("", removed, added))
    for same, removed, added in runs:
        builder.same(same)
        builder.delete(removed)
        builder.insert(added)


def diff_html(old: str, new: str) -> tuple[str, DiffStats]:
    """HTML showing how ``old`` became ``new``, and how many words changed."""
    builder = _Builder()
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            builder.same("".join(a[i1:i2]))
        elif tag == "delete":
            builder.delete("".join(a[i1:i2]))
        elif tag == "insert":
            builder.insert("".join(b[j1:j2]))
        else:
            _word_diff(builder, "".join(a[i1:i2]), "".join(b[j1:j2]))
    return builder.html(), DiffStats(builder.added, builder.removed)


def text_html(text: str) -> str:
    """One version's text, escaped, keeping its spaces and line breaks."""
    return '<div style="white-space:pre-wrap;">' + html.escape(text) + "</div>"
