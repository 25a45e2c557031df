"""Every `jobforge` command through a subprocess: happy paths and error exits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobforge_sdk import FeatureFlags, JobForgeClient, generate_policy_token
from jobforge_sdk.flags import Feature
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
SECRET = "cli-tests-secret-0123456789-abcdefgh"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none"
TENANT = str(uuid.uuid4())


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_token_mint_and_verify() -> None:
    minted = run_cli(
        "token",
        "mint",
        "--tenant-id",
        TENANT,
        "--actor",
        "ops-bot",
        "--action",
        "autopilot.ops.apply",
        "--scope",
        "ops:read",
        "--scope",
        "ops:write",
        "--secret",
        SECRET,
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.count(".") == 2
    ok = run_cli(
        "token",
        "verify",
        token,
        "--tenant-id",
        TENANT,
        "--action",
        "autopilot.ops.apply",
        "--scope",
        "ops:write",
        env={"JOBFORGE_POLICY_TOKEN_SECRET": SECRET},
    )
    assert ok.returncode == 0, ok.stderr
    assert '"sub":"ops-bot"' in ok.stdout
    wrong = run_cli(
        "token",
        "verify",
        token,
        "--tenant-id",
        str(uuid.uuid4()),
        "--action",
        "autopilot.ops.apply",
        "--secret",
        SECRET,
    )
    assert "wrong tenant" in _one_error_line(wrong)
    garbage = run_cli(
        "token", "verify", "not-a-token", "--tenant-id", TENANT, "--action", "a", "--secret", SECRET
    )
    assert "malformed" in _one_error_line(garbage)


def test_token_errors() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOBFORGE_POLICY_TOKEN_SECRET"}
    no_secret = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobforge_sdk.tooling.cli",
            "token",
            "mint",
            "--tenant-id",
            TENANT,
            "--actor",
            "a",
            "--action",
            "x",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "JOBFORGE_POLICY_TOKEN_SECRET" in _one_error_line(no_secret)
    short = run_cli(
        "token", "mint", "--tenant-id", TENANT, "--actor", "a", "--action", "x", "--secret", "short"
    )
    assert "secret" in _one_error_line(short)
    bad_uuid = run_cli("token", "mint", "--tenant-id", "nope", "--actor", "a", "--action", "x")
    assert "not a UUID" in _one_error_line(bad_uuid)


def test_doctor(migrated_db_url: str) -> None:
    result = run_cli("doctor", "--database-url", migrated_db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: reachable" in result.stdout
    assert "pending none" in result.stdout
    assert "doctor: ok" in result.stdout
    unhappy = run_cli(
        "doctor",
        "--database-url",
        migrated_db_url,
        env={"JOBFORGE_ACTION_JOBS_ENABLED": "true", "JOBFORGE_POLICY_TOKEN_SECRET": SECRET},
    )
    assert unhappy.returncode == 1
    assert "no active policy key" in unhappy.stdout


def test_doctor_prints_the_flags_by_variable_name(migrated_db_url: str) -> None:
    result = run_cli(
        "doctor", "--database-url", migrated_db_url, env={"JOBFORGE_EVENTS_ENABLED": "yes"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  JOBFORGE_EVENTS_ENABLED: True" in result.stdout
    assert "  JOBFORGE_TRIGGERS_ENABLED: False" in result.stdout
    assert "  JOBFORGE_POLICY_TOKEN_SECRET: unset" in result.stdout
    assert "settings: every JOBFORGE_* variable is known" in result.stdout


def test_doctor_fails_on_a_misspelt_or_old_variable(migrated_db_url: str) -> None:
    result = run_cli(
        "doctor",
        "--database-url",
        migrated_db_url,
        env={"JOBFORGE_EVENTS": "1", "JOBFORGE_POLICY_TOKEN_SECRT": "do-not-print-me"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "problem: JOBFORGE_EVENTS=1 is not a JobForge setting; "
        "did you mean JOBFORGE_EVENTS_ENABLED?"
    ) in result.stdout.splitlines()
    assert (
        "problem: JOBFORGE_POLICY_TOKEN_SECRT is not a JobForge setting; "
        "did you mean JOBFORGE_POLICY_TOKEN_SECRET?"
    ) in result.stdout.splitlines()
    assert "settings: 2 unknown JOBFORGE_* variable(s)" in result.stdout
    assert "doctor: 2 problem(s)" in result.stdout
    assert "do-not-print-me" not in result.stdout + result.stderr
    assert "  JOBFORGE_EVENTS_ENABLED: False" in result.stdout  # the old name is not read


def test_doctor_reports_pending_migrations(empty_db: str) -> None:
    result = run_cli("doctor", "--database-url", empty_db)
    assert result.returncode == 1
    assert "migrations not current" in result.stdout


def _table_rows(text: str) -> list[list[str]]:
    """The rows of a table the CLI printed (header first), split on its column gaps."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def test_jobs_and_events_commands(migrated_db_url: str) -> None:
    flags = FeatureFlags(events=True)
    with JobForgeClient.from_postgres(migrated_db_url, flags=flags) as client:
        job = client.enqueue_job(tenant_id=TENANT, type="cli.test", payload={"x": 1})
        client.submit_event(tenant_id=TENANT, event_type="cli.happened", source_app="external")
    db = ("--database-url", migrated_db_url)
    listed = run_cli("jobs", "list", "--tenant-id", TENANT, "--json", *db)
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)] == [str(job.id)]
    table = run_cli("jobs", "list", "--tenant-id", TENANT, *db)
    assert table.returncode == 0, table.stderr
    header, *rows = _table_rows(table.stdout)
    assert header == ["id", "tenant", "type", "status", "attempts", "created_at", "last_error"]
    assert [row[:5] for row in rows] == [[str(job.id), TENANT, "cli.test", "queued", "0/5"]]
    assert rows[0][6] == "-"
    # `get` is `show` under its old name.
    got = run_cli("jobs", "get", str(job.id), "--tenant-id", TENANT, "--json", *db)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["job"]["payload"] == {"x": 1}
    canceled = run_cli("jobs", "cancel", str(job.id), "--tenant-id", TENANT, *db)
    assert json.loads(canceled.stdout)["status"] == "canceled"
    again = run_cli("jobs", "cancel", str(job.id), "--tenant-id", TENANT, *db)
    assert "canceled" in _one_error_line(again)
    missing = str(uuid.uuid4())
    for command in ("get", "show"):
        line = _one_error_line(run_cli("jobs", command, missing, "--tenant-id", TENANT, *db))
        expected = f"job {missing} not found for tenant {TENANT}"
        assert line == f"jobforge jobs {command}: error: {expected}"
    assert _one_error_line(run_cli("jobs", "show", missing, *db)).endswith(
        f"job {missing} not found"
    )
    events = run_cli("events", "list", "--tenant-id", TENANT, "--json", *db)
    assert events.returncode == 0, events.stderr
    assert [e["event_type"] for e in json.loads(events.stdout)] == ["cli.happened"]
    events_table = run_cli("events", "list", "--tenant-id", TENANT, *db)
    assert events_table.returncode == 0, events_table.stderr
    header, *rows = _table_rows(events_table.stdout)
    assert header == ["id", "occurred_at", "event_type", "source_app", "subject", "processed"]
    assert [(row[2], row[3], row[5]) for row in rows] == [("cli.happened", "external", "no")]
    empty = run_cli("events", "list", "--tenant-id", str(uuid.uuid4()), *db)
    assert (empty.returncode, empty.stdout) == (0, "no events\n")


