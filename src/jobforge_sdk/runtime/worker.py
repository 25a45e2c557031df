"""The worker: claims jobs, runs their handlers, and reports back.

A worker claims only the job types it has handlers for (or the subset ``types`` names), so
workers of different apps can share one database: a job it cannot run stays queued for
the worker that can.

One thread claims (woken at once by the enqueue notification, or after ``poll_interval``
when a notification is lost), ``concurrency`` threads run handlers, and a listener thread
holds a ``LISTEN`` connection. Every running job is heartbeated; stale jobs of dead workers
are reaped; on SIGTERM/SIGINT the worker stops claiming, lets running jobs finish within
``shutdown_grace`` and hands back to the queue what it could not finish.

When the database cannot be reached (a restart, a failover, a cut connection) the worker
neither dies nor floods its log: it says so once, stops calling the database, probes it
with capped backoff, and resumes within about a second of its return, listening again;
results of jobs that finished meanwhile are reported then (see ``_outage.py``).

A failure no retry can fix (inputs the template's schema refuses, a handler's
``NonRetryableError``) is reported as not retryable, and the job is dead at once.

A job with a timeout (``timeout_ms``) may run that long from its claim. Its handler runs
on a thread of its own, which the executor thread waits for until the deadline: an async
handler is cancelled there (``CancelledError`` at its current ``await``, so its cleanup
runs); a sync handler cannot be stopped, so its thread is abandoned (a daemon: it never
holds up shutdown) and left to return into nothing, while ``ctx.heartbeat()`` raises
``JobTimeout`` in it from then on. Either way the attempt fails with ``JobTimeout``
and is retried with backoff. Jobs without a timeout run on the executor thread itself.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import re
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from jobforge_sdk import metrics, tracing
from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk._schema_check import schema_problem
from jobforge_sdk.encryption import decrypt_job, keys_of
from jobforge_sdk.errors import (
    ConflictError,
    JobForgeError,
    NonRetryableError,
    NotFoundError,
    TransportError,
)
from jobforge_sdk.manifests import calculate_run_metrics, generate_env_fingerprint
from jobforge_sdk.models._base import check_json
from jobforge_sdk.models.jobs import MAX_BATCH, MAX_RESULT_BYTES, JobCompletion, JobRow, JobStatus
from jobforge_sdk.models.manifests import ArtifactManifest, ManifestStatus
from jobforge_sdk.models.templates import TemplateRow
from jobforge_sdk.runtime._outage import Outage
from jobforge_sdk.runtime.registry import Handler, JobContext, call_handler
from jobforge_sdk.runtime.scheduler import Scheduler

__all__ = ["NOTIFY_CHANNEL", "Worker", "describe_error"]

NOTIFY_CHANNEL = "jobforge_jobs"
logger = logging.getLogger("jobforge_sdk.worker")

_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")
_JWT_LIKE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


class InvalidJobInputs(NonRetryableError):
    """A template job's inputs do not satisfy the template's input schema: the same inputs
    fail the same check on every attempt, so the job is not retried."""


class InvalidJobOutput(Exception):
    """A template job's handler returned a result that breaks the output schema."""


class UnreportableResult(NonRetryableError):
    """A handler returned what ``complete_job`` cannot carry (not JSON, over the result
    size or depth cap): the same handler on the same job returns it again."""


class JobTimeout(Exception):
    """An attempt ran past its job's ``timeout_ms``, counted from its claim. Retryable:
    the job is retried with backoff, and is dead after ``max_attempts`` like any other
    failure (the reaper records the same error type when it is the one that notices)."""


# How long a cancelled async handler has to finish its cleanup before its thread is
# abandoned like a sync handler's.
CANCEL_GRACE = 1.0


