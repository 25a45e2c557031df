"""A trigger's jobs follow their template as request_job's do (60_triggers.sql): the
template's priority and timeout, and its required connectors, which skip a fire (audited,
with the connector as the reason) rather than fail the scheduler's tick."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from tests.integration.sql.helpers import SCAN, ActAs, make_trigger


def _fire(svc: Any, trigger_id: str, hour: int) -> dict[str, Any]:
    result: dict[str, Any] = svc.call(
        "jobforge_fire_cron_trigger",
        p_trigger_id=trigger_id,
        p_scheduled_for=datetime(2026, 3, 1, hour, tzinfo=UTC),
    )
    return result


def test_fired_jobs_take_the_templates_priority_timeout_and_connectors(
    act_as: ActAs, fresh_db_url: str
) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant = uuid.uuid4()
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        admin.execute(
            "update public.jobforge_job_templates"
            " set enabled = true, default_priority = 7, default_timeout_ms = 90000,"
            " required_connectors = '{aws}' where template_key = %s",
            (SCAN,),
        )
        trigger = make_trigger(
            svc,
            tenant,
            p_trigger_type="cron",
            p_cron_expression="0 * * * *",
            p_event_type_filter=None,
        )

        skipped = _fire(svc, trigger["id"], 1)
        assert (skipped["fired"], skipped["reason"]) == (False, "connector aws not configured")
        audit = admin.execute(
            "select outcome, reason from public.jobforge_audit_logs"
            " where tenant_id = %s and action = 'trigger_fire'",
            (tenant,),
        ).fetchall()
        assert audit == [("skipped", "connector aws not configured")]

        svc.call(
            "jobforge_set_connector_config",
            p_tenant_id=tenant,
            p_connector_type="aws",
            p_enabled=True,
        )
        fired = _fire(svc, trigger["id"], 2)
        assert fired["fired"] is True
        job = admin.execute(
            "select priority, timeout_ms from public.jobforge_jobs where id = %s",
            (fired["job"]["id"],),
        ).fetchone()
        assert job == (7, 90000)