def test_events_list_takes_the_dashboards_filters(migrated_db_url: str) -> None:
    tenant = str(uuid.uuid4())
    with JobForgeClient.from_postgres(migrated_db_url, flags=FeatureFlags(events=True)) as client:
        for app, subject, day in (("aias", "ticket", 1), ("keys", "key", 2), ("aias", "key", 3)):
            client.submit_event(
                tenant_id=tenant,
                event_type="cli.filtered",
                source_app=app,
                subject_type=subject,
                subject_id="s",
                occurred_at=datetime(2030, 1, day, 12, tzinfo=UTC),
            )
    db = ("--database-url", migrated_db_url)

    def days(*filters: str) -> list[str]:
        listed = run_cli("events", "list", "--tenant-id", tenant, "--json", *filters, *db)
        assert listed.returncode == 0, listed.stderr
        return [e["occurred_at"][:10] for e in json.loads(listed.stdout)]

    assert days() == ["2030-01-03", "2030-01-02", "2030-01-01"]
    assert days("--source-app", "aias") == ["2030-01-03", "2030-01-01"]
    assert days("--subject-type", "key") == ["2030-01-03", "2030-01-02"]
    # No zone means UTC; --until is exclusive.
    assert days("--since", "2030-01-02T00:00", "--until", "2030-01-03T12:00:00+00:00") == [
        "2030-01-02"
    ]
    refused = run_cli("events", "list", "--tenant-id", tenant, "--since", "yesterday", *db)
    assert refused.returncode == 2
    assert "--since: not an ISO 8601 time: 'yesterday'" in refused.stderr


