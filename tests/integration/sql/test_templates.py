"""``supabase/schema/40_templates.sql``: the seeded templates and ``jobforge_request_job``.

The shared database keeps every template disabled; tests that need enabled templates use
``enabled_db_url``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.integration.sql.helpers import (
    ACTION,
    SCAN,
    ActAs,
    audit_rows,
    jobs_of,
    sql_error,
)
from tests.support.roles import tenant_claims

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


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_request_jobs_for_tenant_b(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    user_b = act_as("authenticated", tenant_claims(b), url=enabled_db_url)
    b_job = user_b.call(
        "jobforge_request_job",
        p_tenant_id=b,
        p_template_key=SCAN,
        p_inputs={"target": "host-of-b"},
        p_idempotency_key="same-key",
    )["job"]
    b_jobs, b_audits = jobs_of(enabled_admin, b), audit_rows(enabled_admin, b)

    user_a = act_as("authenticated", tenant_claims(a), url=enabled_db_url)
    for dry_run in (False, True):
        with sql_error("PT403", f"tenant_id: caller may not act for tenant {b}"):
            user_a.call(
                "jobforge_request_job",
                p_tenant_id=b,
                p_template_key=SCAN,
                p_inputs={"target": "x"},
                p_idempotency_key="same-key",
                p_dry_run=dry_run,
            )
    # B's idempotency key, used for A, is A's own new job, never B's.
    mine = user_a.call(
        "jobforge_request_job",
        p_tenant_id=a,
        p_template_key=SCAN,
        p_inputs={"target": "host-of-a"},
        p_idempotency_key="same-key",
    )["job"]
    assert mine["id"] != b_job["id"]
    assert mine["tenant_id"] == str(a)
    assert mine["payload"]["inputs"] == {"target": "host-of-a"}
    # The template registry is not a tenant's: A reads the same as B.
    assert user_a.call("jobforge_get_template", p_template_key=SCAN) == user_b.call(
        "jobforge_get_template", p_template_key=SCAN
    )

    assert jobs_of(enabled_admin, b) == b_jobs
    assert audit_rows(enabled_admin, b) == b_audits
