"""Every read the dashboard makes, through the client's RPC methods only, so a dashboard
started with a user's claims sees exactly what that user may see (the database decides).

A service-role dashboard may list the jobs of every tenant (``tenant_id=None``); the
per-tenant RPCs (events, triggers, attempts) are then asked for each tenant the recent
jobs name. A user's dashboard asks for each tenant of its claims.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.dashboard.settings import DashboardSettings
from jobforge_sdk.dashboard.stats import LIST_CAP, tenant_ids
from jobforge_sdk.errors import NotFoundError, PermissionDeniedError
from jobforge_sdk.models.jobs import JobRow, JobStatus

__all__ = ["Reader"]

T = TypeVar("T")
MAX_TENANTS = 25


class Reader:
    def __init__(self, client: JobForgeClient, settings: DashboardSettings) -> None:
        self.client = client
        self.settings = settings
        self._known: list[UUID] | None = None

    # -- tenants --------------------------------------------------------------------------

    def known_tenants(self) -> list[UUID]:
        """The tenants a picker offers: the claims' tenants, or for the service role the
        tenants of the newest jobs (there is no RPC listing tenants)."""
        if self.settings.tenants is not None:
            return list(self.settings.tenants)
        if self._known is None:
            recent = self.client.list_jobs(tenant_id=None, limit=LIST_CAP)
            self._known = tenant_ids(recent)[:MAX_TENANTS]
        return self._known

    def scope(self, tenant: UUID | None) -> list[UUID]:
        """The tenants a per-tenant read asks for: the chosen one, else every known one."""
        return [tenant] if tenant is not None else self.known_tenants()

    def _merged(
        self, tenant: UUID | None, read: Callable[[UUID], list[T]], key: Callable[[T], datetime]
    ) -> list[T]:
        rows: list[T] = []
        for one in self.scope(tenant):
            rows.extend(read(one))
        rows.sort(key=key, reverse=True)
        return rows

    # -- jobs -----------------------------------------------------------------------------

    def jobs(
        self,
        tenant: UUID | None,
        *,
        status: JobStatus | None = None,
        type: str | None = None,
        limit: int = 100,
    ) -> list[JobRow]:
        if tenant is None and self.settings.service_role:
            return self.client.list_jobs(tenant_id=None, status=status, type=type, limit=limit)
        rows = self._merged(
            tenant,
            lambda t: self.client.list_jobs(tenant_id=t, status=status, type=type, limit=limit),
            lambda job: job.created_at,
        )
        return rows[:limit]

    def status_lists(self, tenant: UUID | None) -> dict[JobStatus, list[JobRow]]:
        return {status: self.jobs(tenant, status=status, limit=LIST_CAP) for status in JobStatus}

    def job(self, job_id: UUID) -> JobRow | None:
        """The job, if this dashboard may see it; ``None`` for another tenant's id."""
        if self.settings.service_role:
            return self.client.get_job(job_id=job_id, tenant_id=None)
        for tenant in self.known_tenants():
            try:
                job = self.client.get_job(job_id=job_id, tenant_id=tenant)
            except (NotFoundError, PermissionDeniedError):
                continue
            if job is not None:
                return job
        return None

    def attempts(self, job: JobRow) -> Sequence[object]:
        return self.client.list_job_attempts(job_id=job.id, tenant_id=job.tenant_id)

    def manifest(self, job: JobRow) -> object | None:
        try:
            return self.client.get_run_manifest(run_id=job.id, tenant_id=job.tenant_id)
        except NotFoundError:
            return None