def test_jobs_list_without_a_tenant_shows_every_tenant(migrated_db_url: str) -> None:
    """The CLI acts as the database owner (or the service role key): with no --tenant-id
    it lists the jobs of every tenant, newest first."""
    a, b = uuid.uuid4(), uuid.uuid4()
    job_type = f"cli.every.{uuid.uuid4().hex[:8]}"
    with JobForgeClient.from_postgres(migrated_db_url) as client:
        older = client.enqueue_job(tenant_id=a, type=job_type, max_attempts=3)
        newer = client.enqueue_job(tenant_id=b, type=job_type, max_attempts=3)
        [claimed] = client.claim_jobs(worker_id="cli-w", types=[job_type], limit=1)
        client.complete_job(
            job_id=claimed.id,
            worker_id="cli-w",
            status="failed",
            error={"type": "Boom", "message": "x" * 200},
        )
    db = ("--database-url", migrated_db_url)

    table = run_cli("jobs", "list", "--type", job_type, *db)
    assert table.returncode == 0, table.stderr
    header, *rows = _table_rows(table.stdout)
    assert header[:2] == ["id", "tenant"]
    assert [(row[0], row[1]) for row in rows] == [(str(newer.id), str(b)), (str(older.id), str(a))]
    # Aligned: each column starts at the same place on every line, the header's included.
    header_line, *lines = table.stdout.splitlines()
    for column, name in ((1, "tenant"), (5, "created_at"), (6, "last_error")):
        starts = {  # the last column from the end: "-" is in every id too
            line.index(row[column]) if column < 6 else len(line) - len(row[column])
            for line, row in zip(lines, rows, strict=True)
        }
        assert starts == {header_line.index(name)}, (name, table.stdout)
    failed = next(row for row in rows if row[0] == str(claimed.id))
    assert failed[3:5] == ["queued", "1/3"]  # failed once, back in the queue for a retry
    assert failed[6] == "Boom: " + "x" * 53 + "…"  # 60 characters, the rest in --json

    as_json = run_cli("jobs", "list", "--type", job_type, "--json", *db)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert [(j["id"], j["tenant_id"]) for j in document] == [
        (str(newer.id), str(b)),
        (str(older.id), str(a)),
    ]
    assert document[[j["id"] for j in document].index(str(claimed.id))]["error"]["type"] == "Boom"
    only_a = run_cli("jobs", "list", "--type", job_type, "--tenant-id", str(a), "--json", *db)
    assert [j["id"] for j in json.loads(only_a.stdout)] == [str(older.id)]
    nothing = run_cli("jobs", "list", "--type", f"cli.none.{uuid.uuid4().hex}", *db)
    assert (nothing.returncode, nothing.stdout) == (0, "no jobs\n")


