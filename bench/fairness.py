"""Fair claims and limits (docs/execution-plane-contract.md, "Limits"): what keeping
concurrency and rate limits costs the claim, and how soon a small tenant's jobs start
behind a large tenant's backlog.

**Limits vs none.** Worker processes (1 and 4, the ``core_queue`` pool) drain a queue of
jobs spread over four tenants and three types with mixed priorities, claiming 100 at a
time and completing each batch with one ``complete_jobs`` call, as ``core_queue``'s
contract row does, through the SDK. The same jobs are drained in four states of the
limits table, in the same run, the blocks rotating:

- ``empty``: no limit row at all (the claim's one-probe fast path);
- ``defaults``: a fresh install's rows only (the ``medium`` and ``high`` cost-tier caps,
  which apply to template types: none of the bench's), so every claim asks for limits
  and finds none that applies;
- ``limits``: the defaults plus three limits that apply: one of a type, one of a tenant
  (a cap and a rate, so every claim also writes the window count), one of a type within
  a tenant, each well above what the workers can hold (a worker holds at most one claim
  of 100), so they cost what keeping them costs without ever holding a job back;
- ``bare``: the same rows in the bare table (``bench/bare.py``), the yardstick of
  ``core_queue``: a FIFO claim with no tenants, priorities or limits.

The issue's target is ``limits`` at least 0.8x ``defaults`` (the same install without
the three limits). Every drain is checked: every job ``succeeded`` after one attempt, the
workers completed as many as were queued, and under ``limits`` the rate limit counted
starts.

**The fairness scenario.** Tenant A has a backlog (100,000 jobs; ``--quick`` 10,000) and
then tenants B and C enqueue 10 each, all of one type and priority. One claim loop (the
SDK's ``claim_jobs`` of 100 and ``complete_jobs``, in this process) runs until every job
of B and C has started, then a few more claims to measure how fast it drains the backlog.
The figures: the claims and the time until the last job of B and C started (the return of
the claim that started it), and how many of A's jobs started in earlier claims and in
that claim. Beside it the same scenario on a FIFO queue, measured: the bare table's claim
orders by (run_at, id), and B's and C's jobs were enqueued after A's backlog, so it
starts them after the backlog; and the FIFO expectation at JobForge's own drain rate
(backlog / the rate of the same loop measured on the backlog), computed, not measured.

**Many tenants.** With more tenants than a claim's size, the contract says a claim serves
one job of each of N tenants from a random starting tenant, so every tenant is served
within a few claims. 300 tenants queue 30 jobs each (one type); the same loop claims 100
and completes them until every tenant has had a job started, and counts the claims. Twice:
with random (version 4) tenant ids, and with ids that share a prefix as time-ordered ids
(version 7, made within a second) do, since the starting tenant is drawn from the whole
uuid range.
"""

from __future__ import annotations

import math
import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import jobforge_sdk
from jobforge_sdk import JobForgeClient

from . import bare, core_queue
from .core_queue import CONSUMERS, DrainCommand, DrainReport, WorkerPool
from .harness import (
    SDK_PATH,
    BenchConfig,
    BenchDatabase,
    BenchError,
    ModuleResult,
    Series,
    Table,
    log,
    rotate,
    scratch_database,
)

NAME = "fairness"
MEASUREMENTS = ("limits", "fair_claim", "many_tenants")

TENANTS = tuple(uuid.UUID(f"00000000-0000-4000-8000-00000fa1{i:04x}") for i in range(4))
TYPES = ("bench.fair.mail", "bench.fair.pdf", "bench.fair.sync")
# Mixed priorities, cycled job by job: most at the default, some above and below it.
PRIORITIES = (0, 0, 5, 0, -3, 1)
BATCH = 100
WORKER_COUNTS = (1, 4)
LIMIT_STATES = ("empty", "defaults", "limits", "bare")
LIMIT_TARGET = 0.8  # the issue's: with the limits at least 0.8x the same run without them

