"""``jobforge mcp`` end to end: the real console script as a subprocess, driven over stdio
by the official ``mcp`` client, against a real migrated database.

Each test starts its own server (a second or two) so the flags, tenant and claims it
runs with are exactly the ones the test states.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from jobforge_sdk import (
    ConfigurationError,
    FeatureFlags,
    JobForgeClient,
    generate_manifest_report,
    generate_policy_token,
)
from jobforge_sdk.models.events import SubmitEventParams
from jobforge_sdk.models.templates import RequestJobParams
from jobforge_sdk.tooling.mcp_server import McpScope
from tests.support.cli import JOBFORGE, run_cli
from tests.support.roles import tenant_claims

ALL_TOOLS = {
    "jobforge.events.ingest",
    "jobforge.events.list",
    "jobforge.jobs.request",
    "jobforge.jobs.status",
    "jobforge.artifacts.manifest.get",
}
ALL_FLAGS = {
    "JOBFORGE_EVENTS_ENABLED": "1",
    "JOBFORGE_AUTOPILOT_JOBS_ENABLED": "1",
    "JOBFORGE_MANIFESTS_ENABLED": "1",
}
SCAN = "autopilot.ops.scan"
APPLY = "autopilot.ops.apply"


@asynccontextmanager
async def mcp_server(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialised session with ``jobforge mcp --database-url db_url *args``.

    The child gets only the variables given here (plus the client's safe defaults such
    as PATH), so a JOBFORGE_* flag set in the test runner cannot leak into it.
    """
    params = StdioServerParameters(
        command=JOBFORGE, args=["mcp", "--database-url", db_url, *args], env=env or {}
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _text(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def _ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def _error(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    return _text(result)


def _counts(db_url: str, tenant: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        events = conn.execute(
            "select count(*) from public.jobforge_events where tenant_id = %s", (tenant,)
        ).fetchone()
        jobs = conn.execute(
            "select count(*) from public.jobforge_jobs where tenant_id = %s", (tenant,)
        ).fetchone()
    assert events is not None
    assert jobs is not None
    return int(events[0]), int(jobs[0])


def _enable_scan(db_url: str) -> None:
    with JobForgeClient.from_postgres(db_url, flags=FeatureFlags(autopilot_jobs=True)) as client:
        client.set_template_enabled(template_key=SCAN, enabled=True)


# -- listing ----------------------------------------------------------------------------


async def test_every_flag_on_lists_five_tools_with_the_models_schemas(
    migrated_db_url: str,
) -> None:
    tenant = str(uuid.uuid4())
    async with mcp_server(migrated_db_url, "--tenant-id", tenant, env=ALL_FLAGS) as session:
        listed = await session.list_tools()
        info = session.initialize_result
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == ALL_TOOLS
    assert info is not None
    assert tenant in (info.instructions or "")
    for tool in tools.values():
        schema = tool.input_schema
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert "tenant_id" not in schema["properties"], tool.name
        assert "tenant_id" not in schema.get("required", []), tool.name
        assert tool.description
    ingest = tools["jobforge.events.ingest"].input_schema
    assert set(ingest["properties"]) == set(SubmitEventParams.model_fields) - {"tenant_id"}
    assert ingest["required"] == ["event_type", "source_app"]
    assert ingest["properties"]["event_type"]["pattern"].startswith("^[a-z]")
    request = tools["jobforge.jobs.request"].input_schema
    assert set(request["properties"]) == set(RequestJobParams.model_fields) - {"tenant_id"}
    assert request["required"] == ["template_key"]
    assert "raw" not in tools["jobforge.events.list"].input_schema["properties"]
    assert "required" not in tools["jobforge.events.list"].input_schema
    assert tools["jobforge.jobs.status"].input_schema["required"] == ["job_id"]
    assert tools["jobforge.artifacts.manifest.get"].input_schema["required"] == ["run_id"]
    status_hints = tools["jobforge.jobs.status"].annotations
    assert status_hints is not None
    assert status_hints.read_only_hint is True
    request_hints = tools["jobforge.jobs.request"].annotations
    assert request_hints is not None
    assert (request_hints.read_only_hint, request_hints.destructive_hint) == (False, True)


async def test_tools_of_flags_that_are_off_are_neither_listed_nor_callable(
    migrated_db_url: str,
) -> None:
    tenant = str(uuid.uuid4())
    env = {"JOBFORGE_EVENTS_ENABLED": "1"}
    async with mcp_server(migrated_db_url, "--tenant-id", tenant, env=env) as session:
        listed = await session.list_tools()
        refused = await session.call_tool(
            "jobforge.jobs.request", {"template_key": SCAN, "inputs": {"target": "db"}}
        )
        manifest = await session.call_tool(
            "jobforge.artifacts.manifest.get", {"run_id": str(uuid.uuid4())}
        )
        with pytest.raises(MCPError, match=r"unknown tool: jobforge\.jobs\.delete"):
            await session.call_tool("jobforge.jobs.delete", {})
    assert {t.name for t in listed.tools} == {
        "jobforge.events.ingest",
        "jobforge.events.list",
        "jobforge.jobs.status",
    }
    message = _error(refused)
    assert "feature autopilot_jobs is off" in message
    assert "JOBFORGE_AUTOPILOT_JOBS_ENABLED=1" in message
    assert "JOBFORGE_MANIFESTS_ENABLED=1" in _error(manifest)
    assert _counts(migrated_db_url, tenant) == (0, 0)


# -- calling each tool ------------------------------------------------------------------


async def test_events_ingest_then_list(migrated_db_url: str) -> None:
    tenant = str(uuid.uuid4())
    event = {
        "event_type": "ops.alert_raised",
        "source_app": "settler",
        "payload": {"host": "db-1", "email": "ops@example.com"},
        "subject_type": "host",
        "subject_id": "db-1",
        "redaction_hints": {"redact_fields": ["email"]},
        "contains_pii": True,
    }
    async with mcp_server(migrated_db_url, "--tenant-id", tenant, env=ALL_FLAGS) as session:
        ingested = await session.call_tool("jobforge.events.ingest", event)
        listed = await session.call_tool(
            "jobforge.events.list", {"event_type": "ops.alert_raised", "limit": 10}
        )
        other_type = await session.call_tool("jobforge.events.list", {"event_type": "ops.other"})
    row = _ok(ingested)["event"]
    assert row["tenant_id"] == tenant
    assert row["event_type"] == "ops.alert_raised"
    assert row["subject_id"] == "db-1"
    assert json.loads(_text(ingested)) == _ok(ingested)
    events = _ok(listed)
    assert events["count"] == 1
    assert events["events"][0]["id"] == row["id"]
    assert events["events"][0]["payload"] == {"host": "db-1", "email": "[REDACTED]"}
    assert _ok(other_type) == {"events": [], "count": 0}
    assert _counts(migrated_db_url, tenant) == (1, 0)


async def test_request_a_job_follow_its_status_and_read_its_manifest(fresh_db_url: str) -> None:
    tenant = str(uuid.uuid4())
    _enable_scan(fresh_db_url)
    async with mcp_server(fresh_db_url, "--tenant-id", tenant, env=ALL_FLAGS) as session:
        dry = await session.call_tool(
            "jobforge.jobs.request",
            {"template_key": SCAN, "inputs": {"target": "db-1"}, "dry_run": True},
        )
        assert _counts(fresh_db_url, tenant) == (0, 0)
        requested = await session.call_tool(
            "jobforge.jobs.request", {"template_key": SCAN, "inputs": {"target": "db-1"}}
        )
        job_id = _ok(requested)["job"]["id"]
        queued = await session.call_tool("jobforge.jobs.status", {"job_id": job_id})
        no_manifest = await session.call_tool("jobforge.artifacts.manifest.get", {"run_id": job_id})

        flags = FeatureFlags(manifests=True)
        with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as service:
            [claimed] = service.claim_jobs(worker_id="mcp-test", limit=1)
            assert str(claimed.id) == job_id
            service.complete_job(
                job_id=job_id, worker_id="mcp-test", status="succeeded", result={"findings": 2}
            )
            row = service.create_manifest(
                run_id=job_id,
                tenant_id=tenant,
                manifest={"job_type": "x", "status": "complete"},
            )
        assert row is not None

        succeeded = await session.call_tool("jobforge.jobs.status", {"job_id": job_id})
        manifest = await session.call_tool("jobforge.artifacts.manifest.get", {"run_id": job_id})
        missing = await session.call_tool("jobforge.jobs.status", {"job_id": str(uuid.uuid4())})

    preview = _ok(dry)
    assert preview["dry_run"] is True
    assert preview["job"] is None
    assert preview["template_key"] == SCAN
    assert preview["would_enqueue"] is not None
    assert _ok(requested)["job"]["tenant_id"] == tenant
    status = _ok(queued)
    assert (status["status"], status["attempts"], status["result"]) == ("queued", 0, None)
    assert _ok(no_manifest)["manifest"] is None
    assert "has no manifest" in _text(no_manifest)
    done = _ok(succeeded)
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert done["error"] is None
    assert done["result"] == {"findings": 2}
    report = generate_manifest_report(row)
    assert _text(manifest) == report
    assert report.startswith("# Run report: x")
    structured = _ok(manifest)
    assert structured["report"] == report
    assert structured["manifest"]["status"] == "complete"
    assert structured["manifest"]["run_id"] == job_id
    assert "no job" in _error(missing)
    assert _counts(fresh_db_url, tenant) == (0, 1)


# -- refusals ---------------------------------------------------------------------------


async def test_bad_arguments_are_tool_errors_naming_the_field_and_write_nothing(
    fresh_db_url: str,
) -> None:
    tenant = str(uuid.uuid4())
    _enable_scan(fresh_db_url)
    async with mcp_server(fresh_db_url, "--tenant-id", tenant, env=ALL_FLAGS) as session:
        missing_input = await session.call_tool(
            "jobforge.jobs.request", {"template_key": SCAN, "inputs": {}}
        )
        bad_type = await session.call_tool(
            "jobforge.events.ingest", {"event_type": "NotDotted", "source_app": "settler"}
        )
        unknown_arg = await session.call_tool(
            "jobforge.events.ingest",
            {"event_type": "ops.alert", "source_app": "settler", "colour": "red"},
        )
        bad_job_id = await session.call_tool("jobforge.jobs.status", {"job_id": "not-a-uuid"})
        raw = await session.call_tool("jobforge.events.list", {"raw": True})
        apply_off = await session.call_tool(
            "jobforge.jobs.request", {"template_key": "autopilot.ops.apply"}
        )
    assert _error(missing_input) == "inputs.target: is required"
    assert missing_input.structured_content == {
        "error": {
            "type": "InvalidInputError",
            "message": "inputs.target: is required",
            "code": "PT400",
            "field": "inputs.target",
        }
    }
    assert _error(bad_type).startswith("event_type: String should match pattern")
    assert _error(unknown_arg) == "colour: Extra inputs are not permitted"
    assert _error(bad_job_id).startswith("job_id: Input should be a valid UUID")
    assert _error(raw) == "raw: is not available through MCP"
    assert "action_jobs is off" in _error(apply_off)
    assert _counts(fresh_db_url, tenant) == (0, 0)


async def test_action_template_needs_a_policy_token_from_the_caller(fresh_db_url: str) -> None:
    tenant = str(uuid.uuid4())
    secret = "mcp-tests-secret-0123456789-abcdefgh"
    env = {
        **ALL_FLAGS,
        "JOBFORGE_ACTION_JOBS_ENABLED": "1",
        "JOBFORGE_REQUIRE_POLICY_TOKENS": "0",
        "JOBFORGE_POLICY_TOKEN_SECRET": secret,
    }
    flags = FeatureFlags(autopilot_jobs=True, action_jobs=True, policy_token_secret=secret)
    with JobForgeClient.from_postgres(fresh_db_url, flags=flags) as service:
        service.add_policy_key(kid="default", secret=secret)
        template = service.set_template_enabled(template_key=APPLY, enabled=True)
    assert template is not None
    token = generate_policy_token(
        secret=secret,
        tenant_id=tenant,
        actor_id="ops-agent",
        action=APPLY,
        scopes=template.required_scopes,
    )
    inputs = {"recommendation_id": "rec-1", "plan": {"steps": []}}
    async with mcp_server(fresh_db_url, "--tenant-id", tenant, env=env) as session:
        refused = await session.call_tool(
            "jobforge.jobs.request", {"template_key": APPLY, "inputs": inputs}
        )
        assert _counts(fresh_db_url, tenant) == (0, 0)
        forged = await session.call_tool(
            "jobforge.jobs.request",
            {"template_key": APPLY, "inputs": inputs, "policy_token": token[:-4] + "AAAA"},
        )
        assert _counts(fresh_db_url, tenant) == (0, 0)
        allowed = await session.call_tool(
            "jobforge.jobs.request",
            {"template_key": APPLY, "inputs": inputs, "policy_token": token},
        )
    # The SDK alone would sign its own token here (REQUIRE_POLICY_TOKENS is off); an
    # agent must not get that authority for free.
    assert _error(refused) == (
        f"policy token refused: policy_token is required for action template {APPLY}"
    )
    assert _error(forged).startswith("policy token refused: ")
    assert forged.structured_content is not None
    assert forged.structured_content["error"]["type"] == "PolicyDeniedError"
    job = _ok(allowed)["job"]
    assert (job["type"], job["tenant_id"]) == (APPLY, tenant)
    assert _counts(fresh_db_url, tenant) == (0, 1)


async def test_a_fixed_tenant_refuses_calls_for_another(migrated_db_url: str) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    event = {"event_type": "ops.alert", "source_app": "settler"}
    async with mcp_server(migrated_db_url, "--tenant-id", tenant, env=ALL_FLAGS) as session:
        refused = await session.call_tool("jobforge.events.ingest", {**event, "tenant_id": other})
        listed = await session.call_tool("jobforge.events.list", {"tenant_id": other})
        same = await session.call_tool("jobforge.events.ingest", {**event, "tenant_id": tenant})
    assert _error(refused) == (
        f"tenant_id: this server acts for tenant {tenant} only; it may not act for tenant {other}"
    )
    assert refused.structured_content is not None
    assert refused.structured_content["error"]["type"] == "PermissionDeniedError"
    assert "may not act for tenant" in _error(listed)
    assert _ok(same)["event"]["tenant_id"] == tenant
    assert _counts(migrated_db_url, other) == (0, 0)
    assert _counts(migrated_db_url, tenant) == (1, 0)


async def test_as_a_user_the_database_refuses_tenants_outside_the_claims(
    migrated_db_url: str,
) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    claims = json.dumps(tenant_claims(mine))
    event = {"event_type": "ops.alert", "source_app": "aias"}
    async with mcp_server(migrated_db_url, "--user-jwt-claims", claims, env=ALL_FLAGS) as session:
        listed = await session.list_tools()
        own = await session.call_tool("jobforge.events.ingest", event)
        refused = await session.call_tool("jobforge.events.ingest", {**event, "tenant_id": theirs})
        peek = await session.call_tool(
            "jobforge.jobs.status", {"job_id": str(uuid.uuid4()), "tenant_id": theirs}
        )
    ingest = next(t for t in listed.tools if t.name == "jobforge.events.ingest")
    assert "tenant_id" in ingest.input_schema["properties"]
    assert "tenant_id" not in ingest.input_schema["required"]
    assert _ok(own)["event"]["tenant_id"] == mine
    assert _error(refused) == f"tenant_id: caller may not act for tenant {theirs}"
    assert refused.structured_content is not None
    assert refused.structured_content["error"]["code"] == "PT403"
    assert _error(peek) == f"tenant_id: caller may not act for tenant {theirs}"
    assert _counts(migrated_db_url, theirs) == (0, 0)
    assert _counts(migrated_db_url, mine) == (1, 0)


# -- start-up ---------------------------------------------------------------------------


def test_claims_come_from_the_environment_and_name_the_default_tenant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    claims = {
        "role": "authenticated",
        "app_metadata": {"tenant_ids": ["x", str(first), str(second)]},
    }
    monkeypatch.setenv("JOBFORGE_MCP_CLAIMS", json.dumps(claims))
    scope = McpScope.from_options(tenant_id=None)
    assert (scope.tenant_id, scope.fixed, scope.claims) == (first, False, claims)
    pinned = McpScope.from_options(tenant_id=second)
    assert (pinned.tenant_id, pinned.fixed) == (second, True)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "no tenant: pass --tenant-id"),
        (("--user-jwt-claims", "{not json"), "--user-jwt-claims: not valid JSON"),
        (("--user-jwt-claims", '{"role": "authenticated"}'), "no tenant in app_metadata"),
        (
            ("--tenant-id", str(uuid.uuid4()), "--database-url", "postgresql://x@127.0.0.1:1/n"),
            "cannot connect to the database",
        ),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(args: tuple[str, ...], expected: str) -> None:
    result = run_cli("mcp", *args, env={"JOBFORGE_DATABASE_URL": "", "JOBFORGE_MCP_CLAIMS": ""})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("jobforge mcp: error: ")
    assert expected in result.stderr


def test_without_the_mcp_package_the_command_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "from jobforge_sdk.tooling.cli import main\n"
        f"sys.exit(main(['mcp', '--tenant-id', '{uuid.uuid4()}']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr == (
        "jobforge mcp: error: the MCP server needs the 'mcp' package: "
        "pip install 'jobforge-sdk[mcp]'\n"
    )
    import_only = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['mcp'] = None; import jobforge_sdk.tooling.cli",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert import_only.returncode == 0, import_only.stderr


def test_an_mcp_older_than_the_server_api_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jobforge_sdk.tooling import mcp_server

    monkeypatch.setattr("importlib.metadata.version", lambda name: "1.26.0")
    with pytest.raises(ConfigurationError, match=r"needs mcp>=2\.3 \(installed: 1\.26\.0\)"):
        mcp_server.require_mcp()