def test_jobs_show_prints_the_attempts_of_a_failed_then_retried_job(
    migrated_db_url: str, superuser_conn: psycopg.Connection[Any]
) -> None:
    tenant = uuid.uuid4()
    job_type = f"cli.show.{uuid.uuid4().hex[:8]}"
    with JobForgeClient.from_postgres(migrated_db_url) as client:
        job = client.enqueue_job(tenant_id=tenant, type=job_type, payload={"to": "ops"})
        [first] = client.claim_jobs(worker_id="cli-w1", types=[job_type], limit=1)
        client.complete_job(
            job_id=first.id,
            worker_id="cli-w1",
            status="failed",
            error={"type": "SMTPError", "message": "connection refused\n\x1b[31mretry"},
        )
        superuser_conn.execute(
            "update public.jobforge_jobs set run_at = now() where id = %s", (job.id,)
        )
        [second] = client.claim_jobs(worker_id="cli-w2", types=[job_type], limit=1)
        client.complete_job(
            job_id=second.id, worker_id="cli-w2", status="succeeded", result={"ok": True}
        )
    db = ("--database-url", migrated_db_url)

    # No --tenant-id: the database owner finds the job whatever its tenant.
    shown = run_cli("jobs", "show", str(job.id), *db)
    assert shown.returncode == 0, shown.stderr
    details, attempts = shown.stdout.split("\n\n")
    fields = dict(row for row in _table_rows(details) if len(row) == 2)
    assert fields["id"] == str(job.id)
    assert fields["tenant"] == str(tenant)
    assert fields["status"] == "succeeded"
    assert fields["attempts"] == "2/5"
    assert fields["payload"] == '{"to":"ops"}'
    title, header, *rows = _table_rows(attempts)
    assert title == ["attempts (2):"]
    assert header == ["attempt", "status", "worker", "started_at", "finished_at", "error"]
    assert [row[:3] for row in rows] == [["1", "failed", "cli-w1"], ["2", "succeeded", "cli-w2"]]
    # One line per attempt, and no escape sequence reaches the terminal.
    assert rows[0][5] == "SMTPError: connection refused ?[31mretry"
    assert rows[1][5] == "-"
    assert "\x1b" not in shown.stdout

    with_tenant = run_cli("jobs", "show", str(job.id), "--tenant-id", str(tenant), "--json", *db)
    assert with_tenant.returncode == 0, with_tenant.stderr
    document = json.loads(with_tenant.stdout)
    assert set(document) == {"job", "attempts"}
    assert document["job"]["id"] == str(job.id)
    assert [(a["attempt"], a["status"]) for a in document["attempts"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert document["attempts"][0]["error"]["type"] == "SMTPError"
    assert json.loads(run_cli("jobs", "show", str(job.id), "--json", *db).stdout) == document
    other = str(uuid.uuid4())
    assert "not found" in _one_error_line(
        run_cli("jobs", "show", str(job.id), "--tenant-id", other, *db)
    )


@pytest.mark.parametrize(
    "args",
    [
        ("jobs", "list", "--tenant-id", TENANT, "--database-url", UNREACHABLE),
        ("doctor", "--database-url", UNREACHABLE),
        ("smoke", "--database-url", UNREACHABLE),
        (
            "worker",
            "--app",
            "tests.support.worker_app:handlers",
            "--database-url",
            UNREACHABLE,
            "--wait-for-database=0",
        ),
        ("jobs", "list", "--tenant-id", TENANT, "--database-url", "not a url"),
    ],
)
def test_unreachable_or_malformed_databases_exit_2(args: tuple[str, ...]) -> None:
    line = _one_error_line(run_cli(*args))
    assert "database" in line


def test_missing_database_exits_2() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JOBFORGE_DATABASE_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")
    }
    result = subprocess.run(
        [sys.executable, "-m", "jobforge_sdk.tooling.cli", "jobs", "list", "--tenant-id", TENANT],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert "JOBFORGE_DATABASE_URL" in _one_error_line(result)


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("JOBFORGE_EVENTS_ENABLED", "maybe", "1, 0, true, false, yes, no, on, off"),
        ("JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS", "soon", "greater than 0 and at most 720"),
    ],
)
def test_a_bad_flag_value_exits_2(
    migrated_db_url: str, name: str, value: str, accepted: str
) -> None:
    for command in (("smoke",), ("doctor",), ("jobs", "list", "--tenant-id", TENANT)):
        result = run_cli(*command, "--database-url", migrated_db_url, env={name: value})
        line = _one_error_line(result)
        assert name in line
        assert repr(value) in line
        assert accepted in line


