"""Transports: how a named RPC call reaches the database.

The Supabase transports are imported on first use: supabase-py is slow to import and a
direct-Postgres user should not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobforge_sdk._transports.base import AsyncTransport, Transport
from jobforge_sdk._transports.postgres import AsyncPostgresTransport, PostgresTransport

if TYPE_CHECKING:
    from jobforge_sdk._transports.supabase import AsyncSupabaseTransport, SupabaseTransport

__all__ = [
    "AsyncPostgresTransport",
    "AsyncSupabaseTransport",
    "AsyncTransport",
    "PostgresTransport",
    "SupabaseTransport",
    "Transport",
]


def __getattr__(name: str) -> Any:
    if name in ("SupabaseTransport", "AsyncSupabaseTransport"):
        from jobforge_sdk._transports import supabase

        return getattr(supabase, name)
    raise AttributeError(name)
