"""Import: the ``IMPORT`` screens (``ImportMixin``) and an import as a recorded bulk run
(``run_import()``, ``undo_import_run()``).

An import is recorded like any bulk run: a ``BulkTask`` of kind ``import`` (on the task
dashboard), its ``RunRow`` ledger (created, changed with old values, unchanged, skipped,
failed with the file line), its counts from the ledger. The run's record keeps the import's
spec, file name and column mapping but not the rows (``BulkRequest.without_rows()``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from django.contrib import messages as django_messages
from django.db import models, router, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django_htmx.http import HttpResponseClientRedirect

from powercrud.bulk import importstore, messages
from powercrud.bulk.importfile import FORMATS, format_of, read_table
from powercrud.bulk.importing import MODES, ImportSpec, mapped_rows, match_columns, unique_keys
from powercrud.bulk.request import BulkRequest
from powercrud.bulk.types import BulkInputError, BulkResult
from powercrud.bulk_persistence import BulkUpdatePersistenceBackend
from powercrud.conf import settings as pc_settings
from powercrud.jobs.launch import LaunchError, enqueue_task
from powercrud.jobs.ledger import ledger_alias, run_recorded, selection_keys
from powercrud.jobs.locks import LockConflict, acquire_locks, fence_request_runs, hold_selection
from powercrud.jobs.monitor import close_request_run, open_request_run
from powercrud.jobs.reruns import changed_rows, import_undo_permissions, undo_problem
from powercrud.mixins.contracts import ListHost
from powercrud.models import BulkTask
from powercrud.params import RepeatedParameter, refuse_repeated, single
from powercrud.views import Role, htmx_details, refusal

__all__ = ["ImportMixin", "ImportRefused", "launch_import", "run_import", "undo_import_run"]


def _user_id(user: Any) -> Any:
    return user.pk if getattr(user, "is_authenticated", False) else None


def run_import(
    bulk_request: BulkRequest,
    *,
    scope: models.QuerySet[Any],
    user: Any,
    backend: BulkUpdatePersistenceBackend | None = None,
) -> tuple[BulkTask, BulkResult]:
    """Run the import ``bulk_request`` now and record it; returns the run and its result.

    ``scope``: the rows an upsert may update (the view's ``get_queryset()``). The run, its
    ledger and the writes commit together; a check or a failed all-or-nothing run keeps only
    its record and its ledger.
    """
    total = len(bulk_request.import_rows)
    context = bulk_request.context(mode="sync", user_id=_user_id(user), selection_size=total)
    with transaction.atomic(using=ledger_alias()):
        run = open_request_run(bulk_request.without_rows(), user=user, total=total)
        result, counts = run_recorded(
            run,
            bulk_request,
            queryset=scope,
            keys=selection_keys(scope.none()),
            context=context,
            backend=backend,
        )
        run = close_request_run(run, result, counts)
    return run, result


def matched_rows(bulk_request: BulkRequest, scope: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """The rows of ``scope`` an upsert of ``bulk_request`` would update (matched on its key);
    none for a create or a skip, which update no row."""
    spec = bulk_request.import_spec
    if spec.mode != "upsert":
        return scope.none()
    model = scope.model
    positions = [spec.fields.index(name) for name in spec.key]
    attnames = [model._meta.get_field(name).attname for name in spec.key]
    wanted = {tuple(str(values[i]).strip() for i in positions) for _, values in bulk_request.import_rows}
    first = sorted({key[0] for key in wanted})
    pks = []
    for start in range(0, len(first), 1000):
        candidates = scope.filter(**{f"{spec.key[0]}__in": first[start : start + 1000]}).order_by()
        for pk, *key in candidates.values_list("pk", *attnames):
            if tuple(str(value) for value in key) in wanted:
                pks.append(pk)
    return scope.filter(pk__in=pks)


def launch_import(bulk_request: BulkRequest, *, scope: models.QuerySet[Any], user: Any) -> BulkTask:
    """Record the import ``bulk_request`` as a background run and queue it (after commit);
    returns its task. The rows an upsert will update (``matched_rows()``) are held for it
    (``RowLock``) in the same transaction, and are its scope on the worker; a create or a
    skip holds none. Raises ``LockConflict`` when another run holds one of them, and
    ``LaunchError`` when the job cannot be queued (the task is then failed)."""
    using = router.db_for_write(BulkTask)
    owner = user if getattr(user, "is_authenticated", False) else None
    held = matched_rows(bulk_request, scope)
    with transaction.atomic(using=using):
        task = BulkTask.objects.using(using).create(
            kind=bulk_request.operation,
            model_label=bulk_request.model_label,
            owner=owner,
            mode=BulkTask.Mode.ASYNC,
            dry_run=bulk_request.dry_run,
            reason=bulk_request.reason,
            payload=bulk_request.to_dict(),
            total=len(bulk_request.import_rows),
        )
        if held.exists():
            acquire_locks(task, held)
            fence_request_runs(held)
        transaction.on_commit(functools.partial(enqueue_task, task), using=using, robust=False)
    return task


def undo_import_run(
    bulk_request: BulkRequest,
    *,
    rows: models.QuerySet[Any],
    user: Any,
    backend: BulkUpdatePersistenceBackend | None = None,
) -> tuple[BulkTask, BulkResult]:
    """Undo an import now (``bulk_request.source_action == "undo"``) over ``rows``, the rows it
    created or updated that the user may change, held for the run; returns the undo's run."""
    total = rows.count()
    context = bulk_request.context(mode="sync", user_id=_user_id(user), selection_size=total)
    with hold_selection(rows):
        run = open_request_run(bulk_request, user=user, total=total)
        result, counts = run_recorded(
            run, bulk_request, queryset=rows, keys=selection_keys(rows), context=context, backend=backend
        )
        run = close_request_run(run, result, counts)
    return run, result


# ----- the screens -------------------------------------------------------------------------------

STEPS = ("upload", "check", "apply")
_ONE_VALUE = ("step", "mode", "key", "token", "reason")
ERRORS_SHOWN = 50
"""Row errors a check lists in the modal; the run's page pages through all of them."""


class ImportRefused(Exception):
    """A request the import screens refuse, with the status and the sentence to show."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ImportMixin(ListHost):
    """The ``IMPORT`` role (``<url_base>/import/``), off until ``import_fields`` is set.

    Upload a file, match its columns to ``import_fields``, check, apply (see
    docs/guides/import.md). Needs the model's ``add`` permission (the role's), and ``change``
    too for an upsert; an upsert updates only rows ``get_queryset()`` holds.
    """

    import_fields: ClassVar[Sequence[str]] = ()
    import_formats: ClassVar[Sequence[str]] = FORMATS

    @classmethod
    def has_list_feature_role(cls, role: Role) -> bool:
        if role is Role.IMPORT:
            return bool(cls.import_fields)
        result: bool = super().has_list_feature_role(role)
        return result

    def get_import_fields(self) -> list[str]:
        return list(self.import_fields)

    def import_enabled(self) -> bool:
        return Role.IMPORT in self.get_roles()

    def get_context_data(self, **extra: Any) -> dict[str, Any]:
        """The list's page head gets ``import_url`` when the user may import."""
        context: dict[str, Any] = super().get_context_data(**extra)
        if self.role is Role.LIST and self.import_enabled() and self.has_role_permission(Role.IMPORT):
            context["import_url"] = self.reverse(Role.IMPORT)
        return context

    # ----- what the screens offer ---------------------------------------------------------
    def import_view_key(self) -> str:
        return f"{self.model._meta.label_lower}:{self.get_url_base()}"

    def import_keys(self) -> list[tuple[str, str]]:
        """The unique keys an upsert or skip may match on: ``("code,language", "Code + Language")``."""
        allowed = set(self.get_import_fields())
        keys = []
        for group in unique_keys(self.model):
            if set(group) <= allowed:
                labels = " + ".join(self._label(n) for n in group)
                keys.append((",".join(group), labels))
        return keys

    def import_naturals(self) -> list[dict[str, Any]]:
        """Per imported relation: the fields of the related model it may be found by."""
        found = []
        for name in self.get_import_fields():
            model_field: Any = self.model._meta.get_field(name)
            if not model_field.is_relation:
                continue
            related = model_field.related_model
            options = [("", "Primary key")]
            for other in related._meta.concrete_fields:
                if other.primary_key or other.is_relation:
                    continue
                if isinstance(other, models.CharField | models.SlugField | models.EmailField) or other.unique:
                    options.append((other.name, capfirst(str(other.verbose_name))))
            found.append({"name": name, "label": capfirst(str(model_field.verbose_name)), "options": options})
        return found

    def _label(self, name: str) -> str:
        model_field: Any = self.model._meta.get_field(name)
        return capfirst(str(model_field.verbose_name))

    def import_field_choices(self) -> list[tuple[str, str]]:
        return [(name, self._label(name)) for name in self.get_import_fields()]

    def may_upsert(self) -> bool:
        opts = self.model._meta
        return bool(self.request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))

    # ----- the handlers -------------------------------------------------------------------
    def show_import(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_import({"import_step": "upload"})

    def process_import(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if "undo_run" in request.POST:
            return self.process_import_undo(request)
        try:
            refuse_repeated(request.POST, _ONE_VALUE)
            step = request.POST.get("step", "upload")
            if step not in STEPS:
                raise ImportRefused(f"“{step}” is not a step of an import; use upload, check or apply.")
            options = self.import_options(request.POST)
            if step == "upload":
                return self.receive_upload(request, options)
            return self.run_import_step(request, options, check=step == "check")
        except RepeatedParameter as exc:
            return self.render_import({"import_step": "upload", "error": exc.message}, status=400)
        except ImportRefused as exc:
            return self.render_import({"import_step": "upload", "error": exc.message}, status=exc.status)

    def process_import_undo(self, request: HttpRequest) -> HttpResponse:
        """Undo an earlier import of this model (``undo_run=<id>``, from its run's page), as
        ``undo_import()`` does; answers with the undo's run page, 404 for another user's run
        (staff: any), 403 or 409 (with the reason) when it may not or cannot be undone."""
        try:
            run_id = single(request.POST, "undo_run")
            reason = single(request.POST, "reason").strip()
        except RepeatedParameter as exc:
            return refusal(request, exc.message, status=400, event="pcImportRefused")
        run = self.find_import_run(run_id)
        if run is None:
            raise Http404("No such import of yours.")
        try:
            done, _undo, result = self.undo_import(run, reason=reason)
        except ImportRefused as exc:
            return refusal(request, exc.message, status=exc.status, event="pcImportRefused")
        return self.import_run_page(done.pk, messages.undo_done(run.pk, result.message), ok=result.success)

    def find_import_run(self, run_id: str) -> BulkTask | None:
        """Import ``run_id`` of this model, if the user may see it (own; staff: any)."""
        if not run_id.isdigit() or len(run_id) >= 19:
            return None
        runs = BulkTask.objects.filter(kind=BulkTask.Kind.IMPORT, model_label=self.model._meta.label_lower)
        if not self.request.user.is_staff:
            runs = runs.filter(owner_id=self.request.user.pk)
        return runs.filter(pk=int(run_id)).first()

    def undo_import(
        self, run: BulkTask, *, reason: str = "", atomic: bool | None = None
    ) -> tuple[BulkTask, BulkRequest, BulkResult]:
        """Undo import ``run`` in the request: the rows it created are deleted and the rows it
        updated get their old values back, except rows changed since (conflicts); only rows
        ``get_queryset()`` holds. Returns the undo's run, request and result. Raises
        ``ImportRefused``: 400 for a reason ``BulkRequest`` refuses, 403 without the permissions
        the undo needs (``import_undo_permissions()``), 409 when it cannot be undone or its rows
        are held."""
        if not self.request.user.has_perms(import_undo_permissions(run)):
            plural = str(self.model._meta.verbose_name_plural)
            raise ImportRefused(messages.import_undo_not_allowed(plural), status=403)
        problem = undo_problem(run)
        if problem:
            raise ImportRefused(problem, status=409)
        rows = self.get_queryset().filter(pk__in=changed_rows(run, self.model))
        if not rows.exists():
            raise ImportRefused(messages.nothing_to_undo(run.pk), status=409)
        try:
            undo = BulkRequest(
                operation="import",
                model_label=self.model._meta.label_lower,
                atomic=bool(getattr(self, "bulk_atomic", True)) if atomic is None else atomic,
                backend_path=getattr(self, "bulk_update_persistence_backend_path", "") or "",
                view_name=f"{type(self).__module__}.{type(self).__qualname__}",
                reason=reason or f"Undo of run #{run.pk}",
                source_run=run.pk,
                source_action="undo",
            )
        except BulkInputError as exc:  # the reason: too long, or a NUL character
            raise ImportRefused(exc.message) from None
        try:
            done, result = undo_import_run(undo, rows=rows, user=self.request.user)
        except LockConflict as exc:
            raise ImportRefused(exc.message, status=409) from None
        return done, undo, result

    def import_options(self, data: Any) -> dict[str, Any]:
        """Mode, key and natural keys as posted, checked against what this view offers."""
        mode = data.get("mode") or "create"
        if mode not in MODES:
            raise ImportRefused(f"“{mode}” is not an import mode; choose create, upsert or skip.")
        if mode == "upsert" and not self.may_upsert():
            raise ImportRefused(
                f"An upsert changes existing {self.model._meta.verbose_name_plural}, which you may not do.",
                status=403,
            )
        key: tuple[str, ...] = ()
        if mode != "create":
            raw = data.get("key") or ""
            offered = dict(self.import_keys())
            if raw not in offered:
                raise ImportRefused(f"Choose the unique field an {mode} import matches rows on.")
            key = tuple(raw.split(","))
        naturals = {}
        for item in self.import_naturals():
            value = data.get(f"natural_{item['name']}") or ""
            if value and value not in {name for name, _ in item["options"]}:
                raise ImportRefused(f"“{value}” cannot find a {item['label'].lower()}.")
            if value:
                naturals[item["name"]] = value
        reason = (data.get("reason") or "").strip()
        return {"mode": mode, "key": key, "natural_keys": naturals, "reason": reason}

    def receive_upload(self, request: HttpRequest, options: dict[str, Any]) -> HttpResponse:
        upload = request.FILES.get("file")
        if upload is None:
            raise ImportRefused("Choose a file to import.")
        limit = int(pc_settings.IMPORT_MAX_BYTES)
        data = upload.read(limit + 1)
        name = str(upload.name or "upload")
        try:
            file_format = format_of(name)
            if file_format not in self.import_formats:
                raise ImportRefused(
                    f"This list imports {', '.join(self.import_formats)} files, not {file_format}."
                )
            table = read_table(name, data, max_bytes=limit)
        except BulkInputError as exc:
            return self.render_import({"import_step": "upload", "error": exc.message, **options}, status=400)
        owner = request.user.pk
        token = importstore.save(table, name=name, owner=owner, view=self.import_view_key())
        stored = importstore.load(token, owner=owner, view=self.import_view_key())
        mapping = match_columns(self.model, stored.headers, self.get_import_fields())
        return self.render_import({"import_step": "map", **self.map_context(stored, mapping), **options})

    def map_context(self, stored: importstore.StoredTable, mapping: Sequence[str | None]) -> dict[str, Any]:
        columns = [
            {"index": i, "header": header, "samples": stored.samples(i), "chosen": mapping[i] or ""}
            for i, header in enumerate(stored.headers)
        ]
        return {
            "token": stored.token,
            "file_name": stored.name,
            "columns": columns,
            "row_count": len(stored.rows),
        }

    def posted_mapping(self, data: Any, stored: importstore.StoredTable) -> list[str | None]:
        chosen: dict[str, str | None] = {}
        for i, header in enumerate(stored.headers):
            values = data.getlist(f"column_{i}") if hasattr(data, "getlist") else [data.get(f"column_{i}")]
            if len(values) > 1:
                raise ImportRefused(f"The column “{header}” was matched twice: send column_{i} once.")
            chosen[header] = (values[0] or None) if values else None
        try:
            return match_columns(self.model, stored.headers, self.get_import_fields(), chosen)
        except BulkInputError as exc:
            raise ImportRefused(exc.message) from None

    def build_import_request(
        self,
        stored: importstore.StoredTable,
        mapping: Sequence[str | None],
        options: dict[str, Any],
        *,
        check: bool,
    ) -> BulkRequest:
        fields, rows = mapped_rows(mapping, stored.rows)
        spec = ImportSpec(
            fields=fields, mode=options["mode"], key=options["key"], natural_keys=options["natural_keys"]
        )
        columns = {header: target for header, target in zip(stored.headers, mapping, strict=True) if target}
        return BulkRequest(
            operation="import",
            model_label=self.model._meta.label_lower,
            bulk_fields=tuple(self.get_import_fields()),
            atomic=bool(getattr(self, "bulk_atomic", True)),
            dry_run=check,
            backend_path=getattr(self, "bulk_update_persistence_backend_path", "") or "",
            backend_config=getattr(self, "bulk_update_persistence_backend_config", None) or {},
            view_name=f"{type(self).__module__}.{type(self).__qualname__}",
            reason=options["reason"],
            import_data={"spec": spec.to_data(), "file": stored.name, "columns": columns, "rows": rows},
        )

    def run_import_step(self, request: HttpRequest, options: dict[str, Any], *, check: bool) -> HttpResponse:
        view_key = self.import_view_key()
        try:
            stored = importstore.load(request.POST.get("token", ""), owner=request.user.pk, view=view_key)
        except BulkInputError as exc:
            raise ImportRefused(exc.message) from None
        try:
            mapping = self.posted_mapping(request.POST, stored)
            bulk_request = self.build_import_request(stored, mapping, options, check=check)
            ImportSpec.from_data(bulk_request.import_data["spec"]).check(self.model, self.get_import_fields())
        except ImportRefused as exc:
            context = {
                "import_step": "map",
                **self.map_context(stored, self._mapping_of(request.POST, stored)),
            }
            return self.render_import({**context, **options, "error": exc.message}, status=exc.status)
        except BulkInputError as exc:
            context = {"import_step": "map", **self.map_context(stored, mapping)}
            return self.render_import({**context, **options, "error": exc.message}, status=400)
        if not check and self.import_runs_async(len(stored.rows)):  # a check stays here: its Import button
            try:
                task = launch_import(bulk_request, scope=self.get_queryset(), user=request.user)
            except LockConflict as exc:
                raise ImportRefused(exc.message, status=409) from None
            except LaunchError as exc:
                raise ImportRefused(str(exc), status=503) from None
            importstore.discard(stored.token)
            return self.import_run_page(task.pk, messages.import_started(task.pk, len(stored.rows)), ok=True)
        run, result = run_import(bulk_request, scope=self.get_queryset(), user=request.user)
        if check:
            context = {
                "import_step": "result",
                **self.map_context(stored, mapping),
                **options,
                "result": result,
                "run": run,
                "run_counts": dict(run.row_counts or {}),
                "error_rows": list(result.errors[:ERRORS_SHOWN]),
                "errors_more": max(0, len(result.errors) - ERRORS_SHOWN),
            }
            return self.render_import(context)
        importstore.discard(stored.token)
        return self.import_run_page(run.pk, result.message, ok=result.success)

    def _mapping_of(self, data: Any, stored: importstore.StoredTable) -> list[str | None]:
        """The mapping as posted (fields this view imports only), to show it again."""
        fields = set(self.get_import_fields())
        posted = [data.get(f"column_{i}") for i in range(len(stored.headers))]
        return [value if value in fields else None for value in posted]

    def import_runs_async(self, rows: int) -> bool:
        """Whether an import of ``rows`` rows goes to a worker: the view's ``bulk_async`` and
        ``bulk_min_async_records``, as for bulk edits."""
        if not getattr(self, "bulk_async", False):
            return False
        threshold = getattr(self, "bulk_min_async_records", None)
        if threshold is None:
            threshold = int(pc_settings.BULK_MIN_ASYNC_RECORDS)
        return rows >= threshold

    def import_run_page(self, run_id: int, message: str, *, ok: bool) -> HttpResponse:
        (django_messages.success if ok else django_messages.error)(self.request, message, fail_silently=True)
        try:
            url = reverse("powercrud:tasks-detail", args=[run_id])
        except NoReverseMatch:
            url = self.reverse(Role.LIST)
        if htmx_details(self.request):
            return HttpResponseClientRedirect(url)
        return redirect(url)

    def render_import(self, context: dict[str, Any], status: int = 200) -> HttpResponse:
        context = {
            "import_modes": [
                (value, label)
                for value, label in (
                    ("create", "Create new rows"),
                    ("upsert", "Update existing rows, create the others (upsert)"),
                    ("skip", "Create new rows, skip existing ones"),
                )
                if value != "upsert" or self.may_upsert()
            ],
            "import_keys": self.import_keys(),
            "import_naturals": self.import_naturals(),
            "field_choices": self.import_field_choices(),
            "import_formats": [f".{name}" for name in self.import_formats],
            "import_atomic": bool(getattr(self, "bulk_atomic", True)),
            "max_bytes": int(pc_settings.IMPORT_MAX_BYTES),
            "mode": "create",
            **context,
        }
        return self.render_page(context, status=status)
