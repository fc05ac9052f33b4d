"""Import: rows from a file created, upserted or skipped, as one bulk run.

``ImportSpec`` says what an import does (the fields its columns fill, the mode, the unique key
of an upsert or skip, the natural keys of foreign keys); ``ImportService.apply()`` runs it over
rows already read from the file (``bulk.importfile``) and mapped to fields, each row
``(line, values)`` with its values in ``spec.fields``' order.

Values are converted and validated by the same form fields as the CRUD forms
(``formfields.formfield_for()``), built once per run, then by the model field's own
validators: choices by value or label, dates in the formats Django's form fields accept,
foreign keys by primary key or by ``natural_keys[field]`` (looked up once per batch: a value
not found, or found twice, is the row's error), many-to-many as a comma-separated list (a list
in JSON). A row that fails is that row's failure with its file line; the others go on.

Modes:

``create``
    Every row is a new row; one that clashes with a unique constraint fails.
``upsert``
    Rows are matched on ``key`` (a unique field or a unique-together set): existing rows are
    updated (or left unchanged when they already hold the values), the others inserted. On
    the set-based path one ``bulk_create(update_conflicts=True, unique_fields=key)`` per batch
    writes both; rows matching an existing row outside ``scope`` (the view's ``get_queryset()``)
    are refused row by row.
``skip``
    Rows matching an existing row on ``key`` are left alone and reported as skipped.

Writes are set-based (``bulk_create`` per batch, links set on the through table) unless the
model overrides ``save()`` or has save receivers (``strategies.choose_strategy()``, the same
decision as for edits): then each row is saved with ``save()`` so its signals fire. A batch the
database refuses is replayed row by row behind savepoints, to name the rows.

Every row is reported to the run ledger (``ledger.active()``): created (its new key),
changed (an update: old and new values), unchanged, skipped, failed (kept aside, keyed by the
existing row's key or by ``line N``). A check (``context.dry_run``) runs the same writes
inside the run's transaction, which the guard rolls back: its counts are what the apply
would do.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from django import forms
from django.core.exceptions import ValidationError
from django.db import DatabaseError, models, transaction
from django.db.models import Q, QuerySet

from powercrud.bulk import importhooks, ledger, messages
from powercrud.bulk.codec import sorted_values, to_json
from powercrud.bulk.db_errors import describe_db_error, is_run_error
from powercrud.bulk.plan import validation_messages
from powercrud.bulk.runner import ProgressCallback
from powercrud.bulk.strategies import WriteStrategy, choose_strategy
from powercrud.bulk.types import BulkContext, BulkInputError, BulkResult, RowChange, RowError
from powercrud.formfields import formfield_for

__all__ = [
    "MODES",
    "ImportMode",
    "ImportService",
    "ImportSpec",
    "Outcome",
    "importable_fields",
    "mapped_rows",
    "match_columns",
    "unique_keys",
]

ImportMode = Literal["create", "upsert", "skip"]
MODES: tuple[str, ...] = get_args(ImportMode)
LIST_SEPARATOR = ","
"""Between the values of a many-to-many cell (the export writes ``", "``)."""


def importable_fields(model: type[models.Model]) -> list[str]:
    """The fields an import may fill: editable concrete fields (not the auto key) and many-to-many."""
    names = []
    for model_field in model._meta.get_fields():
        if not isinstance(model_field, models.Field) or not model_field.editable:
            continue
        if model_field.auto_created or (model_field.many_to_many and not _plain_through(model_field)):
            continue
        if model_field.concrete or model_field.many_to_many:
            names.append(model_field.name)
    return names


def _plain_through(model_field: models.Field[Any, Any]) -> bool:
    through = getattr(model_field.remote_field, "through", None)
    return through is not None and bool(through._meta.auto_created)


def unique_keys(model: type[models.Model]) -> list[tuple[str, ...]]:
    """Every unique field and unique-together set of ``model`` (the keys an upsert may match on)."""
    found: list[tuple[str, ...]] = []
    for model_field in model._meta.concrete_fields:
        if model_field.unique:
            found.append((model_field.name,))
    for group in model._meta.unique_together:
        found.append(tuple(group))
    for constraint in model._meta.constraints:
        if (
            isinstance(constraint, models.UniqueConstraint)
            and constraint.fields
            and not (constraint.condition is not None or constraint.expressions)
        ):
            found.append(tuple(constraint.fields))
    return found


def match_columns(
    model: type[models.Model],
    headers: Sequence[str],
    fields: Sequence[str],
    explicit: Mapping[str, str | None] | None = None,
) -> list[str | None]:
    """The field each column fills (None: not imported), by position.

    A column matches a field of ``fields`` by its name or verbose name, without case or
    surrounding spaces; ``explicit`` (header -> field name, or None to leave the column out)
    wins over the automatic match. ``BulkInputError`` for an explicit field outside ``fields``.
    """
    names: dict[str, str] = {}
    for name in fields:
        model_field = model._meta.get_field(name)
        names.setdefault(name.casefold(), name)
        names.setdefault(str(getattr(model_field, "verbose_name", name)).strip().casefold(), name)
    pk = model._meta.pk
    chosen: list[str | None] = []
    for header in headers:
        folded = header.strip().casefold()
        if explicit is not None and header in explicit:
            target = explicit[header]
            if target is not None and target not in fields:
                raise BulkInputError(target, f"“{target}” cannot be imported here; choose another field.")
            chosen.append(target or None)
        elif pk is not None and folded in (pk.name.casefold(), "pk", "id") and pk.name not in fields:
            chosen.append(None)  # an export's key column: a new row gets a key of its own
        else:
            chosen.append(names.get(folded))
    taken: dict[str, str] = {}
    for header, target in zip(headers, chosen, strict=True):
        if target is None:
            continue
        if target in taken:
            raise BulkInputError(
                target, f"The columns “{taken[target]}” and “{header}” both fill “{target}”: leave one out."
            )
        taken[target] = header
    return chosen


def mapped_rows(
    mapping: Sequence[str | None], rows: Iterable[tuple[int, Sequence[Any]]]
) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The fields ``mapping`` imports and each row as ``[line, [values in that order]]``."""
    positions = [i for i, target in enumerate(mapping) if target is not None]
    fields = tuple(str(mapping[i]) for i in positions)
    return fields, [[line, [values[i] for i in positions]] for line, values in rows]


