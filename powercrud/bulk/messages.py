"""The sentences a person reads about a bulk run's outcome, in one place.

The services, the guard, the worker, the monitor, the dashboard and the outcomes CSV all
word outcomes through these functions, so one run reads the same wherever it is shown and a
wording is changed once. Every function returns plain text (escaped by the templates).
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "all_or_nothing_rolled_back",
    "cancel_notice",
    "cannot_retry",
    "cancelled",
    "check_only",
    "done_verb",
    "job_not_queued",
    "locking_rows",
    "never_picked_up",
    "no_heartbeat",
    "nothing_saved",
    "nothing_to_lock",
    "out_of_scope",
    "refused_by_hook",
    "rows",
    "run_ended",
    "summarise",
    "task_failed",
]


def rows(count: int) -> str:
    """``"1 row"``, ``"1,204 rows"``."""
    return f"{count:,} row" if count == 1 else f"{count:,} rows"


def nothing_saved(operation: str) -> str:
    """``"nothing was saved"`` (an edit) or ``"nothing was deleted"`` (a delete), lower case."""
    return "nothing was deleted" if operation == "delete" else "nothing was saved"


def done_verb(operation: str) -> str:
    """``"Updated"`` (an edit) or ``"Deleted"`` (a delete): what a run does to a row."""
    return "Deleted" if operation == "delete" else "Updated"


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def summarise(
    *,
    success: bool,
    success_records: int,
    failed: int,
    total: int,
    changed: int | None,
    dry_run: bool,
    atomic: bool = True,
    verb: str = "Updated",
    general: str | None = None,
) -> str:
    """A one-line summary of a bulk run.

    ``changed=None``: not reported. ``general``: the first error that belongs to no row, said
    instead of a row count when no row failed (never "0 rows failed").
    """
    counts = f" ({changed:,} changed)" if changed is not None else ""
    done = verb.lower()
    why = _clause(general) if general else ""
    if dry_run:
        prefix = "Check only, nothing was saved: "
        if success and changed is not None:
            return f"{prefix}{rows(total)} checked; {changed:,} would change."
        if success:
            return f"{prefix}{success_records:,} of {rows(total)} would be {done}."
        if failed == 0:
            return f"{prefix}{why or 'the run would not succeed'}."
        if atomic:  # every row was checked: the others passed
            passed = f" and {total - failed:,} would pass" if total > failed else ""
            return (
                f"{prefix}{failed:,} of {rows(total)} would fail{passed}; all-or-nothing saves none of them."
            )
        return f"{prefix}{failed:,} of {rows(total)} would fail; {success_records:,} would be {done}{counts}."
    if success:
        return f"{verb} {success_records:,} of {rows(total)}{counts}."
    if failed == 0:
        if atomic:
            return f"{why or 'The run did not succeed'}, so nothing was saved (all-or-nothing)."
        return f"{why or 'The run did not succeed'}; {done} {success_records:,} of {rows(total)}{counts}."
    if atomic:
        return f"{failed:,} of {rows(total)} failed, so nothing was saved (all-or-nothing)."
    return f"{failed:,} of {rows(total)} failed; {done} {success_records:,}{counts}."


def check_only(message: str) -> str:
    """``message`` marked as a check's, once."""
    if message.startswith("Check only"):
        return message
    return f"Check only, nothing was saved. {message}".strip()


def all_or_nothing_rolled_back(message: str) -> str:
    """``message`` of an all-or-nothing run that was rolled back, saying so once."""
    if "nothing was saved" in message.lower():
        return message
    return (
        f"{_clause(message)}, so nothing was saved (all-or-nothing)."
        if message
        else ("Nothing was saved (all-or-nothing).")
    )


def out_of_scope(verbose_name: str, operation: str, *, queued: bool) -> str:
    """Why a row the run may no longer write was left alone."""
    verb = "delete" if operation == "delete" else "change"
    since = " (it changed after the task was submitted)" if queued else ""
    return f"This {verbose_name} is no longer one you may {verb}{since}, so it was left as it is."


def job_not_queued(operation: str, *, reachable: bool) -> str:
    """The broker refused the job."""
    why = "reported an error" if reachable else "is not reachable"
    return f"The task could not be queued because the task queue {why}; {nothing_saved(operation)}."


def cancelled(operation: str, *, done: int | None = None, total: int | None = None) -> str:
    """A cancelled run: before it started (``done`` None), or after ``done`` of ``total`` rows."""
    if done is None:
        return f"Cancelled before it started; {nothing_saved(operation)}."
    return f"Cancelled after {done:,} of {rows(total or 0)}; {nothing_saved(operation)}."


def locking_rows(total: int | None = None) -> str:
    """The phase a background run shows while its worker freezes and locks its selection."""
    return "Locking rows…" if total is None else f"Locking {rows(total)}…"


