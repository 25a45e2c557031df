"""The execution plane at the SQL level (supabase/migrations/002_execution_plane.sql).

Every RPC is called directly, as each role, exactly as PostgREST would call it (see
``tests/support/roles.py``). The shared database keeps every template disabled; tests
that need enabled templates use ``enabled_db_url`` (a copy of the migrated database with
all templates enabled, for this module) or ``fresh_db_url``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jwt
import psycopg
import pytest

from tests.support.database import Server
from tests.support.roles import RoleSession, tenant_claims

ActAs = Callable[..., RoleSession]

ACTION = "autopilot.ops.apply"
ACTION_INPUTS = {"recommendation_id": "rec-1", "plan": {"steps": [{"resize": "disk-1"}]}}
SCAN = "autopilot.ops.scan"

SEEDED_TEMPLATES = {
    "autopilot.ops.scan",
    "autopilot.ops.diagnose",
    "autopilot.ops.recommend",
    "autopilot.ops.apply",
    "autopilot.support.triage",
    "autopilot.support.draft_reply",
    "autopilot.support.propose_kb_patch",
    "autopilot.growth.seo_scan",
    "autopilot.growth.experiment_propose",
    "autopilot.growth.content_draft",
    "autopilot.finops.reconcile",
    "autopilot.finops.anomaly_scan",
    "autopilot.finops.churn_risk_report",
}


# --- helpers ---------------------------------------------------------------------------


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


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(
    header: dict[str, Any], claims: dict[str, Any], secret: str | None, signature: str | None = None
) -> str:
    """A compact JWS built by hand (for headers pyjwt will not produce)."""
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    if signature is None:
        signature = (
            b64(hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
            if secret
            else ""
        )
    return f"{h}.{p}.{signature}"


def claims_for(tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "jobforge",
        "sub": "user-42",
        "aud": ACTION,
        "tid": str(tenant),
        "scp": ["ops:read", "ops:write"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def mint(kid: str, secret: str, tenant: uuid.UUID, **overrides: Any) -> str:
    return jwt.encode(
        claims_for(tenant, **overrides), secret, algorithm="HS256", headers={"kid": kid}
    )


def new_key(sr: RoleSession) -> tuple[str, str]:
    kid = f"kid-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_urlsafe(48)
    sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    return kid, secret


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
    return session.call("jobforge_create_trigger", **args)


def submit(session: RoleSession, tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "p_tenant_id": tenant,
        "p_event_type": "infrastructure.disk_full",
        "p_source_app": "settler",
        "p_payload": {"host": "db-1"},
    }
    args.update(overrides)
    return session.call("jobforge_submit_event", **args)


def jobs_of(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> list[dict[str, Any]]:
    cur = conn.execute(
        "select to_jsonb(j) from public.jobforge_jobs j where j.tenant_id = %s"
        " order by j.created_at, j.id",
        (tenant,),
    )
    return [row[0] for row in cur.fetchall()]


@pytest.fixture(scope="module")
def enabled_db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    """A copy of the migrated database with every template enabled, for this module."""
    name = f"jobforge_test_xp_{os.getpid()}_{secrets.token_hex(4)}"
    url = pg_server.create_database(name, template=template_db)
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


# --- end to end ------------------------------------------------------------------------


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


# --- triggers --------------------------------------------------------------------------


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
    assert fire["details"]["would_enqueue"] == {
        "type": SCAN,
        "payload": {
            "template_key": SCAN,
            "inputs": {"target": "web", "depth": 1},
            "trace_id": event["trace_id"],
            "actor_id": None,
            "project_id": None,
            "event_id": event["id"],
            "trigger_id": trigger["id"],
        },
        "max_attempts": 3,
        "idempotency_key": f"trigger:{trigger['id']}:event:{event['id']}",
    }
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


# --- events ----------------------------------------------------------------------------


def test_submit_events_batch(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    project = uuid.uuid4()
    sr = act_as("service_role")
    first = submit(sr, tenant, p_trace_id="dup", p_occurred_at="2030-01-01T00:00:00Z")
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "support.ticket_opened",
                "source_app": "aias",
                "payload": {"n": 0},
                "project_id": str(project),
                "subject_type": "ticket",
                "subject_id": "T-1",
                "source_module": "support",
                "actor_id": "u1",
                "event_version": "2.0",
            },
            # the identity of an event stored before: its stored row comes back
            {
                "event_type": "infrastructure.disk_full",
                "source_app": "settler",
                "trace_id": "dup",
                "occurred_at": "2030-01-01T00:00:00Z",
                "payload": {"changed": True},
            },
            {
                "event_type": "support.ticket_closed",
                "source_app": "aias",
                "contains_pii": True,
                "redaction_hints": {"redact_fields": ["email"]},
                "payload": {"email": "x@y"},
            },
            # repeats element 3 of this batch
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T05:05:05+02:00",
            },
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T03:05:05Z",
            },
        ],
    )
    assert len(batch) == 5
    assert batch[0]["project_id"] == str(project)
    assert batch[0]["event_version"] == "2.0"
    assert batch[0]["payload"] == {"n": 0}
    assert batch[0]["source_module"] == "support"
    assert batch[1] == first
    assert batch[2]["contains_pii"] is True
    assert batch[2]["redaction_hints"] == {"redact_fields": ["email"]}
    assert batch[3] == batch[4]
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 4
    )

    ingests = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"]
    assert len(ingests) == 2  # the single submit, then one for the whole batch
    details = ingests[1]["details"]
    assert details["count"] == 5
    assert details["inserted"] == 3
    assert details["event_ids"] == [batch[0]["id"], batch[2]["id"], batch[3]["id"]]
    assert "payload" not in json.dumps(details)

    # Submitting the same batch again inserts nothing and audits nothing.
    audits = len(audit_rows(admin_conn, tenant))
    again = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T03:05:05Z",
            }
        ],
    )
    assert again == [batch[3]]
    assert len(audit_rows(admin_conn, tenant)) == audits


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "events: must be a non-empty JSON array"),
        ({"event_type": "a.b"}, "events: must be a non-empty JSON array"),
        (
            [{"event_type": "a.b", "source_app": "keys"}] * 1001,
            "events: at most 1000 events per batch",
        ),
        ([{"event_type": "a.b", "source_app": "keys"}, 5], "events[1]: must be a JSON object"),
        (
            [{"event_type": "a.b", "source_app": "keys", "zeta": 1, "alpha": 2}],
            "events[0].alpha: is not a known field (unknown: alpha, zeta)",
        ),
        ([{"source_app": "keys"}], "events[0].event_type: is required"),
        (
            [
                {"event_type": "a.b", "source_app": "keys"},
                {"event_type": "A.B", "source_app": "keys"},
            ],
            "events[1].event_type: must be dotted lowercase words",
        ),
        ([{"event_type": "a.b", "source_app": "mine"}], "events[0].source_app: must be one of"),
        (
            [{"event_type": "a.b", "source_app": "keys", "source_module": "hr"}],
            "events[0].source_module: must be one of",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "payload": [1]}],
            "events[0].payload: must be a JSON object",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "payload": {"x": "y" * 262144}}],
            "events[0].payload: must be at most 256 KiB",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "project_id": "not-a-uuid"}],
            "events[0].project_id: must be a UUID",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "trace_id": ""}],
            "events[0].trace_id: must not be empty",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "contains_pii": "yes"}],
            "events[0].contains_pii: must be a boolean",
        ),
        (
            [
                {
                    "event_type": "a.b",
                    "source_app": "keys",
                    "redaction_hints": {"redact_fields": "email"},
                }
            ],
            "events[0].redaction_hints: redact_fields must be an array",
        ),
        (
            [
                {"event_type": "a.b", "source_app": "keys"},
                {"event_type": "a.b", "source_app": "keys", "occurred_at": "yesterday-ish"},
            ],
            "events[1].occurred_at: must be an ISO 8601 timestamp",
        ),
    ],
)
def test_submit_events_bad_input_names_the_element(
    act_as: ActAs, admin_conn: Any, events: Any, message: str
) -> None:
    tenant = uuid.uuid4()
    with sql_error("PT400", message):
        act_as("service_role").call("jobforge_submit_events", p_tenant_id=tenant, p_events=events)
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 0
    )
    assert audit_rows(admin_conn, tenant) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"p_source_app": "myapp"},
            "source_app: must be one of settler, aias, keys, readylayer, jobforge, external",
        ),
        ({"p_source_app": None}, "source_app: is required"),
        ({"p_event_type": "Disk Full"}, "event_type: must be dotted lowercase words"),
        ({"p_event_type": "infrastructure"}, "event_type: must be dotted lowercase words"),
        ({"p_event_type": "a." + "b" * 300}, "event_type: must be at most 255 characters"),
        ({"p_payload": {"blob": "x" * 262144}}, "payload: must be at most 256 KiB"),
        ({"p_payload": ["a"]}, "payload: must be a JSON object"),
        ({"p_source_module": "hr"}, "source_module: must be one of"),
        ({"p_trace_id": "t" * 256}, "trace_id: must be at most 255 characters"),
        ({"p_redaction_hints": ["email"]}, "redaction_hints: must be a JSON object"),
        (
            {"p_redaction_hints": {"redact_fields": ["ok", 3]}},
            "redaction_hints: redact_fields must be an array",
        ),
        ({"p_event_version": ""}, "event_version: must not be empty"),
    ],
)
def test_submit_event_bad_input_writes_nothing(
    act_as: ActAs, admin_conn: Any, overrides: dict[str, Any], message: str
) -> None:
    tenant = uuid.uuid4()
    with sql_error("PT400", message):
        submit(act_as("service_role"), tenant, **overrides)
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 0
    )
    assert audit_rows(admin_conn, tenant) == []


def test_non_uuid_ids_are_refused_before_anything_runs(act_as: ActAs, admin_conn: Any) -> None:
    before = count(admin_conn, "select count(*) from jobforge_events")
    user = act_as("service_role")
    # A uuid parameter: PostgreSQL refuses the text before the function runs.
    with sql_error("22P02"):
        user.call(
            "jobforge_submit_event",
            p_tenant_id="not-a-uuid",
            p_event_type="a.b",
            p_source_app="keys",
        )
    with sql_error("22P02"):
        user.call("jobforge_list_events", p_tenant_id=uuid.uuid4(), p_project_id="123")
    assert count(admin_conn, "select count(*) from jobforge_events") == before


def test_list_events_filters_order_and_paging(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    project = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    base = datetime(2030, 3, 1, tzinfo=UTC)
    made = [
        submit(
            user,
            tenant,
            p_event_type="infrastructure.disk_full" if i % 2 else "billing.invoice_paid",
            p_source_app="settler" if i < 3 else "keys",
            p_occurred_at=base + timedelta(minutes=i),
            p_project_id=project if i == 4 else None,
            p_subject_type="host",
            p_subject_id=f"h{i}",
            p_trace_id=f"tr{i}",
            p_source_module="ops" if i == 5 else None,
        )
        for i in range(6)
    ]

    def ids(rows: list[dict[str, Any]]) -> list[int]:
        return [int(r["subject_id"][1:]) for r in rows]

    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant)) == [5, 4, 3, 2, 1, 0]
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_project_id=project)) == [4]
    f = {"event_type": "infrastructure.disk_full"}
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=f)) == [5, 3, 1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"source_app": "keys"})
    ) == [5, 4, 3]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"source_module": "ops"})
    ) == [5]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"trace_id": "tr2"})
    ) == [2]
    assert ids(
        user.call(
            "jobforge_list_events",
            p_tenant_id=tenant,
            p_filters={"subject_id": "h1", "subject_type": "host"},
        )
    ) == [1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"processed": False})
    ) == [5, 4, 3, 2, 1, 0]
    assert (
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"processed": True}) == []
    )
    window = {
        "from": (base + timedelta(minutes=1)).isoformat(),
        "to": (base + timedelta(minutes=4)).isoformat(),
    }
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=window)) == [3, 2, 1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"limit": 2, "offset": 1})
    ) == [4, 3]
    assert made[0]["trace_id"] == "tr0"

    for filters, message in [
        ({"colour": "red"}, "colour: is not a known filter"),
        ({"limit": 0}, "limit: must be between 1 and 1000"),
        ({"limit": 1001}, "limit: must be between 1 and 1000"),
        ({"offset": -1}, "offset: must be between 0"),
        ({"from": "soon"}, "from: must be an ISO 8601 timestamp"),
        ({"processed": "yes"}, "processed: must be a boolean"),
        ({"source_app": "other"}, "source_app: must be one of"),
    ]:
        with sql_error("PT400", message):
            user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=filters)


# --- redaction -------------------------------------------------------------------------


def test_redaction_never_reaches_audit_and_list_events_redacts(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    sr = act_as("service_role")
    hinted_payload = {
        "user": {"email": "alice-secret@example.com", "plan": "pro"},
        "items": [
            {"card": "4111-SECRET-1111", "sku": "a"},
            {"card": "5500-SECRET-0004", "sku": "b"},
            {"sku": "c"},
        ],
        "note": "kept",
    }
    hinted = submit(
        user,
        tenant,
        p_payload=hinted_payload,
        p_redaction_hints={"redact_fields": ["user.email", "items.card", "absent.path"]},
        p_trace_id="hinted",
    )
    pii = submit(
        user,
        tenant,
        p_payload={
            "name": "Bob PII-NAME",
            "address": {"city": "PII-CITY"},
            "ids": [1234567, "PII-ID"],
        },
        p_contains_pii=True,
        p_trace_id="pii",
    )
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "a.b",
                "source_app": "keys",
                "contains_pii": True,
                "payload": {"ssn": "BATCH-PII"},
            }
        ],
    )
    assert hinted["payload"] == hinted_payload  # stored as given

    audit_text = json.dumps(audit_rows(admin_conn, tenant))
    for secret in [
        "alice-secret",
        "4111-SECRET",
        "5500-SECRET",
        "PII-NAME",
        "PII-CITY",
        "PII-ID",
        "1234567",
        "BATCH-PII",
    ]:
        assert secret not in audit_text, secret
    ingest = {
        r["target_id"]: r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"
    }
    expected_hinted = {
        "user": {"email": "[REDACTED]", "plan": "pro"},
        "items": [
            {"card": "[REDACTED]", "sku": "a"},
            {"card": "[REDACTED]", "sku": "b"},
            {"sku": "c"},
        ],
        "note": "kept",
    }
    expected_pii = {
        "name": "[REDACTED]",
        "address": {"city": "[REDACTED]"},
        "ids": ["[REDACTED]", "[REDACTED]"],
    }
    assert ingest[hinted["id"]]["details"]["payload"] == expected_hinted
    assert ingest[pii["id"]]["details"]["payload"] == expected_pii

    listed = {e["trace_id"]: e for e in user.call("jobforge_list_events", p_tenant_id=tenant)}
    assert listed["hinted"]["payload"] == expected_hinted
    assert listed["pii"]["payload"] == expected_pii
    assert listed[batch[0]["trace_id"]]["payload"] == {"ssn": "[REDACTED]"}
    service_default = {
        e["trace_id"]: e for e in sr.call("jobforge_list_events", p_tenant_id=tenant)
    }
    assert service_default["pii"]["payload"] == expected_pii
    raw = {
        e["trace_id"]: e
        for e in sr.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"raw": True})
    }
    assert raw["hinted"]["payload"] == hinted_payload
    assert raw["pii"]["payload"]["name"] == "Bob PII-NAME"
    with sql_error("PT403", "raw: only service_role may read raw payloads"):
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"raw": True})


def test_redact_helpers(admin_conn: Any) -> None:
    def q(sql: str, *params: Any) -> Any:
        row = admin_conn.execute(sql, params).fetchone()
        return row[0]

    payload = json.dumps({"a": {"b": {"c": 1, "d": 2}}, "l": [[{"x": 1}], {"x": 2}], "s": "v"})
    assert q(
        "select jobforge_private.redact(%s::jsonb, %s)", payload, ["a.b.c", "l.x", "s.t", "nope"]
    ) == {
        "a": {"b": {"c": "[REDACTED]", "d": 2}},
        "l": [[{"x": "[REDACTED]"}], {"x": "[REDACTED]"}],
        "s": "v",
    }
    assert q("select jobforge_private.redact(%s::jsonb, %s)", payload, ["a"]) == {
        "a": "[REDACTED]",
        "l": [[{"x": 1}], {"x": 2}],
        "s": "v",
    }
    assert q("select jobforge_private.redact_all(%s::jsonb)", payload) == {
        "a": {"b": {"c": "[REDACTED]", "d": "[REDACTED]"}},
        "l": [[{"x": "[REDACTED]"}], {"x": "[REDACTED]"}],
        "s": "[REDACTED]",
    }
    assert q(
        "select jobforge_private.event_safe_payload(%s::jsonb, false, null)", payload
    ) == json.loads(payload)
    assert q(
        "select jobforge_private.event_safe_payload(%s::jsonb, true, %s::jsonb)",
        payload,
        json.dumps({"redact_fields": ["s"]}),
    ) == {**json.loads(payload), "s": "[REDACTED]"}


# --- templates and request_job ---------------------------------------------------------


def test_templates_seeded_disabled_with_schemas(act_as: ActAs, admin_conn: Any) -> None:
    user = act_as("authenticated", tenant_claims(uuid.uuid4()))
    templates = user.call("jobforge_list_templates")
    assert [t["template_key"] for t in templates] == sorted(SEEDED_TEMPLATES)
    for t in templates:
        assert t["enabled"] is False
        module = t["template_key"].split(".")[1]
        assert t["category"] == module
        assert t["is_action_job"] is (t["template_key"] == ACTION)
        expected_scopes = (
            ["ops:read", "ops:write"] if t["template_key"] == ACTION else [f"{module}:read"]
        )
        assert t["required_scopes"] == expected_scopes
        for schema in (t["input_schema"], t["output_schema"]):
            assert schema["type"] == "object"
            assert schema["properties"]
            assert set(schema["required"]) <= set(schema["properties"])
    scan = user.call("jobforge_get_template", p_template_key=SCAN)
    assert scan["input_schema"]["required"] == ["target"]
    assert scan["input_schema"]["properties"]["depth"]["type"] == "integer"
    triage = user.call("jobforge_get_template", p_template_key="autopilot.support.triage")
    assert triage["input_schema"]["required"] == ["ticket_id", "body"]
    assert [
        t["template_key"] for t in user.call("jobforge_list_templates", p_category="finops")
    ] == [
        "autopilot.finops.anomaly_scan",
        "autopilot.finops.churn_risk_report",
        "autopilot.finops.reconcile",
    ]
    assert user.call("jobforge_list_templates", p_enabled=True) == []
    with sql_error("PT404", "template autopilot.ops.nope not found"):
        user.call("jobforge_get_template", p_template_key="autopilot.ops.nope")
    with sql_error("PT400", "category: must be one of"):
        user.call("jobforge_list_templates", p_category="hr")
    with sql_error("42501"):
        user.call("jobforge_set_template_enabled", p_template_key=SCAN, p_enabled=True)
    with sql_error("PT404"):
        act_as("service_role").call(
            "jobforge_set_template_enabled", p_template_key="autopilot.x.y", p_enabled=True
        )


def test_request_job_errors(
    act_as: ActAs, admin_conn: Any, enabled_db_url: str, enabled_admin: Any
) -> None:
    tenant = uuid.uuid4()
    shared = act_as("authenticated", tenant_claims(tenant))
    with sql_error("PT404", "template autopilot.ops.nope not found"):
        shared.call("jobforge_request_job", p_tenant_id=tenant, p_template_key="autopilot.ops.nope")
    with sql_error("PT409", f"template {SCAN} is disabled"):
        shared.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": "x"},
        )
    assert audit_rows(admin_conn, tenant) == []

    user = act_as("authenticated", tenant_claims(tenant), url=enabled_db_url)
    cases = [
        (SCAN, {}, "inputs.target: is required"),
        (SCAN, {"target": None}, "inputs.target: is required"),
        (SCAN, {"target": 5}, "inputs.target: must be string"),
        (SCAN, {"target": "x", "depth": 1.5}, "inputs.depth: must be integer"),
        (SCAN, {"target": "x", "checks": "disk"}, "inputs.checks: must be array"),
        ("autopilot.support.triage", {"ticket_id": "T-1"}, "inputs.body: is required"),
        (
            "autopilot.finops.reconcile",
            {"period_start": "2030-01-01", "period_end": "2030-02-01", "tolerance": "0.1"},
            "inputs.tolerance: must be number",
        ),
        (
            "autopilot.support.draft_reply",
            {"ticket_id": "T", "thread": {"a": 1}},
            "inputs.thread: must be array",
        ),
        (SCAN, ["target"], "inputs: must be a JSON object"),
    ]
    for key, inputs, message in cases:
        with sql_error("PT400", message):
            user.call(
                "jobforge_request_job", p_tenant_id=tenant, p_template_key=key, p_inputs=inputs
            )
    assert jobs_of(enabled_admin, tenant) == []
    assert audit_rows(enabled_admin, tenant) == []

    # Integers written as 2.0 are integers; unknown inputs pass (no additionalProperties).
    ok = user.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=SCAN,
        p_inputs={"target": "host-VALUE-9", "depth": 2.0, "extra": True},
        p_actor_id="ignored-for-authenticated",
    )
    assert ok["job"]["max_attempts"] == 3
    rows = audit_rows(enabled_admin, tenant)
    assert len(rows) == 1
    assert rows[0]["action"] == "job_request"
    assert rows[0]["outcome"] == "success"
    assert rows[0]["details"]["input_keys"] == ["depth", "extra", "target"]
    assert "VALUE-9" not in json.dumps(rows[0])  # input names only, never values
    assert rows[0]["target_id"] == ok["job"]["id"]
    assert rows[0]["id"] == ok["audit_id"]


def test_request_job_dry_run(act_as: ActAs, enabled_db_url: str, enabled_admin: Any) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    result = sr.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key="autopilot.growth.content_draft",
        p_inputs={"topic": "queues"},
        p_dry_run=True,
        p_actor_id="svc-user",
        p_trace_id="dry-1",
        p_idempotency_key="k",
    )
    assert result["job"] is None
    assert result["dry_run"] is True
    assert result["would_enqueue"] == {
        "type": "autopilot.growth.content_draft",
        "payload": {
            "template_key": "autopilot.growth.content_draft",
            "inputs": {"topic": "queues"},
            "trace_id": "dry-1",
            "actor_id": "svc-user",
            "project_id": None,
        },
        "max_attempts": 3,
        "idempotency_key": "k",
    }
    assert jobs_of(enabled_admin, tenant) == []
    rows = audit_rows(enabled_admin, tenant)
    assert [(r["action"], r["outcome"], r["actor_id"]) for r in rows] == [
        ("job_request", "dry_run", "svc-user")
    ]


# --- policy tokens ---------------------------------------------------------------------


def test_hmac_matches_rfc_4231_and_python(admin_conn: Any) -> None:
    def sql_hmac(key: bytes, message: bytes) -> bytes:
        row = admin_conn.execute(
            "select jobforge_private.hmac_sha256(%s, %s)", (key, message)
        ).fetchone()
        return bytes(row[0])

    # RFC 4231 test cases 2 and 6 (a key longer than the block is hashed first).
    assert sql_hmac(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert sql_hmac(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    ).hex() == ("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    for key_len in (0, 1, 32, 63, 64, 65, 200):
        key = secrets.token_bytes(key_len)
        message = secrets.token_bytes(key_len * 3 + 1)
        assert sql_hmac(key, message) == hmac.new(key, message, hashlib.sha256).digest()


@pytest.fixture(scope="module")
def policy_keys(enabled_db_url: str) -> Iterator[dict[str, tuple[str, str]]]:
    session = RoleSession(enabled_db_url, "service_role")
    try:
        current = new_key(session)
        retired = new_key(session)
        session.call("jobforge_retire_policy_key", p_kid=retired[0])
        yield {"current": current, "retired": retired}
    finally:
        session.close()


def test_valid_token_is_accepted_once(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any, policy_keys: dict[str, tuple[str, str]]
) -> None:
    tenant = uuid.uuid4()
    kid, secret = policy_keys["current"]
    user = act_as("authenticated", tenant_claims(tenant, sub="user-42"), url=enabled_db_url)
    token = mint(kid, secret, tenant)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    # verify does not consume; it may be called any number of times.
    for _ in range(2):
        verdict = user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_policy_token=token,
        )
        assert verdict["allowed"] is True
        assert verdict["reason"] is None
        assert verdict["jti"] == jti

    # A dry run verifies but does not consume either.
    dry = user.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=ACTION_INPUTS,
        p_policy_token=token,
        p_dry_run=True,
    )
    assert dry["job"] is None
    assert dry["would_enqueue"]["type"] == ACTION

    result = user.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=ACTION_INPUTS,
        p_policy_token=token,
    )
    assert result["job"]["type"] == ACTION
    assert result["job"]["max_attempts"] == 1
    request_audit = enabled_admin.execute(
        "select details -> 'policy' from jobforge_audit_logs where id = %s", (result["audit_id"],)
    ).fetchone()[0]
    assert request_audit == {"kid": kid, "jti": jti, "scopes": ["ops:read", "ops:write"]}

    with sql_error("PT403", "policy token refused: replayed"):
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=token,
        )
    verdict = user.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_policy_token=token,
    )
    assert verdict == {
        "allowed": False,
        "reason": "replayed",
        "audit_id": verdict["audit_id"],
        "jti": jti,
    }
    assert len(jobs_of(enabled_admin, tenant)) == 1
    outcomes = [(r["action"], r["outcome"], r["reason"]) for r in audit_rows(enabled_admin, tenant)]
    assert outcomes == [
        ("policy_check", "success", None),
        ("policy_check", "success", None),
        ("job_request", "dry_run", None),
        ("job_request", "success", None),
        ("policy_check", "denied", "replayed"),
    ]
    assert enabled_admin.execute(
        "select tenant_id, template_key, expires_at > now()"
        " from jobforge_private.policy_token_uses where jti = %s",
        (jti,),
    ).fetchone() == (tenant, ACTION, True)

    # An absurd exp is still just a future exp.
    far = mint(kid, secret, tenant, exp=10**20)
    assert (
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=far,
        )["job"]["type"]
        == ACTION
    )


def _bad_tokens(keys: dict[str, tuple[str, str]], tenant: uuid.UUID) -> list[tuple[str, str, str]]:
    kid, secret = keys["current"]
    retired_kid, retired_secret = keys["retired"]
    now = int(time.time())
    good = mint(kid, secret, tenant)
    h, p, s = good.split(".")
    forged_claims = b64(
        json.dumps(claims_for(tenant, scp=["ops:read", "ops:write", "admin"])).encode()
    )
    flipped = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    # The last character of a 32-byte signature carries 2 unused bits: a non-canonical
    # spelling of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    noncanonical = s[:-1] + alphabet[alphabet.index(s[-1]) ^ 1]
    return [
        ("expired", mint(kid, secret, tenant, iat=now - 7200, exp=now - 3600), "expired"),
        (
            "not yet valid (nbf)",
            mint(kid, secret, tenant, nbf=now + 3600, exp=now + 7200),
            "not yet valid",
        ),
        (
            "not yet valid (iat)",
            mint(kid, secret, tenant, iat=now + 3600, exp=now + 7200),
            "not yet valid",
        ),
        ("wrong tenant", mint(kid, secret, uuid.uuid4()), "wrong tenant"),
        ("wrong action", mint(kid, secret, tenant, aud=SCAN), "wrong action"),
        ("missing scope", mint(kid, secret, tenant, scp=["ops:read"]), "missing scope ops:write"),
        ("no scopes", mint(kid, secret, tenant, scp=None), "missing scope ops:read"),
        ("wrong issuer", mint(kid, secret, tenant, iss="someone"), "wrong issuer"),
        ("no exp", mint(kid, secret, tenant, exp=None), "malformed"),
        ("no jti", mint(kid, secret, tenant, jti=None), "malformed"),
        ("tampered payload", f"{h}.{forged_claims}.{s}", "bad signature"),
        ("tampered signature", f"{h}.{p}.{flipped}", "bad signature"),
        ("non-canonical signature", f"{h}.{p}.{noncanonical}", "malformed"),
        ("wrong secret", mint(kid, secrets.token_urlsafe(48), tenant), "bad signature"),
        (
            "alg none",
            raw_token({"alg": "none", "typ": "JWT", "kid": kid}, claims_for(tenant), None),
            "unsupported algorithm none",
        ),
        (
            "HS512",
            jwt.encode(
                claims_for(tenant), secret + secret, algorithm="HS512", headers={"kid": kid}
            ),
            "unsupported algorithm HS512",
        ),
        (
            "RS256 header",
            raw_token({"alg": "RS256", "typ": "JWT", "kid": kid}, claims_for(tenant), secret),
            "unsupported algorithm RS256",
        ),
        ("unknown kid", mint("kid-does-not-exist", secret, tenant), "unknown key"),
        ("no kid", jwt.encode(claims_for(tenant), secret, algorithm="HS256"), "unknown key"),
        ("retired key", mint(retired_kid, retired_secret, tenant), "retired key"),
        ("garbage", "not.a.token!", "malformed"),
        ("two parts", f"{h}.{p}", "malformed"),
        ("header not json", f"{b64(b'{nope')}.{p}.{s}", "malformed"),
        ("missing", "", "missing token"),
    ]


def test_bad_tokens_are_refused_and_denials_audited(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any, policy_keys: dict[str, tuple[str, str]]
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant), url=enabled_db_url)
    sr = act_as("service_role", url=enabled_db_url)
    cases = _bad_tokens(policy_keys, tenant)
    for name, token, reason in cases:
        with sql_error("PT403", f"policy token refused: {reason}"):
            user.call(
                "jobforge_request_job",
                p_tenant_id=tenant,
                p_template_key=ACTION,
                p_inputs=ACTION_INPUTS,
                p_policy_token=token,
            )
        with sql_error("PT403", f"policy token refused: {reason}"):
            sr.call(
                "jobforge_request_job",
                p_tenant_id=tenant,
                p_template_key=ACTION,
                p_inputs=ACTION_INPUTS,
                p_policy_token=token,
                p_dry_run=True,
            )
        verdict = user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_policy_token=token,
        )
        assert (verdict["allowed"], verdict["reason"]) == (False, reason), name
        row = enabled_admin.execute(
            "select action, outcome, reason, tenant_id from jobforge_audit_logs where id = %s",
            (verdict["audit_id"],),
        ).fetchone()
        assert row == ("policy_check", "denied", reason, tenant), name

    with sql_error("PT403", "policy token refused: missing token"):
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
        )
    # A refused request leaves nothing behind: no job, no job_request row, no used jti.
    assert jobs_of(enabled_admin, tenant) == []
    rows = audit_rows(enabled_admin, tenant)
    assert len(rows) == len(cases)
    assert {r["action"] for r in rows} == {"policy_check"}
    assert (
        count(
            enabled_admin,
            "select count(*) from jobforge_private.policy_token_uses where tenant_id = %s",
            tenant,
        )
        == 0
    )


def test_policy_key_admin(act_as: ActAs, admin_conn: Any) -> None:
    sr = act_as("service_role")
    kid = f"kid-{uuid.uuid4().hex[:10]}"
    secret = "s" * 31 + "-TOPSECRET"
    added = sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    assert set(added) == {"kid", "created_at"}
    assert added["kid"] == kid
    with sql_error("PT409", "already exists"):
        sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    with sql_error("PT400", "secret: must be at least 32 characters"):
        sr.call("jobforge_add_policy_key", p_kid=f"{kid}-2", p_secret="short")
    retired = sr.call("jobforge_retire_policy_key", p_kid=kid)
    assert retired["kid"] == kid
    assert retired["retired_at"] is not None
    assert sr.call("jobforge_retire_policy_key", p_kid=kid)["retired_at"] == retired["retired_at"]
    with sql_error("PT404", "not found"):
        sr.call("jobforge_retire_policy_key", p_kid="kid-never-added")

    rows = admin_conn.execute(
        "select action, outcome, tenant_id, details::text from jobforge_audit_logs"
        " where target_type = 'policy_key' and target_id = %s order by created_at",
        (kid,),
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("policy_key_add", "success", None),
        ("policy_key_retire", "success", None),
        ("policy_key_retire", "skipped", None),
    ]
    assert all("TOPSECRET" not in r[3] for r in rows)


def test_verify_policy_token_errors(act_as: ActAs) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    with sql_error("PT403", "tenant_id"):
        user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=other,
            p_template_key=ACTION,
            p_policy_token="x",
        )
    with sql_error("PT404", "not found"):
        user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key="autopilot.a.b",
            p_policy_token="x",
        )
    verdict = user.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_policy_token="x",
    )
    assert verdict["allowed"] is False
    assert verdict["reason"] == "malformed"
    assert verdict["jti"] is None


# --- manifests -------------------------------------------------------------------------


def test_manifests(act_as: ActAs, admin_conn: Any) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    sr = act_as("service_role")
    job = sr.call(
        "jobforge_enqueue_job",
        p_tenant_id=tenant,
        p_type="test.manifest",
        p_payload={"trace_id": "tr-m"},
    )
    first = sr.call(
        "jobforge_create_manifest",
        p_run_id=job["id"],
        p_tenant_id=tenant,
        p_manifest={"logs_ref": "a"},
    )
    assert first["status"] == "pending"
    assert first["job_type"] == "test.manifest"
    assert first["outputs"] == []
    assert first["metrics"] == {}
    assert first["manifest_version"] == "1.0"
    second = sr.call(
        "jobforge_create_manifest",
        p_run_id=job["id"],
        p_tenant_id=tenant,
        p_manifest={
            "status": "failed",
            "error": {"message": "boom"},
            "env_fingerprint": {"os": "linux"},
        },
    )
    assert second["id"] == first["id"]
    assert second["logs_ref"] == "a"
    assert second["status"] == "failed"
    assert second["error"] == {"message": "boom"}
    with sql_error("PT409", "is failed and cannot be changed"):
        sr.call(
            "jobforge_create_manifest",
            p_run_id=job["id"],
            p_tenant_id=tenant,
            p_manifest={"status": "pending"},
        )
    with sql_error("PT404", f"run {job['id']} not found"):
        sr.call("jobforge_create_manifest", p_run_id=job["id"], p_tenant_id=other, p_manifest={})
    with sql_error("PT404", "not found"):
        sr.call(
            "jobforge_create_manifest", p_run_id=uuid.uuid4(), p_tenant_id=tenant, p_manifest={}
        )

    job2 = sr.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type="test.manifest")
    for manifest, message in [
        ({"colour": 1}, "manifest.colour: is not a known field"),
        ({"status": "done"}, "manifest.status: must be one of pending, complete, failed"),
        ({"outputs": {"name": "x"}}, "manifest.outputs: must be a JSON array"),
        ({"outputs": [{"type": "log"}]}, "manifest.outputs[0].name: is required"),
        (
            {"outputs": [{"name": "a", "type": "log"}, {"name": "b"}]},
            "manifest.outputs[1].type: is required",
        ),
        (
            {"outputs": [{"name": "a", "type": "log", "size": -1}]},
            "manifest.outputs[0].size: must be an integer >= 0",
        ),
        ({"outputs": [{"name": "a", "type": "log", "size": 1.5}]}, "manifest.outputs[0].size"),
        (
            {"outputs": [{"name": "a", "type": "log", "checksum": "md5:abc"}]},
            "manifest.outputs[0].checksum",
        ),
        (
            {"outputs": [{"name": "a", "type": "log", "colour": "red"}]},
            "manifest.outputs[0].colour: is not a known field",
        ),
        ({"metrics": [1]}, "manifest.metrics: must be a JSON object"),
        ({"tool_versions": {"python": 3.12}}, "manifest.tool_versions.python: must be a string"),
        ({"job_type": 5}, "manifest.job_type: must be a string"),
    ]:
        with sql_error("PT400", message):
            sr.call(
                "jobforge_create_manifest",
                p_run_id=job2["id"],
                p_tenant_id=tenant,
                p_manifest=manifest,
            )
    assert sr.call("jobforge_get_manifest", p_run_id=job2["id"], p_tenant_id=tenant) is None

    writes = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "manifest_write"]
    assert len(writes) == 2
    assert writes[0]["trace_id"] == "tr-m"
    assert writes[0]["target_id"] == job["id"]

    user = act_as("authenticated", tenant_claims(tenant))
    assert user.call("jobforge_get_manifest", p_run_id=job["id"], p_tenant_id=tenant) == second
    assert (
        act_as("authenticated", tenant_claims(other)).call(
            "jobforge_get_manifest", p_run_id=job["id"], p_tenant_id=other
        )
        is None
    )
    with sql_error("42501"):
        user.call(
            "jobforge_create_manifest", p_run_id=job2["id"], p_tenant_id=tenant, p_manifest={}
        )
    # Deleting the job deletes its manifest.
    admin_conn.execute("delete from jobforge_jobs where id = %s", (job["id"],))
    assert (
        count(
            admin_conn,
            "select count(*) from jobforge_artifact_manifests where run_id = %s",
            job["id"],
        )
        == 0
    )


# --- audit trail -----------------------------------------------------------------------


def test_one_audit_row_per_write_and_cancel_is_audited(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant, sub="user-audit"))
    sr = act_as("service_role")

    def delta(fn: Callable[[], Any]) -> list[dict[str, Any]]:
        before = {r["id"] for r in audit_rows(admin_conn, tenant)}
        fn()
        return [r for r in audit_rows(admin_conn, tenant) if r["id"] not in before]

    job = sr.call(
        "jobforge_enqueue_job",
        p_tenant_id=tenant,
        p_type="test.audit",
        p_payload={"trace_id": "tr-c"},
    )
    added = delta(lambda: user.call("jobforge_cancel_job", p_job_id=job["id"], p_tenant_id=tenant))
    assert [(r["action"], r["actor_id"], r["target_id"], r["trace_id"]) for r in added] == [
        ("job_cancel", "user-audit", job["id"], "tr-c")
    ]
    assert added[0]["details"] == {"type": "test.audit", "previous_status": "queued"}
    # Refused cancels are rolled back with their audit row: same behaviour as in 001.
    with sql_error("PT409", "only queued or running jobs can be canceled"):
        user.call("jobforge_cancel_job", p_job_id=job["id"], p_tenant_id=tenant)
    with sql_error("PT404", "not found"):
        user.call("jobforge_cancel_job", p_job_id=uuid.uuid4(), p_tenant_id=tenant)

    trigger: dict[str, Any] = {}

    def create() -> None:
        trigger.update(make_trigger(user, tenant))

    writes: list[tuple[str, Callable[[], Any]]] = [
        ("event_ingest", lambda: submit(user, tenant)),
        (
            "event_ingest",
            lambda: user.call(
                "jobforge_submit_events",
                p_tenant_id=tenant,
                p_events=[
                    {"event_type": "a.b", "source_app": "keys"},
                    {"event_type": "a.c", "source_app": "keys"},
                ],
            ),
        ),
        ("trigger_create", create),
        (
            "trigger_update",
            lambda: user.call(
                "jobforge_set_trigger_enabled",
                p_trigger_id=trigger["id"],
                p_tenant_id=tenant,
                p_enabled=False,
            ),
        ),
        (
            "trigger_delete",
            lambda: user.call(
                "jobforge_delete_trigger", p_trigger_id=trigger["id"], p_tenant_id=tenant
            ),
        ),
        (
            "policy_check",
            lambda: user.call(
                "jobforge_verify_policy_token",
                p_tenant_id=tenant,
                p_template_key=ACTION,
                p_policy_token="a.b.c",
            ),
        ),
    ]
    for action, fn in writes:
        added = delta(fn)
        assert [r["action"] for r in added] == [action]
        assert added[0]["actor_id"] == "user-audit"

    # Reads write nothing.
    assert (
        delta(
            lambda: (
                user.call("jobforge_list_events", p_tenant_id=tenant),
                user.call("jobforge_list_triggers", p_tenant_id=tenant),
                user.call("jobforge_list_audit_logs", p_tenant_id=tenant),
                user.call("jobforge_get_manifest", p_run_id=job["id"], p_tenant_id=tenant),
                user.call("jobforge_list_templates"),
            )
        )
        == []
    )

    listed = user.call("jobforge_list_audit_logs", p_tenant_id=tenant)
    assert [r["action"] for r in listed] == [
        "policy_check",
        "trigger_delete",
        "trigger_update",
        "trigger_create",
        "event_ingest",
        "event_ingest",
        "job_cancel",
    ]
    assert [
        r["action"]
        for r in user.call(
            "jobforge_list_audit_logs",
            p_tenant_id=tenant,
            p_filters={"action": "event_ingest", "limit": 1},
        )
    ] == ["event_ingest"]
    assert (
        user.call("jobforge_list_audit_logs", p_tenant_id=tenant, p_filters={"outcome": "denied"})[
            0
        ]["action"]
        == "policy_check"
    )
    assert (
        user.call(
            "jobforge_list_audit_logs", p_tenant_id=tenant, p_filters={"target_id": job["id"]}
        )[0]["action"]
        == "job_cancel"
    )
    assert (
        user.call(
            "jobforge_list_audit_logs", p_tenant_id=tenant, p_filters={"to": "2000-01-01T00:00:00Z"}
        )
        == []
    )
    with sql_error("PT400", "outcome: must be one of"):
        user.call("jobforge_list_audit_logs", p_tenant_id=tenant, p_filters={"outcome": "ok"})
    with sql_error("PT400", "nope: is not a known filter"):
        user.call("jobforge_list_audit_logs", p_tenant_id=tenant, p_filters={"nope": 1})


def test_audit_log_is_append_only_for_every_role(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    submit(act_as("service_role"), tenant)
    assert len(audit_rows(admin_conn, tenant)) == 1

    for statement in (
        "update jobforge_audit_logs set reason = 'x' where tenant_id = %s",
        "delete from jobforge_audit_logs where tenant_id = %s",
    ):
        with sql_error("PT409", "jobforge_audit_logs is append-only"):
            admin_conn.execute(statement, (tenant,))
    with sql_error("PT409", "jobforge_audit_logs is append-only"):
        admin_conn.execute("truncate jobforge_audit_logs")
    # Not even with triggers switched off for replication.
    with admin_conn.transaction():
        admin_conn.execute("set local session_replication_role = replica")
        with sql_error("PT409", "append-only"):
            admin_conn.execute("delete from jobforge_audit_logs where tenant_id = %s", (tenant,))

    for role, claims in (
        ("service_role", None),
        ("authenticated", tenant_claims(tenant)),
        ("anon", None),
    ):
        session = act_as(role, claims)
        for statement in (
            "update jobforge_audit_logs set reason = 'x' where tenant_id = %s",
            "delete from jobforge_audit_logs where tenant_id = %s",
            "insert into jobforge_audit_logs (tenant_id, action, outcome)"
            " values (%s, 'job_cancel', 'success')",
        ):
            with sql_error("42501"):
                session.query(statement, (tenant,))
        with sql_error("42501"):
            session.query("truncate jobforge_audit_logs")
    assert len(audit_rows(admin_conn, tenant)) == 1


def test_purges(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    # Rows dated in the past: inserting is allowed, changing is not.
    admin_conn.execute(
        "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
        " values (%s, 'job_cancel', 'success', now() - interval '400 days'),"
        " (%s, 'job_cancel', 'success', now() - interval '10 days')",
        (tenant, tenant),
    )
    assert sr.call("jobforge_purge_audit_logs", p_retention_days=365) >= 1
    rows = admin_conn.execute(
        "select created_at > now() - interval '11 days'"
        " from jobforge_audit_logs where tenant_id = %s",
        (tenant,),
    ).fetchall()
    assert rows == [(True,)]
    with sql_error("PT400", "retention_days: must be at least 1"):
        sr.call("jobforge_purge_audit_logs", p_retention_days=0)
    # The purge's permission ends with it: a later DELETE in the same transaction fails.
    with admin_conn.transaction():
        admin_conn.execute("select jobforge_purge_audit_logs(100000)")
        with sql_error("PT409", "append-only"):
            admin_conn.execute("delete from jobforge_audit_logs where tenant_id = %s", (tenant,))

    old = submit(sr, tenant, p_trace_id="old")
    new = submit(sr, tenant, p_trace_id="new")
    admin_conn.execute(
        "update jobforge_events set created_at = now() - interval '40 days' where id = %s",
        (old["id"],),
    )
    assert sr.call("jobforge_purge_expired_events", p_retention_days=30) >= 1
    remaining = admin_conn.execute(
        "select id from jobforge_events where tenant_id = %s", (tenant,)
    ).fetchall()
    assert remaining == [(uuid.UUID(new["id"]),)]
    with sql_error("PT400", "retention_days"):
        sr.call("jobforge_purge_expired_events", p_retention_days=0)
    user = act_as("authenticated", tenant_claims(tenant))
    with sql_error("42501"):
        user.call("jobforge_purge_audit_logs")
    with sql_error("42501"):
        user.call("jobforge_purge_expired_events")


# --- tenants, roles, catalog -----------------------------------------------------------


def test_tenant_matrix(act_as: ActAs, admin_conn: Any) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    sr = act_as("service_role")
    # Tenant B's world.
    b_event = submit(sr, b, p_payload={"b-secret": "B-ONLY"})
    b_trigger = make_trigger(sr, b)
    b_job = sr.call("jobforge_enqueue_job", p_tenant_id=b, p_type="test.matrix")
    sr.call("jobforge_create_manifest", p_run_id=b_job["id"], p_tenant_id=b, p_manifest={})
    b_audits = len(audit_rows(admin_conn, b))

    user_a = act_as("authenticated", tenant_claims(a))
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "jobforge_submit_event",
            {"p_tenant_id": b, "p_event_type": "a.b", "p_source_app": "keys"},
        ),
        (
            "jobforge_submit_events",
            {"p_tenant_id": b, "p_events": [{"event_type": "a.b", "source_app": "keys"}]},
        ),
        ("jobforge_list_events", {"p_tenant_id": b}),
        (
            "jobforge_request_job",
            {"p_tenant_id": b, "p_template_key": SCAN, "p_inputs": {"target": "x"}},
        ),
        (
            "jobforge_verify_policy_token",
            {"p_tenant_id": b, "p_template_key": ACTION, "p_policy_token": "x"},
        ),
        ("jobforge_get_manifest", {"p_run_id": b_job["id"], "p_tenant_id": b}),
        (
            "jobforge_create_trigger",
            {
                "p_tenant_id": b,
                "p_name": "x",
                "p_trigger_type": "event",
                "p_target_template_key": SCAN,
                "p_event_type_filter": "a.b",
            },
        ),
        ("jobforge_list_triggers", {"p_tenant_id": b}),
        (
            "jobforge_set_trigger_enabled",
            {"p_trigger_id": b_trigger["id"], "p_tenant_id": b, "p_enabled": False},
        ),
        ("jobforge_delete_trigger", {"p_trigger_id": b_trigger["id"], "p_tenant_id": b}),
        ("jobforge_list_audit_logs", {"p_tenant_id": b}),
        ("jobforge_cancel_job", {"p_job_id": b_job["id"], "p_tenant_id": b}),
    ]
    for fn, args in calls:
        with sql_error("PT403", "tenant_id: caller may not act for tenant"):
            user_a.call(fn, **args)
    # A's own tenant with B's object ids: not found, never B's data.
    with sql_error("PT404"):
        user_a.call(
            "jobforge_set_trigger_enabled",
            p_trigger_id=b_trigger["id"],
            p_tenant_id=a,
            p_enabled=False,
        )
    with sql_error("PT404"):
        user_a.call("jobforge_delete_trigger", p_trigger_id=b_trigger["id"], p_tenant_id=a)
    with sql_error("PT404"):
        user_a.call("jobforge_cancel_job", p_job_id=b_job["id"], p_tenant_id=a)
    assert user_a.call("jobforge_get_manifest", p_run_id=b_job["id"], p_tenant_id=a) is None
    assert user_a.call("jobforge_list_events", p_tenant_id=a) == []
    assert user_a.call("jobforge_list_triggers", p_tenant_id=a) == []
    assert user_a.call("jobforge_list_audit_logs", p_tenant_id=a) == []

    for table in (
        "jobforge_events",
        "jobforge_triggers",
        "jobforge_artifact_manifests",
        "jobforge_audit_logs",
    ):
        assert user_a.query(f"select count(*) from public.{table} where tenant_id = %s", (b,)) == [
            (0,)
        ], table
        assert sr.query(f"select count(*) > 0 from public.{table} where tenant_id = %s", (b,)) == [
            (True,)
        ], table
        with sql_error("42501"):
            user_a.query(f"delete from public.{table} where tenant_id = %s", (b,))
    # Global audit rows (templates, keys) are not shown to tenant users.
    assert user_a.query(
        "select count(*) from public.jobforge_audit_logs where tenant_id is null"
    ) == [(0,)]
    assert user_a.query("select count(*) from public.jobforge_job_templates") == [(13,)]
    with sql_error("42501"):
        user_a.query("update public.jobforge_job_templates set enabled = true")
    with sql_error("42501"):
        user_a.query(
            "insert into public.jobforge_events"
            " (tenant_id, event_type, occurred_at, trace_id, source_app)"
            " values (%s, 'a.b', now(), 't', 'keys')",
            (a,),
        )

    # Nothing of B changed.
    assert len(audit_rows(admin_conn, b)) == b_audits
    assert admin_conn.execute(
        "select enabled from jobforge_triggers where id = %s", (b_trigger["id"],)
    ).fetchone() == (True,)
    assert admin_conn.execute(
        "select status from jobforge_jobs where id = %s", (b_job["id"],)
    ).fetchone() == ("queued",)
    assert b_event["tenant_id"] == str(b)

    # No claims at all means no tenant, never every tenant.
    nobody = act_as("authenticated", {"role": "authenticated"})
    with sql_error("PT403"):
        nobody.call("jobforge_list_events", p_tenant_id=b)
    assert nobody.query("select count(*) from public.jobforge_events") == [(0,)]


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
]


@pytest.mark.parametrize(("fn", "args"), SERVICE_ONLY, ids=[c[0] for c in SERVICE_ONLY])
def test_authenticated_cannot_call_service_role_rpcs(
    act_as: ActAs, fn: str, args: dict[str, Any]
) -> None:
    tenant = args.get("p_tenant_id", uuid.uuid4())
    with sql_error("42501"):
        act_as("authenticated", tenant_claims(tenant)).call(fn, **args)


def test_anon_executes_nothing(act_as: ActAs, admin_conn: Any) -> None:
    anon = act_as("anon")
    for fn, args in [
        *SERVICE_ONLY,
        ("jobforge_list_templates", {}),
        ("jobforge_get_template", {"p_template_key": SCAN}),
        (
            "jobforge_submit_event",
            {"p_tenant_id": uuid.uuid4(), "p_event_type": "a.b", "p_source_app": "keys"},
        ),
        ("jobforge_list_audit_logs", {"p_tenant_id": uuid.uuid4()}),
    ]:
        with sql_error("42501"):
            anon.call(fn, **args)
    for table in (
        "jobforge_events",
        "jobforge_job_templates",
        "jobforge_triggers",
        "jobforge_audit_logs",
        "jobforge_artifact_manifests",
    ):
        with sql_error("42501"):
            anon.query(f"select 1 from public.{table}")


@pytest.mark.parametrize("table", ["policy_keys", "policy_token_uses", "trigger_fires"])
def test_private_tables_are_unreadable(act_as: ActAs, table: str) -> None:
    for role, claims in (
        ("authenticated", tenant_claims(uuid.uuid4())),
        ("service_role", None),
        ("anon", None),
    ):
        with sql_error("42501"):
            act_as(role, claims).query(f"select * from jobforge_private.{table}")


def test_catalog_every_rpc_is_definer_with_empty_search_path(admin_conn: Any) -> None:
    rows = admin_conn.execute(
        """
        select p.oid::regprocedure::text, p.prosecdef, coalesce(p.proconfig, '{}'),
               has_function_privilege('anon', p.oid, 'execute'),
               exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       where a.grantee = 0 and a.privilege_type = 'EXECUTE'),
               obj_description(p.oid, 'pg_proc') is not null,
               pg_get_function_result(p.oid)
        from pg_proc p
        where p.pronamespace = 'public'::regnamespace and p.proname like 'jobforge\\_%'
        """
    ).fetchall()
    names = {r[0].split("(")[0] for r in rows}
    expected = {
        "jobforge_submit_event",
        "jobforge_submit_events",
        "jobforge_list_events",
        "jobforge_list_templates",
        "jobforge_get_template",
        "jobforge_set_template_enabled",
        "jobforge_request_job",
        "jobforge_verify_policy_token",
        "jobforge_add_policy_key",
        "jobforge_retire_policy_key",
        "jobforge_create_manifest",
        "jobforge_get_manifest",
        "jobforge_create_trigger",
        "jobforge_list_triggers",
        "jobforge_set_trigger_enabled",
        "jobforge_delete_trigger",
        "jobforge_fire_cron_trigger",
        "jobforge_list_audit_logs",
        "jobforge_purge_expired_events",
        "jobforge_purge_audit_logs",
        "jobforge_cancel_job",
    }
    assert expected <= names
    for name, definer, config, anon_exec, public_exec, commented, result in rows:
        assert definer, name
        assert 'search_path=""' in config, (name, config)
        assert not anon_exec, name
        assert not public_exec, name
        assert commented, name
        if name.split("(")[0] in expected - {
            "jobforge_purge_expired_events",
            "jobforge_purge_audit_logs",
        }:
            assert result == "jsonb", name
    for name in (
        "jobforge_set_template_enabled",
        "jobforge_add_policy_key",
        "jobforge_retire_policy_key",
        "jobforge_create_manifest",
        "jobforge_fire_cron_trigger",
        "jobforge_purge_expired_events",
        "jobforge_purge_audit_logs",
    ):
        granted = admin_conn.execute(
            "select bool_or(has_function_privilege('authenticated', p.oid, 'execute')),"
            " bool_and(has_function_privilege('service_role', p.oid, 'execute'))"
            " from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = %s",
            (name,),
        ).fetchone()
        assert granted == (False, True), name

    tables = admin_conn.execute(
        """
        select c.oid::regclass::text, c.relrowsecurity,
               has_table_privilege('anon', c.oid, 'select'),
               has_table_privilege('authenticated', c.oid, 'insert,update,delete,truncate'),
               has_table_privilege('service_role', c.oid, 'insert,update,delete,truncate')
        from pg_class c
        where c.relkind = 'r'
          and (c.relnamespace = 'jobforge_private'::regnamespace
               or (c.relnamespace = 'public'::regnamespace and c.relname like 'jobforge\\_%'))
        """
    ).fetchall()
    assert len(tables) >= 10
    for name, rls, anon_select, auth_write, service_write in tables:
        assert rls, name
        assert not anon_select, name
        assert not auth_write, name
        assert not service_write, name
    private = admin_conn.execute(
        "select bool_or(has_table_privilege(r, c.oid, 'select'))"
        " from pg_class c, unnest(array['authenticated', 'service_role', 'anon']) r"
        " where c.relnamespace = 'jobforge_private'::regnamespace and c.relkind = 'r'"
    ).fetchone()
    assert private == (False,)
