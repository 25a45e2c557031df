"""The operations of the core queue, one per RPC of ``supabase/schema/20_jobs.sql`` and
``25_workers.sql``.

Keyword arguments are the RPC's parameter names without ``p_``. These functions do no
I/O; ``JobForgeClient`` and ``AsyncJobForgeClient`` expose each of them as a method.
The core queue is never feature-gated.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import JsonValue

from jobforge_sdk._operations._machinery import (
    RpcCall,
    operation,
    parse_list,
    parse_one,
    parse_optional,
    parse_uuids,
    validate,
)
from jobforge_sdk.models.jobs import (
    CancelJobParams,
    ClaimJobsParams,
    CompleteJobParams,
    CompleteJobsParams,
    EnqueueJobParams,
    EnqueueJobsParams,
    FindJobParams,
    GetJobParams,
    HeartbeatJobParams,
    HeartbeatJobsParams,
    JobAttemptRow,
    JobCompletion,
    JobResultRow,
    JobRow,
    JobSpec,
    JobStatus,
    ListJobsParams,
    ReapStaleJobsParams,
    RescheduleJobParams,
    RetryDeadJobsParams,
    RetryJobParams,
)
from jobforge_sdk.models.retention import MAX_PURGE_BATCH, PurgeResult, RetentionParams

__all__ = [
    "cancel_job",
    "claim_jobs",
    "complete_job",
    "complete_jobs",
    "enqueue_job",
    "enqueue_job_ids",
    "enqueue_jobs",
    "finish_jobs",
    "get_job",
    "get_result",
    "heartbeat_job",
    "heartbeat_jobs",
    "list_job_attempts",
    "list_jobs",
    "purge_finished_jobs",
    "reap_stale_jobs",
    "release_job",
    "reschedule_job",
    "retry_dead_jobs",
    "retry_job",
]


def _count(data: Any) -> int:
    return int(data)


@operation()
def enqueue_job(
    *,
    tenant_id: UUID | str,
    type: str,
    payload: JsonValue = None,
    idempotency_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = 5,
    priority: int = 0,
    timeout: timedelta | None = None,
) -> RpcCall[JobRow]:
    """Queue one job. With an ``idempotency_key`` a repeat returns the existing job.

    ``priority`` (-32768..32767): among due jobs, higher is claimed first. ``timeout``
    (1 ms to 24 hours, ``None``: no limit): how long one attempt may run, counted from
    its claim; past it the worker stops the handler and the attempt fails with
    ``JobTimeout`` (retried with backoff), and the reaper takes back a job whose worker
    did not."""
    params = validate(EnqueueJobParams, locals())
    return RpcCall("jobforge_enqueue_job", params.rpc_args(), parse_one(JobRow))


@operation()
def enqueue_jobs(
    *, tenant_id: UUID | str, jobs: list[JobSpec] | list[dict[str, Any]]
) -> RpcCall[list[JobRow]]:
    """Queue up to 1,000 jobs in one statement; rows come back in input order. Each job
    takes the arguments of ``enqueue_job`` (``priority`` and ``timeout`` included)."""
    params = validate(EnqueueJobsParams, locals())
    return RpcCall("jobforge_enqueue_jobs", params.rpc_args(), parse_list(JobRow))


@operation()
def enqueue_job_ids(
    *, tenant_id: UUID | str, jobs: list[JobSpec] | list[dict[str, Any]]
) -> RpcCall[list[UUID]]:
    """Queue up to 1,000 jobs as ``enqueue_jobs`` does, and answer only their ids, in
    input order (a duplicate's is the id of the job that holds its key): the lean call for
    producers that do not read the rows back, which spares the database building them."""
    params = validate(EnqueueJobsParams, locals())
    return RpcCall(
        "jobforge_enqueue_jobs", {**params.rpc_args(), "p_returning": "ids"}, parse_uuids
    )


@operation()
def claim_jobs(
    *, worker_id: str, limit: int = 10, types: list[str] | None = None
) -> RpcCall[list[JobRow]]:
    """Claim up to ``limit`` due jobs for ``worker_id`` (service role only)."""
    params = validate(ClaimJobsParams, locals())
    return RpcCall("jobforge_claim_jobs", params.rpc_args(), parse_list(JobRow))


@operation()
def heartbeat_job(*, job_id: UUID | str, worker_id: str) -> RpcCall[JobRow]:
    """Tell the queue the worker holding ``job_id`` is still alive."""
    params = validate(HeartbeatJobParams, locals())
    return RpcCall("jobforge_heartbeat_job", params.rpc_args(), parse_one(JobRow))


@operation()
def heartbeat_jobs(*, worker_id: str, job_ids: list[UUID] | list[str]) -> RpcCall[list[UUID]]:
    """Heartbeat every listed job in one statement; answers the ids ``worker_id`` still
    holds (a job left out was canceled or reaped: stop working on it)."""
    params = validate(HeartbeatJobsParams, locals())
    return RpcCall("jobforge_heartbeat_jobs", params.rpc_args(), parse_uuids)


@operation()
def complete_job(
    *,
    job_id: UUID | str,
    worker_id: str,
    status: JobStatus | str,
    error: JsonValue = None,
    result: JsonValue = None,
    artifact_ref: str | None = None,
    retryable: bool = True,
) -> RpcCall[JobRow]:
    """Finish the held job: ``succeeded`` stores the result, ``failed`` retries or kills.
    A failure with ``retryable=False`` makes the job ``dead`` at once, attempts left or
    not: for failures no retry can fix (bad input, a ``NonRetryableError``)."""
    params = validate(CompleteJobParams, locals())
    return RpcCall("jobforge_complete_job", params.rpc_args(), parse_one(JobRow))


@operation()
def complete_jobs(
    *, worker_id: str, results: list[JobCompletion] | list[dict[str, Any]]
) -> RpcCall[list[JobRow]]:
    """Finish up to 1,000 held jobs in one statement and one commit, all or nothing:
    ``ConflictError`` names the first job the worker does not hold, and nothing changes.
    Each item is ``{job_id, status, result?, error?, artifact_ref?, retryable?}``."""
    params = validate(CompleteJobsParams, locals())
    return RpcCall("jobforge_complete_jobs", params.rpc_args(), parse_list(JobRow))


@operation(internal=True)
def finish_jobs(
    *, worker_id: str, results: list[JobCompletion] | list[dict[str, Any]]
) -> RpcCall[list[UUID]]:
    """``complete_jobs`` as the worker calls it (internal): the same checks and the same
    all-or-nothing batch, answered with the ids only, since the worker reads nothing
    back and the database need not build the rows."""
    params = validate(CompleteJobsParams, locals())
    return RpcCall(
        "jobforge_complete_jobs", {**params.rpc_args(), "p_returning": "ids"}, parse_uuids
    )


@operation()
def release_job(*, job_id: UUID | str, worker_id: str) -> RpcCall[JobRow]:
    """Hand a held job back to the queue unfinished (a worker shutting down); the attempt
    is not counted against the job."""
    params = validate(HeartbeatJobParams, locals())
    return RpcCall("jobforge_release_job", params.rpc_args(), parse_one(JobRow))


@operation()
def reap_stale_jobs(*, timeout: timedelta = timedelta(minutes=5)) -> RpcCall[int]:
    """Requeue (or kill) running jobs whose worker stopped heartbeating; returns how many."""
    params = validate(ReapStaleJobsParams, locals())
    return RpcCall("jobforge_reap_stale_jobs", params.rpc_args(), _count)


@operation()
def cancel_job(*, job_id: UUID | str, tenant_id: UUID | str) -> RpcCall[JobRow]:
    """Cancel a queued or running job of the tenant."""
    params = validate(CancelJobParams, locals())
    return RpcCall("jobforge_cancel_job", params.rpc_args(), parse_one(JobRow))


@operation()
def retry_job(
    *, tenant_id: UUID | str, job_id: UUID | str, actor_id: str | None = None
) -> RpcCall[JobRow]:
    """Put a ``dead`` (or ``failed``) job back in the queue under the same id: attempts
    reset to 0, error cleared, due now; audited as ``job_retry``. Any other status raises
    ``ConflictError`` naming it. ``actor_id`` is recorded when the service role calls."""
    params = validate(RetryJobParams, locals())
    return RpcCall("jobforge_retry_job", params.rpc_args(), parse_one(JobRow))


@operation()
def retry_dead_jobs(
    *,
    tenant_id: UUID | str,
    type: str | None = None,
    limit: int = 1000,
    actor_id: str | None = None,
) -> RpcCall[list[UUID]]:
    """Retry up to ``limit`` (at most 1,000) dead or failed jobs of the tenant, of one
    ``type`` or all, oldest failure first, in one statement with one audit row; returns
    the ids retried (empty when there were none). Call again to retry more."""
    params = validate(RetryDeadJobsParams, locals())
    return RpcCall("jobforge_retry_dead_jobs", params.rpc_args(), parse_uuids)


@operation()
def reschedule_job(
    *,
    job_id: UUID | str,
    tenant_id: UUID | str,
    run_at: datetime | None = None,
    priority: int | None = None,
) -> RpcCall[JobRow]:
    """Move a queued job to another time, give it another priority, or both (one of
    the two is required; what is left out stays as it is)."""
    params = validate(RescheduleJobParams, locals())
    return RpcCall("jobforge_reschedule_job", params.rpc_args(), parse_one(JobRow))


@operation()
def list_jobs(
    *,
    tenant_id: UUID | str | None,
    status: JobStatus | str | None = None,
    type: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> RpcCall[list[JobRow]]:
    """Jobs of the tenant, newest first. ``tenant_id=None`` lists the jobs of every
    tenant; only the service role may (anyone else gets ``InvalidInputError``)."""
    params = validate(ListJobsParams, locals())
    return RpcCall("jobforge_list_jobs", params.rpc_args(), parse_list(JobRow))


@operation()
def get_job(*, job_id: UUID | str, tenant_id: UUID | str | None) -> RpcCall[JobRow | None]:
    """The job, or ``None`` when the tenant has no such job. ``tenant_id=None`` finds the
    job whatever its tenant; only the service role may."""
    params = validate(FindJobParams, locals())
    return RpcCall("jobforge_get_job", params.rpc_args(), parse_optional(JobRow))


@operation()
def list_job_attempts(*, job_id: UUID | str, tenant_id: UUID | str) -> RpcCall[list[JobAttemptRow]]:
    """The finished attempts of the tenant's job, oldest first (each with its worker,
    status and error); ``NotFoundError`` when the tenant has no such job."""
    params = validate(GetJobParams, locals())
    return RpcCall("jobforge_list_job_attempts", params.rpc_args(), parse_list(JobAttemptRow))


@operation()
def get_result(*, job_id: UUID | str, tenant_id: UUID | str) -> RpcCall[JobResultRow | None]:
    """The stored result of a succeeded job, or ``None``."""
    params = validate(GetJobParams, locals())
    return RpcCall("jobforge_get_result", params.rpc_args(), parse_optional(JobResultRow))


@operation()
def purge_finished_jobs(
    *, older_than: timedelta, batch_size: int = MAX_PURGE_BATCH
) -> RpcCall[PurgeResult]:
    """Delete up to ``batch_size`` (at most 10,000) succeeded, dead or canceled jobs that
    finished more than ``older_than`` ago, with their attempts and manifests (service
    role). Never a queued, running or failed job. One batch per call, so no call holds its
    locks for long: call again while the answer's ``more`` is true."""
    params = validate(RetentionParams, locals())
    return RpcCall("jobforge_purge_finished_jobs", params.rpc_args(), parse_one(PurgeResult))
