"""Core-queue throughput (contract: docs/architecture.md, "Performance targets"): enqueue one
by one and in batches, and claim + complete with one and with four worker processes, each
through the SDK, through a raw psycopg call of the same SQL function, and (where the
contract has a yardstick) through bare SQL on a bare table of the same shape
(``bench/bare.py``), in the same run, on the same database, with the same connection
settings.

Claim + complete is measured twice: completing each job with its own ``complete_job``
call (one commit, so one WAL flush, per job), and completing each claimed batch with one
``complete_jobs`` call (all or nothing, one commit per batch: what the worker does). The
contract's row is the second one, at batch 100, with 1 and with 4 workers; its yardstick is
the same claim and completion on the bare table, one statement and one commit each.

Why three: the bare table says what the server itself can do on this machine in this run,
the raw call what the SQL functions make of it, and the SDK what reaches the user. The
targets are ratios between them (SDK ≥ 0.7x bare for batches; for one call, SDK at most
1.10x the raw call's time and the raw call at least 0.8x a bare single-row INSERT), so
they hold or fail whatever the machine's speed and load. The variants' blocks alternate
(each goes first in turn) and the reported figure is the median of the repeats.

Fairness rules: one autocommit connection per producer or worker on every path (the SDK
gets a pool of exactly one connection); psycopg's automatic prepared statements on all;
the raw path decodes the JSON answer (``fetchone``), the SDK additionally validates it into
``JobRow`` models, which is part of what it costs; the bare path fetches the ids it
returns. The job lists a batch sends are built before the clock starts, identically for
all paths.

Every drain is checked in the database: each job ended ``succeeded`` after exactly one
attempt, and has exactly the rows a completion writes in this tree (found by completing a
probe job first, ``history.probe_completion``: an attempt and a result row at 28f3019, none
since the result lives on the job row), and the workers completed as many as were queued.

``--history`` (``bench/history.py``) runs the contract's rows (single and batch enqueue,
claim + complete_jobs at batch 100 with 1 and 4 workers) on an empty database and on one
holding a million finished jobs and events, alternating, for the history/empty ratio.
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

import jobforge_sdk
from jobforge_sdk import ConflictError, JobForgeClient, NotFoundError

from . import bare
from .bare import BareConsumer, BareProducer
from .harness import (
    BATCH_TARGET,
    SDK_PATH,
    SINGLE_CALL_TARGET,
    VARIANTS,
    BenchConfig,
    BenchDatabase,
    BenchError,
    Latency,
    Measurement,
    ModuleResult,
    Stage,
    blocks,
    log,
    rotate,
    scratch_database,
    stages_of,
)
from .history import CompletionShape, probe_completion, verify_completions

NAME = "core_queue"
MEASUREMENTS = ("enqueue_single", "enqueue_batch", "claim_complete", "claim_complete_many")

TENANT_ID = uuid.UUID("00000000-0000-4000-8000-00000000be9c")
JOB_TYPE = "bench.core"
WORKERS = 4
WORKER_COUNTS = (1, 4)
WORKER_SETUP_TIMEOUT_S = 120.0  # spawning imports the SDK; a loaded 2-core box is slow
WORKER_RUN_TIMEOUT_S = 240.0  # a drain that takes longer than this is broken, not slow

# The raw path: the same functions the SDK calls, by parameter name, nothing else.
RAW_ENQUEUE = "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s, p_payload => %s)"
RAW_ENQUEUE_MANY = "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s)"
RAW_ENQUEUE_IDS = (
    "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s, p_returning => 'ids')"
)
RAW_CLAIM = "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => %s)"
RAW_COMPLETE = (
    "select public.jobforge_complete_job(p_job_id => %s, p_worker_id => %s,"
    " p_status => 'succeeded', p_result => %s)"
)
RAW_COMPLETE_MANY = "select public.jobforge_complete_jobs(p_worker_id => %s, p_results => %s)"

RESULT: dict[str, Any] = {"ok": True}
NO_SUCH_TYPE = "bench.nothing"

# The SDK answers only ids since ca41f15 (``enqueue_job_ids``); measured where it exists.
HAS_ENQUEUE_IDS = hasattr(JobForgeClient, "enqueue_job_ids")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does; ``--quick`` trades precision for time.

    Claim + complete runs one transaction per completed job, so on a 2-core machine it
    drains roughly 500-2,000 jobs/s whatever the batch (depending on the load); 3,000-6,000
    jobs per run keep each run a few seconds long (long enough to average out scheduling
    noise) and a full ``make bench`` within 10 minutes even on a busy machine. Raise them
    on a faster one. Completing a batch with one ``complete_jobs`` call commits once per
    batch, so ``claim_many_jobs`` (keyed by workers and batch) can be larger for the same
    run time.
    """

    single_jobs: int
    single_warmup: int
    batch_jobs: int
    batch_sizes: tuple[int, ...]
    claim_jobs: dict[int, int]
    claim_many_jobs: dict[tuple[int, int], int]


