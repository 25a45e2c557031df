"""``jobforge mcp``: the JobForge tools served to AI agents over the Model Context Protocol.

The server is deliberately thin: every tool validates its arguments with the SDK's own
params model and calls one ``JobForgeClient`` method, so an agent gets exactly the checks,
feature gates and error messages an application gets, and the database stays the
authority on tenancy. Two things are decided here and nowhere else:

* **the tenant.** The server acts for one tenant, fixed at start-up (``--tenant-id``), or
  as one user (``--user-jwt-claims``), whose JWT claims the database checks on every
  call. An agent can never widen that: a fixed tenant is not even an argument of the
  tools, and a user's calls for a tenant outside their claims are refused by Postgres.
* **what is exposed.** A tool whose feature flag is off is not listed; action templates
  need a policy token the caller brings (the server never signs one for an agent); event
  payloads stay redacted (``raw`` is not offered).

The ``mcp`` package is an optional extra: this module imports it only inside
``serve_stdio`` and ``build_server``, so ``import jobforge_sdk`` and every other command
work without it, and ``require_mcp`` turns its absence into one clear error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel

from jobforge_sdk import __version__
from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk._operations._machinery import validate
from jobforge_sdk.errors import (
    ConfigurationError,
    FeatureDisabledError,
    InvalidInputError,
    JobForgeError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
)
from jobforge_sdk.flags import Feature
from jobforge_sdk.manifests import generate_manifest_report
from jobforge_sdk.models.events import ListEventsParams, SubmitEventParams
from jobforge_sdk.models.jobs import GetJobParams, JobStatus
from jobforge_sdk.models.manifests import GetManifestParams
from jobforge_sdk.models.templates import ACTION_TEMPLATE_KEYS, RequestJobParams

if TYPE_CHECKING:
    import mcp.types as mcp_types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

__all__ = [
    "CLAIMS_ENV",
    "TOOLS",
    "JobForgeTools",
    "McpScope",
    "ToolError",
    "ToolOutput",
    "ToolSpec",
    "UnknownToolError",
    "build_server",
    "require_mcp",
    "serve_stdio",
    "tenant_from_claims",
]

CLAIMS_ENV = "JOBFORGE_MCP_CLAIMS"
SERVER_NAME = "jobforge"
MISSING_MCP = "the MCP server needs the 'mcp' package: pip install 'jobforge-sdk[mcp]'"
# The handler-per-constructor-argument API of the low-level server arrived with mcp 2.
MIN_MCP_VERSION = (2, 3)


def require_mcp() -> None:
    """Fail with one actionable line (the CLI exits 2) when the ``mcp`` extra is absent
    or too old for the API used here.

    Checked before anything else so a user does not first debug their database URL.
    """
    try:
        import mcp.server.lowlevel  # noqa: F401
    except ImportError:
        raise ConfigurationError(MISSING_MCP) from None
    try:
        installed = metadata.version("mcp")
    except metadata.PackageNotFoundError:
        return  # a vendored copy without metadata: trust it
    numbers = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if numbers < MIN_MCP_VERSION:
        wanted = ".".join(map(str, MIN_MCP_VERSION))
        raise ConfigurationError(
            f"the MCP server needs mcp>={wanted} (installed: {installed}): "
            "pip install -U 'jobforge-sdk[mcp]'"
        )


# -- who the server acts for ------------------------------------------------------------


def tenant_from_claims(claims: Mapping[str, Any]) -> UUID | None:
    """The tenant a user acts for by default, read the way the database reads it:
    ``app_metadata.tenant_id``, else the first UUID of ``app_metadata.tenant_ids``."""
    meta = claims.get("app_metadata")
    if not isinstance(meta, Mapping):
        return None
    candidates: list[Any] = [meta.get("tenant_id")]
    tenant_ids = meta.get("tenant_ids")
    if isinstance(tenant_ids, list):
        candidates.extend(tenant_ids)
    for value in candidates:
        if isinstance(value, str):
            try:
                return UUID(value)
            except ValueError:
                continue  # the database ignores non-UUID values too
    return None


@dataclass(frozen=True, slots=True)
class McpScope:
    """Whom the server acts for.

    ``fixed`` means the operator pinned the tenant (``--tenant-id``): tools take no
    ``tenant_id`` and a different one is refused before any I/O. Otherwise the tenant
    comes from the user's claims and is only a default: the user may name another of
    their tenants, and the database refuses the ones their claims do not grant.
    """

    tenant_id: UUID
    fixed: bool
    claims: Mapping[str, Any] | None = None

    @classmethod
    def from_options(
        cls, *, tenant_id: UUID | str | None, claims_json: str | None = None
    ) -> McpScope:
        """Build the scope from the command line; claims default to ``$JOBFORGE_MCP_CLAIMS``."""
        if claims_json is None:
            claims_json = os.environ.get(CLAIMS_ENV) or None
        claims: dict[str, Any] | None = None
        if claims_json is not None:
            try:
                parsed = json.loads(claims_json)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"--user-jwt-claims: not valid JSON: {exc}") from None
            if not isinstance(parsed, dict):
                raise ConfigurationError("--user-jwt-claims: must be a JSON object of JWT claims")
            claims = parsed
        if tenant_id is not None:
            try:
                return cls(UUID(str(tenant_id)), fixed=True, claims=claims)
            except ValueError:
                raise ConfigurationError(f"--tenant-id: not a UUID: {tenant_id!r}") from None
        if claims is None:
            raise ConfigurationError(
                f"no tenant: pass --tenant-id, or --user-jwt-claims (or ${CLAIMS_ENV}) "
                "to act as a user"
            )
        default = tenant_from_claims(claims)
        if default is None:
            raise ConfigurationError(
                "--user-jwt-claims: no tenant in app_metadata.tenant_id or "
                "app_metadata.tenant_ids; pass --tenant-id"
            )
        return cls(default, fixed=False, claims=claims)


# -- the tools ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool's answer: the JSON object for programs and the text for the model."""

    structured: dict[str, Any]
    text: str


