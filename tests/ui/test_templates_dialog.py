"""The templates dialog: add, change, archive and restore a template of one's own;
shipped templates are read-only; errors keep the dialog open."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.ui.controller import AppController
from app.ui.templates_dialog import TemplatesDialog
from app.vault.service import VaultService
from tests.conftest import PASSPHRASE
from tests.ui.helpers import add_client, create_vault, new_note


def select(dialog: TemplatesDialog, name: str) -> None:
    for row in range(dialog.list.count()):
        template = dialog.template_at(row)
        if template is not None and template.name == name:
            dialog.list.setCurrentRow(row)
            return
    raise AssertionError(f"{name} not listed")


def test_add_edit_archive_restore(qtbot: QtBot, service: VaultService) -> None:
    dialog = TemplatesDialog(service)
    qtbot.addWidget(dialog)
    shipped = dialog.template_at(0)
    assert shipped is not None and not shipped.custom
    dialog.list.setCurrentRow(0)
    assert not dialog.save_button.isEnabled() and not dialog.name.isEnabled()

    dialog.start_new()
    dialog.name.setText("Group session")
    dialog.kind.setCurrentIndex(dialog.kind.findData("progress"))
    dialog.sections.setPlainText("Members present\n\n  Themes  \nPlan\n")
    dialog.save()
    (mine,) = [t for t in service.templates() if t.custom]
    assert (mine.name, mine.sections) == ("Group session", ("Members present", "Themes", "Plan"))

    select(dialog, "Group session")
    dialog.sections.setPlainText("Members present\nPlan")
    dialog.save()
    assert service.template(mine.id).sections == ("Members present", "Plan")

    dialog.toggle_archived()
    assert service.templates(include_archived=True)[-1].archived
    assert all(t.id != mine.id for t in service.templates())
    select(dialog, "Group session")
    assert dialog.archive_button.text() == "&Restore"
    dialog.toggle_archived()
    assert any(t.id == mine.id for t in service.templates())


def test_an_error_is_shown_and_nothing_saved(qtbot: QtBot, service: VaultService) -> None:
    dialog = TemplatesDialog(service)
    qtbot.addWidget(dialog)
    dialog.start_new()
    dialog.name.setText("No sections")
    dialog.save()
    assert "section" in dialog.error.text()
    assert not [t for t in service.templates() if t.custom]


def test_a_new_template_is_offered_for_new_notes(qtbot: QtBot, controller: AppController) -> None:
    create_vault(controller, qtbot, PASSPHRASE)
    window = controller.main_window
    assert window is not None
    add_client(window, qtbot, "Robin Templateson")
    dialog = window.show_templates()
    dialog.start_new()
    dialog.name.setText("Walk and talk")
    dialog.sections.setPlainText("Route\nThemes")
    dialog.save()
    dialog.close()
    (mine,) = [t for t in window._service.templates() if t.custom]
    new_note(window, qtbot, mine.id)
    assert window.editor.body.toPlainText().startswith("## Route")
