"""powercrud's own pages: the task dashboard. Include it under any prefix::

    path("powercrud/", include("powercrud.urls")),

URL names live in the ``powercrud`` namespace: ``powercrud:index`` (the prefix itself, which
redirects to the task list), ``powercrud:tasks-list``, ``tasks-detail``, ``tasks-progress``,
``tasks-outcomes``, ``tasks-outcomes-json``, ``tasks-run-json`` (the run as JSON), ``tasks-cancel`` and
``tasks-cancel-json`` (the cancel for programs) (see ``powercrud.dashboard``).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse

from powercrud.dashboard import BulkTaskView

app_name = "powercrud"


def index(request: HttpRequest) -> HttpResponseRedirect:
    """The namespace root: a temporary redirect to the task list, under the same namespace."""
    match = request.resolver_match
    namespace = match.namespace if match and match.namespace else app_name
    return HttpResponseRedirect(reverse(f"{namespace}:{BulkTaskView.get_url_base()}-list"))


urlpatterns = [path("", index, name="index"), *BulkTaskView.get_urls()]
