"""Two ways around the execution plane's checks, closed in the database:

* a direct enqueue of an ``autopilot.*`` type would skip the template's enabled flag, input
  checks, policy token and audit row, so the public enqueue RPCs refuse that namespace;
* a tenant user reading ``jobforge_events`` directly (RLS shows their rows) would see
  payload fields marked for redaction, so ``authenticated`` has no SELECT on ``payload``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.support.roles import RoleSession, tenant_claims

ActAs = Callable[..., RoleSession]


@pytest.mark.parametrize("role", ["service_role", "authenticated"])
def test_autopilot_types_cannot_be_enqueued_directly(
    act_as: ActAs, admin_conn: psycopg.Connection[Any], role: str
) -> None:
    tenant = uuid.uuid4()
    caller = act_as(role, tenant_claims(tenant) if role == "authenticated" else None)
    with pytest.raises(psycopg.Error) as single:
        caller.call(
            "jobforge_enqueue_job",
            p_tenant_id=str(tenant),
            p_type="autopilot.ops.apply",
            p_payload={"recommendation_id": "r", "plan": {}},
        )
    assert single.value.sqlstate == "PT400"
    assert str(single.value.diag.message_primary).startswith("type: autopilot.* jobs")
    with pytest.raises(psycopg.Error) as batch:
        caller.call(
            "jobforge_enqueue_jobs",
            p_tenant_id=str(tenant),
            p_jobs=[{"type": "ok.job"}, {"type": "autopilot.ops.scan"}],
        )
    assert batch.value.sqlstate == "PT400"
    assert str(batch.value.diag.message_primary).startswith("jobs[1].type:")
    count = admin_conn.execute(
        "select count(*) from jobforge_jobs where tenant_id = %s", (tenant,)
    ).fetchone()
    assert count == (0,)


def test_tenant_users_cannot_read_raw_event_payloads_from_the_table(
    act_as: ActAs, admin_conn: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    service = act_as("service_role")
    service.call(
        "jobforge_submit_event",
        p_tenant_id=str(tenant),
        p_event_type="support.ticket_opened",
        p_source_app="aias",
        p_payload={"email": "secret@example.com"},
        p_redaction_hints={"redact_fields": ["email"]},
    )
    user = act_as("authenticated", tenant_claims(tenant))
    rows = user.query("select event_type, contains_pii from jobforge_events")
    assert rows == [("support.ticket_opened", False)]
    with pytest.raises(psycopg.Error) as denied:
        user.query("select payload from jobforge_events")
    assert denied.value.sqlstate == "42501"
    with pytest.raises(psycopg.Error):
        user.query("select * from jobforge_events")
    listed = user.call("jobforge_list_events", p_tenant_id=str(tenant))
    assert listed[0]["payload"] == {"email": "[REDACTED]"}
    raw = service.query("select payload from jobforge_events where tenant_id = %s", (tenant,))
    assert raw == [({"email": "secret@example.com"},)]
