"""powercrud's own pages: the task dashboard. Include it under any prefix::

    path("powercrud/", include("powercrud.urls")),

URL names live in the ``powercrud`` namespace: ``powercrud:tasks-list``, ``tasks-detail``,
``tasks-progress``, ``tasks-outcomes`` and ``tasks-cancel`` (see ``powercrud.dashboard``).
"""

from __future__ import annotations

from powercrud.dashboard import BulkTaskView

app_name = "powercrud"

urlpatterns = BulkTaskView.get_urls()
