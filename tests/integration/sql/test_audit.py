"""``supabase/schema/10_audit.sql``: the append-only audit log, listing and purging it.

One audit row per write RPC, in the write's transaction; the log cannot be changed by any
role (superusers included) except through ``jobforge_purge_audit_logs``; a tenant's users
list their tenants' rows only; and no row ever holds content (payloads, inputs, hint
values), whatever the caller marks or forgets to mark.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from jobforge_sdk import generate_policy_token
from tests.integration.sql.helpers import (
    ACTION,
    SCAN,
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
    assert sr.call("jobforge_purge_audit_logs", p_retention_days=365)["deleted"] >= 1
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
        admin_conn.execute("select jobforge_purge_audit_logs(36500)")
        with sql_error("PT409", "append-only"):
            admin_conn.execute("delete from jobforge_audit_logs where tenant_id = %s", (tenant,))

    old = submit(sr, tenant, p_trace_id="old")
    new = submit(sr, tenant, p_trace_id="new")
    admin_conn.execute(
        "update jobforge_events set created_at = now() - interval '40 days' where id = %s",
        (old["id"],),
    )
    assert sr.call("jobforge_purge_expired_events", p_retention_days=30)["deleted"] >= 1
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


# -- no content in the trail -------------------------------------------------------------

# One marker per place personal data can ride in: each must stay out of every audit row.
PII = {
    "payload": "pii-payload@example.com",
    "nested": "PII-NESTED-PHONE-555-0100",
    "list": "PII-LIST-4111-1111",
    "number": 987654321012,
    "hint_value": "PII-HINT-NOTE-ann",
    "subject_id": "pii-subject@example.com",
    "batch_payload": "pii-batch@example.com",
    "batch_subject_id": "pii-batch-subject@example.com",
    "inputs": "pii-inputs@example.com",
    "inputs_nested": "PII-INPUTS-NESTED-ssn-078-05-1120",
    "dry_inputs": "pii-dry-inputs@example.com",
    "action_inputs": "PII-ACTION-PLAN-bob",
    "token_context": "PII-TOKEN-CTX-carol",
    "trigger_inputs": "pii-trigger-inputs@example.com",
    "dry_trigger_inputs": "pii-dry-trigger@example.com",
    "cron_trigger_inputs": "pii-cron-trigger@example.com",
}
SECRET = "audit-content-tests-secret-0123456789"


def _payload(tag: str) -> dict[str, Any]:
    return {
        "user": {"email": PII[tag], "phone": PII["nested"]},
        "cards": [{"number": PII["list"]}, PII["list"]],
        "amount": PII["number"],
        "note": "plain",
    }


# Every way an event can be marked, and not marked: no hints, hints naming some fields
# (with a free-text key beside redact_fields), empty hints; contains_pii either way.
MARKINGS: list[dict[str, Any]] = [
    {"contains_pii": pii, "redaction_hints": hints}
    for pii in (False, True)
    for hints in (
        None,
        {"redact_fields": ["user.email", "cards.number"], "reason": PII["hint_value"]},
        {"redact_fields": [], "note": PII["hint_value"]},
    )
]


def test_audit_rows_never_hold_payloads_inputs_or_hint_values(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role", url=enabled_db_url)
    user = act_as("authenticated", tenant_claims(tenant, sub="user-audit"), url=enabled_db_url)
    kid = f"kid-{uuid.uuid4().hex[:12]}"
    sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=SECRET)

    # Triggers that fire on the events below: enqueue, dry run, and skip (cooldown).
    make_trigger(sr, tenant, p_target_inputs={"target": PII["trigger_inputs"]})
    make_trigger(
        sr,
        tenant,
        p_dry_run=True,
        p_target_inputs={"target": PII["dry_trigger_inputs"], "depth": 1},
    )
    make_trigger(
        sr, tenant, p_cooldown_seconds=3600, p_target_inputs={"target": PII["trigger_inputs"]}
    )
    cron = make_trigger(
        sr,
        tenant,
        p_trigger_type="cron",
        p_cron_expression="0 * * * *",
        p_event_type_filter=None,
        p_dry_run=True,
        p_target_inputs={"target": PII["cron_trigger_inputs"]},
    )
    fired = sr.call(
        "jobforge_fire_cron_trigger",
        p_trigger_id=cron["id"],
        p_scheduled_for=datetime(2030, 3, 1, tzinfo=UTC),
    )
    assert fired["dry_run"] is True

    for index, marking in enumerate(MARKINGS):
        for session in (sr, user):
            submit(
                session,
                tenant,
                p_payload=_payload("payload"),
                p_subject_type="customer",
                p_subject_id=PII["subject_id"],
                p_contains_pii=marking["contains_pii"],
                p_redaction_hints=marking["redaction_hints"],
                p_idempotency_key=f"single-{index}-{session.role}",
            )
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "infrastructure.disk_full",
                "source_app": "settler",
                "payload": _payload("batch_payload"),
                "subject_type": "customer",
                "subject_id": PII["batch_subject_id"],
                **{k: v for k, v in marking.items() if v is not None},
            }
            for marking in MARKINGS
        ],
    )
    assert len(batch) == len(MARKINGS)

    inputs = {"target": PII["inputs"], "checks": [PII["inputs_nested"]], "environment": "prod"}
    for session in (sr, user):
        session.call(
            "jobforge_request_job", p_tenant_id=tenant, p_template_key=SCAN, p_inputs=inputs
        )
        session.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={**inputs, "target": PII["dry_inputs"]},
            p_dry_run=True,
        )
    # A deduplicated request, and an action job with its token checked first.
    for _ in range(2):
        sr.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs=inputs,
            p_idempotency_key="scan-once",
        )
    token = generate_policy_token(
        secret=SECRET,
        tenant_id=tenant,
        actor_id="user-audit",
        action=ACTION,
        scopes=["ops:read", "ops:write"],
        context={"customer": PII["token_context"]},
        kid=kid,
    )
    action_inputs = {"recommendation_id": "rec-1", "plan": {"owner": PII["action_inputs"]}}
    assert sr.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_policy_token=token,
    )["allowed"]
    sr.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=action_inputs,
        p_policy_token=token,
        p_dry_run=True,
    )
    sr.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=action_inputs,
        p_policy_token=token,
    )

    rows = enabled_admin.execute(
        "select a.action, a.outcome, a::text from jobforge_audit_logs a where a.tenant_id = %s",
        (tenant,),
    ).fetchall()
    seen = {(action, outcome) for action, outcome, _ in rows}
    assert seen >= {
        ("event_ingest", "success"),
        ("trigger_fire", "success"),
        ("trigger_fire", "dry_run"),
        ("trigger_fire", "skipped"),
        ("job_request", "success"),
        ("job_request", "dry_run"),
        ("policy_check", "success"),
    }, seen
    text = "\n".join(row for _, _, row in rows)
    for place, marker in PII.items():
        assert str(marker) not in text, place
    # The list functions hand out the same rows.
    listed = json.dumps(user.call("jobforge_list_audit_logs", p_tenant_id=tenant))
    for place, marker in PII.items():
        assert str(marker) not in listed, place


def test_event_audit_row_records_a_digest_and_names(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    payload = _payload("payload")
    event = submit(
        sr,
        tenant,
        p_payload=payload,
        p_subject_type="customer",
        p_subject_id=PII["subject_id"],
        p_redaction_hints={"redact_fields": ["user.email"], "reason": PII["hint_value"]},
        p_idempotency_key="evt-digest-1",
        p_trace_id="tr-digest",
    )
    (row,) = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"]
    assert (row["target_type"], row["target_id"], row["trace_id"]) == (
        "event",
        event["id"],
        "tr-digest",
    )
    stored_text = admin_conn.execute(
        "select payload::text from jobforge_events where id = %s", (event["id"],)
    ).fetchone()[0]
    assert row["details"] == {
        "event_type": "infrastructure.disk_full",
        "source_app": "settler",
        "source_module": None,
        "subject_type": "customer",
        "idempotency_key": "evt-digest-1",
        "contains_pii": False,
        "payload_sha256": hashlib.sha256(stored_text.encode()).hexdigest(),
        "payload_bytes": len(stored_text.encode()),
        "payload_keys": ["amount", "cards", "note", "user"],
        "redacted_fields": ["user.email"],
    }
    # The digest can be matched to the stored event in SQL, as the contract says.
    assert admin_conn.execute(
        "select encode(sha256(convert_to(payload::text, 'UTF8')), 'hex')"
        " from jobforge_events where id = %s",
        (event["id"],),
    ).fetchone() == (row["details"]["payload_sha256"],)


@pytest.mark.parametrize(
    "details",
    [
        {"payload": {"email": "x@example.com"}},
        {"inputs": {"target": "db-1"}},
        {"template_key": "a", "note": "free text"},
        {"would_enqueue": {"payload": {"a": 1}}},
        {"policy": {"kid": {"deeper": 1}}},
        {"policy": {"scopes": [{"a": 1}]}},
        {"event_ids": [["nested"]]},
        [1, 2],
        "text",
    ],
    ids=lambda d: json.dumps(d)[:40],
)
def test_the_table_refuses_details_that_could_hold_content(admin_conn: Any, details: Any) -> None:
    tenant = uuid.uuid4()
    with sql_error("23514"):
        admin_conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, details)"
            " values (%s, 'job_cancel', 'success', %s::jsonb)",
            (tenant, json.dumps(details)),
        )
    # The helper every RPC writes through meets the same CHECK.
    with sql_error("23514"):
        admin_conn.execute(
            "select jobforge_private.audit(%s, null, 'job_cancel', null, null, 'job', 'j',"
            " 'success', null, %s::jsonb)",
            (tenant, json.dumps(details)),
        )
    assert audit_rows(admin_conn, tenant) == []


def test_the_shapes_the_rpcs_write_pass(admin_conn: Any) -> None:
    def error(details: dict[str, Any]) -> str | None:
        row = admin_conn.execute(
            "select jobforge_private.audit_details_error(%s::jsonb)", (json.dumps(details),)
        ).fetchone()
        return None if row is None else row[0]

    assert error({}) is None
    assert error({"policy": {"kid": "k", "jti": "j", "scopes": ["ops:read"]}}) is None
    assert error({"event_ids": [str(uuid.uuid4())], "count": 2, "dry_run": False}) is None
    assert error({"source_module": None, "payload_keys": []}) is None
    assert error({"payload": {}}) == "payload is not an audit detail"
    assert error({"policy": {"body": 1}}) == "policy.body is not an audit detail"
    assert error({"scopes": [{}]}) == "scopes must be a list of scalars"
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        admin_conn.execute(
            "insert into jobforge_audit_logs (action, outcome, details)"
            """ values ('job_cancel', 'success', '{"payload": {}}')"""
        )
    assert info.value.diag.constraint_name == "jobforge_audit_logs_details_no_content"
