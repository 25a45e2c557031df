"""``supabase/schema/50_manifests.sql``: the artifact manifest of a run.

Written by workers (service_role only) and read by the tenant's apps.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.integration.sql.helpers import (
    ActAs,
    audit_rows,
    count,
    sql_error,
)
from tests.support.roles import tenant_claims


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


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_read_tenant_b_manifests(act_as: ActAs, admin_conn: Any) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    sr = act_as("service_role")
    run = sr.call("jobforge_enqueue_job", p_tenant_id=b, p_type="test.manifest")
    manifest = sr.call(
        "jobforge_create_manifest",
        p_run_id=run["id"],
        p_tenant_id=b,
        p_manifest={"logs_ref": "s3://b/logs.txt"},
    )

    user_a = act_as("authenticated", tenant_claims(a))
    with sql_error("PT403", f"tenant_id: caller may not act for tenant {b}"):
        user_a.call("jobforge_get_manifest", p_run_id=run["id"], p_tenant_id=b)
    # Acting for A, B's run has no manifest; the table shows A none of B's rows.
    assert user_a.call("jobforge_get_manifest", p_run_id=run["id"], p_tenant_id=a) is None
    assert user_a.query(
        "select count(*) from public.jobforge_artifact_manifests where run_id = %s", (run["id"],)
    ) == [(0,)]
    # Writing is the service role's; and even it cannot file B's run under A.
    with sql_error("42501"):
        user_a.call("jobforge_create_manifest", p_run_id=run["id"], p_tenant_id=a, p_manifest={})
    with sql_error("PT404", f"run {run['id']} not found"):
        sr.call(
            "jobforge_create_manifest",
            p_run_id=run["id"],
            p_tenant_id=a,
            p_manifest={"status": "failed"},
        )

    user_b = act_as("authenticated", tenant_claims(b))
    assert user_b.call("jobforge_get_manifest", p_run_id=run["id"], p_tenant_id=b) == manifest
    assert audit_rows(admin_conn, a) == []
