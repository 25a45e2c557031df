"""``AsyncJobForgeClient``: the asyncio client, built from the same operations as
``JobForgeClient`` (see ``_client/_base.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from jobforge_sdk._client._base import AsyncMethod, ClientBase
from jobforge_sdk._client.sync import env_connection
from jobforge_sdk._operations import connectors, limits, plane, queue
from jobforge_sdk._operations._machinery import RpcCall, read_answer
from jobforge_sdk._transports.base import AsyncTransport
from jobforge_sdk._transports.postgres import AsyncPostgresTransport
from jobforge_sdk.errors import ConfigurationError
from jobforge_sdk.flags import FeatureFlags

if TYPE_CHECKING:  # imported lazily: see _client/sync.py
    import httpx
    from supabase import AsyncClient

__all__ = ["AsyncJobForgeClient"]

T = TypeVar("T")


class AsyncJobForgeClient(ClientBase):
    """Same methods as ``JobForgeClient``, awaited. Use ``async with``."""

    def __init__(
        self,
        transport: AsyncTransport,
        *,
        flags: FeatureFlags | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(flags=flags, strict=strict)
        self.transport = transport

    @classmethod
    def from_postgres(
        cls,
        dsn: str,
        *,
        flags: FeatureFlags | None = None,
        strict: bool = False,
        **pool_options: Any,
    ) -> AsyncJobForgeClient:
        """The pool opens on the first call, so this needs no running event loop."""
        return cls(AsyncPostgresTransport.connect(dsn, **pool_options), flags=flags, strict=strict)

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
    ) -> AsyncJobForgeClient:
        """The async twin of ``JobForgeClient.from_supabase`` (same ``key`` and
        ``access_token``)."""
        from jobforge_sdk._transports.supabase import AsyncSupabaseTransport

        return cls(
            AsyncSupabaseTransport.connect(url, key, access_token=access_token, timeout=timeout),
            flags=flags,
            strict=strict,
        )

    @classmethod
    def from_supabase_client(
        cls, client: AsyncClient, *, flags: FeatureFlags | None = None, strict: bool = False
    ) -> AsyncJobForgeClient:
        from jobforge_sdk._transports.supabase import AsyncSupabaseTransport

        return cls(AsyncSupabaseTransport(client), flags=flags, strict=strict)

    @classmethod
    def from_env(cls, *, strict: bool = False) -> AsyncJobForgeClient:
        flags = FeatureFlags()
        kind, value = env_connection()
        if kind == "postgres" and value:
            return cls.from_postgres(value, flags=flags, strict=strict)
        return cls.from_supabase(kind, value or "", flags=flags, strict=strict)

    def with_claims(
        self, claims: Mapping[str, Any], *, role: str = "authenticated"
    ) -> AsyncJobForgeClient:
        if not isinstance(self.transport, AsyncPostgresTransport):
            raise ConfigurationError(
                "with_claims needs a direct Postgres client; through Supabase, build a client "
                "with the user's JWT instead"
            )
        return AsyncJobForgeClient(
            self.transport.with_claims(claims, role=role), flags=self.flags, strict=self.strict
        )

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncJobForgeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self, call: RpcCall[T]) -> T:
        return read_answer(call, await self.transport.call(call.fn, call.args))

    # -- the core queue -----------------------------------------------------------------

    enqueue_job = AsyncMethod(queue.enqueue_job)
    enqueue_jobs = AsyncMethod(queue.enqueue_jobs)
    enqueue_job_ids = AsyncMethod(queue.enqueue_job_ids)
    claim_jobs = AsyncMethod(queue.claim_jobs)
    heartbeat_job = AsyncMethod(queue.heartbeat_job)
    heartbeat_jobs = AsyncMethod(queue.heartbeat_jobs)
    complete_job = AsyncMethod(queue.complete_job)
    complete_jobs = AsyncMethod(queue.complete_jobs)
    release_job = AsyncMethod(queue.release_job)
    reap_stale_jobs = AsyncMethod(queue.reap_stale_jobs)
    purge_finished_jobs = AsyncMethod(queue.purge_finished_jobs)
    cancel_job = AsyncMethod(queue.cancel_job)
    retry_job = AsyncMethod(queue.retry_job)
    retry_dead_jobs = AsyncMethod(queue.retry_dead_jobs)
    reschedule_job = AsyncMethod(queue.reschedule_job)
    list_jobs = AsyncMethod(queue.list_jobs)
    get_job = AsyncMethod(queue.get_job)
    get_result = AsyncMethod(queue.get_result)
    list_job_attempts = AsyncMethod(queue.list_job_attempts)

    # -- the execution plane (each method behind its feature flag) -----------------------

    submit_event = AsyncMethod(plane.submit_event)
    submit_events = AsyncMethod(plane.submit_events)
    submit_event_ids = AsyncMethod(plane.submit_event_ids)
    list_events = AsyncMethod(plane.list_events)
    purge_expired_events = AsyncMethod(plane.purge_expired_events)
    list_templates = AsyncMethod(plane.list_templates)
    get_template = AsyncMethod(plane.get_template)
    set_template_enabled = AsyncMethod(plane.set_template_enabled)
    request_job = AsyncMethod(plane.request_job)
    verify_policy_token = AsyncMethod(plane.verify_policy_token)
    add_policy_key = AsyncMethod(plane.add_policy_key)
    retire_policy_key = AsyncMethod(plane.retire_policy_key)
    create_manifest = AsyncMethod(plane.create_manifest)
    get_run_manifest = AsyncMethod(plane.get_run_manifest)
    purge_manifests = AsyncMethod(plane.purge_manifests)
    create_cron_trigger = AsyncMethod(plane.create_cron_trigger)
    create_event_trigger = AsyncMethod(plane.create_event_trigger)
    list_triggers = AsyncMethod(plane.list_triggers)
    set_trigger_enabled = AsyncMethod(plane.set_trigger_enabled)
    set_trigger_misfire_policy = AsyncMethod(plane.set_trigger_misfire_policy)
    delete_trigger = AsyncMethod(plane.delete_trigger)
    fire_cron_trigger = AsyncMethod(plane.fire_cron_trigger)
    list_audit_logs = AsyncMethod(plane.list_audit_logs)
    purge_audit_logs = AsyncMethod(plane.purge_audit_logs)
    set_connector_config = AsyncMethod(connectors.set_connector_config)
    list_connector_configs = AsyncMethod(connectors.list_connector_configs)
    delete_connector_config = AsyncMethod(connectors.delete_connector_config)
    set_limit = AsyncMethod(limits.set_limit)
    list_limits = AsyncMethod(limits.list_limits)
    delete_limit = AsyncMethod(limits.delete_limit)

    # -- internal: the worker's and the scheduler's calls, not part of the client's API ---

    _template_of_job = AsyncMethod(plane.template_of_job)
    _finish_jobs = AsyncMethod(queue.finish_jobs)
    _list_cron_triggers = AsyncMethod(plane.list_cron_triggers)
    _claim_daily_purge = AsyncMethod(plane.claim_daily_purge)
