"""Reliability suite: faults (worker death, database errors, broker down), races and load.

See docs/reliability.md for the guarantees these tests prove.
"""
