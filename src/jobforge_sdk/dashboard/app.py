"""The dashboard's Starlette app: one route per page, each page one template.

Pages read through ``Reader`` (the client's RPCs) and are rendered on the server; the
browser's only script re-fetches the page's main region every few seconds (asking with
``X-Dashboard-Fragment``) so the numbers move without a reload. Writes are form POSTs,
checked for the CSRF token, then redirected back (POST, redirect, GET).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from jobforge_sdk import metrics
from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.dashboard.reads import Reader
from jobforge_sdk.dashboard.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    TOKEN_COOKIE,
    csrf_ok,
    csrf_value,
    token_ok,
)
from jobforge_sdk.dashboard.settings import DashboardSettings
from jobforge_sdk.dashboard.stats import LIST_CAP, overview
from jobforge_sdk.errors import (
    ConfigurationError,
    JobForgeError,
    NotFoundError,
    PermissionDeniedError,
)
from jobforge_sdk.models.audit import AuditAction
from jobforge_sdk.models.events import SourceApp
from jobforge_sdk.models.jobs import JobRow, JobStatus

__all__ = ["create_app"]

logger = logging.getLogger("jobforge_sdk.dashboard")
HERE = Path(__file__).parent
SINCE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1)}
SINCE |= {"7d": timedelta(days=7)}
FRAGMENT_HEADER = "x-dashboard-fragment"


class _Refused(Exception):
    """A request the dashboard turns down with a message (bad filter, read-only, CSRF)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    env.filters["ago"] = _ago
    env.filters["when"] = lambda value: "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")
    return env


def _ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{seconds:.0f}s"
    elif seconds < 3600:
        text = f"{seconds / 60:.0f}m"
    elif seconds < 86400:
        text = f"{seconds / 3600:.1f}h"
    else:
        text = f"{seconds / 86400:.1f}d"
    return f"in {text}" if future else f"{text} ago"


def _uuid_param(request: Request, name: str) -> UUID | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise _Refused(400, f"{name}: not a UUID") from None


def _choice(request: Request, name: str, allowed: Mapping[str, Any] | list[str]) -> str | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    if raw not in allowed:
        raise _Refused(400, f"{name}: must be one of {', '.join(allowed)}")
    return raw


def _text(request: Request, name: str) -> str | None:
    return request.query_params.get(name, "").strip() or None


