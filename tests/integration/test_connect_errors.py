"""A database that cannot be reached fails the first call at once, saying why.

Without the check a wrong URL cost the pool's whole timeout (30 s by default), a burst of
pool warnings, and a ``TransportError`` that only said it had timed out. The pool timeout
is left at its default here, so a test that waited for it would hit the pytest timeout.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import psycopg
import pytest

from jobforge_sdk import AsyncJobForgeClient, ConfigurationError, JobForgeClient, TransportError

TENANT = uuid.uuid4()
REFUSED = "postgresql://postgres@127.0.0.1:1/postgres"


def _elsewhere(url: str, **changes: Any) -> str:
    return psycopg.conninfo.make_conninfo(url, **changes)


def _cases(fresh_db_url: str) -> list[tuple[str, str]]:
    return [
        (REFUSED, 'connection to server at "127.0.0.1", port 1 failed: Connection refused'),
        (
            _elsewhere(fresh_db_url, dbname="jobforge_no_such_database"),
            'database "jobforge_no_such_database" does not exist',
        ),
        (
            _elsewhere(fresh_db_url, user="jobforge_no_such_role", password="pw-hidden-42"),
            'role "jobforge_no_such_role" does not exist',
        ),
    ]


def _pool_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")]


@pytest.mark.timeout(20)
def test_the_sync_client_names_the_cause(
    fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    for url, cause in _cases(fresh_db_url):
        client = JobForgeClient.from_postgres(url)
        with caplog.at_level(logging.WARNING), pytest.raises(TransportError) as info:
            client.list_jobs(tenant_id=TENANT)
        message = str(info.value)
        assert message.startswith("cannot connect to the database: ")
        assert cause in message
        assert "pw-hidden-42" not in message
        assert info.value.retryable  # nothing ran
        # Left closed: no pool worker keeps retrying, and the next call checks again.
        assert client.transport.pool.closed  # type: ignore[attr-defined]
        with pytest.raises(TransportError, match=cause):
            client.list_jobs(tenant_id=TENANT)
        client.close()
    assert _pool_warnings(caplog) == []


@pytest.mark.timeout(20)
def test_the_async_client_names_the_cause(
    fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def attempt(url: str) -> TransportError:
        client = AsyncJobForgeClient.from_postgres(url)
        try:
            with pytest.raises(TransportError) as info:
                await client.list_jobs(tenant_id=TENANT)
            assert client.transport.pool.closed  # type: ignore[attr-defined]
            return info.value
        finally:
            await client.close()

    for url, cause in _cases(fresh_db_url):
        with caplog.at_level(logging.WARNING):
            error = asyncio.run(attempt(url))
        assert str(error).startswith("cannot connect to the database: ")
        assert cause in str(error)
        assert "pw-hidden-42" not in str(error)
    assert _pool_warnings(caplog) == []


@pytest.mark.timeout(20)
def test_a_malformed_url_is_a_configuration_error() -> None:
    client = JobForgeClient.from_postgres("not a url")
    with pytest.raises(ConfigurationError, match="invalid database URL"):
        client.get_job(job_id=uuid.uuid4(), tenant_id=TENANT)


def test_a_good_url_still_works_for_both_clients(fresh_db_url: str) -> None:
    with JobForgeClient.from_postgres(fresh_db_url) as client:
        job = client.enqueue_job(tenant_id=TENANT, type="connect.ok")
        assert client.get_job(job_id=job.id, tenant_id=TENANT) is not None

    async def go() -> None:
        aclient = AsyncJobForgeClient.from_postgres(fresh_db_url)
        try:
            # Calls racing to open the pool: one check, one pool, every call answered.
            rows = await asyncio.gather(
                *(aclient.get_job(job_id=job.id, tenant_id=TENANT) for _ in range(5))
            )
            assert all(r is not None and r.id == job.id for r in rows)
        finally:
            await aclient.close()

    asyncio.run(go())