def nothing_to_lock(verbose_name_plural: str, operation: str) -> str:
    """A background run whose selection held no row by the time its worker locked it."""
    return (
        f"None of the selected {verbose_name_plural} could be locked (they are gone, or you may no "
        f"longer change them); {nothing_saved(operation)}."
    )


def cancel_notice(task_pk: int, operation: str, *, started: bool) -> str:
    """What the person who pressed Cancel is told."""
    if started:
        return f"Task #{task_pk} will stop at its next batch; nothing it did will be saved."
    return f"Task #{task_pk} was cancelled before it started; {nothing_saved(operation)}."


def nothing_to_cancel(task_pk: int, ended: str) -> str:
    """A cancel of a run that has already ended (``ended``: its status, e.g. "succeeded")."""
    return f"Task #{task_pk} has already ended ({ended}), so there is nothing to cancel."


def run_ended(pk: int, kind: str, *, check: bool, status: str, outcome: str) -> str:
    """The notice that a background run ended: ``"Bulk edit #12 succeeded: Updated ..."``."""
    what = f"Check of a {kind.lower()}" if check else kind
    return f"{what} #{pk} {status}: {outcome}" if outcome else f"{what} #{pk} {status}."


def cannot_retry(pk: int) -> str:
    """Why run ``pk``'s failed rows cannot be retried from its page."""
    return (
        f"The failed rows of run #{pk} cannot be retried from here: it is not a finished bulk edit "
        "with failed rows, not every failed row is listed, or the screen it came from is gone."
    )


def no_heartbeat(operation: str, silent_seconds: int) -> str:
    """A running task whose worker went silent."""
    return (
        f"The worker stopped responding (no heartbeat for {silent_seconds} s), so the task was ended; "
        f"{nothing_saved(operation)}."
    )


def never_picked_up(operation: str, queued_seconds: int) -> str:
    """A queued task whose job is gone."""
    return (
        f"The task was never picked up by a worker (queued for more than {queued_seconds} s); "
        f"{nothing_saved(operation)}."
    )


FailureCause = Literal["bad_input", "misconfigured", "model_gone", "timeout", "unexpected"]


def task_failed(operation: str, cause: FailureCause, *, detail: str = "", task_name: str = "") -> str:
    """Why a background run stopped with an error, safe to show to its owner.

    ``detail``: the readable error (bad input, misconfiguration) or the model label (model
    gone); ``task_name`` points an administrator at the worker log for anything unexpected.
    """
    nothing = nothing_saved(operation)
    if cause == "bad_input":
        return f"{detail} ({nothing.capitalize()}.)"
    if cause == "misconfigured":
        return f"The task could not start, so {nothing}: {detail}"
    if cause == "model_gone":
        return f"The model {detail!r} no longer exists, so {nothing}."
    if cause == "timeout":
        return (
            f"The task ran longer than the worker's time limit (Q_CLUSTER 'timeout') and was "
            f"stopped; {nothing}. Raise the timeout or select fewer rows."
        )
    return (
        f"The task stopped because of an unexpected error; {nothing}. "
        f"The details are in the worker log under {task_name}."
    )


_CANNOT_UNDO = {
    "running": "Run #{run} has not ended yet; undo it once it has.",
    "check": "Run #{run} was a check and saved nothing, so there is nothing to undo.",
    "no_ledger": (
        "Run #{run} has no row-by-row record (it ran before the run ledger, or with "
        "BULK_RUN_LEDGER off), so it cannot be undone."
    ),
    "pruned": "The row details of run #{run} were removed after {days} days, so it can no longer be undone.",
    "nothing_changed": "Run #{run} changed no rows, so there is nothing to undo.",
    "undone": "Run #{run} was already undone by run #{by}. Undo run #{by} to apply it again.",
    "cascaded": (
        "Run #{run} also removed {count:,} related rows through cascades; restoring only the "
        "rows it was asked to delete would bring back half of what went, so it cannot be undone."
    ),
    "restore": "Run #{run} restored deleted rows; to remove them again, select them and delete them.",
    "import_undo": "Run #{run} undid an import; to bring its rows back, import the file again.",
}


def cannot_undo(run: int, why: str, *, days: int | None = None, by: int | None = None, count: int = 0) -> str:
    """Why run ``run`` cannot be undone; ``why`` is one of the keys of ``_CANNOT_UNDO``."""
    return _CANNOT_UNDO[why].format(run=run, days=days, by=by, count=count)


def import_undo_not_allowed(plural: str) -> str:
    """An undo of an import deletes the rows it created and writes back those it updated."""
    return (
        f"You may not undo this import: undoing it deletes the {plural} it created and restores "
        f"the {plural} it updated, which needs the permissions to delete and change {plural}."
    )


