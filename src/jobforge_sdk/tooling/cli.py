"""The ``jobforge`` command line.

Every command turns an expected failure (bad input, unreachable database, refused token,
a bad flag value) into one line on stderr and exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import psycopg

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.errors import ConfigurationError, JobForgeError, NotFoundError
from jobforge_sdk.flags import Feature, FeatureFlags, unknown_setting_message, unknown_settings
from jobforge_sdk.models.jobs import JobRow
from jobforge_sdk.models.retention import MAX_PURGE_BATCH
from jobforge_sdk.policy import generate_policy_token, validate_policy_token
from jobforge_sdk.runtime.registry import Handler
from jobforge_sdk.runtime.scheduler import Scheduler
from jobforge_sdk.runtime.worker import Worker
from jobforge_sdk.tooling.migrate import Migrator, export_migrations
from jobforge_sdk.tooling.purge import (
    add_purge_arguments,
    batch_size,
    duration,
    purge_usage_problem,
    run_purge,
)
from jobforge_sdk.tooling.smoke import Check, SmokeTest

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(JobForgeError):
    """A command-line argument that cannot be used as given."""


# -- connection -------------------------------------------------------------------------


def _database_url(args: argparse.Namespace) -> str:
    return str(getattr(args, "database_url", None) or os.environ.get("JOBFORGE_DATABASE_URL", ""))


def _flags(**overrides: Any) -> FeatureFlags:
    """The flags from the environment; a bad value is a ConfigurationError naming it."""
    return FeatureFlags(**overrides)


def _check_reachable(dsn: str) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=10):
            pass
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"invalid database URL: {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise ConfigurationError(f"cannot connect to the database: {_first_line(exc)}") from None


# Errors a server that is up sends to a connection it refuses: waiting cannot mend them.
_PERMANENT = ("does not exist", "authentication failed", "pg_hba.conf", "password", "invalid")


def _wait_for_database(dsn: str, seconds: float) -> None:
    """Connect, retrying for up to ``seconds`` while the server is down or starting
    (connection refused, timed out, "the database system is starting up"), with capped
    exponential backoff; a refusal from a running server (bad password, unknown user or
    database, malformed URL) fails at once, like ``_check_reachable``."""
    log = logging.getLogger("jobforge_sdk.worker")
    deadline = time.monotonic() + seconds
    delay, waiting_since = 0.2, None
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=max(1, min(10, math.ceil(seconds)))):
                pass
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"invalid database URL: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            if any(word in reason for word in _PERMANENT) or time.monotonic() >= deadline:
                waited = "" if waiting_since is None else f" (waited {seconds:g} s)"
                raise ConfigurationError(
                    f"cannot connect to the database{waited}: {_first_line(exc)}"
                ) from None
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning(
                    "database not reachable yet (%s); waiting up to %g s (--wait-for-database)",
                    reason[:300],
                    seconds,
                )
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)
        else:
            if waiting_since is not None:
                log.warning(
                    "database reachable after %.1f s of waiting", time.monotonic() - waiting_since
                )
            return


def _client(
    args: argparse.Namespace,
    flags: FeatureFlags | None = None,
    *,
    pool_size: int = 4,
    wait: float = 0.0,
) -> JobForgeClient:
    flags = flags or _flags()
    supabase_url = getattr(args, "supabase_url", None) or ""
    if supabase_url:
        key = getattr(args, "supabase_key", None) or os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "")
        if not key:
            raise ConfigurationError(
                "--supabase-url needs --supabase-key or SUPABASE_SERVICE_ROLE_KEY"
            )
        return JobForgeClient.from_supabase(supabase_url, key, flags=flags)
    dsn = _database_url(args)
    if not dsn:
        if os.environ.get("SUPABASE_URL") and os.environ.get("SUPABASE_SERVICE_ROLE_KEY"):
            return JobForgeClient.from_supabase(
                os.environ["SUPABASE_URL"], os.environ["SUPABASE_SERVICE_ROLE_KEY"], flags=flags
            )
        raise ConfigurationError(
            "no database: pass --database-url, or set JOBFORGE_DATABASE_URL "
            "(or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY)"
        )
    if wait > 0:
        _wait_for_database(dsn, wait)
    else:
        _check_reachable(dsn)
    return JobForgeClient.from_postgres(dsn, flags=flags, max_size=pool_size, timeout=15)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: {value!r}")
    return seconds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def _moment(value: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC (as the dashboard's filters read it)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_json(data: Any, out: TextIO = sys.stdout) -> None:
    out.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


# -- migrate ----------------------------------------------------------------------------


def _cmd_migrate(args: argparse.Namespace) -> int:
    directory = Path(args.migrations_dir) if args.migrations_dir else None
    project = Path(args.supabase_project) if args.supabase_project else None
    migrator = Migrator(
        _database_url(args), directory=directory, echo=print, supabase_project=project
    )
    if args.status:
        for line in migrator.status().lines(migrator.files()):
            print(line)
        return EXIT_OK
    migrator.apply(dry_run=args.dry_run)
    return EXIT_OK


def _cmd_bootstrap(args: argparse.Namespace) -> int:
    Migrator(_database_url(args), echo=print).bootstrap()
    return EXIT_OK


def _cmd_migrations_export(args: argparse.Namespace) -> int:
    directory = Path(args.migrations_dir) if args.migrations_dir else None
    export_migrations(Path(args.into), directory=directory, echo=print)
    return EXIT_OK


# -- smoke ------------------------------------------------------------------------------


class Progress:
    """Each step as it runs: a live line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()

    def step(self, name: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write(f"\r\033[K… {name}")
        else:
            self.stream.write(f"running: {name}\n")
        self.stream.flush()

    def info(self, text: str) -> None:
        if self.quiet:
            return
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    def check(self, check: Check) -> None:
        if self.quiet:
            return
        mark = ("✓" if check.passed else "✗") if self.tty else ("PASS" if check.passed else "FAIL")
        prefix = "\r\033[K" if self.tty else ""
        self.stream.write(f"{prefix}{mark} {check.name}: {check.detail}\n")
        self.stream.flush()


@contextmanager
def _smoke_database(args: argparse.Namespace, progress: Progress) -> Iterator[str | None]:
    """The database to test: the one given, or a fresh embedded PostgreSQL, migrated."""
    if args.supabase_url:
        yield None
        return
    dsn = _database_url(args)
    if dsn:
        _check_reachable(dsn)
        yield dsn
        return
    from jobforge_sdk.tooling.embedded import embedded_database

    progress.step("starting the embedded PostgreSQL")
    with embedded_database() as url:
        progress.step("applying bootstrap and migrations")
        Migrator(url, echo=lambda _line: None).apply()
        # Setup, not a check of the smoke test: the summary line counts only the checks.
        progress.info(f"database: embedded PostgreSQL, migrated ({url.split('?')[0]})")
        yield url


def _cmd_smoke(args: argparse.Namespace) -> int:
    _flags()  # a bad JOBFORGE_* value is a usage error before anything runs
    progress = Progress(sys.stderr if args.json else sys.stdout, quiet=args.json)
    with _smoke_database(args, progress) as dsn:

        def make_client(flags: FeatureFlags) -> JobForgeClient:
            if dsn is None:
                return JobForgeClient.from_supabase(
                    args.supabase_url, args.supabase_key, flags=flags
                )
            return JobForgeClient.from_postgres(dsn, flags=flags, max_size=4, timeout=15)

        smoke = SmokeTest(
            make_client, enable_all=args.enable_all, on_check=progress.check, on_step=progress.step
        )
        checks = smoke.run()
    if args.json:
        _print_json({"passed": smoke.passed, "checks": [c.as_dict() for c in checks]})
    else:
        if smoke.report:
            print("\n" + smoke.report)
        total = len(checks)
        passed = sum(c.passed for c in checks)
        print(f"{passed} passed, {total - passed} failed")
    return EXIT_OK if smoke.passed else EXIT_FAILED


# -- worker -----------------------------------------------------------------------------


def _load_handlers(spec: str) -> Mapping[str, Handler]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"--app: expected module:attribute, got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app: cannot import {module_name!r}: {exc}") from None
    handlers = getattr(module, attr, None)
    if callable(handlers) and not isinstance(handlers, Mapping):
        handlers = handlers()  # a factory, such as jobforge_sdk.tooling.smoke:demo_handlers
    if not isinstance(handlers, Mapping):
        raise UsageError(
            f"--app: {spec} is not a mapping of job types to handlers (or a function returning one)"
        )
    return handlers