class ToolError(Exception):
    """A refusal reported to the agent as a tool result with ``isError: true``, so the
    model can read the reason and correct its call (rather than a protocol error)."""

    def __init__(
        self, message: str, *, kind: str, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.code = code
        self.field = field

    @classmethod
    def from_sdk(cls, exc: JobForgeError) -> ToolError:
        return cls(
            exc.message,
            kind=type(exc).__name__,
            code=exc.code,
            field=exc.field if isinstance(exc, InvalidInputError) else None,
        )

    def structured(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class UnknownToolError(LookupError):
    """No tool by that name: a protocol error, since the client asked for something this
    server never offered."""


Runner = Callable[[JobForgeClient, UUID, dict[str, Any]], ToolOutput]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One MCP tool: its name, what it does, its gate, and its arguments' model.

    The input schema is the params model's own JSON schema minus ``hidden`` fields (and
    ``tenant_id`` when the tenant is fixed), so the schema an agent sees and the checks
    its call meets cannot drift apart.
    """

    name: str
    description: str
    feature: Feature | None
    params: type[BaseModel]
    run: Runner
    read_only: bool
    # Hints for clients deciding whether to ask a human first: requesting a job may run an
    # action template that changes systems outside the database.
    destructive: bool = False
    open_world: bool = False
    hidden: tuple[str, ...] = field(default=())

    def input_schema(self, scope: McpScope) -> dict[str, Any]:
        schema = self.params.model_json_schema()
        schema.pop("title", None)
        properties: dict[str, Any] = dict(schema.get("properties", {}))
        required = [r for r in schema.get("required", []) if r != "tenant_id"]
        for name in self.hidden:
            properties.pop(name, None)
        if scope.fixed:
            properties.pop("tenant_id", None)
        else:
            tenant = dict(properties.get("tenant_id", {"type": "string", "format": "uuid"}))
            tenant["description"] = (
                f"The tenant to act for (default {scope.tenant_id}); the database refuses "
                "tenants the user does not belong to."
            )
            properties["tenant_id"] = tenant
        schema["properties"] = properties
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)
        return schema


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _given(params: BaseModel) -> dict[str, Any]:
    """The validated arguments the caller actually gave, so SDK defaults stay the SDK's."""
    return {name: getattr(params, name) for name in params.model_fields_set}


def _ingest_event(client: JobForgeClient, tenant: UUID, args: dict[str, Any]) -> ToolOutput:
    params = validate(SubmitEventParams, {**args, "tenant_id": tenant})
    fields = _given(params)
    if params.redaction_hints is not None:
        fields["redaction_hints"] = params.redaction_hints.model_dump()
    row = client.submit_event(**fields)
    if row is None:  # only when gated off, which strict clients turn into an error
        raise FeatureDisabledError("submit_event did nothing: feature events is off")
    out = {"event": _dump(row)}
    return ToolOutput(out, _json_text(out))


def _list_events(client: JobForgeClient, tenant: UUID, args: dict[str, Any]) -> ToolOutput:
    params = validate(ListEventsParams, {**args, "tenant_id": tenant})
    rows = client.list_events(**_given(params))
    out = {"events": [_dump(r) for r in rows], "count": len(rows)}
    return ToolOutput(out, _json_text(out))


def _request_job(client: JobForgeClient, tenant: UUID, args: dict[str, Any]) -> ToolOutput:
    params = validate(RequestJobParams, {**args, "tenant_id": tenant})
    if params.template_key in ACTION_TEMPLATE_KEYS:
        # Checked here rather than left to the SDK, which would sign its own token when
        # REQUIRE_POLICY_TOKENS is off: an agent must bring the authority to act.
        if not client.flags.enabled(Feature.ACTION_JOBS):
            raise FeatureDisabledError(
                f"template_key: {params.template_key} is an action template and feature "
                "action_jobs is off (JOBFORGE_ACTION_JOBS_ENABLED=1)"
            )
        if params.policy_token is None:
            raise PolicyDeniedError(
                f"policy token refused: policy_token is required for action template "
                f"{params.template_key}"
            )
    result = client.request_job(**_given(params))
    if result is None:
        raise FeatureDisabledError("request_job did nothing: its feature is off")
    out = _dump(result)
    return ToolOutput(out, _json_text(out))


def _job_status(client: JobForgeClient, tenant: UUID, args: dict[str, Any]) -> ToolOutput:
    params = validate(GetJobParams, {**args, "tenant_id": tenant})
    job = client.get_job(job_id=params.job_id, tenant_id=params.tenant_id)
    if job is None:
        raise NotFoundError(f"job_id: no job {params.job_id} for tenant {params.tenant_id}")
    result = None
    if job.status is JobStatus.SUCCEEDED:
        result = client.get_result(job_id=params.job_id, tenant_id=params.tenant_id)
    out = {
        "job_id": str(job.id),
        "type": job.type,
        "status": job.status.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "result": result.result if result is not None else None,
        "artifact_ref": result.artifact_ref if result is not None else None,
        "run_at": job.run_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    return ToolOutput(out, _json_text(out))


def _get_manifest(client: JobForgeClient, tenant: UUID, args: dict[str, Any]) -> ToolOutput:
    params = validate(GetManifestParams, {**args, "tenant_id": tenant})
    row = client.get_run_manifest(run_id=params.run_id, tenant_id=params.tenant_id)
    if row is None:
        out: dict[str, Any] = {"run_id": str(params.run_id), "manifest": None, "report": None}
        return ToolOutput(out, f"Run {params.run_id} has no manifest.")
    report = generate_manifest_report(row)
    out = {"run_id": str(params.run_id), "manifest": _dump(row), "report": report}
    return ToolOutput(out, report)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="jobforge.events.ingest",
        description=(
            "Store one event for the tenant and fire its matching event triggers. "
            "event_type is dotted lowercase (e.g. 'ops.alert'). Submitting it again with the "
            "same trace_id, event_type and occurred_at returns the stored row, not a duplicate."
        ),
        feature=Feature.EVENTS,
        params=SubmitEventParams,
        run=_ingest_event,
        read_only=False,
    ),
    ToolSpec(
        name="jobforge.events.list",
        description=(
            "The tenant's events, newest first, with optional filters. Payload fields "
            "marked for redaction read '[REDACTED]'."
        ),
        feature=Feature.EVENTS,
        params=ListEventsParams,
        run=_list_events,
        read_only=True,
        hidden=("raw",),
    ),
    ToolSpec(
        name="jobforge.jobs.request",
        description=(
            "Request a job from an enabled template (e.g. 'autopilot.ops.scan') with inputs "
            "matching the template's input schema. dry_run=true only reports what would be "
            "enqueued. Action templates (autopilot.ops.apply) need a policy_token."
        ),
        feature=Feature.AUTOPILOT_JOBS,
        params=RequestJobParams,
        run=_request_job,
        read_only=False,
        destructive=True,
        open_world=True,
    ),
    ToolSpec(
        name="jobforge.jobs.status",
        description=(
            "A job's status, attempts and last error, and its result once it has succeeded."
        ),
        feature=None,
        params=GetJobParams,
        run=_job_status,
        read_only=True,
    ),
    ToolSpec(
        name="jobforge.artifacts.manifest.get",
        description=(
            "The artifact manifest of a run (a job id): outputs, metrics, environment, "
            "as JSON and as a Markdown report."
        ),
        feature=Feature.MANIFESTS,
        params=GetManifestParams,
        run=_get_manifest,
        read_only=True,
    ),
)