FULL = Sizes(
    single_jobs=4_000,
    single_warmup=200,
    batch_jobs=20_000,
    batch_sizes=(100, 1_000),
    claim_jobs={1: 3_000, 10: 6_000, 100: 6_000},
    claim_many_jobs={(4, 10): 8_000, (4, 100): 12_000, (1, 100): 12_000},
)
QUICK = Sizes(
    single_jobs=500,
    single_warmup=50,
    batch_jobs=3_000,
    batch_sizes=(100, 1_000),
    claim_jobs={1: 500, 10: 1_000, 100: 2_000},
    claim_many_jobs={(4, 10): 1_000, (4, 100): 2_000, (1, 100): 2_000},
)
# The contract's claim rows: what --history measures.
CONTRACT_CLAIM_BATCH = 100


def payload(n: int) -> dict[str, Any]:
    """A small, realistic payload: a few scalars, ~80 bytes of JSON."""
    return {"n": n, "email": f"user{n}@example.com", "action": "welcome", "retry": False}


def job_specs(start: int, count: int) -> list[dict[str, Any]]:
    return [{"type": JOB_TYPE, "payload": payload(start + i)} for i in range(count)]


def variant_order(repeat: int) -> list[str]:
    """SDK first on even repeats, raw first on odd ones (the SDK/raw-only rows)."""
    return rotate(("sdk", "raw"), repeat)


# -- producers: the three ways to enqueue -----------------------------------------------


class Producer(Protocol):
    def enqueue(self, payload: dict[str, Any]) -> None: ...

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int: ...

    def enqueue_ids(self, jobs: list[dict[str, Any]]) -> int: ...

    def close(self) -> None: ...


