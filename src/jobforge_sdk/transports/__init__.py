"""Transports: how a named RPC call reaches the database."""

from __future__ import annotations

from .base import AsyncTransport, Transport
from .postgres import AsyncPostgresTransport, PostgresTransport
from .supabase import AsyncSupabaseTransport, SupabaseTransport

__all__ = [
    "AsyncPostgresTransport",
    "AsyncSupabaseTransport",
    "AsyncTransport",
    "PostgresTransport",
    "SupabaseTransport",
    "Transport",
]