# The three limits of the ``limits`` state. Four workers hold at most 4 x BATCH = 400
# jobs at once and drain a few thousand a second, far inside these caps and rate.
GENEROUS_RUNNING = 5_000
GENEROUS_STARTS = 1_000_000
GENEROUS_PER = timedelta(minutes=1)
# A fresh install's cost-tier caps (27_limits.sql), restored for ``defaults``/``limits``.
DEFAULT_TIER_CAPS = (("medium", 16), ("high", 4))

# The fairness scenario: tenant A's backlog, then B and C.
BIG = TENANTS[0]
SMALL = (TENANTS[1], TENANTS[2])
SMALL_JOBS = 10
FAIR_TYPE = TYPES[0]


@dataclass(frozen=True)
class Sizes:
    """Jobs per drain (by workers) and the scenario's backlog (the issue's). Claiming 100
    and completing them in one call drains 10,000-20,000 jobs/s here, so 30,000 jobs keep
    a drain 2-3 s long, long enough to average out scheduling noise."""

    limits_jobs: dict[int, int]
    backlog: int
    extra_claims: int


FULL = Sizes(limits_jobs={1: 30_000, 4: 30_000}, backlog=100_000, extra_claims=50)
QUICK = Sizes(limits_jobs={1: 4_000, 4: 4_000}, backlog=10_000, extra_claims=20)


def job_specs(tenant_index: int, start: int, count: int) -> list[dict[str, Any]]:
    """Jobs of one tenant, the types and priorities cycling (the bare table ignores the
    priority: its claim is FIFO)."""
    specs = []
    for n in range(start, start + count):
        spec: dict[str, Any] = {"type": TYPES[n % len(TYPES)], "payload": core_queue.payload(n)}
        priority = PRIORITIES[(n + tenant_index) % len(PRIORITIES)]
        if priority:
            spec["priority"] = priority
        specs.append(spec)
    return specs


def _enqueue(conn: psycopg.Connection[Any], tenant: uuid.UUID, specs: list[dict[str, Any]]) -> None:
    for start in range(0, len(specs), 1_000):
        conn.execute(core_queue.RAW_ENQUEUE_IDS, (tenant, Jsonb(specs[start : start + 1_000])))


def fill_spread(db: BenchDatabase, jobs: int, state: str) -> None:
    """``jobs`` jobs, a quarter per tenant, tenant after tenant in batches of 1,000 (setup,
    not timed); then fresh statistics."""
    per_tenant = jobs // len(TENANTS)
    with psycopg.connect(db.url, autocommit=True) as conn:
        for start in range(0, per_tenant, 1_000):
            count = min(1_000, per_tenant - start)
            for index, tenant in enumerate(TENANTS):
                specs = job_specs(index, start, count)
                if state == "bare":
                    bare.fill_jobs(conn, tenant, [specs])
                else:
                    _enqueue(conn, tenant, specs)
    if state != "bare":
        db.analyze()


def set_limits(db: BenchDatabase, state: str) -> int:
    """Put the limits table in ``state`` through the SDK (``set_limit``); returns how many
    limit rows there are. The table is emptied first as its owner (setup, not timed)."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("delete from public.jobforge_limits")
    if state in ("empty", "bare"):
        return 0
    client = JobForgeClient.from_postgres(db.url, min_size=1, max_size=1)
    try:
        for tier, cap in DEFAULT_TIER_CAPS:
            client.set_limit(cost_tier=tier, max_running=cap)
        if state == "limits":
            client.set_limit(type=TYPES[0], max_running=GENEROUS_RUNNING)
            client.set_limit(
                tenant_id=TENANTS[0],
                max_running=GENEROUS_RUNNING,
                max_starts=GENEROUS_STARTS,
                per=GENEROUS_PER,
            )
            client.set_limit(type=TYPES[1], tenant_id=TENANTS[1], max_running=GENEROUS_RUNNING)
        return len(client.list_limits())
    finally:
        client.close()


def verify_spread(
    db: BenchDatabase, jobs: int, state: str, reports: list[DrainReport]
) -> dict[str, Any]:
    """Every job ended ``succeeded`` after exactly one attempt, and the workers completed
    as many as were queued; under ``limits`` the tenant's rate limit counted starts."""
    table = bare.JOBS if state == "bare" else "public.jobforge_jobs"
    with psycopg.connect(db.url, autocommit=True) as conn:
        row = conn.execute(
            f"select count(*), count(*) filter (where status = 'succeeded' and attempts = 1)"
            f" from {table}"
        ).fetchone()
        total, once = (int(row[0]), int(row[1])) if row else (-1, -1)
        window_starts = None
        if state == "limits":
            found = conn.execute(
                "select window_starts from public.jobforge_limits"
                " where tenant_id = %s and type is null",
                (TENANTS[0],),
            ).fetchone()
            window_starts = int(found[0]) if found else None
    completed = sum(r.completed for r in reports)
    ok = total == jobs and once == jobs and completed == jobs
    if state == "limits":
        ok = ok and bool(window_starts)
    return {
        "ok": ok,
        "jobs": total,
        "succeeded_once": once,
        "completed_by_workers": completed,
        **({"rate_window_starts": window_starts} if state == "limits" else {}),
    }


