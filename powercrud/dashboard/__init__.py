"""The task dashboard: async bulk tasks with live progress, their row errors, outcomes and cancel.

``BulkTaskView`` is powercrud's own list machinery over ``BulkTask`` (a ``CRUDView`` with the
LIST and DETAIL roles, filtered, sorted and paginated by ``PowerCRUDMixin``). Three task
*actions* share its scoping and permission check, so every URL of one task answers the same
way to the same user:

=============================  =================================  ===========================================
URL (under the include)        name                               what
=============================  =================================  ===========================================
``tasks/``                     ``powercrud:tasks-list``           the list, polling while a task is active
``tasks/<pk>/``                ``powercrud:tasks-detail``         one task: progress, changes, timings, rows
``tasks/<pk>/progress/``       ``powercrud:tasks-progress``       the ``task_progress.html`` fragment
``tasks/<pk>/outcomes.csv``    ``powercrud:tasks-outcomes``       every row of the run, CSV, streamed
``tasks/<pk>/outcomes.jsonl``  ``powercrud:tasks-outcomes-json``  the same as JSON Lines, streamed
``tasks/<pk>/cancel/``         ``powercrud:tasks-cancel``         POST: cancel a queued or running task
=============================  =================================  ===========================================

The task page of a finished run lists its rows from the run ledger (``runrows.rows_page()``:
``?outcome=``, ``?page=``); ``docs/reference/outcomes.md`` describes the downloads.

Who sees what: every signed-in user sees the tasks they started; staff see every task
(``get_queryset()``). A task outside that set is a 404 on every URL. Viewing needs no model
permission (``role_permissions`` relaxes LIST and DETAIL to "signed in"); cancelling needs to
own the task or hold ``powercrud.change_bulktask`` (``may_cancel()``).
"""

from powercrud.dashboard.describe import format_duration, model_display_name
from powercrud.dashboard.outcomes import outcome_rows
from powercrud.dashboard.views import BulkTaskView

__all__ = ["BulkTaskView", "format_duration", "model_display_name", "outcome_rows"]
