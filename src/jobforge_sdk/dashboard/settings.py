"""What a dashboard is allowed to do, and the bind rule that decides whether it needs a
token: a console that can retry and cancel jobs must not be reachable from another
machine without a secret."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

__all__ = ["DashboardSettings", "claims_tenants", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Only a loopback address (or ``localhost``) keeps the dashboard on this machine;
    ``0.0.0.0``, ``::`` and any name but ``localhost`` may be reached from elsewhere."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def claims_tenants(claims: Mapping[str, Any]) -> tuple[UUID, ...]:
    """The tenants a user's JWT claims grant, read where the database reads them
    (``app_metadata.tenant_id`` and ``app_metadata.tenant_ids``)."""
    meta = claims.get("app_metadata")
    if not isinstance(meta, Mapping):
        return ()
    found: list[UUID] = []
    values: list[Any] = [meta.get("tenant_id")]
    many = meta.get("tenant_ids")
    if isinstance(many, list):
        values.extend(many)
    for value in values:
        try:
            tenant = UUID(str(value))
        except ValueError:
            continue
        if tenant not in found:
            found.append(tenant)
    return tuple(found)


@dataclass(frozen=True)
class DashboardSettings:
    """``tenants`` is ``None`` for a service-role dashboard (every tenant); a dashboard
    started with a user's claims lists the claims' tenants and the database decides the
    rest. ``claims`` are those claims: write actions then run as that user."""

    auth_token: str | None = None
    read_only: bool = False
    operator: str = "dashboard"
    tenants: tuple[UUID, ...] | None = None
    claims: Mapping[str, Any] | None = None
    refresh_seconds: float = 5.0
    page_size: int = 100

    def __post_init__(self) -> None:
        if self.auth_token is not None and len(self.auth_token) < 16:
            raise ValueError("auth token: must be at least 16 characters")
        if not self.operator.strip():
            raise ValueError("operator: must not be empty")
        if self.refresh_seconds < 0:
            raise ValueError("refresh_seconds: must not be negative")

    @property
    def service_role(self) -> bool:
        return self.claims is None
