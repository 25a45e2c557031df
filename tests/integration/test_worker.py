"""The worker against a real database: in-process for behaviour, as `jobforge worker`
processes for crashes, signals and concurrency."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from pydantic import JsonValue

from jobforge_sdk import JobContext, JobForgeClient, JobRegistry, JobStatus, NonRetryableError
from jobforge_sdk.runtime.worker import Worker, describe_error
from tests.support.cli import JOBFORGE
from tests.support.worker_app import handlers

TENANT = uuid.uuid4()


def _obj(value: object) -> dict[str, Any]:
    """A JSON object field (error, result) as a dict, or a failed assertion."""
    assert isinstance(value, dict), value
    return value


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("select status, count(*) from jobforge_jobs group by 1").fetchall()
    return {str(s): int(n) for s, n in rows}


def _listeners(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and query ilike 'listen %%'"
        ).fetchone()
    return int(row[0]) if row else 0


def _job(url: str, job_id: uuid.UUID) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("select * from jobforge_jobs where id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[JobForgeClient]:
    with JobForgeClient.from_postgres(fresh_db_url, max_size=6) as c:
        yield c


class WorkerProcess:
    """A `jobforge worker` subprocess; its log goes to a file so a chatty worker never
    blocks on a full pipe."""

    def __init__(self, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                JOBFORGE,
                "worker",
                "--database-url",
                url,
                "--app",
                "tests.support.worker_app:handlers",
                "--poll-interval",
                "0.2",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop: {self.output()[-2000:]}") from None
        output = self.output()
        self.log.close()
        return self.proc.returncode, output


def test_runs_sync_and_async_handlers_until_idle(client: JobForgeClient) -> None:
    a = client.enqueue_job(tenant_id=TENANT, type="test.echo", payload={"n": 1})
    b = client.enqueue_job(tenant_id=TENANT, type="test.async_echo", payload={"n": 2})
    ran = Worker(client, handlers, concurrency=2).run_until_idle(timeout=30)
    assert ran == 2
    result_a = client.get_result(job_id=a.id, tenant_id=TENANT)
    result_b = client.get_result(job_id=b.id, tenant_id=TENANT)
    assert result_a is not None
    assert result_a.result["echo"] == {"n": 1}
    assert result_b is not None
    assert result_b.result == {"echo": {"n": 2}}


def test_a_failing_handler_retries_then_dies_with_a_clean_error(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    job = client.enqueue_job(tenant_id=TENANT, type="test.fail", max_attempts=2)
    worker = Worker(client, handlers)
    worker.run_until_idle(timeout=30)
    first = client.get_job(job_id=job.id, tenant_id=TENANT)
    assert first is not None
    assert first.status is JobStatus.QUEUED
    assert first.attempts == 1
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("update jobforge_jobs set run_at = now() where id = %s", (job.id,))
    worker.run_until_idle(timeout=30)
    dead = client.get_job(job_id=job.id, tenant_id=TENANT)
    assert dead is not None
    assert dead.status is JobStatus.DEAD
    error = dead.error
    assert isinstance(error, dict)
    assert error["type"] == "RuntimeError"
    assert "hunter2" not in str(error)
    assert "postgresql://***@db.internal/prod" in str(error["message"])
    assert any("worker_app.py" in line and "in fail" in line for line in error["traceback"])


def _attempt_rows(url: str, job_id: uuid.UUID) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from jobforge_job_attempts where job_id = %s", (job_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_job_of_another_apps_type_is_left_alone(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    others = client.enqueue_jobs(
        tenant_id=TENANT, jobs=[{"type": "billing.invoice", "max_attempts": 1}] * 20
    )
    fine = client.enqueue_job(tenant_id=TENANT, type="test.echo")
    worker = Worker(client, handlers)
    assert worker.types == sorted(handlers)
    assert worker.run_until_idle(timeout=30) == 1
    done = client.get_job(job_id=fine.id, tenant_id=TENANT)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    for job in others:
        row = _job(fresh_db_url, job.id)
        assert (row["status"], row["attempts"], row["error"]) == ("queued", 0, None)
        assert _attempt_rows(fresh_db_url, job.id) == 0


def test_types_picks_a_subset_of_the_handlers(client: JobForgeClient, fresh_db_url: str) -> None:
    echo = client.enqueue_job(tenant_id=TENANT, type="test.echo")
    other = client.enqueue_job(tenant_id=TENANT, type="test.async_echo")
    Worker(client, handlers, types=["test.echo"]).run_until_idle(timeout=30)
    assert _job(fresh_db_url, echo.id)["status"] == "succeeded"
    assert (_job(fresh_db_url, other.id)["status"], _job(fresh_db_url, other.id)["attempts"]) == (
        "queued",
        0,
    )


def test_types_without_a_handler_are_refused(client: JobForgeClient) -> None:
    with pytest.raises(ValueError, match=r"no handler for 'test\.nobody'"):
        Worker(client, handlers, types=["test.echo", "test.nobody"])
    with pytest.raises(ValueError, match="types: must not be empty"):
        Worker(client, handlers, types=[])
    with pytest.raises(TypeError, match="not one string"):
        Worker(client, handlers, types="test.echo")


def test_a_claimed_job_without_a_handler_is_released_not_failed(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    orphan = client.enqueue_job(tenant_id=TENANT, type="test.async_echo", max_attempts=1)
    fine = client.enqueue_job(tenant_id=TENANT, type="test.echo")
    worker = Worker(client, handlers, types=["test.echo", "test.async_echo"])
    # The handler goes missing after the worker chose its types (an app that swaps its
    # registry): the claimed job must go back untouched, and its type out of the claims.
    del worker.handlers["test.async_echo"]
    assert worker.run_until_idle(timeout=30) == 1
    assert worker.released == 1
    assert worker.types == ["test.echo"]
    row = _job(fresh_db_url, orphan.id)
    assert (row["status"], row["attempts"], row["locked_by"], row["error"]) == (
        "queued",
        0,
        None,
        None,
    )
    assert _attempt_rows(fresh_db_url, orphan.id) == 0
    assert _job(fresh_db_url, fine.id)["status"] == "succeeded"


def test_a_non_retryable_error_makes_the_job_dead_at_once(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    registry = JobRegistry()
    calls: list[int] = []

    @registry.handler("test.refuse")
    def refuse(ctx: JobContext) -> JsonValue:
        calls.append(ctx.job.attempts)
        raise NonRetryableError(f"account {ctx.payload['account']} is closed")

    job = client.enqueue_job(
        tenant_id=TENANT, type="test.refuse", payload={"account": 7}, max_attempts=5
    )
    Worker(client, registry).run_until_idle(timeout=30)
    row = _job(fresh_db_url, job.id)
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("dead", 1, 5)
    assert row["finished_at"] is not None
    assert row["error"]["type"] == "NonRetryableError"
    assert row["error"]["message"] == "account 7 is closed"
    assert calls == [1]
    with psycopg.connect(fresh_db_url) as conn:
        history = conn.execute(
            "select attempt, status from jobforge_job_attempts where job_id = %s", (job.id,)
        ).fetchall()
    assert history == [(1, "failed")]


def test_non_retryable_failures_reported_together_are_all_dead(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    registry = JobRegistry()
    together = threading.Barrier(4, timeout=10)

    @registry.handler("test.refuse")
    def refuse(ctx: JobContext) -> JsonValue:
        together.wait()  # four failures finish at once, so they are reported as one batch
        raise NonRetryableError("no")

    @registry.handler("test.flaky")
    def flaky(ctx: JobContext) -> JsonValue:
        together.wait()
        raise RuntimeError("try again")

    refused = client.enqueue_jobs(tenant_id=TENANT, jobs=[{"type": "test.refuse"}] * 3)
    retried = client.enqueue_job(tenant_id=TENANT, type="test.flaky", max_attempts=5)
    batches: list[int] = []
    worker = Worker(client, registry, concurrency=4, batch_size=4)
    original = client._finish_jobs  # complete_jobs, answering ids (the worker's batch call)

    def spy(**kwargs: Any) -> Any:
        batches.append(len(kwargs["results"]))
        return original(**kwargs)

    worker.client = _Spy(client, _finish_jobs=spy)  # type: ignore[assignment]
    worker.run_until_idle(timeout=30)
    assert [_job(fresh_db_url, j.id)["status"] for j in refused] == ["dead"] * 3
    assert [_job(fresh_db_url, j.id)["attempts"] for j in refused] == [1] * 3
    assert _job(fresh_db_url, retried.id)["status"] == "queued"
    assert sum(batches) >= 2, "the batch path was not taken"


class _Spy:
    """The client, with some methods replaced."""

    def __init__(self, client: JobForgeClient, **methods: Any) -> None:
        self._client = client
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods.get(name) or getattr(self._client, name)


def test_fast_jobs_share_completion_calls(client: JobForgeClient, fresh_db_url: str) -> None:
    """The reporter thread completes whatever finished while its last call was in
    flight, so fast jobs do not cost a commit each."""
    client.enqueue_jobs(tenant_id=TENANT, jobs=[{"type": "test.echo"}] * 200)
    calls: list[int] = []
    finish, complete_one = client._finish_jobs, client.complete_job

    def batch(**kwargs: Any) -> Any:
        calls.append(len(kwargs["results"]))
        return finish(**kwargs)

    def one(**kwargs: Any) -> Any:
        calls.append(1)
        return complete_one(**kwargs)

    worker = Worker(client, handlers, concurrency=8)
    worker.client = _Spy(client, _finish_jobs=batch, complete_job=one)  # type: ignore[assignment]
    assert worker.run_until_idle(timeout=60) == 200
    assert _status_counts(fresh_db_url) == {"succeeded": 200}
    assert sum(calls) == 200
    assert len(calls) < 200, "every job was completed on its own"


def test_a_failed_report_does_not_stop_the_reporter(
    client: JobForgeClient, fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = JobRegistry()
    together = threading.Barrier(4, timeout=10)

    @registry.handler("test.together")
    def run(ctx: JobContext) -> JsonValue:
        together.wait()  # four finish at once: one batch per four jobs
        return None

    client.enqueue_jobs(tenant_id=TENANT, jobs=[{"type": "test.together"}] * 8)
    finish, complete_one = client._finish_jobs, client.complete_job
    failures: list[int] = []

    def broken_once(size: int) -> None:
        if not failures:
            failures.append(size)
            raise RuntimeError("the network ate it")

    def batch(**kwargs: Any) -> Any:
        broken_once(len(kwargs["results"]))
        return finish(**kwargs)

    def one(**kwargs: Any) -> Any:
        broken_once(1)
        return complete_one(**kwargs)

    worker = Worker(client, registry, concurrency=4, batch_size=4, prefetch=0)
    worker.client = _Spy(client, _finish_jobs=batch, complete_job=one)  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="jobforge_sdk.worker"):
        assert worker.run_until_idle(timeout=30) == 8
    lost = failures[0]
    # The batch whose report failed stays held (the reaper hands it back); the reporter
    # went on and completed the rest.
    assert _status_counts(fresh_db_url) == {"running": lost, "succeeded": 8 - lost}
    assert "reporting finished jobs failed" in caplog.text


def test_an_idle_worker_wakes_on_the_enqueue_notification(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    # Polling every 60 s: only the NOTIFY can make the job start within the wait below.
    worker = Worker(client, handlers, poll_interval=60, heartbeat_interval=60)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        wait_for(lambda: _listeners(fresh_db_url) == 1, what="the worker to LISTEN")
        time.sleep(0.2)  # and to go idle in its 60 s wait
        job = client.enqueue_job(tenant_id=TENANT, type="test.echo")

        def done() -> bool:
            row = client.get_job(job_id=job.id, tenant_id=TENANT)
            return row is not None and row.status is JobStatus.SUCCEEDED

        wait_for(done, timeout=10, what="the notified worker to run the job")
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_two_worker_processes_complete_every_job_exactly_once(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    types = ["test.echo", "test.async_echo", "test.sleep"]
    jobs = [{"type": types[i % 3], "payload": {"i": i, "seconds": 0.001}} for i in range(600)]
    workers = [WorkerProcess(fresh_db_url, "--concurrency", "4") for _ in range(2)]
    try:
        # Both workers listening before any job exists, so both take part.
        wait_for(lambda: _listeners(fresh_db_url) == 2, timeout=60, what="two listening workers")
        for start in range(0, len(jobs), 200):
            client.enqueue_jobs(tenant_id=TENANT, jobs=jobs[start : start + 200])
        wait_for(
            lambda: _status_counts(fresh_db_url).get("succeeded") == 600,
            timeout=120,
            what="600 succeeded jobs",
        )
    finally:
        codes = [w.stop() for w in workers]
    assert [code for code, _ in codes] == [0, 0], [err[-1000:] for _, err in codes]
    with psycopg.connect(fresh_db_url) as conn:
        done = conn.execute(
            "select count(*), count(distinct finished_by), max(attempts)"
            " from jobforge_jobs where status = 'succeeded'"
        ).fetchone()
        failed = conn.execute("select count(*) from jobforge_job_attempts").fetchone()
    # Each job succeeded at its first attempt, both workers took part, none failed.
    assert done == (600, 2, 1)
    assert failed == (0,)


def test_a_killed_workers_job_is_reaped_and_finished_by_another(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    job = client.enqueue_job(
        tenant_id=TENANT, type="test.sleep", payload={"seconds": 0.01, "slow_seconds": 600}
    )
    doomed = WorkerProcess(
        fresh_db_url, "--heartbeat-interval", "0.2", env={"JOBFORGE_TEST_SLOW": "1"}
    )
    try:
        wait_for(lambda: _job(fresh_db_url, job.id)["status"] == "running", what="the claim")
    finally:
        doomed.stop(signal.SIGKILL)
    rescuer = WorkerProcess(
        fresh_db_url, "--reap-interval", "0.2", "--stale-after", "1", "--heartbeat-interval", "0.2"
    )
    try:
        wait_for(lambda: _job(fresh_db_url, job.id)["status"] == "succeeded", what="the rescue")
    finally:
        code, err = rescuer.stop()
    assert code == 0, err[-2000:]
    history = client.list_job_attempts(job_id=job.id, tenant_id=TENANT)
    assert [(a.attempt, a.status) for a in history] == [(1, "lost"), (2, "succeeded")]


def test_sigterm_lets_running_jobs_finish(client: JobForgeClient, fresh_db_url: str) -> None:
    job = client.enqueue_job(tenant_id=TENANT, type="test.sleep", payload={"seconds": 1.5})
    proc = WorkerProcess(fresh_db_url, "--shutdown-grace", "20")
    wait_for(lambda: _job(fresh_db_url, job.id)["status"] == "running", what="the claim")
    # Claimed is not yet started: a job still waiting for a slot is released at shutdown.
    wait_for(lambda: "job started" in proc.output(), what="the handler's start")
    code, err = proc.stop(signal.SIGTERM)
    assert code == 0, err[-2000:]
    assert _job(fresh_db_url, job.id)["status"] == "succeeded"


def test_sigterm_past_the_grace_period_hands_the_job_back(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    job = client.enqueue_job(tenant_id=TENANT, type="test.sleep", payload={"seconds": 60})
    proc = WorkerProcess(fresh_db_url, "--shutdown-grace", "0.5")
    wait_for(lambda: _job(fresh_db_url, job.id)["status"] == "running", what="the claim")
    code, err = proc.stop(signal.SIGTERM)
    assert code == 0, err[-2000:]
    row = _job(fresh_db_url, job.id)
    assert row["status"] == "queued"
    assert row["attempts"] == 0
    assert row["locked_by"] is None
    assert "released job back to the queue" in err


def test_logs_are_structured_and_leave_out_payload_values(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    client.enqueue_job(tenant_id=TENANT, type="test.echo", payload={"secret_value": "s3cr3t-xyz"})
    proc = WorkerProcess(fresh_db_url)
    wait_for(lambda: _status_counts(fresh_db_url).get("succeeded") == 1, what="the job")
    _, err = proc.stop()
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    done = [r for r in records if r["message"] == "job succeeded"]
    assert len(done) == 1
    assert {"job_id", "job_type", "tenant_id", "attempt", "duration_ms"} <= set(done[0])
    assert "s3cr3t-xyz" not in err


def test_describe_error_scrubs_tokens() -> None:
    try:
        raise ValueError("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl leaked")
    except ValueError as exc:
        described = describe_error(exc)
    assert described["message"] == "token [REDACTED] leaked"
    assert described["type"] == "ValueError"


def test_running_jobs_are_heartbeated_even_when_polling_is_slow(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    job = client.enqueue_job(tenant_id=TENANT, type="test.sleep", payload={"seconds": 1.5})
    worker = Worker(client, handlers, poll_interval=60, heartbeat_interval=0.2)
    thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        wait_for(lambda: _job(fresh_db_url, job.id)["status"] == "running", what="the claim")
        first = _job(fresh_db_url, job.id)["heartbeat_at"]
        wait_for(
            lambda: _job(fresh_db_url, job.id)["heartbeat_at"] not in (None, first),
            timeout=5,
            what="a heartbeat while the job runs",
        )
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert _job(fresh_db_url, job.id)["status"] == "succeeded"


def test_template_jobs_are_validated_and_leave_a_manifest(fresh_db_url: str) -> None:
    from jobforge_sdk import FeatureFlags, ManifestStatus
    from jobforge_sdk.tooling.smoke import demo_handlers

    flags = FeatureFlags(autopilot_jobs=True, manifests=True)
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as client:
        client.set_template_enabled(template_key="autopilot.ops.scan", enabled=True)
        good = client.request_job(
            tenant_id=TENANT, template_key="autopilot.ops.scan", inputs={"target": "db-1"}
        )
        bad = client.request_job(
            tenant_id=TENANT, template_key="autopilot.ops.scan", inputs={"target": "x", "depth": 4}
        )
        # The schema narrows after the request (a new template version): the queued job's
        # inputs no longer meet it, and only the worker's own check can see that.
        with psycopg.connect(fresh_db_url, autocommit=True) as owner:
            owner.execute(
                "update public.jobforge_job_templates set input_schema ="
                " jsonb_set(input_schema, '{properties,depth,maximum}', '3')"
                " where template_key = 'autopilot.ops.scan'"
            )
        client._remembered.clear()  # the template as it is now, not as read a moment ago
        assert good is not None
        assert good.job is not None
        assert bad is not None
        assert bad.job is not None
        Worker(client, demo_handlers()).run_until_idle(timeout=30)

        done = client.get_run_manifest(run_id=good.job.id, tenant_id=TENANT)
        assert done is not None
        assert done.status is ManifestStatus.COMPLETE
        assert [o.name for o in done.outputs] == ["scan-report"]
        assert done.metrics.duration_ms is not None
        assert done.metrics.duration_ms > 0
        assert done.env_fingerprint["python"]
        assert done.tool_versions["jobforge-sdk"] == "0.1.0"

        failed_job = client.get_job(job_id=bad.job.id, tenant_id=TENANT)
        assert failed_job is not None
        # The same inputs fail the same check on every attempt: dead at once.
        assert failed_job.status is JobStatus.DEAD
        assert failed_job.attempts == 1
        assert failed_job.max_attempts > 1
        assert _obj(failed_job.error)["type"] == "InvalidJobInputs"
        assert _obj(failed_job.error)["message"] == "inputs.depth: must be at most 3"
        failed = client.get_run_manifest(run_id=bad.job.id, tenant_id=TENANT)
        assert failed is not None
        assert failed.status is ManifestStatus.FAILED  # final: no attempt follows
        assert _obj(failed.error)["type"] == "InvalidJobInputs"


def test_a_result_that_breaks_the_output_schema_fails_the_job(fresh_db_url: str) -> None:
    from jobforge_sdk import FeatureFlags, JobRegistry

    registry = JobRegistry()

    def broken_output(ctx: JobContext) -> JsonValue:
        return {"findings": "not a list"}

    registry.register("autopilot.ops.scan", broken_output)
    flags = FeatureFlags(autopilot_jobs=True)
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as client:
        client.set_template_enabled(template_key="autopilot.ops.scan", enabled=True)
        req = client.request_job(
            tenant_id=TENANT, template_key="autopilot.ops.scan", inputs={"target": "x"}
        )
        assert req is not None
        assert req.job is not None
        Worker(client, registry).run_until_idle(timeout=30)
        job = client.get_job(job_id=req.job.id, tenant_id=TENANT)
    assert job is not None
    assert job.error["type"] == "InvalidJobOutput"
    assert job.error["message"].startswith("result")


def test_a_retried_template_job_ends_with_a_complete_manifest(fresh_db_url: str) -> None:
    from jobforge_sdk import FeatureFlags, JobRegistry, ManifestStatus

    calls: list[int] = []
    registry = JobRegistry()

    @registry.handler("autopilot.ops.scan")
    def flaky(ctx: Any) -> Any:
        calls.append(ctx.job.attempts)
        if ctx.job.attempts == 1:
            raise RuntimeError("first attempt fails")
        return {"findings": [], "summary": {"total": 0}}

    flags = FeatureFlags(autopilot_jobs=True, manifests=True)
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as client:
        client.set_template_enabled(template_key="autopilot.ops.scan", enabled=True)
        req = client.request_job(
            tenant_id=TENANT, template_key="autopilot.ops.scan", inputs={"target": "x"}
        )
        assert req is not None
        assert req.job is not None
        worker = Worker(client, registry)
        worker.run_until_idle(timeout=30)
        pending = client.get_run_manifest(run_id=req.job.id, tenant_id=TENANT)
        assert pending is not None
        assert pending.status is ManifestStatus.PENDING
        assert _obj(pending.error)["message"] == "first attempt fails"
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("update jobforge_jobs set run_at = now() where id = %s", (req.job.id,))
        worker.run_until_idle(timeout=30)
        final = client.get_run_manifest(run_id=req.job.id, tenant_id=TENANT)
    assert calls == [1, 2]
    assert final is not None
    assert final.status is ManifestStatus.COMPLETE
    assert final.metrics.attempt == 2


def test_a_job_canceled_mid_run_does_not_sink_the_batch(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    jobs = client.enqueue_jobs(
        tenant_id=TENANT, jobs=[{"type": "test.sleep", "payload": {"seconds": 0.5}}] * 4
    )
    worker = Worker(client, handlers, concurrency=4, batch_size=4)
    thread = threading.Thread(target=worker.run_until_idle, kwargs={"timeout": 30})
    thread.start()
    try:
        wait_for(lambda: _status_counts(fresh_db_url).get("running") == 4, what="four running")
        client.cancel_job(job_id=jobs[0].id, tenant_id=TENANT)
    finally:
        thread.join(timeout=30)
    statuses = {j.id: j.status for j in client.list_jobs(tenant_id=TENANT, limit=10)}
    assert statuses[jobs[0].id] is JobStatus.CANCELED
    assert [statuses[j.id] for j in jobs[1:]] == [JobStatus.SUCCEEDED] * 3


def _with_password(url: str, password: str) -> str:
    """The conninfo with a password (trust authentication ignores it), to show that the
    password is never logged."""
    return psycopg.conninfo.make_conninfo(url, password=password)


def test_the_worker_says_what_it_runs_when_it_starts_and_what_it_ran_when_it_stops(
    fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = _with_password(fresh_db_url, "pw-s3cret-9")
    info = psycopg.conninfo.conninfo_to_dict(url)
    # A socket directory has no port (the embedded server): the line then names the host.
    where = f"{info['host']}:{info['port']}" if info.get("port") else str(info["host"])
    with JobForgeClient.from_postgres(url) as client:
        client.enqueue_job(tenant_id=TENANT, type="test.echo")
        client.enqueue_job(tenant_id=TENANT, type="test.fail", max_attempts=3)
        worker = Worker(client, handlers, worker_id="w-start-stop", concurrency=3)
        with caplog.at_level(logging.INFO, logger="jobforge_sdk.worker"):
            worker.run_until_idle(timeout=30)
    messages = [r.getMessage() for r in caplog.records]
    started = [m for m in messages if m.startswith("worker w-start-stop started")]
    stopped = [m for m in messages if m.startswith("worker w-start-stop stopped")]
    assert started == [
        "worker w-start-stop started: types "
        + ", ".join(sorted(handlers))
        + f", concurrency 3, LISTEN off (polling), database {where}/{info['dbname']}"
    ]
    assert stopped == [
        "worker w-start-stop stopped: ran 2 job(s): 1 succeeded, 1 failed; 0 released"
    ]
    assert "pw-s3cret-9" not in "\n".join(messages)


def test_the_cli_worker_logs_its_start_and_stop_lines_without_the_password(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    client.enqueue_job(tenant_id=TENANT, type="test.echo")
    proc = WorkerProcess(_with_password(fresh_db_url, "pw-s3cret-9"), "--worker-id", "cli-w")
    wait_for(lambda: _status_counts(fresh_db_url).get("succeeded") == 1, what="the job")
    code, err = proc.stop()
    assert code == 0, err[-2000:]
    assert "pw-s3cret-9" not in err
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{")]
    dbname = psycopg.conninfo.conninfo_to_dict(fresh_db_url)["dbname"]
    [started] = [m for m in messages if m.startswith("worker cli-w started")]
    assert ", concurrency 4, LISTEN on, database " in started
    assert started.endswith(f"/{dbname}")
    assert "types " + ", ".join(sorted(handlers)) + "," in started
    [stopped] = [m for m in messages if m.startswith("worker cli-w stopped")]
    assert stopped == "worker cli-w stopped: ran 1 job(s): 1 succeeded, 0 failed; 0 released"


def test_a_readme_style_cli_worker_on_a_shared_database_leaves_other_apps_jobs_alone(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    # Another app's backlog, with a single attempt each: a worker that claimed and failed
    # them (what `jobforge worker` used to do) would kill every one.
    others = []
    for _ in range(3):
        others += client.enqueue_jobs(
            tenant_id=TENANT,
            jobs=[{"type": f"billing.kind{i % 3}", "max_attempts": 1} for i in range(400)],
        )
    mine = client.enqueue_jobs(tenant_id=TENANT, jobs=[{"type": "test.echo"}] * 20)
    proc = WorkerProcess(fresh_db_url)
    try:
        wait_for(lambda: _status_counts(fresh_db_url).get("succeeded") == 20, what="my jobs")
        time.sleep(0.5)  # a few more polls, in which nothing else may be claimed
    finally:
        code, err = proc.stop()
    assert code == 0, err[-2000:]
    assert _status_counts(fresh_db_url) == {"succeeded": 20, "queued": 1200}
    with psycopg.connect(fresh_db_url) as conn:
        touched = conn.execute(
            "select count(*) from jobforge_jobs where type like 'billing.%%'"
            " and (attempts <> 0 or error is not null or locked_by is not null)"
        ).fetchone()
        attempts = conn.execute(
            "select count(*) from jobforge_job_attempts a join jobforge_jobs j on j.id = a.job_id"
            " where j.type like 'billing.%%'"
        ).fetchone()
    assert touched == (0,)
    assert attempts == (0,)
    assert len(others) == 1200
    assert len(mine) == 20


def test_cli_types_repeatable_and_comma_separated(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    echo = client.enqueue_job(tenant_id=TENANT, type="test.echo")
    async_echo = client.enqueue_job(tenant_id=TENANT, type="test.async_echo")
    sleeper = client.enqueue_job(tenant_id=TENANT, type="test.sleep", payload={"seconds": 0})
    failing = client.enqueue_job(tenant_id=TENANT, type="test.fail")
    proc = WorkerProcess(
        fresh_db_url, "--types", "test.echo", "--types", "test.async_echo, test.sleep"
    )
    try:
        wait_for(lambda: _status_counts(fresh_db_url).get("succeeded") == 3, what="three jobs")
        time.sleep(0.5)
    finally:
        code, err = proc.stop()
    assert code == 0, err[-2000:]
    assert {_job(fresh_db_url, j.id)["status"] for j in (echo, async_echo, sleeper)} == {
        "succeeded"
    }
    row = _job(fresh_db_url, failing.id)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    assert "types test.echo, test.async_echo, test.sleep," in err
