"""``jobforge_retry_job`` and ``jobforge_retry_dead_jobs`` (``supabase/schema/20_jobs.sql``):
the dead letter put back in the queue, called as each role.

The reset, the statuses it accepts and refuses, bad input (refused with the field named
and nothing changed), the audit row, the notification, and tenant isolation.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import (
    ActAs,
    attempts_of,
    claim,
    complete,
    enqueue,
    expect_error,
    job_row,
    new_tenant,
    new_type,
    tenant_rows,
)
from tests.support.roles import RoleSession, tenant_claims


def dead_job(svc: RoleSession, tenant: str, jtype: str, **args: Any) -> dict[str, Any]:
    """A job that failed its only attempt: dead, with an error and an attempt row."""
    job = enqueue(svc, tenant, jtype, p_max_attempts=1, **args)
    assert [j["id"] for j in claim(svc, "w", [jtype])] == [job["id"]]
    dead = complete(svc, job["id"], "w", "failed", p_error={"message": "boom"})
    assert dead["status"] == "dead"
    return dead


def audit_rows(conn: psycopg.Connection[Any], tenant: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select to_jsonb(a) from public.jobforge_audit_logs a"
        " where a.tenant_id = %s and a.action = 'job_retry' order by a.created_at",
        (tenant,),
    ).fetchall()
    return [r[0] for r in rows]


# -- one job ----------------------------------------------------------------------------


def test_retry_job_puts_a_dead_job_back_in_the_queue(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    dead = dead_job(svc, tenant, jtype, p_payload={"n": 1})
    assert dead["attempts"] == 1
    assert dead["error"] is not None
    assert dead["finished_at"]

    job = svc.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=dead["id"])

    assert job["id"] == dead["id"]
    assert (job["status"], job["attempts"], job["error"]) == ("queued", 0, None)
    assert (job["finished_at"], job["started_at"], job["locked_by"]) == (None, None, None)
    assert job["payload"] == {"n": 1}
    assert job["run_at"] >= dead["finished_at"]
    assert job_row(admin_conn, dead["id"]) == job
    # The failed attempt stays in the history; the job runs again from the start.
    assert [a["status"] for a in attempts_of(admin_conn, dead["id"])] == ["failed"]
    again = claim(svc, "w2", [jtype])
    assert [(j["id"], j["attempts"]) for j in again] == [(dead["id"], 1)]
    done = complete(svc, dead["id"], "w2", "succeeded", p_result={"ok": True})
    assert done["status"] == "succeeded"


def test_retry_job_accepts_the_legacy_failed_status(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    # No RPC leaves a job failed any more (20_jobs.sql), but rows from before may be.
    job = dead_job(svc, tenant, jtype)
    admin_conn.execute(
        "update public.jobforge_jobs set status = 'failed' where id = %s", (job["id"],)
    )
    retried = svc.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=job["id"])
    assert (retried["status"], retried["attempts"]) == ("queued", 0)


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "canceled"])
def test_retry_job_refuses_a_job_that_is_not_dead_and_changes_nothing(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
    status: str,
) -> None:
    job = enqueue(svc, tenant, jtype)
    if status in ("running", "succeeded"):
        claim(svc, "w", [jtype])
    if status == "succeeded":
        complete(svc, job["id"], "w", "succeeded")
    if status == "canceled":
        svc.call("jobforge_cancel_job", p_job_id=job["id"], p_tenant_id=tenant)
    before = tenant_rows(admin_conn, tenant)
    assert job_row(admin_conn, job["id"])["status"] == status  # type: ignore[index]

    message = expect_error(
        "PT409",
        f"job {job['id']} is {status}",
        svc,
        "jobforge_retry_job",
        p_tenant_id=tenant,
        p_job_id=job["id"],
    )
    assert "only dead or failed jobs can be retried" in message
    assert tenant_rows(admin_conn, tenant) == before
    assert audit_rows(admin_conn, tenant) == []


def test_retry_job_bad_input_names_the_field_and_changes_nothing(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    dead = dead_job(svc, tenant, jtype)
    before = tenant_rows(admin_conn, tenant)
    expect_error(
        "PT400", "job_id: is required", svc, "jobforge_retry_job", p_tenant_id=tenant, p_job_id=None
    )
    expect_error(
        "PT400", "tenant_id: ", svc, "jobforge_retry_job", p_tenant_id=None, p_job_id=dead["id"]
    )
    for actor, reason in (("", "must not be empty"), ("a" * 256, "must be at most 255")):
        expect_error(
            "PT400",
            f"actor_id: {reason}",
            svc,
            "jobforge_retry_job",
            p_tenant_id=tenant,
            p_job_id=dead["id"],
            p_actor_id=actor,
        )
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_retry_job",
        p_tenant_id=tenant,
        p_job_id=str(uuid.uuid4()),
    )
    assert tenant_rows(admin_conn, tenant) == before
    assert audit_rows(admin_conn, tenant) == []


def test_retry_job_is_audited_with_the_actor(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any], jtype: str
) -> None:
    tenant = new_tenant()
    project = str(uuid.uuid4())
    payload = {"project_id": project, "trace_id": "tr-r", "secret": "never audited"}
    first = dead_job(svc, tenant, jtype, p_payload=payload)
    second = dead_job(svc, tenant, jtype)

    # The service role names the operator it acts for.
    svc.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=first["id"], p_actor_id="ops@x")
    # A signed-in user is recorded as itself, whatever it claims.
    user = act_as("authenticated", tenant_claims(tenant, sub="user-r"))
    user.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=second["id"], p_actor_id="boss")

    rows = audit_rows(admin_conn, tenant)
    assert [
        (r["actor_id"], r["target_type"], r["target_id"], r["outcome"], r["trace_id"]) for r in rows
    ] == [
        ("ops@x", "job", first["id"], "success", "tr-r"),
        ("user-r", "job", second["id"], "success", None),
    ]
    assert rows[0]["project_id"] == project
    assert rows[0]["details"] == {"type": jtype, "previous_status": "dead"}
    assert "never audited" not in str(rows)


def test_retry_job_notifies_workers_of_its_type(
    svc: RoleSession, migrated_db_url: str, tenant: str, jtype: str
) -> None:
    dead = dead_job(svc, tenant, jtype)
    with psycopg.connect(migrated_db_url, autocommit=True) as listener:
        listener.execute("listen jobforge_jobs")
        svc.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=dead["id"])
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [jtype]
        # A refused retry notifies nobody.
        with pytest.raises(psycopg.Error):
            svc.call("jobforge_retry_job", p_tenant_id=tenant, p_job_id=dead["id"])
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []


# -- every dead job ---------------------------------------------------------------------


def test_retry_dead_jobs_retries_the_dead_jobs_of_a_type(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    other = new_type()
    dead = [dead_job(svc, tenant, jtype)["id"] for _ in range(3)]
    other_dead = dead_job(svc, tenant, other)["id"]
    elsewhere = dead_job(svc, new_tenant(), jtype)["id"]
    queued = enqueue(svc, tenant, jtype)["id"]

    ids = svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant, p_type=jtype, p_actor_id="ops")

    assert sorted(ids) == sorted(dead)
    for job_id in dead:
        row = job_row(admin_conn, job_id)
        assert row is not None
        assert (row["status"], row["attempts"], row["error"], row["finished_at"]) == (
            "queued",
            0,
            None,
            None,
        )
    assert job_row(admin_conn, other_dead)["status"] == "dead"  # type: ignore[index]
    assert job_row(admin_conn, queued)["attempts"] == 0  # type: ignore[index]
    assert job_row(admin_conn, elsewhere)["status"] == "dead"  # type: ignore[index]

    # One audit row names every job, with no payload.
    (row,) = audit_rows(admin_conn, tenant)
    assert (row["actor_id"], row["target_type"], row["target_id"]) == ("ops", "job", None)
    assert row["details"] == {"job_ids": sorted(dead), "count": 3, "type": jtype}

    # Nothing left of that type: an empty answer, and no audit row for it.
    assert svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant, p_type=jtype) == []
    assert len(audit_rows(admin_conn, tenant)) == 1
    # Without a type: every dead job of the tenant.
    assert svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant) == [other_dead]
    assert audit_rows(admin_conn, tenant)[-1]["details"] == {"job_ids": [other_dead], "count": 1}


def test_retry_dead_jobs_takes_at_most_limit_oldest_first(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    dead = [dead_job(svc, tenant, jtype)["id"] for _ in range(3)]
    first = svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant, p_type=jtype, p_limit=2)
    assert sorted(first) == sorted(dead[:2])
    assert job_row(admin_conn, dead[2])["status"] == "dead"  # type: ignore[index]
    assert svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant, p_limit=2) == [dead[2]]
    assert [r["details"]["count"] for r in audit_rows(admin_conn, tenant)] == [2, 1]


def test_retry_dead_jobs_bad_input_names_the_field_and_changes_nothing(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    dead_job(svc, tenant, jtype)
    before = tenant_rows(admin_conn, tenant)
    bad: list[tuple[str, dict[str, Any]]] = [
        ("tenant_id: ", {"p_tenant_id": None}),
        ("type: must not be empty", {"p_type": ""}),
        ("type: must be at most 255 characters", {"p_type": "t" * 256}),
        ("limit: must be between 1 and 1000", {"p_limit": 0}),
        ("limit: must be between 1 and 1000", {"p_limit": -1}),
        ("limit: must be between 1 and 1000", {"p_limit": 1001}),
        ("limit: must be between 1 and 1000", {"p_limit": 2147483647}),
        ("limit: must be between 1 and 1000", {"p_limit": None}),
        ("actor_id: must not be empty", {"p_actor_id": ""}),
    ]
    for prefix, args in bad:
        expect_error(
            "PT400", prefix, svc, "jobforge_retry_dead_jobs", **{"p_tenant_id": tenant, **args}
        )
    assert tenant_rows(admin_conn, tenant) == before
    assert audit_rows(admin_conn, tenant) == []


def test_retry_dead_jobs_notifies_once_and_only_when_it_retried(
    svc: RoleSession, migrated_db_url: str, tenant: str, jtype: str
) -> None:
    dead_job(svc, tenant, jtype)
    dead_job(svc, tenant, jtype)
    with psycopg.connect(migrated_db_url, autocommit=True) as listener:
        listener.execute("listen jobforge_jobs")
        assert len(svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant, p_type=jtype)) == 2
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [jtype]
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []
        assert svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant) == []
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []
        other = new_type()
        dead_job(svc, tenant, other)  # its enqueue notifies
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [other]
        svc.call("jobforge_retry_dead_jobs", p_tenant_id=tenant)
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [""]


# -- tenants ----------------------------------------------------------------------------


def test_a_user_of_tenant_a_cannot_retry_tenant_b_jobs(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any]
) -> None:
    a, b, jtype = new_tenant(), new_tenant(), new_type()
    b_dead = dead_job(svc, b, jtype)
    user_a = act_as("authenticated", tenant_claims(a))
    before = tenant_rows(admin_conn, b)

    # Acting for B: refused before anything else.
    expect_error(
        "PT403",
        f"tenant_id: caller may not act for tenant {b}",
        user_a,
        "jobforge_retry_job",
        p_tenant_id=b,
        p_job_id=b_dead["id"],
    )
    expect_error(
        "PT403",
        f"tenant_id: caller may not act for tenant {b}",
        user_a,
        "jobforge_retry_dead_jobs",
        p_tenant_id=b,
    )
    # Acting for A with B's job id: B's job does not exist for A.
    expect_error(
        "PT404",
        f"job {b_dead['id']} not found",
        user_a,
        "jobforge_retry_job",
        p_tenant_id=a,
        p_job_id=b_dead["id"],
    )
    assert user_a.call("jobforge_retry_dead_jobs", p_tenant_id=a, p_type=jtype) == []
    assert tenant_rows(admin_conn, b) == before
    assert audit_rows(admin_conn, b) == []

    # The user of B can.
    user_b = act_as("authenticated", tenant_claims(b))
    assert user_b.call("jobforge_retry_dead_jobs", p_tenant_id=b) == [b_dead["id"]]


def test_anon_cannot_retry(act_as: ActAs, svc: RoleSession, tenant: str, jtype: str) -> None:
    dead = dead_job(svc, tenant, jtype)
    anon = act_as("anon")
    for fn, args in (
        ("jobforge_retry_job", {"p_tenant_id": tenant, "p_job_id": dead["id"]}),
        ("jobforge_retry_dead_jobs", {"p_tenant_id": tenant}),
    ):
        with pytest.raises(psycopg.Error) as info:
            anon.call(fn, **args)
        assert info.value.sqlstate == "42501"
