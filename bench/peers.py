"""JobForge next to its peers (docs/architecture.md: peers to beat in the same run): the same
no-op workload through JobForge, pgqueuer and procrastinate, on the same PostgreSQL server,
in the same run, each queue in its own scratch database.

Install the peers into the project's virtualenv first; they are deliberately not
dependencies of the project (this is a benchmark, not a test, and ``make bench`` runs the
other modules without them):

    .venv/bin/pip install 'pgqueuer[asyncpg]' procrastinate

A peer that is not installed is skipped with a note saying what to install; a peer that
fails while running is reported as an error with the exception, and the other systems'
numbers are still reported.

What is measured, for each system, median of ``--repeats`` runs (systems take turns, in a
rotating order, so load that drifts during the run hits all of them):

(a) enqueue one job per call on one connection, jobs/s;
(b) enqueue batches of 100 in one call each (all three support it), jobs/s;
(c) no-op jobs through each one's own worker at concurrency 1, 4 and 16: N jobs enqueued
    before the worker starts (not timed), jobs/s = N / wall time until the worker has
    drained the queue and returned;
(d) enqueue -> handler start with an idle worker (LISTEN/NOTIFY for all three, 1 s
    fallback poll), p50 and p99, timed by the same loop as ``worker_latency``.

How the systems are driven, and why:

* JobForge: the SDK, as in ``core_queue`` and ``worker_latency`` (sync client on psycopg;
  ``Worker`` with ``concurrency`` executor threads and its default claim size (2c),
  completions as the Worker reports them: batched ``complete_jobs`` calls from a
  reporter thread). Batch enqueue is ``enqueue_job_ids``, which answers the new ids as
  pgqueuer's ``enqueue`` and procrastinate's ``batch_defer`` do (``enqueue_jobs`` also
  builds and returns every row; core_queue measures both).
* pgqueuer: producer ``SyncQueries`` on a psycopg connection (its sync producer API);
  worker ``QueueManager`` on one asyncpg connection, its primary driver. (Its psycopg
  driver shares the one connection between queries and a ``notifies()`` wait of up to
  1 s, see ``PsycopgDriver``; here that showed as ~1 s stalls whenever no notification
  was due.) Concurrency c is ``batch_size = c`` with ``max_concurrent_tasks = 2c``, the
  smallest hard cap pgqueuer accepts for that batch size. Its per-entrypoint
  ``concurrency_limit`` would be the literal knob, but with it a drain ran at ~40 jobs/s
  (limit 4) and did not finish 2,000 jobs in 60 s (limit 1) here, so it would measure
  something else. pgqueuer records completions in a buffered log (``pgqueuer_log``)
  written in batches, so it commits far less than once per job. Tables ``durable`` (its
  default: all logged).
* procrastinate: producer ``App`` on ``SyncPsycopgConnector``, ``task.defer`` and
  ``task.batch_defer``; worker ``run_worker_async(concurrency=c)`` on a
  ``PsycopgConnector`` pool of c + 2 connections, async no-op task. It fetches one job per
  query and finishes each with its own commit.

All drains are verified: every job ended successful exactly as many times as enqueued.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict

import jobforge_sdk
from jobforge_sdk import JobForgeClient

from . import worker_latency
from .core_queue import job_specs, payload
from .harness import (
    BenchConfig,
    BenchDatabase,
    BenchError,
    ModuleResult,
    Table,
    log,
    percentile,
    scratch_database,
)
from .worker_latency import LatencyRun, StartLog, latency_loop

NAME = "peers"
SYSTEMS = ("jobforge", "pgqueuer", "procrastinate")
MEASUREMENTS = SYSTEMS  # ``--only peers.pgqueuer`` measures JobForge's peer alone

CONCURRENCIES = (1, 4, 16)
BATCH = 100
LATENCY_CONCURRENCY = 4
POLL_S = 1.0  # every worker's fallback poll: a lost notification shows as a ~1 s outlier
STOP_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 150.0
ENTRYPOINT = "bench_noop"  # pgqueuer entrypoint and procrastinate task name
QUEUE = "bench"

TENANT = worker_latency.TENANT_ID
JOB_TYPE = worker_latency.JOB_TYPE

INSTALL_HINT = "install with: .venv/bin/pip install 'pgqueuer[asyncpg]' procrastinate"
REQUIREMENTS = {
    "jobforge": (),
    "pgqueuer": ("pgqueuer", "asyncpg"),
    "procrastinate": ("procrastinate",),
}


@dataclass(frozen=True)
class Sizes:
    """Small enough that procrastinate (~100-250 jobs/s through its worker here) keeps the
    module within ~3 minutes; the same N for every system."""

    single_jobs: int
    single_warmup: int
    batches: int
    drain_jobs: int
    latency_jobs: int
    latency_warmup: int


FULL = Sizes(
    single_jobs=1_000,
    single_warmup=50,
    batches=50,
    drain_jobs=600,
    latency_jobs=200,
    latency_warmup=10,
)
QUICK = Sizes(
    single_jobs=200,
    single_warmup=20,
    batches=10,
    drain_jobs=150,
    latency_jobs=50,
    latency_warmup=5,
)


@dataclass
class DrainRun:
    seconds: float
    cpu_s: float
    ok: bool
    detail: dict[str, Any]


class System(Protocol):
    """One queue, driven through its own public API."""

    name: str

    def version(self) -> str: ...

    def install(self) -> None: ...

    def enqueue_one_by_one(self, payloads: list[dict[str, Any]], warmup: int) -> float: ...

    def enqueue_batches(self, batches: list[list[dict[str, Any]]]) -> float: ...

    def drain(self, jobs: int, concurrency: int) -> DrainRun: ...

    def latency(self, jobs: int, warmup: int, seed: int) -> LatencyRun: ...


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _checkpoint(db: BenchDatabase) -> None:
    """As ``BenchDatabase.reset`` does after emptying: no checkpoint mid-measurement."""
    if not db.can_checkpoint:
        return
    with psycopg.connect(db.url, autocommit=True) as conn:
        try:
            conn.execute("checkpoint")
        except psycopg.errors.InsufficientPrivilege:
            db.can_checkpoint = False


def _truncate(db: BenchDatabase, tables: tuple[str, ...]) -> None:
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("truncate " + ", ".join(tables) + " cascade")
    _checkpoint(db)


class AsyncWorkerThread:
    """An asyncio worker in a thread of its own, as it would run in a service: ``main``
    gets an event to stop on. ``stop`` sets it and joins, bounded; errors come back."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self._main = main
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._target, name="bench-peer", daemon=True)

    def _target(self) -> None:
        async def body() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._main(self._stop)

        try:
            asyncio.run(body())
        except BaseException as exc:  # Handed to the caller by stop().
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> AsyncWorkerThread:
        self._thread.start()
        if not self._ready.wait(STOP_TIMEOUT_S):
            raise BenchError("the worker thread did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended on its own
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            raise BenchError(f"the worker did not stop within {STOP_TIMEOUT_S:.0f} s")
        if self._error is not None and exc_info[0] is None:
            raise BenchError(f"the worker failed: {type(self._error).__name__}: {self._error}")


# -- JobForge ---------------------------------------------------------------------------


class JobForge:
    name = "jobforge"

    def __init__(self, db: BenchDatabase) -> None:
        self.db = db

    def version(self) -> str:
        return jobforge_sdk.__version__

    def install(self) -> None:
        """The scratch database is migrated already."""

    def _client(self) -> JobForgeClient:
        return JobForgeClient.from_postgres(self.db.url, min_size=1, max_size=1)

    def enqueue_one_by_one(self, payloads: list[dict[str, Any]], warmup: int) -> float:
        self.db.reset()
        with self._client() as client:
            for i in range(warmup):
                client.enqueue_job(tenant_id=TENANT, type=JOB_TYPE, payload=payload(-1 - i))
            began = time.perf_counter()
            for item in payloads:
                client.enqueue_job(tenant_id=TENANT, type=JOB_TYPE, payload=item)
            return time.perf_counter() - began

    def enqueue_batches(self, batches: list[list[dict[str, Any]]]) -> float:
        self.db.reset()
        with self._client() as client:
            client.enqueue_job_ids(tenant_id=TENANT, jobs=_jobforge_specs(batches[0]))
            work = [_jobforge_specs(items) for items in batches]
            began = time.perf_counter()
            for specs in work:
                client.enqueue_job_ids(tenant_id=TENANT, jobs=specs)
            return time.perf_counter() - began

    def drain(self, jobs: int, concurrency: int) -> DrainRun:
        run = worker_latency.run_throughput(self.db, jobs, concurrency)
        return DrainRun(
            run.seconds,
            run.cpu_s,
            run.verified(jobs),
            {"processed": run.processed, "statuses": run.statuses},
        )

    def latency(self, jobs: int, warmup: int, seed: int) -> LatencyRun:
        self.db.reset()
        return worker_latency.run_latency(self.db.url, jobs, warmup, seed)


def _jobforge_specs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": JOB_TYPE, "payload": item} for item in items]


# -- pgqueuer ---------------------------------------------------------------------------


class PgQueuer:
    name = "pgqueuer"
    TABLES = ("pgqueuer", "pgqueuer_log", "pgqueuer_statistics")

    def __init__(self, db: BenchDatabase) -> None:
        self.db = db

    def version(self) -> str:
        return f"{_version('pgqueuer')} (asyncpg {_version('asyncpg')})"

    def install(self) -> None:
        from pgqueuer import AsyncpgDriver, Queries

        async def install() -> None:
            conn = await _asyncpg_connect(self.db.url)
            try:
                await Queries(AsyncpgDriver(conn)).install()
            finally:
                await conn.close()

        asyncio.run(install())

    def reset(self) -> None:
        _truncate(self.db, self.TABLES)

    @contextlib.contextmanager
    def _producer(self) -> Iterator[Any]:
        from pgqueuer.db import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        with psycopg.connect(self.db.url, autocommit=True) as conn:
            yield SyncQueries(SyncPsycopgDriver(conn))

    def enqueue_one_by_one(self, payloads: list[dict[str, Any]], warmup: int) -> float:
        self.reset()
        data = [_bytes(item) for item in payloads]
        with self._producer() as queries:
            for i in range(warmup):
                queries.enqueue(ENTRYPOINT, _bytes(payload(-1 - i)))
            began = time.perf_counter()
            for item in data:
                queries.enqueue(ENTRYPOINT, item)
            return time.perf_counter() - began

    def enqueue_batches(self, batches: list[list[dict[str, Any]]]) -> float:
        self.reset()
        work = [([ENTRYPOINT] * len(b), [_bytes(x) for x in b], [0] * len(b)) for b in batches]
        with self._producer() as queries:
            queries.enqueue(*work[0])
            began = time.perf_counter()
            for entrypoints, data, priorities in work:
                queries.enqueue(entrypoints, data, priorities)
            return time.perf_counter() - began

    def _fill(self, jobs: int) -> None:
        with self._producer() as queries:
            for start in range(0, jobs, 1_000):
                items = [_bytes(payload(start + i)) for i in range(min(1_000, jobs - start))]
                queries.enqueue([ENTRYPOINT] * len(items), items, [0] * len(items))
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            conn.execute("analyze pgqueuer")

    def drain(self, jobs: int, concurrency: int) -> DrainRun:
        from pgqueuer import AsyncpgDriver, Queries, QueueManager
        from pgqueuer.domain.types import QueueExecutionMode
        from pgqueuer.models import Job

        self.reset()
        self._fill(jobs)
        handled = 0

        async def main() -> float:
            nonlocal handled
            conn = await _asyncpg_connect(self.db.url)
            try:
                qm = QueueManager(Queries(AsyncpgDriver(conn)))

                @qm.entrypoint(ENTRYPOINT)
                async def noop(job: Job) -> None:
                    nonlocal handled
                    handled += 1

                began = time.perf_counter()
                await asyncio.wait_for(
                    qm.run(
                        mode=QueueExecutionMode.drain,
                        batch_size=concurrency,
                        max_concurrent_tasks=2 * concurrency,
                        dequeue_timeout=timedelta(seconds=POLL_S),
                    ),
                    DRAIN_TIMEOUT_S,
                )
                return time.perf_counter() - began
            finally:
                await conn.close()

        cpu_began = time.process_time()
        seconds = asyncio.run(main())
        cpu_s = time.process_time() - cpu_began
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            left = _scalar(conn, "select count(*) from pgqueuer")
            done = _scalar(conn, "select count(*) from pgqueuer_log where status = 'successful'")
        ok = handled == jobs and left == 0 and done == jobs
        return DrainRun(seconds, cpu_s, ok, {"handled": handled, "left": left, "logged": done})

    def latency(self, jobs: int, warmup: int, seed: int) -> LatencyRun:
        from pgqueuer import AsyncpgDriver, Queries, QueueManager
        from pgqueuer.models import Job

        self.reset()
        starts = StartLog()

        async def main(stop: asyncio.Event) -> None:
            conn = await _asyncpg_connect(self.db.url)
            try:
                qm = QueueManager(Queries(AsyncpgDriver(conn)))

                @qm.entrypoint(ENTRYPOINT)
                async def noop(job: Job) -> None:
                    starts.record(int(json.loads(job.payload or b"{}")["n"]))

                task = asyncio.create_task(
                    qm.run(
                        batch_size=LATENCY_CONCURRENCY,
                        max_concurrent_tasks=2 * LATENCY_CONCURRENCY,
                        dequeue_timeout=timedelta(seconds=POLL_S),
                    )
                )
                await _until(stop, task)
                qm.shutdown.set()
                await asyncio.wait_for(task, STOP_TIMEOUT_S)
            finally:
                await conn.close()

        with self._producer() as queries, AsyncWorkerThread(main):

            def enqueue(key: int) -> None:
                queries.enqueue(ENTRYPOINT, _bytes(payload(key)))

            return latency_loop(enqueue, starts, jobs, warmup, seed)


async def _asyncpg_connect(url: str) -> Any:
    """asyncpg takes a URL or keywords, not libpq's ``key=value`` conninfo the harness
    builds, so the parts are passed one by one."""
    import asyncpg  # type: ignore[import-untyped]

    params = conninfo_to_dict(url)
    port = params.get("port")
    return await asyncpg.connect(
        host=params.get("host"),
        port=int(str(port)) if port else None,
        user=params.get("user"),
        password=params.get("password"),
        database=params.get("dbname"),
    )


def _bytes(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":")).encode()


