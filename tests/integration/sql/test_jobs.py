"""``supabase/schema/20_jobs.sql``: the core queue as tenants see it, called as each role.

Enqueue (single and batch, idempotency, notifications), input validation, cancel,
reschedule, list, get, the attempt history (``jobforge_list_job_attempts``), and tenant
isolation of all of them. The worker side of the same tables is ``test_workers.py``.

Tests share one database (``migrated_db_url``) and isolate themselves with fresh tenant
ids and job types.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.integration.sql.helpers import (
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
    sql_error,
    tenant_facing_calls,
    tenant_rows,
    ts,
)
from tests.support.roles import RoleSession, tenant_claims

MIB = 1024 * 1024


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
    assert (job["result"], job["artifact_ref"], job["finished_by"]) == (None, None, None)
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
        # One notification per batch, not one per job.
        assert [n.payload for n in listener.notifies(timeout=0.5)] == []

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


def test_enqueue_jobs_answers_ids_in_input_order_when_asked(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    """p_returning 'ids': the same jobs and the same positions as the rows answer, on both
    paths (no key in the batch: the plain insert; keys: ON CONFLICT and the lookup)."""
    plain = [{"type": jtype, "payload": {"n": n}} for n in range(3)]
    ids = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=plain, p_returning="ids")
    rows = [job_row(admin_conn, i) for i in ids]
    assert [r["payload"] if r else None for r in rows] == [{"n": 0}, {"n": 1}, {"n": 2}]

    existing = enqueue(svc, tenant, jtype, p_idempotency_key="k")
    keyed = [
        {"type": jtype, "idempotency_key": "k"},
        {"type": jtype, "idempotency_key": "new", "payload": {"n": 9}},
        {"type": jtype, "idempotency_key": "new"},
        {"type": jtype},
    ]
    got = svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=keyed, p_returning="ids")
    assert got[0] == existing["id"]
    assert got[1] == got[2]
    holder = job_row(admin_conn, got[1])
    assert holder is not None
    assert holder["payload"] == {"n": 9}
    assert len({*got, *ids}) == 6
    assert count_jobs(admin_conn, tenant) == 6

    for bad in (None, "row", ""):
        with sql_error("PT400", "returning: must be rows or ids"):
            svc.call("jobforge_enqueue_jobs", p_tenant_id=tenant, p_jobs=plain, p_returning=bad)
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
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=300
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


# -- cancel, reschedule, list, get ------------------------------------------------------


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
    row = job_row(admin_conn, running["id"])
    assert row is not None
    assert row["status"] == "canceled"

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
    row = job_row(admin_conn, done["id"])
    assert row is not None
    assert row["status"] == "succeeded"
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


def test_service_role_lists_every_tenants_jobs_with_a_null_tenant(
    svc: RoleSession, jtype: str
) -> None:
    a, b = new_tenant(), new_tenant()
    made = [enqueue(svc, t, jtype) for t in (a, b, a)]  # one transaction each
    made += svc.call(  # one created_at: id breaks the tie, as for one tenant
        "jobforge_enqueue_jobs", p_tenant_id=b, p_jobs=[{"type": jtype}, {"type": jtype}]
    )
    (running,) = claim(svc, "w", [jtype], limit=1)
    newest_first = [
        r["id"]
        for r in sorted(made, key=lambda r: (ts(r["created_at"]), uuid.UUID(r["id"])), reverse=True)
    ]

    def listed(**filters: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = svc.call(
            "jobforge_list_jobs", p_tenant_id=None, p_filters={"type": jtype, **filters}
        )
        return rows

    rows = listed()
    assert [r["id"] for r in rows] == newest_first
    assert {r["tenant_id"] for r in rows} == {a, b}
    assert [r["id"] for r in listed(limit=2, offset=1)] == newest_first[1:3]
    assert [r["id"] for r in listed(status="running")] == [running["id"]]
    # The same rows a tenant's own listing gives, merged.
    for tenant in (a, b):
        own = svc.call("jobforge_list_jobs", p_tenant_id=tenant, p_filters={"type": jtype})
        assert own == [r for r in listed() if r["tenant_id"] == tenant]
    # Bad filters are refused with or without a tenant.
    expect_error(
        "PT400", "limit: ", svc, "jobforge_list_jobs", p_tenant_id=None, p_filters={"limit": 0}
    )


@pytest.mark.parametrize(
    "claims",
    [
        "own tenants",
        {"role": "authenticated"},  # no tenant claim at all
        {"role": "authenticated", "app_metadata": {"tenant_ids": []}},
    ],
    ids=["own-tenants", "no-claim", "empty-claim"],
)
def test_a_null_tenant_is_refused_for_authenticated_callers(
    act_as: ActAs, svc: RoleSession, jtype: str, claims: Any
) -> None:
    """A user never gets "every tenant": a null tenant is refused as it always was
    (PT400 before anything is read), whatever tenants the user belongs to."""
    a, b = new_tenant(), new_tenant()
    job = enqueue(svc, a, jtype)
    enqueue(svc, b, jtype)
    user = act_as("authenticated", tenant_claims(a, b) if claims == "own tenants" else claims)
    expect_error(
        "PT400",
        "tenant_id: is required",
        user,
        "jobforge_list_jobs",
        p_tenant_id=None,
        p_filters={"type": jtype},
    )
    expect_error("PT400", "tenant_id: is required", user, "jobforge_list_jobs", p_tenant_id=None)
    expect_error(
        "PT400",
        "tenant_id: is required",
        user,
        "jobforge_get_job",
        p_job_id=job["id"],
        p_tenant_id=None,
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        act_as("anon").call("jobforge_list_jobs", p_tenant_id=None)


def test_service_role_gets_a_job_of_any_tenant_with_a_null_tenant(
    svc: RoleSession, tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    assert svc.call("jobforge_get_job", p_job_id=job["id"], p_tenant_id=None) == job
    assert svc.call("jobforge_get_job", p_job_id=str(uuid.uuid4()), p_tenant_id=None) is None
    expect_error("PT400", "job_id: ", svc, "jobforge_get_job", p_job_id=None, p_tenant_id=None)
    # A tenant given still confines the lookup to it.
    assert svc.call("jobforge_get_job", p_job_id=job["id"], p_tenant_id=new_tenant()) is None


def test_get_job_and_result_are_null_when_absent(svc: RoleSession, tenant: str, jtype: str) -> None:
    assert svc.call("jobforge_get_job", p_job_id=str(uuid.uuid4()), p_tenant_id=tenant) is None
    job = enqueue(svc, tenant, jtype)
    assert svc.call("jobforge_get_result", p_job_id=job["id"], p_tenant_id=tenant) is None
    expect_error("PT400", "job_id: ", svc, "jobforge_get_job", p_job_id=None, p_tenant_id=tenant)


# -- tenants ----------------------------------------------------------------------------


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
    assert any(j["status"] == "succeeded" for j in before["jobforge_jobs"])

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
        expect_error(
            "PT404",
            f"job {job_id} not found",
            user_a,
            "jobforge_list_job_attempts",
            p_job_id=job_id,
            p_tenant_id=tenant_a,
        )
    assert user_a.call("jobforge_list_jobs", p_tenant_id=tenant_a) == []

    assert tenant_rows(admin_conn, b) == before
    assert count_jobs(admin_conn, tenant_a) == 0


# -- attempt history --------------------------------------------------------------------


def list_attempts(session: RoleSession, tenant: str, job_id: str) -> list[dict[str, Any]]:
    attempts: list[dict[str, Any]] = session.call(
        "jobforge_list_job_attempts", p_job_id=job_id, p_tenant_id=tenant
    )
    return attempts


def test_list_job_attempts_oldest_first_after_a_failure_and_a_success(
    svc: RoleSession, admin_conn: psycopg.Connection[Any], tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_max_attempts=3)
    (first,) = claim(svc, "worker-1", [jtype])
    error = {"type": "Boom", "message": "first try"}
    complete(svc, job["id"], "worker-1", "failed", p_error=error)
    admin_conn.execute("update public.jobforge_jobs set run_at = now() where id = %s", (job["id"],))
    (second,) = claim(svc, "worker-2", [jtype])
    complete(svc, job["id"], "worker-2", "succeeded", p_result={"ok": True})

    attempts = list_attempts(svc, tenant, job["id"])
    assert [(a["attempt"], a["status"], a["worker_id"]) for a in attempts] == [
        (1, "failed", "worker-1"),
        (2, "succeeded", "worker-2"),
    ]
    assert [a["error"] for a in attempts] == [error, None]
    assert [a["started_at"] for a in attempts] == [first["started_at"], second["started_at"]]
    assert {(a["job_id"], a["tenant_id"]) for a in attempts} == {(job["id"], tenant)}
    assert ts(attempts[0]["finished_at"]) <= ts(attempts[1]["finished_at"])
    # The failure is the table's row; the success is the job row (its id is the job's).
    assert attempts[:1] == attempts_of(admin_conn, job["id"])
    assert attempts[1]["id"] == job["id"]


def test_list_job_attempts_is_empty_until_an_attempt_finishes(
    svc: RoleSession, tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype)
    assert list_attempts(svc, tenant, job["id"]) == []
    claim(svc, "w", [jtype])  # running: the attempt has not finished
    assert list_attempts(svc, tenant, job["id"]) == []
    complete(svc, job["id"], "w", "succeeded")
    assert [a["status"] for a in list_attempts(svc, tenant, job["id"])] == ["succeeded"]


def test_list_job_attempts_of_another_tenants_job_or_an_unknown_id_is_not_found(
    act_as: ActAs, svc: RoleSession, tenant_b: dict[str, Any]
) -> None:
    tenant_a = new_tenant()
    b, done = tenant_b["tenant"], tenant_b["done"]
    assert len(list_attempts(svc, b, done)) == 2  # B's job has attempts to hide
    unknown = str(uuid.uuid4())
    user_a = act_as("authenticated", tenant_claims(tenant_a))
    for session in (svc, user_a):
        for job_id in (done, unknown):
            expect_error(
                "PT404",
                f"job {job_id} not found",
                session,
                "jobforge_list_job_attempts",
                p_job_id=job_id,
                p_tenant_id=tenant_a,
            )
    expect_error(
        "PT403",
        f"tenant_id: caller may not act for tenant {b}",
        user_a,
        "jobforge_list_job_attempts",
        p_job_id=done,
        p_tenant_id=b,
    )


def test_list_job_attempts_refuses_a_null_job_id_or_tenant(
    act_as: ActAs, svc: RoleSession, tenant: str
) -> None:
    user = act_as("authenticated", tenant_claims(tenant))
    for session in (svc, user):
        expect_error(
            "PT400",
            "job_id: is required",
            session,
            "jobforge_list_job_attempts",
            p_job_id=None,
            p_tenant_id=tenant,
        )
        expect_error(
            "PT400",
            "tenant_id: is required",
            session,
            "jobforge_list_job_attempts",
            p_job_id=str(uuid.uuid4()),
            p_tenant_id=None,
        )


def test_authenticated_user_of_the_tenant_lists_its_job_attempts(
    act_as: ActAs, svc: RoleSession, tenant: str, jtype: str
) -> None:
    job = enqueue(svc, tenant, jtype, p_max_attempts=1)
    claim(svc, "w", [jtype])
    complete(svc, job["id"], "w", "failed", p_error={"type": "Boom", "message": "no"})
    expected = list_attempts(svc, tenant, job["id"])
    assert [(a["attempt"], a["status"]) for a in expected] == [(1, "failed")]

    user = act_as("authenticated", tenant_claims(tenant))
    assert list_attempts(user, tenant, job["id"]) == expected
    # A user of several tenants, acting for this one, sees the same.
    both = act_as("authenticated", tenant_claims(new_tenant(), tenant))
    assert list_attempts(both, tenant, job["id"]) == expected
