"""powercrud's own test fixtures: a small catalogue app the package's tests run against.

It mirrors the shapes of the demo project's models, so a test of the package never depends on
the demo: a book with a protected foreign key, a nullable one, choices, a validated decimal,
a date, a boolean with a verbose name and a many-to-many; a model with a ``post_save``
receiver and a ``clean()`` (bulk edits take the per-object path); a UUID primary key.
"""
