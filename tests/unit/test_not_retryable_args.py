"""How "do not retry" travels: only when set, so the common completion stays as it was."""

from __future__ import annotations

import uuid

import pytest

from jobforge_sdk import InvalidInputError, JobCompletion, JobForgeError, NonRetryableError
from jobforge_sdk._operations._machinery import RpcCall
from jobforge_sdk._operations.queue import complete_job, complete_jobs

JOB = uuid.uuid4()


def test_complete_job_sends_p_retryable_only_when_false() -> None:
    default = complete_job.build(job_id=JOB, worker_id="w", status="failed", error={"x": 1})
    assert isinstance(default, RpcCall)
    assert "p_retryable" not in default.args
    final = complete_job.build(job_id=JOB, worker_id="w", status="failed", retryable=False)
    assert isinstance(final, RpcCall)
    assert final.args["p_retryable"] is False


def test_complete_jobs_items_carry_retryable_only_when_false() -> None:
    call = complete_jobs.build(
        worker_id="w",
        results=[
            JobCompletion(job_id=JOB, status="failed", retryable=False),
            JobCompletion(job_id=uuid.uuid4(), status="succeeded"),
        ],
    )
    assert isinstance(call, RpcCall)
    first, second = call.args["p_results"]
    assert first == {"job_id": str(JOB), "status": "failed", "retryable": False}
    assert "retryable" not in second


def test_retryable_must_be_a_boolean() -> None:
    with pytest.raises(InvalidInputError) as info:
        complete_job.build(job_id=JOB, worker_id="w", status="failed", retryable="maybe")  # type: ignore[arg-type]
    assert info.value.field == "retryable"


def test_non_retryable_error_is_a_jobforge_error() -> None:
    error = NonRetryableError("account closed")
    assert isinstance(error, JobForgeError)
    assert error.message == "account closed"
