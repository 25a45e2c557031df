"""``JobForgeClient``: the synchronous client. One method per RPC, named after it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from jobforge_sdk._client._base import ClientBase, SyncMethod
from jobforge_sdk._operations import connectors, limits, plane, queue
from jobforge_sdk._operations._machinery import RpcCall, read_answer
from jobforge_sdk._transports.base import Transport
from jobforge_sdk._transports.postgres import PostgresTransport
from jobforge_sdk.errors import ConfigurationError
from jobforge_sdk.flags import FeatureFlags

if TYPE_CHECKING:  # supabase-py costs ~0.6 s to import: only Supabase users pay for it
    import httpx
    from supabase import Client

__all__ = ["JobForgeClient"]

T = TypeVar("T")


def env_connection() -> tuple[str, str | None]:
    """``("postgres", dsn)`` or ``(url, key)`` from the environment, as ``from_env`` reads it."""
    dsn = os.environ.get("JOBFORGE_DATABASE_URL", "").strip()
    if dsn:
        return "postgres", dsn
    url = os.environ.get("SUPABASE_URL", "").strip()
    key = os.environ.get("SUPABASE_SERVICE_ROLE_KEY", "").strip()
    if url and key:
        return url, key
    raise ConfigurationError(
        "no database configured: set JOBFORGE_DATABASE_URL, or SUPABASE_URL and "
        "SUPABASE_SERVICE_ROLE_KEY"
    )


class JobForgeClient(ClientBase):
    """Calls the JobForge RPCs through a transport (direct Postgres or Supabase).

    Build it with ``from_postgres``, ``from_supabase``, ``from_supabase_client`` or
    ``from_env``; use it as a context manager so its pool or HTTP client is closed.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        flags: FeatureFlags | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(flags=flags, strict=strict)
        self.transport = transport

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_postgres(
        cls,
        dsn: str,
        *,
        flags: FeatureFlags | None = None,
        strict: bool = False,
        **pool_options: Any,
    ) -> JobForgeClient:
        """A client on a psycopg pool; ``pool_options`` go to ``psycopg_pool.ConnectionPool``."""
        return cls(PostgresTransport.connect(dsn, **pool_options), flags=flags, strict=strict)

    @classmethod
    def from_supabase(
        cls,
        url: str,
        key: str,
        *,
        access_token: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        flags: FeatureFlags | None = None,
        strict: bool = False,
    ) -> JobForgeClient:
        """A client that calls PostgREST's ``/rpc`` through the project's API gateway.

        ``key`` is the project's API key: the service-role key for a backend, or the anon
        key with ``access_token`` (a signed-in user's JWT) for calls that run as that user,
        under the tenant checks. ``timeout`` defaults to 30 s (10 s to connect)."""
        from jobforge_sdk._transports.supabase import SupabaseTransport

        return cls(
            SupabaseTransport.connect(url, key, access_token=access_token, timeout=timeout),
            flags=flags,
            strict=strict,
        )

    @classmethod
    def from_supabase_client(
        cls, client: Client, *, flags: FeatureFlags | None = None, strict: bool = False
    ) -> JobForgeClient:
        """Reuse an existing supabase-py client (its HTTP client stays the caller's)."""
        from jobforge_sdk._transports.supabase import SupabaseTransport

        return cls(SupabaseTransport(client), flags=flags, strict=strict)

    @classmethod
    def from_env(cls, *, strict: bool = False) -> JobForgeClient:
        """``JOBFORGE_DATABASE_URL``, else ``SUPABASE_URL`` + ``SUPABASE_SERVICE_ROLE_KEY``;
        flags from ``JOBFORGE_*``."""
        flags = FeatureFlags()
        kind, value = env_connection()
        if kind == "postgres" and value:
            return cls.from_postgres(value, flags=flags, strict=strict)
        return cls.from_supabase(kind, value or "", flags=flags, strict=strict)

    def with_claims(
        self, claims: Mapping[str, Any], *, role: str = "authenticated"
    ) -> JobForgeClient:
        """A client on the same pool whose calls run as ``role`` with these JWT claims,
        exactly as PostgREST would run them (RLS and tenant checks apply)."""
        if not isinstance(self.transport, PostgresTransport):
            raise ConfigurationError(
                "with_claims needs a direct Postgres client; through Supabase, build a client "
                "with the user's JWT instead"
            )
        return JobForgeClient(
            self.transport.with_claims(claims, role=role), flags=self.flags, strict=self.strict
        )

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> JobForgeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: RpcCall[T]) -> T:
        return read_answer(call, self.transport.call(call.fn, call.args))

    # -- the core queue -----------------------------------------------------------------

    enqueue_job = SyncMethod(queue.enqueue_job)
    enqueue_jobs = SyncMethod(queue.enqueue_jobs)
    enqueue_job_ids = SyncMethod(queue.enqueue_job_ids)
    claim_jobs = SyncMethod(queue.claim_jobs)
    heartbeat_job = SyncMethod(queue.heartbeat_job)
    heartbeat_jobs = SyncMethod(queue.heartbeat_jobs)
    complete_job = SyncMethod(queue.complete_job)
    complete_jobs = SyncMethod(queue.complete_jobs)
    release_job = SyncMethod(queue.release_job)
    reap_stale_jobs = SyncMethod(queue.reap_stale_jobs)
    purge_finished_jobs = SyncMethod(queue.purge_finished_jobs)
    cancel_job = SyncMethod(queue.cancel_job)
    retry_job = SyncMethod(queue.retry_job)
    retry_dead_jobs = SyncMethod(queue.retry_dead_jobs)
    reschedule_job = SyncMethod(queue.reschedule_job)
    list_jobs = SyncMethod(queue.list_jobs)
    get_job = SyncMethod(queue.get_job)
    get_result = SyncMethod(queue.get_result)
    list_job_attempts = SyncMethod(queue.list_job_attempts)

    # -- the execution plane (each method behind its feature flag) -----------------------

    submit_event = SyncMethod(plane.submit_event)
    submit_events = SyncMethod(plane.submit_events)
    submit_event_ids = SyncMethod(plane.submit_event_ids)
    list_events = SyncMethod(plane.list_events)
    purge_expired_events = SyncMethod(plane.purge_expired_events)
    list_templates = SyncMethod(plane.list_templates)
    get_template = SyncMethod(plane.get_template)
    set_template_enabled = SyncMethod(plane.set_template_enabled)
    request_job = SyncMethod(plane.request_job)
    verify_policy_token = SyncMethod(plane.verify_policy_token)
    add_policy_key = SyncMethod(plane.add_policy_key)
    retire_policy_key = SyncMethod(plane.retire_policy_key)
    create_manifest = SyncMethod(plane.create_manifest)
    get_run_manifest = SyncMethod(plane.get_run_manifest)
    purge_manifests = SyncMethod(plane.purge_manifests)
    create_cron_trigger = SyncMethod(plane.create_cron_trigger)
    create_event_trigger = SyncMethod(plane.create_event_trigger)
    list_triggers = SyncMethod(plane.list_triggers)
    set_trigger_enabled = SyncMethod(plane.set_trigger_enabled)
    set_trigger_misfire_policy = SyncMethod(plane.set_trigger_misfire_policy)
    delete_trigger = SyncMethod(plane.delete_trigger)
    fire_cron_trigger = SyncMethod(plane.fire_cron_trigger)
    list_audit_logs = SyncMethod(plane.list_audit_logs)
    purge_audit_logs = SyncMethod(plane.purge_audit_logs)
    set_connector_config = SyncMethod(connectors.set_connector_config)
    list_connector_configs = SyncMethod(connectors.list_connector_configs)
    delete_connector_config = SyncMethod(connectors.delete_connector_config)
    set_limit = SyncMethod(limits.set_limit)
    list_limits = SyncMethod(limits.list_limits)
    delete_limit = SyncMethod(limits.delete_limit)

    # -- internal: the worker's and the scheduler's calls, not part of the client's API ---

    _template_of_job = SyncMethod(plane.template_of_job)
    _finish_jobs = SyncMethod(queue.finish_jobs)
    _list_cron_triggers = SyncMethod(plane.list_cron_triggers)
    _claim_daily_purge = SyncMethod(plane.claim_daily_purge)
