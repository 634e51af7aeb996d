"""``MainWindow``: clients, a client's notes, the note editor, and search.

Layout: client list | notes of the selected client — the record, and psychotherapy notes
in their own section (``NotesPane``) — or search results while searching | editor.
Every action is in a menu (File — with Import notes… and Verify a backup… —, Edit, Note,
Client, View), most with a shortcut
(Ctrl+N new note, Ctrl+F search, Ctrl+S save, Ctrl+L lock, Ctrl+1/2/3 focus the three
panes, Ctrl+Shift+A the audit trail), so the whole window works from the keyboard. Sign
& lock, addenda and signature checks are ``SigningFlow``'s; the audit trail is
``AuditWindow``; the Practice menu and its windows are ``PracticeMenu``'s.

Invariants:
- the window title is always "Tacit" — never a client name or a note title;
- a new ``MainWindow`` is built at every unlock and destroyed at every lock; ``wipe()``
  empties every model and text widget (dialogs and the audit window are children, so
  they go too) before it is closed, so no client data outlives the lock even until
  deferred deletion;
- record work goes through the service; the window only displays and dispatches.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import TacitError
from app.ui.account_dialog import AccountDialog
from app.ui.audit_viewer import AuditWindow
from app.ui.backups import BackupBanner, BackupDriver
from app.ui.clientpane import ClientPane
from app.ui.clipboard import ClipboardGuard
from app.ui.conflicts_dialog import ConflictsDialog
from app.ui.devices_dialog import DevicesDialog
from app.ui.dialogs import ClientDialog, ClientFields, NewNoteDialog
from app.ui.editor import NoteEditor
from app.ui.history import HistoryDialog
from app.ui.import_dialog import ImportDialog
from app.ui.models import icon
from app.ui.notespane import NotesPane
from app.ui.ops import OpRunner
from app.ui.practice_menu import PracticeMenu
from app.ui.qt import (
    QAbstractItemView,
    QAction,
    QCloseEvent,
    QDate,
    QEvent,
    QHBoxLayout,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMessageBox,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    Qt,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.ui.search import HtmlDelegate, SearchController, SearchModel
from app.ui.signing import SigningFlow
from app.ui.syncing import SyncDriver, SyncStatus
from app.ui.templates_dialog import TemplatesDialog
from app.ui.verify_backup_dialog import VerifyBackupDialog
from app.ui.widgets import BusyBar, named, wipe_widgets
from app.vault.models import LockReason, RecordChanged, Template
from app.vault.service import VaultService

PAGE_NOTES, PAGE_SEARCH = 0, 1


class _SearchField(QLineEdit):
    """Up/Down move through the results, Escape clears, Enter opens (returnPressed)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.text():
            self._window.move_search_selection(1 if key == Qt.Key.Key_Down else -1)
            return
        if key == Qt.Key.Key_Escape and self.text():
            self.clear()
            return
        super().keyPressEvent(event)


