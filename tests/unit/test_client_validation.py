"""Bad input is refused before any I/O: these clients point at a port nobody listens on,
so reaching the network would raise TransportError instead of InvalidInputError."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from jobforge_sdk import (
    AsyncJobForgeClient,
    ConfigurationError,
    InvalidInputError,
    JobForgeClient,
    TransportError,
)
from jobforge_sdk.flags import FeatureFlags

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
TENANT = str(uuid.uuid4())

BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("enqueue_job", {"tenant_id": "not-a-uuid", "type": "t"}, "tenant_id"),
    ("enqueue_job", {"tenant_id": TENANT, "type": ""}, "type"),
    ("enqueue_job", {"tenant_id": TENANT, "type": "x" * 256}, "type"),
    ("enqueue_job", {"tenant_id": TENANT, "type": "t", "max_attempts": 0}, "max_attempts"),
    ("enqueue_job", {"tenant_id": TENANT, "type": "t", "max_attempts": 101}, "max_attempts"),
    ("enqueue_job", {"tenant_id": TENANT, "type": "t", "payload": {"b": "x" * 1048577}}, "payload"),
    ("enqueue_job", {"tenant_id": TENANT, "type": 7}, "type"),
    ("enqueue_jobs", {"tenant_id": TENANT, "jobs": []}, "jobs"),
    ("enqueue_jobs", {"tenant_id": TENANT, "jobs": [{"type": "t"}] * 1001}, "jobs"),
    ("enqueue_jobs", {"tenant_id": TENANT, "jobs": [{"type": "t"}, {"type": ""}]}, "jobs.1.type"),
    ("enqueue_jobs", {"tenant_id": TENANT, "jobs": [{"type": "t", "bogus": 1}]}, "jobs.0.bogus"),
    ("claim_jobs", {"worker_id": "w", "limit": 0}, "limit"),
    ("claim_jobs", {"worker_id": "w", "limit": 1001}, "limit"),
    ("claim_jobs", {"worker_id": ""}, "worker_id"),
    ("complete_job", {"job_id": str(uuid.uuid4()), "worker_id": "w", "status": "queued"}, "status"),
    ("reap_stale_jobs", {"timeout": timedelta(0)}, "timeout"),
    ("list_jobs", {"tenant_id": TENANT, "status": "sleeping"}, "status"),
    ("list_jobs", {"tenant_id": TENANT, "offset": -1}, "offset"),
    ("get_job", {"job_id": "'; drop table jobforge_jobs; --", "tenant_id": TENANT}, "job_id"),
]


@pytest.mark.parametrize(("method", "kwargs", "field"), BAD_CALLS)
def test_sync_client_refuses_before_io(method: str, kwargs: dict[str, Any], field: str) -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE, timeout=1)
    with pytest.raises(InvalidInputError) as info:
        getattr(client, method)(**kwargs)
    assert info.value.field == field
    assert info.value.message.startswith(f"{field}:")
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "kwargs", "field"), BAD_CALLS[:4])
def test_async_client_refuses_before_io(method: str, kwargs: dict[str, Any], field: str) -> None:
    client = AsyncJobForgeClient.from_postgres(UNREACHABLE, timeout=1)

    async def go() -> None:
        with pytest.raises(InvalidInputError) as info:
            await getattr(client, method)(**kwargs)
        assert info.value.field == field

    asyncio.run(go())


def test_unknown_keyword_is_a_type_error() -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE)
    with pytest.raises(TypeError):
        client.enqueue_job(tenant_id=TENANT, type="t", typo=1)  # type: ignore[call-arg]


def test_unreachable_database_is_a_transport_error() -> None:
    with (
        JobForgeClient.from_postgres(UNREACHABLE, timeout=1) as client,
        pytest.raises(TransportError),
    ):
        client.list_jobs(tenant_id=TENANT)


def test_unreachable_supabase_is_a_transport_error() -> None:
    with (
        JobForgeClient.from_supabase("http://127.0.0.1:1", "key", timeout=1) as client,
        pytest.raises(TransportError) as info,
    ):
        client.list_jobs(tenant_id=TENANT)
    assert info.value.retryable


def test_with_claims_needs_a_postgres_transport() -> None:
    with (
        JobForgeClient.from_supabase("http://127.0.0.1:1", "key") as client,
        pytest.raises(ConfigurationError),
    ):
        client.with_claims({"role": "authenticated"})


def test_action_jobs_without_a_secret_is_a_configuration_error() -> None:
    flags = FeatureFlags(action_jobs=True, require_policy_tokens=True, policy_token_secret=None)
    with pytest.raises(ConfigurationError, match="POLICY_TOKEN_SECRET"):
        JobForgeClient.from_postgres(UNREACHABLE, flags=flags)


def test_from_env_without_configuration_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("JOBFORGE_DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError, match="JOBFORGE_DATABASE_URL"):
        JobForgeClient.from_env()


def test_from_env_prefers_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_DATABASE_URL", UNREACHABLE)
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", "true")
    with JobForgeClient.from_env() as client:
        assert client.flags.events is True
        assert type(client.transport).__name__ == "PostgresTransport"


def test_the_supabase_transport_builds_without_deprecation_warnings() -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = JobForgeClient.from_supabase("http://127.0.0.1:1", "key", timeout=1)
        with pytest.raises(TransportError):
            client.list_jobs(tenant_id=TENANT)
        client.close()
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []
