"""Prometheus metrics for workers and the dashboard.

The counters and histograms live in one registry of this module (``REGISTRY``), not in
prometheus_client's global one, so an app's own metrics and ours never collide and a
test can read ours. The worker records into it as it claims and finishes jobs; ``serve``
exposes it (``jobforge worker --metrics-port``), and the dashboard adds it to ``/metrics``.

Queue depth and the oldest queued job's age are read from the database at scrape time
by ``QueueCollector``, through ``list_jobs`` (no RPC counts jobs, so it reads at most
``LIST_CAP`` queued jobs: beyond that the depth is a lower bound, and the oldest age is
that of the oldest job among the newest ``LIST_CAP``).

Workers record only after ``enable()`` (``serve`` calls it); ``instrument(client)``
records a client's RPCs and enqueued jobs.

Names and labels (all prefixed ``jobforge_``):

========================================  ======  ==============================================
``jobs_enqueued_total``                   type    jobs queued through an instrumented client
``jobs_claimed_total``                    type    jobs a worker claimed
``jobs_succeeded_total``                  type    runs reported succeeded
``jobs_failed_total``                     type    runs reported failed (retried or dead)
``jobs_dead_total``                       type    runs after which the job is dead
``jobs_timed_out_total``                  type,   runs the worker stopped at their timeout;
                                          handler ``cancelled`` (async) or ``abandoned``
                                          (a thread left running) or ``not_started``
``handler_duration_seconds``              type    handler wall time (histogram)
``claim_duration_seconds``                        one claim round trip (histogram)
``job_start_delay_seconds``               type    due (run_at) to claimed (histogram)
``queue_depth``                           type    queued jobs now (gauge, at scrape)
``oldest_queued_age_seconds``             type    lateness of the oldest due job (gauge)
``rpc_duration_seconds``                  rpc,    one RPC through an instrumented client
                                          outcome (histogram; outcome ok or the error class)
========================================  ======  ==============================================
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobforge_sdk._instrument import wrap_calls
from jobforge_sdk.models.jobs import JobRow, JobStatus

if TYPE_CHECKING:
    from jobforge_sdk._client.sync import JobForgeClient

__all__ = [
    "LIST_CAP",
    "REGISTRY",
    "QueueCollector",
    "dashboard_registry",
    "disable",
    "enable",
    "instrument",
    "observe_claim",
    "observe_handler",
    "observe_outcome",
    "observe_timeout",
    "oldest_age",
    "queue_depth",
    "render",
    "serve",
]

LIST_CAP = 1000
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HANDLER_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)

JOBS_ENQUEUED = Counter(
    "jobforge_jobs_enqueued",
    "Jobs queued through an instrumented client.",
    ["type"],
    registry=REGISTRY,
)
JOBS_CLAIMED = Counter(
    "jobforge_jobs_claimed", "Jobs claimed by this worker.", ["type"], registry=REGISTRY
)
JOBS_SUCCEEDED = Counter(
    "jobforge_jobs_succeeded", "Runs reported succeeded.", ["type"], registry=REGISTRY
)
JOBS_FAILED = Counter(
    "jobforge_jobs_failed",
    "Runs reported failed (retried later or dead).",
    ["type"],
    registry=REGISTRY,
)
JOBS_DEAD = Counter(
    "jobforge_jobs_dead", "Runs after which the job is dead.", ["type"], registry=REGISTRY
)
JOBS_TIMED_OUT = Counter(
    "jobforge_jobs_timed_out",
    "Runs the worker stopped at their job's timeout (handler: cancelled, abandoned, not_started).",
    ["type", "handler"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "jobforge_handler_duration_seconds",
    "Handler wall time.",
    ["type"],
    buckets=_HANDLER_BUCKETS,
    registry=REGISTRY,
)
CLAIM_SECONDS = Histogram(
    "jobforge_claim_duration_seconds",
    "One claim round trip.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
START_DELAY_SECONDS = Histogram(
    "jobforge_job_start_delay_seconds",
    "From a job's run_at to its claim.",
    ["type"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RPC_SECONDS = Histogram(
    "jobforge_rpc_duration_seconds",
    "One RPC through an instrumented client.",
    ["rpc", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


# -- what the worker records ----------------------------------------------------------------

# Workers record only once asked (``enable()``, or ``serve()``): a worker nobody scrapes
# pays one attribute test per hook, not a labelled update per job.
_recording = threading.Event()


def enable() -> None:
    """Make this process's workers record into ``REGISTRY``."""
    _recording.set()


def disable() -> None:
    _recording.clear()


def observe_claim(jobs: Sequence[JobRow], seconds: float) -> None:
    if not _recording.is_set():
        return
    CLAIM_SECONDS.observe(seconds)
    now = datetime.now(UTC)
    for job in jobs:
        JOBS_CLAIMED.labels(job.type).inc()
        START_DELAY_SECONDS.labels(job.type).observe(max((now - job.run_at).total_seconds(), 0))


def observe_handler(job_type: str, seconds: float) -> None:
    if not _recording.is_set():
        return
    HANDLER_SECONDS.labels(job_type).observe(seconds)


