"""``retry_job`` and ``retry_dead_jobs`` through each transport (direct Postgres and
Supabase, sync and async): the ``client`` fixture runs each test four times."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from jobforge_sdk import (
    ConflictError,
    FeatureFlags,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from jobforge_sdk.models import JobRow, JobStatus
from tests.support.roles import tenant_claims


def _type() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def _dead(client: Any, tenant: uuid.UUID, job_type: str) -> JobRow:
    job = client.enqueue_job(tenant_id=tenant, type=job_type, max_attempts=1)
    client.claim_jobs(worker_id="w", types=[job_type])
    dead: JobRow = client.complete_job(
        job_id=job.id, worker_id="w", status="failed", error={"message": "boom"}
    )
    assert dead.status is JobStatus.DEAD
    return dead


@pytest.fixture
def audited(make_client: Callable[..., Any], transport_kind: str) -> Any:
    """A service-role client that reads the audit trail (gated by its flag)."""
    return make_client(transport_kind, flags=FeatureFlags(audit_logging=True))


def test_retry_job_requeues_the_same_job(client: Any, audited: Any) -> None:
    tenant, job_type = uuid.uuid4(), _type()
    dead = _dead(client, tenant, job_type)

    job = client.retry_job(tenant_id=tenant, job_id=dead.id, actor_id="ops@example.com")

    assert isinstance(job, JobRow)
    assert (job.id, job.status, job.attempts, job.error) == (dead.id, JobStatus.QUEUED, 0, None)
    assert job.finished_at is None
    assert client.get_job(job_id=dead.id, tenant_id=tenant) == job
    (entry,) = audited.list_audit_logs(tenant_id=tenant, action="job_retry")
    assert (entry.actor_id, entry.target_id) == ("ops@example.com", str(dead.id))

    with pytest.raises(ConflictError, match="is queued"):
        client.retry_job(tenant_id=tenant, job_id=dead.id)
    with pytest.raises(NotFoundError):
        client.retry_job(tenant_id=tenant, job_id=uuid.uuid4())


def test_retry_dead_jobs_answers_the_ids(client: Any) -> None:
    tenant, job_type = uuid.uuid4(), _type()
    dead = {_dead(client, tenant, job_type).id for _ in range(3)}
    other = _dead(client, tenant, _type())

    first = client.retry_dead_jobs(tenant_id=tenant, type=job_type, limit=2)
    assert len(first) == 2
    assert set(first) <= dead
    rest = client.retry_dead_jobs(tenant_id=tenant, type=job_type)
    assert set(first) | set(rest) == dead
    assert client.retry_dead_jobs(tenant_id=tenant, type=job_type) == []
    assert client.retry_dead_jobs(tenant_id=tenant) == [other.id]
    assert {j.status for j in client.list_jobs(tenant_id=tenant)} == {JobStatus.QUEUED}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": True}, "limit"),
        ({"type": ""}, "type"),
        ({"actor_id": ""}, "actor_id"),
        ({"tenant_id": "not-a-uuid"}, "tenant_id"),
    ],
)
def test_retry_dead_jobs_refuses_bad_input_before_io(
    client: Any, kwargs: dict[str, Any], field: str
) -> None:
    tenant = uuid.uuid4()
    with pytest.raises(InvalidInputError) as info:
        client.retry_dead_jobs(**{"tenant_id": tenant, **kwargs})
    assert info.value.field == field


def test_retry_database_refuses_bad_input_sent_raw(client: Any) -> None:
    """Calls that skip the SDK's validation meet the same rules in the database."""
    tenant = str(uuid.uuid4())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("jobforge_retry_dead_jobs", {"p_tenant_id": tenant, "p_limit": 0}, "limit"),
        ("jobforge_retry_dead_jobs", {"p_tenant_id": tenant, "p_limit": 100000}, "limit"),
        ("jobforge_retry_dead_jobs", {"p_tenant_id": tenant, "p_type": ""}, "type"),
        ("jobforge_retry_job", {"p_tenant_id": tenant, "p_job_id": None}, "job_id"),
    ]
    for fn, args, field in cases:
        with pytest.raises(InvalidInputError) as info:
            client.transport.call(fn, args)
        assert info.value.field == field, info.value.message


def test_a_user_retries_only_its_own_tenants_jobs(
    make_client: Callable[..., Any], client: Any, audited: Any, transport_kind: str
) -> None:
    mine, theirs, job_type = uuid.uuid4(), uuid.uuid4(), _type()
    their_dead = _dead(client, theirs, job_type)
    my_dead = _dead(client, mine, job_type)
    user = make_client(transport_kind, claims=tenant_claims(mine, sub="user-1"))

    with pytest.raises(PermissionDeniedError):
        user.retry_job(tenant_id=theirs, job_id=their_dead.id)
    with pytest.raises(PermissionDeniedError):
        user.retry_dead_jobs(tenant_id=theirs)
    with pytest.raises(NotFoundError):
        user.retry_job(tenant_id=mine, job_id=their_dead.id)
    assert user.retry_dead_jobs(tenant_id=mine) == [my_dead.id]
    assert client.get_job(job_id=their_dead.id, tenant_id=theirs).status is JobStatus.DEAD
    (entry,) = audited.list_audit_logs(tenant_id=mine, action="job_retry")
    assert entry.actor_id == "user-1"
