"""Every core-queue method through each transport (direct Postgres and Supabase, sync
and async): the ``client`` fixture runs each test four times."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobforge_sdk import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jobforge_sdk.models import JobAttemptRow, JobResultRow, JobRow, JobStatus
from tests.support.roles import tenant_claims


def _type() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def test_enqueue_get_list_roundtrip(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type, payload={"n": 1, "s": "é"})
    assert isinstance(job, JobRow)
    assert job.tenant_id == tenant
    assert job.status is JobStatus.QUEUED
    assert job.payload == {"n": 1, "s": "é"}
    assert job.max_attempts == 5

    fetched = client.get_job(job_id=job.id, tenant_id=tenant)
    assert fetched == job
    second = client.enqueue_job(tenant_id=tenant, type=job_type, payload=[1, 2])
    listed = client.list_jobs(tenant_id=tenant)
    assert [j.id for j in listed] == [second.id, job.id]  # newest first
    assert client.list_jobs(tenant_id=tenant, type=job_type, limit=1) == [second]
    assert client.list_jobs(tenant_id=tenant, limit=1, offset=1) == [job]
    assert client.list_jobs(tenant_id=tenant, status="running") == []


def test_get_job_is_none_when_absent_or_another_tenants(client: Any) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    job = client.enqueue_job(tenant_id=tenant, type=_type())
    assert client.get_job(job_id=uuid.uuid4(), tenant_id=tenant) is None
    assert client.get_job(job_id=job.id, tenant_id=other) is None
    assert client.get_result(job_id=job.id, tenant_id=tenant) is None


def test_idempotent_enqueue_single_and_batch(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    first = client.enqueue_job(
        tenant_id=tenant, type=job_type, payload={"v": 1}, idempotency_key="k1"
    )
    again = client.enqueue_job(
        tenant_id=tenant, type=job_type, payload={"v": 2}, idempotency_key="k1"
    )
    assert again == first  # unchanged, payload of the first call kept

    batch = client.enqueue_jobs(
        tenant_id=tenant,
        jobs=[
            {"type": job_type, "idempotency_key": "k1"},
            {"type": job_type, "payload": {"i": 1}, "idempotency_key": "k2"},
            {"type": job_type, "payload": {"i": 2}},
            {"type": job_type, "idempotency_key": "k2"},
        ],
    )
    assert batch[0].id == first.id
    assert batch[1].id == batch[3].id
    assert batch[1].payload == {"i": 1}
    assert batch[2].payload == {"i": 2}
    assert len(client.list_jobs(tenant_id=tenant, type=job_type)) == 3

    # The lean answer: ids in input order, duplicates answered with the holder's id.
    ids = client.enqueue_job_ids(
        tenant_id=tenant,
        jobs=[{"type": job_type, "idempotency_key": "k2"}, {"type": job_type}],
    )
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert ids[0] == batch[1].id
    fresh = client.get_job(job_id=ids[1], tenant_id=tenant)
    assert fresh.type == job_type
    assert len(client.list_jobs(tenant_id=tenant, type=job_type)) == 4


def test_claim_heartbeat_complete_result(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type, payload={"x": 1})
    claimed = client.claim_jobs(worker_id="w-1", limit=5, types=[job_type])
    assert [c.id for c in claimed] == [job.id]
    running = claimed[0]
    assert running.status is JobStatus.RUNNING
    assert running.attempts == 1
    assert running.locked_by == "w-1"
    assert client.claim_jobs(worker_id="w-2", types=[job_type]) == []

    beat = client.heartbeat_job(job_id=job.id, worker_id="w-1")
    assert beat.heartbeat_at is not None
    assert running.heartbeat_at is not None
    assert beat.heartbeat_at >= running.heartbeat_at

    done = client.complete_job(
        job_id=job.id,
        worker_id="w-1",
        status="succeeded",
        result={"ok": True},
        artifact_ref="s3://b/k",
    )
    assert done.status is JobStatus.SUCCEEDED
    assert done.finished_at is not None
    result = client.get_result(job_id=job.id, tenant_id=tenant)
    assert isinstance(result, JobResultRow)
    assert result.result == {"ok": True}
    assert result.artifact_ref == "s3://b/k"
    assert result.id == done.id
    assert (done.result, done.finished_by) == (result.result, "w-1")


def test_failures_retry_with_backoff_then_die(
    client: Any, admin_conn: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type, max_attempts=2)

    client.claim_jobs(worker_id="w", types=[job_type])
    before = datetime.now(UTC)
    retried = client.complete_job(
        job_id=job.id, worker_id="w", status="failed", error={"type": "Boom", "message": "x"}
    )
    assert retried.status is JobStatus.QUEUED
    assert retried.error == {"type": "Boom", "message": "x"}
    delay = (retried.run_at - before).total_seconds()
    assert 0.5 <= delay <= 2.0  # 2^(1-1) = 1 s
    assert client.claim_jobs(worker_id="w", types=[job_type]) == []  # not due yet

    admin_conn.execute("update jobforge_jobs set run_at = now() where id = %s", (job.id,))
    assert [j.attempts for j in client.claim_jobs(worker_id="w", types=[job_type])] == [2]
    dead = client.complete_job(job_id=job.id, worker_id="w", status="failed", error={"n": 2})
    assert dead.status is JobStatus.DEAD
    assert dead.finished_at is not None
    attempts = admin_conn.execute(
        "select attempt, status from jobforge_job_attempts where job_id = %s order by attempt",
        (job.id,),
    ).fetchall()
    assert attempts == [(1, "failed"), (2, "failed")]


def test_reap_requeues_a_dead_workers_job(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    client = make_client(transport_kind, url=fresh_db_url)
    tenant = uuid.uuid4()
    job = client.enqueue_job(tenant_id=tenant, type=_type())
    client.claim_jobs(worker_id="crashed")
    assert client.reap_stale_jobs(timeout=timedelta(minutes=5)) == 0
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_jobs set heartbeat_at = now() - interval '10 minutes' where id = %s",
            (job.id,),
        )
    assert client.reap_stale_jobs(timeout=timedelta(minutes=5)) == 1
    again = client.get_job(job_id=job.id, tenant_id=tenant)
    assert again.status is JobStatus.QUEUED
    assert again.locked_by is None
    assert [j.id for j in client.claim_jobs(worker_id="rescuer")] == [job.id]


def test_cancel_and_reschedule_state_rules(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type)
    later = datetime.now(UTC) + timedelta(hours=1)
    moved = client.reschedule_job(job_id=job.id, tenant_id=tenant, run_at=later)
    assert abs((moved.run_at - later).total_seconds()) < 0.001

    canceled = client.cancel_job(job_id=job.id, tenant_id=tenant)
    assert canceled.status is JobStatus.CANCELED
    with pytest.raises(ConflictError):
        client.cancel_job(job_id=job.id, tenant_id=tenant)
    with pytest.raises(ConflictError):
        client.reschedule_job(job_id=job.id, tenant_id=tenant, run_at=later)
    with pytest.raises(NotFoundError):
        client.cancel_job(job_id=uuid.uuid4(), tenant_id=tenant)


def test_a_canceled_running_job_cannot_be_completed(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type)
    client.claim_jobs(worker_id="w", types=[job_type])
    client.cancel_job(job_id=job.id, tenant_id=tenant)
    with pytest.raises(ConflictError):
        client.complete_job(job_id=job.id, worker_id="w", status="succeeded")


def test_wrong_worker_gets_conflict(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type)
    client.claim_jobs(worker_id="owner", types=[job_type])
    with pytest.raises(ConflictError):
        client.heartbeat_job(job_id=job.id, worker_id="intruder")
    with pytest.raises(ConflictError):
        client.complete_job(job_id=job.id, worker_id="intruder", status="succeeded")
    assert client.get_job(job_id=job.id, tenant_id=tenant).status is JobStatus.RUNNING


def test_server_side_input_errors_name_the_field(client: Any) -> None:
    """Calls that skip the SDK's validation still meet PT400 from the database."""
    tenant = str(uuid.uuid4())
    cases = [
        ({"p_tenant_id": tenant, "p_type": ""}, "type"),
        ({"p_tenant_id": tenant, "p_type": "x" * 256}, "type"),
        ({"p_tenant_id": tenant, "p_type": "ok", "p_max_attempts": 0}, "max_attempts"),
        (
            {"p_tenant_id": tenant, "p_type": "ok", "p_payload": {"b": "x" * (1024 * 1024)}},
            "payload",
        ),
    ]
    for args, field in cases:
        with pytest.raises(InvalidInputError) as info:
            client.transport.call("jobforge_enqueue_job", args)
        assert info.value.field == field, info.value.message
        assert info.value.code == "PT400"
    with pytest.raises(InvalidInputError) as info:
        client.transport.call("jobforge_claim_jobs", {"p_worker_id": "w", "p_limit": 1001})
    assert info.value.field == "limit"
    assert client.list_jobs(tenant_id=tenant) == []


