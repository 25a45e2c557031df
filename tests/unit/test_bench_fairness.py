"""The fairness bench's bookkeeping (bench/fairness.py), without a database: where in a
sequence of claims the small tenants' jobs had all started, and that ``run_all`` knows
the module. The measurements themselves are run by ``python -m bench.run_all --only
fairness --quick``, never timed in a test."""

from __future__ import annotations

import importlib
import uuid

import pytest
from bench import fairness
from bench.harness import BenchError

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def _log(*claims: list[uuid.UUID]) -> fairness.ClaimLog:
    log = fairness.ClaimLog()
    for index, tenants in enumerate(claims):
        log.add(0.5 * (index + 1), tenants)
    return log


def test_small_tenants_started_in_the_first_claim() -> None:
    figures = fairness.fair_figures(_log([A] * 80 + [B] * 10 + [C] * 10), A, (B, C), 10)
    assert figures == fairness.FairFigures(claims=1, seconds=0.5, big_before=0, big_same_claim=80)


def test_counts_the_big_tenants_jobs_of_earlier_claims() -> None:
    log = _log([A] * 100, [A] * 95 + [B] * 5, [A] * 90 + [B] * 5 + [C] * 5, [C] * 5, [A] * 100)
    figures = fairness.fair_figures(log, A, (B, C), 10)
    assert figures == fairness.FairFigures(claims=4, seconds=2.0, big_before=285, big_same_claim=0)


def test_refuses_a_log_where_a_small_tenant_never_finished() -> None:
    with pytest.raises(BenchError, match="did not all start"):
        fairness.fair_figures(_log([A] * 100, [B] * 10, [C] * 9), A, (B, C), 10)


def test_the_spread_jobs_cover_every_type_and_mix_priorities() -> None:
    specs = fairness.job_specs(0, 0, 60)
    assert {s["type"] for s in specs} == set(fairness.TYPES)
    assert {s.get("priority", 0) for s in specs} == set(fairness.PRIORITIES)


def test_run_all_selects_the_module_and_its_measurements() -> None:
    # Imported by name: run_all imports every module, peers' optional libraries included,
    # which mypy need not follow from here.
    run_all = importlib.import_module("bench.run_all")
    assert run_all.select(["fairness"]) == {"fairness": frozenset()}
    assert run_all.select(["fairness.fair_claim"]) == {"fairness": frozenset({"fair_claim"})}
    with pytest.raises(BenchError, match="no 'nothing'"):
        run_all.select(["fairness.nothing"])


def test_tenant_ids_random_and_time_ordered() -> None:
    random_ids = fairness.tenant_ids("random", 50, seed=1)
    ordered = fairness.tenant_ids("time-ordered", 50, seed=1)
    assert {t.version for t in random_ids} == {4}
    assert {t.version for t in ordered} == {7}
    assert ordered == sorted(ordered)
    assert len(set(random_ids)) == len(set(ordered)) == 50
    # Time-ordered ids made within a second share their first 8 hex digits.
    assert len({t.hex[:8] for t in ordered}) == 1
