"""jobforge_sdk.tracing without a database, with OpenTelemetry's in-memory exporter: a
span per RPC with tenant and outcome, the app's trace id carried into request_job and
submit_event, and the job span joining the trace its trace_id names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobforge_sdk import tracing
from jobforge_sdk.errors import NotFoundError
from jobforge_sdk.models.jobs import JobRow, JobStatus


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        yield memory, provider
    finally:
        tracing.disable()
        provider.shutdown()


class _Transport:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def call(self, fn: str, args: Any) -> Any:
        self.seen.append((fn, args))
        if fn == "jobforge_get_job":
            raise NotFoundError("job x not found")
        return {}


class _AsyncTransport(_Transport):
    async def call(self, fn: str, args: Any) -> Any:
        return super().call(fn, args)


class _Client:
    def __init__(self, transport: Any) -> None:
        self.transport = transport


def test_a_span_per_rpc_with_tenant_and_outcome(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    memory, provider = exporter
    client = tracing.instrument(_Client(_Transport()), tracer_provider=provider)
    tenant = str(uuid.uuid4())
    client.transport.call("jobforge_enqueue_job", {"p_tenant_id": tenant, "p_type": "x"})
    with pytest.raises(NotFoundError):
        client.transport.call("jobforge_get_job", {"p_tenant_id": tenant})
    ok, failed = memory.get_finished_spans()
    assert ok.name == "jobforge jobforge_enqueue_job"
    assert ok.kind is SpanKind.CLIENT
    assert ok.attributes is not None
    assert failed.attributes is not None
    assert ok.attributes["jobforge.tenant_id"] == tenant
    assert ok.attributes["jobforge.outcome"] == "ok"
    assert failed.attributes["jobforge.outcome"] == "NotFoundError"
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_the_apps_trace_id_is_carried_into_requests_and_events(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    memory, provider = exporter
    transport = _Transport()
    client = tracing.instrument(_Client(transport), tracer_provider=provider)
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("checkout") as app_span:
        client.transport.call("jobforge_request_job", {"p_tenant_id": "t"})
        client.transport.call("jobforge_submit_event", {"p_trace_id": "given-by-app"})
        client.transport.call("jobforge_enqueue_job", {"p_tenant_id": "t"})
    expected = format(app_span.get_span_context().trace_id, "032x")
    assert transport.seen[0][1]["p_trace_id"] == expected
    assert transport.seen[1][1]["p_trace_id"] == "given-by-app"  # the caller's wins
    assert "p_trace_id" not in transport.seen[2][1]
    rpc_spans = [s for s in memory.get_finished_spans() if s.name.startswith("jobforge ")]
    assert all(s.parent is not None for s in rpc_spans)
    assert {s.context.trace_id for s in rpc_spans} == {app_span.get_span_context().trace_id}


def test_async_transports_get_spans_too(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    memory, provider = exporter
    client = tracing.instrument(_Client(_AsyncTransport()), tracer_provider=provider)
    asyncio.run(client.transport.call("jobforge_list_jobs", {"p_tenant_id": "t"}))
    (span,) = memory.get_finished_spans()
    assert span.name == "jobforge jobforge_list_jobs"


@pytest.mark.parametrize(
    ("trace_id", "expected"),
    [
        ("4bf92f3577b34da6a3ce929d0e0e4736", 0x4BF92F3577B34DA6A3CE929D0E0E4736),
        ("4bf92f35-77b3-4da6-a3ce-929d0e0e4736", 0x4BF92F3577B34DA6A3CE929D0E0E4736),
        ("00000000000000000000000000000000", None),
        ("order-1234", None),
        (None, None),
    ],
)
def test_which_trace_ids_are_opentelemetry_ones(trace_id: str | None, expected: int | None) -> None:
    assert tracing.otel_trace_id(trace_id) == expected


def _job() -> JobRow:
    now = datetime.now(UTC)
    return JobRow(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        type="report.build",
        payload={},
        status=JobStatus.RUNNING,
        attempts=2,
        max_attempts=5,
        run_at=now,
        created_at=now,
        updated_at=now,
    )


def test_job_spans_are_off_until_enabled() -> None:
    assert tracing.start_job_span(_job(), "4bf92f3577b34da6a3ce929d0e0e4736") is None
    tracing.end_job_span(None, None, retryable=True)  # the worker's call is then a no-op


def test_a_job_span_joins_the_trace_its_trace_id_names(
    exporter: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    memory, provider = exporter
    tracing.enable(provider)
    job = _job()
    handle = tracing.start_job_span(job, "4bf92f35-77b3-4da6-a3ce-929d0e0e4736")
    inner = provider.get_tracer("handler").start_span("handler work")  # made inside the job
    inner.end()
    tracing.end_job_span(handle, {"type": "ValueError", "message": "bad row"}, retryable=False)
    handle = tracing.start_job_span(job, "not-a-trace-id")
    tracing.end_job_span(handle, None, retryable=True)
    work, failed, plain = memory.get_finished_spans()
    assert failed.name == "jobforge job report.build"
    assert failed.kind is SpanKind.CONSUMER
    assert failed.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert work.context.trace_id == failed.context.trace_id
    assert work.parent is not None
    assert work.parent.span_id == failed.context.span_id
    assert failed.attributes is not None
    assert plain.attributes is not None
    assert failed.attributes["jobforge.outcome"] == "failed"
    assert failed.attributes["jobforge.retryable"] is False
    assert failed.status.status_code is StatusCode.ERROR
    assert plain.attributes["jobforge.trace_id"] == "not-a-trace-id"
    assert plain.attributes["jobforge.outcome"] == "succeeded"
    assert plain.context.trace_id != failed.context.trace_id
