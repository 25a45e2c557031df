"""The execution-plane smoke test that the apps' CIs run (``jobforge smoke``).

It proves, against a real database, that the flags default to off, that the core queue
works unchanged, that every gated feature is a no-op while its flag is off, that policy
tokens and manifests behave, and, with every flag on, the whole flow: an event fires a
trigger, a template job is requested (the connectors its template requires configured
first, for the smoke tenant only), a worker runs it, and its manifest is read back and
rendered; a connector secret is stored and checked never to come back. Everything it
changes is scoped to a fresh tenant, and what it turns on globally (templates, a policy
key) is turned off again.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from pydantic import JsonValue

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.errors import JobForgeError, PolicyDeniedError
from jobforge_sdk.flags import Feature, FeatureFlags
from jobforge_sdk.manifests import (
    create_artifact_output,
    generate_env_fingerprint,
    generate_manifest_report,
    manifest_digest,
)
from jobforge_sdk.models.jobs import JobStatus
from jobforge_sdk.models.manifests import ArtifactManifest, ManifestStatus
from jobforge_sdk.policy import generate_policy_token, validate_policy_token
from jobforge_sdk.runtime.registry import JobContext, JobRegistry
from jobforge_sdk.runtime.worker import Worker

__all__ = ["Check", "SmokeTest", "demo_handlers"]

ClientFactory = Callable[[FeatureFlags], JobForgeClient]
T = TypeVar("T")
SCAN = "autopilot.ops.scan"
APPLY = "autopilot.ops.apply"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def require(value: T | None, message: str) -> T:
    if value is None:
        raise CheckFailed(message)
    return value


def demo_handlers() -> JobRegistry:
    """Handlers for the two templates the smoke test runs; they do real, small work."""
    registry = JobRegistry()

    @registry.handler(SCAN)
    def scan(ctx: JobContext) -> JsonValue:
        target = str(ctx.inputs.get("target", "unknown"))
        requested = ctx.inputs.get("checks")
        checks = [str(c) for c in requested] if isinstance(requested, list) else ["tls", "dns"]
        findings: list[JsonValue] = [
            {
                "id": f"{check}-{index}",
                "check": check,
                "severity": "info",
                "resource": target,
                "message": f"{check} looks healthy",
            }
            for index, check in enumerate(checks, start=1)
        ]
        report = "\n".join(f"{target} {c}: healthy" for c in checks).encode()
        ctx.add_output(
            create_artifact_output(
                "scan-report",
                "text",
                f"inline://{ctx.job.id}/scan.txt",
                data=report,
                mime_type="text/plain",
            )
        )
        ctx.metrics["checks_run"] = len(findings)
        ctx.tool_versions["smoke-scanner"] = "1.0"
        return {"findings": findings, "summary": {"total": len(findings)}}

    @registry.handler(APPLY)
    def apply(ctx: JobContext) -> JsonValue:
        plan = ctx.inputs.get("plan")
        steps = plan.get("steps", []) if isinstance(plan, dict) else []
        changes: list[JsonValue] = [
            {"resource": str(step), "action": "noop", "status": "skipped"}
            for step in (steps if isinstance(steps, list) else [])
        ]
        return {"applied": False, "changes": changes}

    return registry


class SmokeTest:
    """Runs the checks in order; each is reported to ``on_check`` as soon as it is known."""

    report: str | None = None

    def __init__(
        self,
        make_client: ClientFactory,
        *,
        enable_all: bool,
        on_check: Callable[[Check], None] = lambda _c: None,
        on_step: Callable[[str], None] = lambda _s: None,
    ) -> None:
        self.make_client = make_client
        self.enable_all = enable_all
        self.on_check = on_check
        self.on_step = on_step
        self.tenant_id = uuid.uuid4()
        self.checks: list[Check] = []

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("flags default to off", self.check_flags_default_off),
            ("core queue: enqueue, get, cancel", self.check_backward_compatibility),
            ("gated features are no-ops while off", self.check_gated_noops),
            ("policy tokens: generate, validate, refuse forged", self.check_policy_tokens),
            ("manifest report and env fingerprint", self.check_manifest_report),
        ]
        if self.enable_all:
            steps.append(("full flow with every flag on", self.check_full_flow))
        for name, step in steps:
            self.on_step(name)
            try:
                check = Check(name, True, step())
            except CheckFailed as exc:
                check = Check(name, False, str(exc))
            except JobForgeError as exc:
                check = Check(name, False, f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a smoke test reports, it does not crash
                check = Check(name, False, f"unexpected {type(exc).__name__}: {exc}")
            self.checks.append(check)
            self.on_check(check)
        return self.checks

    # -- the checks -----------------------------------------------------------------------

    def check_flags_default_off(self) -> str:
        defaults = {f.value: FeatureFlags.model_fields[f.value].default for f in Feature}
        expect(not any(defaults.values()), f"a flag defaults to on: {defaults}")
        expect(
            FeatureFlags.model_fields["require_policy_tokens"].default is True,
            "JOBFORGE_REQUIRE_POLICY_TOKENS must default to on",
        )
        return ", ".join(f.env_var for f in Feature) + ": off by default"

    def check_backward_compatibility(self) -> str:
        # Every flag off whatever the environment says: the core queue must not need one.
        with self.make_client(FeatureFlags.all_off()) as client:
            job = client.enqueue_job(
                tenant_id=self.tenant_id, type="smoke.legacy", payload={"n": 1}
            )
            fetched = client.get_job(job_id=job.id, tenant_id=self.tenant_id)
            expect(fetched is not None and fetched.id == job.id, "enqueued job not found")
            canceled = client.cancel_job(job_id=job.id, tenant_id=self.tenant_id)
            expect(canceled.status is JobStatus.CANCELED, f"cancel gave {canceled.status}")
        return f"job {job.id} enqueued, read back and canceled"

    def check_gated_noops(self) -> str:
        t = self.tenant_id
        with self.make_client(FeatureFlags.all_off()) as off:
            results = {
                "submit_event": off.submit_event(
                    tenant_id=t, event_type="smoke.noop", source_app="jobforge"
                ),
                "list_events": off.list_events(tenant_id=t),
                "request_job": off.request_job(tenant_id=t, template_key=SCAN),
                "list_templates": off.list_templates(),
                "get_run_manifest": off.get_run_manifest(run_id=uuid.uuid4(), tenant_id=t),
                "list_triggers": off.list_triggers(tenant_id=t),
                "list_audit_logs": off.list_audit_logs(tenant_id=t),
            }
        wrong = {k: v for k, v in results.items() if v not in (None, [])}
        expect(not wrong, f"returned data while off: {sorted(wrong)}")
        if self.enable_all:
            with self.make_client(FeatureFlags(events=True)) as on:
                stored = on.list_events(tenant_id=t, event_type="smoke.noop")
            expect(stored == [], f"an event was stored while {Feature.EVENTS.env_var} was off")
            return f"{len(results)} gated methods returned None/[]; nothing was written"
        return f"{len(results)} gated methods returned None/[] without touching the database"

    def check_policy_tokens(self) -> str:
        secret = secrets.token_urlsafe(32)
        token = generate_policy_token(
            secret=secret,
            tenant_id=self.tenant_id,
            actor_id="smoke",
            action=APPLY,
            scopes=["ops:read", "ops:write"],
        )
        ok = validate_policy_token(
            token, secret, action=APPLY, required_scopes=["ops:write"], tenant_id=self.tenant_id
        )
        expect(ok.allowed, f"valid token refused: {ok.reason}")
        forged = generate_policy_token(
            secret=secrets.token_urlsafe(32),
            tenant_id=self.tenant_id,
            actor_id="smoke",
            action=APPLY,
            scopes=["ops:read", "ops:write"],
        )
        bad = validate_policy_token(
            forged, secret, action=APPLY, required_scopes=["ops:write"], tenant_id=self.tenant_id
        )
        expect(not bad.allowed and bad.reason == "bad signature", f"forged token: {bad.reason}")
        other = validate_policy_token(
            token, secret, action=SCAN, required_scopes=[], tenant_id=self.tenant_id
        )
        expect(other.reason == "wrong action", f"token for another action: {other.reason}")
        return "valid token accepted; forged (bad signature) and wrong-action tokens refused"

    def check_manifest_report(self) -> str:
        fingerprint = generate_env_fingerprint()
        expect(bool(fingerprint.get("python")), "fingerprint lacks the Python version")
        manifest = ArtifactManifest(
            job_type=SCAN,
            outputs=[create_artifact_output("r", "text", "inline://r", data=b"ok")],
            env_fingerprint=fingerprint,
            status=ManifestStatus.COMPLETE,
        )
        report = generate_manifest_report(manifest)
        expect("## Outputs" in report and "| r | text | 2 B |" in report, "report lacks outputs")
        expect(
            manifest_digest(manifest) == manifest_digest(manifest.model_dump()), "digest unstable"
        )
        return f"report of {len(report.splitlines())} lines; python {fingerprint['python']}"

    def check_full_flow(self) -> str:
        secret = secrets.token_urlsafe(32)
        kid = f"smoke-{secrets.token_hex(4)}"
        flags = FeatureFlags.all_on(policy_token_secret=secret, policy_token_kid=kid)
        t = self.tenant_id
        trace = f"smoke-{uuid.uuid4().hex[:12]}"
        with self.make_client(flags) as client, self._templates_enabled(client, (SCAN, APPLY)):
            client.add_policy_key(kid=kid, secret=secret)
            try:
                connectors = self._connectors(client, t, (SCAN, APPLY))
                return f"{self._flow(client, t, trace, secret, kid)}; {connectors}"
            finally:
                client.retire_policy_key(kid=kid)

    def _connectors(self, client: JobForgeClient, t: uuid.UUID, keys: tuple[str, ...]) -> str:
        """Configure, for the smoke tenant only, every connector the templates it requests
        require (request_job refuses a template whose required connectors have no enabled
        config), and prove a secret goes in and never comes back out."""
        marker = secrets.token_urlsafe(16)
        probe = require(
            client.set_connector_config(
                tenant_id=t,
                connector_type="smoke_probe",
                config={"purpose": "jobforge smoke"},
                secrets={"token": marker},
                actor_id="smoke",
            ),
            "connector config not set",
        )
        listed = client.list_connector_configs(tenant_id=t)
        answers = probe.model_dump_json() + "".join(c.model_dump_json() for c in listed)
        expect(probe.secret_keys == ["token"], f"secret keys answered: {probe.secret_keys}")
        expect(marker not in answers, "a connector secret was answered back")
        client.delete_connector_config(tenant_id=t, connector_type="smoke_probe", actor_id="smoke")
        required = sorted(
            {
                name
                for key in keys
                for name in require(client.get_template(template_key=key), key).required_connectors
            }
        )
        for name in required:
            client.set_connector_config(
                tenant_id=t,
                connector_type=name,
                config={"configured_by": "jobforge smoke"},
                enabled=True,
                actor_id="smoke",
            )
        configured = ", ".join(required) if required else "none required"
        return f"connector secrets write-only; configured for the smoke tenant: {configured}"

    def _flow(self, client: JobForgeClient, t: uuid.UUID, trace: str, secret: str, kid: str) -> str:
        trigger = client.create_event_trigger(
            tenant_id=t,
            name="smoke: alerts scan",
            event_type_filter="infrastructure.*",
            target_template_key=SCAN,
            target_inputs={"target": "api.example.com"},
            enabled=True,
        )
        trigger = require(trigger, "trigger not created")
        event = client.submit_event(
            tenant_id=t,
            event_type="infrastructure.alert",
            source_app="jobforge",
            source_module="ops",
            trace_id=trace,
            payload={"severity": "high"},
        )
        event = require(event, "event not stored")
        expect(event.processed, "event did not fire its trigger")
        requested = client.request_job(
            tenant_id=t,
            template_key=SCAN,
            inputs={"target": "db.example.com", "checks": ["tls"]},
            trace_id=trace,
            actor_id="smoke",
        )
        requested_job = require(require(requested, "request_job returned nothing").job, "no job")
        token = generate_policy_token(
            secret=secret,
            kid=kid,
            tenant_id=t,
            actor_id="smoke",
            action=APPLY,
            scopes=["ops:read", "ops:write"],
        )
        action = client.request_job(
            tenant_id=t,
            template_key=APPLY,
            inputs=_apply_inputs(),
            policy_token=token,
            actor_id="smoke",
        )
        require(require(action, "action request returned nothing").job, "action job not enqueued")
        try:
            client.request_job(
                tenant_id=t, template_key=APPLY, inputs=_apply_inputs(), policy_token=token
            )
            raise CheckFailed("a replayed policy token was accepted")
        except PolicyDeniedError:
            pass
        worker = Worker(client, demo_handlers(), concurrency=2, poll_interval=0.05)
        ran = worker.run_until_idle(timeout=60)
        job = require(client.get_job(job_id=requested_job.id, tenant_id=t), "job vanished")
        expect(job.status is JobStatus.SUCCEEDED, f"job ended {job.status}: {job.error}")
        manifest = require(
            client.get_run_manifest(run_id=requested_job.id, tenant_id=t), "no manifest for the run"
        )
        expect(manifest.status is ManifestStatus.COMPLETE, f"manifest {manifest.status}")
        report = generate_manifest_report(manifest)
        expect("scan-report" in report, "manifest report lacks the output")
        audit = client.list_audit_logs(tenant_id=t)
        actions = sorted({a.action.value for a in audit})
        expect("job_request" in actions and "event_ingest" in actions, f"audit: {actions}")
        client.delete_trigger(trigger_id=trigger.id, tenant_id=t)
        self.report = report
        duration = manifest.metrics.duration_ms or 0.0
        return (
            f"event fired job {event.processing_job_id}; requested {requested_job.id}; worker "
            f"ran {ran} jobs; manifest {manifest.status.value} ({duration:.1f} ms); "
            f"audit actions: {', '.join(actions)}"
        )

    @contextmanager
    def _templates_enabled(self, client: JobForgeClient, keys: tuple[str, ...]) -> Iterator[None]:
        before = {k: client.get_template(template_key=k) for k in keys}
        for key in keys:
            client.set_template_enabled(template_key=key, enabled=True, actor_id="smoke")
        try:
            yield
        finally:
            for key, template in before.items():
                if template is not None and not template.enabled:
                    client.set_template_enabled(template_key=key, enabled=False, actor_id="smoke")


def _apply_inputs() -> dict[str, JsonValue]:
    return {"recommendation_id": "rec-1", "plan": {"steps": ["restart api-1"]}}
