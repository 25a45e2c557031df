"""``jobforge_complete_job(p_retryable => false)`` and the batch's ``retryable`` item field:
a failure the worker knows no retry can fix makes the job dead at once, attempts left or
not, and the checks that guard completion (service role, holder) still apply."""

from __future__ import annotations

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
)
from tests.support.roles import RoleSession, tenant_claims

ERROR = {"type": "InvalidJobInputs", "message": "inputs.depth: 9 is greater than 5"}


def _held(svc: RoleSession, tenant: str, jtype: str, worker: str = "w") -> dict[str, Any]:
    job = enqueue(svc, tenant, jtype, p_max_attempts=5)
    [claimed] = claim(svc, worker, [jtype])
    assert claimed["id"] == job["id"]
    return claimed


def test_a_failure_that_is_not_retryable_is_dead_at_the_first_attempt(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = _held(svc, tenant, jtype)
    done = complete(svc, job["id"], "w", "failed", p_error=ERROR, p_retryable=False)
    assert done["status"] == "dead"
    row = job_row(admin_conn, job["id"])
    assert row is not None
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("dead", 1, 5)
    assert row["error"] == ERROR
    assert row["finished_at"] is not None
    assert row["locked_by"] is None
    assert [
        (a["attempt"], a["status"], a["error"]) for a in attempts_of(admin_conn, job["id"])
    ] == [(1, "failed", ERROR)]
    assert claim(svc, "w", [jtype]) == []  # nothing comes back for another attempt


@pytest.mark.parametrize("retryable", [True, None])
def test_a_retryable_failure_still_goes_back_to_the_queue(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
    retryable: bool | None,
) -> None:
    job = _held(svc, tenant, jtype)
    done = complete(svc, job["id"], "w", "failed", p_error=ERROR, p_retryable=retryable)
    assert done["status"] == "queued"
    row = job_row(admin_conn, job["id"])
    assert row is not None
    assert (row["status"], row["attempts"], row["finished_at"]) == ("queued", 1, None)


def test_not_retryable_does_not_change_a_success(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = _held(svc, tenant, jtype)
    done = complete(svc, job["id"], "w", "succeeded", p_result={"ok": 1}, p_retryable=False)
    assert done["status"] == "succeeded"
    assert done["error"] is None


def test_not_retryable_keeps_the_holder_and_role_checks(
    svc: RoleSession,
    act_as: ActAs,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
) -> None:
    job = _held(svc, tenant, jtype)
    before = job_row(admin_conn, job["id"])
    expect_error(
        "PT409",
        f"job {job['id']} is not held by worker intruder",
        svc,
        "jobforge_complete_job",
        p_job_id=job["id"],
        p_worker_id="intruder",
        p_status="failed",
        p_retryable=False,
    )
    user = act_as("authenticated", tenant_claims(tenant))
    for fn, args in (
        (
            "jobforge_complete_job",
            {"p_job_id": job["id"], "p_worker_id": "w", "p_status": "failed", "p_retryable": False},
        ),
        (
            "jobforge_complete_jobs",
            {
                "p_worker_id": "w",
                "p_results": [{"job_id": job["id"], "status": "failed", "retryable": False}],
            },
        ),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.call(fn, **args)
    assert job_row(admin_conn, job["id"]) == before
    assert attempts_of(admin_conn, job["id"]) == []


def test_the_batch_kills_only_the_items_marked_not_retryable(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    jobs = [enqueue(svc, tenant, jtype, p_max_attempts=5) for _ in range(4)]
    assert len(claim(svc, "w", [jtype])) == 4
    rows = svc.call(
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[
            {"job_id": jobs[0]["id"], "status": "failed", "error": ERROR, "retryable": False},
            {"job_id": jobs[1]["id"], "status": "failed", "error": ERROR, "retryable": True},
            {"job_id": jobs[2]["id"], "status": "failed", "error": ERROR},
            {"job_id": jobs[3]["id"], "status": "succeeded", "retryable": False},
        ],
    )
    assert [r["status"] for r in rows] == ["dead", "queued", "queued", "succeeded"]
    stored = [job_row(admin_conn, j["id"]) for j in jobs]
    assert [(s or {}).get("status") for s in stored] == ["dead", "queued", "queued", "succeeded"]
    assert stored[0] is not None
    assert stored[0]["finished_at"] is not None
    assert stored[0]["error"] == ERROR
    assert [a["status"] for a in attempts_of(admin_conn, jobs[0]["id"])] == ["failed"]


@pytest.mark.parametrize("retryable", ["no", 0, [False], {"x": 1}])
def test_the_batch_refuses_a_retryable_that_is_not_a_boolean(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str, retryable: Any
) -> None:
    job = _held(svc, tenant, jtype)
    before = job_row(admin_conn, job["id"])
    message = expect_error(
        "PT400",
        "results[0]:",
        svc,
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[{"job_id": job["id"], "status": "failed", "retryable": retryable}],
    )
    assert "retryable (boolean)" in message
    assert job_row(admin_conn, job["id"]) == before
