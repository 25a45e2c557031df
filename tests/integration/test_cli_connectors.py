"""``jobforge connectors set|list|delete`` through a subprocess: secrets from a file or
stdin, never printed, and errors as one line with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg

from tests.support.cli import JOBFORGE, run_cli

SECRET = "ghp-cli-never-printed-9d2e"


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _secrets_of(url: str, tenant: str) -> list[tuple[str, object]]:
    with psycopg.connect(url) as conn:
        return [
            (str(t), s)
            for t, s in conn.execute(
                "select connector_type, secrets from jobforge_connector_configs"
                " where tenant_id = %s order by connector_type",
                (tenant,),
            ).fetchall()
        ]


def test_set_list_delete(migrated_db_url: str, tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    db = ("--database-url", migrated_db_url)
    secrets = tmp_path / "github.json"
    secrets.write_text(json.dumps({"token": SECRET}), encoding="utf-8")

    made = run_cli(
        "connectors",
        "set",
        "github",
        "--tenant-id",
        tenant,
        "--config",
        '{"org": "acme"}',
        "--secrets-file",
        str(secrets),
        "--enable",
        "--actor-id",
        "cli-admin",
        *db,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == (
        f"connector github of tenant {tenant}: enabled; config keys: org; secret keys: token"
    )
    assert _secrets_of(migrated_db_url, tenant) == [("github", {"token": SECRET})]

    # Secrets from stdin, and --json.
    command = [JOBFORGE, "connectors", "set", "slack", "--tenant-id", tenant, *db]
    piped = subprocess.run(
        [*command, "--secrets-file", "-", "--json"],
        input=json.dumps({"bot_token": SECRET}),
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    answer = json.loads(piped.stdout)
    assert (answer["connector_type"], answer["enabled"], answer["secret_keys"]) == (
        "slack",
        False,
        ["bot_token"],
    )
    assert "secrets" not in answer

    table = run_cli("connectors", "list", "--tenant-id", tenant, *db)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["connector", "enabled", "config", "secret_keys", "updated_at"]
    assert lines[1].split()[:4] == ["github", "yes", '{"org":"acme"}', "token"]
    assert lines[2].split()[:4] == ["slack", "no", "{}", "bot_token"]
    listed = run_cli("connectors", "list", "--tenant-id", tenant, "--json", *db)
    assert [c["connector_type"] for c in json.loads(listed.stdout)] == ["github", "slack"]

    deleted = run_cli("connectors", "delete", "slack", "--tenant-id", tenant, *db)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted connector slack of tenant {tenant}"
    gone = run_cli("connectors", "delete", "slack", "--tenant-id", tenant, *db)
    assert "connector config slack not found" in _one_error_line(gone)
    empty = run_cli("connectors", "list", "--tenant-id", str(uuid.uuid4()), *db)
    assert empty.stdout.strip() == "no connector configs"

    for result in (made, piped, table, listed, deleted, gone):
        assert SECRET not in result.stdout + result.stderr


def test_errors_are_one_line_and_never_quote_secrets(migrated_db_url: str, tmp_path: Path) -> None:
    tenant = str(uuid.uuid4())
    db = ("--database-url", migrated_db_url)
    broken = tmp_path / "broken.json"
    broken.write_text('{"token": "' + SECRET, encoding="utf-8")
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([SECRET]), encoding="utf-8")
    cases = [
        (("--secrets-file", str(broken)), "--secrets-file: not JSON (line 1, column"),
        (("--secrets-file", str(listed)), "--secrets-file: must be a JSON object"),
        (("--secrets-file", str(tmp_path / "missing.json")), "--secrets-file: cannot read"),
        (("--config", "[1]"), "--config: must be a JSON object"),
        (("--config", "{oops"), "--config: not JSON: "),
    ]
    for extra, message in cases:
        result = run_cli("connectors", "set", "slack", "--tenant-id", tenant, *extra, *db)
        line = _one_error_line(result)
        assert message in line, line
        assert SECRET not in result.stdout + result.stderr
    bad_type = run_cli("connectors", "set", "Slack", "--tenant-id", tenant, *db)
    assert "connector_type" in _one_error_line(bad_type)
    assert _secrets_of(migrated_db_url, tenant) == []


def test_smoke_configures_the_connectors_its_templates_require(fresh_db_url: str) -> None:
    """A database whose scan template requires a connector: the smoke test configures it
    for its own tenant and says so, and the full flow passes."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_job_templates set required_connectors = '{cloud_inventory}'"
            " where template_key = 'autopilot.ops.scan'"
        )
    result = run_cli("smoke", "--database-url", fresh_db_url, "--json", "--enable-all")
    assert result.returncode == 0, result.stdout + result.stderr
    full = json.loads(result.stdout)["checks"][-1]
    assert full["passed"] is True, full
    assert "configured for the smoke tenant: cloud_inventory" in full["detail"]
    with psycopg.connect(fresh_db_url) as conn:
        rows = conn.execute(
            "select connector_type, enabled, count(*) over () from jobforge_connector_configs"
        ).fetchall()
    assert rows == [("cloud_inventory", True, 1)]
