"""Fair claiming and limits (``25_workers.sql`` claim, ``27_limits.sql``), called directly.

Priority order, tenants sharing a claim, concurrency limits of a type, a tenant and a type
within a tenant (also under eight claiming processes), a limit at 0 pausing its jobs
without holding up others, cost-tier defaults of template types, rate limits, and the
limit RPCs (bad input, audit). Tests isolate themselves with fresh types and tenants; the
ones that change global limits (cost tiers) use ``fresh_db_url``.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.integration.sql.helpers import (
    SCAN,
    ActAs,
    claim,
    complete,
    enqueue,
    expect_error,
    new_tenant,
    new_type,
)
from tests.support.roles import RoleSession


def enqueue_many(svc: RoleSession, tenant: str, jtype: str, n: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 1000):
        batch = [{"type": jtype} for _ in range(min(1000, n - start))]
        rows = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch)
        ids += [row["id"] for row in rows]
    return ids


def set_priority(admin: psycopg.Connection[Any], job_id: str, priority: int) -> None:
    """As the owner: this file tests the claim order, not the enqueue argument."""
    admin.execute("update public.jobforge_jobs set priority = %s where id = %s", (priority, job_id))


def running(admin: psycopg.Connection[Any], jtype: str) -> int:
    row = admin.execute(
        "select count(*) from public.jobforge_jobs where status = 'running' and type = %s",
        (jtype,),
    ).fetchone()
    assert row is not None
    return int(row[0])


# -- priority and fairness ------------------------------------------------------------


def test_a_claim_takes_higher_priority_first_then_oldest(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    ids = [enqueue(svc, tenant, jtype)["id"] for _ in range(5)]
    for job_id, priority in zip(ids, [0, 5, -3, 5, 10], strict=True):
        set_priority(admin_conn, job_id, priority)

    first = claim(svc, "w", [jtype], limit=2)
    assert [j["id"] for j in first] == [ids[4], ids[1]]
    assert [j["priority"] for j in first] == [10, 5]
    rest = claim(svc, "w", [jtype], limit=10)
    # 5 before 0 before -3; between equal priorities, the older job first.
    assert [j["id"] for j in rest] == [ids[3], ids[0], ids[2]]


def test_a_backlog_does_not_hold_up_other_tenants(svc: RoleSession, jtype: str) -> None:
    big, small_b, small_c = new_tenant(), new_tenant(), new_tenant()
    enqueue_many(svc, big, jtype, 3000)
    for tenant in (small_b, small_c):
        enqueue_many(svc, tenant, jtype, 10)

    got = Counter(job["tenant_id"] for job in claim(svc, "w", [jtype], limit=20))
    # Twenty shared by three tenants: seven, seven and six.
    assert sorted(got.values()) == [6, 7, 7]
    assert set(got) == {big, small_b, small_c}

    second = Counter(job["tenant_id"] for job in claim(svc, "w", [jtype], limit=20))
    # B and C have 3 or 4 left each; the big tenant gets what they leave.
    assert second[small_b] + got[small_b] == 10
    assert second[small_c] + got[small_c] == 10
    assert sum(second.values()) == 20


def test_a_claim_of_every_type_is_shared_the_same_way(fresh_db_url: str, act_as: ActAs) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    big, small = new_tenant(), new_tenant()
    jtype, other = new_type(), new_type()
    enqueue_many(svc, big, jtype, 500)
    enqueue_many(svc, big, other, 500)
    enqueue_many(svc, small, other, 3)

    got = Counter(job["tenant_id"] for job in claim(svc, "w", None, limit=10))
    assert got == {big: 7, small: 3}


def test_more_tenants_than_a_claim_each_get_at_most_a_share(svc: RoleSession, jtype: str) -> None:
    tenants = [new_tenant() for _ in range(30)]
    for tenant in tenants:
        enqueue_many(svc, tenant, jtype, 5)

    served: Counter[str] = Counter()
    for _ in range(15):
        waiting = sum(1 for tenant in tenants if served[tenant] < 5)
        jobs = claim(svc, "w", [jtype], limit=10)
        per_tenant = Counter(job["tenant_id"] for job in jobs)
        assert len(jobs) == 10
        if waiting >= 10:
            assert max(per_tenant.values()) == 1, "one tenant got two jobs of one claim"
        else:
            # Fewer tenants than the claim: each gets an equal share, or all it has left.
            for tenant in tenants:
                if served[tenant] < 5:
                    assert per_tenant[tenant] >= min(5 - served[tenant], 10 // waiting)
        served.update(per_tenant)
    assert sum(served.values()) == 150
    assert served == dict.fromkeys(tenants, 5)


def test_a_tenants_own_jobs_keep_priority_across_types(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str
) -> None:
    low, high = new_type(), new_type()
    low_ids = [enqueue(svc, tenant, low)["id"] for _ in range(3)]
    high_ids = [enqueue(svc, tenant, high)["id"] for _ in range(3)]
    for job_id in high_ids:
        set_priority(admin_conn, job_id, 7)
    jobs = claim(svc, "w", [low, high], limit=3)
    assert [j["id"] for j in jobs] == high_ids
    assert {j["id"] for j in claim(svc, "w", [low, high], limit=3)} == set(low_ids)


# -- concurrency limits ---------------------------------------------------------------


def test_a_type_limit_caps_running_jobs_and_frees_slots_on_completion(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    enqueue_many(svc, tenant, jtype, 10)
    enqueue_many(svc, new_tenant(), jtype, 10)
    svc.call("jobforge_set_limit", p_type=jtype, p_max_running=3)

    jobs = claim(svc, "w", [jtype], limit=10)
    assert len(jobs) == 3
    assert claim(svc, "w", [jtype], limit=10) == []
    assert running(admin_conn, jtype) == 3

    complete(svc, jobs[0]["id"], "w", "succeeded")
    assert len(claim(svc, "w", [jtype], limit=10)) == 1
    assert running(admin_conn, jtype) == 3

    [limit] = svc.call("jobforge_list_limits", p_type=jtype)
    assert (limit["max_running"], limit["running"]) == (3, 3)
    svc.call("jobforge_delete_limit", p_type=jtype)
    assert len(claim(svc, "w", [jtype], limit=100)) == 16


def test_tenant_and_pair_limits(svc: RoleSession, jtype: str) -> None:
    limited, pair_limited, free = new_tenant(), new_tenant(), new_tenant()
    other = new_type()
    for tenant in (limited, pair_limited, free):
        enqueue_many(svc, tenant, jtype, 10)
        enqueue_many(svc, tenant, other, 10)
    svc.call("jobforge_set_limit", p_tenant_id=limited, p_max_running=4)
    svc.call("jobforge_set_limit", p_tenant_id=pair_limited, p_type=jtype, p_max_running=2)

    got = Counter(
        (job["tenant_id"], job["type"])
        for _ in range(6)
        for job in claim(svc, "w", [jtype, other], limit=10)
    )
    assert got[(limited, jtype)] + got[(limited, other)] == 4
    assert got[(pair_limited, jtype)] == 2
    assert got[(pair_limited, other)] == 10
    assert got[(free, jtype)] == got[(free, other)] == 10


def test_a_limit_at_zero_pauses_its_jobs_without_holding_up_others(
    svc: RoleSession, tenant: str
) -> None:
    paused, other = new_type(), new_type()
    enqueue_many(svc, tenant, paused, 50)
    enqueue_many(svc, tenant, other, 5)
    svc.call("jobforge_set_limit", p_type=paused, p_max_running=0)

    jobs = claim(svc, "w", [paused, other], limit=10)
    assert {j["type"] for j in jobs} == {other}
    assert len(jobs) == 5
    svc.call("jobforge_set_limit", p_type=paused, p_max_running=2)
    assert len(claim(svc, "w", [paused, other], limit=10)) == 2


def test_cost_tiers_cap_template_types_unless_the_type_has_its_own_limit(
    fresh_db_url: str, act_as: ActAs
) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    tenant = new_tenant()
    svc.call("jobforge_set_template_enabled", p_template_key=SCAN, p_enabled=True)
    for i in range(8):
        svc.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=SCAN,
            p_inputs={"target": f"svc-{i}"},
        )
    tiers = {row["cost_tier"]: row["max_running"] for row in svc.call("jobforge_list_limits")}
    assert tiers == {"medium": 16, "high": 4}  # the defaults; the scan is medium

    svc.call("jobforge_set_limit", p_cost_tier="medium", p_max_running=2)
    assert len(claim(svc, "w", [SCAN], limit=10)) == 2
    assert claim(svc, "w", None, limit=10) == []

    svc.call("jobforge_set_limit", p_type=SCAN, p_max_running=5)
    assert len(claim(svc, "w", [SCAN], limit=10)) == 3


def _limited_claimer(url: str, worker: str, jtype: str, cap: int, start: Any, out: Any) -> None:
    """Claim, count the type's running jobs right after the claim commits, hold the jobs
    a moment, complete them; until nothing is left."""
    seen_max, done = 0, 0
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait(timeout=60)
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 3:
                with conn.transaction():
                    conn.execute("select set_config('role', 'service_role', true)")
                    row = conn.execute(
                        "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => 4,"
                        " p_types => %s)",
                        (worker, [jtype]),
                    ).fetchone()
                jobs = row[0] if row else []
                counted = conn.execute(
                    "select count(*) from public.jobforge_jobs"
                    " where status = 'running' and type = %s",
                    (jtype,),
                ).fetchone()
                seen_max = max(seen_max, int(counted[0]) if counted else 0)
                if not jobs:
                    time.sleep(0.005)
                    continue
                idle_since = time.monotonic()
                time.sleep(0.01)
                results = [{"job_id": job["id"], "status": "succeeded"} for job in jobs]
                with conn.transaction():
                    conn.execute("select set_config('role', 'service_role', true)")
                    conn.execute(
                        "select public.jobforge_complete_jobs(p_worker_id => %s, p_results => %s)",
                        (worker, Jsonb(results)),
                    )
                done += len(jobs)
        out.put((worker, seen_max, done, None))
    except Exception as exc:
        out.put((worker, seen_max, done, repr(exc)))


@pytest.mark.slow
def test_eight_concurrent_claimers_never_exceed_a_limit(fresh_db_url: str, act_as: ActAs) -> None:
    svc = act_as("service_role", url=fresh_db_url)
    jtype, cap = new_type(), 5
    for tenant in [new_tenant() for _ in range(4)]:
        enqueue_many(svc, tenant, jtype, 150)
    svc.call("jobforge_set_limit", p_type=jtype, p_max_running=cap)

    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_limited_claimer, args=(fresh_db_url, f"p{i}", jtype, cap, start, out))
        for i in range(8)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [out.get(timeout=300) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert [error for *_, error in reports if error] == []
    assert sum(done for _, _, done, _ in reports) == 600
    # Right after each claim committed, the running jobs of the type were never more
    # than the cap, and every claimer saw the cap reached at some point.
    assert max(seen for _, seen, _, _ in reports) == cap
    assert sum(1 for _, _, done, _ in reports if done) >= 4, "the claimers did not share"


# -- rate limits ----------------------------------------------------------------------


def test_a_rate_limit_caps_starts_per_window(svc: RoleSession, tenant: str, jtype: str) -> None:
    enqueue_many(svc, tenant, jtype, 30)
    # Start right after a 2-second window begins, so the first claims share one window.
    time.sleep(2 - time.time() % 2 + 0.05)
    svc.call("jobforge_set_limit", p_type=jtype, p_max_starts=4, p_per_seconds=2)
    first = claim(svc, "w", [jtype], limit=10)
    assert len(first) == 4
    for job in first:
        complete(svc, job["id"], "w", "succeeded")
    assert claim(svc, "w", [jtype], limit=10) == [], "finished jobs still count as starts"

    time.sleep(2 - time.time() % 2 + 0.05)
    assert len(claim(svc, "w", [jtype], limit=10)) == 4


def test_rate_and_concurrency_together(svc: RoleSession, tenant: str, jtype: str) -> None:
    enqueue_many(svc, tenant, jtype, 20)
    svc.call(
        "jobforge_set_limit", p_type=jtype, p_max_running=2, p_max_starts=3, p_per_seconds=3600
    )
    jobs = claim(svc, "w", [jtype], limit=10)
    assert len(jobs) == 2
    for job in jobs:
        complete(svc, job["id"], "w", "succeeded")
    assert len(claim(svc, "w", [jtype], limit=10)) == 1
    assert claim(svc, "w", [jtype], limit=10) == []


# -- the limit RPCs -------------------------------------------------------------------


def test_limit_rpcs_refuse_bad_input_and_change_nothing(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], jtype: str
) -> None:
    before = admin_conn.execute("select count(*) from public.jobforge_limits").fetchone()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("type: type, tenant_id or cost_tier is required", {"p_max_running": 1}),
        ("type: must not be empty", {"p_type": "", "p_max_running": 1}),
        ("type: must be at most 255 characters", {"p_type": "t" * 256, "p_max_running": 1}),
        ("cost_tier: must be low, medium or high", {"p_cost_tier": "huge", "p_max_running": 1}),
        (
            "cost_tier: cannot be combined with type or tenant_id",
            {"p_cost_tier": "high", "p_type": jtype, "p_max_running": 1},
        ),
        (
            "max_starts: a cost tier limits running jobs only",
            {"p_cost_tier": "high", "p_max_starts": 1, "p_per_seconds": 1},
        ),
        ("max_running: max_running or max_starts is required", {"p_type": jtype}),
        ("max_running: must be between 0 and 1000000", {"p_type": jtype, "p_max_running": -1}),
        (
            "max_running: must be between 0 and 1000000",
            {"p_type": jtype, "p_max_running": 1000001},
        ),
        ("max_starts: is required with per_seconds", {"p_type": jtype, "p_per_seconds": 5}),
        ("per_seconds: is required with max_starts", {"p_type": jtype, "p_max_starts": 5}),
        (
            "max_starts: must be between 1 and 1000000",
            {"p_type": jtype, "p_max_starts": 0, "p_per_seconds": 5},
        ),
        (
            "per_seconds: must be between 1 and 86400",
            {"p_type": jtype, "p_max_starts": 1, "p_per_seconds": 86401},
        ),
        ("actor_id: ", {"p_type": jtype, "p_max_running": 1, "p_actor_id": ""}),
    ]
    for message, args in cases:
        expect_error("PT400", message, svc, "jobforge_set_limit", **args)
    expect_error("PT400", "type: type, tenant_id or cost_tier", svc, "jobforge_delete_limit")
    expect_error("PT400", "cost_tier: ", svc, "jobforge_delete_limit", p_cost_tier="x")
    expect_error("PT404", f"no limit for type {jtype}", svc, "jobforge_delete_limit", p_type=jtype)
    expect_error("PT400", "type: must not be empty", svc, "jobforge_list_limits", p_type="")
    after = admin_conn.execute("select count(*) from public.jobforge_limits").fetchone()
    assert after == before


def test_setting_a_limit_again_changes_it_and_every_change_is_audited(
    svc: RoleSession, admin_conn: psycopg.Connection[Any]
) -> None:
    tenant, jtype = new_tenant(), new_type()
    first = svc.call(
        "jobforge_set_limit", p_tenant_id=tenant, p_type=jtype, p_max_running=3, p_actor_id="ops"
    )
    second = svc.call(
        "jobforge_set_limit",
        p_tenant_id=tenant,
        p_type=jtype,
        p_max_starts=10,
        p_per_seconds=60,
        p_actor_id="ops",
    )
    assert second["id"] == first["id"]
    assert (second["max_running"], second["max_starts"], second["per_seconds"]) == (None, 10, 60)
    assert svc.call("jobforge_list_limits", p_tenant_id=tenant) == [second | {"running": 0}]
    svc.call("jobforge_delete_limit", p_tenant_id=tenant, p_type=jtype, p_actor_id="ops")
    assert svc.call("jobforge_list_limits", p_tenant_id=tenant) == []

    rows = admin_conn.execute(
        "select action, actor_id, target_id, details from public.jobforge_audit_logs"
        " where tenant_id = %s order by created_at",
        (tenant,),
    ).fetchall()
    assert [(action, actor, target) for action, actor, target, _ in rows] == [
        ("limit_set", "ops", first["id"]),
        ("limit_set", "ops", first["id"]),
        ("limit_delete", "ops", first["id"]),
    ]
    assert rows[0][3] == {"type": jtype, "max_running": 3}
    assert rows[1][3] == {"type": jtype, "max_starts": 10, "per_seconds": 60}


def test_only_the_service_role_manages_limits(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    user = act_as(
        "authenticated",
        {"role": "authenticated", "app_metadata": {"tenant_id": str(tenant)}},
    )
    calls: list[tuple[str, dict[str, Any]]] = [
        ("jobforge_set_limit", {"p_tenant_id": tenant, "p_max_running": 1}),
        ("jobforge_list_limits", {"p_tenant_id": tenant}),
        ("jobforge_delete_limit", {"p_tenant_id": tenant}),
    ]
    for fn, args in calls:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.call(fn, **args)