@dataclass(frozen=True)
class ImportSpec:
    """What one import does, as plain data (stored with the run): see the module docs."""

    fields: tuple[str, ...]
    mode: ImportMode = "create"
    key: tuple[str, ...] = ()
    natural_keys: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "key", tuple(self.key))
        object.__setattr__(self, "natural_keys", dict(self.natural_keys))
        if self.mode not in MODES:
            raise BulkInputError("mode", f"“{self.mode}” is not an import mode; use create, upsert or skip.")

    def check(self, model: type[models.Model], allowed: Sequence[str] | None = None) -> None:
        """``BulkInputError`` naming the field unless this spec can run on ``model``."""
        allowed = list(allowed) if allowed is not None else importable_fields(model)
        if not self.fields:
            raise BulkInputError(None, "No column of the file is matched to a field: match at least one.")
        seen: set[str] = set()
        for name in self.fields:
            if name in seen:
                raise BulkInputError(name, f"Two columns are matched to “{name}”: match each field once.")
            seen.add(name)
            if name not in allowed:
                raise BulkInputError(
                    name, f"“{name}” cannot be imported here (allowed: {', '.join(allowed) or 'none'})."
                )
        for name, natural in self.natural_keys.items():
            model_field = model._meta.get_field(name) if name in seen else None
            if model_field is None or not model_field.is_relation:
                raise BulkInputError(name, f"“{name}” is not an imported relation: it takes no natural key.")
            related = model_field.related_model
            assert related is not None and not isinstance(related, str)
            try:
                target = related._meta.get_field(natural)
            except Exception:
                raise BulkInputError(
                    name, f"{related._meta.verbose_name} has no field “{natural}” to find “{name}” by."
                ) from None
            if not getattr(target, "concrete", False) or target.is_relation:
                raise BulkInputError(
                    name, f"“{natural}” cannot be used to find a {related._meta.verbose_name}."
                )
        if self.mode == "create":
            if self.key:
                raise BulkInputError("key", "A create import takes no key: every row is new.")
            return
        if not self.key:
            raise BulkInputError("key", f"Choose the unique field an {self.mode} import matches rows on.")
        missing = [name for name in self.key if name not in seen]
        if missing:
            raise BulkInputError(missing[0], f"The key field “{missing[0]}” is not matched to a column.")
        if set(self.key) not in [set(group) for group in unique_keys(model)]:
            names = " + ".join(self.key)
            choices = "; ".join(" + ".join(g) for g in unique_keys(model)) or "none"
            raise BulkInputError(
                "key", f"“{names}” is not unique on {model._meta.verbose_name} (unique keys: {choices})."
            )

    def to_data(self) -> dict[str, Any]:
        return {
            "fields": list(self.fields),
            "mode": self.mode,
            "key": list(self.key),
            "natural_keys": dict(self.natural_keys),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ImportSpec:
        try:
            return cls(
                fields=tuple(data.get("fields") or ()),
                mode=data.get("mode", "create"),
                key=tuple(data.get("key") or ()),
                natural_keys=dict(data.get("natural_keys") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise BulkInputError(None, f"The import settings are not valid: {exc}") from None


class Outcome:
    """The per-row outcomes of an import, as the ledger stores them."""

    CREATED = ledger.CREATED
    UPDATED = ledger.CHANGED
    UNCHANGED = ledger.UNCHANGED
    SKIPPED = ledger.SKIPPED
    FAILED = ledger.FAILED


# ----- converting values ---------------------------------------------------------------------


class _RowFailed(Exception):
    def __init__(self, errors: Mapping[str | None, Sequence[str]]) -> None:
        super().__init__("row failed")
        self.errors = errors


@dataclass
class _Column:
    name: str
    model_field: Any
    attname: str
    many: bool
    relation: bool
    form_field: forms.Field | None
    natural: str | None
    labels: Mapping[str, Any]
    values: frozenset[str]


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _columns(model: type[models.Model], spec: ImportSpec) -> list[_Column]:
    columns = []
    for name in spec.fields:
        model_field: Any = model._meta.get_field(name)
        relation = bool(model_field.is_relation)
        form_field = None if relation else formfield_for(model_field)
        labels: dict[str, Any] = {}
        for value, label in getattr(model_field, "flatchoices", None) or ():
            labels.setdefault(str(label).strip().casefold(), value)
        columns.append(
            _Column(
                name=name,
                model_field=model_field,
                attname=name if model_field.many_to_many else model_field.attname,
                many=bool(model_field.many_to_many),
                relation=relation,
                form_field=form_field,
                natural=spec.natural_keys.get(name),
                labels=labels,
                values=frozenset(str(v) for v, _ in getattr(model_field, "flatchoices", None) or ()),
            )
        )
    return columns


def _split(value: Any) -> list[Any]:
    if _empty(value):
        return []
    if isinstance(value, list | tuple):
        return [item for item in value if not _empty(item)]
    return [part.strip() for part in str(value).split(LIST_SEPARATOR) if part.strip()]


class _Relations:
    """Foreign key and many-to-many values resolved to related keys, one query per batch and field."""

    def __init__(self, column: _Column, using: str) -> None:
        related: type[models.Model] = column.model_field.related_model
        self.related = related
        self.target = related._meta.get_field(column.natural) if column.natural else None
        self.lookup = column.natural or (
            column.model_field.target_field.name if not column.many else related._meta.pk.name
        )
        key_field: Any = self.target or related._meta.get_field(self.lookup)
        self.key_field = key_field
        limit = column.model_field.get_limit_choices_to()
        manager = related._base_manager.using(using)
        self.choices = manager.complex_filter(limit) if limit else manager.all()
        self.found: dict[Any, list[Any]] = {}
        self.column = column

    def norm(self, value: Any) -> Any:
        value = value.strip() if isinstance(value, str) else value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            python = self.key_field.to_python(value)
        except (ValidationError, TypeError, ValueError):
            return None
        return python.casefold() if isinstance(python, str) and self.target is not None else python

    def load(self, values: Iterable[Any]) -> None:
        wanted = {v for v in (self.norm(x) for x in values) if v is not None} - set(self.found)
        if not wanted:
            return
        target = self.column.model_field.target_field.attname if not self.column.many else "pk"
        text = self.target is not None and isinstance(self.key_field, models.CharField | models.TextField)
        wanted_list = sorted_values(wanted)
        for start in range(0, len(wanted_list), 500):
            chunk = wanted_list[start : start + 500]
            lookup = f"{self.lookup}__in"
            if text:
                query = Q()
                for item in chunk:
                    query |= Q(**{f"{self.lookup}__iexact": item})
                rows = self.choices.filter(query)
            else:
                rows = self.choices.filter(**{lookup: chunk})
            for key, natural in rows.values_list(target, self.lookup):
                normed = natural.casefold() if text and isinstance(natural, str) else natural
                self.found.setdefault(normed, []).append(key)
        for item in wanted:
            self.found.setdefault(item, [])

    def resolve(self, value: Any) -> Any:
        normed = self.norm(value)
        keys = self.found.get(normed, []) if normed is not None else []
        noun = self.related._meta.verbose_name
        if not keys:
            raise ValidationError(f"No {noun} with {self.lookup} “{value}”.")
        if len(keys) > 1:
            raise ValidationError(
                f"{len(keys)} {self.related._meta.verbose_name_plural} have {self.lookup} “{value}”: "
                "use a unique field or the primary key."
            )
        return keys[0]


_MISS = object()
CACHE_LIMIT = 5000
"""Distinct cell values a column remembers the conversion of (a status, an author, a price)."""


class _Converter:
    """One column's conversion, built once per run: the form field's ``clean()``, then the model
    field's validators the form field does not already run. The results of up to
    ``CACHE_LIMIT`` distinct cell values are remembered (a value converts the same in every row)."""

    def __init__(self, column: _Column, relations: _Relations | None) -> None:
        self.column = column
        self.relations = relations
        model_field = column.model_field
        form_field = column.form_field
        self.validators = [
            v
            for v in getattr(model_field, "validators", ())
            if form_field is None or v not in form_field.validators
        ]
        self.iso_date = type(model_field) is models.DateField
        self.cache: dict[tuple[type, Any], Any] | None = {}
        self.misses = 0  # values not found once the cache is full

    def __call__(self, raw: Any) -> Any:
        cache = self.cache
        if cache is None or not isinstance(raw, str | int | float | bool):
            return self.convert(raw)
        key = (type(raw), raw)
        found = cache.get(key, _MISS)
        if found is _MISS:
            try:
                found = self.convert(raw)
            except ValidationError as exc:
                found = exc
            if len(cache) < CACHE_LIMIT:
                cache[key] = found
            else:
                self.misses += 1
                if self.misses > CACHE_LIMIT:  # mostly distinct values (titles, codes): stop looking
                    self.cache = None
        if isinstance(found, ValidationError):
            raise found
        return found

    def convert(self, raw: Any) -> Any:
        """One cell's value as the model holds it (a related key for relations, a tuple for many)."""
        column = self.column
        model_field = column.model_field
        if column.many:
            assert self.relations is not None
            return tuple(sorted_values({self.relations.resolve(item) for item in _split(raw)}))
        if column.relation:
            assert self.relations is not None
            if _empty(raw):
                if not model_field.null:
                    raise ValidationError(forms.Field.default_error_messages["required"])
                return None
            return self.relations.resolve(raw)
        if isinstance(raw, str):
            raw = raw.strip()
            if column.labels and raw not in column.values and raw.casefold() in column.labels:
                raw = str(column.labels[raw.casefold()])  # a choice by its label
        value = self._iso_date(raw) if self.iso_date else None
        if value is None:
            value = model_field.to_python(raw) if column.form_field is None else column.form_field.clean(raw)
        if value in model_field.empty_values and not isinstance(value, bool):
            if model_field.null and value in ("", None):
                value = None
            elif value is None and not model_field.null:
                value = model_field.get_default() if model_field.has_default() else value
        if value not in model_field.empty_values and self.validators:
            self._validate(value)
        return value

    def _iso_date(self, raw: Any) -> Any:
        """``2024-05-01`` read directly (the form field would try each input format in turn)."""
        if isinstance(raw, str) and len(raw) == 10:
            try:
                return datetime.date.fromisoformat(raw)
            except ValueError:
                return None
        return None

    def _validate(self, value: Any) -> None:
        """The model field's own validators, worded as ``Field.run_validators()`` words them."""
        model_field = self.column.model_field
        errors = []
        for validator in self.validators:
            try:
                validator(value)
            except ValidationError as exc:
                if hasattr(exc, "code") and exc.code in model_field.error_messages:
                    exc.message = model_field.error_messages[exc.code]
                errors.extend(exc.error_list)
        if errors:
            raise ValidationError(errors)


# ----- the run -------------------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    values: dict[str, Any]  # attname (many-to-many: name) -> value
    existing: dict[str, Any] | None = None  # the existing row's concrete values, by attname
    pk: Any = None  # the existing row's key
    key: tuple[Any, ...] | None = None  # its values of the import's key (``_Run._key_of()``)
    old: dict[str, Any] | None = None
    instance: models.Model | None = None


@dataclass
class _Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    examples: list[RowChange] = field(default_factory=list)


class ImportService:
    """Runs an ``ImportSpec`` over rows (see the module docs). Subclass to change the strategy."""

    max_errors = 1000

    def choose_strategy(self, model: type[models.Model], names: Sequence[str]) -> WriteStrategy:
        return choose_strategy(model, names)

    def apply(
        self,
        *,
        model: type[models.Model],
        spec: ImportSpec,
        rows: Sequence[tuple[int, Sequence[Any]]],
        context: BulkContext,
        scope: QuerySet[Any] | None = None,
        allowed: Sequence[str] | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> BulkResult:
        """Import ``rows`` into ``model`` as ``spec`` says; returns the run's ``BulkResult``.

        ``scope``: the rows an upsert may update (default: every row). ``allowed``: the fields
        the caller lets the file fill (default: ``importable_fields(model)``).
        """
        spec.check(model, allowed)
        using = scope.db if scope is not None else model._default_manager.db
        run = _Run(self, model, spec, context, using, scope)
        size = context.batch_size
        for start in range(0, len(rows), size):
            run.batch(rows[start : start + size])
            if progress_callback is not None:
                progress_callback(min(start + size, len(rows)), len(rows))
        return run.result(len(rows))


class _Run:
    def __init__(
        self,
        service: ImportService,
        model: type[models.Model],
        spec: ImportSpec,
        context: BulkContext,
        using: str,
        scope: QuerySet[Any] | None,
    ) -> None:
        self.service = service
        self.model = model
        self.spec = spec
        self.context = context
        self.using = using
        self.scope = scope
        self.columns = _columns(model, spec)
        self.relations = {c.name: _Relations(c, using) for c in self.columns if c.relation}
        self.converters = [(c, _Converter(c, self.relations.get(c.name))) for c in self.columns]
        self.plain = [c for c in self.columns if not c.many]
        self.many = [c for c in self.columns if c.many]
        self.strategy = service.choose_strategy(model, list(spec.fields))
        self.hooked = importhooks.hooked(model)
        self.clean = model.clean is not models.Model.clean
        self.key_attnames = tuple(model._meta.get_field(n).attname for n in spec.key)  # type: ignore[union-attr]
        self.seen_keys: dict[tuple[Any, ...], int] = {}
        self.counts = _Counts()
        self.recorder = ledger.active()
        self.recording = ledger.is_recording()
        self.attnames = [f.attname for f in model._meta.concrete_fields]
        self.fields = [(f.attname, f) for f in model._meta.concrete_fields]
        # A scope with no condition holds every row: nothing to ask about each matched row.
        self.limited = scope is not None and bool(scope.query.where or scope.query.is_sliced)
        pk = model._meta.pk
        assert pk is not None
        self.pk_attname = pk.attname

    # --- one batch ---------------------------------------------------------------------------

    def batch(self, raw_rows: Sequence[tuple[int, Sequence[Any]]]) -> None:
        for column in self.columns:
            relations = self.relations.get(column.name)
            if relations is not None:
                index = self.spec.fields.index(column.name)
                cells = [values[index] for _, values in raw_rows]
                relations.load(item for cell in cells for item in (_split(cell) if column.many else [cell]))
        rows = []
        for line, values in raw_rows:
            try:
                rows.append(_Row(line, self._convert_row(values)))
            except _RowFailed as exc:
                self._fail(None, line, exc.errors)
        rows = self._deduplicated(rows)
        if self.spec.mode != "create":
            rows = self._matched(rows)
        if self.clean:
            rows = [row for row in rows if self._cleaned(row)]
        new = [row for row in rows if row.existing is None]
        changed = [row for row in rows if row.existing is not None]
        if self.hooked:  # lifecycle hooks (bulk.importhooks)
            new, changed = importhooks.before(self, new, changed)
        if self.strategy is WriteStrategy.PER_OBJECT:
            written = self._save_each([*new, *changed])
        else:
            written = self._write_set(new, changed)
        self._record(written)
        if self.hooked:
            importhooks.after(self, written)

    def _convert_row(self, values: Sequence[Any]) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        errors: dict[str | None, list[str]] = {}
        for index, (column, convert) in enumerate(self.converters):
            try:
                converted[column.attname] = convert(values[index])
            except ValidationError as exc:
                errors.setdefault(column.name, []).extend(exc.messages)
        if errors:
            raise _RowFailed(errors)
        return converted

    def _key_of(self, row: _Row) -> tuple[Any, ...]:
        if row.key is None:
            values = row.values
            row.key = tuple([values[a] for a in self.key_attnames])
        return row.key

    def _deduplicated(self, rows: list[_Row]) -> list[_Row]:
        if not self.key_attnames:
            return rows
        kept = []
        for row in rows:
            key = self._key_of(row)
            first = self.seen_keys.setdefault(key, row.line)
            if first != row.line:
                names = " + ".join(self.spec.key)
                self._fail(None, row.line, {None: [messages.import_duplicate_key(names, first)]})
                continue
            kept.append(row)
        return kept

    def _matched(self, rows: list[_Row]) -> list[_Row]:
        """Find each row's existing row on the key; skip or refuse as the mode and scope say."""
        if not rows:
            return rows
        manager = self.model._base_manager.using(self.using)
        first = self.key_attnames[0]
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        values = sorted_values({row.values[first] for row in rows if row.values[first] is not None})
        query = Q(**{f"{first}__in": values})
        if any(row.values[first] is None for row in rows):
            query |= Q(**{f"{first}__isnull": True})
        key_at = [self.attnames.index(a) for a in self.key_attnames]
        for record in manager.filter(query).order_by().values_list(*self.attnames):
            found[tuple([record[i] for i in key_at])] = dict(zip(self.attnames, record, strict=True))
        matched = [found[key] for key in map(self._key_of, rows) if key in found]
        pks = [existing[self.pk_attname] for existing in matched]
        in_scope: set[Any] | None = None
        if self.limited and matched and self.spec.mode == "upsert":
            assert self.scope is not None
            in_scope = set(self.scope.filter(pk__in=pks).values_list("pk", flat=True))
        links = self._links(pks) if self.spec.mode == "upsert" else {}
        kept: list[_Row] = []
        skipped: list[_Row] = []
        unchanged: list[_Row] = []
        for row in rows:
            match = found.get(self._key_of(row))
            if match is None:
                kept.append(row)
                continue
            row.existing, row.pk = match, match[self.pk_attname]
            if self.spec.mode == "skip":
                skipped.append(row)
                continue
            if in_scope is not None and row.pk not in in_scope:
                noun = str(self.model._meta.verbose_name)
                self._fail(row.pk, row.line, {None: [messages.out_of_scope(noun, "update", queued=False)]})
                continue
            row.old = {c.attname: match[c.attname] for c in self.plain}
            row.old.update({c.attname: links.get((c.name, row.pk), ()) for c in self.many})
            same = row.old == row.values if not self.many else self._all_same(row.old, row.values)
            if same:
                unchanged.append(row)
                continue
            kept.append(row)
        self.counts.unchanged += len(unchanged)
        if unchanged and self.recording:
            self.recorder.record(
                [
                    ledger.Entry(row.pk, Outcome.UNCHANGED, old=to_json(self._named(row.old or {})))
                    for row in unchanged
                ]
            )
        self.counts.skipped += len(skipped)
        if skipped and self.recording:
            self.recorder.record(
                [
                    ledger.Entry(
                        row.pk,
                        Outcome.SKIPPED,
                        errors=(RowError(row.pk, None, (messages.import_skipped(row.line),)),),
                    )
                    for row in skipped
                ]
            )
        return kept

    def _links(self, pks: Sequence[Any]) -> dict[tuple[str, Any], tuple[Any, ...]]:
        """The related keys of each many-to-many column for rows ``pks``: one query per field."""
        found: dict[tuple[str, Any], list[Any]] = {}
        for column in self.many:
            through, source, target = self._through(column)
            pairs = through._base_manager.using(self.using).filter(**{f"{source}__in": pks})
            for pk, related in pairs.values_list(source, target):
                found.setdefault((column.name, pk), []).append(related)
        return {key: tuple(sorted_values(values)) for key, values in found.items()}

    def _through(self, column: _Column) -> tuple[type[models.Model], str, str]:
        model_field = column.model_field
        through = model_field.remote_field.through
        return through, model_field.m2m_field_name() + "_id", model_field.m2m_reverse_field_name() + "_id"

    def _all_same(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        return all(self._same(name, old.get(name), value) for name, value in new.items())

    def _same(self, name: str, old: Any, new: Any) -> bool:
        if isinstance(new, tuple):
            return {str(v) for v in old or ()} == {str(v) for v in new}
        return bool(old == new)

    def _named(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Values keyed by field name (the ledger's form) rather than attname."""
        return {c.name: values.get(c.attname) for c in self.columns}

    def _instance(self, row: _Row) -> models.Model:
        """The row as a model instance: an existing row's values (and key) with the file's."""
        if row.instance is not None:
            return row.instance
        values = row.values
        existing = row.existing
        if existing is not None:  # every field has a value: the file's, else the row's own
            args = [values[a] if a in values else existing[a] for a, _ in self.fields]
        else:  # positional, as Django builds rows it reads: each field once, defaults as __init__'s
            args = [values[a] if a in values else f.get_default() for a, f in self.fields]
        instance = self.model(*args)
        if existing is not None:
            instance._state.adding = False
            instance._state.db = self.using
        row.instance = instance
        return instance

    def _cleaned(self, row: _Row) -> bool:
        instance = self._instance(row)
        try:
            instance.clean()
        except ValidationError as exc:
            self._fail(row.pk, row.line, validation_messages(exc))
            return False
        return True

    # --- writing -------------------------------------------------------------------------------

    def _write_set(self, new: list[_Row], changed: list[_Row]) -> list[_Row]:
        rows = [*new, *changed]
        if not rows:
            return []
        update_fields = [c.attname for c in self.plain if c.attname not in self.key_attnames]
        try:
            with transaction.atomic(using=self.using):
                self._insert(rows, update_fields)
                self._link(rows)
            return rows
        except DatabaseError as exc:
            if is_run_error(exc):
                raise
        written = []
        for row in rows:  # the batch was refused: one row at a time, to name the bad ones
            if row.existing is None and row.instance is not None:
                row.instance.pk = None
                row.instance._state.adding = True
            try:
                with transaction.atomic(using=self.using):
                    self._insert([row], update_fields)
                    self._link([row])
            except DatabaseError as exc:
                if is_run_error(exc):
                    raise
                self._fail(row.pk, row.line, {None: [describe_db_error(exc, self.model)]})
                continue
            written.append(row)
        return written

    def _insert(self, rows: list[_Row], update_fields: list[str]) -> None:
        manager = self.model._base_manager.using(self.using)
        objects = []
        for row in rows:
            instance = self._instance(row)
            if row.existing is not None:
                instance.pk = None  # matched on the key: the conflict updates the existing row
                instance._state.adding = True
            objects.append(instance)
        if any(row.existing is not None for row in rows):
            manager.bulk_create(
                objects,
                update_conflicts=True,
                unique_fields=list(self.spec.key),
                update_fields=[self.model._meta.get_field(n).name for n in self._update_names(update_fields)],
            )
            for row in rows:
                if row.existing is not None and row.instance is not None:
                    row.instance.pk = row.pk
        else:
            manager.bulk_create(objects)

    def _update_names(self, update_fields: list[str]) -> list[str]:
        names = [c.name for c in self.plain if c.attname in update_fields]
        return names or [self.spec.key[0]]

    def _link(self, rows: list[_Row]) -> None:
        """The many-to-many links of ``rows`` set to the file's, on the through table."""
        for column in self.many:
            through, source, target = self._through(column)
            manager = through._base_manager.using(self.using)
            existing = [
                row.instance.pk for row in rows if row.existing is not None and row.instance is not None
            ]
            if existing:
                manager.filter(**{f"{source}__in": existing}).delete()
            links = [
                through(**{source: row.instance.pk, target: related})
                for row in rows
                if row.instance is not None
                for related in row.values[column.attname]
            ]
            manager.bulk_create(links)

    def _save_each(self, rows: list[_Row]) -> list[_Row]:
        written = []
        for row in rows:
            instance = self._instance(row)
            try:
                with transaction.atomic(using=self.using):
                    if row.existing is None:
                        instance.save(using=self.using, force_insert=True)
                    else:
                        instance.save(using=self.using, update_fields=[c.name for c in self.plain] or None)
                    for column in self.many:
                        getattr(instance, column.name).set(row.values[column.attname])
            except DatabaseError as exc:
                if is_run_error(exc):
                    raise
                if row.existing is None:
                    instance.pk = None
                self._fail(row.pk, row.line, {None: [describe_db_error(exc, self.model)]})
                continue
            written.append(row)
        return written

    # --- the ledger and the counts -----------------------------------------------------------

    def _record(self, written: list[_Row]) -> None:
        """Count the written rows; report them to the ledger when one records."""
        created = sum(1 for row in written if row.existing is None)
        self.counts.created += created
        self.counts.updated += len(written) - created
        if not self.recording:
            self.counts.examples.extend(
                self._example(row) for row in written[: 5 - len(self.counts.examples)]
            )
            return
        entries = []
        dry = self.context.dry_run
        for row in written:
            assert row.instance is not None
            new = to_json(self._named(row.values))
            if row.existing is None:
                key = ledger.LineKey(row.line) if dry else row.instance.pk
                entries.append(ledger.Entry(key, Outcome.CREATED, new=new))
            else:
                entries.append(
                    ledger.Entry(row.pk, Outcome.UPDATED, old=to_json(self._named(row.old or {})), new=new)
                )
        self.counts.examples.extend(self._example(row) for row in written[: 5 - len(self.counts.examples)])
        if entries:
            self.recorder.record(entries)

    def _example(self, row: _Row) -> RowChange:
        new = to_json(self._named(row.values))
        if row.existing is None:
            assert row.instance is not None
            key = ledger.LineKey(row.line) if self.context.dry_run else row.instance.pk
            return RowChange(pk=key, old={}, new=new)
        return RowChange(pk=row.pk, old=to_json(self._named(row.old or {})), new=new)

    def _fail(self, pk: Any, line: int, errors: Mapping[str | None, Sequence[str]]) -> None:
        key = pk if pk is not None else ledger.LineKey(line)
        row_errors = [
            RowError(key, name, tuple(messages.import_row_error(line, text) for text in texts))
            for name, texts in errors.items()
        ]
        self.counts.failed += 1
        if len(self.counts.errors) < self.service.max_errors:
            self.counts.errors.extend(row_errors)
        self.recorder.fail(key, row_errors)

    def result(self, total: int) -> BulkResult:
        counts = self.counts
        done = counts.created + counts.updated + counts.unchanged + counts.skipped
        success = counts.failed == 0
        message = messages.import_summary(
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped=counts.skipped,
            failed=counts.failed,
            total=total,
            dry_run=self.context.dry_run,
            atomic=self.context.atomic,
        )
        return BulkResult(
            success=success,
            success_records=done,
            errors=tuple(counts.errors),
            total=total,
            changed=counts.created + counts.updated,
            dry_run=self.context.dry_run,
            examples=tuple(counts.examples),
            message=message,
            failed=counts.failed,
        )