class JobForgeTools:
    """The tools bound to one client and scope, independent of any MCP transport.

    Calls are synchronous (they run the sync client); the MCP layer runs them in a worker
    thread. Kept free of ``mcp`` imports so the logic is usable and testable without it.
    """

    def __init__(
        self,
        client: JobForgeClient,
        scope: McpScope,
        tools: tuple[ToolSpec, ...] = TOOLS,
    ) -> None:
        # Strict, so a gate the server did not foresee raises instead of returning
        # an empty answer the agent would take for "nothing there".
        strict = JobForgeClient(client.transport, flags=client.flags, strict=True)
        self.client = strict.with_claims(scope.claims) if scope.claims is not None else strict
        self.scope = scope
        self._tools = {spec.name: spec for spec in tools}

    def enabled(self) -> list[ToolSpec]:
        """The tools whose feature is on; the others are not offered at all."""
        return [spec for spec in self._tools.values() if self._is_on(spec)]

    def _is_on(self, spec: ToolSpec) -> bool:
        return spec.feature is None or self.client.flags.enabled(spec.feature)

    def instructions(self) -> str:
        if self.scope.fixed:
            who = f"Every tool acts for tenant {self.scope.tenant_id} only."
        else:
            who = (
                f"Tools act as the configured user, for tenant {self.scope.tenant_id} unless "
                "another of the user's tenants is named with tenant_id."
            )
        return (
            f"JobForge: a multi-tenant job queue. {who} Submit events, request jobs from "
            "templates, follow a job with jobforge.jobs.status, and read a run's artifact "
            "manifest."
        )

    def call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolOutput:
        """Run a tool. Raises ``ToolError`` for any refusal the agent should see, and
        ``UnknownToolError`` for a name this server never offered."""
        spec = self._tools.get(name)
        if spec is None:
            raise UnknownToolError(name)
        if spec.feature is not None and not self._is_on(spec):
            raise ToolError(
                f"{name} is disabled: feature {spec.feature.value} is off "
                f"(set {spec.feature.env_var}=1 on the server)",
                kind=FeatureDisabledError.__name__,
            )
        args = dict(arguments or {})
        try:
            for hidden in spec.hidden:
                if hidden in args:
                    raise InvalidInputError(f"{hidden}: is not available through MCP")
            tenant = self._tenant(args.pop("tenant_id", None))
            return spec.run(self.client, tenant, args)
        except JobForgeError as exc:
            raise ToolError.from_sdk(exc) from exc

    def _tenant(self, given: Any) -> UUID:
        if given is None:
            return self.scope.tenant_id
        try:
            tenant = UUID(str(given))
        except ValueError:
            raise InvalidInputError("tenant_id: Input should be a valid UUID") from None
        if self.scope.fixed and tenant != self.scope.tenant_id:
            raise PermissionDeniedError(
                f"tenant_id: this server acts for tenant {self.scope.tenant_id} only; "
                f"it may not act for tenant {tenant}"
            )
        return tenant