@dataclass
class LimitsResult:
    """The four states' series for one worker count."""

    workers: int
    jobs: int
    series: dict[str, Series] = field(default_factory=lambda: {s: Series() for s in LIMIT_STATES})
    checks: list[dict[str, Any]] = field(default_factory=list)

    def ratio(self, a: str, b: str) -> float:
        x, y = self.series[a], self.series[b]
        return x.median / y.median if x.runs and y.runs and y.median else math.nan

    def paired(self, a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(self.series[a].rates, self.series[b].rates, strict=False)]


def measure_limits(
    db: BenchDatabase, repeats: int, sizes: Sizes, pool: Callable[[int], WorkerPool]
) -> list[LimitsResult]:
    out = []
    for workers in WORKER_COUNTS:
        jobs = sizes.limits_jobs[workers]
        result = LimitsResult(workers, jobs)
        for repeat in range(repeats):
            for state in rotate(LIMIT_STATES, repeat):
                db.reset()
                limit_rows = set_limits(db, state)
                fill_spread(db, jobs, state)
                variant = "bare" if state == "bare" else "sdk"
                command = DrainCommand(
                    variant, db.url, BATCH, core_queue.WORKER_RUN_TIMEOUT_S, many=True
                )
                seconds, reports = pool(workers).drain(command)
                check = verify_spread(db, jobs, state, reports)
                check.update(state=state, repeat=repeat, limit_rows=limit_rows)
                result.checks.append(check)
                rate = result.series[state].add(
                    jobs,
                    seconds,
                    sum(r.cpu_s for r in reports),
                    per_worker=[r.completed for r in reports],
                    claims=sum(r.claims for r in reports),
                    verified=check["ok"],
                )
                log(
                    f"  limits {workers}w {state}: {rate:,.0f} jobs/s,"
                    f" {limit_rows} limit rows, verified={check['ok']}"
                )
                if not check["ok"]:
                    raise BenchError(f"limits {workers}w {state}: verification failed: {check}")
        out.append(result)
    return out


# -- the fairness scenario --------------------------------------------------------------


def tenant_of(job: Any) -> uuid.UUID:
    """The tenant of a claimed job as each consumer returns it: a ``JobRow`` (SDK) or a
    row tuple, id first and tenant second (bare)."""
    if isinstance(job, tuple):
        return uuid.UUID(str(job[1]))
    return uuid.UUID(str(job.tenant_id))


@dataclass
class ClaimLog:
    """What one claim loop saw: per claim, when it returned (seconds from the first
    claim's start) and how many jobs of each tenant it started."""

    returned_at: list[float] = field(default_factory=list)
    by_tenant: list[dict[uuid.UUID, int]] = field(default_factory=list)

    def add(self, at: float, tenants: Sequence[uuid.UUID]) -> None:
        counts: dict[uuid.UUID, int] = {}
        for tenant in tenants:
            counts[tenant] = counts.get(tenant, 0) + 1
        self.returned_at.append(at)
        self.by_tenant.append(counts)