def _scalar(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


async def _until(stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Wait for the stop request, or for the worker task to end early (an error)."""
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raises what the worker raised
        raise BenchError("the worker stopped by itself")


# -- procrastinate ----------------------------------------------------------------------


class Procrastinate:
    name = "procrastinate"
    TABLES = ("procrastinate_jobs",)

    def __init__(self, db: BenchDatabase) -> None:
        self.db = db

    def version(self) -> str:
        return _version("procrastinate")

    def _app(self, connector: Any, on_start: Callable[[int], None] | None = None) -> Any:
        from procrastinate import App

        app = App(connector=connector)

        @app.task(name=ENTRYPOINT, queue=QUEUE)
        async def noop(**kwargs: Any) -> None:
            if on_start is not None:
                on_start(int(kwargs["n"]))

        return app

    @contextlib.contextmanager
    def _producer(self) -> Iterator[Any]:
        """The producer's task object, on an open app with one connection."""
        from procrastinate import SyncPsycopgConnector

        app = self._app(SyncPsycopgConnector(conninfo=self.db.url, min_size=1, max_size=1))
        with app.open():
            yield app.tasks[ENTRYPOINT]

    def install(self) -> None:
        from procrastinate import App, SyncPsycopgConnector

        app = App(connector=SyncPsycopgConnector(conninfo=self.db.url, min_size=1, max_size=1))
        with app.open():
            app.schema_manager.apply_schema()

    def reset(self) -> None:
        _truncate(self.db, self.TABLES)

    def enqueue_one_by_one(self, payloads: list[dict[str, Any]], warmup: int) -> float:
        self.reset()
        with self._producer() as task:
            for i in range(warmup):
                task.defer(**payload(-1 - i))
            began = time.perf_counter()
            for item in payloads:
                task.defer(**item)
            return time.perf_counter() - began

    def enqueue_batches(self, batches: list[list[dict[str, Any]]]) -> float:
        self.reset()
        with self._producer() as task:
            task.batch_defer(*batches[0])
            began = time.perf_counter()
            for items in batches:
                task.batch_defer(*items)
            return time.perf_counter() - began

    def _fill(self, jobs: int) -> None:
        with self._producer() as task:
            for start in range(0, jobs, 1_000):
                task.batch_defer(*[payload(start + i) for i in range(min(1_000, jobs - start))])
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            conn.execute("analyze procrastinate_jobs")

    def drain(self, jobs: int, concurrency: int) -> DrainRun:
        from procrastinate import PsycopgConnector

        self.reset()
        self._fill(jobs)
        handled = 0

        def count(_key: int) -> None:
            nonlocal handled
            handled += 1

        async def main() -> float:
            connector = PsycopgConnector(
                conninfo=self.db.url, min_size=concurrency + 2, max_size=concurrency + 2
            )
            app = self._app(connector, count)
            async with app.open_async():
                began = time.perf_counter()
                await asyncio.wait_for(
                    app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=concurrency,
                        wait=False,
                        listen_notify=False,
                        fetch_job_polling_interval=POLL_S,
                        install_signal_handlers=False,
                    ),
                    DRAIN_TIMEOUT_S,
                )
                return time.perf_counter() - began

        cpu_began = time.process_time()
        seconds = asyncio.run(main())
        cpu_s = time.process_time() - cpu_began
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            rows = conn.execute(
                "select status::text, count(*) from procrastinate_jobs group by 1"
            ).fetchall()
        statuses = {str(s): int(n) for s, n in rows}
        ok = handled == jobs and statuses == {"succeeded": jobs}
        return DrainRun(seconds, cpu_s, ok, {"handled": handled, "statuses": statuses})

    def latency(self, jobs: int, warmup: int, seed: int) -> LatencyRun:
        from procrastinate import PsycopgConnector

        self.reset()
        starts = StartLog()

        async def main(stop: asyncio.Event) -> None:
            size = LATENCY_CONCURRENCY + 2
            connector = PsycopgConnector(conninfo=self.db.url, min_size=size, max_size=size)
            app = self._app(connector, starts.record)
            async with app.open_async():
                task = asyncio.create_task(
                    app.run_worker_async(
                        queues=[QUEUE],
                        concurrency=LATENCY_CONCURRENCY,
                        wait=True,
                        listen_notify=True,
                        fetch_job_polling_interval=POLL_S,
                        install_signal_handlers=False,
                    )
                )
                await _until(stop, task)
                task.cancel()  # procrastinate's way to stop a worker gracefully
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, STOP_TIMEOUT_S)

        with self._producer() as task, AsyncWorkerThread(main):

            def enqueue(key: int) -> None:
                task.defer(**payload(key))

            return latency_loop(enqueue, starts, jobs, warmup, seed)


