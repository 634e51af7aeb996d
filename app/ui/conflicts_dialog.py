"""``ConflictsDialog``: open sync conflicts, and resolving one.

A conflict is a note two devices edited at once (unsigned, both offline or between
syncs): sync kept the newer edit as the current text and the other as a revision flagged
*conflict* (app/sync/merge.py), so no word is lost. The list shows, per conflict, the
client, the conflicting version's title, when and by whom it was saved — never note
text. Choosing one shows side by side the current text and the conflicting text;
"Highlight the differences" marks how the latter differs (``app.ui.diff``).
"Keep current" leaves the text as it is; "Use this version" makes the conflicting text
the current one (the replaced text stays in the history). Either way the conflict is
resolved in the service (``VaultService.resolve_conflict``, audited) and syncs.

Invariants: a child of the main window (a lock destroys it and wipes it first); both
text views are read-only ``SecureTextView``s showing only HTML built from escaped text;
the title never names a client ("Tacit — Sync conflicts").
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import TacitError
from app.ui.clipboard import ClipboardGuard
from app.ui.diff import diff_html, text_html
from app.ui.history import LEGEND
from app.ui.qt import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
)
from app.ui.widgets import MessageLabel, SecureTextView, named, wipe_widgets
from app.vault.models import Conflict
from app.vault.service import VaultService

KEEP_CURRENT, KEEP_CONFLICT = "current", "conflict"


def conflict_label(conflict: Conflict, client_name: str) -> str:
    when = conflict.saved_at.replace("T", " ")[:16]
    return f"{client_name} — {conflict.title} — {when} UTC — {conflict.author}"


class ConflictsDialog(QDialog):
    def __init__(
        self,
        service: VaultService,
        clipboard: ClipboardGuard,
        on_resolved: Callable[[str], None],
        prepare: Callable[[str], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``prepare(note_id)`` runs before a resolution (the main window saves the
        open note); False cancels. ``on_resolved(note_id)`` runs after."""
        super().__init__(parent)
        self._service = service
        self._on_resolved = on_resolved
        self._prepare = prepare
        self._conflicts: list[Conflict] = []
        self._names: dict[str, str] = {}
        self.setWindowTitle("Tacit — Sync conflicts")
        self.setObjectName("conflictsDialog")
        intro = QLabel(
            "These notes were changed on two devices at once. Both texts were kept. Choose "
            "a conflict, compare the texts, and keep one: the other stays in the note's "
            "revision history.", self,
        )  # fmt: skip
        intro.setWordWrap(True)
        self.list = named(QListWidget(self), "Conflicts", "Notes edited on two devices at once")
        self.current_title = QLabel("Current text", self)
        self.current_title.setObjectName("paneTitle")
        self.conflict_title = QLabel("Conflicting text", self)
        self.conflict_title.setObjectName("paneTitle")
        self.conflict_title.setTextFormat(Qt.TextFormat.PlainText)
        self.current_view = named(SecureTextView(clipboard, self), "Current text")
        self.conflict_view = named(SecureTextView(clipboard, self), "Conflicting text", LEGEND)
        self.show_diff = named(QCheckBox("Highlight the differences", self),
                               "Highlight the differences", LEGEND)  # fmt: skip
        self.show_diff.toggled.connect(lambda _on: self._show())
        self.keep_button = named(
            QPushButton("Keep current", self), "Keep current",
            "Keep the current text; the other stays in the history",
        )  # fmt: skip
        self.use_button = named(QPushButton("Use this version", self), "Use this version",
                                "Make the conflicting text the current one")  # fmt: skip
        self.keep_button.clicked.connect(lambda: self.resolve(KEEP_CURRENT))
        self.use_button.clicked.connect(lambda: self.resolve(KEEP_CONFLICT))
        self.message = MessageLabel(self)
        self.empty = QLabel("No open conflicts.", self)
        self.empty.setObjectName("placeholder")

        left, right = QWidget(self), QWidget(self)
        for pane, title, view in ((left, self.current_title, self.current_view),
                                  (right, self.conflict_title, self.conflict_view)):  # fmt: skip
            column = QVBoxLayout(pane)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(title)
            column.addWidget(view, 1)
        sides = QSplitter(Qt.Orientation.Horizontal, self)
        sides.addWidget(left)
        sides.addWidget(right)
        sides.setChildrenCollapsible(False)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.list)
        split.addWidget(sides)
        split.setSizes([140, 420])
        split.setChildrenCollapsible(False)
        actions = QHBoxLayout()
        actions.addWidget(self.show_diff, 1)
        actions.addWidget(self.keep_button)
        actions.addWidget(self.use_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.empty)
        layout.addWidget(split, 1)
        layout.addLayout(actions)
        layout.addWidget(self.message)
        layout.addWidget(buttons)
        self.list.currentRowChanged.connect(lambda _row: self._show())
        self.finished.connect(self._forget)
        self.resize(900, 640)
        self.reload()

    # -- list --------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            self._conflicts = self._service.conflicts()
        except TacitError as exc:
            self._conflicts = []
            self.message.show_message(exc.message)
        self.list.blockSignals(True)
        self.list.clear()
        for conflict in self._conflicts:
            item = QListWidgetItem(conflict_label(conflict, self._client_name(conflict)))
            item.setData(Qt.ItemDataRole.UserRole, conflict.note_id)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.empty.setVisible(not self._conflicts)
        if self._conflicts:
            self.list.setCurrentRow(0)
        self._show()

    def _client_name(self, conflict: Conflict) -> str:
        name = self._names.get(conflict.client_id)
        if name is None:
            try:
                name = self._service.get_client(conflict.client_id).name
            except TacitError:
                name = "(unknown client)"
            self._names[conflict.client_id] = name
        return name

    @property
    def count(self) -> int:
        return len(self._conflicts)

    @property
    def current(self) -> Conflict | None:
        row = self.list.currentRow()
        return self._conflicts[row] if 0 <= row < len(self._conflicts) else None

    # -- one conflict ------------------------------------------------------------------
    def _show(self) -> None:
        conflict = self.current
        self.keep_button.setEnabled(conflict is not None)
        self.use_button.setEnabled(conflict is not None)
        if conflict is None:
            self.current_view.clear()
            self.conflict_view.clear()
            self.conflict_title.setText("Conflicting text")
            return
        try:
            note = self._service.get_note(conflict.note_id)  # a person looks at it: audited
            history = self._service.note_history(conflict.note_id, record_view=False)
        except TacitError as exc:
            self.message.show_message(exc.message)
            return
        other = next((r for r in history if r.revision == conflict.revision), None)
        if other is None:
            self.message.show_message("That version is no longer in the note's history.")
            return
        self.message.clear_message()
        when = other.saved_at.replace("T", " ")[:16]
        self.conflict_title.setText(f"Conflicting text — saved {when} UTC by {other.author}")
        self.current_view.setHtml(_titled(note.title, text_html(note.body)))
        if self.show_diff.isChecked():  # how the conflicting text differs from the current
            body, _stats = diff_html(note.body, other.body)
            title, _stats = diff_html(note.title, other.title)
            self.conflict_view.setHtml(f"<p><b>{title}</b></p><hr/>{body}")
        else:
            self.conflict_view.setHtml(_titled(other.title, text_html(other.body)))
        self.use_button.setEnabled(not note.signed)  # a signed note keeps its text

    def resolve(self, keep: str) -> bool:
        """Resolve the chosen conflict; True when it was resolved."""
        conflict = self.current
        if conflict is None:
            return False
        if self._prepare is not None and not self._prepare(conflict.note_id):
            self.message.show_message("The open note could not be saved; nothing changed.")
            return False
        try:
            self._service.resolve_conflict(conflict.note_id, conflict.revision, keep=keep)
        except TacitError as exc:
            self.message.show_message(exc.message)
            return False
        self._on_resolved(conflict.note_id)
        self.reload()
        self.message.show_message(
            "Kept the current text." if keep == KEEP_CURRENT
            else "The conflicting text is now the current text.", "notice",
        )  # fmt: skip
        return True

    def _forget(self, _result: int = 0) -> None:
        self.wipe()
        self.deleteLater()

    def wipe(self) -> None:
        self._conflicts = []
        self._names = {}
        self.list.blockSignals(True)
        wipe_widgets(self)


def _titled(title: str, body_html: str) -> str:
    return f"<p><b>{text_html(title)}</b></p><hr/>{body_html}"
