"""``jobforge limits set|list|delete`` and the limits line of ``jobforge doctor``, through
a subprocess: what they print, what they change, and bad options as one line, exit 2."""

from __future__ import annotations

import json
import uuid

from tests.support.cli import run_cli


def test_set_list_delete_and_doctor(fresh_db_url: str) -> None:
    db = ("--database-url", fresh_db_url)
    job_type, tenant = f"cli.{uuid.uuid4().hex[:8]}", str(uuid.uuid4())

    made = run_cli("limits", "set", "--type", job_type, "--max-running", "3", *db)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"limit of type {job_type}: at most 3 running (0 now)"
    rate = run_cli(
        "limits", "set", "--tenant-id", tenant, "--max-starts", "100", "--per", "1m", "--json", *db
    )
    assert rate.returncode == 0, rate.stderr
    assert json.loads(rate.stdout)["per_seconds"] == 60

    listed = run_cli("limits", "list", *db)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["key", "max_running", "running", "max_starts", "per", "updated_at"]
    assert any(line.startswith("cost tier high") for line in lines)
    assert any(line.startswith(f"type {job_type}") and " 3 " in line for line in lines)
    assert any(line.startswith(f"tenant {tenant}") and "60s" in line for line in lines)

    doctor = run_cli("doctor", *db)
    assert doctor.returncode == 0, doctor.stdout
    assert f"type {job_type} (max_running 3)" in doctor.stdout
    assert f"tenant {tenant} (max_starts 100 per 60s)" in doctor.stdout

    gone = run_cli("limits", "delete", "--type", job_type, *db)
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.strip() == f"deleted the limit of type {job_type}"
    as_json = json.loads(run_cli("limits", "list", "--type", job_type, "--json", *db).stdout)
    assert as_json == []


def test_bad_options_are_one_line_and_change_nothing(fresh_db_url: str) -> None:
    db = ("--database-url", fresh_db_url)
    before = run_cli("limits", "list", "--json", *db).stdout
    for argv, expected in [
        (("--max-running", "3"), "type: type, tenant_id or cost_tier is required"),
        (("--type", "t", "--max-running", "-1"), "max_running"),
        (("--type", "t", "--max-starts", "5"), "per: is required with max_starts"),
        (("--type", "t", "--max-running", "x"), "not a whole number"),
        (("--type", "t", "--max-starts", "5", "--per", "soon"), "not a duration"),
        (("--cost-tier", "huge", "--max-running", "1"), "invalid choice"),
        (("--cost-tier", "high", "--type", "t", "--max-running", "1"), "cost_tier: cannot"),
    ]:
        result = run_cli("limits", "set", *argv, *db)
        assert result.returncode == 2, (argv, result.stdout, result.stderr)
        assert expected in result.stderr, (argv, result.stderr)
        assert "Traceback" not in result.stderr
    missing = run_cli("limits", "delete", "--type", "never.limited", *db)
    assert missing.returncode != 0
    assert "no limit for type never.limited" in missing.stderr
    assert run_cli("limits", "list", "--json", *db).stdout == before
