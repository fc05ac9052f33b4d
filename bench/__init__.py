"""Benchmarks: ``python -m bench.list_page --rows 100000`` and friends. See ``bench/README.md``."""
