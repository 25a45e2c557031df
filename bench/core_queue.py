"""Core-queue throughput (targets: docs/architecture.md): enqueue one by one, in batches, and
claim + complete with four worker processes, each through the SDK and through a raw psycopg
call of the same SQL function, in the same run and with the same connection settings.

Claim + complete is measured twice: completing each job with its own ``complete_job``
call (one commit, so one WAL flush, per job: what the worker does today), and completing
each claimed batch with one ``complete_jobs`` call (all or nothing, one commit per batch).
The difference is what batching the completion is worth.

Why both: the SQL functions set the ceiling, and the SDK's job is to add as little as
possible on top (target: ≤ 10 %). Measuring the raw call next to the SDK call, alternating
the order run by run, separates "the database is slow" from "the SDK is slow" even on a
shared, noisy machine.

Fairness rules: one autocommit connection per producer or worker on both paths (the SDK
gets a pool of exactly one connection); psycopg's automatic prepared statements on both;
the raw path decodes the JSON answer (``fetchone``), the SDK additionally validates it into
``JobRow`` models, which is part of what it costs. The job lists a batch sends are built
before the clock starts, identically for both paths.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing, suppress
from dataclasses import dataclass
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Barrier
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from jobforge_sdk import ConflictError, JobForgeClient, NotFoundError

from .harness import (
    BenchConfig,
    BenchDatabase,
    BenchError,
    Latency,
    Measurement,
    ModuleResult,
    log,
    scratch_database,
)

NAME = "core_queue"
MEASUREMENTS = ("enqueue_single", "enqueue_batch", "claim_complete", "claim_complete_many")

TENANT_ID = uuid.UUID("00000000-0000-4000-8000-00000000be9c")
JOB_TYPE = "bench.core"
WORKERS = 4
WORKER_SETUP_TIMEOUT_S = 120.0  # spawning imports the SDK; a loaded 2-core box is slow
WORKER_RUN_TIMEOUT_S = 240.0  # a drain that takes longer than this is broken, not slow

# The raw path: the same functions the SDK calls, by parameter name, nothing else.
RAW_ENQUEUE = "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s, p_payload => %s)"
RAW_ENQUEUE_MANY = "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s)"
RAW_CLAIM = "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => %s)"
RAW_COMPLETE = (
    "select public.jobforge_complete_job(p_job_id => %s, p_worker_id => %s,"
    " p_status => 'succeeded', p_result => %s)"
)
RAW_COMPLETE_MANY = "select public.jobforge_complete_jobs(p_worker_id => %s, p_results => %s)"

RESULT: dict[str, Any] = {"ok": True}
NO_SUCH_TYPE = "bench.nothing"

# Targets, in jobs/s, for the SDK path (docs/architecture.md).
TARGETS: dict[str, float | None] = {
    "enqueue_single": 4_000,
    "enqueue_batch_100": 100_000,
    "enqueue_batch_1000": 175_000,
    "claim_complete_1": None,
    "claim_complete_10": 20_000,
    "claim_complete_100": 70_000,
    "claim_complete_many_10": 20_000,
    "claim_complete_many_100": 70_000,
}


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does; ``--quick`` trades precision for time.

    Claim + complete runs one transaction per completed job, so on a 2-core machine it
    drains roughly 500-2,000 jobs/s whatever the batch (depending on the load); 3,000-6,000
    jobs per run keep each run a few seconds long (long enough to average out scheduling
    noise) and a full ``make bench`` within 5 minutes even on a busy machine. Raise them on
    a faster one. Completing a batch with one ``complete_jobs`` call commits once per
    batch, so ``claim_many_jobs`` can be larger for the same run time.
    """

    single_jobs: int
    single_warmup: int
    batch_jobs: int
    batch_sizes: tuple[int, ...]
    claim_jobs: dict[int, int]
    claim_many_jobs: dict[int, int]


FULL = Sizes(
    single_jobs=4_000,
    single_warmup=200,
    batch_jobs=20_000,
    batch_sizes=(100, 1_000),
    claim_jobs={1: 3_000, 10: 6_000, 100: 6_000},
    claim_many_jobs={10: 8_000, 100: 12_000},
)
QUICK = Sizes(
    single_jobs=500,
    single_warmup=50,
    batch_jobs=3_000,
    batch_sizes=(100, 1_000),
    claim_jobs={1: 500, 10: 1_000, 100: 2_000},
    claim_many_jobs={10: 1_000, 100: 2_000},
)


