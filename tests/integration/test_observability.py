"""Metrics and traces on a real database: what a worker records per type, the worker's
``--metrics-port`` endpoint in a real process, and an app's trace continuing from
``request_job`` into the worker's job span (OpenTelemetry's in-memory exporter)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import JsonValue

from jobforge_sdk import FeatureFlags, JobForgeClient, Worker, metrics, tracing
from jobforge_sdk.models.jobs import JobStatus
from jobforge_sdk.runtime.registry import JobContext, JobRegistry
from jobforge_sdk.tooling.smoke import demo_handlers
from tests.support.cli import JOBFORGE

SCAN = "autopilot.ops.scan"


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def recording() -> Iterator[None]:
    metrics.enable()
    try:
        yield
    finally:
        metrics.disable()


@pytest.mark.usefixtures("recording")
def test_a_worker_records_claims_outcomes_and_durations(migrated_db_url: str) -> None:
    tenant = uuid.uuid4()
    ok, bad = f"obs.ok.{uuid.uuid4().hex[:6]}", f"obs.bad.{uuid.uuid4().hex[:6]}"
    registry = JobRegistry()

    def fine(ctx: JobContext) -> JsonValue:
        return {"n": 1}

    registry.handler(ok)(fine)

    def explode(ctx: JobContext) -> None:
        raise RuntimeError("nope")

    registry.handler(bad)(explode)
    with JobForgeClient.from_postgres(migrated_db_url, max_size=4) as client:
        metrics.instrument(client)
        client.enqueue_jobs(tenant_id=tenant, jobs=[{"type": ok}, {"type": ok}, {"type": ok}])
        dead = client.enqueue_job(tenant_id=tenant, type=bad, max_attempts=1)
        assert Worker(client, registry, concurrency=2).run_until_idle(timeout=60) == 4
        final = client.get_job(job_id=dead.id, tenant_id=tenant)
        assert final is not None
        assert final.status is JobStatus.DEAD
    assert _value("jobforge_jobs_enqueued_total", type=ok) == 3
    assert _value("jobforge_jobs_enqueued_total", type=bad) == 1
    assert _value("jobforge_jobs_claimed_total", type=ok) == 3
    assert _value("jobforge_jobs_succeeded_total", type=ok) == 3
    assert _value("jobforge_jobs_failed_total", type=bad) == 1
    assert _value("jobforge_jobs_dead_total", type=bad) == 1
    assert _value("jobforge_jobs_dead_total", type=ok) == 0
    assert _value("jobforge_handler_duration_seconds_count", type=ok) == 3
    assert _value("jobforge_job_start_delay_seconds_count", type=bad) == 1
    assert (
        _value("jobforge_rpc_duration_seconds_count", rpc="jobforge_claim_jobs", outcome="ok") >= 1
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_metrics_port_serves_prometheus_text(migrated_db_url: str) -> None:
    tenant = uuid.uuid4()
    port = _free_port()
    with JobForgeClient.from_postgres(migrated_db_url, max_size=2) as client:
        client.enqueue_jobs(
            tenant_id=tenant, jobs=[{"type": "test.echo", "payload": {"i": i}} for i in range(3)]
        )
        waiting = client.enqueue_job(
            tenant_id=tenant, type="test.sleep", run_at=None, payload={"seconds": 0}
        )
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            JOBFORGE,
            "worker",
            "--database-url",
            migrated_db_url,
            "--app",
            "tests.support.worker_app:handlers",
            "--types",
            "test.echo",
            "--poll-interval",
            "0.2",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
            if 'jobforge_jobs_succeeded_total{type="test.echo"} 3.0' in text:
                break
            time.sleep(0.2)
        log.seek(0)
        assert 'jobforge_jobs_succeeded_total{type="test.echo"} 3.0' in text, log.read()[-2000:]
        assert 'jobforge_jobs_claimed_total{type="test.echo"} 3.0' in text
        # The queue gauges, read through the worker's client: the sleep job nobody claims.
        assert 'jobforge_queue_depth{type="test.sleep"}' in text
        assert "jobforge_oldest_queued_age_seconds" in text
        assert waiting.status is JobStatus.QUEUED
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_an_apps_trace_continues_into_the_job(fresh_db_url: str) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tenant = uuid.uuid4()
    flags = FeatureFlags(autopilot_jobs=True)
    try:
        tracing.enable(provider)
        with JobForgeClient.from_postgres(fresh_db_url, flags=flags, max_size=4) as client:
            tracing.instrument(client, tracer_provider=provider)
            client.set_template_enabled(template_key=SCAN, enabled=True)
            with provider.get_tracer("app").start_as_current_span("checkout") as app_span:
                requested = client.request_job(
                    tenant_id=tenant, template_key=SCAN, inputs={"target": "db.example.com"}
                )
            assert requested is not None
            assert requested.job is not None
            ran = Worker(client, demo_handlers(), concurrency=1).run_until_idle(timeout=60)
            assert ran == 1
    finally:
        tracing.disable()
    app_trace = app_span.get_span_context().trace_id
    spans = memory.get_finished_spans()
    (job_span,) = [s for s in spans if s.name == f"jobforge job {SCAN}"]
    assert job_span.context.trace_id == app_trace
    assert job_span.attributes is not None
    assert job_span.attributes["jobforge.job_id"] == str(requested.job.id)
    assert job_span.attributes["jobforge.trace_id"] == format(app_trace, "032x")
    assert job_span.attributes["jobforge.outcome"] == "succeeded"
    (request_span,) = [s for s in spans if s.name == "jobforge jobforge_request_job"]
    assert request_span.context.trace_id == app_trace
    assert request_span.attributes is not None
    assert request_span.attributes["jobforge.tenant_id"] == str(tenant)
    claim_spans = [s for s in spans if s.name == "jobforge jobforge_claim_jobs"]
    assert claim_spans
    assert all(s.attributes and s.attributes["jobforge.outcome"] == "ok" for s in claim_spans)
