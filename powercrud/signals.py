"""Signals powercrud sends, for host projects to connect to."""

from __future__ import annotations

from django.dispatch import Signal

bulk_run_finished = Signal()
"""Sent once a bulk run has ended and its outcome is committed: in the request or on a worker,
a check or an apply, succeeded, failed or cancelled.

``sender`` is ``BulkTask``; ``run`` is the run record (its ``mode``, ``dry_run``, ``status``,
``owner``, counts and ``message`` say what happened). A receiver that sends mail or a chat
message for background runs only checks ``run.mode == "async"``.
"""
