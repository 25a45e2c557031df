"""The core queue: job rows as the database returns them, and the parameters of its RPCs.

Limits mirror the checks in ``supabase/schema/20_jobs.sql`` and ``25_workers.sql`` so bad
input is refused before any I/O; the database checks again for callers who skip the SDK.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, Strict, ValidationInfo, field_validator

from ._base import Bool, NoneIsEmpty, NonEmptyStr, Params, Row, TenantId, check_json

__all__ = [
    "MAX_BATCH",
    "MAX_ERROR_BYTES",
    "MAX_JOB_TIMEOUT",
    "MAX_PAYLOAD_BYTES",
    "MAX_RESULT_BYTES",
    "CancelJobParams",
    "ClaimJobsParams",
    "CompleteJobParams",
    "CompleteJobsParams",
    "EnqueueJobParams",
    "EnqueueJobsParams",
    "FindJobParams",
    "GetJobParams",
    "HeartbeatJobParams",
    "JobAttemptRow",
    "JobCompletion",
    "JobResultRow",
    "JobRow",
    "JobSpec",
    "JobStatus",
    "ListJobsParams",
    "ReapStaleJobsParams",
    "RescheduleJobParams",
    "RetryDeadJobsParams",
    "RetryJobParams",
]

MAX_PAYLOAD_BYTES = 1024 * 1024
# What a worker reports: a result as big as a payload, an error far smaller (a message and
# a short traceback, see runtime.worker.describe_error).
MAX_RESULT_BYTES = 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_BATCH = 1000
MaxAttempts = Annotated[int, Strict(), Field(ge=1, le=100)]
# The column is a smallint: higher is claimed first.
Priority = Annotated[int, Strict(), Field(ge=-32768, le=32767)]
# How long one attempt may run (jobforge_jobs.timeout_ms): from a millisecond to a day.
MAX_JOB_TIMEOUT = timedelta(hours=24)
_MILLISECOND = timedelta(milliseconds=1)


def _check_timeout(value: timedelta | None) -> timedelta | None:
    if value is not None and not _MILLISECOND <= value <= MAX_JOB_TIMEOUT:
        raise ValueError("must be between 1 millisecond and 24 hours")
    return value


def timeout_ms(value: timedelta) -> int:
    """A timeout as the database stores it: whole milliseconds, rounded (at least 1)."""
    ms = (value.days * 86_400 + value.seconds) * 1000 + (value.microseconds + 500) // 1000
    return max(ms, 1)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELED = "canceled"


class JobRow(Row):
    id: UUID
    tenant_id: UUID
    type: str
    payload: Any
    status: JobStatus
    attempts: int
    max_attempts: int
    priority: int = 0
    timeout_ms: int | None = None
    run_at: datetime
    locked_by: str | None = None
    locked_at: datetime | None = None
    heartbeat_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    idempotency_key: str | None = None
    error: Any = None
    # A succeeded job's result, artifact reference and the worker that ran it.
    result: Any = None
    artifact_ref: str | None = None
    finished_by: str | None = None
    created_at: datetime
    updated_at: datetime


class JobResultRow(Row):
    id: UUID
    job_id: UUID
    tenant_id: UUID
    result: Any = None
    artifact_ref: str | None = None
    created_at: datetime


class JobAttemptRow(Row):
    id: UUID
    job_id: UUID
    tenant_id: UUID
    attempt: int
    worker_id: str | None = None
    status: str
    error: Any = None
    started_at: datetime | None = None
    finished_at: datetime


def _check_payload(value: Any) -> Any:
    return check_json(value, max_bytes=MAX_PAYLOAD_BYTES)


class JobSpec(Params):
    """One job of a batch (``enqueue_jobs``)."""

    type: NonEmptyStr
    payload: Annotated[Any, NoneIsEmpty] = Field(default_factory=dict)
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    run_at: datetime | None = None
    max_attempts: MaxAttempts = 5
    priority: Priority = 0
    # None: no limit. Strict: a number is not a duration (``30`` would be 30 what?).
    timeout: Annotated[timedelta, Strict()] | None = None

    @field_validator("payload")
    @classmethod
    def _payload_size(cls, value: Any) -> Any:
        return _check_payload(value)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta | None) -> timedelta | None:
        return _check_timeout(value)

    def spec_json(self) -> dict[str, Any]:
        # The database's field is timeout_ms; priority 0 is its default and is left out,
        # so a batch of plain jobs is as short as it was.
        spec = self.model_dump(mode="json", exclude_none=True, exclude={"priority", "timeout"})
        if self.priority:
            spec["priority"] = self.priority
        if self.timeout is not None:
            spec["timeout_ms"] = timeout_ms(self.timeout)
        return spec


class EnqueueJobParams(JobSpec):
    tenant_id: TenantId

    def rpc_args(self) -> dict[str, Any]:
        args = {"p_tenant_id": str(self.tenant_id)}
        args.update((f"p_{key}", value) for key, value in self.spec_json().items())
        return args


class EnqueueJobsParams(Params):
    tenant_id: TenantId
    jobs: Annotated[list[JobSpec], Field(min_length=1, max_length=MAX_BATCH)]

    def rpc_args(self) -> dict[str, Any]:
        return {
            "p_tenant_id": str(self.tenant_id),
            "p_jobs": [job.spec_json() for job in self.jobs],
        }


class ClaimJobsParams(Params):
    worker_id: NonEmptyStr
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)] = 10
    types: Annotated[list[NonEmptyStr], Field(min_length=1)] | None = None


class HeartbeatJobParams(Params):
    job_id: UUID
    worker_id: NonEmptyStr


class HeartbeatJobsParams(Params):
    worker_id: NonEmptyStr
    job_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_BATCH)]


class _Outcome(Params):
    """How a held job ended: shared by ``complete_job`` and each ``complete_jobs`` item."""

    status: JobStatus
    error: Any = None
    result: Any = None
    artifact_ref: Annotated[str, Field(max_length=2048)] | None = None
    # False: a failure no retry can fix; the job is dead at once, attempts left or not.
    retryable: Bool = True

    @field_validator("result")
    @classmethod
    def _result(cls, value: Any) -> Any:
        return check_json(value, max_bytes=MAX_RESULT_BYTES)

    @field_validator("error")
    @classmethod
    def _error(cls, value: Any) -> Any:
        return check_json(value, max_bytes=MAX_ERROR_BYTES)

    @field_validator("status")
    @classmethod
    def _finished(cls, value: JobStatus) -> JobStatus:
        if value not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            raise ValueError("must be 'succeeded' or 'failed'")
        return value


class CompleteJobParams(_Outcome):
    job_id: UUID
    worker_id: NonEmptyStr

    def rpc_args(self) -> dict[str, Any]:
        # The default is the SQL default too: leave it out, so the common call stays as
        # short as it was.
        args = super().rpc_args()
        if self.retryable:
            del args["p_retryable"]
        return args


class JobCompletion(_Outcome):
    """One element of ``complete_jobs``."""

    job_id: UUID

    def item_json(self) -> dict[str, Any]:
        # ``retryable`` only when false: a batch of a thousand successes need not carry
        # a thousand copies of the default.
        return self.model_dump(
            mode="json", exclude_none=True, exclude={"retryable"} if self.retryable else None
        )


class CompleteJobsParams(Params):
    worker_id: NonEmptyStr
    results: Annotated[list[JobCompletion], Field(min_length=1, max_length=MAX_BATCH)]

    def rpc_args(self) -> dict[str, Any]:
        return {
            "p_worker_id": self.worker_id,
            "p_results": [r.item_json() for r in self.results],
        }


class ReapStaleJobsParams(Params):
    # Strict: a number is not a duration (``True`` would have meant one second).
    timeout: Annotated[timedelta, Strict()] = timedelta(minutes=5)

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    def rpc_args(self) -> dict[str, Any]:
        # Seconds as a plain interval literal: unambiguous for both transports.
        return {"p_timeout": f"{self.timeout.total_seconds()} seconds"}


class GetJobParams(Params):
    job_id: UUID
    tenant_id: TenantId


class FindJobParams(Params):
    """``get_job``: ``GetJobParams`` whose tenant may be ``None``, meaning the job
    whatever its tenant, which only the service role may ask."""

    job_id: UUID
    tenant_id: TenantId | None

    def rpc_args(self) -> dict[str, Any]:
        tenant = str(self.tenant_id) if self.tenant_id is not None else None
        return {"p_job_id": str(self.job_id), "p_tenant_id": tenant}


class CancelJobParams(GetJobParams):
    pass


class RescheduleJobParams(GetJobParams):
    # Either or both; what is left out stays as it is. (priority first: run_at's check
    # reads it.)
    priority: Priority | None = None
    run_at: Annotated[datetime | None, Field(validate_default=True)] = None

    @field_validator("run_at")
    @classmethod
    def _something_to_change(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None and info.data.get("priority") is None:
            raise ValueError("is required (unless priority is given)")
        return value


class RetryJobParams(GetJobParams):
    # Recorded as the audit row's actor when the service role retries for someone (an
    # operator of the dashboard); a signed-in user is recorded as its JWT subject instead.
    actor_id: NonEmptyStr | None = None


class RetryDeadJobsParams(Params):
    tenant_id: TenantId
    # None retries dead jobs of every type.
    type: NonEmptyStr | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)] = MAX_BATCH
    actor_id: NonEmptyStr | None = None


class ListJobsParams(Params):
    # None lists the jobs of every tenant: service role only (the database refuses anyone
    # else with "tenant_id: is required").
    tenant_id: TenantId | None
    status: JobStatus | None = None
    type: NonEmptyStr | None = None
    limit: Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)] = 100
    offset: Annotated[int, Strict(), Field(ge=0, le=2147483647)] = 0

    def rpc_args(self) -> dict[str, Any]:
        filters = self.model_dump(mode="json", exclude_none=True, exclude={"tenant_id"})
        tenant = str(self.tenant_id) if self.tenant_id is not None else None
        return {"p_tenant_id": tenant, "p_filters": filters}
