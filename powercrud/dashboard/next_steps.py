"""What a run's page offers next: undo it, apply a check, apply to the rows that passed, edit
again, retry the failed rows. Each is a form posted to the bulk screen of the view the run
came from, which checks everything again (``BulkMixin.process_undo()``/``process_apply()``);
this module only decides which buttons to show, and to whom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch

from powercrud.bulk.request import BulkRequest
from powercrud.jobs.reruns import NOT_PASSED, apply_problem, import_undo_permissions, undo_problem
from powercrud.models import BulkTask, RunRow
from powercrud.views import CRUDView, Role


@dataclass(frozen=True)
class NextSteps:
    """The run page's buttons: each URL is the source view's bulk screen, or empty when not offered."""

    undo_url: str = ""
    apply_url: str = ""
    apply_passed_url: str = ""
    passed: int = 0
    edit_again_url: str = ""


def _screen(view: type[CRUDView], role: Role, request: HttpRequest) -> str:
    """The URL of ``view``'s ``role`` screen when the user may use it, else ""."""
    if role not in view.get_roles():
        return ""
    screen = view(role=role)
    screen.setup(request)
    if not screen.has_role_permission(role):
        return ""
    try:
        return screen.reverse(role)
    except NoReverseMatch:
        return ""


def next_steps(
    task: BulkTask, stored: BulkRequest | None, view: type[CRUDView] | None, request: HttpRequest
) -> NextSteps:
    """What ``task``'s page offers ``request.user`` next (own runs; staff: any)."""
    user: Any = request.user
    if view is None or stored is None or not task.is_finished or not task.row_counts:
        return NextSteps()
    if task.owner_id != user.pk and not user.is_staff:
        return NextSteps()
    if task.kind == BulkTask.Kind.DELETE:
        url = "" if undo_problem(task) else _screen(view, Role.BULK_DELETE, request)
        return NextSteps(undo_url=url)
    if task.kind == BulkTask.Kind.IMPORT:  # undone on the import screen (mixins/importing.py)
        allowed = user.has_perms(import_undo_permissions(task))
        url = "" if task.dry_run or not allowed or undo_problem(task) else _screen(view, Role.IMPORT, request)
        return NextSteps(undo_url=url)
    screen = _screen(view, Role.BULK_EDIT, request)
    if not screen:
        return NextSteps()
    counts = task.row_counts
    passed = task.total - sum(counts.get(outcome, 0) for outcome in NOT_PASSED)
    offers_passed = bool(counts.get(RunRow.Outcome.FAILED)) and passed > 0
    return NextSteps(
        undo_url="" if undo_problem(task) else screen,
        apply_url=""
        if not task.dry_run or offers_passed or apply_problem(task, passed_only=False)
        else screen,
        apply_passed_url=screen if offers_passed and not apply_problem(task, passed_only=True) else "",
        passed=passed,
        edit_again_url=f"{screen}?from_run={task.pk}"
        if task.dry_run or counts.get(RunRow.Outcome.FAILED)
        else "",
    )
