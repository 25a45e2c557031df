"""``set_limit``, ``list_limits`` and ``delete_limit`` through each transport (direct
Postgres and Supabase, sync and async: the ``client`` fixture runs each test four times),
and a claim keeping a limit and an order set through the client. The claim's own rules
are tested in ``sql/test_fair_claims.py``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from jobforge_sdk import InvalidInputError, JobLimit, NotFoundError, PermissionDeniedError
from jobforge_sdk.models import CostTier
from tests.support.roles import tenant_claims


def _type() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def test_a_limit_set_listed_kept_by_claims_and_deleted(client: Any) -> None:
    tenant, job_type = uuid.uuid4(), _type()
    client.enqueue_jobs(tenant_id=tenant, jobs=[{"type": job_type} for _ in range(6)])

    limit = client.set_limit(type=job_type, tenant_id=tenant, max_running=2, actor_id="ops")
    assert isinstance(limit, JobLimit)
    assert (limit.type, limit.tenant_id, limit.max_running, limit.running) == (
        job_type,
        tenant,
        2,
        0,
    )
    assert len(client.claim_jobs(worker_id="w", types=[job_type], limit=10)) == 2
    assert client.claim_jobs(worker_id="w", types=[job_type], limit=10) == []
    (listed,) = client.list_limits(type=job_type)
    assert (listed.id, listed.running) == (limit.id, 2)

    deleted = client.delete_limit(type=job_type, tenant_id=tenant)
    assert deleted.id == limit.id
    assert client.list_limits(tenant_id=tenant) == []
    assert len(client.claim_jobs(worker_id="w", types=[job_type], limit=10)) == 4
    with pytest.raises(NotFoundError):
        client.delete_limit(type=job_type, tenant_id=tenant)


def test_a_rate_limit_and_the_cost_tiers(client: Any) -> None:
    job_type = _type()
    limit = client.set_limit(type=job_type, max_starts=3, per=timedelta(minutes=1))
    assert (limit.max_starts, limit.per_seconds, limit.max_running) == (3, 60, None)
    client.delete_limit(type=job_type)

    tiers = {item.cost_tier: item.max_running for item in client.list_limits() if item.cost_tier}
    assert tiers[CostTier.HIGH] == 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_running": 1}, "type"),
        ({"type": "", "max_running": 1}, "type"),
        ({"type": "t", "max_running": -1}, "max_running"),
        ({"type": "t", "max_running": True}, "max_running"),
        ({"type": "t", "max_running": "3"}, "max_running"),
        ({"type": "t", "max_running": 10**7}, "max_running"),
        ({"type": "t"}, "max_running"),
        ({"type": "t", "max_starts": 5}, "per"),
        ({"type": "t", "per": timedelta(seconds=5)}, "max_starts"),
        ({"type": "t", "max_starts": 5, "per": timedelta(seconds=1.5)}, "per"),
        ({"type": "t", "max_starts": 5, "per": timedelta(days=2)}, "per"),
        ({"type": "t", "max_starts": 5, "per": 60}, "per"),
        ({"cost_tier": "huge", "max_running": 1}, "cost_tier"),
        ({"cost_tier": "high", "type": "t", "max_running": 1}, "cost_tier"),
        ({"tenant_id": "not-a-uuid", "max_running": 1}, "tenant_id"),
        ({"type": "t", "max_running": 1, "surprise": 1}, "surprise"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    client: Any, kwargs: dict[str, Any], field: str
) -> None:
    before = client.list_limits()
    with pytest.raises((InvalidInputError, TypeError)) as info:
        client.set_limit(**kwargs)
    if isinstance(info.value, InvalidInputError):
        assert info.value.field == field, info.value
    else:
        assert field in str(info.value)
    assert client.list_limits() == before


def test_tenant_users_cannot_manage_limits(
    make_client: Callable[..., Any], transport_kind: str
) -> None:
    tenant = uuid.uuid4()
    user = make_client(transport_kind, claims=tenant_claims(tenant, sub="user-1"))
    with pytest.raises(PermissionDeniedError):
        user.set_limit(tenant_id=tenant, max_running=100)
    with pytest.raises(PermissionDeniedError):
        user.list_limits(tenant_id=tenant)
    with pytest.raises(PermissionDeniedError):
        user.delete_limit(tenant_id=tenant)
