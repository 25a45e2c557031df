"""``supabase/schema/25_workers.sql``: the worker RPCs (service_role only), called directly.

Claim (order, limit, type filters), heartbeat, complete (success, retries with backoff,
dead), only by the holder, reaping jobs whose worker stopped heartbeating, and four
worker processes running every job exactly once.

Tests share one database (``migrated_db_url``) and isolate themselves with fresh job
types; those that claim without a type filter, reap, or need an empty queue use
``fresh_db_url``.
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

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
    ts,
)
from tests.support.roles import RoleSession


@pytest.fixture
def fresh_admin(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        yield conn


# -- input validation -------------------------------------------------------------------


def test_worker_rpcs_refuse_bad_input(svc: RoleSession, tenant: str, jtype: str) -> None:
    job_id = enqueue(svc, tenant, jtype)["id"]
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("jobforge_claim_jobs", "worker_id: ", {"p_worker_id": ""}),
        ("jobforge_claim_jobs", "worker_id: ", {"p_worker_id": None}),
        ("jobforge_claim_jobs", "worker_id: ", {"p_worker_id": "w" * 256}),
        ("jobforge_claim_jobs", "limit: ", {"p_worker_id": "w", "p_limit": 0}),
        ("jobforge_claim_jobs", "limit: ", {"p_worker_id": "w", "p_limit": 1001}),
        ("jobforge_claim_jobs", "types: ", {"p_worker_id": "w", "p_types": []}),
        ("jobforge_heartbeat_job", "job_id: ", {"p_job_id": None, "p_worker_id": "w"}),
        ("jobforge_heartbeat_job", "worker_id: ", {"p_job_id": job_id, "p_worker_id": ""}),
        (
            "jobforge_complete_job",
            "status: ",
            {"p_job_id": job_id, "p_worker_id": "w", "p_status": "running"},
        ),
        (
            "jobforge_complete_job",
            "status: ",
            {"p_job_id": job_id, "p_worker_id": "w", "p_status": None},
        ),
        (
            "jobforge_complete_job",
            "artifact_ref: ",
            {
                "p_job_id": job_id,
                "p_worker_id": "w",
                "p_status": "succeeded",
                "p_artifact_ref": "r" * 2049,
            },
        ),
        ("jobforge_reap_stale_jobs", "timeout: ", {"p_timeout": "0 seconds"}),
        ("jobforge_reap_stale_jobs", "timeout: ", {"p_timeout": "-5 minutes"}),
    ]
    for fn, prefix, args in cases:
        expect_error("PT400", prefix, svc, fn, **args)
    # Nothing was claimed or changed.
    job = svc.call("jobforge_get_job", p_job_id=job_id, p_tenant_id=tenant)
    assert (job["status"], job["attempts"]) == ("queued", 0)


# -- claim, heartbeat, complete ---------------------------------------------------------


def test_claim_and_complete_successfully(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_payload={"n": 1})
    (claimed,) = claim(svc, "worker-1", [jtype])
    assert claimed["id"] == job["id"]
    assert claimed["status"] == "running"
    assert claimed["attempts"] == 1
    assert claimed["locked_by"] == "worker-1"
    assert claimed["locked_at"] == claimed["heartbeat_at"] == claimed["started_at"]
    assert claimed["payload"] == {"n": 1}

    done = complete(
        svc,
        job["id"],
        "worker-1",
        "succeeded",
        p_result={"sent": True},
        p_artifact_ref="s3://bucket/run/1",
    )
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert done["finished_at"] is not None
    assert done["locked_by"] is None
    assert done["locked_at"] is None
    assert done["error"] is None
    assert job_row(admin_conn, job["id"]) == done

    assert (done["result"], done["artifact_ref"], done["finished_by"]) == (
        {"sent": True},
        "s3://bucket/run/1",
        "worker-1",
    )
    result = svc.call("jobforge_get_result", p_job_id=job["id"], p_tenant_id=tenant)
    assert result["id"] == job["id"]
    assert ts(result["created_at"]) == ts(done["finished_at"])
    assert result["job_id"] == job["id"]
    assert result["tenant_id"] == tenant
    assert result["result"] == {"sent": True}
    assert result["artifact_ref"] == "s3://bucket/run/1"

    # A success writes no attempt row; the attempts RPC shows it from the job row.
    assert attempts_of(admin_conn, job["id"]) == []
    (attempt,) = svc.call("jobforge_list_job_attempts", p_job_id=job["id"], p_tenant_id=tenant)
    assert attempt["id"] == job["id"]
    assert attempt["attempt"] == 1
    assert attempt["status"] == "succeeded"
    assert attempt["worker_id"] == "worker-1"
    assert attempt["tenant_id"] == tenant
    assert attempt["started_at"] == claimed["started_at"]
    assert attempt["finished_at"] == done["finished_at"]
    assert attempt["error"] is None

    # Finished: nothing left to claim.
    assert claim(svc, "worker-1", [jtype]) == []


def test_claim_takes_due_jobs_oldest_first_up_to_the_limit(
    svc: RoleSession, tenant: str, jtype: str
) -> None:
    now = datetime.now(UTC)
    jobs = [
        enqueue(svc, tenant, jtype, p_run_at=now - timedelta(minutes=m)) for m in (3, 5, 1, 4, 2)
    ]
    enqueue(svc, tenant, jtype, p_run_at=now + timedelta(hours=1))  # not due
    oldest_first = sorted(jobs, key=lambda j: ts(j["run_at"]))

    first = claim(svc, "w", [jtype], limit=3)
    assert [j["id"] for j in first] == [j["id"] for j in oldest_first[:3]]
    second = claim(svc, "w", [jtype], limit=3)
    assert [j["id"] for j in second] == [j["id"] for j in oldest_first[3:]]
    assert claim(svc, "w", [jtype], limit=3) == []


def test_claim_with_several_types_takes_only_those(svc: RoleSession, tenant: str) -> None:
    a, b, c = new_type(), new_type(), new_type()
    now = datetime.now(UTC)
    made = {}
    for minutes, jtype in [(9, c), (8, a), (7, b), (6, a), (5, c), (4, b), (3, a)]:
        made[(jtype, minutes)] = enqueue(
            svc, tenant, jtype, p_run_at=now - timedelta(minutes=minutes)
        )
    got = claim(svc, "w", [a, b, a], limit=4)  # a repeated type changes nothing
    assert [j["id"] for j in got] == [
        made[(a, 8)]["id"],
        made[(b, 7)]["id"],
        made[(a, 6)]["id"],
        made[(b, 4)]["id"],
    ]
    rest = claim(svc, "w", [b, a], limit=10)
    assert [j["id"] for j in rest] == [made[(a, 3)]["id"]]
    assert {j["type"] for j in claim(svc, "w", [c])} == {c}


def test_claim_without_a_type_filter_takes_every_due_job(act_as: ActAs, fresh_db_url: str) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant = new_tenant()
    types = [new_type() for _ in range(3)]
    ids = {enqueue(svc, tenant, t)["id"] for t in types}
    enqueue(svc, tenant, types[0], p_run_at=datetime.now(UTC) + timedelta(days=1))
    got = claim(svc, "w", None, limit=10)
    assert {j["id"] for j in got} == ids
    assert claim(svc, "w", None) == []


def test_claim_of_every_type_takes_the_oldest_due_jobs_across_types(
    act_as: ActAs, fresh_db_url: str
) -> None:
    """Without a type filter the claim finds the queued types by a skip scan of the claim
    index and merges them: oldest run_at first, whatever the type, up to the limit."""
    svc = act_as("service_role", url=fresh_db_url)
    tenant = new_tenant()
    types = sorted(new_type() for _ in range(4))
    base = datetime.now(UTC) - timedelta(hours=1)
    # run_at interleaves the types: job k is k minutes after base, of type k % 4.
    made = [
        enqueue(svc, tenant, types[k % 4], p_run_at=base + timedelta(minutes=k))["id"]
        for k in range(12)
    ]
    enqueue(svc, tenant, types[0], p_run_at=datetime.now(UTC) + timedelta(days=1))
    first = claim(svc, "w", None, limit=5)
    assert [j["id"] for j in first] == made[:5]
    rest = claim(svc, "w", None, limit=100)
    assert [j["id"] for j in rest] == made[5:]
    assert claim(svc, "w", None) == []


def test_failed_attempts_retry_with_exponential_backoff_then_die(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_max_attempts=4)
    for attempt, delay in ((1, 1), (2, 2), (3, 4)):
        (claimed,) = claim(svc, "w", [jtype])
        assert claimed["attempts"] == attempt
        error = {"type": "Boom", "message": f"attempt {attempt}"}
        failed = complete(svc, job["id"], "w", "failed", p_error=error)
        assert failed["status"] == "queued"
        assert failed["attempts"] == attempt
        assert failed["error"] == error
        assert failed["locked_by"] is None
        assert failed["finished_at"] is None
        # run_at and updated_at are both now() of the completing transaction.
        assert ts(failed["run_at"]) - ts(failed["updated_at"]) == timedelta(seconds=delay)
        assert claim(svc, "w", [jtype]) == []  # not due yet
        admin_conn.execute(
            "update public.jobforge_jobs set run_at = now() where id = %s", (job["id"],)
        )

    (claimed,) = claim(svc, "w", [jtype])
    dead = complete(svc, job["id"], "w", "failed", p_error={"type": "Boom", "message": "last"})
    assert dead["status"] == "dead"
    assert dead["attempts"] == 4
    assert dead["finished_at"] is not None
    assert dead["error"] == {"type": "Boom", "message": "last"}
    assert claim(svc, "w", [jtype]) == []

    attempts = attempts_of(admin_conn, job["id"])
    assert [(a["attempt"], a["status"], a["worker_id"]) for a in attempts] == [
        (n, "failed", "w") for n in (1, 2, 3, 4)
    ]
    assert [a["error"]["message"] for a in attempts] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
        "last",
    ]
    assert svc.call("jobforge_get_result", p_job_id=job["id"], p_tenant_id=tenant) is None


def test_backoff_is_capped_at_one_hour(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_max_attempts=100)
    claim(svc, "w", [jtype])
    admin_conn.execute("update public.jobforge_jobs set attempts = 40 where id = %s", (job["id"],))
    failed = complete(svc, job["id"], "w", "failed")
    assert failed["status"] == "queued"
    assert ts(failed["run_at"]) - ts(failed["updated_at"]) == timedelta(hours=1)


def test_single_attempt_job_dies_on_first_failure(
    svc: RoleSession, tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_max_attempts=1)
    claim(svc, "w", [jtype])
    assert complete(svc, job["id"], "w", "failed")["status"] == "dead"


def test_heartbeat_only_by_the_holder(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    expect_error(
        "PT409",
        f"job {job['id']} is not held by worker w",
        svc,
        "jobforge_heartbeat_job",
        p_job_id=job["id"],
        p_worker_id="w",
    )
    claim(svc, "w", [jtype])
    admin_conn.execute(
        "update public.jobforge_jobs set heartbeat_at = now() - interval '1 hour' where id = %s",
        (job["id"],),
    )
    beat = svc.call("jobforge_heartbeat_job", p_job_id=job["id"], p_worker_id="w")
    assert datetime.now(UTC) - ts(beat["heartbeat_at"]) < timedelta(minutes=1)
    assert beat["status"] == "running"
    assert beat["locked_by"] == "w"

    before = job_row(admin_conn, job["id"])
    message = expect_error(
        "PT409",
        f"job {job['id']} is not held by worker intruder",
        svc,
        "jobforge_heartbeat_job",
        p_job_id=job["id"],
        p_worker_id="intruder",
    )
    assert "running" in message
    assert job_row(admin_conn, job["id"]) == before
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_heartbeat_job",
        p_job_id=str(uuid.uuid4()),
        p_worker_id="w",
    )


def test_complete_only_by_the_holder_and_only_once(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    expect_error(  # queued, held by nobody
        "PT409",
        f"job {job['id']} is not held by worker w",
        svc,
        "jobforge_complete_job",
        p_job_id=job["id"],
        p_worker_id="w",
        p_status="succeeded",
    )
    claim(svc, "w", [jtype])
    before = job_row(admin_conn, job["id"])
    for status in ("succeeded", "failed"):
        expect_error(
            "PT409",
            f"job {job['id']} is not held by worker intruder",
            svc,
            "jobforge_complete_job",
            p_job_id=job["id"],
            p_worker_id="intruder",
            p_status=status,
        )
    assert job_row(admin_conn, job["id"]) == before
    assert attempts_of(admin_conn, job["id"]) == []

    complete(svc, job["id"], "w", "succeeded", p_result={"ok": 1})
    message = expect_error(
        "PT409",
        f"job {job['id']} is not held by worker w",
        svc,
        "jobforge_complete_job",
        p_job_id=job["id"],
        p_worker_id="w",
        p_status="succeeded",
    )
    assert "succeeded" in message
    assert attempts_of(admin_conn, job["id"]) == []  # a success has no attempt row
    attempts = svc.call("jobforge_list_job_attempts", p_job_id=job["id"], p_tenant_id=tenant)
    assert [a["status"] for a in attempts] == ["succeeded"]  # one, not two
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_complete_job",
        p_job_id=str(uuid.uuid4()),
        p_worker_id="w",
        p_status="succeeded",
    )


# -- reaping ----------------------------------------------------------------------------


def test_reap_requeues_or_kills_jobs_without_a_heartbeat(
    act_as: ActAs, fresh_admin: psycopg.Connection[Any], fresh_db_url: str
) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant, jtype = new_tenant(), new_type()
    retry = enqueue(svc, tenant, jtype, p_max_attempts=3)["id"]
    last = enqueue(svc, tenant, jtype, p_max_attempts=1)["id"]
    never_beat = enqueue(svc, tenant, jtype, p_max_attempts=3)["id"]
    alive = enqueue(svc, tenant, jtype)["id"]
    assert len(claim(svc, "w-lost", [jtype])) == 4

    fresh_admin.execute(
        "update public.jobforge_jobs set heartbeat_at = now() - interval '10 minutes'"
        " where id = any(%s)",
        ([retry, last],),
    )
    # No heartbeat at all: the lock time counts.
    fresh_admin.execute(
        "update public.jobforge_jobs set heartbeat_at = null,"
        " locked_at = now() - interval '10 minutes' where id = %s",
        (never_beat,),
    )
    assert svc.call("jobforge_reap_stale_jobs", p_timeout="5 minutes") == 3

    lost_error = {"type": "WorkerLost", "message": "worker w-lost stopped heartbeating"}
    for job_id in (retry, never_beat):
        job = job_row(fresh_admin, job_id)
        assert job is not None
        assert (job["status"], job["attempts"], job["locked_by"]) == ("queued", 1, None)
        assert job["locked_at"] is None
        assert job["heartbeat_at"] is None
        assert job["error"] == lost_error
        assert datetime.now(UTC) - ts(job["run_at"]) < timedelta(minutes=1)
    dead = job_row(fresh_admin, last)
    assert dead is not None
    assert (dead["status"], dead["locked_by"]) == ("dead", None)
    assert dead["finished_at"] is not None
    still = job_row(fresh_admin, alive)
    assert still is not None
    assert (still["status"], still["locked_by"]) == ("running", "w-lost")

    for job_id in (retry, last, never_beat):
        (attempt,) = attempts_of(fresh_admin, job_id)
        assert (attempt["attempt"], attempt["status"], attempt["worker_id"]) == (
            1,
            "lost",
            "w-lost",
        )
        assert attempt["error"] == lost_error
    assert attempts_of(fresh_admin, alive) == []

    # Nothing stale is left; the lost worker can no longer finish its jobs.
    assert svc.call("jobforge_reap_stale_jobs") == 0
    expect_error(
        "PT409",
        f"job {retry} is not held by worker w-lost",
        svc,
        "jobforge_complete_job",
        p_job_id=retry,
        p_worker_id="w-lost",
        p_status="succeeded",
    )
    # The requeued jobs are due again at once.
    assert {j["id"] for j in claim(svc, "w-new", [jtype])} == {retry, never_beat}


def test_reap_skips_a_job_that_is_locked_instead_of_waiting(
    fresh_admin: psycopg.Connection[Any], fresh_db_url: str, act_as: ActAs
) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant, jtype = new_tenant(), new_type()
    job_id = enqueue(svc, tenant, jtype)["id"]
    claim(svc, "w", [jtype])
    fresh_admin.execute(
        "update public.jobforge_jobs set heartbeat_at = now() - interval '1 hour' where id = %s",
        (job_id,),
    )
    with psycopg.connect(fresh_db_url) as holder:  # e.g. the worker completing it right now
        holder.execute("select 1 from public.jobforge_jobs where id = %s for update", (job_id,))
        with psycopg.connect(fresh_db_url, autocommit=True) as reaper:
            reaper.execute("set lock_timeout = '2s'")
            with reaper.transaction():
                reaper.execute("select set_config('role', 'service_role', true)")
                row = reaper.execute("select public.jobforge_reap_stale_jobs()").fetchone()
            assert row is not None
            assert row[0] == 0
        holder.rollback()
    assert svc.call("jobforge_reap_stale_jobs") == 1


# -- concurrency ------------------------------------------------------------------------


def _claim_worker(url: str, worker_id: str, start: Any, out: Any) -> None:
    """One worker process: claim 10 at a time and complete each, until nothing is left."""
    claimed: list[str] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait(timeout=60)
            while True:
                with conn.transaction():
                    conn.execute("select set_config('role', 'service_role', true)")
                    row = conn.execute(
                        "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => 10)",
                        (worker_id,),
                    ).fetchone()
                jobs = row[0] if row else []
                if not jobs:
                    break
                for job in jobs:
                    claimed.append(job["id"])
                    with conn.transaction():
                        conn.execute("select set_config('role', 'service_role', true)")
                        conn.execute(
                            "select public.jobforge_complete_job(p_job_id => %s,"
                            " p_worker_id => %s, p_status => 'succeeded', p_result => %s)",
                            (job["id"], worker_id, Jsonb({"by": worker_id})),
                        )
        out.put((worker_id, claimed, None))
    except Exception as exc:
        out.put((worker_id, claimed, repr(exc)))


@pytest.mark.slow
def test_four_worker_processes_run_every_job_exactly_once(
    fresh_db_url: str, fresh_admin: psycopg.Connection[Any], act_as: ActAs
) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant, jtype = new_tenant(), new_type()
    ids: list[str] = []
    for chunk in range(2):
        batch = [{"type": jtype, "payload": {"n": chunk * 1000 + i}} for i in range(1000)]
        ids += [
            j["id"] for j in svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch)
        ]
    assert len(set(ids)) == 2000

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_claim_worker, args=(fresh_db_url, f"proc-{i}", start, out))
        for i in range(4)
    ]
    for proc in workers:
        proc.start()
    try:
        reports = [out.get(timeout=240) for _ in workers]
    finally:
        for proc in workers:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert [error for _, _, error in reports if error] == []

    claimed = [job_id for _, got, _ in reports for job_id in got]
    assert len(claimed) == len(set(claimed)) == 2000, "a job was claimed twice or never"
    assert set(claimed) == set(ids)
    assert sum(1 for _, got, _ in reports if got) >= 2, "the workers did not share the work"

    by_worker = {job_id: worker for worker, got, _ in reports for job_id in got}
    jobs = fresh_admin.execute(
        "select id::text, status, attempts, locked_by, finished_by"
        " from public.jobforge_jobs where tenant_id = %s",
        (tenant,),
    ).fetchall()
    assert len(jobs) == 2000
    assert {(status, attempts, locked) for _, status, attempts, locked, _ in jobs} == {
        ("succeeded", 1, None)
    }
    # Each job was finished by the worker that claimed it, and no attempt failed.
    assert {job_id: worker for job_id, _, _, _, worker in jobs} == by_worker
    failed = fresh_admin.execute(
        "select count(*) from public.jobforge_job_attempts where tenant_id = %s", (tenant,)
    ).fetchone()
    assert failed == (0,)


def test_complete_jobs_names_a_job_id_that_is_not_a_uuid_and_takes_any_uuid_spelling(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    for _ in range(2):
        enqueue(svc, tenant, jtype)
    first, second = claim(svc, "w", [jtype], limit=2)
    for bad in ("not-a-uuid", "", "1234"):
        expect_error(
            "PT400",
            "results[1]: must be an object {job_id (uuid)",
            svc,
            "jobforge_complete_jobs",
            p_worker_id="w",
            p_results=[
                {"job_id": first["id"], "status": "succeeded"},
                {"job_id": bad, "status": "succeeded"},
            ],
        )
    assert job_row(admin_conn, first["id"])["status"] == "running"  # type: ignore[index]
    # Every spelling PostgreSQL reads as a uuid is one; 'ids' answers the ids in order.
    bare = uuid.UUID(second["id"]).hex.upper()
    done = svc.call(
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[
            {"job_id": bare, "status": "succeeded"},
            {"job_id": "{" + first["id"] + "}", "status": "failed", "error": {"e": 1}},
        ],
        p_returning="ids",
    )
    assert done == [second["id"], first["id"]]
    expect_error(
        "PT400",
        "returning: must be rows or ids",
        svc,
        "jobforge_complete_jobs",
        p_worker_id="w",
        p_results=[{"job_id": first["id"], "status": "succeeded"}],
        p_returning="all",
    )


def test_heartbeat_jobs_beats_every_held_job_in_one_call_and_leaves_out_the_rest(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    for _ in range(3):
        enqueue(svc, tenant, jtype)
    held = [j["id"] for j in claim(svc, "w", [jtype], limit=2)]
    (other,) = [j["id"] for j in claim(svc, "other", [jtype], limit=1)]
    admin_conn.execute(
        "update public.jobforge_jobs set heartbeat_at = now() - interval '1 hour'"
        " where tenant_id = %s",
        (tenant,),
    )
    unknown = str(uuid.uuid4())
    answer = svc.call("jobforge_heartbeat_jobs", p_worker_id="w", p_job_ids=[*held, other, unknown])
    assert sorted(answer) == sorted(held)
    beats = dict(
        admin_conn.execute(
            "select id::text, heartbeat_at > now() - interval '1 minute'"
            " from public.jobforge_jobs where tenant_id = %s",
            (tenant,),
        ).fetchall()
    )
    assert beats == {held[0]: True, held[1]: True, other: False}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"p_worker_id": "w", "p_job_ids": []}, "job_ids: must be a non-empty array"),
        ({"p_worker_id": "w", "p_job_ids": None}, "job_ids: must be a non-empty array"),
        ({"p_worker_id": "w", "p_job_ids": [held[0], None]}, "job_ids: must not contain null"),
        ({"p_worker_id": "", "p_job_ids": held}, "worker_id: must not be empty"),
        (
            {"p_worker_id": "w", "p_job_ids": [str(uuid.uuid4()) for _ in range(1001)]},
            "job_ids: at most 1000 jobs per heartbeat",
        ),
    ]
    for args, message in cases:
        expect_error("PT400", message, svc, "jobforge_heartbeat_jobs", **args)
