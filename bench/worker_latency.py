"""The worker as users run it (targets: docs/architecture.md): how soon an idle
``jobforge_sdk.Worker`` starts a job after it is enqueued, and how many no-op jobs per second
it gets through.

Why the real ``Worker`` and not a hand-written claim loop: the latency target is about
what users get, which includes the LISTEN connection, the wake-up of the claim thread, the
claim itself and the hand-over to an executor thread. ``core_queue`` already measures the
claim/complete RPCs on their own.

Latency: the worker runs in a thread of this process (``run(install_signal_handlers=
False)``, four executor threads, ``poll_interval=1.0`` so a missed notification would show
up as a ~1 s outlier rather than be hidden by fast polling). Another client enqueues one
job at a time; the clock starts just before the enqueue call and stops when the handler is
entered (``time.perf_counter`` is one monotonic clock for all threads). After each job has
started, the producer waits a random 2-5 ms, so every job meets an idle worker and the
previous job's completion is out of the way. The time therefore includes the enqueue's own
durable commit, which is where the notification is sent from; the breakdown table splits
it off.

Throughput: N jobs are enqueued in batches before the worker starts (setup, not timed);
``run_until_idle`` then runs them with ``concurrency`` executor threads and the Worker's
default claim size (``concurrency + prefetch``, that is 2 * concurrency); jobs/s is N
over the wall time of ``run_until_idle``. Jobs are completed however the Worker of the
tree under test does it (since ffaed04 in one ``complete_jobs`` call per loop turn; since
the reporter thread, from their own thread, overlapping the next claim), so this is the
number to watch when that changes. The worker's client gets one pooled connection per
executor thread plus one, so the claim loop and the reporter need not wait for one
(no-op handlers use none). There is no raw-SQL twin of the worker, so these rows have
no SDK/raw ratio.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from jobforge_sdk import ConflictError, JobForgeClient, JobForgeError, NotFoundError, Worker
from jobforge_sdk._transports.postgres import PostgresTransport
from jobforge_sdk.runtime.registry import JobContext

from .harness import (
    BenchConfig,
    BenchDatabase,
    BenchError,
    Latency,
    Measurement,
    ModuleResult,
    Table,
    log,
    percentile,
    scratch_database,
)

NAME = "worker_latency"
MEASUREMENTS = ("latency", "throughput")

TENANT_ID = uuid.UUID("00000000-0000-4000-8000-0000000a7e11")
JOB_TYPE = "bench.worker"
NO_SUCH_TYPE = "bench.nothing"
LATENCY_CONCURRENCY = 4
CONCURRENCIES = (1, 4, 16)
GAP_S = (0.002, 0.005)
START_TIMEOUT_S = 5.0  # one job not started after this: the worker is broken, not slow
LISTENER_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 30.0
LISTENER_STOP_TIMEOUT_S = 3.0

# docs/architecture.md, "Performance targets": enqueue -> worker starts the job.
LATENCY_TARGETS_MS = {"p50": 5.0, "p99": 15.0}


@dataclass(frozen=True)
class Sizes:
    """Latency: jobs per run (one at a time, each ~5-10 ms with its gap). Throughput: jobs
    per run; each is its own commit, so a few thousand keep a run a few seconds long."""

    latency_jobs: int
    latency_warmup: int
    throughput_jobs: int


FULL = Sizes(latency_jobs=1_000, latency_warmup=20, throughput_jobs=3_000)
QUICK = Sizes(latency_jobs=150, latency_warmup=10, throughput_jobs=400)


def job_payload(key: int) -> dict[str, Any]:
    return {"id": key, "action": "noop"}


class StartLog:
    """When each job's handler was entered, keyed by the payload's ``id``; the producer
    waits on it. The time is taken before the lock, so waiting for it is not counted."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._starts: dict[int, float] = {}

    def handler(self, ctx: JobContext) -> None:
        """The JobForge handler: records its job's start."""
        self.record(int(ctx.payload["id"]))

    def record(self, key: int) -> None:
        started = time.perf_counter()
        with self._cond:
            self._starts[key] = started
            self._cond.notify_all()

    def wait_for(self, key: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._starts:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._starts[key]

    def count(self) -> int:
        with self._cond:
            return len(self._starts)


def wait_for_listener(url: str, timeout: float = LISTENER_TIMEOUT_S) -> None:
    """Block until the worker's LISTEN connection is up in this database, so the first
    measured job cannot be picked up by the fallback poll instead of the notification."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "select count(*) from pg_catalog.pg_stat_activity"
                " where datname = pg_catalog.current_database()"
                " and query ilike 'listen jobforge_jobs%'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise BenchError(f"the worker's LISTEN connection did not appear within {timeout:.0f} s")


def warm_client(client: JobForgeClient, worker_id: str) -> None:
    """Open the pool and cache the claim and complete signatures before the clock runs
    (a claim of a type nobody enqueues, completions of a job that does not exist)."""
    client.claim_jobs(worker_id=worker_id, limit=1, types=[NO_SUCH_TYPE])
    with contextlib.suppress(NotFoundError):
        client.complete_job(job_id=uuid.uuid4(), worker_id=worker_id, status="succeeded")
    with contextlib.suppress(NotFoundError, ConflictError):
        client.complete_jobs(
            worker_id=worker_id, results=[{"job_id": uuid.uuid4(), "status": "succeeded"}]
        )
    transport = client.transport
    if isinstance(transport, PostgresTransport):
        transport.pool.wait(timeout=30.0)


@contextlib.contextmanager
def running_worker(worker: Worker) -> Any:
    """``worker.run`` in a thread; stopped and joined (bounded) on the way out."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            worker.run(install_signal_handlers=False)
        except BaseException as exc:  # Reported by the caller, not lost in the thread.
            failure.append(exc)

    thread = threading.Thread(target=target, name="bench-worker", daemon=True)
    thread.start()
    try:
        yield failure
    finally:
        worker.stop()
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise BenchError(f"the worker did not stop within {STOP_TIMEOUT_S:.0f} s")
        # The LISTEN thread notices the stop within its 1 s notifies() timeout; wait for it,
        # or dropping the database under it makes it log a spurious "connection lost".
        for listener in threading.enumerate():
            if listener.name == "jobforge-listen":
                listener.join(LISTENER_STOP_TIMEOUT_S)
    if failure:
        raise BenchError(f"the worker failed: {type(failure[0]).__name__}: {failure[0]}")


@dataclass
class LatencyRun:
    """One latency run: per job, enqueue-to-start, and the enqueue call alone (seconds)."""

    start: list[float] = field(default_factory=list)
    enqueue: list[float] = field(default_factory=list)

    @property
    def after_enqueue(self) -> list[float]:
        return [s - e for s, e in zip(self.start, self.enqueue, strict=True)]


def latency_loop(
    enqueue: Callable[[int], None], starts: StartLog, jobs: int, warmup: int, seed: int
) -> LatencyRun:
    """Enqueue ``warmup + jobs`` jobs one at a time through ``enqueue(key)``, each after
    the previous one has started plus a random 2-5 ms; the warm-up jobs are not reported.
    Shared with ``peers``, so every queue is timed by the same loop.

    The first warm-up job may wait for a fallback poll (its worker may still be setting
    up), so it gets a longer timeout.
    """
    rng = random.Random(seed)
    out = LatencyRun()
    clock = time.perf_counter
    for i in range(warmup + jobs):
        key = seed * 1_000_000 + i
        began = clock()
        enqueue(key)
        returned = clock()
        timeout = LISTENER_TIMEOUT_S if i == 0 else START_TIMEOUT_S
        started = starts.wait_for(key, timeout)
        if started is None:
            raise BenchError(f"job {i} did not start within {timeout:.0f} s")
        if i >= warmup:
            out.start.append(started - began)
            out.enqueue.append(returned - began)
        time.sleep(rng.uniform(*GAP_S))
    return out


def run_latency(url: str, jobs: int, warmup: int, seed: int) -> LatencyRun:
    """Enqueue-to-start times with an idle Worker in a thread (see the module docstring)."""
    starts = StartLog()
    concurrency = LATENCY_CONCURRENCY
    worker_client = JobForgeClient.from_postgres(
        url, min_size=concurrency + 1, max_size=concurrency + 1
    )
    producer = JobForgeClient.from_postgres(url, min_size=1, max_size=1)

    def enqueue(key: int) -> None:
        producer.enqueue_job(tenant_id=TENANT_ID, type=JOB_TYPE, payload=job_payload(key))

    try:
        worker_id = f"bench-latency-{seed}"
        warm_client(worker_client, worker_id)
        worker = Worker(
            worker_client,
            {JOB_TYPE: starts.handler},
            concurrency=concurrency,
            worker_id=worker_id,
            poll_interval=1.0,
        )
        with running_worker(worker):
            wait_for_listener(url)
            return latency_loop(enqueue, starts, jobs, warmup, seed)
    finally:
        producer.close()
        worker_client.close()


def fill_queue(db: BenchDatabase, jobs: int) -> None:
    """Pre-enqueue ``jobs`` no-op jobs in batches of 1,000 (setup, not measured)."""
    with JobForgeClient.from_postgres(db.url, min_size=1, max_size=1) as client:
        for start in range(0, jobs, 1_000):
            count = min(1_000, jobs - start)
            specs = [{"type": JOB_TYPE, "payload": job_payload(start + i)} for i in range(count)]
            client.enqueue_jobs(tenant_id=TENANT_ID, jobs=specs)
    db.analyze()


def job_statuses(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select status, count(*) from public.jobforge_jobs group by status"
        ).fetchall()
    return {str(status): int(n) for status, n in rows}


@dataclass
class ThroughputRun:
    seconds: float
    cpu_s: float
    processed: int
    statuses: dict[str, int]

    def verified(self, jobs: int) -> bool:
        return self.processed == jobs and self.statuses == {"succeeded": jobs}


def run_throughput(db: BenchDatabase, jobs: int, concurrency: int) -> ThroughputRun:
    """Empty the queue, pre-fill it with ``jobs`` no-op jobs, drain it with a Worker of
    ``concurrency`` executor threads; wall time of ``run_until_idle``."""
    db.reset()
    fill_queue(db, jobs)
    client = JobForgeClient.from_postgres(
        db.url, min_size=concurrency + 1, max_size=concurrency + 1
    )
    try:
        worker_id = f"bench-throughput-{concurrency}"
        warm_client(client, worker_id)
        worker = Worker(
            client,
            {JOB_TYPE: _noop},
            concurrency=concurrency,
            worker_id=worker_id,
            poll_interval=1.0,
        )
        cpu_began = time.process_time()
        began = time.perf_counter()
        processed = worker.run_until_idle(timeout=RUN_TIMEOUT_S)
        seconds = time.perf_counter() - began
        cpu_s = time.process_time() - cpu_began
    finally:
        client.close()
    return ThroughputRun(seconds, cpu_s, processed, job_statuses(db.url))


def _noop(_ctx: JobContext) -> None:
    return None


# -- the measurements -------------------------------------------------------------------


def measure_latency(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes, result: ModuleResult
) -> None:
    lat = Latency(
        name="enqueue_to_start",
        operation=f"enqueue → handler start, idle Worker (concurrency {LATENCY_CONCURRENCY},"
        " LISTEN/NOTIFY)",
        shown=("p50", "p95", "p99"),
        targets=dict(LATENCY_TARGETS_MS),
    )
    enqueue: list[float] = []
    per_run: list[dict[str, float]] = []
    for repeat in range(config.repeats):
        db.reset()
        run = run_latency(db.url, sizes.latency_jobs, sizes.latency_warmup, seed=repeat + 1)
        statuses = job_statuses(db.url)
        expected = sizes.latency_jobs + sizes.latency_warmup
        if statuses.get("succeeded") != expected:
            raise BenchError(f"latency run {repeat}: statuses {statuses}, expected {expected}")
        lat.sdk.extend(run.start)
        enqueue.extend(run.enqueue)
        summary = {
            "p50_ms": percentile(run.start, 50) * 1e3,
            "p99_ms": percentile(run.start, 99) * 1e3,
            "enqueue_p50_ms": percentile(run.enqueue, 50) * 1e3,
        }
        per_run.append(summary)
        log(
            f"  latency run {repeat}: p50 {summary['p50_ms']:.2f} ms,"
            f" p99 {summary['p99_ms']:.2f} ms (enqueue call p50"
            f" {summary['enqueue_p50_ms']:.2f} ms)"
        )
    result.latencies.append(lat)
    after = [s - e for s, e in zip(lat.sdk, enqueue, strict=True)]
    table = Table(
        title=f"Enqueue → handler start with an idle Worker ({len(lat.sdk):,} jobs in"
        f" {config.repeats} runs)",
        columns=["part", "p50", "p95", "p99", "max"],
    )
    for label, samples in (
        ("enqueue call (insert + NOTIFY + durable commit)", enqueue),
        ("enqueue returned → handler entered", after),
        ("enqueue called → handler entered (total)", lat.sdk),
    ):
        table.rows.append(
            [label]
            + [f"{percentile(samples, q) * 1e3:.2f} ms" for q in (50, 95, 99)]
            + [f"{max(samples) * 1e3:.2f} ms"]
        )
    p50s = " / ".join(f"{r['p50_ms']:.2f}" for r in per_run)
    p99s = " / ".join(f"{r['p99_ms']:.2f}" for r in per_run)
    table.notes.append(f"Total per run: p50 {p50s} ms; p99 {p99s} ms.")
    table.notes.append(
        f"Targets (docs/architecture.md): p50 ≤ {LATENCY_TARGETS_MS['p50']:g} ms, p99 ≤"
        f" {LATENCY_TARGETS_MS['p99']:g} ms. Each job waits for the previous one to start,"
        f" then {GAP_S[0] * 1e3:g}-{GAP_S[1] * 1e3:g} ms (random)."
    )
    result.tables.append(table)
    result.data["latency_runs"] = per_run


def measure_throughput(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes, result: ModuleResult
) -> None:
    for concurrency in CONCURRENCIES:
        m = Measurement(
            name=f"worker_throughput_{concurrency}",
            operation=f"no-op jobs through Worker, concurrency {concurrency}",
            unit="jobs/s",
            target=None,
            params={
                "jobs": sizes.throughput_jobs,
                "concurrency": concurrency,
                "batch_size": "Worker default (2 * concurrency)",
                "pool_size": concurrency + 1,
                "completion": "as the Worker does (see the module docstring)",
            },
        )
        for repeat in range(config.repeats):
            run = run_throughput(db, sizes.throughput_jobs, concurrency)
            ok = run.verified(sizes.throughput_jobs)
            rate = m.sdk.add(
                sizes.throughput_jobs,
                run.seconds,
                run.cpu_s,
                processed=run.processed,
                statuses=run.statuses,
                verified=ok,
            )
            log(f"  worker c={concurrency} run {repeat}: {rate:,.0f} jobs/s, verified={ok}")
            if not ok:
                m.valid = False
        result.measurements.append(m)


def run(config: BenchConfig) -> ModuleResult:
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    with scratch_database(config.server_url) as db:
        steps: list[tuple[str, Callable[[], None]]] = [
            ("latency", lambda: measure_latency(db, config, sizes, result)),
            ("throughput", lambda: measure_throughput(db, config, sizes, result)),
        ]
        for name, step in steps:
            if not config.wants(name):
                continue
            log(f"{NAME}.{name}")
            try:
                step()
            except (BenchError, JobForgeError, psycopg.Error, OSError, TimeoutError) as exc:
                log(f"{NAME}.{name} failed: {exc}")
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - began
    for m in result.measurements:
        if not m.valid:
            result.errors.append(f"{m.name}: verification failed (see runs)")
    if result.latencies and result.latencies[0].sdk:
        result.data["latency_median_ms"] = statistics.median(result.latencies[0].sdk) * 1e3
    return result
