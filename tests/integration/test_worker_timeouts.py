"""Faults a worker must survive, against a real database: a handler that fails every
attempt ends dead with every attempt on record; a handler that hangs is stopped at the
job's timeout (an async one cancelled, a sync one's thread abandoned) and the job retried,
then succeeding or dead as configured; an abandoned thread neither reports for its job
later nor keeps the worker from shutting down."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from pydantic import JsonValue

from jobforge_sdk import JobContext, JobForgeClient, JobStatus, NonRetryableError, metrics
from jobforge_sdk.runtime.worker import Worker
from tests.integration.test_worker import WorkerProcess, wait_for

TENANT = uuid.uuid4()
TIMEOUT = timedelta(milliseconds=300)


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[JobForgeClient]:
    with JobForgeClient.from_postgres(fresh_db_url, max_size=6) as c:
        yield c


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Lets blocked sync handlers return at the end of a test, whatever happened."""
    event = threading.Event()
    yield event
    event.set()


def _due_now(url: str, job_id: uuid.UUID) -> None:
    """Skip the retry backoff: the job is due at once."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update jobforge_jobs set run_at = now() where id = %s", (job_id,))


def _run_until_settled(
    worker: Worker, client: JobForgeClient, url: str, job_id: uuid.UUID, rounds: int
) -> JobStatus:
    """Run the worker round after round (each retry made due at once) until the job is
    succeeded or dead; at most ``rounds`` rounds."""
    for _ in range(rounds):
        worker.run_until_idle(timeout=30)
        job = client.get_job(job_id=job_id, tenant_id=TENANT)
        assert job is not None
        if job.status in (JobStatus.SUCCEEDED, JobStatus.DEAD):
            return job.status
        assert job.status is JobStatus.QUEUED, job
        _due_now(url, job_id)
    raise AssertionError(f"job not settled after {rounds} rounds")


def _history(client: JobForgeClient, job_id: uuid.UUID) -> list[tuple[int, str, str | None]]:
    return [
        (a.attempt, a.status, a.error["type"] if isinstance(a.error, dict) else None)
        for a in client.list_job_attempts(job_id=job_id, tenant_id=TENANT)
    ]


def _handler_threads(job_id: uuid.UUID) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"jobforge-handler-{job_id}"]


def test_a_handler_that_always_raises_ends_dead_with_every_attempt_recorded(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    def explode(ctx: JobContext) -> JsonValue:
        raise RuntimeError(f"attempt {ctx.job.attempts} failed")

    job = client.enqueue_job(tenant_id=TENANT, type="fault.raise", max_attempts=4)
    worker = Worker(client, {"fault.raise": explode})
    assert _run_until_settled(worker, client, fresh_db_url, job.id, rounds=6) is JobStatus.DEAD

    attempts = client.list_job_attempts(job_id=job.id, tenant_id=TENANT)
    assert [(a.attempt, a.status) for a in attempts] == [(n, "failed") for n in (1, 2, 3, 4)]
    for n, attempt in enumerate(attempts, start=1):
        assert isinstance(attempt.error, dict)
        assert attempt.error["type"] == "RuntimeError"
        assert attempt.error["message"] == f"attempt {n} failed"
        assert attempt.worker_id == worker.worker_id
    dead = client.get_job(job_id=job.id, tenant_id=TENANT)
    assert dead is not None
    assert (dead.attempts, dead.error["message"]) == (4, "attempt 4 failed")


def test_a_hanging_async_handler_is_cancelled_at_the_timeout_and_the_retry_succeeds(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    cleaned: list[int] = []

    async def stall_once(ctx: JobContext) -> JsonValue:
        if ctx.job.attempts == 1:
            try:
                await asyncio.sleep(3600)
            finally:
                cleaned.append(ctx.job.attempts)  # runs only if the task is cancelled
        return {"attempt": ctx.job.attempts}

    job = client.enqueue_job(
        tenant_id=TENANT, type="fault.async_hang", timeout=TIMEOUT, max_attempts=3
    )
    assert job.timeout_ms == 300
    worker = Worker(client, {"fault.async_hang": stall_once})
    status = _run_until_settled(worker, client, fresh_db_url, job.id, rounds=3)
    assert status is JobStatus.SUCCEEDED
    assert cleaned == [1]  # the first attempt was cancelled, its cleanup ran
    assert _history(client, job.id) == [(1, "failed", "JobTimeout"), (2, "succeeded", None)]
    first = client.list_job_attempts(job_id=job.id, tenant_id=TENANT)[0]
    assert isinstance(first.error, dict)
    assert "ran past its timeout of 300 ms" in first.error["message"]
    result = client.get_result(job_id=job.id, tenant_id=TENANT)
    assert result is not None
    assert result.result == {"attempt": 2}


def test_a_hanging_sync_handler_is_abandoned_retried_and_dead_after_max_attempts(
    client: JobForgeClient,
    fresh_db_url: str,
    release: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    late: list[str] = []

    def hang(ctx: JobContext) -> JsonValue:
        release.wait(60)
        # Given up on long ago: its heartbeat refuses, and what it returns goes nowhere.
        try:
            ctx.heartbeat()
        except Exception as exc:
            late.append(type(exc).__name__)
        return {"late": True}

    job = client.enqueue_job(
        tenant_id=TENANT, type="fault.sync_hang", timeout=TIMEOUT, max_attempts=2
    )
    worker = Worker(client, {"fault.sync_hang": hang})
    metrics.enable()
    before = metrics.REGISTRY.get_sample_value(
        "jobforge_jobs_timed_out_total", {"type": "fault.sync_hang", "handler": "abandoned"}
    )
    try:
        with caplog.at_level(logging.WARNING, logger="jobforge_sdk.worker"):
            status = _run_until_settled(worker, client, fresh_db_url, job.id, rounds=3)
    finally:
        metrics.disable()
    assert status is JobStatus.DEAD
    assert _history(client, job.id) == [(1, "failed", "JobTimeout"), (2, "failed", "JobTimeout")]
    after = metrics.REGISTRY.get_sample_value(
        "jobforge_jobs_timed_out_total", {"type": "fault.sync_hang", "handler": "abandoned"}
    )
    assert (after or 0) - (before or 0) == 2
    assert sum("thread is abandoned" in r.getMessage() for r in caplog.records) == 2
    # Both runs are still blocked: the worker returned without waiting for them.
    threads = _handler_threads(job.id)
    assert len(threads) == 2
    assert all(t.daemon and t.is_alive() for t in threads)

    release.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert late == ["JobTimeout", "JobTimeout"]
    worker.run_until_idle(timeout=30)  # anything left to report would go out now
    dead = client.get_job(job_id=job.id, tenant_id=TENANT)
    assert dead is not None
    assert (dead.status, dead.result, dead.attempts) == (JobStatus.DEAD, None, 2)
    assert len(client.list_job_attempts(job_id=job.id, tenant_id=TENANT)) == 2


def test_timed_handlers_that_finish_in_time_report_as_usual(client: JobForgeClient) -> None:
    def quick(ctx: JobContext) -> JsonValue:
        ctx.heartbeat()  # in time: an ordinary heartbeat
        return {"sync": ctx.payload}

    async def quick_async(ctx: JobContext) -> JsonValue:
        await asyncio.sleep(0)
        return {"async": ctx.payload}

    def refuse(ctx: JobContext) -> JsonValue:
        raise NonRetryableError("bad input")

    long = timedelta(seconds=30)
    a = client.enqueue_job(tenant_id=TENANT, type="timed.sync", payload={"n": 1}, timeout=long)
    b = client.enqueue_job(tenant_id=TENANT, type="timed.async", payload={"n": 2}, timeout=long)
    c = client.enqueue_job(tenant_id=TENANT, type="timed.refuse", timeout=long, max_attempts=5)
    worker = Worker(
        client, {"timed.sync": quick, "timed.async": quick_async, "timed.refuse": refuse}
    )
    assert worker.run_until_idle(timeout=30) == 3
    result_a = client.get_result(job_id=a.id, tenant_id=TENANT)
    result_b = client.get_result(job_id=b.id, tenant_id=TENANT)
    assert result_a is not None
    assert result_a.result == {"sync": {"n": 1}}
    assert result_b is not None
    assert result_b.result == {"async": {"n": 2}}
    refused = client.get_job(job_id=c.id, tenant_id=TENANT)
    assert refused is not None
    # The handler's own exception crosses the thread: not retryable, dead at once.
    assert (refused.status, refused.attempts) == (JobStatus.DEAD, 1)
    assert refused.error["type"] == "NonRetryableError"


def test_an_abandoned_thread_does_not_hold_up_shutdown(
    client: JobForgeClient, release: threading.Event
) -> None:
    def hang(ctx: JobContext) -> JsonValue:
        release.wait(60)
        return None

    job = client.enqueue_job(tenant_id=TENANT, type="fault.hang", timeout=TIMEOUT, max_attempts=1)
    worker = Worker(client, {"fault.hang": hang}, poll_interval=0.05, shutdown_grace=30)
    runner = threading.Thread(target=lambda: worker.run(install_signal_handlers=False))
    runner.start()
    try:
        wait_for(lambda: _status(client, job.id) is JobStatus.DEAD, timeout=30, what="the timeout")
    finally:
        worker.stop()
        runner.join(30)
    assert not runner.is_alive()  # stopped, although the handler still blocks
    assert [t.is_alive() for t in _handler_threads(job.id)] == [True]
    assert worker.released == 0  # nothing was still held to hand back


def _status(client: JobForgeClient, job_id: uuid.UUID) -> JobStatus:
    job = client.get_job(job_id=job_id, tenant_id=TENANT)
    assert job is not None
    return job.status


def test_a_worker_process_exits_on_sigterm_while_an_abandoned_handler_sleeps(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    job = client.enqueue_job(tenant_id=TENANT, type="timeout.hang", timeout=TIMEOUT, max_attempts=1)
    proc = WorkerProcess(fresh_db_url, "--app", "tests.support.timeout_app:handlers")
    try:
        wait_for(lambda: _status(client, job.id) is JobStatus.DEAD, what="the timeout")
    finally:
        code, err = proc.stop(signal.SIGTERM)
    assert code == 0, err[-2000:]
    assert "thread is abandoned" in err
    assert _history(client, job.id) == [(1, "failed", "JobTimeout")]


def test_a_job_held_in_the_prefetch_queue_past_its_deadline_never_starts(
    client: JobForgeClient, fresh_db_url: str, release: threading.Event
) -> None:
    """The timeout counts from the claim, as the reaper counts it: a job that waited for
    a free thread until its deadline passed fails without running."""
    started: list[str] = []

    def block(ctx: JobContext) -> JsonValue:
        started.append("block")
        release.wait(2)
        return None

    def quick(ctx: JobContext) -> JsonValue:
        started.append("quick")
        return None

    blocker = client.enqueue_job(tenant_id=TENANT, type="prefetch.block")
    waiting = client.enqueue_job(
        tenant_id=TENANT, type="prefetch.quick", timeout=timedelta(milliseconds=200), max_attempts=1
    )
    worker = Worker(
        client,
        {"prefetch.block": block, "prefetch.quick": quick},
        concurrency=1,
        prefetch=1,
        batch_size=2,
    )
    original: Callable[..., Any] = client.claim_jobs

    def claim_blocker_first(**kwargs: Any) -> Any:
        # Both jobs in one claim, the blocker first, so the timed one waits behind it.
        jobs = original(**kwargs)
        return sorted(jobs, key=lambda j: j.type != "prefetch.block")

    client.claim_jobs = claim_blocker_first
    try:
        worker.run_until_idle(timeout=30)
    finally:
        del client.claim_jobs
    assert _status(client, waiting.id) is JobStatus.DEAD
    assert _status(client, blocker.id) is JobStatus.SUCCEEDED
    assert "quick" not in started
    assert _history(client, waiting.id) == [(1, "failed", "JobTimeout")]
