"""``supabase/schema/60_triggers.sql``: cron and event triggers, called as each role.

The end-to-end test goes from an enabled template and an event trigger through the
event, the job it fires, a direct request and the run's manifest. The shared database
keeps every template disabled; tests that need enabled templates use ``enabled_db_url``
or ``fresh_db_url``.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.integration.sql.helpers import (
    ACTION,
    SCAN,
    ActAs,
    audit_rows,
    count,
    jobs_of,
    make_trigger,
    sql_error,
    submit,
)
from tests.support.roles import RoleSession, tenant_claims


def test_end_to_end_event_trigger_request_and_manifest(act_as: ActAs, fresh_db_url: str) -> None:
    sr = act_as("service_role", url=fresh_db_url)
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant, sub="user-e2e"), url=fresh_db_url)

    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        assert count(admin, "select count(*) from jobforge_job_templates where enabled") == 0

        template = sr.call(
            "jobforge_set_template_enabled",
            p_template_key=SCAN,
            p_enabled=True,
            p_actor_id="admin-1",
        )
        assert template["enabled"] is True
        assert template["template_key"] == SCAN
        row = admin.execute(
            "select actor_id, outcome, details from jobforge_audit_logs"
            " where action = 'template_update' and target_id = %s",
            (SCAN,),
        ).fetchone()
        assert row == ("admin-1", "success", {"enabled": True, "previous_enabled": False})

        trigger = make_trigger(user, tenant, p_name="scan on infrastructure events")
        assert trigger["enabled"] is True
        assert trigger["fire_count"] == 0

        event = submit(
            user,
            tenant,
            p_trace_id="trace-e2e",
            p_actor_id="user-e2e",
            p_subject_type="host",
            p_subject_id="db-1",
        )
        assert event["processed"] is True
        assert event["processed_at"] is not None

        jobs = jobs_of(admin, tenant)
        assert len(jobs) == 1
        job = jobs[0]
        assert event["processing_job_id"] == job["id"]
        assert job["type"] == SCAN
        assert job["max_attempts"] == 3  # the template's default_max_attempts
        assert job["idempotency_key"] == f"trigger:{trigger['id']}:event:{event['id']}"
        assert job["payload"] == {
            "template_key": SCAN,
            "inputs": {"target": "db-1"},
            "trace_id": "trace-e2e",
            "actor_id": "user-e2e",
            "project_id": None,
            "event_id": event["id"],
            "trigger_id": trigger["id"],
        }

        fired = admin.execute(
            "select fire_count, last_job_id, last_fired_at is not null"
            " from jobforge_triggers where id = %s",
            (trigger["id"],),
        ).fetchone()
        assert fired == (1, uuid.UUID(job["id"]), True)
        fires = admin.execute(
            "select fire_key, job_id, dry_run from jobforge_private.trigger_fires"
            " where trigger_id = %s",
            (trigger["id"],),
        ).fetchall()
        assert fires == [(f"event:{event['id']}", uuid.UUID(job["id"]), False)]

        # The same event again: the stored row, no job, no audit row.
        audits_before = len(audit_rows(admin, tenant))
        again = submit(
            user,
            tenant,
            p_trace_id="trace-e2e",
            p_occurred_at=event["occurred_at"],
            p_payload={"different": True},
        )
        assert again == event
        assert len(jobs_of(admin, tenant)) == 1
        assert len(audit_rows(admin, tenant)) == audits_before

        # An event the filter does not match: no job, not processed.
        other = submit(user, tenant, p_event_type="billing.invoice_paid")
        assert other["processed"] is False
        assert other["processing_job_id"] is None
        assert len(jobs_of(admin, tenant)) == 1

        requested = user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": "db-2", "checks": ["disk"], "depth": 2},
            p_trace_id="trace-req",
            p_idempotency_key="req-1",
        )
        assert requested["dry_run"] is False
        assert requested["would_enqueue"] is None
        assert requested["trace_id"] == "trace-req"
        assert requested["template_key"] == SCAN
        run = requested["job"]
        assert run["type"] == SCAN
        assert run["status"] == "queued"
        assert run["payload"]["inputs"] == {"target": "db-2", "checks": ["disk"], "depth": 2}
        assert run["payload"]["actor_id"] == "user-e2e"  # the JWT subject
        repeat = user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": "db-2"},
            p_idempotency_key="req-1",
        )
        assert repeat["job"]["id"] == run["id"]

        manifest = sr.call(
            "jobforge_create_manifest",
            p_run_id=run["id"],
            p_tenant_id=tenant,
            p_manifest={
                "logs_ref": "s3://logs/run.txt",
                "outputs": [
                    {
                        "name": "report.json",
                        "type": "report",
                        "ref": "s3://out/report.json",
                        "size": 1234,
                        "checksum": "sha256:" + "ab" * 32,
                        "mime_type": "application/json",
                    }
                ],
                "metrics": {"duration_ms": 812},
                "tool_versions": {"python": "3.12.1"},
                "status": "complete",
            },
        )
        assert manifest["job_type"] == SCAN  # defaulted from the job
        assert manifest["status"] == "complete"
        assert manifest["run_id"] == run["id"]
        assert (
            user.call("jobforge_get_manifest", p_run_id=run["id"], p_tenant_id=tenant) == manifest
        )

        actions = [r["action"] for r in audit_rows(admin, tenant)]
        assert actions == [
            "trigger_create",
            "event_ingest",
            "trigger_fire",
            "event_ingest",
            "job_request",
            "job_request",
            "manifest_write",
        ]


def test_dry_run_trigger_enqueues_nothing_and_audits(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    trigger = make_trigger(
        sr, tenant, p_dry_run=True, p_target_inputs={"target": "web", "depth": 1}
    )
    event = submit(sr, tenant)

    assert event["processed"] is False
    assert event["processing_job_id"] is None
    assert jobs_of(enabled_admin, tenant) == []
    fires = [r for r in audit_rows(enabled_admin, tenant) if r["action"] == "trigger_fire"]
    assert len(fires) == 1
    fire = fires[0]
    assert fire["outcome"] == "dry_run"
    assert fire["target_id"] == trigger["id"]
    would = fire["details"]["would_enqueue"]
    assert would == {
        "type": SCAN,
        "payload_sha256": would["payload_sha256"],
        "max_attempts": 3,
        "idempotency_key": f"trigger:{trigger['id']}:event:{event['id']}",
    }
    assert len(would["payload_sha256"]) == 64  # a digest of the job payload, not the payload
    assert fire["details"]["input_keys"] == ["depth", "target"]
    assert '"web"' not in json.dumps(fire, default=str)
    state = enabled_admin.execute(
        "select fire_count, last_fired_at is not null, last_job_id"
        " from jobforge_triggers where id = %s",
        (trigger["id"],),
    ).fetchone()
    assert state == (1, True, None)
    assert enabled_admin.execute(
        "select dry_run, job_id from jobforge_private.trigger_fires where trigger_id = %s",
        (trigger["id"],),
    ).fetchall() == [(True, None)]


def test_cooldown_skips_and_audits_the_reason(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    trigger = make_trigger(sr, tenant, p_cooldown_seconds=3600)

    first = submit(sr, tenant)
    second = submit(sr, tenant, p_event_type="infrastructure.cpu_high")
    assert first["processed"] is True
    assert second["processed"] is False
    assert len(jobs_of(enabled_admin, tenant)) == 1

    fires = [r for r in audit_rows(enabled_admin, tenant) if r["action"] == "trigger_fire"]
    assert [(f["outcome"], f["reason"]) for f in fires] == [
        ("success", None),
        ("skipped", "cooldown"),
    ]
    assert fires[1]["details"]["event_id"] == second["id"]
    assert enabled_admin.execute(
        "select fire_count from jobforge_triggers where id = %s", (trigger["id"],)
    ).fetchone() == (1,)


def test_hourly_limit_holds_for_events_and_cron(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    make_trigger(sr, tenant, p_max_fires_per_hour=2)
    events = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[{"event_type": f"infrastructure.e{i}", "source_app": "keys"} for i in range(4)],
    )
    assert [e["processed"] for e in events] == [True, True, False, False]
    assert len(jobs_of(enabled_admin, tenant)) == 2
    fires = [r for r in audit_rows(enabled_admin, tenant) if r["action"] == "trigger_fire"]
    assert [(f["outcome"], f["reason"]) for f in fires] == [
        ("success", None),
        ("success", None),
        ("skipped", "hourly limit"),
        ("skipped", "hourly limit"),
    ]

    other = uuid.uuid4()
    cron = make_trigger(
        sr,
        other,
        p_trigger_type="cron",
        p_event_type_filter=None,
        p_cron_expression="*/5 * * * *",
        p_max_fires_per_hour=2,
    )
    slot = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    results = [
        sr.call(
            "jobforge_fire_cron_trigger",
            p_trigger_id=cron["id"],
            p_scheduled_for=slot + timedelta(minutes=5 * i),
        )
        for i in range(3)
    ]
    assert [r["fired"] for r in results] == [True, True, False]
    assert results[2]["reason"] == "hourly limit"
    assert results[2]["audit_id"] is not None
    # The skipped slot is spent: calling it again changes nothing and audits nothing.
    audits = len(audit_rows(enabled_admin, other))
    again = sr.call(
        "jobforge_fire_cron_trigger",
        p_trigger_id=cron["id"],
        p_scheduled_for=slot + timedelta(minutes=10),
    )
    assert again["fired"] is False
    assert again["reason"] == "already fired for this slot"
    assert again["audit_id"] is None
    assert len(audit_rows(enabled_admin, other)) == audits
    assert len(jobs_of(enabled_admin, other)) == 2


def test_cron_fires_exactly_once_per_slot_under_concurrency(
    enabled_db_url: str, enabled_admin: Any, act_as: ActAs
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    trigger = make_trigger(
        sr,
        tenant,
        p_trigger_type="cron",
        p_event_type_filter=None,
        p_cron_expression="0 * * * *",
    )
    slot = datetime(2031, 6, 1, 8, 0, tzinfo=UTC)
    sessions = [RoleSession(enabled_db_url, "service_role") for _ in range(8)]
    barrier = threading.Barrier(len(sessions))
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fire(session: RoleSession) -> None:
        try:
            barrier.wait()
            result = session.call(
                "jobforge_fire_cron_trigger", p_trigger_id=trigger["id"], p_scheduled_for=slot
            )
            with lock:
                results.append(result)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for s in sessions:
        s.close()

    assert errors == []
    assert len(results) == 8
    fired = [r for r in results if r["fired"]]
    assert len(fired) == 1
    assert {r["reason"] for r in results if not r["fired"]} == {"already fired for this slot"}
    jobs = jobs_of(enabled_admin, tenant)
    assert len(jobs) == 1
    assert fired[0]["job"]["id"] == jobs[0]["id"]
    assert jobs[0]["idempotency_key"] == f"cron:{trigger['id']}:2031-06-01T08:00:00Z"
    assert jobs[0]["payload"]["scheduled_for"] == "2031-06-01T08:00:00Z"
    assert fired[0]["scheduled_for"] is not None
    assert fired[0]["trigger_id"] == trigger["id"]
    fires = [r for r in audit_rows(enabled_admin, tenant) if r["action"] == "trigger_fire"]
    assert len(fires) == 1
    assert fires[0]["outcome"] == "success"
    assert enabled_admin.execute(
        "select fire_count from jobforge_triggers where id = %s", (trigger["id"],)
    ).fetchone() == (1,)

    # The next slot fires again; the same instant in another time zone is the same slot.
    nxt = sr.call(
        "jobforge_fire_cron_trigger",
        p_trigger_id=trigger["id"],
        p_scheduled_for=slot + timedelta(hours=1),
    )
    assert nxt["fired"] is True
    same = sr.call(
        "jobforge_fire_cron_trigger",
        p_trigger_id=trigger["id"],
        p_scheduled_for=(slot + timedelta(hours=1)).astimezone(ZoneInfo("Asia/Tokyo")),
    )
    assert same["fired"] is False
    assert same["reason"] == "already fired for this slot"


def test_cron_dry_run_disabled_and_template_disabled(
    act_as: ActAs, admin_conn: Any, enabled_db_url: str
) -> None:
    # Shared database: every template is disabled there.
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    cron_args = {
        "p_trigger_type": "cron",
        "p_event_type_filter": None,
        "p_cron_expression": "0 0 * * *",
    }
    slot = datetime(2030, 2, 1, tzinfo=UTC)

    disabled = make_trigger(sr, tenant, p_enabled=False, **cron_args)
    result = sr.call(
        "jobforge_fire_cron_trigger", p_trigger_id=disabled["id"], p_scheduled_for=slot
    )
    assert datetime.fromisoformat(result.pop("scheduled_for")) == slot
    assert result == {
        "fired": False,
        "job": None,
        "dry_run": False,
        "reason": "trigger disabled",
        "audit_id": None,
        "trigger_id": disabled["id"],
    }
    assert [r for r in audit_rows(admin_conn, tenant) if r["action"] == "trigger_fire"] == []

    tpl_off = make_trigger(sr, tenant, **cron_args)
    result = sr.call("jobforge_fire_cron_trigger", p_trigger_id=tpl_off["id"], p_scheduled_for=slot)
    assert result["fired"] is False
    assert result["reason"] == "template disabled"
    audit = admin_conn.execute(
        "select outcome, reason from jobforge_audit_logs where id = %s", (result["audit_id"],)
    ).fetchone()
    assert audit == ("skipped", "template disabled")

    # An event trigger whose template is disabled: skipped, audited, event not processed.
    make_trigger(sr, tenant)
    event = submit(sr, tenant)
    assert event["processed"] is False
    skipped = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "trigger_fire"][-1]
    assert (skipped["outcome"], skipped["reason"]) == ("skipped", "template disabled")

    # A disabled event trigger is not even evaluated.
    other = uuid.uuid4()
    make_trigger(sr, other, p_enabled=False)
    submit(sr, other)
    assert [r["action"] for r in audit_rows(admin_conn, other)] == [
        "trigger_create",
        "event_ingest",
    ]
    assert jobs_of(admin_conn, tenant) == []
    assert jobs_of(admin_conn, other) == []

    # A dry-run cron trigger (templates enabled): nothing enqueued, audited as dry_run.
    esr = act_as("service_role", url=enabled_db_url)
    dry = make_trigger(esr, tenant, p_dry_run=True, **cron_args)
    result = esr.call("jobforge_fire_cron_trigger", p_trigger_id=dry["id"], p_scheduled_for=slot)
    assert result["fired"] is False
    assert result["dry_run"] is True
    assert result["job"] is None
    with psycopg.connect(enabled_db_url, autocommit=True) as conn:
        audit = conn.execute(
            "select outcome, details -> 'would_enqueue' ->> 'idempotency_key'"
            " from jobforge_audit_logs where id = %s",
            (result["audit_id"],),
        ).fetchone()
        assert audit == ("dry_run", f"cron:{dry['id']}:2030-02-01T00:00:00Z")
        assert jobs_of(conn, tenant) == []


def test_fire_cron_trigger_errors(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    event_trigger = make_trigger(sr, tenant)
    with sql_error("PT404", "not found"):
        sr.call(
            "jobforge_fire_cron_trigger",
            p_trigger_id=uuid.uuid4(),
            p_scheduled_for=datetime.now(UTC),
        )
    with sql_error("PT400", "trigger_id: "):
        sr.call(
            "jobforge_fire_cron_trigger",
            p_trigger_id=event_trigger["id"],
            p_scheduled_for=datetime.now(UTC),
        )
    with sql_error("PT400", "scheduled_for: is required"):
        sr.call(
            "jobforge_fire_cron_trigger", p_trigger_id=event_trigger["id"], p_scheduled_for=None
        )


def test_trigger_crud_validation_and_audit(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant, sub="user-crud"))
    created = make_trigger(
        user, tenant, p_name="t1", p_actor_id="spoofed", p_event_source_filter="aias"
    )
    cron = make_trigger(
        user,
        tenant,
        p_name="t2",
        p_trigger_type="cron",
        p_event_type_filter=None,
        p_cron_expression="  */15   0-6,22-23 * 1-12/2 1-5 ",
    )
    assert cron["cron_expression"] == "*/15 0-6,22-23 * 1-12/2 1-5"

    with sql_error("PT409", "already exists"):
        make_trigger(user, tenant, p_name="t1")

    listed = user.call("jobforge_list_triggers", p_tenant_id=tenant)
    assert [t["id"] for t in listed] == [cron["id"], created["id"]]
    assert user.call(
        "jobforge_list_triggers", p_tenant_id=tenant, p_filters={"trigger_type": "cron"}
    ) == [cron]
    assert user.call(
        "jobforge_list_triggers", p_tenant_id=tenant, p_filters={"limit": 1, "offset": 1}
    ) == [created]
    with sql_error("PT400", "bogus: is not a known filter"):
        user.call("jobforge_list_triggers", p_tenant_id=tenant, p_filters={"bogus": 1})

    updated = user.call(
        "jobforge_set_trigger_enabled",
        p_trigger_id=created["id"],
        p_tenant_id=tenant,
        p_enabled=False,
    )
    assert updated["enabled"] is False
    assert user.call(
        "jobforge_list_triggers", p_tenant_id=tenant, p_filters={"enabled": False}
    ) == [updated]
    deleted = user.call("jobforge_delete_trigger", p_trigger_id=cron["id"], p_tenant_id=tenant)
    assert deleted["id"] == cron["id"]
    with sql_error("PT404", "not found"):
        user.call("jobforge_delete_trigger", p_trigger_id=cron["id"], p_tenant_id=tenant)

    rows = audit_rows(admin_conn, tenant)
    assert [r["action"] for r in rows] == [
        "trigger_create",
        "trigger_create",
        "trigger_update",
        "trigger_delete",
    ]
    # An authenticated caller is recorded as its JWT subject, whatever p_actor_id says.
    assert {r["actor_id"] for r in rows} == {"user-crud"}
    assert rows[2]["details"] == {"name": "t1", "enabled": False, "previous_enabled": True}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"p_name": ""}, "name: is required"),
        ({"p_trigger_type": "webhook"}, "trigger_type: must be cron or event"),
        ({"p_event_type_filter": "Infra"}, "event_type_filter: must be an event type"),
        ({"p_event_type_filter": "*"}, "event_type_filter: must be an event type"),
        ({"p_event_type_filter": None}, "event_type_filter: is required for event triggers"),
        ({"p_event_source_filter": "myapp"}, "event_source_filter: must be one of"),
        ({"p_cron_expression": "* * * * *"}, "cron_expression: is only for cron triggers"),
        (
            {"p_target_template_key": "autopilot.ops.nope"},
            "target_template_key: unknown template autopilot.ops.nope",
        ),
        (
            {"p_target_template_key": ACTION},
            "target_template_key: action templates cannot be triggered automatically",
        ),
        ({"p_target_inputs": {}}, "target_inputs.target: is required"),
        (
            {"p_target_inputs": {"target": "x", "depth": "deep"}},
            "target_inputs.depth: must be integer",
        ),
        ({"p_cooldown_seconds": 86401}, "cooldown_seconds: must be between 0 and 86400"),
        ({"p_max_fires_per_hour": 0}, "max_fires_per_hour: must be between 1 and 3600"),
        (
            {"p_trigger_type": "cron", "p_event_type_filter": None, "p_cron_expression": "* * * *"},
            "cron_expression: must have exactly 5 fields",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "60 * * * *",
            },
            "cron_expression: minute value 60 is out of range 0-59",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "* 24 * * *",
            },
            "cron_expression: hour value 24 is out of range 0-23",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "* * 0 * *",
            },
            "cron_expression: day value 0 is out of range 1-31",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "* * * 13 *",
            },
            "cron_expression: month value 13 is out of range 1-12",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "* * * * 8",
            },
            "cron_expression: weekday value 8 is out of range 0-7",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "*/0 * * * *",
            },
            "cron_expression: minute step 0",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "5-1 * * * *",
            },
            "cron_expression: minute range 5-1 is reversed",
        ),
        (
            {
                "p_trigger_type": "cron",
                "p_event_type_filter": None,
                "p_cron_expression": "MON * * * *",
            },
            "cron_expression: minute field 'MON' is not valid",
        ),
        (
            {"p_trigger_type": "cron", "p_event_type_filter": None, "p_cron_expression": None},
            "cron_expression: is required for cron triggers",
        ),
    ],
)
def test_create_trigger_bad_input_writes_nothing(
    act_as: ActAs, admin_conn: Any, overrides: dict[str, Any], message: str
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    with sql_error("PT400", message):
        make_trigger(sr, tenant, **overrides)
    assert (
        count(admin_conn, "select count(*) from jobforge_triggers where tenant_id = %s", tenant)
        == 0
    )
    assert audit_rows(admin_conn, tenant) == []


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_touch_tenant_b_triggers(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    b_trigger = make_trigger(act_as("service_role", url=enabled_db_url), b, p_name="same-name")

    def triggers_of(tenant: uuid.UUID) -> list[dict[str, Any]]:
        rows = enabled_admin.execute(
            "select to_jsonb(t) from jobforge_triggers t where t.tenant_id = %s order by t.id",
            (tenant,),
        ).fetchall()
        return [row[0] for row in rows]

    b_triggers, b_audits = triggers_of(b), audit_rows(enabled_admin, b)
    user_a = act_as("authenticated", tenant_claims(a), url=enabled_db_url)
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "jobforge_create_trigger",
            {
                "p_tenant_id": b,
                "p_name": "x",
                "p_trigger_type": "event",
                "p_target_template_key": SCAN,
                "p_event_type_filter": "a.b",
                "p_target_inputs": {"target": "x"},
            },
        ),
        ("jobforge_list_triggers", {"p_tenant_id": b}),
        (
            "jobforge_set_trigger_enabled",
            {"p_trigger_id": b_trigger["id"], "p_tenant_id": b, "p_enabled": False},
        ),
        ("jobforge_delete_trigger", {"p_trigger_id": b_trigger["id"], "p_tenant_id": b}),
    ]
    for fn, args in calls:
        with sql_error("PT403", f"tenant_id: caller may not act for tenant {b}"):
            user_a.call(fn, **args)
    # Acting for A with B's trigger id: B's trigger does not exist for A.
    with sql_error("PT404", f"trigger {b_trigger['id']} not found"):
        user_a.call(
            "jobforge_set_trigger_enabled",
            p_trigger_id=b_trigger["id"],
            p_tenant_id=a,
            p_enabled=False,
        )
    with sql_error("PT404", f"trigger {b_trigger['id']} not found"):
        user_a.call("jobforge_delete_trigger", p_trigger_id=b_trigger["id"], p_tenant_id=a)
    assert user_a.call("jobforge_list_triggers", p_tenant_id=a) == []
    assert user_a.query(
        "select count(*) from public.jobforge_triggers where tenant_id = %s", (b,)
    ) == [(0,)]

    # Names are per tenant; A's events fire A's triggers only, though B's matches too.
    mine = make_trigger(user_a, a, p_name="same-name")
    event = submit(user_a, a)
    (job,) = jobs_of(enabled_admin, a)
    assert event["processing_job_id"] == job["id"]
    assert job["payload"]["trigger_id"] == mine["id"]
    assert jobs_of(enabled_admin, b) == []

    assert triggers_of(b) == b_triggers  # enabled, fire_count 0
    assert audit_rows(enabled_admin, b) == b_audits
