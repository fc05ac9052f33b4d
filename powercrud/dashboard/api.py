"""A bulk run as JSON for programs: ``GET <prefix>/tasks/<pk>/run.json``, and its cancel,
``POST <prefix>/tasks/<pk>/cancel.json``.

The run's record (kind, status, mode, check or apply, counts by outcome, progress, reason,
timings, the run it was made from) and one page of its ledger rows (``?outcome=``,
``?page=``, ``PER_PAGE`` rows), with the URLs of its other representations. Every value goes
through the one codec (``bulk.codec.to_json``): decimals as text, times in ISO 8601. Errors are
JSON too (``{"error": ..., "field": ...}``): a bad or repeated parameter 400, a run the user
may not see 404, no sign-in 401. Who is asking is ``jsonapi.api_user()``: the host's token
hook (``API_AUTHENTICATE``), else the session (a session ``POST`` passes Django's CSRF check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.http import JsonResponse

from powercrud.bulk import messages
from powercrud.bulk.codec import to_json
from powercrud.dashboard.runrows import run_rows
from powercrud.jobs.monitor import request_cancel
from powercrud.jsonapi import json_error
from powercrud.models import BulkTask

__all__ = ["BadPage", "cancel_run", "json_error", "run_document"]

ACTIVE = (BulkTask.Status.QUEUED, BulkTask.Status.RUNNING)


class BadPage(ValueError):
    """``?page=`` is not a page of the run's rows; ``message`` says which pages there are."""

    def __init__(self, value: str, pages: int) -> None:
        self.message = f"“{value}” is not a page of this run's rows; pages run from 1 to {max(pages, 1)}."
        super().__init__(self.message)


def _rows(task: BulkTask, outcome: str, page: str, url: str) -> dict[str, Any]:
    paginator = run_rows(task, outcome)
    try:
        found = paginator.page(page or 1)
    except (EmptyPage, PageNotAnInteger):
        if paginator.count == 0 and page in ("", "1"):
            found = None
        else:
            raise BadPage(page, paginator.num_pages) from None

    model = task.model_class
    pk_field: Any = model._meta.pk if model is not None else None

    def key(text: str) -> Any:
        """The row's key as the model has it (an integer stays a number), else the stored text."""
        try:
            return pk_field.to_python(text) if pk_field is not None else text
        except ValidationError:
            return text

    def link(number: int) -> str:
        return f"{url}?outcome={outcome}&page={number}"

    return {
        "outcome": outcome,
        "count": paginator.count,
        "page": found.number if found else 1,
        "pages": paginator.num_pages if paginator.count else 0,
        "next": link(found.next_page_number()) if found and found.has_next() else None,
        "previous": link(found.previous_page_number()) if found and found.has_previous() else None,
        "results": [
            {
                "pk": key(row.object_pk),
                "outcome": row.outcome,
                "old": row.old,
                "new": row.new,
                "errors": row.errors,
            }
            for row in (found.object_list if found else [])
        ],
    }


def run_document(task: BulkTask, *, outcome: str, page: str, urls: Mapping[str, str]) -> dict[str, Any]:
    """``task`` as a JSON document, with one page of its ledger rows (``BadPage`` when ``page``
    is not one)."""
    stored = task.stored_request
    total = task.total or 0
    return to_json(
        {
            "id": task.pk,
            "kind": task.kind,
            "status": task.status,
            "mode": task.mode,
            "check": task.dry_run,
            "model": task.model_label,
            "owner": task.owner.get_username() if task.owner else None,
            "reason": task.reason,
            "message": task.message,
            "total": total,
            "done": task.done,
            "progress": round(task.done / total, 4) if total else None,
            "counts": dict(task.row_counts) if isinstance(task.row_counts, Mapping) else {},
            "created_at": task.created_at,
            "started_at": task.started_at,
            "finished_at": task.finished_at,
            "source": (
                {"action": stored.source_action, "run": stored.source_run}
                if stored and stored.source_run is not None
                else None
            ),
            "fields": _fields(stored),
            "urls": dict(urls),
            "rows": _rows(task, outcome, page, urls["run_json"]),
        }
    )


def cancel_run(task: BulkTask, *, url: str) -> JsonResponse:
    """Cancel ``task`` (``jobs.monitor.request_cancel``): a queued run ends now (200, status
    ``cancelled``); a running one is asked to stop at its next batch and rolls back (202, status
    ``running``, ``cancel_requested``; poll ``url``); a run that has ended is a 409."""
    if task.status not in ACTIVE:
        ended = task.get_status_display().lower()
        return json_error(messages.nothing_to_cancel(task.pk, ended), status=409)
    was = task.status
    try:
        task = request_cancel(task)
    except BulkTask.DoesNotExist:
        return json_error(f"No bulk run #{task.pk} that you may see.", status=404)
    if was == BulkTask.Status.QUEUED and task.status == BulkTask.Status.CANCELLED:
        status, started = 200, False
    elif task.status == BulkTask.Status.RUNNING and task.cancel_requested:
        status, started = 202, True
    else:  # it ended between the read and the cancel
        ended = task.get_status_display().lower()
        return json_error(messages.nothing_to_cancel(task.pk, ended), status=409)
    body = {
        "run": task.pk,
        "url": url,
        "status": task.status,
        "cancel_requested": started,
        "message": messages.cancel_notice(task.pk, task.kind, started=started),
    }
    response = JsonResponse(body, status=status)
    if status == 202:
        response["Location"] = url
    return response


def _fields(stored: Any) -> list[str]:
    """The fields a run writes: an edit's, or the fields an import's columns fill."""
    if stored is None:
        return []
    if stored.operation == "import" and stored.source_action is None:
        return list(stored.import_spec.fields)
    return list(stored.fields_to_update)