@dataclass(frozen=True)
class FairFigures:
    """The scenario's figures, read from a ``ClaimLog``: the claims and seconds until the
    last of the small tenants' jobs started, and how many of the big tenant's jobs started
    in earlier claims and in that claim."""

    claims: int
    seconds: float
    big_before: int
    big_same_claim: int


def fair_figures(
    log_: ClaimLog, big: uuid.UUID, small: Sequence[uuid.UUID], small_jobs: int
) -> FairFigures:
    """Where in ``log_`` the last of ``small_jobs`` jobs of each ``small`` tenant started."""
    started = dict.fromkeys(small, 0)
    big_before = 0
    for index, counts in enumerate(log_.by_tenant):
        for tenant in small:
            started[tenant] += counts.get(tenant, 0)
        if all(n >= small_jobs for n in started.values()):
            return FairFigures(
                claims=index + 1,
                seconds=log_.returned_at[index],
                big_before=big_before,
                big_same_claim=counts.get(big, 0),
            )
        big_before += counts.get(big, 0)
    raise BenchError(f"the small tenants' jobs did not all start: {started}")


def fill_scenario(db: BenchDatabase, backlog: int, state: str) -> None:
    """A's backlog first, then B's and C's jobs: all one type, default priority."""

    def specs(count: int) -> list[dict[str, Any]]:
        return [{"type": FAIR_TYPE, "payload": core_queue.payload(n)} for n in range(count)]

    with psycopg.connect(db.url, autocommit=True) as conn:
        for tenant, count in ((BIG, backlog), *((t, SMALL_JOBS) for t in SMALL)):
            batches = [specs(min(1_000, count - s)) for s in range(0, count, 1_000)]
            for batch in batches:
                if state == "bare":
                    bare.fill_jobs(conn, tenant, [batch])
                else:
                    _enqueue(conn, tenant, batch)
    if state != "bare":
        db.analyze()


@dataclass
class ScenarioRun:
    figures: FairFigures
    claims: int
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else math.nan


def run_scenario(db: BenchDatabase, sizes: Sizes, state: str) -> ScenarioRun:
    """Fill, then claim BATCH and complete the batch until every small job started, then
    ``extra_claims`` more; one connection, this process."""
    db.reset()
    set_limits(db, "defaults" if state == "sdk" else "bare")
    fill_scenario(db, sizes.backlog, state)
    claimed = ClaimLog()
    with closing(CONSUMERS[state](db.url, "bench-fair")) as consumer:
        consumer.warm_up()
        figures: FairFigures | None = None
        extra = 0
        jobs = 0
        began = time.perf_counter()
        while extra < sizes.extra_claims:
            batch = consumer.claim(BATCH)
            claimed.add(time.perf_counter() - began, [tenant_of(job) for job in batch])
            if not batch:
                break
            consumer.complete_many(batch)
            jobs += len(batch)
            if figures is None:
                small_started = sum(counts.get(t, 0) for counts in claimed.by_tenant for t in SMALL)
                if small_started >= SMALL_JOBS * len(SMALL):
                    figures = fair_figures(claimed, BIG, SMALL, SMALL_JOBS)
            else:
                extra += 1
            if time.perf_counter() - began > core_queue.WORKER_RUN_TIMEOUT_S:
                raise BenchError(f"fair_claim {state}: exceeded the time limit")
        seconds = time.perf_counter() - began
    if figures is None:
        figures = fair_figures(claimed, BIG, SMALL, SMALL_JOBS)  # raises: did not start
    table = bare.JOBS if state == "bare" else "public.jobforge_jobs"
    with psycopg.connect(db.url, autocommit=True) as conn:
        row = conn.execute(
            f"select count(*) filter (where status = 'succeeded' and attempts = 1),"
            f" count(*) filter (where attempts > 1) from {table}"
        ).fetchone()
    if row is None or int(row[0]) != jobs or int(row[1]) != 0:
        raise BenchError(f"fair_claim {state}: {jobs} completed, database says {row}")
    return ScenarioRun(figures, len(claimed.by_tenant), jobs, seconds)


