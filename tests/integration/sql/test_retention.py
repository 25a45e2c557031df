"""Retention: ``jobforge_purge_finished_jobs`` (20_jobs.sql), ``jobforge_purge_manifests``
(50_manifests.sql), and the audit rows every purge writes (10_audit.sql, 30_events.sql).

A purge deletes across tenants, so each test here runs on its own database
(``fresh_db_url``) where it knows every row; the shared database's jobs are never at risk.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.sql.helpers import ActAs, enqueue, expect_error, sql_error
from tests.support.roles import RoleSession, tenant_claims

TERMINAL = ("succeeded", "dead", "canceled")
PURGES = ("jobforge_purge_finished_jobs", "jobforge_purge_manifests")


@pytest.fixture
def db(fresh_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def sr(act_as: ActAs, fresh_db_url: str) -> RoleSession:
    return act_as("service_role", url=fresh_db_url)


def job(
    sr: RoleSession,
    db: psycopg.Connection[Any],
    status: str,
    age: timedelta,
    *,
    manifest: bool = True,
    attempts: int = 1,
) -> str:
    """A job of a new tenant in ``status``, finished ``age`` ago when terminal (queued and
    running ones are dated ``age`` ago everywhere), with failed attempts and a manifest."""
    tenant = str(uuid.uuid4())
    row = enqueue(sr, tenant, "retention.test")
    when = datetime.now(UTC) - age
    finished = when if status in (*TERMINAL, "failed") else None
    locked = ("w", when, when) if status == "running" else (None, None, None)
    db.execute(
        "update jobforge_jobs set status = %s, finished_at = %s, created_at = %s, run_at = %s,"
        " started_at = %s, locked_by = %s, locked_at = %s, heartbeat_at = %s where id = %s",
        (status, finished, when, when, when, *locked, row["id"]),
    )
    for n in range(1, attempts + 1):
        db.execute(
            "insert into jobforge_job_attempts (job_id, tenant_id, attempt, status, finished_at)"
            " values (%s, %s, %s, 'failed', %s)",
            (row["id"], tenant, n, when),
        )
    if manifest:
        sr.call(
            "jobforge_create_manifest",
            p_run_id=row["id"],
            p_tenant_id=tenant,
            p_manifest={"job_type": "retention.test"},
        )
    return str(row["id"])


def ids(db: psycopg.Connection[Any], table: str, column: str = "id") -> set[str]:
    return {str(r[0]) for r in db.execute(f"select {column} from {table}").fetchall()}


def state(db: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """The rows a purge may touch, to show that a refused call changed nothing."""
    return {
        "jobs": ids(db, "jobforge_jobs"),
        "attempts": ids(db, "jobforge_job_attempts"),
        "manifests": ids(db, "jobforge_artifact_manifests"),
        "audit": ids(db, "jobforge_audit_logs"),
    }


def purge_audits(db: psycopg.Connection[Any], table: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "select to_jsonb(a) from jobforge_audit_logs a"
        " where a.action = 'retention_purge' and a.target_id = %s order by a.created_at",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def test_purge_finished_jobs_removes_old_finished_jobs_with_their_attempts_and_manifests(
    sr: RoleSession, db: psycopg.Connection[Any]
) -> None:
    old, new = timedelta(days=40), timedelta(days=10)
    gone = {status: job(sr, db, status, old) for status in TERMINAL}
    kept = {
        "queued": job(sr, db, "queued", old),
        "running": job(sr, db, "running", old),
        # failed: no RPC leaves a job in it, and jobforge_retry_job may requeue one.
        "failed": job(sr, db, "failed", old),
        "recent": job(sr, db, "succeeded", new),
        "no manifest": job(sr, db, "queued", old, manifest=False),
    }
    before = datetime.now(UTC)

    assert sr.call("jobforge_purge_finished_jobs", p_older_than="30 days") == {
        "deleted": 3,
        "more": False,
    }

    assert ids(db, "jobforge_jobs") == set(kept.values())
    assert ids(db, "jobforge_job_attempts", "job_id") == set(kept.values())
    assert ids(db, "jobforge_artifact_manifests", "run_id") == set(kept.values()) - {
        kept["no manifest"]
    }
    assert not ids(db, "jobforge_jobs") & set(gone.values())
    [audit] = purge_audits(db, "jobforge_jobs")
    assert (audit["tenant_id"], audit["outcome"], audit["target_type"]) == (
        None,
        "success",
        "table",
    )
    assert audit["details"]["count"] == 3
    assert audit["details"]["more"] is False
    assert audit["details"]["batch_size"] == 10000
    cutoff = datetime.fromisoformat(audit["details"]["cutoff"])
    assert before - timedelta(days=30, seconds=5) < cutoff < datetime.now(UTC) - timedelta(days=30)

    # Nothing is old enough for a 60-day cutoff: a call that deletes nothing is audited too.
    assert sr.call("jobforge_purge_finished_jobs", p_older_than="60 days") == {
        "deleted": 0,
        "more": False,
    }
    assert [a["details"]["count"] for a in purge_audits(db, "jobforge_jobs")] == [3, 0]


@pytest.mark.parametrize("fn", PURGES)
def test_a_purge_works_in_batches_and_says_when_more_remain(
    sr: RoleSession, db: psycopg.Connection[Any], fn: str
) -> None:
    for _ in range(5):
        job(sr, db, "succeeded", timedelta(days=2))
    table = (
        "jobforge_jobs" if fn == "jobforge_purge_finished_jobs" else "jobforge_artifact_manifests"
    )
    answers = [sr.call(fn, p_older_than="1 day", p_batch_size=2) for _ in range(4)]
    assert answers == [
        {"deleted": 2, "more": True},
        {"deleted": 2, "more": True},
        {"deleted": 1, "more": False},
        {"deleted": 0, "more": False},
    ]
    assert ids(db, table) == set()
    # Exactly a batch left: more is false, not a wasted call.
    for _ in range(2):
        job(sr, db, "dead", timedelta(days=2))
    assert sr.call(fn, p_older_than="1 day", p_batch_size=2) == {"deleted": 2, "more": False}
    assert [a["details"]["count"] for a in purge_audits(db, table)] == [2, 2, 1, 0, 2]


def test_purge_manifests_keeps_the_jobs_and_the_manifests_of_unfinished_runs(
    sr: RoleSession, db: psycopg.Connection[Any]
) -> None:
    old = timedelta(days=100)
    finished = [job(sr, db, status, old) for status in TERMINAL]
    unfinished = [job(sr, db, status, old) for status in ("queued", "running", "failed")]
    recent = job(sr, db, "succeeded", timedelta(days=1))
    jobs_before = ids(db, "jobforge_jobs")
    attempts_before = ids(db, "jobforge_job_attempts")

    assert sr.call("jobforge_purge_manifests", p_older_than="90 days") == {
        "deleted": 3,
        "more": False,
    }
    assert ids(db, "jobforge_artifact_manifests", "run_id") == {*unfinished, recent}
    assert ids(db, "jobforge_jobs") == jobs_before
    assert ids(db, "jobforge_job_attempts") == attempts_before
    assert set(finished) <= jobs_before
    [audit] = purge_audits(db, "jobforge_artifact_manifests")
    assert audit["details"]["count"] == 3


@pytest.mark.parametrize("fn", PURGES)
@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_only_the_service_role_may_purge(
    act_as: ActAs,
    fresh_db_url: str,
    sr: RoleSession,
    db: psycopg.Connection[Any],
    fn: str,
    role: str,
) -> None:
    tenant = str(uuid.uuid4())
    job(sr, db, "succeeded", timedelta(days=40))
    before = state(db)
    claims = tenant_claims(tenant)
    claims["role"] = role
    session = act_as(role, claims, url=fresh_db_url)
    with sql_error("42501"):
        session.call(fn, p_older_than="1 day")
    assert state(db) == before


BAD_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"p_older_than": None}, "older_than: is required"),
    ({"p_older_than": "0 seconds"}, "older_than: must be positive"),
    ({"p_older_than": "-30 days"}, "older_than: must be positive"),
    # Mixed signs that sum to less than nothing.
    ({"p_older_than": "1 day -25 hours"}, "older_than: must be positive"),
    ({"p_older_than": "36501 days"}, "older_than: must be at most 36500 days"),
    ({"p_older_than": "178000000 years"}, "older_than: must be at most 36500 days"),
    ({"p_older_than": "30 days", "p_batch_size": None}, "batch_size: must be between 1 and 10000"),
    ({"p_older_than": "30 days", "p_batch_size": 0}, "batch_size: must be between 1 and 10000"),
    ({"p_older_than": "30 days", "p_batch_size": -1}, "batch_size: must be between 1 and 10000"),
    ({"p_older_than": "30 days", "p_batch_size": 10001}, "batch_size: must be between 1 and 10000"),
    (
        {"p_older_than": "30 days", "p_batch_size": 2147483647},
        "batch_size: must be between 1 and 10000",
    ),
]


@pytest.mark.parametrize("fn", PURGES)
@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    sr: RoleSession, db: psycopg.Connection[Any], fn: str, args: dict[str, Any], message: str
) -> None:
    job(sr, db, "succeeded", timedelta(days=400))
    before = state(db)
    expect_error("PT400", message, sr, fn, **args)
    assert state(db) == before


def test_the_audit_and_event_purges_write_an_audit_row_naming_what_they_removed(
    sr: RoleSession, db: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    db.execute(
        "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
        " values (%s, 'job_cancel', 'success', now() - interval '400 days'),"
        " (%s, 'job_cancel', 'success', now() - interval '500 days'),"
        " (%s, 'job_cancel', 'success', now() - interval '10 days')",
        (tenant, tenant, tenant),
    )
    assert sr.call("jobforge_purge_audit_logs", p_retention_days=365)["deleted"] == 2
    [audit] = purge_audits(db, "jobforge_audit_logs")
    assert audit["details"]["count"] == 2
    cutoff = datetime.fromisoformat(audit["details"]["cutoff"])
    assert abs(cutoff - (datetime.now(UTC) - timedelta(days=365))) < timedelta(minutes=1)
    # The purge's own row survives the next purge (it is newer than any cutoff), which
    # takes the 10-day-old row.
    assert sr.call("jobforge_purge_audit_logs", p_retention_days=1)["deleted"] == 1
    assert [a["details"]["count"] for a in purge_audits(db, "jobforge_audit_logs")] == [2, 1]

    assert sr.call("jobforge_purge_expired_events", p_retention_days=30)["deleted"] == 0
    [events_audit] = purge_audits(db, "jobforge_events")
    assert events_audit["details"]["count"] == 0
    # A refused purge writes nothing.
    with sql_error("PT400", "retention_days"):
        sr.call("jobforge_purge_audit_logs", p_retention_days=0)
    assert len(purge_audits(db, "jobforge_audit_logs")) == 2


def test_a_purge_skips_a_job_locked_by_another_transaction(
    sr: RoleSession, db: psycopg.Connection[Any], fresh_db_url: str
) -> None:
    """SKIP LOCKED: a job being retried or canceled right now is left for the next call
    instead of making the purge wait."""
    locked = job(sr, db, "dead", timedelta(days=40))
    free = job(sr, db, "dead", timedelta(days=40))
    with psycopg.connect(fresh_db_url) as other, other.transaction():
        other.execute("select 1 from jobforge_jobs where id = %s for update", (locked,))
        assert sr.call("jobforge_purge_finished_jobs", p_older_than="30 days") == {
            "deleted": 1,
            "more": False,
        }
    assert ids(db, "jobforge_jobs") == {locked}
    assert free not in ids(db, "jobforge_jobs")
    assert sr.call("jobforge_purge_finished_jobs", p_older_than="30 days")["deleted"] == 1