def _safe_next(value: str | None, default: str) -> str:
    """Only a path of this site: a redirect must never leave it."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


class _TokenGate:
    """Refuses every request without the token (when one is configured), before routing:
    only the login form and the static files are served to a stranger."""

    def __init__(self, app: ASGIApp, token: str | None, render_login: Callable[..., str]) -> None:
        self.app = app
        self.token = token
        self.render_login = render_login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/static/") or path == "/login":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if token_ok(request, self.token):
            await self.app(scope, receive, send)
            return
        response = HTMLResponse(
            self.render_login(error=None, next_path=path),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="jobforge-dashboard"'},
        )
        await response(scope, receive, send)


def create_app(client: JobForgeClient, settings: DashboardSettings | None = None) -> Starlette:
    """The dashboard over ``client`` (service role, or ``client.with_claims(...)`` with
    ``settings.claims`` set to the same claims for a user's view)."""
    settings = settings or DashboardSettings()
    env = _environment()

    def reader_for() -> Reader:
        return Reader(client, settings)  # one per request: its tenant cache never goes stale

    queue_metrics = metrics.QueueCollector(client, tenants=settings.tenants)
    registry = metrics.dashboard_registry(queue_metrics)

    def render_login(*, error: str | None, next_path: str) -> str:
        return env.get_template("login.html").render(
            error=error, next_path=_safe_next(next_path, "/"), fragment=False, settings=settings
        )

    def page(
        request: Request, name: str, active: str, status_code: int = 200, **context: Any
    ) -> Response:
        fragment = request.headers.get(FRAGMENT_HEADER) == "1"
        csrf = csrf_value(request)
        html = env.get_template(name).render(
            fragment=fragment,
            active=active,
            settings=settings,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            flash=request.query_params.get("done"),
            problem=request.query_params.get("problem"),
            path=request.url.path,
            query=request.url.query,
            now=datetime.now(UTC),
            statuses=[s.value for s in JobStatus],
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    def guarded(
        name: str, active: str, build: Callable[[Request, Reader], dict[str, Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                context = await run_in_threadpool(build, request, reader_for())
            except _Refused as exc:
                return page(request, "problem.html", active, exc.status, message=str(exc))
            except PermissionDeniedError as exc:
                return page(request, "problem.html", active, 403, message=f"not permitted: {exc}")
            except JobForgeError as exc:
                return page(request, "problem.html", active, 502, message=str(exc))
            status_code = int(context.pop("status_code", 200))
            return page(request, name, active, status_code, **context)

        return endpoint

    # -- pages ----------------------------------------------------------------------------

    def build_overview(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        lists = reader.status_lists(tenant)
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "view": overview(lists, datetime.now(UTC)),
            "cap": LIST_CAP,
        }

    def build_jobs(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        status = _choice(request, "status", [s.value for s in JobStatus])
        job_type = _text(request, "type")
        since = _choice(request, "since", SINCE)
        jobs = reader.jobs(
            tenant,
            status=JobStatus(status) if status else None,
            type=job_type,
            limit=settings.page_size,
        )
        if since is not None:
            cutoff = datetime.now(UTC) - SINCE[since]
            jobs = [job for job in jobs if job.created_at >= cutoff]
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "status": status or "",
            "type": job_type or "",
            "since": since or "",
            "since_choices": list(SINCE),
            "jobs": jobs,
        }

    def build_job(request: Request, reader: Reader) -> dict[str, Any]:
        try:
            job_id = UUID(request.path_params["job_id"])
        except ValueError:
            raise _Refused(400, "job id: not a UUID") from None
        job = reader.job(job_id)
        if job is None:
            return {"job": None, "job_id": job_id, "status_code": 404}
        return {
            "job": job,
            "job_id": job_id,
            "attempts": reader.attempts(job),
            "manifest": reader.manifest(job),
        }

    def build_dead(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        job_type = _text(request, "type")
        jobs = reader.jobs(tenant, status=JobStatus.DEAD, type=job_type, limit=settings.page_size)
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "type": job_type or "",
            "jobs": jobs,
        }

    def build_events(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        event_type = _text(request, "event_type")
        source_app = _choice(request, "source_app", [a.value for a in SourceApp])
        trace_id = _text(request, "trace_id")
        processed = _choice(request, "processed", ["yes", "no"])
        since = _choice(request, "since", SINCE)
        start = datetime.now(UTC) - SINCE[since] if since else None
        events = reader._merged(
            tenant,
            lambda t: reader.client.list_events(
                tenant_id=t,
                event_type=event_type,
                source_app=source_app,
                trace_id=trace_id,
                processed=None if processed is None else processed == "yes",
                since=start,
                limit=settings.page_size,
            ),
            lambda event: event.occurred_at,
        )[: settings.page_size]
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "event_type": event_type or "",
            "source_app": source_app or "",
            "source_apps": [a.value for a in SourceApp],
            "trace_id": trace_id or "",
            "processed": processed or "",
            "since": since or "",
            "since_choices": list(SINCE),
            "events": events,
        }

    def build_templates(request: Request, reader: Reader) -> dict[str, Any]:
        return {"templates": reader.client.list_templates()}

    def build_limits(request: Request, reader: Reader) -> dict[str, Any]:
        # Limits are operator settings the service role alone may read (27_limits.sql);
        # a user's view says so instead of failing.
        if not settings.service_role:
            return {"limits": None}
        return {"limits": reader.client.list_limits()}

    def build_triggers(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        triggers = reader._merged(
            tenant,
            lambda t: reader.client.list_triggers(tenant_id=t, limit=settings.page_size),
            lambda trigger: trigger.created_at,
        )
        now = datetime.now(UTC)
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "triggers": [(t, _next_fire(t.cron_expression, t.enabled, now)) for t in triggers],
        }

    def build_audit(request: Request, reader: Reader) -> dict[str, Any]:
        tenant = _uuid_param(request, "tenant")
        action = _choice(request, "action", [a.value for a in AuditAction])
        scopes: list[UUID | None] = list(reader.scope(tenant))
        if tenant is None and settings.service_role:
            scopes.append(None)  # the global rows: template and policy-key changes
        rows = []
        for one in scopes:
            rows.extend(
                reader.client.list_audit_logs(
                    tenant_id=one, action=action, limit=settings.page_size
                )
            )
        rows.sort(key=lambda row: row.created_at, reverse=True)
        return {
            "tenant": tenant,
            "tenants": reader.known_tenants(),
            "action": action or "",
            "actions": [a.value for a in AuditAction],
            "rows": rows[: settings.page_size],
        }

    # -- writes ---------------------------------------------------------------------------

    def acting_client(tenant: UUID) -> JobForgeClient:
        """The client a write runs on, so its audit row names the operator: the user's own
        client, or for the service role a client carrying the operator as JWT subject for
        this one tenant (the RPCs record the subject of an untrusted caller as actor)."""
        if not settings.service_role:
            return client
        claims = {
            "sub": settings.operator,
            "role": "authenticated",
            "app_metadata": {"tenant_id": str(tenant)},
        }
        try:
            return client.with_claims(claims)
        except ConfigurationError:
            return client

    def write(
        action: Callable[[Request, dict[str, str]], str],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            back = _safe_next(form.get("next"), "/")
            if settings.read_only:
                return PlainTextResponse("this dashboard is read-only", status_code=403)
            if not csrf_ok(request, form.get(CSRF_FIELD)):
                return PlainTextResponse("CSRF token missing or wrong", status_code=403)
            try:
                done = await run_in_threadpool(action, request, form)
            except (_Refused, JobForgeError) as exc:
                return _back(back, problem=str(exc).splitlines()[0])
            return _back(back, done=done)

        return endpoint

    def job_for_write(request: Request) -> JobRow:
        try:
            job_id = UUID(request.path_params["job_id"])
        except ValueError:
            raise _Refused(400, "job id: not a UUID") from None
        job = reader_for().job(job_id)
        if job is None:
            raise NotFoundError(f"job {job_id} not found")
        return job

    def do_retry(request: Request, form: dict[str, str]) -> str:
        job = job_for_write(request)
        # The same job goes back to the queue (attempts reset), so its id, payload and
        # attempt history stay together; the RPC refuses anything not dead (a double click
        # meets a queued job: ConflictError) and writes the job_retry row naming the
        # operator (the JWT subject, or actor_id where the service role acts itself).
        acting_client(job.tenant_id).retry_job(
            tenant_id=job.tenant_id, job_id=job.id, actor_id=settings.operator
        )
        logger.info("operator %s retried dead job %s", settings.operator, job.id)
        return f"retried {job.id} (queued again)"

    def do_cancel(request: Request, form: dict[str, str]) -> str:
        job = job_for_write(request)
        acting_client(job.tenant_id).cancel_job(job_id=job.id, tenant_id=job.tenant_id)
        return f"canceled {job.id}"

    def do_template(request: Request, form: dict[str, str]) -> str:
        if not settings.service_role:
            raise _Refused(403, "templates are changed by the service role only")
        enabled = form.get("enabled") == "true"
        key = request.path_params["key"]
        client.set_template_enabled(template_key=key, enabled=enabled, actor_id=settings.operator)
        return f"{'enabled' if enabled else 'disabled'} template {key}"

    def do_trigger(request: Request, form: dict[str, str]) -> str:
        try:
            trigger_id = UUID(request.path_params["trigger_id"])
            tenant = UUID(form.get("tenant", ""))
        except ValueError:
            raise _Refused(400, "trigger or tenant id: not a UUID") from None
        enabled = form.get("enabled") == "true"
        client.set_trigger_enabled(
            trigger_id=trigger_id, tenant_id=tenant, enabled=enabled, actor_id=settings.operator
        )
        return f"{'enabled' if enabled else 'disabled'} trigger {trigger_id}"

    # -- login and metrics ------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET" or settings.auth_token is None:
            next_path = request.query_params.get("next", "/")
            return HTMLResponse(render_login(error=None, next_path=next_path))
        form = await request.form()
        given = str(form.get("token", ""))
        next_path = _safe_next(str(form.get("next", "/")), "/")
        probe = Request(
            {"type": "http", "headers": [(b"authorization", f"Bearer {given}".encode())]}
        )
        if not token_ok(probe, settings.auth_token):
            return HTMLResponse(
                render_login(error="wrong token", next_path=next_path), status_code=401
            )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
        return response

    async def metrics_endpoint(request: Request) -> Response:
        body = await run_in_threadpool(metrics.render, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", guarded("overview.html", "overview", build_overview)),
        Route("/jobs", guarded("jobs.html", "jobs", build_jobs)),
        Route("/jobs/{job_id}", guarded("job.html", "jobs", build_job)),
        Route("/jobs/{job_id}/retry", write(do_retry), methods=["POST"]),
        Route("/jobs/{job_id}/cancel", write(do_cancel), methods=["POST"]),
        Route("/dead", guarded("dead.html", "dead", build_dead)),
        Route("/events", guarded("events.html", "events", build_events)),
        Route("/templates", guarded("templates.html", "templates", build_templates)),
        Route("/templates/{key}/enabled", write(do_template), methods=["POST"]),
        Route("/limits", guarded("limits.html", "limits", build_limits)),
        Route("/triggers", guarded("triggers.html", "triggers", build_triggers)),
        Route("/triggers/{trigger_id}/enabled", write(do_trigger), methods=["POST"]),
        Route("/audit", guarded("audit.html", "audit", build_audit)),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/metrics", metrics_endpoint),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_TokenGate, token=settings.auth_token, render_login=render_login)
    app.state.settings = settings
    return app


def _back(path: str, **message: str) -> RedirectResponse:
    base, _, query = path.partition("?")
    kept = [
        part for part in query.split("&") if part and not part.startswith(("done=", "problem="))
    ]
    kept.append(urlencode(message))
    return RedirectResponse(f"{base}?{'&'.join(kept)}", status_code=303)


def _next_fire(cron: str | None, enabled: bool, now: datetime) -> datetime | None:
    if cron is None or not enabled:
        return None
    from croniter import croniter

    try:
        return croniter(cron, now).get_next(datetime)
    except (ValueError, KeyError):
        return None
