"""Fixtures shared by the area files of ``tests/integration/sql/``.

The shared database (``migrated_db_url``) keeps every template disabled; tests that need
enabled templates use ``enabled_db_url``, a copy of the migrated database with every
template enabled, made once per module that asks for it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import (
    ActAs,
    claim,
    complete,
    enqueue,
    new_tenant,
    new_type,
)
from tests.support.database import Server
from tests.support.roles import RoleSession


@pytest.fixture
def svc(act_as: ActAs) -> RoleSession:
    return act_as("service_role")


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def jtype() -> str:
    return new_type()


@pytest.fixture
def tenant_b(svc: RoleSession) -> dict[str, Any]:
    """Tenant B with a queued job and a succeeded one (with a result, after a failed
    attempt, so B has an attempt row)."""
    tenant, jtype = new_tenant(), new_type()
    done = enqueue(svc, tenant, jtype)
    claim(svc, "w", [jtype])
    complete(svc, done["id"], "w", "failed", p_error={"secret": "of B"}, p_retryable=True)
    svc.call("jobforge_reschedule_job", p_job_id=done["id"], p_tenant_id=tenant, p_run_at="now")
    claim(svc, "w", [jtype])
    complete(svc, done["id"], "w", "succeeded", p_result={"secret": "of B"})
    queued = enqueue(svc, tenant, jtype, p_payload={"secret": "of B"})
    return {"tenant": tenant, "type": jtype, "queued": queued["id"], "done": done["id"]}


@pytest.fixture(scope="module")
def enabled_db_url(pg_server: Server, copy_template: Callable[[str], str]) -> Iterator[str]:
    """A copy of the migrated database with every template enabled, for this module."""
    name = f"jobforge_test_enabled_{os.getpid()}_{secrets.token_hex(4)}"
    url = copy_template(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("update public.jobforge_job_templates set enabled = true")
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def enabled_admin(enabled_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(enabled_db_url, autocommit=True) as conn:
        yield conn
