"""The one small protocol every transport implements: call an RPC by name with named
arguments (JSON-ready values) and return its JSON answer, or raise a ``JobForgeError``.

One optional capability beside it: ``listen_conninfo()`` says where a worker can
``LISTEN`` for new jobs (a direct PostgreSQL transport), or ``None`` where it cannot (HTTP),
and the worker then polls. Asking the transport keeps the worker from guessing by type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["AsyncTransport", "Transport"]


@runtime_checkable
class Transport(Protocol):
    def call(self, fn: str, args: Mapping[str, Any]) -> Any: ...

    def close(self) -> None: ...

    def listen_conninfo(self) -> str | None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    async def call(self, fn: str, args: Mapping[str, Any]) -> Any: ...

    async def close(self) -> None: ...

    def listen_conninfo(self) -> str | None: ...