def test_service_role_lists_and_gets_jobs_of_every_tenant_with_tenant_id_none(
    make_client: Callable[..., Any], client: Any, transport_kind: str
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    job_type = _type()
    first = client.enqueue_job(tenant_id=a, type=job_type)
    second = client.enqueue_job(tenant_id=b, type=job_type)
    assert client.list_jobs(tenant_id=None, type=job_type) == [second, first]
    assert client.list_jobs(tenant_id=None, type=job_type, limit=1, offset=1) == [first]
    assert client.get_job(job_id=first.id, tenant_id=None) == first
    assert client.get_job(job_id=uuid.uuid4(), tenant_id=None) is None

    user = make_client(transport_kind, claims=tenant_claims(a, b))
    with pytest.raises(InvalidInputError) as info:
        user.list_jobs(tenant_id=None, type=job_type)
    assert info.value.field == "tenant_id"
    with pytest.raises(InvalidInputError):
        user.get_job(job_id=first.id, tenant_id=None)
    assert user.list_jobs(tenant_id=a, type=job_type) == [first]


def test_malformed_uuid_sent_raw_is_invalid_input(client: Any) -> None:
    with pytest.raises(InvalidInputError):
        client.transport.call(
            "jobforge_get_job", {"p_job_id": "not-a-uuid", "p_tenant_id": str(uuid.uuid4())}
        )


def test_user_clients_are_confined_to_their_tenants(
    make_client: Callable[..., Any], client: Any, transport_kind: str
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    job_type = _type()
    their_job = client.enqueue_job(tenant_id=theirs, type=job_type)
    user = make_client(transport_kind, claims=tenant_claims(mine))

    own = user.enqueue_job(tenant_id=mine, type=job_type)
    assert own.tenant_id == mine
    assert [j.id for j in user.list_jobs(tenant_id=mine)] == [own.id]
    with pytest.raises(PermissionDeniedError):
        user.enqueue_job(tenant_id=theirs, type=job_type)
    with pytest.raises(PermissionDeniedError):
        user.list_jobs(tenant_id=theirs)
    with pytest.raises(PermissionDeniedError):
        user.cancel_job(job_id=their_job.id, tenant_id=theirs)
    with pytest.raises(NotFoundError):
        user.cancel_job(job_id=their_job.id, tenant_id=mine)
    assert user.get_job(job_id=their_job.id, tenant_id=mine) is None
    with pytest.raises(PermissionDeniedError):
        user.claim_jobs(worker_id="sneaky", types=[job_type])
    with pytest.raises(PermissionDeniedError):
        user.reap_stale_jobs()
    assert client.get_job(job_id=their_job.id, tenant_id=theirs).status is JobStatus.QUEUED


def test_complete_jobs_finishes_a_batch_all_or_nothing(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    client.enqueue_jobs(tenant_id=tenant, jobs=[{"type": job_type} for _ in range(3)])
    first, second, third = client.claim_jobs(worker_id="w", limit=3, types=[job_type])
    done = client.complete_jobs(
        worker_id="w",
        results=[
            {"job_id": first.id, "status": "succeeded", "result": {"n": 1}},
            {"job_id": second.id, "status": "failed", "error": {"type": "Boom"}},
        ],
    )
    assert [(j.id, j.status) for j in done] == [
        (first.id, JobStatus.SUCCEEDED),
        (second.id, JobStatus.QUEUED),  # retried later
    ]
    result = client.get_result(job_id=first.id, tenant_id=tenant)
    assert result is not None
    assert result.result == {"n": 1}
    # One job of the batch is no longer held: nothing of the batch is recorded.
    with pytest.raises(ConflictError, match=str(first.id)):
        client.complete_jobs(
            worker_id="w",
            results=[
                {"job_id": third.id, "status": "succeeded"},
                {"job_id": first.id, "status": "succeeded"},
            ],
        )
    still = client.get_job(job_id=third.id, tenant_id=tenant)
    assert still is not None
    assert still.status is JobStatus.RUNNING
    with pytest.raises(InvalidInputError) as info:
        client.transport.call(
            "jobforge_complete_jobs",
            {"p_worker_id": "w", "p_results": [{"job_id": str(third.id), "status": "queued"}]},
        )
    assert info.value.field == "results[0]"


def test_heartbeat_jobs_answers_the_jobs_still_held(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    client.enqueue_jobs(tenant_id=tenant, jobs=[{"type": job_type}] * 2)
    first, second = client.claim_jobs(worker_id="w", limit=2, types=[job_type])
    client.cancel_job(job_id=second.id, tenant_id=tenant)
    assert client.heartbeat_jobs(worker_id="w", job_ids=[first.id, second.id]) == [first.id]
    with pytest.raises(InvalidInputError) as info:
        client.heartbeat_jobs(worker_id="w", job_ids=[])
    assert info.value.field == "job_ids"


def test_release_hands_a_job_back_without_counting_the_attempt(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type)
    client.claim_jobs(worker_id="w", types=[job_type])
    released = client.release_job(job_id=job.id, worker_id="w")
    assert released.status is JobStatus.QUEUED
    assert released.attempts == 0
    assert released.locked_by is None
    with pytest.raises(ConflictError):
        client.release_job(job_id=job.id, worker_id="w")
    assert [j.attempts for j in client.claim_jobs(worker_id="w2", types=[job_type])] == [1]


def test_list_job_attempts_oldest_first_and_only_the_tenants(client: Any) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type, max_attempts=3)
    assert client.list_job_attempts(job_id=job.id, tenant_id=tenant) == []

    worker = f"w-{uuid.uuid4().hex[:8]}"
    [claimed] = client.claim_jobs(worker_id=worker, limit=1, types=[job_type])
    client.complete_job(
        job_id=claimed.id, worker_id=worker, status="failed", error={"message": "boom"}
    )
    [attempt] = client.list_job_attempts(job_id=job.id, tenant_id=tenant)
    assert isinstance(attempt, JobAttemptRow)
    assert (attempt.job_id, attempt.attempt, attempt.worker_id) == (job.id, 1, worker)
    assert attempt.status == "failed"
    assert attempt.error == {"message": "boom"}

    with pytest.raises(NotFoundError):
        client.list_job_attempts(job_id=job.id, tenant_id=other)
    with pytest.raises(NotFoundError):
        client.list_job_attempts(job_id=uuid.uuid4(), tenant_id=tenant)
    with pytest.raises(InvalidInputError) as bad:
        client.list_job_attempts(job_id="not-a-uuid", tenant_id=tenant)
    assert bad.value.field == "job_id"


def test_priority_and_timeout_single_and_batch(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    plain = client.enqueue_job(tenant_id=tenant, type=job_type)
    assert (plain.priority, plain.timeout_ms) == (0, None)
    job = client.enqueue_job(
        tenant_id=tenant, type=job_type, priority=-7, timeout=timedelta(seconds=1.5)
    )
    assert (job.priority, job.timeout_ms) == (-7, 1500)
    rows = client.enqueue_jobs(
        tenant_id=tenant,
        jobs=[
            {"type": job_type},
            {"type": job_type, "priority": 32767, "timeout": timedelta(hours=24)},
            {"type": job_type, "priority": -32768, "timeout": timedelta(microseconds=1000)},
        ],
    )
    assert [(r.priority, r.timeout_ms) for r in rows] == [
        (0, None),
        (32767, 86_400_000),
        (-32768, 1),
    ]
    ids = client.enqueue_job_ids(
        tenant_id=tenant, jobs=[{"type": job_type, "priority": 3, "timeout": timedelta(minutes=1)}]
    )
    [fetched] = [client.get_job(job_id=i, tenant_id=tenant) for i in ids]
    assert (fetched.priority, fetched.timeout_ms) == (3, 60_000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", True),
        ("priority", "5"),
        ("priority", 5.0),
        ("priority", 32768),
        ("priority", -32769),
        ("timeout", 30),
        ("timeout", 1.5),
        ("timeout", "PT30S"),
        ("timeout", True),
        ("timeout", timedelta(0)),
        ("timeout", timedelta(microseconds=999)),
        ("timeout", timedelta(hours=24, milliseconds=1)),
        ("timeout", -timedelta(seconds=1)),
    ],
)
def test_bad_priority_or_timeout_is_refused_naming_the_field(
    client: Any, field: str, value: Any
) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    with pytest.raises(InvalidInputError) as single:
        client.enqueue_job(tenant_id=tenant, type=job_type, **{field: value})
    assert single.value.field == field
    with pytest.raises(InvalidInputError) as batch:
        client.enqueue_jobs(
            tenant_id=tenant, jobs=[{"type": job_type}, {"type": job_type, field: value}]
        )
    assert batch.value.field == f"jobs.1.{field}"
    assert client.list_jobs(tenant_id=tenant) == []


def test_server_side_priority_and_timeout_errors_name_the_field(client: Any) -> None:
    """Calls that skip the SDK's validation still meet PT400 from the database."""
    tenant = str(uuid.uuid4())
    for args, field in [
        ({"p_priority": 40000}, "priority"),
        ({"p_timeout_ms": 0}, "timeout_ms"),
        ({"p_timeout_ms": 86_400_001}, "timeout_ms"),
    ]:
        with pytest.raises(InvalidInputError) as info:
            client.transport.call(
                "jobforge_enqueue_job", {"p_tenant_id": tenant, "p_type": "ok", **args}
            )
        assert info.value.field == field, info.value.message
    specs: list[tuple[dict[str, Any], str]] = [
        ({"priority": True}, "jobs[1].priority"),
        ({"priority": "high"}, "jobs[1].priority"),
        ({"timeout_ms": 2.5}, "jobs[1].timeout_ms"),
        ({"timeout_ms": 0}, "jobs[1].timeout_ms"),
        ({"timeout": 30}, "jobs[1].timeout"),
    ]
    for spec, field in specs:
        with pytest.raises(InvalidInputError) as info:
            client.transport.call(
                "jobforge_enqueue_jobs",
                {"p_tenant_id": tenant, "p_jobs": [{"type": "ok"}, {"type": "ok", **spec}]},
            )
        assert info.value.field == field, info.value.message
    assert client.list_jobs(tenant_id=tenant) == []


def test_reschedule_changes_the_priority(client: Any) -> None:
    tenant = uuid.uuid4()
    job_type = _type()
    job = client.enqueue_job(tenant_id=tenant, type=job_type, priority=1)
    moved = client.reschedule_job(job_id=job.id, tenant_id=tenant, priority=50)
    assert (moved.priority, moved.run_at) == (50, job.run_at)
    with pytest.raises(InvalidInputError) as info:
        client.reschedule_job(job_id=job.id, tenant_id=tenant)
    assert info.value.field == "run_at"
    for bad in (True, 1.0, 32768):
        with pytest.raises(InvalidInputError) as info:
            client.reschedule_job(job_id=job.id, tenant_id=tenant, priority=bad)
        assert info.value.field == "priority"
    with pytest.raises(NotFoundError):
        client.reschedule_job(job_id=job.id, tenant_id=uuid.uuid4(), priority=2)
    assert client.get_job(job_id=job.id, tenant_id=tenant).priority == 50