def payload(n: int) -> dict[str, Any]:
    """A small, realistic payload: a few scalars, ~80 bytes of JSON."""
    return {"n": n, "email": f"user{n}@example.com", "action": "welcome", "retry": False}


def job_specs(start: int, count: int) -> list[dict[str, Any]]:
    return [{"type": JOB_TYPE, "payload": payload(start + i)} for i in range(count)]


def variant_order(repeat: int) -> tuple[str, str]:
    """SDK first on even repeats, raw first on odd ones: a slow drift in machine load then
    hits both variants alike instead of always the second one."""
    return ("sdk", "raw") if repeat % 2 == 0 else ("raw", "sdk")


# -- producers: the two ways to enqueue -------------------------------------------------


class Producer(Protocol):
    def enqueue(self, payload: dict[str, Any]) -> None: ...

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int: ...

    def close(self) -> None: ...


class SdkProducer:
    def __init__(self, url: str) -> None:
        self.client = JobForgeClient.from_postgres(url, min_size=1, max_size=1)

    def enqueue(self, payload: dict[str, Any]) -> None:
        self.client.enqueue_job(tenant_id=TENANT_ID, type=JOB_TYPE, payload=payload)

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int:
        return len(self.client.enqueue_jobs(tenant_id=TENANT_ID, jobs=jobs))

    def close(self) -> None:
        self.client.close()