class MainWindow(QMainWindow):
    lock_requested = Signal(object)  # LockReason
    settings_requested = Signal()
    quit_requested = Signal()
    minimized = Signal()

    def __init__(
        self,
        service: VaultService,
        runner: OpRunner,
        clipboard: ClipboardGuard,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._service = service
        self._runner = runner
        self._clipboard = clipboard
        self.audit_window: AuditWindow | None = None
        self.sync: SyncDriver | None = None  # attached after unlock (attach_sync)
        self.account_dialog: AccountDialog | None = None
        self.devices_dialog: DevicesDialog | None = None
        self.conflicts_dialog: ConflictsDialog | None = None
        self.import_dialog: ImportDialog | None = None
        self.verify_dialog: VerifyBackupDialog | None = None
        self._tearing_down = False
        self._open_when_ready = False
        self.setWindowTitle("Tacit")
        self.setObjectName("mainWindow")
        icon_ = icon("tacit")
        if not icon_.isNull():
            self.setWindowIcon(icon_)

        self.client_pane = ClientPane(service, self)
        self.notes = NotesPane(service, runner, self)
        self.notes_model = self.notes.record_model  # the record list (not process notes)
        self.notes_view = self.notes.record_view
        self.search_model = SearchModel(self)
        self.search_view = named(QListView(self), "Search results")
        self.search_view.setModel(self.search_model)
        self.search_view.setItemDelegate(HtmlDelegate(self.search_view))
        self.search_view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.search_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.search_view.setWordWrap(True)
        self.search_busy = BusyBar(self)
        self.search_status = QLabel(self)
        self.search_status.setObjectName("hint")
        self.search = SearchController(service, runner, self.search_model, self.search_busy)
        # The database serialises access: an autosave waits while any background
        # operation (search, process-note scan, audit read, verify, sign) holds it.
        self.editor = NoteEditor(service, clipboard, self, vault_busy=lambda: runner.active > 0)
        self.signing = SigningFlow(service, runner, self.editor, clipboard, self,
                                   self.show_status)  # fmt: skip
        self.search_field = named(_SearchField(self), "Search all notes", "Search (Ctrl+F)")
        self.search_field.setObjectName("searchField")
        self.search_field.setPlaceholderText("Search all notes  (Ctrl+F)")
        self.search_field.setClearButtonEnabled(True)

        self.center = QStackedWidget(self)
        self.center.addWidget(self.notes)
        self.center.addWidget(self._search_page())
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.client_pane)
        splitter.addWidget(self.center)
        splitter.addWidget(self.editor)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 4)
        splitter.setStretchFactor(2, 5)
        splitter.setSizes([220, 560, 500])
        splitter.setChildrenCollapsible(False)
        body = QWidget(self)
        self.backup_banner = BackupBanner(body)  # shown when backups need attention
        self.backup_banner.settings_requested.connect(self.settings_requested)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.addWidget(self.backup_banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(body)
        self.sync_label = named(QLabel("Sync is off", self), "Sync status")
        self.sync_label.setObjectName("syncStatus")
        self.sync_label.setTextFormat(Qt.TextFormat.PlainText)
        self.conflicts_button = named(
            QToolButton(self), "Sync conflicts", "Notes edited on two devices at once"
        )
        self.conflicts_button.setObjectName("conflictsBadge")
        self.conflicts_button.setAutoRaise(True)
        self.conflicts_button.hide()
        self.idle_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.conflicts_button)
        self.statusBar().addPermanentWidget(self.sync_label)
        self.statusBar().addPermanentWidget(self.backup_banner.status_label)
        self.statusBar().addPermanentWidget(self.backup_banner.progress)  # while backing up
        self.statusBar().addPermanentWidget(self.idle_label)

        self._build_actions()
        self._connect()
        self.resize(1240, 760)

    # -- construction ------------------------------------------------------------------
    def _search_page(self) -> QWidget:
        page = QWidget(self)
        title = QLabel("Search results", page)
        title.setObjectName("paneTitle")
        row = QHBoxLayout()
        row.addWidget(title)
        row.addStretch(1)
        row.addWidget(self.search_status)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.search_busy)
        layout.addWidget(self.search_view, 1)
        return page

    def _action(self, text: str, shortcut: str | None, slot: Callable[[], object]) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work wherever the focus is in the window
        return action

    def _build_actions(self) -> None:
        self.new_note_action = self._action("&New note…", "Ctrl+N", self.new_note)
        self.save_action = self._action("&Save", "Ctrl+S", self.save_now)
        self.lock_action = self._action(
            "&Lock", "Ctrl+L", lambda: self.lock_requested.emit(LockReason.USER)
        )
        self.quit_action = self._action("&Quit", "Ctrl+Q", lambda: self.quit_requested.emit())
        self.find_action = self._action("&Find in all notes", "Ctrl+F", self.focus_search)
        self.settings_action = self._action(
            "Se&ttings…", "Ctrl+,", lambda: self.settings_requested.emit()
        )
        self.history_action = self._action("Revision &history…", "Ctrl+H", self.show_history)
        self.sign_action = self._action("&Sign and lock…", None, self.signing.sign)
        self.addendum_action = self._action("Add &addendum…", None, self.signing.add_addendum)
        self.verify_action = self._action("&Verify signature", None, self.signing.verify)
        self.audit_action = self._action("&Audit trail…", "Ctrl+Shift+A", self.show_audit)
        self.add_client_action = self._action("&Add client…", "Ctrl+Shift+N", self.add_client)
        self.edit_client_action = self._action("&Edit client…", None, self.edit_client)
        self.discharge_action = self._action("&Discharge client…", None, self.discharge_client)
        self.account_action = self._action("Sync &account…", None, self.show_account)
        self.sync_now_action = self._action("Sync &now", None, self.sync_now)
        self.devices_action = self._action("&Devices…", None, self.show_devices)
        self.conflicts_action = self._action("Sync &conflicts…", None, self.show_conflicts)
        self.templates_action = self._action("Note &templates…", None, self.show_templates)
        self.import_action = self._action("&Import notes…", None, self.show_import)
        self.verify_backup_action = self._action("&Verify a backup…", None, self.show_verify)
        focus = [
            self._action("Go to &clients", "Ctrl+1", self.client_pane.filter.setFocus),
            self._action("Go to &notes", "Ctrl+2", self.notes_view.setFocus),
            self._action("Go to &editor", "Ctrl+3", self.editor.body.setFocus),
        ]
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for action in (self.new_note_action, self.save_action, self.lock_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(self.import_action)
        file_menu.addAction(self.verify_backup_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menus.addMenu("&Edit")
        edit_menu.addAction(self.find_action)
        edit_menu.addAction(self.history_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.settings_action)
        note_menu = menus.addMenu("&Note")
        for action in (self.history_action, self.sign_action, self.addendum_action,
                       self.verify_action):  # fmt: skip
            note_menu.addAction(action)
        note_menu.addSeparator()
        note_menu.addAction(self.templates_action)
        client_menu = menus.addMenu("&Client")
        for action in (self.add_client_action, self.edit_client_action, self.discharge_action):
            client_menu.addAction(action)
        view_menu = menus.addMenu("&View")
        for action in focus:
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.audit_action)
        account_menu = menus.addMenu("&Account")
        for action in (self.account_action, self.sync_now_action, self.conflicts_action,
                       self.devices_action):  # fmt: skip
            account_menu.addAction(action)
        self.practice = PracticeMenu(self, self._clipboard, self.show_status)  # practice_menu.py
        menus.addMenu(self.practice.menu)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.new_note_action)
        spacer = QWidget(toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        toolbar.addWidget(self.search_field)
        toolbar.addAction(self.settings_action)
        toolbar.addAction(self.lock_action)
        for action in (self.new_note_action, self.settings_action, self.lock_action):
            button = toolbar.widgetForAction(action)
            if button is not None:
                named(button, action.text().replace("&", "").rstrip("…"))

    def _connect(self) -> None:
        self.client_pane.client_selected.connect(self._client_changed)
        self.client_pane.add_requested.connect(self.add_client)
        self.client_pane.edit_requested.connect(self.edit_client)
        self.client_pane.discharge_requested.connect(self.discharge_client)
        self.notes.note_chosen.connect(self._note_chosen)
        self.notes.note_activated.connect(self.editor.body.setFocus)
        self.search_field.textChanged.connect(self._search_text_changed)
        self.search_field.returnPressed.connect(self.open_selected_result)
        self.search_view.activated.connect(lambda i: self.open_search_result(i.row()))
        self.search.results_ready.connect(self._search_results)
        self.search.failed.connect(self.search_status.setText)
        self.editor.history_requested.connect(lambda _id: self.show_history())
        self.editor.sign_requested.connect(self.signing.sign)
        self.editor.addendum_requested.connect(self.signing.add_addendum)
        self.editor.verify_requested.connect(self.signing.verify)
        self.editor.state_changed.connect(self._update_note_actions)
        self.conflicts_button.clicked.connect(self.show_conflicts)
        self._update_note_actions()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Load the client list and open the first client (after unlock)."""
        self.client_pane.reload(audit=True)
        self.client_pane.select_first()

    def set_idle_minutes(self, minutes: int) -> None:
        self.idle_label.setText(f"Locks after {minutes} min without activity")

    def show_status(self, text: str, msecs: int = 5000) -> None:
        self.statusBar().showMessage(text, msecs)

    def flush(self) -> bool:
        """Save every unsaved edit (before lock or quit)."""
        return self.editor.flush()

    def wipe(self) -> None:
        """Drop every cached record and clear every text widget (lock)."""
        self._tearing_down = True
        self.search.reset()
        self.editor.wipe_all()
        self.search_model.clear()
        self.notes.clear()
        self.client_pane.clear()
        audit, self.audit_window = self.audit_window, None
        if audit is not None:
            audit.wipe()
        self.practice.wipe()
        for dialog in (self.account_dialog, self.conflicts_dialog, self.devices_dialog):
            if dialog is not None:
                dialog.wipe()
        self.account_dialog = self.conflicts_dialog = self.devices_dialog = None
        for window in (self.import_dialog, self.verify_dialog):
            if window is not None:
                window.close()  # drops its texts and any result in flight
        self.import_dialog = self.verify_dialog = None
        for child in self.findChildren(QWidget):
            if child.isWindow() and child is not self:
                child.close()  # dialogs: history, client, new note, addendum, settings, audit
        wipe_widgets(self)
        self.setWindowTitle("Tacit")

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._tearing_down:
            super().closeEvent(event)
            return
        event.ignore()  # the controller saves, locks and quits
        self.quit_requested.emit()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.WindowStateChange and self.isMinimized():
            self.minimized.emit()

    # -- clients -----------------------------------------------------------------------
    def _client_changed(self, client_id: str | None) -> None:
        if not self.editor.close_note():
            self.show_status("The open note could not be saved; it stays open.")
        self.notes.set_client(client_id, audit=client_id is not None)

    def add_client(self) -> ClientDialog:
        dialog = ClientDialog(self._add_client, None, self)
        dialog.open()
        return dialog

    def _add_client(self, fields: ClientFields) -> None:
        client = self._service.add_client(
            fields.name, dob=fields.dob, email=fields.email, phone=fields.phone
        )
        self.client_pane.reload()
        self.client_pane.select_client(client.id)

    def edit_client(self) -> ClientDialog | None:
        client_id = self.client_pane.current_client_id
        if client_id is None:
            self.show_status("Select a client first.")
            return None
        client = self._service.get_client(client_id, record_view=True)  # all their details

        def save(fields: ClientFields) -> None:
            self._service.update_client(
                client_id, name=fields.name, dob=fields.dob, email=fields.email,
                phone=fields.phone,
            )  # fmt: skip

        dialog = ClientDialog(save, client, self)
        dialog.open()
        return dialog

    def discharge_client(self) -> QMessageBox | None:
        client_id = self.client_pane.current_client_id
        if client_id is None:
            self.show_status("Select a client first.")
            return None
        box = QMessageBox(self)
        box.setWindowTitle("Tacit — Discharge client")
        box.setIcon(QMessageBox.Icon.Question)
        box.setText("Discharge the selected client?")
        box.setInformativeText(
            "Their notes are kept. Discharged clients are listed when “Show discharged” is ticked."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def done(result: int) -> None:
            box.deleteLater()
            if result == QMessageBox.StandardButton.Yes:
                try:
                    self._service.discharge_client(client_id)
                except TacitError as exc:
                    self.show_status(exc.message)

        box.finished.connect(done)
        box.open()
        return box

    def on_record_changed(self, event: RecordChanged) -> None:
        """The service changed a record (here or, later, through sync)."""
        if self._tearing_down or not self._service.is_unlocked:
            return
        if event.kind == "client":
            self.client_pane.reload()
            return
        if event.kind != "note":  # e.g. a sync applied many records: re-read the lists
            self.client_pane.reload()
            self.notes.refresh()
            self.notes.select_note(self.editor.note_id)
            self.editor.reload()  # pulled from another device (never over unsaved text)
            return
        try:
            note = self._service.get_note(event.id, record_view=False)  # a refresh
        except TacitError:
            return
        if note.client_id != self.notes.client_id:
            return
        self.notes.on_note_changed(note)
        self.notes.select_note(self.editor.note_id)
        if note.id == self.editor.note_id and note.signed != self.editor.read_only:
            self.editor.reload()  # signed elsewhere (not while the user has unsaved text)

    # -- notes -------------------------------------------------------------------------
    def _note_chosen(self, note_id: str) -> None:
        if not self.editor.open_note(note_id):
            self.show_status("The open note could not be saved; it stays open.")
        self.notes.select_note(self.editor.note_id)

    def _update_note_actions(self) -> None:
        note = self.editor.note
        signed = note is not None and note.signed
        self.sign_action.setEnabled(note is not None and not signed)
        self.addendum_action.setEnabled(signed)
        self.verify_action.setEnabled(signed)
        self.history_action.setEnabled(note is not None)

    def new_note(self) -> NewNoteDialog | None:
        client_id = self.client_pane.current_client_id
        if client_id is None:
            self.show_status("Add or select a client first.")
            return None
        today = self._service.clock.now().astimezone().date()
        dialog = NewNoteDialog(
            self._service.templates(),
            lambda template, date: self._create_note(client_id, template, date),
            QDate(today.year, today.month, today.day),
            self,
        )
        dialog.open()
        return dialog

    def _create_note(self, client_id: str, template: Template, session_date: str) -> None:
        if not self.editor.flush():
            self.show_status("The open note could not be saved; create the new one afterwards.")
            return
        note = self._service.create_note(client_id, template.id, session_date=session_date)
        self.open_note(note.id, client_id)
        body = self.editor.body
        cursor = body.textCursor()
        first_gap = note.body.find("\n\n")
        cursor.setPosition(first_gap + 1 if first_gap >= 0 else len(note.body))
        body.setTextCursor(cursor)
        body.setFocus()

    def open_note(self, note_id: str, client_id: str) -> None:
        if self.client_pane.current_client_id != client_id:
            self.client_pane.select_client(client_id)
        if self.editor.open_note(note_id):
            self.notes.select_note(note_id)

    def save_now(self) -> None:
        if self.editor.note_id is not None and self.editor.save_now():
            self.show_status("Saved.", 2000)

    def show_history(self) -> HistoryDialog | None:
        note_id = self.editor.note_id
        if note_id is None:
            self.show_status("Open a note to see its history.")
            return None
        self.editor.flush()
        dialog = HistoryDialog(self._service.note_history(note_id), self._clipboard, self)
        dialog.show()
        return dialog

    def show_audit(self) -> AuditWindow:
        """The audit trail (one window; a second call brings it forward)."""
        window = self.audit_window
        if window is None:
            window = AuditWindow(self._service, self._runner, self)
            window.destroyed.connect(lambda *_: self._audit_closed(window))
            window.finished.connect(lambda _r: self._audit_closed(window))
            self.audit_window = window
            window.start()
        window.show()
        window.raise_()
        window.activateWindow()
        return window

    def _audit_closed(self, window: AuditWindow) -> None:
        if self.audit_window is window:
            self.audit_window = None

    # -- search ------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search_field.setFocus()
        self.search_field.selectAll()

    def _search_text_changed(self, text: str) -> None:
        self._open_when_ready = False
        if self.editor.dirty:
            self.editor.autosave(wait_if_busy=False)  # so the search sees what was typed
        self.search.set_query(text)
        searching = bool(text.strip())
        self.search_status.setText("" if self.search.searchable(text) else "Keep typing…")
        self.center.setCurrentIndex(PAGE_SEARCH if searching else PAGE_NOTES)

    def _search_results(self, count: int) -> None:
        self.search_status.setText(f"{count} match{'es' * (count != 1)}")
        if count:
            self.search_view.setCurrentIndex(self.search_model.index(0, 0))
        if self._open_when_ready:
            self._open_when_ready = False
            self.open_search_result(0)

    def move_search_selection(self, step: int) -> None:
        count = self.search_model.rowCount()
        if not count:
            return
        row = max(0, min(count - 1, self.search_view.currentIndex().row() + step))
        self.search_view.setCurrentIndex(self.search_model.index(row, 0))

    def open_selected_result(self) -> None:
        if self.search.timer.isActive():
            self._open_when_ready = True  # Enter before the debounce fired: search first
            self.search.run_now()
            return
        row = self.search_view.currentIndex().row()
        self.open_search_result(row if row >= 0 else 0)

    def open_search_result(self, row: int) -> None:
        result = self.search_model.result(row)
        if result is None:
            return
        self.search_field.clear()  # back to the notes list
        self.open_note(result.hit.id, result.hit.client_id)
        self.editor.body.setFocus()

    # -- sync --------------------------------------------------------------------------
    def attach_sync(self, driver: SyncDriver) -> None:
        """Show ``driver``'s status in the status bar (after unlock)."""
        self.sync = driver
        driver.status_changed.connect(self._show_sync_status)
        self.practice.attach(driver)
        self._show_sync_status(driver.status)

    def attach_backups(self, driver: BackupDriver) -> None:
        """Show automatic backups' warnings and status (after unlock)."""
        self.backup_banner.attach(driver)

    def _show_sync_status(self, status: SyncStatus) -> None:
        if self._tearing_down or self.sync is None:
            return
        text = self.sync.text()
        self.sync_label.setText(text)
        self.sync_label.setAccessibleDescription(text)
        count = status.conflicts
        self.conflicts_button.setText(f"⚠ {count} conflict{'s' * (count != 1)}")
        self.conflicts_button.setVisible(count > 0)

    def sync_now(self) -> None:
        if self.sync is None or not self.sync.active:
            return
        if self.editor.dirty:
            self.editor.autosave(wait_if_busy=False)  # so the sync carries what was typed
        self.sync.sync_now()

    def show_account(self) -> AccountDialog | None:
        """Account ▸ Sync account… (one dialog; a second call brings it forward)."""
        if self.sync is None:
            return None
        dialog = self.account_dialog
        if dialog is None:
            dialog = AccountDialog(self.sync, self._clipboard, self)
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.account_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_devices(self) -> DevicesDialog | None:
        """Account ▸ Devices… (one dialog; a second call brings it forward)."""
        if self.sync is None:
            return None
        dialog = self.devices_dialog
        if dialog is None:
            dialog = DevicesDialog(self.sync, self)
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.devices_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_conflicts(self) -> ConflictsDialog:
        dialog = self.conflicts_dialog
        if dialog is None:
            dialog = ConflictsDialog(self._service, self._clipboard, self._conflict_resolved,
                                     self._before_resolving, self)  # fmt: skip
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.conflicts_dialog = dialog
            dialog.open()
        else:
            dialog.reload()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_templates(self) -> TemplatesDialog:
        """The clinician's own templates; the new-note dialog offers them next time."""
        dialog = TemplatesDialog(self._service, self)
        dialog.open()
        return dialog

    def show_import(self) -> ImportDialog:
        """File ▸ Import notes… (one dialog; a second call brings it forward)."""
        dialog = self.import_dialog
        if dialog is None:
            dialog = ImportDialog(self._service, self)
            dialog.imported.connect(lambda _report: self.client_pane.reload())
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.import_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_verify(self) -> VerifyBackupDialog:
        """File ▸ Verify a backup… (one dialog; a second call brings it forward)."""
        dialog = self.verify_dialog
        if dialog is None:
            dialog = VerifyBackupDialog(self)
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.verify_dialog = dialog
            dialog.open()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _dialog_closed(self, dialog: object) -> None:
        if self.import_dialog is dialog:
            self.import_dialog = None
        if self.verify_dialog is dialog:
            self.verify_dialog = None
        if self.account_dialog is dialog:
            self.account_dialog = None
        if self.devices_dialog is dialog:
            self.devices_dialog = None
        if self.conflicts_dialog is dialog:
            self.conflicts_dialog = None

    def _before_resolving(self, note_id: str) -> bool:
        """The open note's unsaved text is saved before its conflict is resolved."""
        return self.editor.flush() if self.editor.note_id == note_id else True

    def _conflict_resolved(self, note_id: str) -> None:
        if self.editor.note_id == note_id:
            self.editor.reload()
        if self.sync is not None:
            try:
                self.sync.set_conflicts(len(self._service.conflicts()))
            except TacitError:
                return