def measure_fair_claim(
    db: BenchDatabase, repeats: int, sizes: Sizes
) -> dict[str, list[ScenarioRun]]:
    runs: dict[str, list[ScenarioRun]] = {"sdk": [], "bare": []}
    for repeat in range(repeats):
        for state in rotate(("sdk", "bare"), repeat):
            run_ = run_scenario(db, sizes, state)
            runs[state].append(run_)
            f = run_.figures
            log(
                f"  fair_claim {state}: B and C all started after {f.claims} claim(s),"
                f" {f.seconds * 1e3:,.1f} ms; A started {f.big_before} before,"
                f" {f.big_same_claim} in that claim; {run_.rate:,.0f} jobs/s"
            )
    return runs


# -- many tenants -----------------------------------------------------------------------

MANY_TENANTS = 300
MANY_JOBS = 30
MANY_MAX_CLAIMS = 200  # every job: 300 x 30 / 100 = 90 claims; more means a broken loop
TENANT_ID_KINDS = ("random", "time-ordered")


def tenant_ids(kind: str, count: int, seed: int) -> list[uuid.UUID]:
    """``count`` tenant ids: random (version 4), or as version 7 ids made 1 ms apart (48
    bits of milliseconds since the epoch first, then random bits)."""
    rng = random.Random(seed)
    if kind == "random":
        return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]
    start_ms = 1_765_000_000_000  # December 2025
    ids = []
    for n in range(count):
        value = ((start_ms + n) << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64)
        value |= (0b10 << 62) | rng.getrandbits(62)
        ids.append(uuid.UUID(int=value))
    return ids


@dataclass(frozen=True)
class ManyTenantsRun:
    kind: str
    claims_until_all: int
    tenants_first_claims: list[int]


def run_many_tenants(db: BenchDatabase, kind: str, seed: int) -> ManyTenantsRun:
    """Fill, then claim and complete until every tenant had a job started."""
    db.reset()
    set_limits(db, "defaults")
    tenants = tenant_ids(kind, MANY_TENANTS, seed)
    with psycopg.connect(db.url, autocommit=True) as conn:
        for tenant in tenants:
            specs = [
                {"type": FAIR_TYPE, "payload": core_queue.payload(n)} for n in range(MANY_JOBS)
            ]
            _enqueue(conn, tenant, specs)
    db.analyze()
    served: set[uuid.UUID] = set()
    firsts: list[int] = []
    with closing(CONSUMERS["sdk"](db.url, "bench-many")) as consumer:
        consumer.warm_up()
        claims = 0
        while len(served) < MANY_TENANTS:
            batch = consumer.claim(BATCH)
            claims += 1
            if not batch or claims > MANY_MAX_CLAIMS:
                raise BenchError(f"many_tenants {kind}: {len(served)} tenants served, then stuck")
            consumer.complete_many(batch)
            before = len(served)
            served.update(tenant_of(job) for job in batch)
            if claims <= 3:
                firsts.append(len(served) - before)
    return ManyTenantsRun(kind, claims, firsts)


def measure_many_tenants(db: BenchDatabase, repeats: int) -> dict[str, list[ManyTenantsRun]]:
    runs: dict[str, list[ManyTenantsRun]] = {kind: [] for kind in TENANT_ID_KINDS}
    for repeat in range(repeats):
        for kind in rotate(TENANT_ID_KINDS, repeat):
            got = run_many_tenants(db, kind, seed=repeat)
            runs[kind].append(got)
            log(
                f"  many_tenants {kind}: every tenant started after {got.claims_until_all}"
                f" claims; new tenants in the first claims {got.tenants_first_claims}"
            )
    return runs