# -- the MCP layer --------------------------------------------------------------------


def _tool(spec: ToolSpec, scope: McpScope) -> mcp_types.Tool:
    import mcp.types as types

    return types.Tool(
        name=spec.name,
        description=spec.description,
        input_schema=spec.input_schema(scope),
        annotations=types.ToolAnnotations(
            read_only_hint=spec.read_only,
            destructive_hint=None if spec.read_only else spec.destructive,
            open_world_hint=spec.open_world,
        ),
    )


def build_server(tools: JobForgeTools) -> Server[Any]:
    """The low-level MCP server: it gives full control of each tool's input schema and
    of structured content, which the decorator-based server would infer from signatures."""
    import anyio.to_thread
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(s, tools.scope) for s in tools.enabled()])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            out = await anyio.to_thread.run_sync(tools.call, params.name, params.arguments)
        except UnknownToolError:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}") from None
        except ToolError as exc:
            return types.CallToolResult(
                content=[types.TextContent(text=exc.message)],
                structured_content=exc.structured(),
                is_error=True,
            )
        return types.CallToolResult(
            content=[types.TextContent(text=out.text)], structured_content=out.structured
        )

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=tools.instructions(),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(client: JobForgeClient, scope: McpScope) -> None:
    """Serve the tools on stdin/stdout until the client closes the connection."""
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(JobForgeTools(client, scope))

    async def run() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(run)