class _JsonFormatter(logging.Formatter):
    FIELDS = (
        "job_id",
        "job_type",
        "tenant_id",
        "trace_id",
        "attempt",
        "duration_ms",
        "status",
        "worker_id",
        "trigger_id",
    )

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        return json.dumps(data, default=str)


def _worker_types(
    values: Sequence[str] | None, handlers: Mapping[str, Handler]
) -> list[str] | None:
    """``--types a,b --types c`` as one list, each type one the app has a handler for:
    a worker that claimed a type it cannot run would only hand its jobs back."""
    if not values:
        return None
    types = [t.strip() for value in values for t in value.split(",") if t.strip()]
    if not types:
        raise UsageError("--types: no job type given")
    missing = [t for t in dict.fromkeys(types) if t not in handlers]
    if missing:
        raise UsageError(
            f"--types: the app has no handler for {', '.join(missing)} "
            f"(it handles {', '.join(sorted(handlers)) or 'nothing'})"
        )
    return types


def _cmd_worker(args: argparse.Namespace) -> int:
    handlers = _load_handlers(args.app)
    if not handlers and not args.scheduler:
        raise UsageError(f"--app: {args.app} has no handlers, so the worker could run nothing")
    types = _worker_types(args.types, handlers)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # A connection for every handler thread (handlers and manifests use the client), one
    # for the claim loop and one for the reporter: none of them waits for another's.
    # The pool warns on every failed reconnection attempt (a line a second per connection
    # while the server is down); the worker says once that the database is gone, and when
    # it is back.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    purges = {
        name: getattr(args, f"purge_{name}") for name in ("jobs", "manifests", "events", "audit")
    }
    if any(age is not None for age in purges.values()) and not args.scheduler:
        raise UsageError("--purge-*: the daily purge is the scheduler's: add --scheduler")
    client = _client(args, pool_size=max(4, args.concurrency + 2), wait=args.wait_for_database)
    with client:
        try:
            scheduler: bool | Scheduler = args.scheduler
            if args.scheduler:
                scheduler = Scheduler(
                    client,
                    purge_jobs=purges["jobs"],
                    purge_manifests=purges["manifests"],
                    purge_events=purges["events"],
                    purge_audit=purges["audit"],
                    purge_batch_size=args.purge_batch_size,
                )
            worker = Worker(
                client,
                handlers,
                types=types,
                concurrency=args.concurrency,
                scheduler=scheduler,
                poll_interval=args.poll_interval,
                shutdown_grace=args.shutdown_grace,
                heartbeat_interval=args.heartbeat_interval,
                reap_interval=args.reap_interval,
                stale_after=timedelta(seconds=args.stale_after),
                worker_id=args.worker_id,
                reconnect_max_delay=args.reconnect_max_delay,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        exporter = _serve_metrics(args, client)
        try:
            worker.run()
        finally:
            if exporter is not None:
                exporter.shutdown()
    return EXIT_OK


def _serve_metrics(args: argparse.Namespace, client: JobForgeClient) -> Any:
    """``--metrics-port``: the Prometheus endpoint, with the queue gauges read through
    the worker's client."""
    if args.metrics_port is None:
        return None
    from jobforge_sdk import metrics

    try:
        server = metrics.serve(args.metrics_port, addr=args.metrics_host, client=client)
    except OSError as exc:
        raise UsageError(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from None
    logging.getLogger("jobforge_sdk.worker").info(
        "metrics on http://%s:%d/metrics", args.metrics_host, server.server_address[1]
    )
    return server


# -- token ------------------------------------------------------------------------------


def _secret(args: argparse.Namespace) -> str:
    secret = args.secret or os.environ.get("JOBFORGE_POLICY_TOKEN_SECRET", "")
    if not secret:
        raise UsageError("no secret: pass --secret or set JOBFORGE_POLICY_TOKEN_SECRET")
    return str(secret)


def _cmd_token_mint(args: argparse.Namespace) -> int:
    try:
        token = generate_policy_token(
            secret=_secret(args),
            kid=args.kid,
            tenant_id=args.tenant_id,
            actor_id=args.actor,
            action=args.action,
            scopes=args.scope or [],
            project_id=args.project_id,
            expires_in=timedelta(
                hours=args.hours if args.hours is not None else _flags().policy_token_expiry_hours
            ),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(token)
    return EXIT_OK


def _cmd_token_verify(args: argparse.Namespace) -> int:
    token = args.token if args.token != "-" else sys.stdin.read().strip()
    result = validate_policy_token(
        token,
        _secret(args),
        action=args.action,
        required_scopes=args.scope or [],
        tenant_id=args.tenant_id,
    )
    if result.allowed:
        print(f"valid: {result.claims.model_dump_json() if result.claims else ''}")
        return EXIT_OK
    print(f"jobforge token verify: refused: {result.reason}", file=sys.stderr)
    return EXIT_USAGE


# -- doctor -----------------------------------------------------------------------------


# doctor reads the private key table directly: it runs with the database owner's URL.
_ACTIVE_KEYS = "select count(*) filter (where retired_at is null) from jobforge_private.policy_keys"
_ENABLED_TEMPLATES = (
    "select template_key from public.jobforge_job_templates where enabled order by 1"
)
# The limits claims keep, as `jobforge limits list` names them (doctor shows them so an
# operator sees why a type does not start: a cap of 0 pauses it).
_LIMITS = """
    select case
        when cost_tier is not null then 'cost tier ' || cost_tier
        else concat_ws(', ', 'type ' || type, 'tenant ' || tenant_id)
      end,
      concat_ws('; ', 'max_running ' || max_running,
                'max_starts ' || max_starts || ' per ' || per_seconds || 's')
    from public.jobforge_limits
    order by cost_tier nulls first, type nulls first, tenant_id nulls first
"""


def _cmd_doctor(args: argparse.Namespace) -> int:
    flags = _flags()
    problems: list[str] = []
    print("feature flags:")
    for key, value in flags.summary().items():
        print(f"  {key}: {value}")
    unknown = unknown_settings()
    print(
        f"settings: {len(unknown)} unknown JOBFORGE_* variable(s)"
        if unknown
        else "settings: every JOBFORGE_* variable is known"
    )
    problems.extend(
        unknown_setting_message(name, suggestion, os.environ.get(name))
        for name, suggestion in unknown
    )
    dsn = _database_url(args)
    if not dsn:
        for problem in problems:  # a misspelt JOBFORGE_DATABASE_URL is why, perhaps
            print(f"problem: {problem}")
        raise ConfigurationError("no database: pass --database-url or set JOBFORGE_DATABASE_URL")
    _check_reachable(dsn)
    print("database: reachable")
    status = Migrator(dsn, echo=lambda _l: None).status()
    if status.pending or status.changed or status.needs_bootstrap:
        problems.append(
            f"migrations not current: pending {[m.version for m in status.pending]}, "
            f"changed {[m.version for m in status.changed]}"
        )
    print(
        f"migrations: applied {', '.join(status.applied) or 'none'}; "
        f"pending {', '.join(m.version for m in status.pending) or 'none'}"
    )
    if not status.pending:
        with psycopg.connect(dsn) as conn:
            keys = conn.execute(_ACTIVE_KEYS).fetchone()
            enabled = [r[0] for r in conn.execute(_ENABLED_TEMPLATES).fetchall()]
            limits = [f"{key} ({caps})" for key, caps in conn.execute(_LIMITS).fetchall()]
        active_keys = int(keys[0]) if keys else 0
        print(f"policy keys: {active_keys} active")
        print(f"templates enabled: {', '.join(enabled) or 'none'}")
        print(f"limits: {'; '.join(limits) or 'none'}")
        if flags.enabled(Feature.ACTION_JOBS) and active_keys == 0:
            problems.append(
                f"{Feature.ACTION_JOBS.env_var} is on but no active policy key is in the database"
            )
    for problem in problems:
        print(f"problem: {problem}")
    print("doctor: ok" if not problems else f"doctor: {len(problems)} problem(s)")
    return EXIT_OK if not problems else EXIT_FAILED


# -- events and jobs --------------------------------------------------------------------


def _rows(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in rows]


def _cell(value: Any, limit: int | None = None) -> str:
    """One value as a table cell: one printable line, ``-`` for nothing, UTC to the
    second, and at most ``limit`` characters (the rest is in ``--json``)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = str(value)
    # One line, and nothing a terminal would act on (a handler's message is not trusted).
    text = "".join(ch if ch.isprintable() else "?" for ch in " ".join(text.split()))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """Left-aligned columns two spaces apart, a header line first when given. The one
    place the CLI formats text tables (``jobs list``, ``jobs show``, ``events list``)."""
    lines = [list(headers)] if headers is not None else []
    lines += [[_cell(value) for value in row] for row in rows]
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _error_text(error: Any, limit: int | None = None) -> str:
    """A job's or an attempt's error as ``Type: message``, else as compact JSON."""
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        text = f"{kind}: {error['message']}" if isinstance(kind, str) and kind else error["message"]
        return _cell(text, limit)
    return _cell(error, limit)


_JOB_COLUMNS = ("id", "tenant", "type", "status", "attempts", "created_at", "last_error")
_ATTEMPT_COLUMNS = ("attempt", "status", "worker", "started_at", "finished_at", "error")
_EVENT_COLUMNS = ("id", "occurred_at", "event_type", "source_app", "subject", "processed")


def _job_line(job: JobRow) -> list[Any]:
    return [
        job.id,
        job.tenant_id,
        _cell(job.type, 40),
        job.status.value,
        f"{job.attempts}/{job.max_attempts}",
        job.created_at,
        _error_text(job.error, 60),
    ]


def _cmd_events_list(args: argparse.Namespace) -> int:
    with _client(args, _flags(events=True)) as client:
        rows = client.list_events(
            tenant_id=args.tenant_id,
            event_type=args.event_type,
            source_app=args.source_app,
            subject_type=args.subject_type,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
    if args.json:
        _print_json(_rows(rows))
    elif not rows:
        print("no events")
    else:
        lines = [
            [
                e.id,
                e.occurred_at,
                _cell(e.event_type, 40),
                e.source_app.value,
                _cell(f"{e.subject_type}:{e.subject_id}" if e.subject_type else None, 40),
                "yes" if e.processed else "no",
            ]
            for e in rows
        ]
        print(_table(lines, _EVENT_COLUMNS))
    return EXIT_OK


def _cmd_jobs_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rows = client.list_jobs(
            tenant_id=args.tenant_id, status=args.status, type=args.type, limit=args.limit
        )
    if args.json:
        _print_json(_rows(rows))
    elif not rows:
        print("no jobs")
    else:
        print(_table([_job_line(job) for job in rows], _JOB_COLUMNS))
    return EXIT_OK


def _cmd_jobs_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get_job(job_id=args.job_id, tenant_id=args.tenant_id)
        if job is None:
            where = f" for tenant {args.tenant_id}" if args.tenant_id else ""
            raise NotFoundError(f"job {args.job_id} not found{where}")
        attempts = client.list_job_attempts(job_id=job.id, tenant_id=job.tenant_id)
    if args.json:
        _print_json({"job": job.model_dump(mode="json"), "attempts": _rows(attempts)})
        return EXIT_OK
    fields = [
        ("id", job.id),
        ("tenant", job.tenant_id),
        ("type", job.type),
        ("status", job.status.value),
        ("attempts", f"{job.attempts}/{job.max_attempts}"),
        ("run_at", job.run_at),
        ("created_at", job.created_at),
        ("started_at", job.started_at),
        ("finished_at", job.finished_at),
        ("locked_by", job.locked_by),
        ("idempotency_key", job.idempotency_key),
        ("error", _error_text(job.error)),
        ("payload", _cell(job.payload, 300)),
    ]
    print(_table(fields))
    print()
    if not attempts:
        print("attempts: none finished yet")
    else:
        print(f"attempts ({len(attempts)}):")
        lines = [
            [
                a.attempt,
                a.status,
                a.worker_id,
                a.started_at,
                a.finished_at,
                _error_text(a.error, 60),
            ]
            for a in attempts
        ]
        print(_table(lines, _ATTEMPT_COLUMNS))
    return EXIT_OK


def _cmd_jobs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel_job(job_id=args.job_id, tenant_id=args.tenant_id)
    _print_json(job.model_dump(mode="json"))
    return EXIT_OK


def _cmd_jobs_retry(args: argparse.Namespace) -> int:
    if args.dead:
        return _retry_dead(args)
    if args.job_id is None:
        raise UsageError("give a job id, or --dead to retry the tenant's dead jobs")
    if args.type is not None or args.limit is not None:
        raise UsageError("--type and --limit go with --dead")
    with _client(args) as client:
        job = client.retry_job(tenant_id=args.tenant_id, job_id=args.job_id, actor_id=args.actor_id)
    if args.json:
        _print_json(job.model_dump(mode="json"))
    else:
        print(f"job {job.id} is queued again (attempts reset, due now)")
    return EXIT_OK


def _retry_dead(args: argparse.Namespace) -> int:
    """Every dead job up to --limit, in calls of at most 1,000 (the RPC's cap, so each is
    one short statement): until a call finds fewer than it asked for. The limit also
    bounds the loop when failing jobs die again while it runs."""
    if args.job_id is not None:
        raise UsageError("give a job id or --dead, not both")
    limit = 1000 if args.limit is None else args.limit
    if limit < 1:
        raise UsageError("--limit: must be at least 1")
    retried: list[uuid.UUID] = []
    with _client(args) as client:
        while len(retried) < limit:
            batch = min(1000, limit - len(retried))
            ids = client.retry_dead_jobs(
                tenant_id=args.tenant_id, type=args.type, limit=batch, actor_id=args.actor_id
            )
            retried.extend(ids)
            if len(ids) < batch:
                break
    if args.json:
        _print_json([str(i) for i in retried])
        return EXIT_OK
    of_type = f" of type {args.type}" if args.type else ""
    print(f"retried {len(retried)} dead job(s){of_type}")
    for job_id in retried:
        print(job_id)
    return EXIT_OK


# -- purge ------------------------------------------------------------------------------


def _cmd_purge(args: argparse.Namespace) -> int:
    problem = purge_usage_problem(args)
    if problem is not None:
        raise UsageError(problem)
    # An administrator's explicit command: the purges run whatever the environment's flags.
    with _client(args, _flags(events=True, audit_logging=True, manifests=True)) as client:
        totals = run_purge(client, args, sys.stderr if args.json else sys.stdout)
    if args.json:
        _print_json(totals)
    return EXIT_OK


# -- mcp --------------------------------------------------------------------------------


def _cmd_mcp(args: argparse.Namespace) -> int:
    # Imported here: the MCP server needs the optional ``mcp`` extra, the rest of the CLI not.
    from jobforge_sdk.tooling.mcp_server import McpScope, require_mcp, serve_stdio

    require_mcp()
    scope = McpScope.from_options(tenant_id=args.tenant_id, claims_json=args.user_jwt_claims)
    with _client(args, _flags()) as client:
        serve_stdio(client, scope)
    return EXIT_OK


# -- dashboard --------------------------------------------------------------------------


def _cmd_dashboard(args: argparse.Namespace) -> int:
    # Imported here: the dashboard needs the optional ``dashboard`` extra.
    try:
        from jobforge_sdk.dashboard.server import DashboardServer, check_bind
        from jobforge_sdk.dashboard.settings import DashboardSettings, claims_tenants
    except ImportError as exc:
        raise ConfigurationError(
            f"the dashboard needs the dashboard extra ({exc.name} is missing): "
            "pip install 'jobforge-sdk[dashboard]'"
        ) from None
    token = args.auth_token or os.environ.get("JOBFORGE_DASHBOARD_TOKEN") or None
    claims: dict[str, Any] | None = None
    if args.user_jwt_claims:
        try:
            claims = json.loads(args.user_jwt_claims)
        except ValueError:
            raise UsageError("--user-jwt-claims: not JSON") from None
        if not isinstance(claims, dict) or not claims_tenants(claims):
            raise UsageError("--user-jwt-claims: an object whose app_metadata names a tenant")
    try:
        settings = DashboardSettings(
            auth_token=token,
            read_only=args.read_only,
            operator=args.operator or f"dashboard:{os.environ.get('USER', 'operator')}",
            tenants=claims_tenants(claims) if claims else None,
            claims=claims,
            refresh_seconds=args.refresh,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Every feature it reads on: the console shows what the database holds, whatever the
    # switches of the apps that write it say (action jobs: nothing to read, and turning
    # them on would ask for a policy-token secret).
    flags = _flags(**{f.value: True for f in Feature if f is not Feature.ACTION_JOBS})
    check_bind(args.host, settings)
    with _client(args, flags) as service:
        client = service.with_claims(claims) if claims else service
        server = DashboardServer(client, settings, host=args.host, port=args.port)
        print(
            f"jobforge dashboard: http://{args.host}:{args.port}/"
            f"{' (read-only)' if settings.read_only else ''}",
            file=sys.stderr,
        )
        server.run()
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _db(parser: argparse.ArgumentParser, *, supabase: bool = False) -> None:
    parser.add_argument("--database-url", help="PostgreSQL URL (default: $JOBFORGE_DATABASE_URL)")
    if supabase:
        parser.add_argument(
            "--supabase-url", help="Supabase project URL (instead of a database URL)"
        )
        parser.add_argument(
            "--supabase-key", help="service role key (default: $SUPABASE_SERVICE_ROLE_KEY)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jobforge", description="JobForge: Postgres-native job queue and execution plane"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    migrate = commands.add_parser("migrate", help="apply supabase/migrations to a database")
    _db(migrate)
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument(
        "--status",
        action="store_true",
        help="list library versions: applied (by which tool), pending, CHANGED, unknown",
    )
    mode.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
    migrate.add_argument(
        "--supabase-project",
        metavar="DIR",
        help="also record each applied file in the Supabase CLI history, under the version "
        "it has in DIR/supabase/migrations",
    )
    migrate.add_argument("--migrations-dir", help=argparse.SUPPRESS)
    migrate.set_defaults(handler=_cmd_migrate)

    bootstrap = commands.add_parser(
        "bootstrap",
        help="create the Supabase roles and auth helpers on plain PostgreSQL "
        "(run before supabase db push there)",
    )
    _db(bootstrap)
    bootstrap.set_defaults(handler=_cmd_bootstrap)

    migrations = commands.add_parser("migrations", help="the library's migration files")
    migrations_commands = migrations.add_subparsers(
        dest="migrations_command", required=True, parser_class=_Parser
    )
    export = migrations_commands.add_parser(
        "export", help="copy them, timestamped, into an app's supabase/migrations"
    )
    export.add_argument("--into", required=True, metavar="DIR", help="<app>/supabase/migrations")
    export.add_argument("--migrations-dir", help=argparse.SUPPRESS)
    export.set_defaults(handler=_cmd_migrations_export)

    smoke = commands.add_parser("smoke", help="run the execution-plane smoke test")
    _db(smoke, supabase=True)
    smoke.add_argument("--json", action="store_true", help="print one JSON document for CI")
    smoke.add_argument("--enable-all", action="store_true", help="turn every flag on for the run")
    smoke.set_defaults(handler=_cmd_smoke)

    worker = commands.add_parser("worker", help="run a worker")
    _db(worker, supabase=True)
    worker.add_argument(
        "--app",
        required=True,
        help="module:attribute: a mapping of job types to handlers, or a function returning one",
    )
    worker.add_argument(
        "--types",
        action="append",
        metavar="TYPE[,TYPE...]",
        help="claim only these job types (repeatable, or comma-separated; each needs a "
        "handler in --app). Default: every type the app has a handler for",
    )
    worker.add_argument("--concurrency", type=int, default=4)
    worker.add_argument("--scheduler", action="store_true", help="also fire cron triggers")
    # The scheduler's daily purge: at most once a day (UTC) across every scheduler of the
    # database, in batches, one log line per batch (docs/operations.md, "Retention").
    worker.add_argument(
        "--purge-jobs", type=duration, metavar="AGE", help="daily: finished jobs older than AGE"
    )
    worker.add_argument(
        "--purge-manifests",
        type=duration,
        metavar="AGE",
        help="daily: manifests of runs finished before AGE",
    )
    worker.add_argument(
        "--purge-events", type=duration, metavar="AGE", help="daily: events older than AGE (days)"
    )
    worker.add_argument(
        "--purge-audit",
        type=duration,
        metavar="AGE",
        help="daily: audit rows older than AGE (days)",
    )
    worker.add_argument(
        "--purge-batch-size",
        type=batch_size,
        default=MAX_PURGE_BATCH,
        metavar="N",
        help=f"rows per purge call (1-{MAX_PURGE_BATCH}, default {MAX_PURGE_BATCH})",
    )
    worker.add_argument("--poll-interval", type=float, default=1.0)
    worker.add_argument("--shutdown-grace", type=float, default=30.0)
    worker.add_argument("--heartbeat-interval", type=float, default=10.0)
    worker.add_argument("--reap-interval", type=float, default=30.0)
    worker.add_argument(
        "--stale-after", type=float, default=120.0, help="seconds without heartbeat = lost"
    )
    worker.add_argument("--worker-id")
    worker.add_argument(
        "--wait-for-database",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="at start, wait up to this long for a database that is down or starting "
        "(default: 60; 0: exit with code 2 at once). Once running, a worker waits for a "
        "lost database for as long as it takes",
    )
    worker.add_argument(
        "--reconnect-max-delay",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="longest wait between two attempts to reach a lost database (default: 1)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on this port (e.g. 9464; 0 picks a free one)",
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of --metrics-port (default: loopback)"
    )
    worker.set_defaults(handler=_cmd_worker)

    token = commands.add_parser("token", help="mint or verify policy tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, parser_class=_Parser)
    mint = token_commands.add_parser("mint", help="print a new policy token")
    mint.add_argument("--tenant-id", type=_uuid, required=True)
    mint.add_argument("--actor", required=True)
    mint.add_argument("--action", required=True, help="the template key")
    mint.add_argument("--scope", action="append", help="a granted scope (repeatable)")
    mint.add_argument("--project-id")
    mint.add_argument("--kid", default=os.environ.get("JOBFORGE_POLICY_TOKEN_KID", "default"))
    mint.add_argument(
        "--hours", type=float, help="lifetime (default: $JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS, 1)"
    )
    mint.add_argument("--secret", help="default: $JOBFORGE_POLICY_TOKEN_SECRET")
    mint.set_defaults(handler=_cmd_token_mint)
    verify = token_commands.add_parser("verify", help="check a token (exit 0 when valid)")
    verify.add_argument("token", help="the token, or - to read it from stdin")
    verify.add_argument("--tenant-id", type=_uuid, required=True)
    verify.add_argument("--action", required=True)
    verify.add_argument("--scope", action="append", help="a required scope (repeatable)")
    verify.add_argument("--secret", help="default: $JOBFORGE_POLICY_TOKEN_SECRET")
    verify.set_defaults(handler=_cmd_token_verify)

    doctor = commands.add_parser("doctor", help="check configuration and database")
    _db(doctor)
    doctor.set_defaults(handler=_cmd_doctor)

    events = commands.add_parser("events", help="read events")
    events_commands = events.add_subparsers(
        dest="events_command", required=True, parser_class=_Parser
    )
    events_list = events_commands.add_parser("list", help="list a tenant's events, newest first")
    _db(events_list, supabase=True)
    events_list.add_argument("--tenant-id", type=_uuid, required=True)
    events_list.add_argument("--event-type")
    events_list.add_argument("--source-app")
    events_list.add_argument("--subject-type")
    events_list.add_argument(
        "--since", type=_moment, help="occurred at or after (ISO 8601; no zone: UTC)"
    )
    events_list.add_argument("--until", type=_moment, help="occurred before (ISO 8601)")
    events_list.add_argument("--limit", type=int, default=50)
    events_list.add_argument("--json", action="store_true", help="print JSON, not a table")
    events_list.set_defaults(handler=_cmd_events_list)

    from jobforge_sdk.tooling.cli_connectors import add_connectors_commands  # it imports cli

    add_connectors_commands(commands)

    from jobforge_sdk.tooling.cli_limits import add_limits_commands  # it imports cli

    add_limits_commands(commands)

    jobs = commands.add_parser("jobs", help="list, show, cancel or retry jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, parser_class=_Parser)
    jobs_list = jobs_commands.add_parser("list", help="list jobs, newest first (a table)")
    _db(jobs_list, supabase=True)
    jobs_list.add_argument(
        "--tenant-id", type=_uuid, help="only this tenant's jobs (default: every tenant)"
    )
    jobs_list.add_argument("--status", help="queued, running, succeeded, dead, canceled")
    jobs_list.add_argument("--type")
    jobs_list.add_argument("--limit", type=int, default=50)
    jobs_list.add_argument("--json", action="store_true", help="print JSON, not a table")
    jobs_list.set_defaults(handler=_cmd_jobs_list)
    show = jobs_commands.add_parser("show", aliases=["get"], help="a job and its finished attempts")
    _db(show, supabase=True)
    show.add_argument("job_id", type=_uuid)
    show.add_argument("--tenant-id", type=_uuid, help="the job's tenant (default: any tenant)")
    show.add_argument("--json", action="store_true", help='print {"job": ..., "attempts": [...]}')
    show.set_defaults(handler=_cmd_jobs_show)
    cancel = jobs_commands.add_parser("cancel", help="cancel a queued or running job")
    _db(cancel, supabase=True)
    cancel.add_argument("job_id", type=_uuid)
    cancel.add_argument("--tenant-id", type=_uuid, required=True)
    cancel.set_defaults(handler=_cmd_jobs_cancel)
    retry = jobs_commands.add_parser(
        "retry",
        help="put a dead job (or with --dead, every dead job) back in the queue, attempts reset",
    )
    _db(retry, supabase=True)
    retry.add_argument("job_id", type=_uuid, nargs="?", help="the job (or --dead)")
    retry.add_argument("--tenant-id", type=_uuid, required=True)
    retry.add_argument("--dead", action="store_true", help="every dead job of the tenant")
    retry.add_argument("--type", help="with --dead: only jobs of this type")
    retry.add_argument(
        "--limit", type=int, help="with --dead: at most this many jobs (default 1000)"
    )
    retry.add_argument("--actor-id", help="who to record in the audit trail")
    retry.add_argument("--json", action="store_true", help="print the job (or the ids) as JSON")
    retry.set_defaults(handler=_cmd_jobs_retry)

    purge = commands.add_parser(
        "purge",
        help="delete finished jobs, manifests, events and audit rows older than an age "
        "(e.g. --jobs 30d --events 30d --audit 365d)",
    )
    _db(purge, supabase=True)
    add_purge_arguments(purge)
    purge.set_defaults(handler=_cmd_purge)

    mcp = commands.add_parser("mcp", help="serve the JobForge tools to AI agents over MCP (stdio)")
    _db(mcp)
    mcp.add_argument("--tenant-id", type=_uuid, help="the one tenant every tool acts for")
    mcp.add_argument(
        "--user-jwt-claims",
        metavar="JSON",
        help="act as this user (JWT claims as JSON; default: $JOBFORGE_MCP_CLAIMS)",
    )
    mcp.set_defaults(handler=_cmd_mcp)

    dashboard = commands.add_parser("dashboard", help="serve the operator console (web)")
    _db(dashboard)
    dashboard.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8765)
    dashboard.add_argument(
        "--auth-token",
        help="required on every request (default: $JOBFORGE_DASHBOARD_TOKEN); "
        "mandatory for any bind but loopback",
    )
    dashboard.add_argument("--read-only", action="store_true", help="no retry, cancel or enable")
    dashboard.add_argument("--operator", help="the actor audit rows name for this console's writes")
    dashboard.add_argument(
        "--user-jwt-claims",
        metavar="JSON",
        help="show only what this user may see (JWT claims as JSON)",
    )
    dashboard.add_argument(
        "--refresh", type=float, default=5.0, help="seconds between refreshes (0: off)"
    )
    dashboard.set_defaults(handler=_cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    name = " ".join(
        str(v) for v in (args.command, getattr(args, f"{args.command}_command", None)) if v
    )
    try:
        return handler(args)
    except JobForgeError as exc:
        print(f"jobforge {name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jobforge {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
