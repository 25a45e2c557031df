"""``purge_finished_jobs`` and ``purge_manifests`` through each transport (direct Postgres
and Supabase, sync and async): what goes, what stays, the batch loop, and who may.

Each test has its own database (``fresh_db_url``): a purge deletes across tenants."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from jobforge_sdk import FeatureFlags, InvalidInputError, PermissionDeniedError, PurgeResult
from tests.support.roles import tenant_claims

MANIFESTS_ON = FeatureFlags(manifests=True)


def _finished(client: Any, url: str, status: str, days: int, tenant: uuid.UUID) -> uuid.UUID:
    """A job of ``tenant`` with a manifest, put in ``status`` and dated ``days`` back."""
    job = client.enqueue_job(tenant_id=tenant, type="retention.client")
    client.create_manifest(
        run_id=job.id, tenant_id=tenant, manifest={"job_type": "retention.client"}
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_jobs set status = %s,"
            " finished_at = case when %s in ('queued', 'running') then null"
            " else now() - make_interval(days => %s) end,"
            " created_at = now() - make_interval(days => %s) where id = %s",
            (status, status, days, days, job.id),
        )
    return uuid.UUID(str(job.id))


def _left(url: str, table: str, column: str) -> set[uuid.UUID]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute(f"select {column} from {table}").fetchall()}


def test_purge_finished_jobs_in_batches_keeps_what_is_unfinished_or_recent(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    client = make_client(transport_kind, url=fresh_db_url, flags=MANIFESTS_ON)
    tenant = uuid.uuid4()
    for status in ("succeeded", "dead", "canceled"):
        _finished(client, fresh_db_url, status, 40, tenant)
    kept = {
        _finished(client, fresh_db_url, "queued", 40, tenant),
        _finished(client, fresh_db_url, "succeeded", 5, tenant),
    }
    first = client.purge_finished_jobs(older_than=timedelta(days=30), batch_size=2)
    assert first == PurgeResult(deleted=2, more=True)
    assert client.purge_finished_jobs(older_than=timedelta(days=30), batch_size=2) == PurgeResult(
        deleted=1, more=False
    )
    assert _left(fresh_db_url, "jobforge_jobs", "id") == kept
    assert _left(fresh_db_url, "jobforge_artifact_manifests", "run_id") == kept
    # The default batch is the largest.
    assert client.purge_finished_jobs(older_than=timedelta(days=1)) == PurgeResult(
        deleted=1, more=False
    )


def test_purge_manifests_keeps_the_jobs(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    client = make_client(transport_kind, url=fresh_db_url, flags=MANIFESTS_ON)
    tenant = uuid.uuid4()
    old = _finished(client, fresh_db_url, "succeeded", 100, tenant)
    running = _finished(client, fresh_db_url, "running", 100, tenant)
    result = client.purge_manifests(older_than=timedelta(days=90))
    assert result == PurgeResult(deleted=1, more=False)
    assert _left(fresh_db_url, "jobforge_artifact_manifests", "run_id") == {running}
    assert _left(fresh_db_url, "jobforge_jobs", "id") == {old, running}
    assert client.get_run_manifest(run_id=old, tenant_id=tenant) is None


def test_purges_are_for_the_service_role_and_check_their_input(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    client = make_client(transport_kind, url=fresh_db_url, flags=MANIFESTS_ON)
    tenant = uuid.uuid4()
    job = _finished(client, fresh_db_url, "succeeded", 40, tenant)
    user = make_client(
        transport_kind, url=fresh_db_url, claims=tenant_claims(tenant), flags=MANIFESTS_ON
    )
    with pytest.raises(PermissionDeniedError):
        user.purge_finished_jobs(older_than=timedelta(days=1))
    with pytest.raises(PermissionDeniedError):
        user.purge_manifests(older_than=timedelta(days=1))
    bad: list[tuple[dict[str, Any], str]] = [
        ({"older_than": 30}, "older_than"),
        ({"older_than": timedelta(0)}, "older_than"),
        ({"older_than": timedelta(days=-1)}, "older_than"),
        ({"older_than": timedelta(days=36501)}, "older_than"),
        ({"older_than": timedelta(days=1), "batch_size": 0}, "batch_size"),
        ({"older_than": timedelta(days=1), "batch_size": 10001}, "batch_size"),
        ({"older_than": timedelta(days=1), "batch_size": True}, "batch_size"),
        ({"older_than": timedelta(days=1), "batch_size": "5"}, "batch_size"),
    ]
    for kwargs, field in bad:
        for method in (client.purge_finished_jobs, client.purge_manifests):
            with pytest.raises(InvalidInputError) as info:
                method(**kwargs)
            assert info.value.field == field, (kwargs, info.value)
    assert _left(fresh_db_url, "jobforge_jobs", "id") == {job}
    assert _left(fresh_db_url, "jobforge_artifact_manifests", "run_id") == {job}


def test_events_and_audit_rows_are_purged_in_batches_keeping_younger_ones(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    client = make_client(
        transport_kind, url=fresh_db_url, flags=FeatureFlags(events=True, audit_logging=True)
    )
    tenant = uuid.uuid4()
    events = [
        client.submit_event(tenant_id=tenant, event_type="retention.event", source_app="external")
        for _ in range(4)
    ]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_events set created_at = now() - interval '40 days' where id = any(%s)",
            ([e.id for e in events[:3]],),
        )
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " select %s, 'job_cancel', 'success', now() - make_interval(days => d)"
            " from unnest(array[400, 500, 600, 100]) as d",
            (tenant,),
        )
    audit_before = _left(fresh_db_url, "jobforge_audit_logs", "id")

    assert client.purge_expired_events(retention_days=30, batch_size=2) == PurgeResult(
        deleted=2, more=True
    )
    assert client.purge_expired_events(retention_days=30, batch_size=2) == PurgeResult(
        deleted=1, more=False
    )
    assert _left(fresh_db_url, "jobforge_events", "id") == {events[3].id}

    assert client.purge_audit_logs(retention_days=365, batch_size=2) == PurgeResult(
        deleted=2, more=True
    )
    assert client.purge_audit_logs(retention_days=365, batch_size=2) == PurgeResult(
        deleted=1, more=False
    )
    left = _left(fresh_db_url, "jobforge_audit_logs", "id")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        old = conn.execute(
            "select count(*) from jobforge_audit_logs"
            " where created_at < now() - interval '365 days'"
        ).fetchone()
        purge_rows = conn.execute(
            "select details ->> 'count', details ->> 'more' from jobforge_audit_logs"
            " where action = 'retention_purge' and target_id = 'jobforge_audit_logs'"
            " order by created_at"
        ).fetchall()
    assert old == (0,)
    assert len(audit_before - left) == 3  # the three older than a year, nothing younger
    assert purge_rows == [("2", "true"), ("1", "false")]
    # The default batch is the largest.
    assert client.purge_audit_logs(retention_days=1) == PurgeResult(deleted=1, more=False)


def test_event_and_audit_purges_are_for_the_service_role_and_check_their_input(
    make_client: Callable[..., Any], transport_kind: str, fresh_db_url: str
) -> None:
    flags = FeatureFlags(events=True, audit_logging=True)
    client = make_client(transport_kind, url=fresh_db_url, flags=flags)
    tenant = uuid.uuid4()
    event = client.submit_event(tenant_id=tenant, event_type="retention.e", source_app="external")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("update jobforge_events set created_at = now() - interval '400 days'")
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " values (%s, 'job_cancel', 'success', now() - interval '400 days')",
            (tenant,),
        )
    audit = _left(fresh_db_url, "jobforge_audit_logs", "id")
    user = make_client(transport_kind, url=fresh_db_url, claims=tenant_claims(tenant), flags=flags)
    with pytest.raises(PermissionDeniedError):
        user.purge_expired_events(retention_days=1)
    with pytest.raises(PermissionDeniedError):
        user.purge_audit_logs(retention_days=1)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": -3}, "retention_days"),
        ({"retention_days": 36501}, "retention_days"),
        ({"retention_days": "30"}, "retention_days"),
        ({"retention_days": True}, "retention_days"),
        ({"retention_days": timedelta(days=30)}, "retention_days"),
        ({"retention_days": 30, "batch_size": 0}, "batch_size"),
        ({"retention_days": 30, "batch_size": 10001}, "batch_size"),
        ({"retention_days": 30, "batch_size": True}, "batch_size"),
        ({"retention_days": 30, "batch_size": "5"}, "batch_size"),
    ]
    for kwargs, field in bad:
        for method in (client.purge_expired_events, client.purge_audit_logs):
            with pytest.raises(InvalidInputError) as info:
                method(**kwargs)
            assert info.value.field == field, (kwargs, info.value)
    assert _left(fresh_db_url, "jobforge_events", "id") == {event.id}
    assert _left(fresh_db_url, "jobforge_audit_logs", "id") == audit
