"""``supabase/schema/10_audit.sql``: the append-only audit log, listing and purging it.

One audit row per write RPC, in the write's transaction; the log cannot be changed by any
role (superusers included) except through ``jobforge_purge_audit_logs``; a tenant's users
list their tenants' rows only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.integration.sql.helpers import (
    ACTION,
    ActAs,
    audit_rows,
    make_trigger,
    sql_error,
    submit,
)
from tests.support.roles import tenant_claims


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
    # Refused cancels are rolled back with their audit row (jobforge_cancel_job, 20_jobs.sql).
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


def test_audit_log_is_append_only_for_every_role(
    act_as: ActAs, admin_conn: Any, superuser_conn: Any
) -> None:
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
    # Not even by a superuser with triggers switched off for replication (the owner of a
    # hosted project may not switch them off at all).
    with superuser_conn.transaction():
        superuser_conn.execute("set local session_replication_role = replica")
        with sql_error("PT409", "append-only"):
            superuser_conn.execute(
                "delete from jobforge_audit_logs where tenant_id = %s", (tenant,)
            )

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


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_read_tenant_b_audit_logs(act_as: ActAs, admin_conn: Any) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    b_event = submit(act_as("service_role"), b, p_trace_id="trace-of-b")
    b_rows = audit_rows(admin_conn, b)
    assert [r["action"] for r in b_rows] == ["event_ingest"]

    user_a = act_as("authenticated", tenant_claims(a))
    for filters in ({}, {"target_id": b_event["id"]}, {"trace_id": "trace-of-b"}):
        with sql_error("PT403", f"tenant_id: caller may not act for tenant {b}"):
            user_a.call("jobforge_list_audit_logs", p_tenant_id=b, p_filters=filters)
        # Acting for its own tenant, B's rows are not there whatever the filter.
        assert user_a.call("jobforge_list_audit_logs", p_tenant_id=a, p_filters=filters) == []
    # No tenant means the global rows, which are the service role's only.
    with sql_error("PT403", "service_role required"):
        user_a.call("jobforge_list_audit_logs", p_tenant_id=None)
    assert user_a.query(
        "select count(*) from public.jobforge_audit_logs where tenant_id = %s", (b,)
    ) == [(0,)]

    user_b = act_as("authenticated", tenant_claims(b))
    listed = user_b.call("jobforge_list_audit_logs", p_tenant_id=b)
    assert [r["id"] for r in listed] == [r["id"] for r in b_rows]
    assert audit_rows(admin_conn, b) == b_rows
