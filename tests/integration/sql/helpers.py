"""Helpers shared by the SQL-level tests of ``tests/integration/sql/``.

Calls go through ``RoleSession`` (``tests/support/roles.py``), the way PostgREST makes
them. The core queue helpers (``enqueue``, ``claim``, ...) take tenants as text; the
execution plane helpers (``submit``, ``make_trigger``, ...) take ``uuid.UUID``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.support.roles import RoleSession

ActAs = Callable[..., RoleSession]

# The tenant and worker RPCs of the core queue (20_jobs.sql, 25_workers.sql), and its
# tables.
TENANT_RPCS = (
    "jobforge_enqueue_job",
    "jobforge_enqueue_jobs",
    "jobforge_cancel_job",
    "jobforge_retry_job",
    "jobforge_retry_dead_jobs",
    "jobforge_reschedule_job",
    "jobforge_list_jobs",
    "jobforge_get_job",
    "jobforge_get_result",
    "jobforge_list_job_attempts",
)
WORKER_RPCS = (
    "jobforge_claim_jobs",
    "jobforge_heartbeat_job",
    "jobforge_complete_job",
    "jobforge_reap_stale_jobs",
)
TABLES = (
    "jobforge_jobs",
    "jobforge_job_attempts",
    "jobforge_connector_configs",
)

ACTION = "autopilot.ops.apply"
ACTION_INPUTS = {"recommendation_id": "rec-1", "plan": {"steps": [{"resize": "disk-1"}]}}
SCAN = "autopilot.ops.scan"


# -- core queue -------------------------------------------------------------------------


def new_type() -> str:
    return f"t.{uuid.uuid4().hex}"


def new_tenant() -> str:
    return str(uuid.uuid4())


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def expect_error(sqlstate: str, prefix: str, session: RoleSession, fn: str, /, **args: Any) -> str:
    """Call ``fn``; assert it fails with ``sqlstate`` and a message starting with ``prefix``."""
    with pytest.raises(psycopg.Error) as info:
        session.call(fn, **args)
    message = info.value.diag.message_primary or ""
    assert info.value.sqlstate == sqlstate, f"{info.value.sqlstate}: {message}"
    assert message.startswith(prefix), message
    return message


def enqueue(session: RoleSession, tenant: str, jtype: str, **args: Any) -> dict[str, Any]:
    job: dict[str, Any] = session.call(
        "jobforge_enqueue_job", p_tenant_id=tenant, p_type=jtype, **args
    )
    return job


def claim(
    session: RoleSession, worker: str, types: list[str] | None, limit: int = 10
) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = session.call(
        "jobforge_claim_jobs", p_worker_id=worker, p_limit=limit, p_types=types
    )
    return jobs


def complete(
    session: RoleSession, job_id: str, worker: str, status: str, **args: Any
) -> dict[str, Any]:
    job: dict[str, Any] = session.call(
        "jobforge_complete_job", p_job_id=job_id, p_worker_id=worker, p_status=status, **args
    )
    return job


def job_row(conn: psycopg.Connection[Any], job_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "select to_jsonb(j) from public.jobforge_jobs j where j.id = %s", (job_id,)
    ).fetchone()
    return row[0] if row else None


def attempts_of(conn: psycopg.Connection[Any], job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select to_jsonb(a) from public.jobforge_job_attempts a where a.job_id = %s"
        " order by a.attempt, a.finished_at",
        (job_id,),
    ).fetchall()
    return [r[0] for r in rows]


def tenant_rows(conn: psycopg.Connection[Any], tenant: str) -> dict[str, list[Any]]:
    """Every row of every table that belongs to ``tenant``, as JSON, to compare states."""
    return {
        table: [
            r[0]
            for r in conn.execute(
                f"select to_jsonb(t) from public.{table} t where t.tenant_id = %s order by t.id",
                (tenant,),
            ).fetchall()
        ]
        for table in TABLES
    }


def count_jobs(conn: psycopg.Connection[Any], tenant: str) -> int:
    row = conn.execute(
        "select count(*) from public.jobforge_jobs where tenant_id = %s", (tenant,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def tenant_facing_calls(tenant: str, job_id: str, jtype: str) -> dict[str, dict[str, Any]]:
    """Well-formed calls of every tenant RPC of the core queue, acting for ``tenant``."""
    return {
        "jobforge_enqueue_job": {"p_tenant_id": tenant, "p_type": jtype},
        "jobforge_enqueue_jobs": {"p_tenant_id": tenant, "p_jobs": [{"type": jtype}]},
        "jobforge_list_jobs": {"p_tenant_id": tenant, "p_filters": {}},
        "jobforge_get_job": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_get_result": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_list_job_attempts": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_cancel_job": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_retry_job": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_retry_dead_jobs": {"p_tenant_id": tenant, "p_type": jtype},
        "jobforge_reschedule_job": {
            "p_job_id": job_id,
            "p_tenant_id": tenant,
            "p_run_at": datetime.now(UTC),
        },
    }


# -- catalog ----------------------------------------------------------------------------


def signatures(conn: psycopg.Connection[Any], where: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select p.oid::regprocedure::text,"
        " 'select ' || p.oid::regproc::text || '(' || coalesce(("
        "   select string_agg('null::' || format_type(t, null), ', ' order by n)"
        "   from unnest(p.proargtypes::oid[]) with ordinality as a(t, n)), '') || ')'"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        f" where {where} order by 1"
    ).fetchall()
    return [(str(sig), str(call)) for sig, call in rows]


# -- execution plane --------------------------------------------------------------------


@contextmanager
def sql_error(sqlstate: str, fragment: str | None = None) -> Iterator[Any]:
    """Expect a database error with this SQLSTATE (and message fragment)."""
    with pytest.raises(psycopg.Error) as info:
        yield info
    assert info.value.sqlstate == sqlstate, (info.value.sqlstate, str(info.value))
    if fragment is not None:
        assert fragment in str(info.value.diag.message_primary), str(info.value)


def count(conn: psycopg.Connection[Any], sql: str, *params: Any) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def audit_rows(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> list[dict[str, Any]]:
    cur = conn.execute(
        "select to_jsonb(a) from public.jobforge_audit_logs a where a.tenant_id = %s"
        " order by a.created_at, a.id",
        (tenant,),
    )
    return [row[0] for row in cur.fetchall()]


def make_trigger(session: RoleSession, tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "p_tenant_id": tenant,
        "p_name": f"trigger-{uuid.uuid4().hex[:8]}",
        "p_trigger_type": "event",
        "p_target_template_key": SCAN,
        "p_event_type_filter": "infrastructure.*",
        "p_target_inputs": {"target": "db-1"},
        "p_enabled": True,
    }
    args.update(overrides)
    trigger: dict[str, Any] = session.call("jobforge_create_trigger", **args)
    return trigger


def submit(session: RoleSession, tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "p_tenant_id": tenant,
        "p_event_type": "infrastructure.disk_full",
        "p_source_app": "settler",
        "p_payload": {"host": "db-1"},
    }
    args.update(overrides)
    event: dict[str, Any] = session.call("jobforge_submit_event", **args)
    return event


def jobs_of(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> list[dict[str, Any]]:
    cur = conn.execute(
        "select to_jsonb(j) from public.jobforge_jobs j where j.tenant_id = %s"
        " order by j.created_at, j.id",
        (tenant,),
    )
    return [row[0] for row in cur.fetchall()]


# The execution plane's service-role-only RPCs, with well-formed arguments.
SERVICE_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("jobforge_set_template_enabled", {"p_template_key": SCAN, "p_enabled": True}),
    ("jobforge_add_policy_key", {"p_kid": "k", "p_secret": "x" * 40}),
    ("jobforge_retire_policy_key", {"p_kid": "k"}),
    (
        "jobforge_create_manifest",
        {"p_run_id": uuid.uuid4(), "p_tenant_id": uuid.uuid4(), "p_manifest": {}},
    ),
    (
        "jobforge_fire_cron_trigger",
        {"p_trigger_id": uuid.uuid4(), "p_scheduled_for": datetime(2030, 1, 1, tzinfo=UTC)},
    ),
    ("jobforge_purge_expired_events", {"p_retention_days": 30}),
    ("jobforge_purge_audit_logs", {"p_retention_days": 365}),
    ("jobforge_purge_finished_jobs", {"p_older_than": "30 days"}),
    ("jobforge_purge_manifests", {"p_older_than": "90 days"}),
]