def test_usage_errors_exit_2() -> None:
    assert "invalid choice" in _one_error_line(run_cli("frobnicate"))
    assert "--app" in _one_error_line(
        run_cli("worker", "--app", "no_colon_here", "--database-url", UNREACHABLE)
    )
    missing_module = run_cli(
        "worker", "--app", "no.such.module:handlers", "--database-url", UNREACHABLE
    )
    assert "cannot import" in _one_error_line(missing_module)


def test_worker_types_must_be_types_the_app_handles() -> None:
    app = ("worker", "--app", "tests.support.worker_app:handlers", "--database-url", UNREACHABLE)
    line = _one_error_line(run_cli(*app, "--types", "test.echo,billing.invoice"))
    assert "--types: the app has no handler for billing.invoice" in line
    assert "test.echo" in line  # what it does handle
    assert "--types: no job type given" in _one_error_line(run_cli(*app, "--types", " , "))


def test_smoke_json_with_flags_off(fresh_db_url: str) -> None:
    result = run_cli("smoke", "--database-url", fresh_db_url, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True
    assert [c["name"] for c in document["checks"]] == [
        "flags default to off",
        "core queue: enqueue, get, cancel",
        "gated features are no-ops while off",
        "policy tokens: generate, validate, refuse forged",
        "manifest report and env fingerprint",
    ]
    assert all(set(c) == {"name", "passed", "detail"} for c in document["checks"])


def test_smoke_tests_the_off_state_whatever_the_environment_turns_on(fresh_db_url: str) -> None:
    switches = {f.env_var: "1" for f in Feature}
    result = run_cli(
        "smoke",
        "--database-url",
        fresh_db_url,
        "--json",
        env={**switches, "JOBFORGE_POLICY_TOKEN_SECRET": SECRET},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["passed"] is True


def test_smoke_enable_all_runs_the_full_flow_and_cleans_up(fresh_db_url: str) -> None:
    result = run_cli("smoke", "--database-url", fresh_db_url, "--json", "--enable-all")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] is True
    full = document["checks"][-1]
    assert full["name"] == "full flow with every flag on"
    assert "manifest complete" in full["detail"]
    with JobForgeClient.from_postgres(fresh_db_url, flags=FeatureFlags(autopilot_jobs=True)) as c:
        assert not any(t.enabled for t in c.list_templates())  # restored


def test_smoke_human_report(fresh_db_url: str) -> None:
    result = run_cli("smoke", "--database-url", fresh_db_url, "--enable-all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS full flow with every flag on" in result.stdout
    assert "# Run report: autopilot.ops.scan" in result.stdout
    assert result.stdout.rstrip().endswith("6 passed, 0 failed")


def test_the_demo_counts_what_it_prints() -> None:
    """`make demo` (the embedded PostgreSQL): one PASS line per check it counts."""
    result = run_cli("smoke", "--enable-all", env={"JOBFORGE_DATABASE_URL": ""})
    assert result.returncode == 0, result.stdout + result.stderr
    passes = [line for line in result.stdout.splitlines() if line.startswith("PASS ")]
    assert "database: embedded PostgreSQL, migrated" in result.stdout
    assert result.stdout.rstrip().endswith(f"{len(passes)} passed, 0 failed")


def test_the_smoke_script_calls_the_package(fresh_db_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "smoke_test_execution_plane.py"),
            "--database-url",
            fresh_db_url,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True


def test_the_database_refuses_a_token_signed_with_an_unknown_key(fresh_db_url: str) -> None:
    """What the smoke test's forged-token check relies on, through the database."""
    token = generate_policy_token(
        secret="x" * 40,
        tenant_id=TENANT,
        actor_id="a",
        action="autopilot.ops.apply",
        scopes=["ops:write"],
    )
    flags = FeatureFlags.all_on(policy_token_secret=SECRET)
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as c:
        c.set_template_enabled(template_key="autopilot.ops.apply", enabled=True)
        verdict = c.verify_policy_token(
            tenant_id=TENANT, template_key="autopilot.ops.apply", policy_token=token
        )
    assert verdict is not None
    assert verdict.allowed is False
    # API callers get one reason for a key problem (the audit row keeps which).
    assert verdict.reason == "invalid token"