def nothing_to_undo(run: int) -> str:
    """Every row the run changed is gone or outside the screen the undo was asked from."""
    return (
        f"None of the rows run #{run} changed can be undone here: they were deleted since, "
        "or this screen does not show them."
    )


def undo_conflicts(conflicts: int, run: int) -> str:
    """The sentence added to an undo's summary when rows had changed since."""
    rows_word = "row was" if conflicts == 1 else "rows were"
    return f" {conflicts:,} {rows_word} changed since run #{run} and left as they are (conflicts)."


_CANNOT_APPLY = {
    "running": "Run #{run} has not ended yet; apply it once it has.",
    "not_a_check": "Run #{run} was not a check; its changes were already applied where they could be.",
    "not_rolled_back": (
        "Only a check, or an all-or-nothing run that saved nothing because rows failed, "
        "can be applied to the rows that passed; run #{run} is neither."
    ),
}


def cannot_apply(run: int, why: str) -> str:
    """Why run ``run``'s values cannot be applied; ``why`` is one of the keys of ``_CANNOT_APPLY``."""
    return _CANNOT_APPLY[why].format(run=run)


def nothing_to_apply(run: int) -> str:
    """None of the run's rows is left to write."""
    return (
        f"None of the rows of run #{run} can be written here: they were deleted since, "
        "or this screen does not show them."
    )


def undo_done(run: int, summary: str) -> str:
    """The toast after an undo made in the request: which run, then its summary."""
    return f"Undo of run #{run}: {summary}"


def undo_started(run: int, task: int) -> str:
    """The toast after an undo was handed to a worker."""
    return f"Undo of run #{run} is running on a worker as run #{task}."


# ----- import -------------------------------------------------------------------------------


def import_row_error(line: int, text: str) -> str:
    """A row error of an import, with the file line it came from."""
    return f"Line {line}: {text}"


def import_line_of(text: str) -> int | None:
    """The line an ``import_row_error()`` sentence names; None for any other sentence."""
    head, colon, _ = text.partition(": ")
    number = head.removeprefix("Line ")
    return int(number) if colon and head.startswith("Line ") and number.isdigit() else None


def import_duplicate_key(key: str, first: int) -> str:
    """A row of the file whose key an earlier row already has."""
    return f"The same {key} as line {first}; each row must have its own."


def import_skipped(line: int) -> str:
    """A row an import that skips existing rows left alone."""
    return f"Line {line}: a row with this key exists already, so it was skipped."


def import_summary(
    *,
    created: int,
    updated: int,
    unchanged: int,
    skipped: int,
    failed: int,
    total: int,
    dry_run: bool,
    atomic: bool,
) -> str:
    """A one-line summary of an import (or of its check)."""
    parts = [f"{created:,} new", f"{updated:,} updated", f"{unchanged:,} unchanged", f"{skipped:,} skipped"]
    counts = ", ".join(parts)
    if dry_run:
        prefix = "Check only, nothing was saved: "
        if not failed:
            return f"{prefix}{rows(total)} checked; {counts}."
        whole = " all-or-nothing imports none of them;" if atomic else ""
        return f"{prefix}{failed:,} of {rows(total)} would fail;{whole} {counts}."
    if not failed:
        return f"Imported {rows(total)}: {counts}."
    if atomic:
        return f"{failed:,} of {rows(total)} failed, so nothing was saved (all-or-nothing)."
    return f"{failed:,} of {rows(total)} failed; {counts}."


def import_undo_conflict(run: int | None, fields: str) -> str:
    """A row an undo of an import left alone: it changed after the import."""
    return f"Changed since import #{run} ({fields}); left as it is."


def import_undo_summary(
    *, deleted: int, restored: int, conflicts: int, failed: int, total: int, dry_run: bool, atomic: bool
) -> str:
    """A one-line summary of the undo of an import."""
    left = f", {conflicts:,} changed since and left as they are" if conflicts else ""
    counts = f"{deleted:,} created rows deleted, {restored:,} updated rows restored{left}"
    if dry_run:
        return f"Check only, nothing was saved: of {rows(total)}, {counts}."
    if failed and atomic:
        return f"{failed:,} of {rows(total)} could not be undone, so nothing was saved (all-or-nothing)."
    if failed:
        return f"{failed:,} of {rows(total)} could not be undone; {counts}."
    return f"Undid {rows(total)}: {counts}."


def import_started(task: int, count: int) -> str:
    """The toast after an import was handed to a worker."""
    return f"The import of {rows(count)} is running on a worker as run #{task}."


def refused_by_hook(label: str, reasons: list[str]) -> str:
    """A single-object write a lifecycle hook refused: ``"“Book 1” cannot be deleted: <reasons>"``."""
    return f"“{label}” cannot be deleted: {' '.join(reasons)}"
