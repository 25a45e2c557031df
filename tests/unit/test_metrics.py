"""jobforge_sdk.metrics without a database: what the hooks record, the client wrapper,
and the text format (the worker and the dashboard are tested on a real database in
tests/integration/test_observability.py and tests/dashboard)."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobforge_sdk import metrics
from jobforge_sdk.errors import ConflictError
from jobforge_sdk.models.jobs import JobRow, JobStatus


def _value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def _job(type: str, *, attempts: int = 1, max_attempts: int = 3, late: float = 0) -> JobRow:
    now = datetime.now(UTC)
    return JobRow(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        type=type,
        payload={},
        status=JobStatus.RUNNING,
        attempts=attempts,
        max_attempts=max_attempts,
        run_at=now - timedelta(seconds=late),
        created_at=now,
        updated_at=now,
    )


@pytest.fixture
def recording() -> Iterator[None]:
    metrics.enable()
    try:
        yield
    finally:
        metrics.disable()


def test_hooks_record_nothing_until_enabled() -> None:
    kind = f"quiet.{uuid.uuid4().hex[:6]}"
    metrics.observe_claim([_job(kind)], 0.01)
    metrics.observe_outcome(_job(kind), succeeded=True, retryable=True)
    assert _value("jobforge_jobs_claimed_total", type=kind) == 0
    assert _value("jobforge_jobs_succeeded_total", type=kind) == 0


@pytest.mark.usefixtures("recording")
def test_claims_outcomes_and_durations_by_type() -> None:
    kind = f"m.{uuid.uuid4().hex[:6]}"
    claims_before = _value("jobforge_claim_duration_seconds_count")
    metrics.observe_claim([_job(kind, late=2.0), _job(kind)], 0.004)
    assert _value("jobforge_jobs_claimed_total", type=kind) == 2
    assert _value("jobforge_claim_duration_seconds_count") == claims_before + 1
    assert _value("jobforge_job_start_delay_seconds_count", type=kind) == 2
    assert _value("jobforge_job_start_delay_seconds_sum", type=kind) >= 2.0
    metrics.observe_handler(kind, 0.2)
    assert _value("jobforge_handler_duration_seconds_bucket", type=kind, le="0.5") == 1
    assert _value("jobforge_handler_duration_seconds_bucket", type=kind, le="0.1") == 0

    metrics.observe_outcome(_job(kind), succeeded=True, retryable=True)
    metrics.observe_outcome(_job(kind, attempts=1), succeeded=False, retryable=True)
    metrics.observe_outcome(_job(kind, attempts=3), succeeded=False, retryable=True)
    metrics.observe_outcome(_job(kind, attempts=1), succeeded=False, retryable=False)
    assert _value("jobforge_jobs_succeeded_total", type=kind) == 1
    assert _value("jobforge_jobs_failed_total", type=kind) == 3
    assert _value("jobforge_jobs_dead_total", type=kind) == 2  # last attempt, not retryable


class _Transport:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    def call(self, fn: str, args: Any) -> Any:
        self.calls.append((fn, args))
        if self.fail:
            raise ConflictError("job is not held")
        return []


class _Client:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport


def test_instrument_counts_enqueued_jobs_and_rpc_outcomes() -> None:
    kind = f"e.{uuid.uuid4().hex[:6]}"
    client = metrics.instrument(_Client(_Transport()))
    metrics.instrument(client)  # twice is once
    client.transport.call("jobforge_enqueue_job", {"p_type": kind})
    client.transport.call(
        "jobforge_enqueue_jobs", {"p_jobs": [{"type": kind}, {"type": kind}, {"type": "other"}]}
    )
    client.transport.call("jobforge_enqueue_jobs", {"p_jobs": f'[{{"type": "{kind}"}}]'})
    assert len(client.transport.calls) == 3
    assert _value("jobforge_jobs_enqueued_total", type=kind) == 4
    failing = metrics.instrument(_Client(_Transport(fail=True)))
    before = _value(
        "jobforge_rpc_duration_seconds_count", rpc="jobforge_release_job", outcome="ConflictError"
    )
    with pytest.raises(ConflictError):
        failing.transport.call("jobforge_release_job", {})
    after = _value(
        "jobforge_rpc_duration_seconds_count", rpc="jobforge_release_job", outcome="ConflictError"
    )
    assert after == before + 1


def test_serve_exposes_the_text_format() -> None:
    server = metrics.serve(0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain")
        assert "# TYPE jobforge_jobs_claimed_total counter" in text
        assert "# TYPE jobforge_handler_duration_seconds histogram" in text
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    finally:
        server.shutdown()
        metrics.disable()
