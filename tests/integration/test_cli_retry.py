"""`jobforge jobs retry`: one dead job, or every dead job of a tenant (of a type), through
a subprocess; human and --json output, usage errors and refusals as one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import uuid

from jobforge_sdk import JobForgeClient
from jobforge_sdk.models import JobRow, JobStatus
from tests.support.cli import run_cli


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _dead(client: JobForgeClient, tenant: uuid.UUID, job_type: str) -> JobRow:
    job = client.enqueue_job(tenant_id=tenant, type=job_type, max_attempts=1)
    client.claim_jobs(worker_id="cli-w", types=[job_type])
    return client.complete_job(job_id=job.id, worker_id="cli-w", status="failed", error={"m": 1})


def test_jobs_retry_one_job(migrated_db_url: str) -> None:
    tenant, job_type = uuid.uuid4(), f"cli.retry.{uuid.uuid4().hex[:8]}"
    db = ("--database-url", migrated_db_url, "--tenant-id", str(tenant))
    with JobForgeClient.from_postgres(migrated_db_url) as client:
        first, second = _dead(client, tenant, job_type), _dead(client, tenant, job_type)

        done = run_cli("jobs", "retry", str(first.id), *db)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"job {first.id} is queued again (attempts reset, due now)\n"
        as_json = run_cli("jobs", "retry", str(second.id), "--actor-id", "ops", "--json", *db)
        assert as_json.returncode == 0, as_json.stderr
        row = json.loads(as_json.stdout)
        assert (row["id"], row["status"], row["attempts"]) == (str(second.id), "queued", 0)
        for job in (first, second):
            got = client.get_job(job_id=job.id, tenant_id=tenant)
            assert got is not None
            assert got.status is JobStatus.QUEUED

    again = run_cli("jobs", "retry", str(first.id), *db)
    assert _one_error_line(again) == (
        f"jobforge jobs retry: error: job {first.id} is queued; "
        "only dead or failed jobs can be retried"
    )
    missing = uuid.uuid4()
    assert _one_error_line(run_cli("jobs", "retry", str(missing), *db)).endswith(
        f"job {missing} not found"
    )


def test_jobs_retry_dead_of_a_type(migrated_db_url: str) -> None:
    tenant, job_type = uuid.uuid4(), f"cli.retry.{uuid.uuid4().hex[:8]}"
    other_type = f"cli.other.{uuid.uuid4().hex[:8]}"
    db = ("--database-url", migrated_db_url, "--tenant-id", str(tenant))
    with JobForgeClient.from_postgres(migrated_db_url) as client:
        dead = sorted(str(_dead(client, tenant, job_type).id) for _ in range(3))
        other = _dead(client, tenant, other_type)

        one = run_cli("jobs", "retry", "--dead", "--type", job_type, "--limit", "1", *db)
        assert one.returncode == 0, one.stderr
        heading, first_id = one.stdout.splitlines()
        assert heading == f"retried 1 dead job(s) of type {job_type}"
        rest = run_cli("jobs", "retry", "--dead", "--type", job_type, "--json", *db)
        assert rest.returncode == 0, rest.stderr
        assert sorted([first_id, *json.loads(rest.stdout)]) == dead
        none = run_cli("jobs", "retry", "--dead", "--type", job_type, *db)
        assert (none.returncode, none.stdout) == (0, f"retried 0 dead job(s) of type {job_type}\n")
        got = client.get_job(job_id=other.id, tenant_id=tenant)
        assert got is not None
        assert got.status is JobStatus.DEAD


def test_jobs_retry_usage_errors_change_nothing(migrated_db_url: str) -> None:
    tenant, job_type = uuid.uuid4(), f"cli.retry.{uuid.uuid4().hex[:8]}"
    db = ("--database-url", migrated_db_url, "--tenant-id", str(tenant))
    with JobForgeClient.from_postgres(migrated_db_url) as client:
        dead = _dead(client, tenant, job_type)
        cases = [
            ((), "give a job id, or --dead"),
            ((str(dead.id), "--dead"), "not both"),
            ((str(dead.id), "--type", job_type), "--type and --limit go with --dead"),
            (("--dead", "--limit", "0"), "--limit: must be at least 1"),
            (("--dead", "--type", ""), "type"),
            ((str(dead.id), "--actor-id", ""), "actor_id"),
            (("not-a-uuid",), "not-a-uuid"),
        ]
        for args, fragment in cases:
            line = _one_error_line(run_cli("jobs", "retry", *args, *db))
            assert fragment in line, (args, line)
        assert "--tenant-id" in _one_error_line(
            run_cli("jobs", "retry", str(dead.id), "--database-url", migrated_db_url)
        )
        got = client.get_job(job_id=dead.id, tenant_id=tenant)
        assert got is not None
        assert (got.status, got.attempts) == (JobStatus.DEAD, 1)