FACTORIES: dict[str, Callable[[BenchDatabase], System]] = {
    "jobforge": JobForge,
    "pgqueuer": PgQueuer,
    "procrastinate": Procrastinate,
}


def missing_requirement(system: str) -> str | None:
    """Why ``system`` cannot run here (an import that fails), or None."""
    for module in REQUIREMENTS[system]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


# -- results ----------------------------------------------------------------------------

WORKLOADS: dict[str, tuple[str, str]] = {
    "enqueue_single": ("enqueue, one call per job", "jobs/s"),
    "enqueue_batch": (f"enqueue, batch of {BATCH}", "jobs/s"),
    **{
        f"drain_{c}": (f"no-op jobs through the worker, concurrency {c}", "jobs/s")
        for c in CONCURRENCIES
    },
    "latency_p50": ("enqueue → handler start, idle worker, p50", "ms"),
    "latency_p99": ("enqueue → handler start, idle worker, p99", "ms"),
}


@dataclass
class Results:
    """Per system and workload: one value per run (rates), or pooled samples (latency)."""

    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add_rate(self, system: str, workload: str, rate: float) -> None:
        self.rates.setdefault(system, {}).setdefault(workload, []).append(rate)

    def cell(self, system: str, workload: str) -> str:
        if workload.startswith("latency_"):
            samples = self.latency.get(system, [])
            if not samples:
                return "—"
            q = float(workload.removeprefix("latency_p"))
            return f"{percentile(samples, q) * 1e3:.2f} ms"
        values = self.rates.get(system, {}).get(workload, [])
        if not values:
            return "—"
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for system in set(self.rates) | set(self.latency) | set(self.failed):
            rates = self.rates.get(system, {})
            samples = self.latency.get(system, [])
            out[system] = {
                "rates": {
                    w: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
                    for w, v in rates.items()
                    if v
                },
                "latency_ms": {f"p{q:g}": percentile(samples, q) * 1e3 for q in (50.0, 95.0, 99.0)}
                if samples
                else {},
                "latency_samples": len(samples),
                "runs": self.runs.get(system, []),
                "failed": self.failed.get(system),
            }
        return out