def many_tenants_table(runs: dict[str, list[ManyTenantsRun]]) -> Table:
    table = Table(
        title=f"Many tenants: {MANY_TENANTS} tenants queue {MANY_JOBS} jobs each (one type);"
        f" one loop claims {BATCH} and completes them until every tenant had a job started",
        columns=[
            "tenant ids",
            "claims until every tenant had a job started (each run)",
            "tenants served for the first time by claims 1, 2, 3 (first run)",
        ],
    )
    for kind, got in runs.items():
        if got:
            table.rows.append(
                [
                    "random (v4)" if kind == "random" else "time-ordered (v7, made 1 ms apart)",
                    ", ".join(str(r.claims_until_all) for r in got),
                    ", ".join(str(n) for n in got[0].tenants_first_claims),
                ]
            )
    table.notes = [
        f"Draining every job takes {MANY_TENANTS * MANY_JOBS // BATCH} claims; a claim that"
        f" serves {BATCH} different tenants each time would reach all {MANY_TENANTS} in 3.",
    ]
    return table


# -- the report -------------------------------------------------------------------------


def _rate(series: Series) -> str:
    if not series.runs:
        return "—"
    return f"{series.median:,.0f} ({series.min:,.0f}-{series.max:,.0f})"


def _ratio(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}"


def limits_table(results: list[LimitsResult]) -> Table:
    table = Table(
        title="Claim + complete_jobs, batch 100, 4 tenants x 3 types, mixed priorities:"
        " three limits vs none, same run, blocks rotated (jobs/s, median (min-max))",
        columns=[
            "workers",
            "no limit rows",
            "default tier caps",
            "three limits",
            "bare",
            f"limits/defaults (≥ {LIMIT_TARGET})",
            "limits/no rows",
            "defaults/bare",
            "limits/bare",
        ],
    )
    for r in results:
        mark = r.ratio("limits", "defaults")
        met = "?" if math.isnan(mark) else ("✓" if mark >= LIMIT_TARGET else "✗")
        table.rows.append(
            [
                str(r.workers),
                *(_rate(r.series[s]) for s in LIMIT_STATES),
                f"{mark:.3f} {met}",  # 3 digits: 0.796 is not 0.80
                _ratio(r.ratio("limits", "empty")),
                _ratio(r.ratio("defaults", "bare")),
                _ratio(r.ratio("limits", "bare")),
            ]
        )
    table.notes = [
        "no limit rows: the limits table empty; default tier caps: a fresh install"
        " (medium 16, high 4; they apply to template types only, none here); three limits:"
        f" the defaults plus max_running {GENEROUS_RUNNING:,} on a type, max_running"
        f" {GENEROUS_RUNNING:,} and {GENEROUS_STARTS:,} starts per"
        f" {GENEROUS_PER.total_seconds():.0f} s on a tenant, max_running {GENEROUS_RUNNING:,}"
        " on a type within another tenant; bare: core_queue's yardstick (FIFO, no tenants,"
        " no priorities, no limits).",
        "Every drain verified: each job succeeded after one attempt, the workers completed"
        " all; under three limits the tenant's rate limit counted the starts.",
    ]
    return table