class _TimedRun:
    """One handler run on a thread of its own, for a job with a deadline (a
    ``time.monotonic()`` value). The executor thread waits for it with ``wait``; what the
    handler returns after being given up on is kept here and read by no one, so an
    abandoned run never reports a completion."""

    def __init__(self, fn: Handler, ctx: JobContext, deadline: float) -> None:
        self.fn = fn
        self.ctx = ctx
        self.deadline = deadline
        self.is_async = inspect.iscoroutinefunction(fn)
        self.done = threading.Event()
        self.given_up = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at = 0.0
        self.cpu_seconds = 0.0
        self.stopped: str | None = None
        self.thread = threading.Thread(
            target=self._target, name=f"jobforge-handler-{ctx.job.id}", daemon=True
        )

    def _target(self) -> None:
        cpu_started = time.thread_time()
        try:
            value = self.fn(self.ctx)
            if inspect.isawaitable(value):
                value = asyncio.run(self._until_deadline(value))
            self.result = value
        except BaseException as exc:  # handed to the executor thread, which re-raises it
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            self.cpu_seconds = time.thread_time() - cpu_started
            self.done.set()

    async def _until_deadline(self, awaitable: Any) -> Any:
        # The loop's clock is time.monotonic(), the deadline's.
        timeout = asyncio.timeout_at(self.deadline)
        try:
            async with timeout:
                return await awaitable
        except TimeoutError:
            if timeout.expired():
                raise self.timeout_error() from None
            raise

    def timeout_error(self) -> JobTimeout:
        ms = self.ctx.job.timeout_ms
        return JobTimeout(f"attempt {self.ctx.job.attempts} ran past its timeout of {ms} ms")

    def wait(self) -> Any:
        """The handler's result, or its exception raised; ``JobTimeout`` past the
        deadline, with ``stopped`` saying what became of the handler: ``not_started``,
        ``cancelled`` (async) or ``abandoned`` (a thread left running)."""
        if time.monotonic() >= self.deadline:
            # Claimed, then held in the prefetch queue past its deadline: never run.
            self._give_up("not_started")
        self.thread.start()
        grace = CANCEL_GRACE if self.is_async else 0.0
        if not self.done.wait(max(0.0, self.deadline + grace - time.monotonic())):
            self._give_up("abandoned")
        if self.finished_at > self.deadline:
            # Finished, but late: a cancelled async handler, or one that swallowed the
            # cancellation and returned anyway. The attempt still ran past its limit.
            self._give_up("cancelled" if self.is_async else "abandoned")
        if self.error is not None:
            raise self.error
        return self.result

    def _give_up(self, stopped: str) -> NoReturn:
        self.stopped = stopped
        self.given_up.set()
        raise self.timeout_error()


class JobSetupError(NonRetryableError):
    """Something failed between the claim and the handler for this job alone (its row
    could not be read as the worker needs it): failed at once, so that one poisoned job
    never takes a worker thread, or a worker, down."""