def measure_system(system: System, sizes: Sizes, results: Results, repeat: int) -> None:
    """One run of every workload for one system."""
    name = system.name
    run: dict[str, Any] = {"repeat": repeat}
    payloads = [payload(i) for i in range(sizes.single_jobs)]
    seconds = system.enqueue_one_by_one(payloads, sizes.single_warmup)
    results.add_rate(name, "enqueue_single", sizes.single_jobs / seconds)
    batches = [
        [spec["payload"] for spec in job_specs(i * BATCH, BATCH)] for i in range(sizes.batches)
    ]
    seconds = system.enqueue_batches(batches)
    results.add_rate(name, "enqueue_batch", sizes.batches * BATCH / seconds)
    for concurrency in CONCURRENCIES:
        drained = system.drain(sizes.drain_jobs, concurrency)
        if not drained.ok:
            raise BenchError(f"drain at concurrency {concurrency} not verified: {drained.detail}")
        rate = sizes.drain_jobs / drained.seconds
        results.add_rate(name, f"drain_{concurrency}", rate)
        run[f"drain_{concurrency}"] = {
            "seconds": drained.seconds,
            "cpu_s": drained.cpu_s,
            **drained.detail,
        }
    lat = system.latency(sizes.latency_jobs, sizes.latency_warmup, seed=100 + repeat)
    results.latency.setdefault(name, []).extend(lat.start)
    run["latency_p50_ms"] = percentile(lat.start, 50) * 1e3
    run["latency_p99_ms"] = percentile(lat.start, 99) * 1e3
    results.runs.setdefault(name, []).append(run)
    summary = ", ".join(
        f"{w} {results.rates[name][w][-1]:,.0f}" for w in ("enqueue_single", "enqueue_batch")
    )
    drains = "/".join(f"{results.rates[name][f'drain_{c}'][-1]:,.0f}" for c in CONCURRENCIES)
    log(
        f"  {name} run {repeat}: {summary}, drain c=1/4/16 {drains} jobs/s,"
        f" latency p50 {run['latency_p50_ms']:.2f} ms p99 {run['latency_p99_ms']:.2f} ms"
    )