def fair_table(runs: dict[str, list[ScenarioRun]], backlog: int) -> Table:
    def med(values: list[float]) -> float:
        return float(statistics.median(values)) if values else math.nan

    table = Table(
        title=f"Fairness: tenant A has {backlog:,} jobs queued, then B and C enqueue"
        f" {SMALL_JOBS} each (one type); one loop claims {BATCH} and completes them"
        " (median of the runs)",
        columns=[
            "queue",
            "claims until all of B and C started",
            "time until then",
            "A's jobs started in earlier claims",
            "A's jobs started in that claim",
            "drain rate, jobs/s",
        ],
    )
    for state, label in (
        ("sdk", "JobForge claim_jobs (measured)"),
        ("bare", "FIFO: the bare table's claim, ORDER BY run_at, id (measured)"),
    ):
        got = runs.get(state) or []
        if not got:
            continue
        table.rows.append(
            [
                label,
                f"{med([r.figures.claims for r in got]):,.0f}",
                f"{med([r.figures.seconds for r in got]) * 1e3:,.1f} ms",
                f"{med([r.figures.big_before for r in got]):,.0f}",
                f"{med([r.figures.big_same_claim for r in got]):,.0f}",
                f"{med([r.rate for r in got]):,.0f}",
            ]
        )
    sdk = runs.get("sdk") or []
    if sdk:
        rate = med([r.rate for r in sdk])
        claims = -(-(backlog + 2 * SMALL_JOBS) // BATCH)
        table.rows.append(
            [
                "FIFO at JobForge's drain rate (computed: backlog / rate)",
                f"{claims:,}",
                f"{(backlog + 2 * SMALL_JOBS) / rate * 1e3:,.0f} ms",
                f"{(claims - 1) * BATCH:,}",
                f"{backlog - (claims - 1) * BATCH:,}",
                f"{rate:,.0f}",
            ]
        )
    table.notes = [
        f"The loop runs {BATCH}-job claims until every job of B and C has started, then more"
        " claims on A's backlog; the drain rate is all the jobs it claimed and completed over"
        " its time. Time is from the first claim's start to the return of the claim that"
        " started the last job of B and C.",
    ]
    return table


def run(config: BenchConfig) -> ModuleResult:
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    log(f"  jobforge_sdk {jobforge_sdk.__version__} from {SDK_PATH}")
    with ExitStack() as stack:
        db = stack.enter_context(scratch_database(config.server_url))
        bare.install(db.url)
        pools: dict[int, WorkerPool] = {}

        def worker_pool(workers: int) -> WorkerPool:
            if workers not in pools:
                log(f"  spawning {workers} worker process(es)")
                pools[workers] = stack.enter_context(WorkerPool(workers))
            return pools[workers]

        if config.wants("limits"):
            log(f"{NAME}.limits")
            try:
                limits = measure_limits(db, config.repeats, sizes, worker_pool)
                result.tables.append(limits_table(limits))
                result.data["limits"] = [
                    {
                        "workers": r.workers,
                        "jobs": r.jobs,
                        **{s: r.series[s].as_dict() for s in LIMIT_STATES},
                        "ratios": {
                            "limits_defaults": r.ratio("limits", "defaults"),
                            "limits_empty": r.ratio("limits", "empty"),
                            "defaults_bare": r.ratio("defaults", "bare"),
                            "limits_bare": r.ratio("limits", "bare"),
                        },
                        "paired_limits_defaults": r.paired("limits", "defaults"),
                        "verification": r.checks,
                    }
                    for r in limits
                ]
            except (BenchError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.limits failed: {exc}")
                result.errors.append(f"limits: {type(exc).__name__}: {exc}")
        if config.wants("fair_claim"):
            log(f"{NAME}.fair_claim")
            try:
                runs = measure_fair_claim(db, config.repeats, sizes)
                result.tables.append(fair_table(runs, sizes.backlog))
                result.data["fair_claim"] = {
                    "backlog": sizes.backlog,
                    "small_jobs": SMALL_JOBS,
                    "batch": BATCH,
                    "runs": {
                        state: [
                            {
                                "claims_until_small_started": r.figures.claims,
                                "seconds_until_small_started": r.figures.seconds,
                                "big_started_before": r.figures.big_before,
                                "big_started_same_claim": r.figures.big_same_claim,
                                "claims": r.claims,
                                "jobs": r.jobs,
                                "seconds": r.seconds,
                            }
                            for r in got
                        ]
                        for state, got in runs.items()
                    },
                }
            except (BenchError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.fair_claim failed: {exc}")
                result.errors.append(f"fair_claim: {type(exc).__name__}: {exc}")
        if config.wants("many_tenants"):
            log(f"{NAME}.many_tenants")
            try:
                many = measure_many_tenants(db, config.repeats)
                result.tables.append(many_tenants_table(many))
                result.data["many_tenants"] = {
                    kind: [
                        {
                            "claims_until_all": r.claims_until_all,
                            "new_tenants_first_claims": r.tenants_first_claims,
                        }
                        for r in got
                    ]
                    for kind, got in many.items()
                }
            except (BenchError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.many_tenants failed: {exc}")
                result.errors.append(f"many_tenants: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - began
    return result
