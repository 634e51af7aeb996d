"""The practice audit (Practice ▸ Practice audit…, the owner): who accessed which record
when, merged from the members' synced audit trails (``PracticeService.practice_audit``).

Invariants: entries hold ids, actions and times — never note text or client names (the
members' apps forward no content); the table is read in the sync worker and dropped at
close and at lock; nothing is exported from here.
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
from app.ui.qt import QLabel, QWidget

COLUMNS = ("Time (UTC)", "Member", "Action", "Record type", "Record", "Client")
LIMIT = 1000


class PracticeAuditDialog(PracticeTableDialog):
    keep_message_on_sync = False  # no notices here: a reload after a sync starts afresh

    def __init__(self, ctx: PracticeContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, "Tacit — Practice audit", "practiceAuditDialog", parent)
        intro = wrapped_label(
            "Who accessed which record when, across the practice: each member's app forwards "
            "its own audit entries (ids and times, never content) at its syncs.", self,
        )  # fmt: skip
        self.add_table(COLUMNS, "Practice audit entries", track_selection=False)
        self.count = QLabel(self)
        self.count.setObjectName("hint")
        self.add_refresh_close()
        self.lay_out(intro, self.table, (self.count,))
        self.start(960, 480)

    def busy_changed(self, busy: bool) -> None:
        self.refresh_button.setEnabled(not busy)

    def _load(self, *, clear: bool) -> None:
        self.run(lambda p: p.practice_audit(limit=LIMIT), self._show, "Reading the audit…",
                 clear=clear)  # fmt: skip

    def _show(self, rows: list[dict[str, Any]]) -> None:
        self.show_rows(list(reversed(rows)), lambda e: (  # the service gives the newest last
            when(e.get("at")), text(e.get("member_email") or str(e.get("member") or "")[:8]),
            text(e.get("action")), text(e.get("record_type")),
            str(e.get("record_id") or "")[:8] or "—", str(e.get("client_id") or "")[:8] or "—",
        ))  # fmt: skip
        more = " (the newest first" + (f", at most {LIMIT})" if len(self.rows) >= LIMIT else ")")
        self.count.setText(f"{len(self.rows)} entries{more}")
