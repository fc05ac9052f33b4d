"""How a task reads to a person: model names, durations, row errors, the change in plain words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.text import capfirst

from powercrud.bulk import messages as bulk_messages
from powercrud.bulk.display import FieldChange, describe_request, field_label
from powercrud.bulk.request import BulkRequest
from powercrud.conf import settings as pc_settings
from powercrud.mixins.selection import SelectionMixin
from powercrud.models import BulkTask, RunRow
from powercrud.views import CRUDView, view_named

Status = BulkTask.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)

# ----- display helpers -------------------------------------------------------------------------


def model_display_name(label: str) -> str:
    """``"Books"`` for ``"sample.book"``: the model's plural verbose name, or the label itself."""
    from django.apps import apps

    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return label
    return capfirst(str(model._meta.verbose_name_plural))


def rows_noun(task: BulkTask) -> str:
    """``"book"`` or ``"books"`` for the rows of ``task``; its label if the model is gone."""
    model = task.model_class
    if model is None:
        return task.model_label
    meta = model._meta
    return str(meta.verbose_name if task.total == 1 else meta.verbose_name_plural)


def format_duration(seconds: float | None) -> str:
    """``"0.4 s"``, ``"12 s"``, ``"3 min 05 s"``, ``"2 h 03 min"``; ``""`` for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class RowErrorLine:
    """One stored row error, ready to show: ``pk`` may be None (a whole-task error)."""

    pk: Any
    field: str
    field_label: str
    messages: tuple[str, ...]
    url: str | None = None  # the row's detail page, when the run's view has one


def source_view(stored: BulkRequest | None) -> type[CRUDView] | None:
    """The registered view a run's request came from, or None."""
    return view_named(stored.view_name) if stored is not None else None


def row_errors(task: BulkTask, view: type[CRUDView] | None = None) -> list[RowErrorLine]:
    """The task's stored row errors with readable field labels (bad entries are skipped).

    With ``view`` (the run's ``source_view()``), each error links to its row there.
    """
    model = task.model_class
    lines = []
    for item in task.row_errors():
        if not isinstance(item, Mapping):
            continue
        raw = item.get("messages")
        texts = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
        field = str(item.get("field") or "")
        lines.append(
            RowErrorLine(
                pk=item.get("pk"),
                field=field,
                field_label=field_label(model, field),
                messages=tuple(str(text) for text in texts),
                url=view.row_url(item.get("pk")) if view is not None else None,
            )
        )
    return lines


def retry_target(
    task: BulkTask, view: type[CRUDView] | None, errors: Sequence[RowErrorLine]
) -> tuple[type[SelectionMixin], list[str]] | None:
    """``view`` (the run's ``source_view()``) and the keys of the task's failed rows, when the
    task is a finished bulk edit with failed rows and ``view`` has a selection; else None.

    The keys come from the run's ledger (every failed row); a run without one names its rows
    through ``errors`` (its ``row_errors()``), and only when every failed row is listed there.
    """
    if not task.is_finished or task.kind != BulkTask.Kind.UPDATE or view is None:
        return None
    if not issubclass(view, SelectionMixin):
        return None
    failed = RunRow.objects.filter(run_id=task.pk, outcome=RunRow.Outcome.FAILED)
    if task.row_counts.get(RunRow.Outcome.FAILED):
        pks = list(
            failed.order_by("id").values_list("object_pk", flat=True)[: pc_settings.SELECTION_ID_CAP + 1]
        )
        return (view, pks) if 0 < len(pks) <= pc_settings.SELECTION_ID_CAP else None
    if task.failure_count == 0 or task.errors_omitted:
        return None
    pks = list(dict.fromkeys(str(e.pk) for e in errors if e.pk is not None))
    if not pks or len(pks) != task.failure_count:
        return None
    return view, pks


def retry_count(task: BulkTask, view: type[CRUDView] | None, errors: Sequence[RowErrorLine]) -> int:
    """How many failed rows the run's page offers to retry (0: none, see ``retry_target()``),
    without reading their keys when the ledger counted them."""
    failed = task.row_counts.get(RunRow.Outcome.FAILED, 0)
    if failed and task.kind == BulkTask.Kind.UPDATE and task.is_finished:
        ok = view is not None and issubclass(view, SelectionMixin) and failed <= pc_settings.SELECTION_ID_CAP
        return failed if ok else 0
    target = retry_target(task, view, errors)
    return len(target[1]) if target else 0


_SOURCE_WORDS = {
    "retry": ("Retries", "the failed rows of"),
    "undo": ("Undoes", ""),
    "apply": ("Applies", "the values checked by"),
}


def source_of(stored: BulkRequest | None) -> dict[str, Any]:
    """The run this one was made from, for its page: ``source_run``, ``source_verb``, ``source_what``."""
    if stored is None or stored.source_run is None or stored.source_action not in _SOURCE_WORDS:
        return {"source_run": None}
    verb, what = _SOURCE_WORDS[stored.source_action]
    return {"source_run": stored.source_run, "source_verb": verb, "source_what": what}


def describe_changes(task: BulkTask, stored: BulkRequest | None) -> list[FieldChange]:
    """What a bulk edit sets (``stored``, its request), field by field, in words; empty when
    the request cannot be read."""
    if stored is None:
        return []
    return describe_request(task.model_class, stored)


def view_class_name(view_name: str) -> str:
    """``"BookCRUDView"`` for ``"sample.views.BookCRUDView"``: the view a run came from.

    Only the class name is shown: a module path is a code internal, kept off the task pages.
    """
    return (view_name or "").strip().rsplit(".", 1)[-1]


def done_verb(task: BulkTask) -> str:
    """``"deleted"`` or ``"updated"``: what the run does (or, for a check, would do) to a row."""
    return bulk_messages.done_verb(task.kind).lower()


_IMPORT_MODES = {
    "create": "Create: every row is new",
    "upsert": "Upsert: update the rows matched on {key}, create the others",
    "skip": "Skip existing: create the rows no row matches on {key}",
}


def describe_import(task: BulkTask, stored: BulkRequest | None) -> list[FieldChange]:
    """What an import does, for its page: the file, the mode and key, the columns and the
    fields they fill, the natural keys; empty for an undo or an unreadable request."""
    if stored is None or stored.operation != "import" or stored.source_action is not None:
        return []
    model = task.model_class
    spec = stored.import_spec
    key = " + ".join(field_label(model, name) for name in spec.key)
    lines = [FieldChange("file", "File", str(stored.import_data.get("file") or "—"))]
    lines.append(FieldChange("mode", "Mode", _IMPORT_MODES[spec.mode].format(key=key)))
    columns = stored.import_data.get("columns") or {}
    headers = {field: header for header, field in columns.items() if field}
    for name in spec.fields:
        header = headers.get(name)
        natural = spec.natural_keys.get(name)
        text = f"from column “{header}”" if header else "from the file"
        if natural:
            text += f", found by {natural}"
        lines.append(FieldChange(name, field_label(model, name), text))
    return lines
