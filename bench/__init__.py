"""Benchmarks for Tacit, run by hand or with ``make bench`` (never by the test suite).

Each benchmark measures our code and the raw engine doing the same work in one run,
interleaved, and prints ratios; docs/BENCHMARKS.md records the figures and the method.

- ``python -m bench.vault --notes N [--json]``: the encrypted vault (KDF, unlock, note
  create/list/open, full-text search) vs raw sqlcipher3 and stdlib sqlite3.
"""
