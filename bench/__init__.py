"""JobForge benchmarks: measurements against a real PostgreSQL, never assertions.

Run them with ``make bench`` (``python -m bench.run_all``); see ``bench/run_all.py`` for the
options and ``bench/harness.py`` for how databases, timing and machine facts are handled.
Speed is never asserted in the test suite: numbers depend on the machine and its load, so
they are measured here, written to ``bench/results/latest.json`` and read by people.
"""
