"""Search as you type across all notes: the results model, its HTML delegate, and the
controller that runs the queries off the UI thread.

Each keystroke restarts a short debounce; the query then runs in the ``OpRunner``'s
worker (the FTS index of a large vault answers in milliseconds, but the UI never waits on
it). Every query carries a generation number: a result that arrives after the text
changed again is dropped, so stale results never overwrite fresh ones.

Invariants:
- snippets are HTML-escaped before the vault's highlight markers (MARK_START/MARK_END)
  become ``<b>`` tags, so note text can never inject markup;
- the search text is never persisted (not in QSettings, not in a history list).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from app.errors import TacitError
from app.ui.models import CLIENT_ID_ROLE, ID_ROLE, PROCESS_KIND, kind_label
from app.ui.ops import BusyIndicator, OpRunner
from app.ui.qt import (
    QAbstractItemView,
    QAbstractListModel,
    QAbstractTextDocumentLayout,
    QModelIndex,
    QObject,
    QPainter,
    QPalette,
    QPersistentModelIndex,
    QSize,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    Qt,
    QTextDocument,
    QTimer,
    Signal,
)
from app.vault.models import MARK_END, MARK_START, SearchHit
from app.vault.service import VaultService

ModelIndex = QModelIndex | QPersistentModelIndex
HTML_ROLE = int(Qt.ItemDataRole.UserRole) + 10
DEBOUNCE_MS = 150
RESULT_LIMIT = 50
# A 1-2 letter prefix matches nearly every note (ranking them all is the slow part of a
# search); a short word is still searchable once complete ("OT " or a quoted "OT").
MIN_PREFIX_CHARS = 3
MIN_WORD_CHARS = 2
_HIT_CSS = "b.hit { background-color: #ffd54f; color: #1a1a1a; }"


@dataclass(frozen=True, slots=True)
class SearchResult:
    hit: SearchHit
    client_name: str


_HEADING = re.compile(r"(?:^|(?<=\s))#{1,6}\s+")


def _readable(snippet: str) -> str:
    """One line, without the "## " of section headings."""
    return " ".join(_HEADING.sub("", snippet).split())


def snippet_html(snippet: str) -> str:
    """Escape the snippet, then turn the vault's markers into highlight tags."""
    escaped = html.escape(_readable(snippet), quote=False)
    return escaped.replace(MARK_START, '<b class="hit">').replace(MARK_END, "</b>")


def snippet_plain(snippet: str) -> str:
    return _readable(snippet.replace(MARK_START, "").replace(MARK_END, ""))


def result_html(result: SearchResult) -> str:
    hit = result.hit
    parts = [html.escape(p) for p in (result.client_name, hit.session_date or "")]
    parts.append(html.escape(kind_label(hit.kind)))
    meta = " · ".join(p for p in parts if p)
    return (
        f"<div><b>{html.escape(hit.title)}</b>"
        f"&nbsp;&nbsp;<span style='color: gray'>{meta}</span></div>"
        f"<div>{snippet_html(hit.snippet)}</div>"
    )


def run_search(service: VaultService, text: str, limit: int) -> list[SearchResult]:
    """The worker's job: ranked hits plus each hit's client name. Each search that runs
    is audited (the number of hits, never the query); debounced keystrokes are not."""
    hits = service.search(text, limit=limit, audit=True)
    names: dict[str, str] = {}
    for hit in hits:
        if hit.client_id not in names:
            names[hit.client_id] = service.get_client(hit.client_id).name
    return [SearchResult(hit, names[hit.client_id]) for hit in hits]


class SearchModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._results: list[SearchResult] = []

    def set_results(self, results: list[SearchResult]) -> None:
        self.beginResetModel()
        self._results = list(results)
        self.endResetModel()

    def clear(self) -> None:
        self.set_results([])

    def result(self, row: int) -> SearchResult | None:
        return self._results[row] if 0 <= row < len(self._results) else None

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._results)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        result = self.result(index.row()) if index.isValid() else None
        if result is None:
            return None
        hit = result.hit
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return (
                f"{hit.title}, {result.client_name}, {hit.session_date or 'no date'}: "
                f"{snippet_plain(hit.snippet)}"
            )
        if role == HTML_ROLE:
            return result_html(result)
        if role == ID_ROLE:
            return hit.id
        if role == CLIENT_ID_ROLE:
            return hit.client_id
        if role == Qt.ItemDataRole.ToolTipRole and hit.kind == PROCESS_KIND:
            return "Psychotherapy (process) note"
        return None


