"""The core queue SQL (001_jobforge_core.sql), called directly as each role.

Every RPC is called the way PostgREST calls it (``act_as``: role and JWT claims set in the
call's transaction), so these tests prove what a caller who bypasses the SDK meets:
tenant isolation, grants, RLS, input validation, and the queue's state machine.

Tests share one database (``migrated_db_url``) and isolate themselves with fresh tenant
ids and job types; those that claim without a type filter, reap, or need an empty queue
use ``fresh_db_url``.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.support.roles import RoleSession, tenant_claims

ActAs = Callable[..., RoleSession]

TENANT_RPCS = (
    "jobforge_enqueue_job",
    "jobforge_enqueue_jobs",
    "jobforge_cancel_job",
    "jobforge_reschedule_job",
    "jobforge_list_jobs",
    "jobforge_get_job",
    "jobforge_get_result",
)
WORKER_RPCS = (
    "jobforge_claim_jobs",
    "jobforge_heartbeat_job",
    "jobforge_complete_job",
    "jobforge_reap_stale_jobs",
)
TABLES = (
    "jobforge_jobs",
    "jobforge_job_results",
    "jobforge_job_attempts",
    "jobforge_connector_configs",
)
MIB = 1024 * 1024


# -- helpers ----------------------------------------------------------------------------


def new_type() -> str:
    return f"t.{uuid.uuid4().hex}"


def new_tenant() -> str:
    return str(uuid.uuid4())


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def expect_error(sqlstate: str, prefix: str, session: RoleSession, fn: str, /, **args: Any) -> str:
    """Call ``fn``; assert it fails with ``sqlstate`` and a message starting with ``prefix``."""
    with pytest.raises(psycopg.Error) as info:
        session.call(fn, **args)
    message = info.value.diag.message_primary or ""
    assert info.value.sqlstate == sqlstate, f"{info.value.sqlstate}: {message}"
    assert message.startswith(prefix), message
    return message


def enqueue(session: RoleSession, tenant: str, jtype: str, **args: Any) -> dict[str, Any]:
    job: dict[str, Any] = session.call(
        "jobforge_enqueue_job", p_tenant_id=tenant, p_type=jtype, **args
    )
    return job


def claim(
    session: RoleSession, worker: str, types: list[str] | None, limit: int = 10
) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = session.call(
        "jobforge_claim_jobs", p_worker_id=worker, p_limit=limit, p_types=types
    )
    return jobs


def complete(
    session: RoleSession, job_id: str, worker: str, status: str, **args: Any
) -> dict[str, Any]:
    job: dict[str, Any] = session.call(
        "jobforge_complete_job", p_job_id=job_id, p_worker_id=worker, p_status=status, **args
    )
    return job


def job_row(conn: psycopg.Connection[Any], job_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "select to_jsonb(j) from public.jobforge_jobs j where j.id = %s", (job_id,)
    ).fetchone()
    return row[0] if row else None


def attempts_of(conn: psycopg.Connection[Any], job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "select to_jsonb(a) from public.jobforge_job_attempts a where a.job_id = %s"
        " order by a.attempt, a.finished_at",
        (job_id,),
    ).fetchall()
    return [r[0] for r in rows]


def tenant_rows(conn: psycopg.Connection[Any], tenant: str) -> dict[str, list[Any]]:
    """Every row of every table that belongs to ``tenant``, as JSON, to compare states."""
    return {
        table: [
            r[0]
            for r in conn.execute(
                f"select to_jsonb(t) from public.{table} t where t.tenant_id = %s order by t.id",
                (tenant,),
            ).fetchall()
        ]
        for table in TABLES
    }


def count_jobs(conn: psycopg.Connection[Any], tenant: str) -> int:
    row = conn.execute(
        "select count(*) from public.jobforge_jobs where tenant_id = %s", (tenant,)
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def svc(act_as: ActAs) -> RoleSession:
    return act_as("service_role")


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def jtype() -> str:
    return new_type()


@pytest.fixture
def fresh_admin(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        yield conn


# -- enqueue ----------------------------------------------------------------------------


def test_enqueue_job_returns_the_stored_row(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    before = datetime.now(UTC)
    job = enqueue(svc, tenant, jtype, p_payload={"to": "a@example.com", "n": [1, 2]})

    assert job["tenant_id"] == tenant
    assert job["type"] == jtype
    assert job["payload"] == {"to": "a@example.com", "n": [1, 2]}
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["max_attempts"] == 5
    assert job["idempotency_key"] is None
    assert job["locked_by"] is None
    assert job["result_id"] is None
    assert ts(job["run_at"]) == ts(job["created_at"]) == ts(job["updated_at"])
    assert abs(ts(job["run_at"]) - before) < timedelta(seconds=30)
    assert job_row(admin_conn, job["id"]) == job
    assert svc.call("jobforge_get_job", p_job_id=job["id"], p_tenant_id=tenant) == job


def test_enqueue_job_honours_run_at_and_max_attempts(
    svc: RoleSession, tenant: str, jtype: str
) -> None:
    later = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    job = enqueue(svc, tenant, jtype, p_run_at=later, p_max_attempts=7)
    assert ts(job["run_at"]) == later
    assert job["max_attempts"] == 7
    # Not due: nothing to claim.
    assert claim(svc, "w", [jtype]) == []


def test_enqueue_job_null_payload_becomes_empty_object(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    assert enqueue(svc, tenant, jtype, p_payload=None)["payload"] == {}
    row = admin_conn.execute(
        "select public.jobforge_enqueue_job(%s, %s, 'null'::jsonb)", (tenant, jtype)
    ).fetchone()
    assert row is not None
    assert row[0]["payload"] == {}
    # Any other JSON value is kept as it is.
    assert enqueue(svc, tenant, jtype, p_payload=[1, "two"])["payload"] == [1, "two"]
    assert enqueue(svc, tenant, jtype, p_payload="text")["payload"] == "text"


def test_enqueue_job_is_idempotent_per_tenant_type_and_key(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    first = enqueue(svc, tenant, jtype, p_payload={"v": 1}, p_idempotency_key="order-42")
    again = enqueue(
        svc, tenant, jtype, p_payload={"v": 2}, p_idempotency_key="order-42", p_max_attempts=9
    )
    assert again == first  # the existing row, unchanged
    assert count_jobs(admin_conn, tenant) == 1

    other_type = enqueue(svc, tenant, new_type(), p_idempotency_key="order-42")
    other_tenant = enqueue(svc, new_tenant(), jtype, p_idempotency_key="order-42")
    assert len({first["id"], other_type["id"], other_tenant["id"]}) == 3

    # The key still holds once the job has run.
    for claimed in claim(svc, "w", [jtype]):
        complete(svc, claimed["id"], "w", "succeeded")
    after = enqueue(svc, tenant, jtype, p_idempotency_key="order-42")
    assert after["id"] == first["id"]
    assert after["status"] == "succeeded"


def test_enqueue_notifies_listeners_only_when_a_job_is_inserted(
    svc: RoleSession, migrated_db_url: str, tenant: str, jtype: str
) -> None:
    with psycopg.connect(migrated_db_url, autocommit=True) as listener:
        listener.execute("listen jobforge_jobs")
        enqueue(svc, tenant, jtype, p_idempotency_key="k")
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
        assert got == [jtype]

        enqueue(svc, tenant, jtype, p_idempotency_key="k")  # duplicate: nothing new
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []

        svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=[{"type": jtype}] * 3)
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == [""]

        dup = [{"type": jtype, "idempotency_key": "k"}]
        svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=dup)
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []


def test_enqueue_jobs_returns_rows_in_input_order(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str
) -> None:
    types = [new_type() for _ in range(3)]
    later = "2030-01-02T03:04:05+00:00"
    jobs = svc.call(
        "jobforge_enqueue_jobs",
        p_tenant_id=tenant,
        p_jobs=[
            {"type": types[0], "payload": {"i": 0}},
            {"type": types[1], "run_at": later, "max_attempts": 2},
            {"type": types[2], "payload": None, "idempotency_key": None},
        ],
    )
    assert [j["type"] for j in jobs] == types
    assert jobs[0]["payload"] == {"i": 0}
    assert jobs[0]["max_attempts"] == 5
    assert ts(jobs[1]["run_at"]) == ts(later)
    assert jobs[1]["max_attempts"] == 2
    assert jobs[2]["payload"] == {}
    assert all(j["status"] == "queued" and j["tenant_id"] == tenant for j in jobs)
    assert [job_row(admin_conn, j["id"]) for j in jobs] == jobs


def test_enqueue_jobs_is_idempotent_within_and_across_batches(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    existing = enqueue(svc, tenant, jtype, p_idempotency_key="b", p_payload={"from": "single"})
    batch = [
        {"type": jtype, "idempotency_key": "a", "payload": {"n": 0}},
        {"type": jtype, "idempotency_key": "b", "payload": {"n": 1}},
        {"type": jtype, "idempotency_key": "a", "payload": {"n": 2}},
        {"type": jtype, "payload": {"n": 3}},
        {"type": jtype, "idempotency_key": "b", "payload": {"n": 4}},
        {"type": jtype, "payload": {"n": 5}},
    ]
    jobs = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch)

    assert len(jobs) == len(batch)
    ids = [j["id"] for j in jobs]
    assert ids[0] == ids[2]  # duplicate inside the batch: the first one's row
    assert ids[1] == ids[4] == existing["id"]  # duplicate of an earlier job
    assert len(set(ids)) == 4
    assert jobs[1] == existing  # returned unchanged
    assert [j["payload"] for j in jobs] == [
        {"n": 0},
        {"from": "single"},
        {"n": 0},
        {"n": 3},
        {"from": "single"},
        {"n": 5},
    ]
    assert count_jobs(admin_conn, tenant) == 4

    # The same batch again inserts nothing, except the two jobs without a key.
    again = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch)
    assert [again[i]["id"] for i in (0, 1, 2, 4)] == [ids[i] for i in (0, 1, 2, 4)]
    assert again[3]["id"] not in ids
    assert count_jobs(admin_conn, tenant) == 6


def test_enqueue_jobs_takes_a_thousand_jobs(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    batch = [{"type": jtype, "payload": {"i": i}} for i in range(1000)]
    jobs = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch)
    assert [j["payload"]["i"] for j in jobs] == list(range(1000))
    assert len({j["id"] for j in jobs}) == 1000
    assert count_jobs(admin_conn, tenant) == 1000


def test_concurrent_batches_with_shared_keys_wait_instead_of_deadlocking(
    migrated_db_url: str, act_as: ActAs, tenant: str, jtype: str
) -> None:
    """The second batch waits for the first transaction that holds one of its keys, then
    returns that transaction's jobs; keys are taken in one order, so the two never wait
    for each other at once."""
    second = act_as("service_role")
    with psycopg.connect(migrated_db_url) as first:
        first.execute("select set_config('role', 'service_role', true)")
        row = first.execute(
            "select public.jobforge_enqueue_jobs(%s, %s)",
            (tenant, Jsonb([{"type": jtype, "idempotency_key": "x"}])),
        ).fetchone()
        assert row is not None
        x_id = row[0][0]["id"]
        batch = [
            {"type": jtype, "idempotency_key": "y", "payload": {"from": "second"}},
            {"type": jtype, "idempotency_key": "x", "payload": {"from": "second"}},
        ]
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                second.call, "jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=batch
            )
            time.sleep(0.5)
            assert not waiting.done(), "the second batch should wait for the first"
            # Had the second batch taken "y" before waiting on "x", this would deadlock.
            row = first.execute(
                "select public.jobforge_enqueue_job(%s, %s, p_idempotency_key => 'y')",
                (tenant, jtype),
            ).fetchone()
            assert row is not None
            y_id = row[0]["id"]
            first.commit()
            got = waiting.result(timeout=30)
    assert [j["id"] for j in got] == [y_id, x_id]
    assert [j["payload"] for j in got] == [{}, {}]


def test_authenticated_user_enqueues_for_its_own_tenant(
    act_as: ActAs, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    user = act_as("authenticated", tenant_claims(tenant))
    job = enqueue(user, tenant, jtype, p_payload={"x": 1})
    jobs = user.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=[{"type": jtype}])
    assert job["tenant_id"] == jobs[0]["tenant_id"] == tenant
    assert count_jobs(admin_conn, tenant) == 2
    assert user.call("jobforge_get_job", p_job_id=job["id"], p_tenant_id=tenant) == job


# -- input validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "prefix"),
    [
        ({"p_type": ""}, "type: "),
        ({"p_type": None}, "type: "),
        ({"p_type": "x" * 256}, "type: "),
        ({"p_payload": {"s": "a" * MIB}}, "payload: "),
        ({"p_max_attempts": 0}, "max_attempts: "),
        ({"p_max_attempts": 101}, "max_attempts: "),
        ({"p_idempotency_key": ""}, "idempotency_key: "),
        ({"p_idempotency_key": "k" * 256}, "idempotency_key: "),
        ({"p_tenant_id": None}, "tenant_id: "),
    ],
)
def test_enqueue_job_refuses_bad_input_and_writes_nothing(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jtype: str,
    args: dict[str, Any],
    prefix: str,
) -> None:
    call = {"p_tenant_id": tenant, "p_type": jtype, **args}
    expect_error("PT400", prefix, svc, "jobforge_enqueue_job", **call)
    assert count_jobs(admin_conn, tenant) == 0


def test_payload_limit_is_one_mebibyte_of_json_text(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    # '{"s": "' + n characters + '"}' is n + 9 bytes as jsonb prints it.
    fits = {"s": "a" * (MIB - 9)}
    too_big = {"s": "a" * (MIB - 8)}
    assert enqueue(svc, tenant, jtype, p_payload=fits)["payload"] == fits
    expect_error(
        "PT400",
        "payload: ",
        svc,
        "jobforge_enqueue_job",
        p_tenant_id=tenant,
        p_type=jtype,
        p_payload=too_big,
    )
    expect_error(
        "PT400",
        "jobs[1].payload: ",
        svc,
        "jobforge_enqueue_jobs",
        p_tenant_id=tenant,
        p_jobs=[{"type": jtype}, {"type": jtype, "payload": too_big}],
    )
    assert count_jobs(admin_conn, tenant) == 1


@pytest.mark.parametrize(
    ("jobs", "prefix"),
    [
        (None, "jobs: "),
        ([], "jobs: "),
        ({"type": "x"}, "jobs: "),
        ([{"type": "x"}] * 1001, "jobs: at most 1000"),
        ([{"type": "x"}, 5], "jobs[1]: "),
        ([{"type": "x"}, {"type": "x", "tennant_id": "y"}], "jobs[1].tennant_id: "),
        ([{"payload": {}}], "jobs[0].type: "),
        ([{"type": None}], "jobs[0].type: "),
        ([{"type": ""}], "jobs[0].type: "),
        ([{"type": "x" * 256}], "jobs[0].type: "),
        ([{"type": 7}], "jobs[0].type: "),
        (
            [{"type": "x"}, {"type": "x"}, {"type": "x", "idempotency_key": ""}],
            "jobs[2].idempotency_key: ",
        ),
        ([{"type": "x", "idempotency_key": "k" * 256}], "jobs[0].idempotency_key: "),
        ([{"type": "x", "idempotency_key": 12}], "jobs[0].idempotency_key: "),
        ([{"type": "x", "max_attempts": 0}], "jobs[0].max_attempts: "),
        ([{"type": "x", "max_attempts": 101}], "jobs[0].max_attempts: "),
        ([{"type": "x", "max_attempts": 1.5}], "jobs[0].max_attempts: "),
        ([{"type": "x", "max_attempts": "3"}], "jobs[0].max_attempts: "),
        ([{"type": "x", "run_at": 12}], "jobs[0].run_at: "),
        ([{"type": "x"}, {"type": "x", "run_at": "next tuesday"}], "jobs[1].run_at: "),
        ([{"type": "x"}, {"type": "x", "run_at": "2024-02-30T00:00:00Z"}], "jobs[1].run_at: "),
    ],
)
def test_enqueue_jobs_names_the_bad_element_and_writes_nothing(
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant: str,
    jobs: Any,
    prefix: str,
) -> None:
    expect_error("PT400", prefix, svc, "jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=jobs)
    assert count_jobs(admin_conn, tenant) == 0


HOSTILE = [
    "'; drop table public.jobforge_jobs; --",
    'x"); select pg_sleep(10); --',
    "$$; drop schema public cascade; $$",
    "\\x00\\' or 1=1 --",
    "caf\u00e9 \u2603 \U0001f680 \u202eevil\u202c \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "%s %n %x {0} ${jndi:ldap://x}",
    "a\nb\tc\r\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_are_stored_verbatim(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, text: str
) -> None:
    job = enqueue(svc, tenant, text, p_payload={"s": text, text: [text]}, p_idempotency_key=text)
    assert job["type"] == text
    assert job["idempotency_key"] == text
    assert job["payload"] == {"s": text, text: [text]}
    listed = svc.call("jobforge_list_jobs", p_tenant_id=tenant, p_filters={"type": text})
    assert [j["id"] for j in listed] == [job["id"]]
    # The table is still there and holds exactly this job for the tenant.
    assert count_jobs(admin_conn, tenant) == 1


text_without_nul = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=300
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=text_without_nul)
def test_any_type_string_round_trips_or_is_refused_by_name(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, text: str
) -> None:
    before = count_jobs(admin_conn, tenant)
    if 1 <= len(text) <= 255:
        job = enqueue(svc, tenant, text, p_payload={"v": text})
        assert (job["type"], job["payload"]) == (text, {"v": text})
        assert count_jobs(admin_conn, tenant) == before + 1
    else:
        expect_error(
            "PT400", "type: ", svc, "jobforge_enqueue_job", p_tenant_id=tenant, p_type=text
        )
        assert count_jobs(admin_conn, tenant) == before


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


# -- claim, heartbeat, complete ----------------------------------------------------------


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

    result = svc.call("jobforge_get_result", p_job_id=job["id"], p_tenant_id=tenant)
    assert result["id"] == done["result_id"]
    assert result["job_id"] == job["id"]
    assert result["tenant_id"] == tenant
    assert result["result"] == {"sent": True}
    assert result["artifact_ref"] == "s3://bucket/run/1"

    (attempt,) = attempts_of(admin_conn, job["id"])
    assert attempt["attempt"] == 1
    assert attempt["status"] == "succeeded"
    assert attempt["worker_id"] == "worker-1"
    assert attempt["tenant_id"] == tenant
    assert attempt["started_at"] == claimed["started_at"]
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
    assert len(attempts_of(admin_conn, job["id"])) == 1
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


# -- cancel, reschedule, list, get --------------------------------------------------------


def test_cancel_follows_the_state_rules(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    queued = enqueue(svc, tenant, jtype)
    canceled = svc.call("jobforge_cancel_job", p_job_id=queued["id"], p_tenant_id=tenant)
    assert canceled["status"] == "canceled"
    assert canceled["finished_at"] is not None
    assert claim(svc, "w", [jtype]) == []

    running = enqueue(svc, tenant, jtype)
    claim(svc, "w", [jtype])
    canceled = svc.call("jobforge_cancel_job", p_job_id=running["id"], p_tenant_id=tenant)
    assert (canceled["status"], canceled["locked_by"], canceled["locked_at"]) == (
        "canceled",
        None,
        None,
    )
    # The worker that held it finds out when it reports back.
    expect_error(
        "PT409",
        f"job {running['id']} is not held by worker w",
        svc,
        "jobforge_heartbeat_job",
        p_job_id=running["id"],
        p_worker_id="w",
    )
    expect_error(
        "PT409",
        f"job {running['id']} is not held by worker w",
        svc,
        "jobforge_complete_job",
        p_job_id=running["id"],
        p_worker_id="w",
        p_status="succeeded",
    )
    assert job_row(admin_conn, running["id"])["status"] == "canceled"

    message = expect_error(
        "PT409",
        f"job {running['id']} is canceled",
        svc,
        "jobforge_cancel_job",
        p_job_id=running["id"],
        p_tenant_id=tenant,
    )
    assert "only queued or running jobs can be canceled" in message

    done = enqueue(svc, tenant, jtype)
    claim(svc, "w", [jtype])
    complete(svc, done["id"], "w", "succeeded")
    expect_error(
        "PT409",
        f"job {done['id']} is succeeded",
        svc,
        "jobforge_cancel_job",
        p_job_id=done["id"],
        p_tenant_id=tenant,
    )
    assert job_row(admin_conn, done["id"])["status"] == "succeeded"
    expect_error(
        "PT404", "job ", svc, "jobforge_cancel_job", p_job_id=str(uuid.uuid4()), p_tenant_id=tenant
    )


def test_reschedule_moves_only_queued_jobs(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_run_at=datetime.now(UTC) + timedelta(days=3))
    assert claim(svc, "w", [jtype]) == []
    moved = svc.call(
        "jobforge_reschedule_job",
        p_job_id=job["id"],
        p_tenant_id=tenant,
        p_run_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert moved["status"] == "queued"
    assert ts(moved["run_at"]) < datetime.now(UTC)
    assert [j["id"] for j in claim(svc, "w", [jtype])] == [job["id"]]

    before = job_row(admin_conn, job["id"])
    message = expect_error(
        "PT409",
        f"job {job['id']} is running",
        svc,
        "jobforge_reschedule_job",
        p_job_id=job["id"],
        p_tenant_id=tenant,
        p_run_at=datetime.now(UTC),
    )
    assert "only queued jobs can be rescheduled" in message
    assert job_row(admin_conn, job["id"]) == before
    expect_error(
        "PT400",
        "run_at: ",
        svc,
        "jobforge_reschedule_job",
        p_job_id=job["id"],
        p_tenant_id=tenant,
        p_run_at=None,
    )
    expect_error(
        "PT404",
        "job ",
        svc,
        "jobforge_reschedule_job",
        p_job_id=str(uuid.uuid4()),
        p_tenant_id=tenant,
        p_run_at=datetime.now(UTC),
    )


def test_list_jobs_newest_first_with_filters(svc: RoleSession, tenant: str) -> None:
    a, b = new_type(), new_type()
    made = [enqueue(svc, tenant, t) for t in (a, b, a, b, a)]  # one transaction each
    made += svc.call(  # one transaction, one created_at: id breaks the tie
        "jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=[{"type": a}, {"type": a}]
    )
    (running,) = claim(svc, "w", [b], limit=1)

    def order(rows: list[dict[str, Any]]) -> list[str]:
        key = sorted(rows, key=lambda r: (ts(r["created_at"]), uuid.UUID(r["id"])), reverse=True)
        return [r["id"] for r in key]

    def listed(**filters: Any) -> list[str]:
        rows = svc.call("jobforge_list_jobs", p_tenant_id=tenant, p_filters=filters)
        return [r["id"] for r in rows]

    everything = order(made)
    assert listed() == everything
    assert svc.call("jobforge_list_jobs", p_tenant_id=tenant)[0]["id"] == everything[0]
    assert listed(type=a) == [
        i for i in everything if i in {m["id"] for m in made if m["type"] == a}
    ]
    assert listed(status="running") == [running["id"]]
    assert listed(status="running", type=a) == []
    assert listed(limit=2) == everything[:2]
    assert listed(limit=2, offset=3) == everything[3:5]
    assert listed(offset=100) == []
    assert listed(status=None, type=None) == everything  # null means no filter
    assert svc.call("jobforge_list_jobs", p_tenant_id=new_tenant()) == []


@pytest.mark.parametrize(
    ("filters", "prefix"),
    [
        ({"bogus": 1}, "bogus: "),
        ({"status": "queued", "tenant_id": "x"}, "tenant_id: "),
        ({"status": "pending"}, "status: "),
        ({"status": 1}, "status: "),
        ({"type": 5}, "type: "),
        ({"type": ""}, "type: "),
        ({"limit": 0}, "limit: "),
        ({"limit": 1001}, "limit: "),
        ({"limit": "10"}, "limit: "),
        ({"limit": 2.5}, "limit: "),
        ({"offset": -1}, "offset: "),
        ({"offset": 1e12}, "offset: "),
        ([1, 2], "filters: "),
    ],
)
def test_list_jobs_refuses_bad_filters(
    svc: RoleSession, tenant: str, filters: Any, prefix: str
) -> None:
    expect_error("PT400", prefix, svc, "jobforge_list_jobs", p_tenant_id=tenant, p_filters=filters)


def test_get_job_and_result_are_null_when_absent(svc: RoleSession, tenant: str, jtype: str) -> None:
    assert svc.call("jobforge_get_job", p_job_id=str(uuid.uuid4()), p_tenant_id=tenant) is None
    job = enqueue(svc, tenant, jtype)
    assert svc.call("jobforge_get_result", p_job_id=job["id"], p_tenant_id=tenant) is None
    expect_error("PT400", "job_id: ", svc, "jobforge_get_job", p_job_id=None, p_tenant_id=tenant)


# -- tenants, roles, grants ---------------------------------------------------------------


def tenant_facing_calls(tenant: str, job_id: str, jtype: str) -> dict[str, dict[str, Any]]:
    return {
        "jobforge_enqueue_job": {"p_tenant_id": tenant, "p_type": jtype},
        "jobforge_enqueue_jobs": {"p_tenant_id": tenant, "p_jobs": [{"type": jtype}]},
        "jobforge_list_jobs": {"p_tenant_id": tenant, "p_filters": {}},
        "jobforge_get_job": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_get_result": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_cancel_job": {"p_job_id": job_id, "p_tenant_id": tenant},
        "jobforge_reschedule_job": {
            "p_job_id": job_id,
            "p_tenant_id": tenant,
            "p_run_at": datetime.now(UTC),
        },
    }


@pytest.fixture
def tenant_b(svc: RoleSession) -> dict[str, Any]:
    """Tenant B with a queued job and a succeeded one (with result and attempt rows)."""
    tenant, jtype = new_tenant(), new_type()
    done = enqueue(svc, tenant, jtype)
    claim(svc, "w", [jtype])
    complete(svc, done["id"], "w", "succeeded", p_result={"secret": "of B"})
    queued = enqueue(svc, tenant, jtype, p_payload={"secret": "of B"})
    return {"tenant": tenant, "type": jtype, "queued": queued["id"], "done": done["id"]}


def test_user_of_tenant_a_cannot_touch_tenant_b(
    act_as: ActAs,
    admin_conn: psycopg.Connection[Any],
    tenant_b: dict[str, Any],
) -> None:
    tenant_a = new_tenant()
    user_a = act_as("authenticated", tenant_claims(tenant_a))
    b = tenant_b["tenant"]
    before = tenant_rows(admin_conn, b)
    assert before["jobforge_jobs"]
    assert before["jobforge_job_results"]

    for job_id in (tenant_b["queued"], tenant_b["done"]):
        # Acting for tenant B: refused before anything else.
        for fn, args in tenant_facing_calls(b, job_id, tenant_b["type"]).items():
            expect_error(
                "PT403", f"tenant_id: caller may not act for tenant {b}", user_a, fn, **args
            )
        # Acting for tenant A with B's job ids: B's jobs do not exist for A.
        assert user_a.call("jobforge_get_job", p_job_id=job_id, p_tenant_id=tenant_a) is None
        assert user_a.call("jobforge_get_result", p_job_id=job_id, p_tenant_id=tenant_a) is None
        expect_error(
            "PT404",
            f"job {job_id} not found",
            user_a,
            "jobforge_cancel_job",
            p_job_id=job_id,
            p_tenant_id=tenant_a,
        )
        expect_error(
            "PT404",
            f"job {job_id} not found",
            user_a,
            "jobforge_reschedule_job",
            p_job_id=job_id,
            p_tenant_id=tenant_a,
            p_run_at=datetime.now(UTC),
        )
    assert user_a.call("jobforge_list_jobs", p_tenant_id=tenant_a) == []

    assert tenant_rows(admin_conn, b) == before
    assert count_jobs(admin_conn, tenant_a) == 0


def test_rls_shows_each_user_only_its_tenants_rows(
    act_as: ActAs,
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    tenant_b: dict[str, Any],
) -> None:
    tenant_a, jtype = new_tenant(), new_type()
    job = enqueue(svc, tenant_a, jtype)
    claim(svc, "w", [jtype])
    complete(svc, job["id"], "w", "succeeded", p_result={"mine": True})
    for tenant in (tenant_a, tenant_b["tenant"]):
        admin_conn.execute(
            "insert into public.jobforge_connector_configs (tenant_id, connector_type, config)"
            " values (%s, 'slack', '{\"channel\": \"#ops\"}')",
            (tenant,),
        )

    user_a = act_as("authenticated", tenant_claims(tenant_a))
    for table in TABLES:
        seen = user_a.query(f"select distinct tenant_id::text from public.{table}")
        assert seen == [(tenant_a,)], table
        of_b = user_a.query(
            f"select count(*) from public.{table} where tenant_id = %s", (tenant_b["tenant"],)
        )
        assert of_b == [(0,)], table

    # A user of both tenants sees both; service_role sees everything.
    both = act_as("authenticated", tenant_claims(tenant_a, tenant_b["tenant"]))
    seen = both.query("select distinct tenant_id::text from public.jobforge_jobs")
    assert set(seen) == {(tenant_a,), (tenant_b["tenant"],)}
    service_sees = svc.query(
        "select count(distinct tenant_id) from public.jobforge_jobs where tenant_id = any(%s)",
        ([tenant_a, tenant_b["tenant"]],),
    )
    assert service_sees == [(2,)]


@pytest.mark.parametrize(
    "claims",
    [
        {"role": "authenticated", "sub": "u1"},
        {"role": "authenticated", "app_metadata": {}},
        {"role": "authenticated", "app_metadata": {"tenant_ids": []}},
        {"role": "authenticated", "app_metadata": "not an object"},
        {"role": "authenticated", "app_metadata": {"tenant_ids": "not an array"}},
        {"role": "authenticated", "app_metadata": {"tenant_ids": ["nope", 7, None, {"a": 1}]}},
        {"role": "authenticated", "user_metadata": {"tenant_ids": ["IGNORED"]}},
    ],
)
def test_user_without_tenant_claims_sees_and_does_nothing(
    act_as: ActAs,
    svc: RoleSession,
    admin_conn: psycopg.Connection[Any],
    claims: dict[str, Any],
) -> None:
    enqueue(svc, new_tenant(), new_type())  # there is something to see
    user = act_as("authenticated", claims)
    assert user.query("select jobforge_private.jwt_tenant_ids()") == [([],)]
    for table in TABLES:
        assert user.query(f"select count(*) from public.{table}") == [(0,)], table
    tenant = new_tenant()
    for fn, args in tenant_facing_calls(tenant, str(uuid.uuid4()), new_type()).items():
        expect_error("PT403", "tenant_id: ", user, fn, **args)
    assert count_jobs(admin_conn, tenant) == 0


def test_jwt_tenant_ids_reads_tenant_id_and_tenant_ids(act_as: ActAs) -> None:
    one, two, three = (new_tenant() for _ in range(3))
    claims = {
        "role": "authenticated",
        "app_metadata": {"tenant_id": one.upper(), "tenant_ids": [two, "junk", three, two]},
    }
    user = act_as("authenticated", claims)
    ((ids,),) = user.query("select jobforge_private.jwt_tenant_ids()")
    assert sorted(str(i) for i in ids) == sorted([one, two, three])
    singular = act_as(
        "authenticated", {"role": "authenticated", "app_metadata": {"tenant_id": one}}
    )
    job = enqueue(singular, one, new_type())
    assert job["tenant_id"] == one


def _signatures(conn: psycopg.Connection[Any], where: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select p.oid::regprocedure::text,"
        " 'select ' || p.oid::regproc::text || '(' || coalesce(("
        "   select string_agg('null::' || format_type(t, null), ', ' order by n)"
        "   from unnest(p.proargtypes::oid[]) with ordinality as a(t, n)), '') || ')'"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        f" where {where} order by 1"
    ).fetchall()
    return [(str(sig), str(call)) for sig, call in rows]


def test_anon_can_execute_no_jobforge_function_nor_read_any_table(
    act_as: ActAs, admin_conn: psycopg.Connection[Any]
) -> None:
    anon = act_as("anon", {"role": "anon", "app_metadata": {"tenant_ids": [new_tenant()]}})
    functions = _signatures(
        admin_conn,
        "(n.nspname = 'public' and p.proname like 'jobforge\\_%')"
        " or n.nspname = 'jobforge_private'",
    )
    assert set(TENANT_RPCS + WORKER_RPCS) <= {sig.split("(")[0] for sig, _ in functions}
    executable = []
    for signature, call in functions:
        try:
            anon.query(call)
        except psycopg.Error as exc:
            if exc.sqlstate == "42501":
                continue
        executable.append(signature)
    assert executable == []
    for table in TABLES:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            anon.query(f"select * from public.{table}")


def test_authenticated_cannot_run_worker_rpcs_or_private_helpers(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    user = act_as("authenticated", tenant_claims(tenant))
    calls: dict[str, dict[str, Any]] = {
        "jobforge_claim_jobs": {"p_worker_id": "w", "p_types": [jtype]},
        "jobforge_heartbeat_job": {"p_job_id": job["id"], "p_worker_id": "w"},
        "jobforge_complete_job": {"p_job_id": job["id"], "p_worker_id": "w", "p_status": "failed"},
        "jobforge_reap_stale_jobs": {"p_timeout": "1 second"},
    }
    for fn, args in calls.items():
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.call(fn, **args)
    private = _signatures(
        admin_conn, "n.nspname = 'jobforge_private' and p.proname <> 'jwt_tenant_ids'"
    )
    assert private
    for _, call in private:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.query(call)
    assert job_row(admin_conn, job["id"]) == job


@pytest.mark.parametrize("role", ["authenticated", "service_role"])
def test_api_roles_cannot_write_tables_directly(
    act_as: ActAs, svc: RoleSession, admin_conn: psycopg.Connection[Any], role: str
) -> None:
    tenant = new_tenant()
    job = enqueue(svc, tenant, new_type())
    session = act_as(role, tenant_claims(tenant) if role == "authenticated" else None)
    statements = [
        (
            "insert into public.jobforge_jobs (tenant_id, type) values (%s, 'x')",
            (tenant,),
        ),
        ("update public.jobforge_jobs set status = 'succeeded' where id = %s", (job["id"],)),
        ("delete from public.jobforge_jobs where id = %s", (job["id"],)),
        (
            "insert into public.jobforge_connector_configs (tenant_id, connector_type)"
            " values (%s, 'x')",
            (tenant,),
        ),
        ("delete from public.jobforge_job_attempts where tenant_id = %s", (tenant,)),
    ]
    for statement, params in statements:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            session.query(statement, params)
    assert job_row(admin_conn, job["id"]) == job


def test_catalog_grants_definer_and_rls(admin_conn: psycopg.Connection[Any]) -> None:
    rows = admin_conn.execute(
        """
        select p.oid::regprocedure::text, n.nspname, p.proname, p.prosecdef,
          coalesce(p.proconfig, '{}'),
          has_function_privilege('anon', p.oid, 'EXECUTE'),
          has_function_privilege('authenticated', p.oid, 'EXECUTE'),
          has_function_privilege('service_role', p.oid, 'EXECUTE'),
          exists (
            select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            where a.grantee = 0 and a.privilege_type = 'EXECUTE'
          )
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where (n.nspname = 'public' and p.proname like 'jobforge\\_%')
           or n.nspname = 'jobforge_private'
        """
    ).fetchall()
    seen = {name for _, schema, name, *_ in rows if schema == "public"}
    assert set(TENANT_RPCS + WORKER_RPCS) <= seen
    for signature, schema, name, definer, config, anon, authd, service, public in rows:
        assert not public, f"{signature} is executable by PUBLIC"
        assert not anon, f"{signature} is executable by anon"
        if schema == "public":
            assert definer, f"{signature} is not SECURITY DEFINER"
            assert 'search_path=""' in config, f"{signature} has no empty search_path: {config}"
        if name in TENANT_RPCS:
            assert (authd, service) == (True, True), signature
        if name in WORKER_RPCS:
            assert (authd, service) == (False, True), signature
        if schema == "jobforge_private":
            assert authd == service == (name == "jwt_tenant_ids"), signature

    tables = admin_conn.execute(
        "select c.relname, c.relrowsecurity,"
        " has_table_privilege('anon', c.oid, 'SELECT,INSERT,UPDATE,DELETE'),"
        " has_table_privilege('authenticated', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE'),"
        " has_table_privilege('service_role', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE')"
        " from pg_class c where c.relnamespace = 'public'::regnamespace"
        " and c.relkind in ('r', 'p') and c.relname like 'jobforge\\_%'"
    ).fetchall()
    assert set(TABLES) <= {name for name, *_ in tables}
    for name, rls, anon, authd_writes, service_writes in tables:
        assert rls, f"RLS is off on {name}"
        assert not anon, f"anon has privileges on {name}"
        if name in TABLES:
            assert (authd_writes, service_writes) == (False, False), name

    policies = admin_conn.execute(
        "select tablename, cmd, roles::text[] from pg_policies"
        " where schemaname = 'public' and tablename = any(%s)",
        (list(TABLES),),
    ).fetchall()
    assert sorted(policies) == sorted((t, "SELECT", ["authenticated"]) for t in TABLES)


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
        "select id::text, status, attempts, locked_by, result_id is not null"
        " from public.jobforge_jobs where tenant_id = %s",
        (tenant,),
    ).fetchall()
    assert len(jobs) == 2000
    assert {
        (status, attempts, locked, has_result) for _, status, attempts, locked, has_result in jobs
    } == {("succeeded", 1, None, True)}
    attempts = fresh_admin.execute(
        "select job_id::text, count(*), min(worker_id), min(status)"
        " from public.jobforge_job_attempts where tenant_id = %s group by job_id",
        (tenant,),
    ).fetchall()
    assert len(attempts) == 2000
    for job_id, count, worker, status in attempts:
        assert (count, worker, status) == (1, by_worker[job_id], "succeeded")
    results = fresh_admin.execute(
        "select count(*), count(distinct job_id) from public.jobforge_job_results"
        " where tenant_id = %s",
        (tenant,),
    ).fetchone()
    assert results == (2000, 2000)
