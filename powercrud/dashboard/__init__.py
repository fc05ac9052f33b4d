"""The task dashboard: async bulk tasks with live progress, their row errors, outcomes and cancel.

``BulkTaskView`` is powercrud's own list machinery over ``BulkTask`` (a ``CRUDView`` with the
LIST and DETAIL roles, filtered, sorted and paginated by ``PowerCRUDMixin``). Three task
*actions* share its scoping and permission check, so every URL of one task answers the same
way to the same user:

==========================  =========================  ============================================
URL (under the include)     name                       what
==========================  =========================  ============================================
``tasks/``                  ``powercrud:tasks-list``     the list, polling while a shown task is active
``tasks/<pk>/``             ``powercrud:tasks-detail``   one task: progress, changes, timings, errors
``tasks/<pk>/progress/``    ``powercrud:tasks-progress`` the ``task_progress.html`` fragment (modal, list)
``tasks/<pk>/outcomes.csv`` ``powercrud:tasks-outcomes`` ``pk,outcome,field,message`` rows, streamed
``tasks/<pk>/cancel/``      ``powercrud:tasks-cancel``   POST: cancel a queued task, stop a running one
==========================  =========================  ============================================

Who sees what: every signed-in user sees the tasks they started; staff see every task
(``get_queryset()``). A task outside that set is a 404 on every URL. Viewing needs no model
permission (``role_permissions`` relaxes LIST and DETAIL to "signed in"); cancelling needs to
own the task or hold ``powercrud.change_bulktask`` (``may_cancel()``).
"""

from powercrud.dashboard.describe import format_duration, model_display_name
from powercrud.dashboard.outcomes import outcome_rows
from powercrud.dashboard.views import BulkTaskView

__all__ = ["BulkTaskView", "format_duration", "model_display_name", "outcome_rows"]
