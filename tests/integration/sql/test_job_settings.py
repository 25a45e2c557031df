"""A job's ``priority`` and ``timeout_ms``, called directly: set by the single and the
batch enqueue (same rules, same reasons, nothing written on a refusal), changed by
``jobforge_reschedule_job``, taken from the template by ``jobforge_request_job``, and
enforced by ``jobforge_reap_stale_jobs`` even while the worker still heartbeats."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import (
    SCAN,
    ActAs,
    attempts_of,
    claim,
    complete,
    count_jobs,
    enqueue,
    expect_error,
    job_row,
    new_tenant,
    new_type,
)
from tests.support.roles import RoleSession, tenant_claims


@pytest.fixture
def fresh_admin(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def fresh_svc(act_as: ActAs, fresh_db_url: str) -> RoleSession:
    return act_as("service_role", url=fresh_db_url)


# -- setting them -------------------------------------------------------------------------


def test_enqueue_sets_priority_and_timeout(svc: RoleSession, tenant: str, jtype: str) -> None:
    plain = enqueue(svc, tenant, jtype)
    assert (plain["priority"], plain["timeout_ms"]) == (0, None)
    job = enqueue(svc, tenant, jtype, p_priority=-32768, p_timeout_ms=1)
    assert (job["priority"], job["timeout_ms"]) == (-32768, 1)
    job = enqueue(svc, tenant, jtype, p_priority=32767, p_timeout_ms=86_400_000)
    assert (job["priority"], job["timeout_ms"]) == (32767, 86_400_000)
    # SQL NULL is the default, as for max_attempts.
    job = enqueue(svc, tenant, jtype, p_priority=None, p_timeout_ms=None)
    assert (job["priority"], job["timeout_ms"]) == (0, None)


def test_enqueue_jobs_sets_them_per_element(svc: RoleSession, tenant: str, jtype: str) -> None:
    for returning in ("rows", "ids"):
        for keyed in (False, True):
            keys = [f"{returning}-{n}" if keyed else None for n in range(3)]
            specs: list[dict[str, Any]] = [
                {"type": jtype, "idempotency_key": keys[0]},
                {"type": jtype, "priority": 7, "timeout_ms": 2500, "idempotency_key": keys[1]},
                {"type": jtype, "priority": -3, "timeout_ms": None, "idempotency_key": keys[2]},
            ]
            answer = svc.call(
                "jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=specs, p_returning=returning
            )
            ids = answer if returning == "ids" else [row["id"] for row in answer]
            rows = svc.query(
                "select priority, timeout_ms from public.jobforge_jobs"
                " where id = any(%s::uuid[]) order by array_position(%s::uuid[], id)",
                (ids, ids),
            )
            assert rows == [(0, None), (7, 2500), (-3, None)], (returning, keyed)


# Each refused value, and the reason both RPCs give.
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("priority", 32768, "must be between -32768 and 32767"),
    ("priority", -32769, "must be between -32768 and 32767"),
    ("priority", 2**40, "must be between -32768 and 32767"),
    ("timeout_ms", 0, "must be between 1 and 86400000 (24 hours)"),
    ("timeout_ms", -5, "must be between 1 and 86400000 (24 hours)"),
    ("timeout_ms", 86_400_001, "must be between 1 and 86400000 (24 hours)"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD_VALUES)
def test_single_and_batch_refuse_out_of_range_alike_and_write_nothing(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
    field: str,
    value: Any,
    reason: str,
) -> None:
    if abs(value) < 2**31:  # the single RPC's argument is an integer
        message = expect_error(
            "PT400",
            f"{field}: ",
            svc,
            "jobforge_enqueue_job",
            p_tenant_id=tenant,
            p_type=jtype,
            **{f"p_{field}": value},
        )
        assert message == f"{field}: {reason}"
    message = expect_error(
        "PT400",
        f"jobs[2].{field}: ",
        svc,
        "jobforge_enqueue_jobs",
        p_tenant_id=tenant,
        p_jobs=[{"type": jtype}, {"type": jtype, "priority": 1}, {"type": jtype, field: value}],
    )
    assert message == f"jobs[2].{field}: {reason}"
    assert count_jobs(admin_conn, tenant) == 0


@pytest.mark.parametrize("field", ["priority", "timeout_ms"])
@pytest.mark.parametrize("value", [True, False, "5", 1.5, [1], {"ms": 1}])
def test_batch_refuses_what_is_not_an_integer(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
    field: str,
    value: Any,
) -> None:
    message = expect_error(
        "PT400",
        f"jobs[1].{field}: ",
        svc,
        "jobforge_enqueue_jobs",
        p_tenant_id=tenant,
        p_jobs=[{"type": jtype}, {"type": jtype, field: value}],
    )
    assert message == f"jobs[1].{field}: must be an integer"
    assert count_jobs(admin_conn, tenant) == 0


@pytest.mark.parametrize("value", ["high", "true", "1.5"])
def test_the_single_rpc_takes_integers_only(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str, value: str
) -> None:
    """Text that is not an integer does not become one: the call fails as a cast."""
    for field in ("p_priority", "p_timeout_ms"):
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            svc.call("jobforge_enqueue_job", p_tenant_id=tenant, p_type=jtype, **{field: value})
    assert count_jobs(admin_conn, tenant) == 0


def test_a_user_sets_them_only_for_its_own_tenants(
    act_as: ActAs, admin_conn: psycopg.Connection[Any], jtype: str
) -> None:
    mine, theirs = new_tenant(), new_tenant()
    user = act_as("authenticated", tenant_claims(mine))
    job = enqueue(user, mine, jtype, p_priority=5, p_timeout_ms=1000)
    assert (job["priority"], job["timeout_ms"]) == (5, 1000)
    expect_error(
        "PT403", "", user, "jobforge_enqueue_job", p_tenant_id=theirs, p_type=jtype, p_priority=5
    )
    expect_error(
        "PT403",
        "",
        user,
        "jobforge_enqueue_jobs",
        p_tenant_id=theirs,
        p_jobs=[{"type": jtype, "priority": 5, "timeout_ms": 10}],
    )
    assert count_jobs(admin_conn, theirs) == 0


# -- reschedule -----------------------------------------------------------------------------


def test_reschedule_changes_priority_run_at_or_both(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    moved = svc.call(
        "jobforge_reschedule_job", p_job_id=job["id"], p_tenant_id=tenant, p_priority=9
    )
    assert moved["priority"] == 9
    assert moved["run_at"] == job["run_at"]  # left as it was
    later = datetime.now(UTC) + timedelta(hours=1)
    moved = svc.call(
        "jobforge_reschedule_job", p_job_id=job["id"], p_tenant_id=tenant, p_run_at=later
    )
    assert moved["priority"] == 9  # left as it was
    assert datetime.fromisoformat(moved["run_at"]) == later
    moved = svc.call(
        "jobforge_reschedule_job",
        p_job_id=job["id"],
        p_tenant_id=tenant,
        p_run_at=later + timedelta(hours=1),
        p_priority=-1,
    )
    assert moved["priority"] == -1
    assert datetime.fromisoformat(moved["run_at"]) == later + timedelta(hours=1)


def test_reschedule_refuses_bad_priority_and_changes_nothing(
    svc: RoleSession, act_as: ActAs, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_priority=4)
    before = job_row(admin_conn, job["id"])
    call = {"p_job_id": job["id"], "p_tenant_id": tenant}
    expect_error("PT400", "run_at: is required", svc, "jobforge_reschedule_job", **call)
    for value in (32768, -32769):
        expect_error(
            "PT400",
            "priority: must be between -32768 and 32767",
            svc,
            "jobforge_reschedule_job",
            **call,
            p_priority=value,
        )
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_reschedule_job",
        p_job_id=str(uuid.uuid4()),
        p_tenant_id=tenant,
        p_priority=1,
    )
    # Another tenant's caller: refused in the database, for the job id too.
    other = new_tenant()
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_reschedule_job",
        p_job_id=job["id"],
        p_tenant_id=other,
        p_priority=1,
    )
    user = act_as("authenticated", tenant_claims(other))
    expect_error("PT403", "", user, "jobforge_reschedule_job", **call, p_priority=1)
    claim(svc, "w", [jtype])
    expect_error("PT409", "job ", svc, "jobforge_reschedule_job", **call, p_priority=1)
    after = job_row(admin_conn, job["id"])
    assert after is not None
    assert before is not None
    assert after["priority"] == 4
    assert after["run_at"] == before["run_at"]


# -- templates --------------------------------------------------------------------------------


def test_request_job_uses_the_templates_priority_and_timeout(
    act_as: ActAs, enabled_db_url: str, enabled_admin: psycopg.Connection[Any]
) -> None:
    enabled_admin.execute(
        "update public.jobforge_job_templates set default_priority = 12, default_timeout_ms = 45000"
        " where template_key = %s",
        (SCAN,),
    )
    try:
        svc = act_as("service_role", url=enabled_db_url)
        tenant = new_tenant()
        answer = svc.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": "svc-a"},
        )
        job = answer["job"]
        assert (job["priority"], job["timeout_ms"]) == (12, 45000)
    finally:
        enabled_admin.execute(
            "update public.jobforge_job_templates set default_priority = 0,"
            " default_timeout_ms = 600000 where template_key = %s",
            (SCAN,),
        )


# -- the reaper's deadline ------------------------------------------------------------------


def _backdate(conn: psycopg.Connection[Any], job_id: str, seconds: float) -> None:
    """Make the attempt older: as if it had been claimed ``seconds`` earlier."""
    conn.execute(
        "update public.jobforge_jobs set started_at = started_at - make_interval(secs => %s)"
        " where id = %s",
        (seconds, job_id),
    )


def test_the_reaper_takes_back_an_attempt_past_its_timeout_while_heartbeats_go_on(
    fresh_svc: RoleSession, fresh_admin: psycopg.Connection[Any]
) -> None:
    tenant, jtype = new_tenant(), new_type()
    timed = enqueue(fresh_svc, tenant, jtype, p_timeout_ms=200, p_max_attempts=3)
    untimed = enqueue(fresh_svc, tenant, jtype)
    roomy = enqueue(fresh_svc, tenant, jtype, p_timeout_ms=3_600_000)
    assert len(claim(fresh_svc, "w1", [jtype])) == 3
    ids = [timed["id"], untimed["id"], roomy["id"]]
    for job_id in ids:
        _backdate(fresh_admin, job_id, 600)  # ten minutes into every attempt
    held = fresh_svc.call("jobforge_heartbeat_jobs", p_worker_id="w1", p_job_ids=ids)
    assert sorted(held) == sorted(ids)  # the worker is alive and holds all three

    # A reaper whose staleness window every heartbeat satisfies still takes the one past
    # its own deadline, and only that one.
    assert fresh_svc.call("jobforge_reap_stale_jobs", p_timeout="5 minutes") == 1
    row = job_row(fresh_admin, timed["id"])
    assert row is not None
    assert row["status"] == "queued"
    assert row["locked_by"] is None
    assert row["error"]["type"] == "JobTimeout"
    assert row["error"]["timeout_ms"] == 200
    # Retried with the backoff of a failure (1 s after attempt 1), not at once.
    assert datetime.fromisoformat(row["run_at"]) > datetime.now(UTC)
    for other in (untimed["id"], roomy["id"]):
        assert job_row(fresh_admin, other)["status"] == "running"  # type: ignore[index]
    attempts = attempts_of(fresh_admin, timed["id"])
    assert [(a["attempt"], a["status"], a["worker_id"]) for a in attempts] == [
        (1, "timed_out", "w1")
    ]
    assert attempts[0]["error"]["type"] == "JobTimeout"
    listed = fresh_svc.call("jobforge_list_job_attempts", p_job_id=timed["id"], p_tenant_id=tenant)
    assert [a["status"] for a in listed] == ["timed_out"]

    # The original worker's late word is refused and changes nothing.
    expect_error(
        "PT409", "job ", fresh_svc, "jobforge_heartbeat_job", p_job_id=timed["id"], p_worker_id="w1"
    )
    expect_error(
        "PT409",
        "job ",
        fresh_svc,
        "jobforge_complete_job",
        p_job_id=timed["id"],
        p_worker_id="w1",
        p_status="succeeded",
        p_result={"late": True},
    )
    expect_error(
        "PT409",
        "job ",
        fresh_svc,
        "jobforge_complete_jobs",
        p_worker_id="w1",
        p_results=[
            {"job_id": untimed["id"], "status": "succeeded"},
            {"job_id": timed["id"], "status": "succeeded"},
        ],
    )
    assert fresh_svc.call("jobforge_heartbeat_jobs", p_worker_id="w1", p_job_ids=ids) == sorted(
        [untimed["id"], roomy["id"]]
    )
    after = job_row(fresh_admin, timed["id"])
    assert after is not None
    assert (after["status"], after["result"], after["attempts"]) == ("queued", None, 1)
    assert job_row(fresh_admin, untimed["id"])["status"] == "running"  # type: ignore[index]
    assert len(attempts_of(fresh_admin, timed["id"])) == 1
    assert fresh_svc.call("jobforge_reap_stale_jobs", p_timeout="5 minutes") == 0


def test_a_timed_out_last_attempt_is_dead(
    fresh_svc: RoleSession, fresh_admin: psycopg.Connection[Any]
) -> None:
    tenant, jtype = new_tenant(), new_type()
    job = enqueue(fresh_svc, tenant, jtype, p_timeout_ms=50, p_max_attempts=1)
    claim(fresh_svc, "w1", [jtype])
    time.sleep(0.1)  # past 50 ms: no backdating, the real clock
    fresh_svc.call("jobforge_heartbeat_job", p_job_id=job["id"], p_worker_id="w1")
    assert fresh_svc.call("jobforge_reap_stale_jobs", p_timeout="1 hour") == 1
    row = job_row(fresh_admin, job["id"])
    assert row is not None
    assert (row["status"], row["error"]["type"]) == ("dead", "JobTimeout")
    assert row["finished_at"] is not None
    assert [a["status"] for a in attempts_of(fresh_admin, job["id"])] == ["timed_out"]
    expect_error(
        "PT409",
        "job ",
        fresh_svc,
        "jobforge_complete_job",
        p_job_id=job["id"],
        p_worker_id="w1",
        p_status="failed",
        p_error={"type": "Late"},
    )


def test_a_worker_that_reports_in_time_is_not_reaped(
    fresh_svc: RoleSession, fresh_admin: psycopg.Connection[Any]
) -> None:
    tenant, jtype = new_tenant(), new_type()
    job = enqueue(fresh_svc, tenant, jtype, p_timeout_ms=60_000)
    claim(fresh_svc, "w1", [jtype])
    complete(fresh_svc, job["id"], "w1", "succeeded", p_result={"ok": 1})
    _backdate(fresh_admin, job["id"], 3600)
    assert fresh_svc.call("jobforge_reap_stale_jobs", p_timeout="5 minutes") == 0
    assert job_row(fresh_admin, job["id"])["status"] == "succeeded"  # type: ignore[index]


def test_the_attempt_statuses_allow_timed_out(admin_conn: psycopg.Connection[Any]) -> None:
    row = admin_conn.execute(
        "select pg_get_constraintdef(c.oid) from pg_constraint c"
        " where c.conrelid = 'public.jobforge_job_attempts'::regclass and c.contype = 'c'"
    ).fetchone()
    assert row is not None
    assert "'timed_out'" in row[0]