class HtmlDelegate(QStyledItemDelegate):
    """Paints ``HTML_ROLE`` as rich text (the highlighted snippet).

    Laying out rich text is the expensive part, so each row's document is built once per
    (text, width) and reused by ``sizeHint`` and ``paint``; ``forget()`` drops them."""

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self._view = view
        self._cache: dict[tuple[str, int], QTextDocument] = {}
        model = view.model()
        if model is not None:
            model.modelReset.connect(self.forget)

    def forget(self) -> None:
        self._cache.clear()

    def _document(self, option: QStyleOptionViewItem, index: ModelIndex) -> QTextDocument:
        text = str(index.data(HTML_ROLE) or "")
        width = max(160, self._view.viewport().width() - 12)
        key = (text, width)
        document = self._cache.get(key)
        if document is None:
            if len(self._cache) > 4 * RESULT_LIMIT:
                self._cache.clear()
            document = QTextDocument()
            document.setDefaultFont(option.font)
            document.setDefaultStyleSheet(_HIT_CSS)
            document.setHtml(text)
            document.setTextWidth(width)
            self._cache[key] = document
        return document

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: ModelIndex) -> None:
        self.initStyleOption(option, index)
        style = self._view.style()
        text_option = QStyleOptionViewItem(option)
        text_option.text = ""
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, text_option, painter, self._view)
        document = self._document(option, index)
        context = QAbstractTextDocumentLayout.PaintContext()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        context.palette.setColor(QPalette.ColorRole.Text, option.palette.color(role))
        rect = option.rect
        painter.save()
        painter.translate(rect.left() + 6, rect.top() + 4)
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: ModelIndex) -> QSize:
        document = self._document(option, index)
        return QSize(int(document.textWidth()), int(document.size().height()) + 8)


class SearchController(QObject):
    """Debounces the query text, runs it in the worker, drops stale results.

    At most one query is in flight: text typed meanwhile waits and only the latest runs
    when the current one returns, so slow queries never pile up behind each other."""

    results_ready = Signal(int)  # number of results shown
    failed = Signal(str)

    def __init__(
        self,
        service: VaultService,
        runner: OpRunner,
        model: SearchModel,
        busy: BusyIndicator | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._model = model
        self._busy = busy
        self._text = ""
        self.generation = 0
        self.dropped = 0
        self._in_flight = False
        self._rerun = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self.run_now)

    @property
    def in_flight(self) -> bool:
        return self._in_flight

    @staticmethod
    def searchable(text: str) -> bool:
        stripped = text.strip()
        core = stripped.strip('"').strip()
        if len(core) >= MIN_PREFIX_CHARS:
            return True
        complete = text.endswith(" ") or (stripped.endswith('"') and stripped.count('"') == 2)
        return complete and len(core) >= MIN_WORD_CHARS

    def set_query(self, text: str) -> None:
        self._text = text
        self.generation += 1
        if not self.searchable(text):
            self.timer.stop()
            self._model.clear()
            return
        self.timer.start()

    def clear(self) -> None:
        self.set_query("")

    def run_now(self) -> None:
        self.timer.stop()
        text = self._text
        if not self.searchable(text):
            return
        if self._in_flight:
            self._rerun = True
            return
        self._in_flight = True
        generation = self.generation
        service = self._service
        self._runner.run(
            lambda: run_search(service, text, RESULT_LIMIT),
            lambda results: self._deliver(generation, results),
            lambda error: self._failed(generation, error),
            busy=self._busy,
            message="Searching…",
        )

    def _settle(self) -> None:
        self._in_flight = False
        if self._rerun:
            self._rerun = False
            self.run_now()

    def _deliver(self, generation: int, results: list[SearchResult]) -> None:
        if generation != self.generation:
            self.dropped += 1
        else:
            self._model.set_results(results)
            self.results_ready.emit(len(results))
        self._settle()

    def _failed(self, generation: int, error: TacitError) -> None:
        if generation == self.generation:
            self._model.clear()
            self.failed.emit(error.message)
        self._settle()

    def reset(self) -> None:
        """Forget everything (lock): the runner drops in-flight results itself."""
        self._in_flight = self._rerun = False
        self.clear()