class SdkProducer:
    def __init__(self, url: str) -> None:
        self.client = JobForgeClient.from_postgres(url, min_size=1, max_size=1)

    def enqueue(self, payload: dict[str, Any]) -> None:
        self.client.enqueue_job(tenant_id=TENANT_ID, type=JOB_TYPE, payload=payload)

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int:
        return len(self.client.enqueue_jobs(tenant_id=TENANT_ID, jobs=jobs))

    def enqueue_ids(self, jobs: list[dict[str, Any]]) -> int:
        return len(self.client.enqueue_job_ids(tenant_id=TENANT_ID, jobs=jobs))  # type: ignore[attr-defined, unused-ignore]

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

    def enqueue_ids(self, jobs: list[dict[str, Any]]) -> int:
        row = self.conn.execute(RAW_ENQUEUE_IDS, (TENANT_ID, Jsonb(jobs))).fetchone()
        return len(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


class CoreBareProducer(BareProducer):
    """The bare yardstick; its insert returns only ids whichever SDK call it stands for."""

    def __init__(self, url: str) -> None:
        super().__init__(url, TENANT_ID, JOB_TYPE)

    def enqueue_ids(self, jobs: list[dict[str, Any]]) -> int:
        return self.enqueue_many(jobs)


PRODUCERS: dict[str, Callable[[str], Producer]] = {
    "sdk": SdkProducer,
    "raw": RawProducer,
    "bare": CoreBareProducer,
}


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


CONSUMERS: dict[str, Callable[[str, str], Consumer]] = {
    "sdk": SdkConsumer,
    "raw": RawConsumer,
    "bare": BareConsumer,
}


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
    sdk_path: str = ""


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
        report = DrainReport(worker=index, sdk_path=SDK_PATH)
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
    """Spawned worker processes (four, or one), reused for every drain of the module.

    Why reuse: spawning imports the SDK afresh (over a second per process on a small box);
    doing that once instead of for every run keeps a full ``make bench`` within budget. Each
    drain still opens a new client or connection in each worker.
    """

    def __init__(self, workers: int) -> None:
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
        elsewhere = {r.sdk_path for r in reports} - {SDK_PATH}
        if elsewhere:
            raise BenchError(f"workers imported jobforge_sdk from {elsewhere}, not {SDK_PATH}")
        return seconds, sorted(reports, key=lambda r: r.worker)


# -- the measurements -------------------------------------------------------------------


def _measurements(
    stages: list[Stage], base: str, operation: str, **fields: Any
) -> dict[str, Measurement]:
    """One ``Measurement`` per stage (one, or empty + history under ``--history``)."""
    return {
        stage.key: Measurement(
            name=stage.name(base),
            operation=stage.operation(operation),
            stage=stage.key,
            base=base,
            **fields,
        )
        for stage in stages
    }


def measure_enqueue_single(
    stages: list[Stage], config: BenchConfig, sizes: Sizes
) -> list[tuple[Measurement, Latency]]:
    """One call per job on one connection; every call is timed, for throughput and
    latency at once (``perf_counter`` costs well under a microsecond)."""
    ms = _measurements(
        stages,
        "enqueue_single",
        "enqueue, one call per job",
        unit="jobs/s",
        target=SINGLE_CALL_TARGET,
        params={"jobs": sizes.single_jobs, "warmup": sizes.single_warmup, "connections": 1},
    )
    lats = {
        stage.key: Latency(
            name=stage.name("enqueue_single_latency"),
            operation=stage.operation("enqueue, one call"),
        )
        for stage in stages
    }
    payloads = [payload(i) for i in range(sizes.single_jobs)]
    for _repeat, variant, stage in blocks(config.repeats, VARIANTS, stages):
        stage.db.reset()
        with producer(variant, stage.db.url) as p:
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
        rate = ms[stage.key].series(variant).add(len(payloads), seconds, cpu_s)
        lats[stage.key].samples(variant).extend(samples)
        log(f"  {stage.name('enqueue_single')} {variant}: {rate:,.0f} jobs/s")
    return [(ms[stage.key], lats[stage.key]) for stage in stages]


def measure_enqueue_batch(
    stages: list[Stage], config: BenchConfig, sizes: Sizes
) -> list[Measurement]:
    """``enqueue_jobs`` (and ``enqueue_job_ids`` where the SDK has it) with batches of 100
    and 1,000 on one connection; the bare twin is one INSERT ... RETURNING id per batch."""
    out: list[Measurement] = []
    kinds = [("enqueue_batch", "enqueue, batch of {batch:,}", "many")]
    if HAS_ENQUEUE_IDS:
        kinds.append(("enqueue_ids_batch", "enqueue_job_ids, batch of {batch:,}", "ids"))
    for batch in sizes.batch_sizes:
        batches = max(1, sizes.batch_jobs // batch)
        work = [job_specs(i * batch, batch) for i in range(batches)]
        for base, operation, call in kinds:
            ms = _measurements(
                stages,
                f"{base}_{batch}",
                operation.format(batch=batch),
                unit="jobs/s",
                target=BATCH_TARGET,
                params={
                    "batch": batch,
                    "batches": batches,
                    "jobs": batches * batch,
                    "connections": 1,
                    "sdk_call": "enqueue_job_ids" if call == "ids" else "enqueue_jobs",
                },
            )
            for _repeat, variant, stage in blocks(config.repeats, VARIANTS, stages):
                stage.db.reset()
                with producer(variant, stage.db.url) as p:
                    send = p.enqueue_ids if call == "ids" else p.enqueue_many
                    send(job_specs(-batch, batch))  # warm-up: connect, signatures
                    cpu_began = time.process_time()
                    began = time.perf_counter()
                    done = sum(send(jobs) for jobs in work)
                    seconds = time.perf_counter() - began
                    cpu_s = time.process_time() - cpu_began
                if done != batches * batch:
                    raise BenchError(f"{base} returned {done} rows for {batches * batch}")
                rate = ms[stage.key].series(variant).add(done, seconds, cpu_s)
                log(f"  {stage.name(f'{base}_{batch}')} {variant}: {rate:,.0f} jobs/s")
            out.extend(ms[stage.key] for stage in stages)
    return out


def fill_queue(db: BenchDatabase, jobs: int, variant: str = "raw") -> None:
    """Pre-enqueue ``jobs`` jobs in batches of 1,000 (raw, or into the bare table for the
    bare variant: setup, not measured), then refresh the planner's statistics."""
    batches = [job_specs(start, min(1_000, jobs - start)) for start in range(0, jobs, 1_000)]
    with psycopg.connect(db.url, autocommit=True) as conn:
        if variant == "bare":
            bare.fill_jobs(conn, TENANT_ID, batches)
            return
        for specs in batches:
            conn.execute(RAW_ENQUEUE_MANY, (TENANT_ID, Jsonb(specs)))
    db.analyze()


def verify_drain(
    db: BenchDatabase,
    jobs: int,
    reports: list[DrainReport],
    variant: str,
    shape: CompletionShape,
) -> dict[str, Any]:
    """Every job ended ``succeeded`` exactly once: by status, by attempt count, by the
    rows a completion writes (``verify_completions``), and by what the workers say they
    completed. The bare table has status and attempts only."""
    completed = sum(r.completed for r in reports)
    with psycopg.connect(db.url, autocommit=True) as conn:
        if variant == "bare":
            by_status, not_once = bare.verify_jobs(conn, TENANT_ID)
            check: dict[str, Any] = {
                "ok": by_status == {"succeeded": jobs} and not_once == 0,
                "by_status": by_status,
                "attempts_not_1": not_once,
            }
        else:
            check = verify_completions(conn, shape, TENANT_ID, jobs)
    check["completed_by_workers"] = completed
    check["ok"] = bool(check["ok"]) and completed == jobs
    return check


def measure_claim_complete(
    stages: list[Stage],
    config: BenchConfig,
    sizes: Sizes,
    pool: Callable[[int], WorkerPool],
    shapes: dict[str, CompletionShape],
    *,
    many: bool,
) -> list[Measurement]:
    """Worker processes drain a pre-filled queue: claim(limit=batch), then complete each
    job (``complete_job``; SDK and raw only, 4 workers), or the whole batch at once
    (``complete_jobs``; SDK, raw and bare, 1 and 4 workers) when ``many``."""
    out: list[Measurement] = []
    plan: dict[tuple[int, int], int] = (
        dict(sizes.claim_many_jobs)
        if many
        else {(WORKERS, batch): jobs for batch, jobs in sizes.claim_jobs.items()}
    )
    if config.history is not None:
        plan = {k: v for k, v in plan.items() if k[1] == CONTRACT_CLAIM_BATCH}
    variants = VARIANTS if many else ("sdk", "raw")
    for (workers, batch), jobs in plan.items():
        name = f"claim_complete_many_{batch}" if many else f"claim_complete_{batch}"
        if workers != WORKERS:
            name += f"_{workers}w"
        completion = "complete_jobs per batch" if many else "complete"
        noun = "worker" if workers == 1 else "workers"
        ms = _measurements(
            stages,
            name,
            f"claim + {completion}, {workers} {noun}, batch {batch:,}",
            unit="jobs/s",
            target=BATCH_TARGET if many and batch == CONTRACT_CLAIM_BATCH else None,
            params={
                "batch": batch,
                "jobs": jobs,
                "workers": workers,
                "processes": "spawn",
                "completion": "complete_jobs, one call per claimed batch"
                if many
                else "complete_job, one call per job",
            },
        )
        checks: dict[str, list[dict[str, Any]]] = {stage.key: [] for stage in stages}
        for repeat, variant, stage in blocks(config.repeats, variants, stages):
            stage.db.reset()
            fill_queue(stage.db, jobs, variant)
            command = DrainCommand(variant, stage.db.url, batch, WORKER_RUN_TIMEOUT_S, many)
            seconds, reports = pool(workers).drain(command)
            check = verify_drain(stage.db, jobs, reports, variant, shapes[stage.key])
            checks[stage.key].append({"variant": variant, "repeat": repeat, **check})
            per_worker = [r.completed for r in reports]
            m = ms[stage.key]
            rate = m.series(variant).add(
                jobs,
                seconds,
                sum(r.cpu_s for r in reports),
                per_worker=per_worker,
                claims=sum(r.claims for r in reports),
                verified=check["ok"],
            )
            log(
                f"  {m.name} {variant}: {rate:,.0f} jobs/s, per worker {per_worker},"
                f" verified={check['ok']}"
            )
            if not check["ok"]:
                m.valid = False
                log(f"  {m.name} {variant}: verification failed: {check}")
        for stage in stages:
            ms[stage.key].extra["verification"] = checks[stage.key]
            out.append(ms[stage.key])
    return out


def run(config: BenchConfig) -> ModuleResult:
    """Every measurement of this module, on one scratch database reset between runs (or,
    under ``--history``, the contract's rows on the empty and the history database)."""
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    log(f"  jobforge_sdk {jobforge_sdk.__version__} from {SDK_PATH}")
    with ExitStack() as stack:
        own = None
        if config.history is None:
            own = stack.enter_context(scratch_database(config.server_url))
            bare.install(own.url)
        stages = stages_of(config, own)
        for stage in stages:
            stage.db.live_tenants = (TENANT_ID,)
            stage.db.reset()
        shapes = {stage.key: probe_completion(stage.db.url) for stage in stages}
        completion = next(iter(shapes.values())).describe()
        result.notes.append(f"A completion in this tree writes {completion}.")
        log(f"  a completion writes {completion}")
        pools: dict[int, WorkerPool] = {}

        def worker_pool(workers: int) -> WorkerPool:
            """Spawned on first use and shared by both claim + complete steps."""
            if workers not in pools:
                log(f"  spawning {workers} worker process(es)")
                pools[workers] = stack.enter_context(WorkerPool(workers))
            return pools[workers]

        def single() -> None:
            for m, lat in measure_enqueue_single(stages, config, sizes):
                result.measurements.append(m)
                result.latencies.append(lat)

        def batch() -> None:
            result.measurements.extend(measure_enqueue_batch(stages, config, sizes))

        def claim() -> None:
            result.measurements.extend(
                measure_claim_complete(stages, config, sizes, worker_pool, shapes, many=False)
            )

        def claim_many() -> None:
            result.measurements.extend(
                measure_claim_complete(stages, config, sizes, worker_pool, shapes, many=True)
            )

        steps: list[tuple[str, Callable[[], None]]] = [
            ("enqueue_single", single),
            ("enqueue_batch", batch),
            ("claim_complete", claim),
            ("claim_complete_many", claim_many),
        ]
        if config.history is not None:  # per-job completion is not a contract row
            steps = [step for step in steps if step[0] != "claim_complete"]
        for name, step in steps:
            if not config.wants(name):
                continue
            log(f"{NAME}.{name}")
            try:
                step()
            except (BenchError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.{name} failed: {exc}")
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if config.history is not None:
            for stage in stages:
                stage.db.reset()  # leave the pair as found for the next module
    result.seconds = time.perf_counter() - began
    for m in result.measurements:
        if not m.valid:
            result.errors.append(f"{m.name}: verification failed (see extra.verification)")
    if not HAS_ENQUEUE_IDS:
        result.notes.append("This SDK has no enqueue_job_ids: its batch row is not measured.")
    return result
