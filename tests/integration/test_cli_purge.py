"""``jobforge purge``: every table's retention from the command line, one progress line
per batch, and bad durations refused naming the option before anything is deleted.

Each test has its own database (``fresh_db_url``): a purge deletes across tenants."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from jobforge_sdk import FeatureFlags, JobForgeClient
from tests.support.cli import run_cli

OLD_JOBS = 5


def _seed(url: str) -> dict[str, Any]:
    """OLD_JOBS succeeded jobs finished 40 days ago (with manifests), a queued job as old,
    two events 40 days old and one audit row 400 days old."""
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(
        url, flags=FeatureFlags(events=True, manifests=True)
    ) as client:
        old = [client.enqueue_job(tenant_id=tenant, type="cli.purge") for _ in range(OLD_JOBS)]
        for job in old:
            client.create_manifest(run_id=job.id, tenant_id=tenant, manifest={"job_type": "t"})
        queued = client.enqueue_job(tenant_id=tenant, type="cli.purge")
        for _ in range(2):
            client.submit_event(tenant_id=tenant, event_type="cli.old", source_app="external")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_jobs set status = 'succeeded',"
            " finished_at = now() - interval '40 days' where id = any(%s)",
            ([j.id for j in old],),
        )
        conn.execute("update jobforge_jobs set created_at = now() - interval '40 days'")
        conn.execute("update jobforge_events set created_at = now() - interval '40 days'")
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " values (%s, 'job_cancel', 'success', now() - interval '400 days')",
            (tenant,),
        )
    return {"queued": queued.id}


def _count(url: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"select count(*) from {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_purge_prints_a_line_per_batch_and_keeps_what_is_unfinished(fresh_db_url: str) -> None:
    seeded = _seed(fresh_db_url)
    db = ("--database-url", fresh_db_url)
    result = run_cli(
        "purge", "--jobs", "30d", "--events", "30d", "--audit", "365d", "--batch-size", "2", *db
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "jobs: deleted 2 (total 2), more to go",
        "jobs: deleted 2 (total 4), more to go",
        "jobs: deleted 1 (total 5), done",
        "events: deleted 2 (total 2), done",
        "audit: deleted 1 (total 1), done",
    ]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        left = conn.execute("select id, status from jobforge_jobs").fetchall()
        audits = conn.execute(
            "select target_id, details ->> 'count' from jobforge_audit_logs"
            " where action = 'retention_purge' order by created_at"
        ).fetchall()
    assert left == [(seeded["queued"], "queued")]
    assert _count(fresh_db_url, "jobforge_artifact_manifests") == 0
    assert _count(fresh_db_url, "jobforge_events") == 0
    assert audits == [
        ("jobforge_jobs", "2"),
        ("jobforge_jobs", "2"),
        ("jobforge_jobs", "1"),
        ("jobforge_events", "2"),
        ("jobforge_audit_logs", "1"),
    ]


def test_events_and_audit_rows_go_in_batches_and_younger_ones_stay(fresh_db_url: str) -> None:
    _seed(fresh_db_url)
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(fresh_db_url, flags=FeatureFlags(events=True)) as client:
        young = client.submit_event(tenant_id=tenant, event_type="cli.young", source_app="external")
    assert young is not None
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " values (%s, 'job_cancel', 'success', now() - interval '500 days'),"
            " (%s, 'job_cancel', 'success', now() - interval '364 days')",
            (tenant, tenant),
        )
        young_audit = conn.execute(
            "select id from jobforge_audit_logs where created_at > now() - interval '365 days'"
        ).fetchall()
    db = ("--database-url", fresh_db_url)
    result = run_cli("purge", "--events", "30d", "--audit", "365d", "--batch-size", "1", *db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "events: deleted 1 (total 1), more to go",
        "events: deleted 1 (total 2), done",
        "audit: deleted 1 (total 1), more to go",
        "audit: deleted 1 (total 2), done",
    ]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("select id from jobforge_events").fetchall() == [(young.id,)]
        left = {r[0] for r in conn.execute("select id from jobforge_audit_logs").fetchall()}
        # Every younger row stays, and each batch wrote its own retention_purge row.
        assert {r[0] for r in young_audit} <= left
        purges = conn.execute(
            "select target_id, details ->> 'count', details ->> 'batch_size', details ->> 'more'"
            " from jobforge_audit_logs where action = 'retention_purge' order by created_at"
        ).fetchall()
    assert purges == [
        ("jobforge_events", "1", "1", "true"),
        ("jobforge_events", "1", "1", "false"),
        ("jobforge_audit_logs", "1", "1", "true"),
        ("jobforge_audit_logs", "1", "1", "false"),
    ]


def test_purge_json_and_manifests(fresh_db_url: str) -> None:
    _seed(fresh_db_url)
    db = ("--database-url", fresh_db_url)
    result = run_cli("purge", "--manifests", "90d", "--json", *db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"manifests": 0}
    assert result.stderr.splitlines() == ["manifests: deleted 0 (total 0), done"]
    result = run_cli("purge", "--manifests", "30d", "--jobs", "1w", "--json", *db)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"manifests": OLD_JOBS, "jobs": OLD_JOBS}
    assert result.stderr.splitlines() == [
        f"manifests: deleted {OLD_JOBS} (total {OLD_JOBS}), done",
        f"jobs: deleted {OLD_JOBS} (total {OLD_JOBS}), done",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--jobs", "30x"), "argument --jobs: not a duration: '30x'"),
        (("--jobs", "d30"), "argument --jobs: not a duration: 'd30'"),
        (("--jobs", "-30d"), "argument --jobs: expected one argument"),
        (("--manifests", "0d"), "argument --manifests: must be positive: '0d'"),
        (("--events", "36501d"), "argument --events: must be at most 36500d: '36501d'"),
        (("--audit", "99999999999d"), "argument --audit: not a duration: '99999999999d'"),
        (("--audit", "1.5d"), "argument --audit: not a duration: '1.5d'"),
        (("--jobs", "30d", "--batch-size", "0"), "argument --batch-size: must be between 1"),
        (("--jobs", "30d", "--batch-size", "10001"), "argument --batch-size: must be between 1"),
        (("--jobs", "30d", "--batch-size", "x"), "argument --batch-size: not a whole number"),
        (("--jobs", "30d", "--events", "36h"), "--events: must be whole days (e.g. 30d)"),
        (("--audit", "12h"), "--audit: must be whole days (e.g. 30d)"),
        ((), "give at least one of --jobs, --manifests, --events, --audit"),
    ],
)
def test_bad_options_exit_2_naming_the_option_and_delete_nothing(
    fresh_db_url: str, args: tuple[str, ...], expected: str
) -> None:
    _seed(fresh_db_url)
    before = {t: _count(fresh_db_url, t) for t in ("jobforge_jobs", "jobforge_events")}
    result = run_cli("purge", *args, "--database-url", fresh_db_url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert expected in lines[-1], result.stderr
    assert result.stdout == ""
    assert {t: _count(fresh_db_url, t) for t in before} == before
