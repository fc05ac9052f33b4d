"""The async side of bulk runs, one module per process role (as django-q2 splits its own).

``launch`` (in the request: record the run, lock its rows, enqueue after commit), ``worker``
(the django-q2 job), ``monitor`` (finishing, cancelling, ending runs whose worker died),
``progress`` (live progress, heartbeat and cancel requests outside the worker's transaction)
and ``locks`` (row locks, and the locks a run in the request holds). These modules call into
the request-free core in ``powercrud.bulk``; the core imports nothing from here.
"""