def describe_error(exc: BaseException) -> dict[str, Any]:
    """A structured, secret-free error for ``complete_job``: type, message, and where it
    happened (file:line in function; no source text, no local values)."""
    message = _URL_CREDENTIALS.sub(r"\1***@", str(exc))
    message = _JWT_LIKE.sub("[REDACTED]", message)[:2000]
    frames = traceback.extract_tb(exc.__traceback__)[-10:]
    return {
        "type": type(exc).__name__,
        "message": message,
        "traceback": [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in frames],
    }


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A finished run waiting to be reported (completions are sent in batches)."""

    job: JobRow
    status: JobStatus
    result: Any
    error: dict[str, Any] | None
    log: dict[str, Any]
    retryable: bool = True


class Worker:
    """Runs the jobs of the types in ``handlers`` (by default all of them; ``types`` picks
    a subset). Every type in ``types`` needs a handler: a worker never claims a job it
    would have to fail."""

    def __init__(
        self,
        client: JobForgeClient,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 4,
        worker_id: str | None = None,
        types: Sequence[str] | None = None,
        batch_size: int | None = None,
        prefetch: int | None = None,
        poll_interval: float = 1.0,
        heartbeat_interval: float = 10.0,
        reap_interval: float = 30.0,
        stale_after: timedelta = timedelta(minutes=2),
        shutdown_grace: float = 30.0,
        scheduler: bool | Scheduler = False,
        listen: bool = True,
        reconnect_max_delay: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency: must be at least 1")
        if poll_interval <= 0 or heartbeat_interval <= 0 or reap_interval <= 0:
            raise ValueError("poll_interval, heartbeat_interval, reap_interval: must be positive")
        self.client = client
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        # Claiming every type would take (and, lacking a handler, fail) jobs that belong to
        # other apps' workers on a shared database; so a worker claims what it can run.
        self.types = _claimable_types(self.handlers, types)
        # Jobs claimed ahead of a free thread: a thread that finishes starts the next job
        # at once instead of waiting for the loop's next claim. They count as held (and
        # heartbeated); on shutdown the unstarted ones are released.
        self.prefetch = concurrency if prefetch is None else prefetch
        if self.prefetch < 0:
            raise ValueError("prefetch: must not be negative")
        # One claim fills every free thread and the prefetch queue: claiming only
        # `concurrency` at a time made two round trips per turn (measured: c16 went from
        # about 1.9k to 3.7k jobs/s when the batch covered both).
        self.batch_size = (
            min(concurrency + self.prefetch, MAX_BATCH) if batch_size is None else batch_size
        )
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size: must be between 1 and {MAX_BATCH}")
        # Claim again when at most this many claimed jobs wait for a thread: half the
        # prefetch, so a refill is a real batch and the threads never run dry first.
        self._refill_below = self.prefetch // 2
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.reap_interval = reap_interval
        self.stale_after = stale_after
        self.shutdown_grace = shutdown_grace
        self.scheduler = (
            scheduler
            if isinstance(scheduler, Scheduler)
            else Scheduler(client)
            if scheduler
            else None
        )
        self.listen = listen
        if reconnect_max_delay <= 0:
            raise ValueError("reconnect_max_delay: must be positive")
        # Shared by every thread: the first to meet an unreachable database says so once.
        self._outage = Outage(
            probe_dsn=self._listen_dsn(),
            pool=getattr(client.transport, "pool", None),
            max_delay=reconnect_max_delay,
            extra={"worker_id": self.worker_id},
        )
        # Set when shutdown stops waiting for the database to report held results.
        self._give_up_reporting = threading.Event()
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.released = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._jobs: queue.Queue[JobRow | None] = queue.Queue()
        # Finished runs, reported by the reporter thread (None tells it to stop).
        self._finished: queue.Queue[_Outcome | None] = queue.Queue()
        self._reporter: threading.Thread | None = None
        self._running: dict[uuid.UUID, JobRow] = {}
        # The deadline (time.monotonic()) of each held job with a timeout, counted from
        # the moment its claim was sent: never later than the database's started_at +
        # timeout_ms, which the reaper goes by.
        self._deadlines: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._fingerprint: dict[str, Any] | None = None
        self._threads: list[threading.Thread] = []
        # Set by the signal handler, read by the loop: a plain attribute, see _install_signals.
        self._signalled: int | None = None
        self._signals = 0

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; ``run`` then drains and returns. Safe from any thread (not from a
        signal handler: ``Event.set`` takes a lock the interrupted thread may hold)."""
        self._stopping.set()
        self._wake.set()

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until ``stop()`` (or SIGTERM/SIGINT when installed from the main thread)."""
        restore = self._install_signals() if install_signal_handlers else {}
        try:
            self._start_threads()
            self._loop(until_idle=False)
        finally:
            self._drain()
            self._log_stopped()
            for sig, previous in restore.items():
                signal.signal(sig, previous)

    def run_until_idle(self, *, timeout: float = 60.0) -> int:
        """Process jobs until none is due and none is running; returns how many ran.

        For tests, scripts and the smoke test: no signals, no waiting for new work.
        """
        deadline = time.monotonic() + timeout
        self._start_threads(listen=False)
        try:
            self._loop(until_idle=True, deadline=deadline)
        finally:
            self._drain()
            self._log_stopped()
        return self.processed

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            # Only a flag. The handler runs on the main thread between two bytecodes, maybe
            # while that thread holds the lock inside one of our Events (in Event.clear or
            # on its way out of Event.wait); Event.set here would then wait for that lock
            # forever, and the worker would hang on SIGTERM. The loop sees the flag within
            # one poll interval and stops properly. A second signal cuts the grace short.
            self._signals += 1
            self._signalled = signum

        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
        return previous

    def _start_threads(self, *, listen: bool | None = None) -> None:
        self._stopping.clear()
        self._give_up_reporting.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(
                target=self._run_jobs, name=f"jobforge-exec-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        # Completions go out from their own thread, so a completion's round trip overlaps
        # the next claim's instead of following it (at concurrency 16 the claim loop spent
        # about as long completing as claiming).
        self._reporter = threading.Thread(
            target=self._report_loop, name="jobforge-report", daemon=True
        )
        self._reporter.start()
        dsn = self._listen_dsn()
        listening = bool((self.listen if listen is None else listen) and dsn)
        # One line that answers "what is this worker doing?" before any job runs: which
        # types it takes is what decides whose jobs it touches on a shared database.
        logger.info(
            "worker %s started: types %s, concurrency %d, LISTEN %s, database %s",
            self.worker_id,
            ", ".join(self.types) or "none (claims no jobs)",
            self.concurrency,
            "on" if listening else "off (polling)",
            _database_label(self.client, dsn),
            extra={"worker_id": self.worker_id},
        )
        if listening and dsn:
            thread = threading.Thread(
                target=self._listen_loop, args=(dsn,), name="jobforge-listen", daemon=True
            )
            thread.start()

    def _log_stopped(self) -> None:
        with self._lock:
            ran, ok, failed, released = (
                self.processed,
                self.succeeded,
                self.failed,
                self.released,
            )
        logger.info(
            "worker %s stopped: ran %d job(s): %d succeeded, %d failed; %d released",
            self.worker_id,
            ran,
            ok,
            failed,
            released,
            extra={"worker_id": self.worker_id},
        )

    def _listen_dsn(self) -> str | None:
        return self.client.transport.listen_conninfo()  # None over HTTP: poll only

    # -- claiming -------------------------------------------------------------------------

    def _loop(self, *, until_idle: bool, deadline: float | None = None) -> None:
        next_beat = next_reap = next_tick = time.monotonic()
        while not self._stopping.is_set():
            if self._signalled is not None:
                logger.info("signal %s: stopping, finishing running jobs", self._signalled)
                self.stop()
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("run_until_idle: jobs still running at the deadline")
            if self._outage.down:
                if not self._probe_database():
                    continue
                # Reachable again: the reaper and the scheduler run at once (workers may
                # have died meanwhile, slots may have passed); the claim below says
                # whether the pool works again.
                next_reap = next_tick = time.monotonic()
            now = time.monotonic()
            if now >= next_beat:
                self._heartbeat_all()
                next_beat = now + self.heartbeat_interval
            if now >= next_reap and not until_idle:
                self._reap()
                next_reap = now + self.reap_interval
            if self.scheduler is not None and now >= next_tick:
                self._tick_scheduler()
                next_tick = now + self.scheduler.interval
            self._wake.clear()
            # While enough claimed jobs still wait for a thread, a finished job does not
            # start a claim of its own: the queue is refilled once the waiting jobs run
            # low. Without this, fast jobs woke the loop one at a time and every turn
            # claimed one or two jobs.
            if self._jobs.qsize() <= self._refill_below and self._claim():
                continue
            with self._lock:
                busy = len(self._running)
            if until_idle and busy == 0 and self._jobs.empty() and self._finished.empty():
                return
            # Sleep until woken (NOTIFY, a finished job, stop), the next poll, or the next
            # housekeeping task, whichever comes first.
            due = [next_beat] if until_idle else [next_beat, next_reap]
            if self.scheduler is not None:
                due.append(next_tick)
            poll = min(self.poll_interval, 0.05) if until_idle else self.poll_interval
            self._wake.wait(max(0.0, min(poll, min(due) - time.monotonic())))

    def _claim(self) -> int:
        with self._lock:
            free = self.concurrency + self.prefetch - len(self._running)
        if free <= 0 or not self.types:
            return 0
        claim_started = time.perf_counter()
        claim_sent = time.monotonic()
        try:
            jobs = self.client.claim_jobs(
                worker_id=self.worker_id, limit=min(free, self.batch_size), types=self.types
            )
        except TransportError as exc:
            self._outage.failed(exc, "claim")  # the loop waits for the database
            return 0
        except JobForgeError as exc:
            logger.warning("claim failed: %s", exc, extra={"worker_id": self.worker_id})
            self._stopping.wait(self.poll_interval)
            return 0
        except Exception:
            # Not the SDK's own error: a bug, but one that must not end the worker.
            logger.exception("claim failed", extra={"worker_id": self.worker_id})
            self._stopping.wait(self.poll_interval)
            return 0
        self._outage.recovered()
        metrics.observe_claim(jobs, time.perf_counter() - claim_started)
        unhandled = [job for job in jobs if job.type not in self.handlers]
        for job in jobs:
            if job.type in self.handlers:
                with self._lock:
                    self._running[job.id] = job
                    if job.timeout_ms is not None:
                        self._deadlines[job.id] = claim_sent + job.timeout_ms / 1000
                self._jobs.put(job)
        if unhandled:
            self._hand_back_unhandled(unhandled)
        return len(jobs) - len(unhandled)

    def _hand_back_unhandled(self, jobs: list[JobRow]) -> None:
        """Release claimed jobs that no handler runs, and stop claiming their types.

        Failing them would spend the attempts of jobs another worker can run; releasing
        gives the attempt back. Their type leaves this worker's claims, or it would claim
        and release the same job in a loop.
        """
        gone = sorted({job.type for job in jobs})
        self.types = [t for t in self.types if t not in gone]
        logger.error(
            "no handler for job type(s) %s: released their jobs and stopped claiming them",
            ", ".join(gone),
            extra={"worker_id": self.worker_id},
        )
        self._release(jobs)

    def _listen_loop(self, dsn: str) -> None:
        """Hold the LISTEN connection; when it breaks, connect again at once (a dropped
        connection), then after the outage's capped backoff (a server that is down)."""
        lost: str | None = None  # why the last connection broke
        delay = 0.0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"listen {NOTIFY_CHANNEL}")
                    if lost is not None:
                        logger.info(
                            "LISTEN %s re-established (the connection was lost: %s)",
                            NOTIFY_CHANNEL,
                            lost,
                            extra=self._log_extra,
                        )
                    lost, delay = None, 0.0
                    # Anything enqueued while we were not listening; during an outage this
                    # also cuts the claim loop's wait short, so it probes at once.
                    self._wake.set()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wake.set()
            except psycopg.Error as exc:
                # A dropped connection is mended at once, silently; only a server that
                # refuses the reconnection too is an outage (logged once, by _outage).
                if delay > 0 or self._outage.down:
                    self._outage.failed(exc, "LISTEN")
                lost = lost or " ".join(str(exc).split())[:200]
                self._stopping.wait(delay)
                delay = min(max(delay * 2, 0.1), self._outage.max_delay)

    @property
    def _log_extra(self) -> dict[str, str]:
        return {"worker_id": self.worker_id}

    def _probe_database(self) -> bool:
        """During an outage: wait the next backoff delay (cut short by the listener getting
        its connection back, or by ``stop``), then try to reach the server once."""
        self._wake.clear()
        self._wake.wait(self._outage.next_delay())
        if self._stopping.is_set() or self._signalled is not None:
            return False
        return self._outage.probe()

    # -- running --------------------------------------------------------------------------

    def _run_jobs(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._execute(job)
            except Exception as exc:
                # _execute catches what the handler raises; anything else that went wrong
                # for this job fails this job, not the thread that ran it.
                self._finished.put(_setup_failure(job, exc, self.worker_id))
            finally:
                with self._lock:
                    self._running.pop(job.id, None)
                    self._deadlines.pop(job.id, None)
                    self.processed += 1
                    self._idle.notify_all()
                self._wake.set()

    def _execute(self, job: JobRow) -> None:
        log = {
            "job_id": str(job.id),
            "job_type": job.type,
            "tenant_id": str(job.tenant_id),
            "attempt": job.attempts,
            "worker_id": self.worker_id,
        }
        with self._lock:
            deadline = self._deadlines.get(job.id)
        run: _TimedRun | None = None
        ctx = JobContext(
            job=job, worker_id=self.worker_id, heartbeat=self._heartbeat_for(job, lambda: run)
        )
        if ctx.trace_id:
            log["trace_id"] = ctx.trace_id
        started = datetime.now(UTC)
        cpu_started = time.thread_time()
        logger.info("job started", extra=log)
        span = tracing.start_job_span(job, ctx.trace_id)  # None unless tracing.enable()
        result: Any = None
        error: dict[str, Any] | None = None
        retryable = True
        try:
            handler = self.handlers[job.type]  # _claim keeps jobs without one out
            template = self._template_for(ctx)
            # Encrypted inputs reach the schema check and the handler in the clear.
            ctx.job = decrypt_job(job, keys_of(self.client.flags), required=True)
            if template is not None:
                _check_schema(template.input_schema, ctx.inputs, "inputs", InvalidJobInputs)
            if deadline is None:
                result = call_handler(handler, ctx)
            else:
                run = _TimedRun(handler, ctx, deadline)
                try:
                    result = run.wait()
                finally:
                    if run.stopped is not None:
                        self._timed_out(run, log)
            if template is not None:
                _check_schema(template.output_schema, result, "result", InvalidJobOutput)
            _check_reportable(result)
        except Exception as exc:
            result = None  # a failure reports its error only (the result may be what failed)
            error = describe_error(exc)
            retryable = not isinstance(exc, NonRetryableError)
        finished = datetime.now(UTC)
        tracing.end_job_span(span, error, retryable=retryable)
        metrics.observe_handler(job.type, (finished - started).total_seconds())
        cpu_seconds = time.thread_time() - cpu_started
        if run is not None:
            cpu_seconds += run.cpu_seconds  # the handler's own thread
        cpu_ms = cpu_seconds * 1000
        duration_ms = (finished - started).total_seconds() * 1000
        if ctx.template_key is not None and self.client.flags.manifests:
            self._write_manifest(ctx, started, finished, cpu_ms, error, retryable=retryable)
        status = JobStatus.SUCCEEDED if error is None else JobStatus.FAILED
        log["duration_ms"] = round(duration_ms, 3)
        self._finished.put(_Outcome(job, status, result, error, log, retryable))

    def _heartbeat_for(
        self, job: JobRow, run: Callable[[], _TimedRun | None]
    ) -> Callable[[], None]:
        """``ctx.heartbeat`` of one run: past the job's deadline it raises ``JobTimeout``
        instead, so a sync handler that beats as it goes stops there, and one the worker
        gave up on can no longer beat for the job (nor for a later attempt of it)."""

        def beat() -> None:
            timed = run()
            if timed is not None and (
                timed.given_up.is_set() or time.monotonic() >= timed.deadline
            ):
                raise timed.timeout_error()
            self._beat(job)

        return beat

    def _timed_out(self, run: _TimedRun, log: dict[str, Any]) -> None:
        metrics.observe_timeout(run.ctx.job.type, run.stopped or "abandoned")
        if run.stopped == "abandoned":
            logger.warning(
                "handler ran past the job's timeout of %s ms and cannot be stopped: its "
                "thread is abandoned (it runs on until it returns; its result is discarded)",
                run.ctx.job.timeout_ms,
                extra={**log, "handler_thread": run.thread.name},
            )
        else:
            logger.warning(
                "handler stopped at the job's timeout of %s ms (%s)",
                run.ctx.job.timeout_ms,
                run.stopped,
                extra=log,
            )

    def _report_loop(self) -> None:
        """The reporter thread: completes finished runs in batches until told to stop.

        A batch is whatever finished while the previous completion was in flight, so
        fast jobs share commits and a lone slow job is reported at once.
        """
        while True:
            first = self._finished.get()
            if first is None:
                return
            more, stop = self._take_finished()
            pending = [first, *more]
            while pending:
                try:
                    pending = self._complete_outcomes(pending)
                except Exception:
                    # Never lose the reporter: the runs stay held and the reaper recovers them.
                    logger.exception("reporting finished jobs failed")
                    break
                if pending and not self._await_database():
                    self._abandon(pending)
                    break
            if stop:
                return

    def _await_database(self) -> bool:
        """Wait until the database is back (True) or shutdown gives up on it (False)."""
        while not self._outage.back.wait(0.2):
            if self._give_up_reporting.is_set():
                return False
        return True

    def _abandon(self, outcomes: list[_Outcome]) -> None:
        logger.error(
            "%d finished job(s) not reported: the database is unreachable; they stay "
            "running until a reaper hands them back, and will run again",
            len(outcomes),
            extra=self._log_extra,
        )

    def _stop_reporter(self) -> None:
        if self._reporter is not None:
            self._finished.put(None)
            self._reporter.join()
            self._reporter = None

    def _take_finished(self) -> tuple[list[_Outcome], bool]:
        """Every finished run waiting now, and whether the stop marker came among them."""
        outcomes: list[_Outcome] = []
        while True:
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                return outcomes, False
            if item is None:
                return outcomes, True
            outcomes.append(item)

    def _report_finished(self) -> None:
        """Complete, from the calling thread, every finished run still waiting."""
        outcomes, _ = self._take_finished()
        unsent = self._complete_outcomes(outcomes)
        if unsent:
            self._abandon(unsent)

    def _complete_outcomes(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        """One ``complete_jobs`` call (one commit) for all of them, falling back to one
        call each when the batch is refused because some job is no longer held (canceled,
        or reaped after a stall). Returns those not sent because the database could not
        be reached: sending them again is safe (a completion that did commit meets a
        job no longer held, and is only logged)."""
        unsent: list[_Outcome] = []
        for start in range(0, len(outcomes), 1000):
            chunk = outcomes[start : start + 1000]
            if len(chunk) > 1:
                try:
                    # complete_jobs answering ids only (internal operation).
                    self.client._finish_jobs(
                        worker_id=self.worker_id,
                        results=[
                            JobCompletion(
                                job_id=o.job.id,
                                status=o.status,
                                result=o.result,
                                error=o.error,
                                retryable=o.retryable,
                            )
                            for o in chunk
                        ],
                    )
                except (ConflictError, ValueError):
                    # Some job is not ours any more, or one outcome cannot be sent: report
                    # each one on its own (the others still complete).
                    pass
                except TransportError as exc:
                    self._outage.failed(exc, "complete")
                    unsent.extend(chunk)
                    continue
                except JobForgeError as exc:
                    logger.error("could not complete %d jobs: %s", len(chunk), exc)
                    continue
                else:
                    self._outage.recovered()
                    for outcome in chunk:
                        self._reported(outcome)
                    continue
            unsent.extend(o for o in chunk if not self._complete_one(o))
        return unsent

    def _complete_one(self, outcome: _Outcome) -> bool:
        """False when the database could not be reached (the caller tries again)."""
        try:
            self.client.complete_job(
                job_id=outcome.job.id,
                worker_id=self.worker_id,
                status=outcome.status,
                result=outcome.result,
                error=outcome.error,
                retryable=outcome.retryable,
            )
        except ConflictError as exc:
            logger.warning("job no longer held: %s", exc, extra=outcome.log)
        except TransportError as exc:
            self._outage.failed(exc, "complete")
            return False
        except JobForgeError as exc:
            logger.error("could not complete job: %s", exc, extra=outcome.log)
        else:
            self._outage.recovered()
            self._reported(outcome)
        return True

    def _reported(self, outcome: _Outcome) -> None:
        with self._lock:
            if outcome.error is None:
                self.succeeded += 1
            else:
                self.failed += 1
        metrics.observe_outcome(
            outcome.job, succeeded=outcome.error is None, retryable=outcome.retryable
        )
        _log_outcome(outcome)

    def _template_for(self, ctx: JobContext) -> TemplateRow | None:
        key = ctx.template_key
        if key is None or key != ctx.job.type:
            return None
        try:
            # An internal operation of the client: ungated, and answered from the client's
            # memory for a minute (see _operations/plane.py).
            return self.client._template_of_job(template_key=key)
        except NotFoundError:
            raise InvalidJobInputs(f"template {key} no longer exists") from None

    def _write_manifest(
        self,
        ctx: JobContext,
        started: datetime,
        finished: datetime,
        cpu_ms: float,
        error: dict[str, Any] | None,
        *,
        retryable: bool,
    ) -> None:
        if self._fingerprint is None:
            self._fingerprint = generate_env_fingerprint()
        metrics = calculate_run_metrics(
            started, finished, cpu_time_ms=cpu_ms, attempt=ctx.job.attempts, **ctx.metrics
        )
        manifest = ArtifactManifest(
            job_type=ctx.job.type,
            outputs=ctx.outputs,
            metrics=metrics,
            env_fingerprint=self._fingerprint,
            tool_versions={"jobforge-sdk": _sdk_version(), **ctx.tool_versions},
            status=_manifest_status(ctx.job, error, retryable=retryable),
            error=error,
        )
        try:
            self.client.create_manifest(
                run_id=ctx.job.id, tenant_id=ctx.tenant_id, manifest=manifest
            )
        except TransportError as exc:
            self._outage.failed(exc, "manifest")
        except JobForgeError as exc:
            logger.error("could not write manifest: %s", exc, extra={"job_id": str(ctx.job.id)})

    # -- housekeeping ---------------------------------------------------------------------

    def _beat(self, job: JobRow) -> None:
        self.client.heartbeat_job(job_id=job.id, worker_id=self.worker_id)

    def _heartbeat_all(self) -> None:
        """One statement for every held job, however many run."""
        with self._lock:
            ids = [job.id for job in self._running.values()]
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            try:
                held = set(self.client.heartbeat_jobs(worker_id=self.worker_id, job_ids=chunk))
            except TransportError as exc:
                self._outage.failed(exc, "heartbeat")
                return
            except JobForgeError as exc:
                logger.warning("heartbeat of %d jobs failed: %s", len(chunk), exc)
                continue
            self._outage.recovered()
            for job_id in chunk:
                if job_id not in held:
                    logger.warning(
                        "job is no longer held by this worker (canceled or reaped)",
                        extra={"job_id": str(job_id), "worker_id": self.worker_id},
                    )

    def _reap(self) -> None:
        try:
            reaped = self.client.reap_stale_jobs(timeout=self.stale_after)
        except TransportError as exc:
            self._outage.failed(exc, "reap")
            return
        except JobForgeError as exc:
            logger.warning("reap failed: %s", exc)
            return
        self._outage.recovered()
        if reaped:
            logger.warning("reaped %d stale job(s) of lost workers", reaped)

    def _tick_scheduler(self) -> None:
        assert self.scheduler is not None
        try:
            self.scheduler.tick()
        except TransportError as exc:
            self._outage.failed(exc, "scheduler")
        except JobForgeError as exc:
            logger.warning("scheduler tick failed: %s", exc)
        else:
            self._outage.recovered()

    def _drain(self) -> None:
        """Hand back claimed jobs that never started, wait up to ``shutdown_grace`` for the
        running ones, and hand back those too: nothing is left stuck in ``running``."""
        unstarted: list[JobRow] = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                unstarted.append(job)
        with self._lock:
            for job in unstarted:
                self._running.pop(job.id, None)
        self._release(unstarted)
        deadline = time.monotonic() + self.shutdown_grace
        with self._lock:
            while self._running and time.monotonic() < deadline and self._signals < 2:
                self._idle.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            leftover = list(self._running.values())
        self._give_up_reporting.set()  # the grace is over: stop waiting for the database
        self._stop_reporter()
        self._report_finished()
        if self._signals >= 2 and leftover:
            # Asked twice: exit now. The handlers still running die with the process (their
            # threads are daemons), and their jobs stay held until a reaper hands them back
            # (stale_after later), as after a crash.
            logger.warning(
                "second signal: exiting now, leaving %d running job(s) to the reaper",
                len(leftover),
                extra=self._log_extra,
            )
        else:
            self._release(leftover)
        for _ in self._threads:
            self._jobs.put(None)
        self._threads.clear()

    def _release(self, jobs: list[JobRow]) -> None:
        for job in jobs:
            try:
                self.client.release_job(job_id=job.id, worker_id=self.worker_id)
                logger.warning("released job back to the queue", extra={"job_id": str(job.id)})
            except TransportError as exc:
                self._outage.failed(exc, "release")  # the reaper hands it back instead
            except JobForgeError as exc:
                logger.error("could not release job %s: %s", job.id, exc)
            else:
                with self._lock:
                    self.released += 1


def _claimable_types(handlers: Mapping[str, Handler], types: Sequence[str] | None) -> list[str]:
    """The types a worker claims: those it was asked for, each of which it must be able
    to run, or else every type it has a handler for (none for a worker that only fires
    cron triggers and reaps)."""
    if isinstance(types, str):
        raise TypeError("types: a list of job types, not one string")
    if types is None:
        return sorted(handlers)
    wanted = list(dict.fromkeys(types))
    if not wanted:
        raise ValueError("types: must not be empty (None runs every type in handlers)")
    missing = [t for t in wanted if t not in handlers]
    if missing:
        raise ValueError(
            f"types: no handler for {', '.join(map(repr, missing))}; "
            f"handlers cover {', '.join(map(repr, sorted(handlers))) or 'nothing'}"
        )
    return wanted


def _database_label(client: JobForgeClient, dsn: str | None) -> str:
    """Where the worker's database is, for the startup line: host, port and database
    name, never the user or password of the URL."""
    if dsn:
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            return "(unparsable conninfo)"
        host = str(info.get("host") or info.get("hostaddr") or "local socket")
        port = info.get("port")
        where = f"{host}:{port}" if port else host
        return f"{where}/{info['dbname']}" if info.get("dbname") else where
    url = getattr(getattr(client.transport, "client", None), "supabase_url", None)
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return "(over HTTP)"


def _log_outcome(outcome: _Outcome) -> None:
    extra = {**outcome.log, "status": outcome.status.value}
    if outcome.error is None:
        logger.info("job succeeded", extra=extra)
    else:
        error = outcome.error
        verdict = "job failed" if outcome.retryable else "job failed, not retryable"
        logger.warning("%s: %s: %s", verdict, error["type"], error["message"][:200], extra=extra)


def _manifest_status(
    job: JobRow, error: dict[str, Any] | None, *, retryable: bool = True
) -> ManifestStatus:
    """A failed attempt that will be retried leaves the manifest pending (with the error):
    a complete or failed manifest is final, and the retry must still be able to write."""
    if error is None:
        return ManifestStatus.COMPLETE
    if retryable and job.attempts < job.max_attempts:
        return ManifestStatus.PENDING
    return ManifestStatus.FAILED


def _check_reportable(result: Any) -> None:
    try:
        check_json(result, max_bytes=MAX_RESULT_BYTES)
    except ValueError as exc:
        raise UnreportableResult(f"result: {exc}") from None


def _setup_failure(job: JobRow, exc: Exception, worker_id: str) -> _Outcome:
    failure = JobSetupError(f"{type(exc).__name__}: {exc}")
    log = {"job_id": str(job.id), "job_type": job.type, "worker_id": worker_id}
    return _Outcome(job, JobStatus.FAILED, None, describe_error(failure), log, False)


def _check_schema(schema: dict[str, Any], value: Any, name: str, error: type[Exception]) -> None:
    """Raise ``error`` naming the first bad field when ``value`` does not meet ``schema``."""
    problem = schema_problem(schema, value, name)
    if problem is not None:
        raise error(problem)


def _sdk_version() -> str:
    from jobforge_sdk import __version__

    return __version__