def run(config: BenchConfig) -> ModuleResult:
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    wanted = [s for s in SYSTEMS if config.wants(s)]
    results = Results()
    versions: dict[str, str] = {}
    with ExitStack() as stack:
        systems: list[System] = []
        for name in wanted:
            missing = missing_requirement(name)
            if missing is not None:
                reason = f"not measured: not installed here ({missing}); {INSTALL_HINT}"
                result.notes.append(f"{name} {reason}")
                results.failed[name] = reason
                log(f"  {name} {reason}")
                continue
            try:
                db = stack.enter_context(
                    scratch_database(config.server_url, migrate=name == "jobforge")
                )
                system = FACTORIES[name](db)
                system.install()
                versions[name] = system.version()
                systems.append(system)
            except Exception as exc:  # A peer's setup failure must not end the module.
                reason = f"could not install its schema: {type(exc).__name__}: {exc}"
                result.errors.append(f"{name}: {reason}")
                results.failed[name] = reason
                log(f"  {name}: {reason}")
        for repeat in range(config.repeats):
            # Rotate the order, so drifting load does not always hit the same system.
            shift = repeat % len(systems) if systems else 0
            for system in systems[shift:] + systems[:shift]:
                if system.name in results.failed:
                    continue
                try:
                    measure_system(system, sizes, results, repeat)
                except Exception as exc:  # Report it; keep the other systems' numbers.
                    reason = f"failed in run {repeat}: {type(exc).__name__}: {exc}"
                    result.errors.append(f"{system.name}: {reason}")
                    results.failed[system.name] = reason
                    log(f"  {system.name}: {reason}")
    shown = [s for s in wanted if s in versions]
    table = Table(
        title=f"JobForge and its peers on the same PostgreSQL, same run (median of"
        f" {config.repeats} runs, min-max)",
        columns=["workload"] + [f"{s} {versions[s]}" for s in shown],
    )
    for workload, (label, unit) in WORKLOADS.items():
        table.rows.append(
            [f"{label} ({unit})"] + [results.cell(system, workload) for system in shown]
        )
    table.notes += [
        f"Jobs per run: {sizes.single_jobs:,} single enqueues, {sizes.batches * BATCH:,} in"
        f" batches, {sizes.drain_jobs:,} per drain, {sizes.latency_jobs:,} latency samples"
        f" (pooled over the runs for p50/p99).",
        "Concurrency: JobForge Worker threads (its default claim size, 2c); pgqueuer"
        " batch_size c with max_concurrent_tasks 2c; procrastinate run_worker_async"
        " concurrency c. Completion: JobForge's Worker reports the jobs finished by each loop"
        " turn in one complete_jobs call, pgqueuer writes completions to its log in"
        " buffered batches, procrastinate commits once per job.",
        "Payload: the same ~80-byte JSON document for every system; no-op async handlers"
        " for the peers, a no-op function for JobForge.",
    ]
    for failed, reason in results.failed.items():
        table.notes.append(f"{failed}: {reason}")
    if shown:  # Nothing measured: the notes (and errors) say why; no empty table.
        result.tables.append(table)
    result.data["peers"] = results.as_dict()
    result.data["versions"] = versions
    result.data["sizes"] = sizes.__dict__
    result.seconds = time.perf_counter() - began
    return result
