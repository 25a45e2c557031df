"""Transports: how a named RPC call reaches the database.

The Supabase transports are imported on first use: supabase-py is slow to import and a
direct-Postgres user should not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import AsyncTransport, Transport
from .postgres import AsyncPostgresTransport, PostgresTransport

if TYPE_CHECKING:
    from .supabase import AsyncSupabaseTransport, SupabaseTransport

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
        from . import supabase

        return getattr(supabase, name)
    raise AttributeError(name)
