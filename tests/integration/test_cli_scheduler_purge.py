"""``jobforge worker --scheduler --purge-*``: the scheduler's daily purge from the command
line, in a real worker process, and its options refused naming them."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import psycopg
import pytest

from jobforge_sdk import FeatureFlags, JobForgeClient
from tests.support.cli import JOBFORGE, run_cli

APP = ("worker", "--app", "tests.support.worker_app:handlers")


def _seed(url: str) -> None:
    """Two finished jobs 40 days old, two events 40 days old, two audit rows 400 days old."""
    tenant = uuid.uuid4()
    with JobForgeClient.from_postgres(url, flags=FeatureFlags(events=True)) as client:
        jobs = [client.enqueue_job(tenant_id=tenant, type="cli.daily") for _ in range(2)]
        for _ in range(2):
            client.submit_event(tenant_id=tenant, event_type="cli.daily", source_app="external")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_jobs set status = 'succeeded',"
            " finished_at = now() - interval '40 days' where id = any(%s)",
            ([j.id for j in jobs],),
        )
        conn.execute("update jobforge_events set created_at = now() - interval '40 days'")
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " select %s, 'job_cancel', 'success', now() - interval '400 days'"
            " from generate_series(1, 2)",
            (tenant,),
        )


def _old(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select (select count(*) from jobforge_jobs where status = 'succeeded')"
            " + (select count(*) from jobforge_events)"
            " + (select count(*) from jobforge_audit_logs"
            "    where created_at < now() - interval '365 days')"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_worker_runs_the_daily_purge_in_batches(fresh_db_url: str) -> None:
    _seed(fresh_db_url)
    assert _old(fresh_db_url) == 6
    args = [
        *APP,
        "--scheduler",
        "--purge-jobs",
        "30d",
        "--purge-events",
        "30d",
        "--purge-audit",
        "365d",
        "--purge-batch-size",
        "1",
        "--database-url",
        fresh_db_url,
    ]
    proc = subprocess.Popen(
        [JOBFORGE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while _old(fresh_db_url) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert _old(fresh_db_url) == 0, stderr
    messages = [
        json.loads(line)["message"]
        for line in stderr.splitlines()
        if line.startswith("{") and "daily purge" in line
    ]
    assert messages[1:] == [
        f"daily purge of {table}: deleted 1 (total {n}), {state}"
        for table in ("jobs", "events", "audit")
        for n, state in ((1, "more to go"), (2, "done"))
    ], stderr
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from jobforge_private.daily_purges").fetchone() == (1,)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--purge-jobs", "30d"), "--purge-*: the daily purge is the scheduler's: add --scheduler"),
        (("--scheduler", "--purge-events", "36h"), "purge_events: must be whole days"),
        (("--scheduler", "--purge-audit", "0d"), "argument --purge-audit: must be positive"),
        (("--scheduler", "--purge-jobs", "x"), "argument --purge-jobs: not a duration"),
        (
            ("--scheduler", "--purge-jobs", "1d", "--purge-batch-size", "0"),
            "argument --purge-batch-size: must be between 1",
        ),
    ],
)
def test_bad_purge_options_exit_2_naming_them(
    fresh_db_url: str, args: tuple[str, ...], expected: str
) -> None:
    _seed(fresh_db_url)
    result = run_cli(*APP, *args, "--database-url", fresh_db_url, "--wait-for-database=0")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.strip().splitlines()[-1], result.stderr
    assert _old(fresh_db_url) == 6