def observe_timeout(job_type: str, handler: str) -> None:
    """A run stopped at its timeout: ``handler`` says what became of the handler."""
    if not _recording.is_set():
        return
    JOBS_TIMED_OUT.labels(job_type, handler).inc()


def observe_outcome(job: JobRow, *, succeeded: bool, retryable: bool) -> None:
    """One reported run; dead when it failed for good or spent its last attempt."""
    if not _recording.is_set():
        return
    if succeeded:
        JOBS_SUCCEEDED.labels(job.type).inc()
        return
    JOBS_FAILED.labels(job.type).inc()
    if not retryable or job.attempts >= job.max_attempts:
        JOBS_DEAD.labels(job.type).inc()


# -- client instrumentation -----------------------------------------------------------------

_ENQUEUE_RPCS = frozenset({"jobforge_enqueue_job", "jobforge_enqueue_jobs"})


def _enqueued_types(fn: str, args: Any) -> Iterator[str]:
    if fn == "jobforge_enqueue_job":
        yield str(args.get("p_type"))
    elif fn == "jobforge_enqueue_jobs":
        jobs = args.get("p_jobs")
        if isinstance(jobs, str):  # sent as JSON text
            import json

            jobs = json.loads(jobs)
        for spec in jobs if isinstance(jobs, list) else []:
            if isinstance(spec, dict):
                yield str(spec.get("type"))


def _record_rpc(fn: str, args: Any, seconds: float, error: BaseException | None) -> None:
    outcome = "ok" if error is None else type(error).__name__
    RPC_SECONDS.labels(fn, outcome).observe(seconds)
    if error is None and fn in _ENQUEUE_RPCS:
        for job_type in _enqueued_types(fn, args):
            JOBS_ENQUEUED.labels(job_type).inc()


def instrument(client: Any) -> Any:
    """Record every RPC ``client`` makes (duration, outcome) and the jobs it enqueues;
    returns the client. A client made later by ``with_claims`` is a new one: instrument
    it too."""
    wrap_calls(client.transport, "metrics", _record_rpc)
    return client


# -- queue depth at scrape time -------------------------------------------------------------


class QueueCollector(Collector):
    """``queue_depth`` and ``oldest_queued_age_seconds`` per type, read when scraped.

    ``tenants=None`` reads every tenant's jobs (service role); otherwise each tenant's.
    A failed read exports nothing (and ``queue_scrape_errors``), never a stale number."""

    def __init__(self, client: JobForgeClient, *, tenants: Sequence[UUID] | None = None) -> None:
        self.client = client
        self.tenants = tenants
        self._lock = threading.Lock()
        self.errors = 0

    def _queued(self) -> list[JobRow]:
        status = JobStatus.QUEUED
        if self.tenants is None:
            return self.client.list_jobs(tenant_id=None, status=status, limit=LIST_CAP)
        jobs: list[JobRow] = []
        for tenant in self.tenants:
            jobs.extend(self.client.list_jobs(tenant_id=tenant, status=status, limit=LIST_CAP))
        return jobs

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "jobforge_queue_depth",
            f"Queued jobs per type (at most {LIST_CAP} read per tenant scope).",
            labels=["type"],
        )
        age = GaugeMetricFamily(
            "jobforge_oldest_queued_age_seconds",
            "Seconds since the oldest queued job of the type became due.",
            labels=["type"],
        )
        errors = GaugeMetricFamily(
            "jobforge_queue_scrape_errors", "Failed queue reads since start."
        )
        from jobforge_sdk.errors import JobForgeError

        try:
            with self._lock:
                queued = self._queued()
        except JobForgeError:
            self.errors += 1
        else:
            for job_type, (count, oldest) in sorted(queue_depth(queued, datetime.now(UTC)).items()):
                depth.add_metric([job_type], count)
                age.add_metric([job_type], oldest or 0.0)
        errors.add_metric([], self.errors)
        yield depth
        yield age
        yield errors

    def describe(self) -> Iterable[Metric]:
        return []  # read at scrape time only, never while registering


def oldest_age(jobs: Iterable[JobRow], now: datetime) -> float | None:
    """Seconds since the oldest queued job became due (a future ``run_at`` is not late)."""
    return max((max((now - job.run_at).total_seconds(), 0.0) for job in jobs), default=None)


def queue_depth(queued: Sequence[JobRow], now: datetime) -> dict[str, tuple[int, float | None]]:
    """Per type: how many queued jobs, and the oldest one's lateness in seconds."""
    by_type: dict[str, list[JobRow]] = {}
    for job in queued:
        by_type.setdefault(job.type, []).append(job)
    return {name: (len(jobs), oldest_age(jobs, now)) for name, jobs in by_type.items()}


def dashboard_registry(queue: QueueCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(queue)
    return registry


def render(*registries: CollectorRegistry) -> bytes:
    """The text format of this module's registry followed by ``registries``."""
    return b"".join(generate_latest(r) for r in (REGISTRY, *registries))


def serve(port: int, *, addr: str = "127.0.0.1", client: JobForgeClient | None = None) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread (with the queue gauges when
    a ``client`` is given); returns the server (``shutdown()`` stops it)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    enable()
    extra = dashboard_registry(QueueCollector(client)) if client is not None else None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render(extra) if extra is not None else render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="jobforge-metrics", daemon=True).start()
    return server