class RawProducer:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def enqueue(self, payload: dict[str, Any]) -> None:
        self.conn.execute(RAW_ENQUEUE, (TENANT_ID, JOB_TYPE, Jsonb(payload))).fetchone()

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int:
        row = self.conn.execute(RAW_ENQUEUE_MANY, (TENANT_ID, Jsonb(jobs))).fetchone()
        return len(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


PRODUCERS: dict[str, Callable[[str], Producer]] = {"sdk": SdkProducer, "raw": RawProducer}


def producer(variant: str, url: str) -> closing[Producer]:
    return closing(PRODUCERS[variant](url))


# -- consumers: the two ways to claim and complete (run inside worker processes) --------


class Consumer(Protocol):
    def claim(self, limit: int) -> Sequence[Any]: ...

    def complete(self, job: Any) -> None: ...

    def complete_many(self, jobs: Sequence[Any]) -> None: ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...


class SdkConsumer:
    def __init__(self, url: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.client = JobForgeClient.from_postgres(url, min_size=1, max_size=1)

    def claim(self, limit: int) -> Sequence[Any]:
        return self.client.claim_jobs(worker_id=self.worker_id, limit=limit)

    def complete(self, job: Any) -> None:
        self.client.complete_job(
            job_id=job.id, worker_id=self.worker_id, status="succeeded", result=RESULT
        )

    def complete_many(self, jobs: Sequence[Any]) -> None:
        self.client.complete_jobs(
            worker_id=self.worker_id,
            results=[{"job_id": job.id, "status": "succeeded", "result": RESULT} for job in jobs],
        )

    def warm_up(self) -> None:
        """Connect, look up the signatures and let the server compile the functions for
        this session, outside the timed region (a claim of a type nobody enqueues, and
        completions of a job that does not exist)."""
        self.client.claim_jobs(worker_id=self.worker_id, limit=1, types=[NO_SUCH_TYPE])
        with suppress(NotFoundError):
            self.client.complete_job(
                job_id=uuid.uuid4(), worker_id=self.worker_id, status="succeeded"
            )
        with suppress(NotFoundError, ConflictError):
            self.client.complete_jobs(
                worker_id=self.worker_id,
                results=[{"job_id": uuid.uuid4(), "status": "succeeded"}],
            )

    def close(self) -> None:
        self.client.close()


class RawConsumer:
    def __init__(self, url: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.conn = psycopg.connect(url, autocommit=True)

    def claim(self, limit: int) -> Sequence[Any]:
        row = self.conn.execute(RAW_CLAIM, (self.worker_id, limit)).fetchone()
        return row[0] if row else []

    def complete(self, job: Any) -> None:
        self.conn.execute(RAW_COMPLETE, (job["id"], self.worker_id, Jsonb(RESULT))).fetchone()

    def complete_many(self, jobs: Sequence[Any]) -> None:
        results = [{"job_id": job["id"], "status": "succeeded", "result": RESULT} for job in jobs]
        self.conn.execute(RAW_COMPLETE_MANY, (self.worker_id, Jsonb(results))).fetchone()

    def warm_up(self) -> None:
        """The same warm-up calls as ``SdkConsumer.warm_up``."""
        self.conn.execute(
            "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => 1, p_types => %s)",
            (self.worker_id, [NO_SUCH_TYPE]),
        ).fetchone()
        missing = str(uuid.uuid4())
        for statement, args in (
            (RAW_COMPLETE, (missing, self.worker_id, Jsonb(RESULT))),
            (
                RAW_COMPLETE_MANY,
                (self.worker_id, Jsonb([{"job_id": missing, "status": "succeeded"}])),
            ),
        ):
            try:
                self.conn.execute(statement, args)
            except psycopg.Error as exc:
                if exc.sqlstate not in ("PT404", "PT409"):
                    raise

    def close(self) -> None:
        self.conn.close()


CONSUMERS: dict[str, Callable[[str, str], Consumer]] = {"sdk": SdkConsumer, "raw": RawConsumer}


@dataclass(frozen=True)
class DrainCommand:
    """Sent to each worker process: drain the queue of ``url`` in batches of ``batch``,
    completing each job on its own, or each batch with one call when ``many``."""

    variant: str
    url: str
    batch: int
    deadline_s: float
    many: bool = False


@dataclass
class DrainReport:
    """What one worker did in one drain; ``error`` is set instead when it failed."""

    worker: int
    completed: int = 0
    claims: int = 0
    busy_s: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None


def _drain(index: int, command: DrainCommand, start: Barrier, end: Barrier) -> DrainReport:
    """Connect and warm up, wait for the others, then claim and complete until the queue
    is empty. The clock the report counts is the parent's; ``busy_s`` is for diagnosis."""
    worker_id = f"bench-w{index}"
    consumer = CONSUMERS[command.variant](command.url, worker_id)
    try:
        consumer.warm_up()
        start.wait(WORKER_SETUP_TIMEOUT_S)
        began = time.perf_counter()
        cpu_began = time.process_time()
        deadline = began + command.deadline_s
        report = DrainReport(worker=index)
        # Bounded: an empty claim ends the loop (every job was enqueued before the start,
        # and none fails), and the deadline ends a drain that has stopped making progress.
        while True:
            jobs = consumer.claim(command.batch)
            report.claims += 1
            if not jobs:
                break
            if command.many:
                consumer.complete_many(jobs)
            else:
                for job in jobs:
                    consumer.complete(job)
            report.completed += len(jobs)
            if time.perf_counter() > deadline:
                raise BenchError(f"worker {index}: drain exceeded {command.deadline_s:.0f} s")
        report.busy_s = time.perf_counter() - began
        report.cpu_s = time.process_time() - cpu_began
        end.wait(command.deadline_s)
        return report
    finally:
        consumer.close()


def worker_main(index: int, commands: Any, reports: Any, start: Barrier, end: Barrier) -> None:
    """Entry point of a worker process (spawned: a clean interpreter, its own connection).

    A failing worker aborts both barriers, so the parent and the other workers stop
    waiting at once instead of running into their timeouts.
    """
    while True:
        command = commands.get()
        if command is None:
            return
        try:
            reports.put(_drain(index, command, start, end))
        except BaseException as exc:  # Report everything; the parent then closes the pool.
            start.abort()
            end.abort()
            reports.put(DrainReport(worker=index, error=f"{type(exc).__name__}: {exc}"))
            if isinstance(exc, KeyboardInterrupt):
                return


class WorkerPool:
    """Four spawned worker processes, reused for every drain of the module.

    Why reuse: spawning imports the SDK afresh (over a second per process on a small box);
    doing that once instead of for every run keeps a full ``make bench`` within budget. Each
    drain still opens a new client or connection in each worker.
    """

    def __init__(self, workers: int = WORKERS) -> None:
        self.ctx: SpawnContext = multiprocessing.get_context("spawn")
        self.size = workers
        self.start_barrier = self.ctx.Barrier(workers + 1)
        self.end_barrier = self.ctx.Barrier(workers + 1)
        self.reports = self.ctx.Queue()
        self.commands = [self.ctx.Queue() for _ in range(workers)]
        self.processes: list[SpawnProcess] = []

    def __enter__(self) -> WorkerPool:
        for index, commands in enumerate(self.commands):
            process = self.ctx.Process(
                target=worker_main,
                args=(index, commands, self.reports, self.start_barrier, self.end_barrier),
                name=f"bench-worker-{index}",
                daemon=True,
            )
            process.start()
            self.processes.append(process)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for commands in self.commands:
            commands.put(None)
        for process in self.processes:
            process.join(timeout=10)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)

    def drain(self, command: DrainCommand) -> tuple[float, list[DrainReport]]:
        """Run one drain; wall time is from the start barrier to the last completion (the
        end barrier), measured in this process, so no clocks are compared across processes.
        """
        for commands in self.commands:
            commands.put(command)
        error: str | None = None
        seconds = 0.0
        try:
            self.start_barrier.wait(WORKER_SETUP_TIMEOUT_S)
            began = time.perf_counter()
            self.end_barrier.wait(command.deadline_s + 30)
            seconds = time.perf_counter() - began
        except threading.BrokenBarrierError:
            error = "a worker failed or timed out"
        reports: list[DrainReport] = []
        for _ in range(self.size):
            try:
                reports.append(self.reports.get(timeout=30 if error is None else 10))
            except queue.Empty:
                error = error or "a worker did not report"
                break
        failures = [r.error for r in reports if r.error]
        if error or failures:
            raise BenchError(f"drain failed: {error or ''} {'; '.join(failures)}".strip())
        return seconds, sorted(reports, key=lambda r: r.worker)


# -- the measurements -------------------------------------------------------------------


def measure_enqueue_single(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes
) -> tuple[Measurement, Latency]:
    """One call per job on one connection; every call is timed, for throughput and
    latency at once (``perf_counter`` costs well under a microsecond)."""
    m = Measurement(
        name="enqueue_single",
        operation="enqueue, one call per job",
        unit="jobs/s",
        target=TARGETS["enqueue_single"],
        params={"jobs": sizes.single_jobs, "warmup": sizes.single_warmup, "connections": 1},
    )
    lat = Latency(name="enqueue_single_latency", operation="enqueue, one call")
    payloads = [payload(i) for i in range(sizes.single_jobs)]
    for repeat in range(config.repeats):
        for variant in variant_order(repeat):
            db.reset()
            with producer(variant, db.url) as p:
                for i in range(sizes.single_warmup):
                    p.enqueue(payload(-i))
                samples = [0.0] * len(payloads)
                clock = time.perf_counter
                cpu_began = time.process_time()
                began = clock()
                for i, item in enumerate(payloads):
                    t = clock()
                    p.enqueue(item)
                    samples[i] = clock() - t
                seconds = clock() - began
                cpu_s = time.process_time() - cpu_began
            rate = m.series(variant).add(len(payloads), seconds, cpu_s)
            lat.samples(variant).extend(samples)
            log(f"  enqueue_single {variant}: {rate:,.0f} jobs/s")
    return m, lat


def measure_enqueue_batch(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes
) -> list[Measurement]:
    """``enqueue_jobs`` with batches of 100 and 1,000 on one connection."""
    out: list[Measurement] = []
    for batch in sizes.batch_sizes:
        batches = max(1, sizes.batch_jobs // batch)
        m = Measurement(
            name=f"enqueue_batch_{batch}",
            operation=f"enqueue, batch of {batch:,}",
            unit="jobs/s",
            target=TARGETS.get(f"enqueue_batch_{batch}"),
            params={"batch": batch, "batches": batches, "jobs": batches * batch, "connections": 1},
        )
        work = [job_specs(i * batch, batch) for i in range(batches)]
        for repeat in range(config.repeats):
            for variant in variant_order(repeat):
                db.reset()
                with producer(variant, db.url) as p:
                    p.enqueue_many(job_specs(-batch, batch))  # warm-up: connect, signatures
                    cpu_began = time.process_time()
                    began = time.perf_counter()
                    done = sum(p.enqueue_many(jobs) for jobs in work)
                    seconds = time.perf_counter() - began
                    cpu_s = time.process_time() - cpu_began
                if done != batches * batch:
                    raise BenchError(f"enqueue_jobs returned {done} rows for {batches * batch}")
                rate = m.series(variant).add(done, seconds, cpu_s)
                log(f"  enqueue_batch_{batch} {variant}: {rate:,.0f} jobs/s")
        out.append(m)
    return out


def fill_queue(db: BenchDatabase, jobs: int) -> None:
    """Pre-enqueue ``jobs`` jobs in batches of 1,000 (raw: setup, not measured)."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        for start in range(0, jobs, 1_000):
            count = min(1_000, jobs - start)
            conn.execute(RAW_ENQUEUE_MANY, (TENANT_ID, Jsonb(job_specs(start, count))))
    db.analyze()


def verify_drain(db: BenchDatabase, jobs: int, reports: list[DrainReport]) -> dict[str, Any]:
    """Every job ended ``succeeded`` exactly once: by status, by attempt history, by stored
    result, and by what the workers say they completed."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        by_status: dict[str, int] = dict(
            conn.execute(
                "select status, count(*) from public.jobforge_jobs group by status"
            ).fetchall()
        )
        row = conn.execute(
            "select"
            " (select count(*) from public.jobforge_jobs where attempts <> 1),"
            " (select count(*) from public.jobforge_job_attempts),"
            " (select count(distinct job_id) from public.jobforge_job_attempts"
            "   where status = 'succeeded'),"
            " (select count(*) from public.jobforge_job_results)"
        ).fetchone()
    assert row is not None
    not_once, attempts, distinct_succeeded, results = (int(v) for v in row)
    completed = sum(r.completed for r in reports)
    ok = (
        by_status == {"succeeded": jobs}
        and not_once == 0
        and attempts == jobs
        and distinct_succeeded == jobs
        and results == jobs
        and completed == jobs
    )
    return {
        "ok": ok,
        "by_status": {str(k): int(v) for k, v in by_status.items()},
        "attempts_not_1": not_once,
        "attempt_rows": attempts,
        "distinct_succeeded_jobs": distinct_succeeded,
        "result_rows": results,
        "completed_by_workers": completed,
    }


def measure_claim_complete(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes, pool: WorkerPool, *, many: bool
) -> list[Measurement]:
    """4 worker processes drain a pre-filled queue: claim(limit=batch), then complete each
    job (``complete_job``), or the whole batch at once (``complete_jobs``) when ``many``."""
    out: list[Measurement] = []
    plan = sizes.claim_many_jobs if many else sizes.claim_jobs
    for batch, jobs in plan.items():
        name = f"claim_complete_many_{batch}" if many else f"claim_complete_{batch}"
        completion = "complete_jobs per batch" if many else "complete"
        m = Measurement(
            name=name,
            operation=f"claim + {completion}, {WORKERS} workers, batch {batch:,}",
            unit="jobs/s",
            target=TARGETS.get(name),
            params={
                "batch": batch,
                "jobs": jobs,
                "workers": WORKERS,
                "processes": "spawn",
                "completion": "complete_jobs, one call per claimed batch"
                if many
                else "complete_job, one call per job",
            },
        )
        out.append(m)
        checks: list[dict[str, Any]] = []
        for repeat in range(config.repeats):
            for variant in variant_order(repeat):
                db.reset()
                fill_queue(db, jobs)
                command = DrainCommand(variant, db.url, batch, WORKER_RUN_TIMEOUT_S, many)
                seconds, reports = pool.drain(command)
                check = verify_drain(db, jobs, reports)
                checks.append({"variant": variant, "repeat": repeat, **check})
                per_worker = [r.completed for r in reports]
                rate = m.series(variant).add(
                    jobs,
                    seconds,
                    sum(r.cpu_s for r in reports),
                    per_worker=per_worker,
                    claims=sum(r.claims for r in reports),
                    verified=check["ok"],
                )
                log(
                    f"  {name} {variant}: {rate:,.0f} jobs/s, per worker {per_worker},"
                    f" verified={check['ok']}"
                )
                if not check["ok"]:
                    m.valid = False
        m.extra["verification"] = checks
    return out


def run(config: BenchConfig) -> ModuleResult:
    """Every measurement of this module, on one scratch database, reset between runs."""
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    with scratch_database(config.server_url) as db, ExitStack() as stack:
        pools: list[WorkerPool] = []

        def worker_pool() -> WorkerPool:
            """Spawned on first use and shared by both claim + complete steps."""
            if not pools:
                log(f"  spawning {WORKERS} worker processes")
                pools.append(stack.enter_context(WorkerPool(WORKERS)))
            return pools[0]

        def single() -> None:
            m, lat = measure_enqueue_single(db, config, sizes)
            result.measurements.append(m)
            result.latencies.append(lat)

        def batch() -> None:
            result.measurements.extend(measure_enqueue_batch(db, config, sizes))

        def claim() -> None:
            result.measurements.extend(
                measure_claim_complete(db, config, sizes, worker_pool(), many=False)
            )

        def claim_many() -> None:
            result.measurements.extend(
                measure_claim_complete(db, config, sizes, worker_pool(), many=True)
            )

        steps: list[tuple[str, Callable[[], None]]] = [
            ("enqueue_single", single),
            ("enqueue_batch", batch),
            ("claim_complete", claim),
            ("claim_complete_many", claim_many),
        ]
        for name, step in steps:
            if not config.wants(name):
                continue
            log(f"{NAME}.{name}")
            try:
                step()
            except (BenchError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.{name} failed: {exc}")
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - began
    for m in result.measurements:
        if not m.valid:
            result.errors.append(f"{m.name}: verification failed (see extra.verification)")
    return result
