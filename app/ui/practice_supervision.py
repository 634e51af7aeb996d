"""Supervision (Practice ▸ Supervision…, supervisors and the owner): the notes of other
clinicians this member may read (``PracticeService.records``: titles only), one opened
read-only (``record``: an audited read), its co-signatures with whether each still
matches the note (✓/✗), and *Co-sign* for supervisors (``cosign``).

Invariants:
- a note is read only when the user opens it (Open, Enter or a double click), never on a
  mere selection, so the audit trail records what a person actually read;
- the note text is shown in a read-only ``SecureTextView`` (copies concealed and cleared)
  and lives nowhere else; the window title never names a client; the text and the list
  are dropped at close and at lock;
- a co-signature is queued in the vault and the app syncs at once.
"""

from __future__ import annotations

from typing import Any

from app.ui.practice_common import (
    PracticeContext,
    PracticeTableDialog,
    text,
    when,
    wrapped_label,
)
from app.ui.qt import QLabel, QPushButton, QSplitter, Qt, QVBoxLayout, QWidget
from app.ui.widgets import SecureTextView, named

COLUMNS = ("Date", "Client", "Clinician", "Title", "Co-signed")


def describe_cosign(cosign: dict[str, Any]) -> str:
    """One co-signature: ✓ when it still matches the note, ✗ when the note changed."""
    mark = "✓" if cosign.get("matches") else "✗"
    state = (
        "matches the note" if cosign.get("matches") else "does not match the note (changed since)"
    )
    return (f"{mark} Co-signed by {text(cosign.get('supervisor'))} on "
            f"{when(cosign.get('at'))} UTC — {state}")  # fmt: skip


class SupervisionDialog(PracticeTableDialog):
    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Supervision", "practiceSupervisionDialog", parent)
        self.note: dict[str, Any] | None = None
        intro = wrapped_label("Notes of the clinicians you supervise (or, as the owner, of "
                              "every clinician). Opening a note is recorded in the practice "
                              "audit.", self)  # fmt: skip
        self.add_table(COLUMNS, "Notes you may read")
        self.table.cellDoubleClicked.connect(lambda _r, _c: self.open_selected())
        self.table.activated.connect(lambda _i: self.open_selected())
        self.open_button = named(QPushButton("Open note", self), "Open the note",
                                 "Read the note (recorded in the audit)")  # fmt: skip
        self.open_button.clicked.connect(self.open_selected)
        self.heading = QLabel(self)
        self.heading.setObjectName("paneTitle")
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        self.heading.setWordWrap(True)
        self.view = named(SecureTextView(ctx.clipboard, self), "Note text")
        self.view.setPlaceholderText("Choose a note and open it.")
        self.cosigns = QLabel(self)
        self.cosigns.setTextFormat(Qt.TextFormat.PlainText)
        self.cosigns.setWordWrap(True)
        self.cosigns.setAccessibleName("Co-signatures")
        self.cosign_button = named(
            QPushButton("Co-sign", self), "Co-sign the note",
            "Sign that you reviewed this note as its supervisor",
        )  # fmt: skip
        self.cosign_button.clicked.connect(self.cosign)
        self.cosign_button.setVisible(ctx.role == "supervisor")
        self.add_refresh_close()

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.open_button)
        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.heading)
        right_layout.addWidget(self.view, 1)
        right_layout.addWidget(self.cosigns)
        right_layout.addWidget(self.cosign_button)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([560, 480])
        self.lay_out(intro, splitter, ())
        self.start(1040, 560)

    def busy_changed(self, busy: bool) -> None:
        self.open_button.setEnabled(not busy and self.selected() is not None)
        self.cosign_button.setEnabled(not busy and self.note is not None)
        self.refresh_button.setEnabled(not busy)

    # -- the list ----------------------------------------------------------------------------
    def _load(self, *, clear: bool) -> None:
        self.run(lambda p: p.records(), self._show, "Reading the notes…", clear=clear)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.show_rows(rows, lambda r: (
            text(r.get("session_date")), text(r.get("client")), text(r.get("clinician")),
            text(r.get("title")), ", ".join(str(s) for s in r.get("cosigned_by") or [] if s) or "—",
        ))  # fmt: skip

    def select(self, note_id: str) -> bool:
        return self.select_where("note_id", note_id)

    # -- one note ----------------------------------------------------------------------------
    def open_selected(self) -> None:
        """Read the chosen note in full (``record``: audited in this vault)."""
        row = self.selected()
        if row is None or self.is_busy:
            return
        note_id, client = str(row.get("note_id")), row.get("client")  # the note has an id only
        self.run(lambda p: {"client": client, **p.record(note_id)}, self._show_note,
                 "Opening the note…")  # fmt: skip

    def _show_note(self, note: dict[str, Any]) -> None:
        self.note = note
        self.heading.setText(" · ".join(text(v) for v in (
            note.get("title"), note.get("client"), note.get("session_date"), note.get("clinician"),
        )) + (" · signed" if note.get("signed_at") else ""))  # fmt: skip
        self.view.setPlainText(str(note.get("body") or ""))
        cosigns = list(note.get("cosignatures") or [])
        self.cosigns.setText("\n".join(describe_cosign(c) for c in cosigns)
                             or "Not co-signed yet.")  # fmt: skip
        self.busy_changed(self.is_busy)

    def cosign(self) -> None:
        note = self.note
        if note is None or self.is_busy:
            return
        note_id = str(note.get("note_id"))
        self.run(lambda p: p.cosign(note_id), self._cosigned, "Co-signing…")

    def _cosigned(self, _info: dict[str, Any]) -> None:
        self.saved("Co-signed; it goes out with this sync and shows here once synced.")

    def wipe(self) -> None:
        self.note = None
        self.view.clear()
        super().wipe()
