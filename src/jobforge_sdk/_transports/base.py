"""The one small protocol every transport implements: call an RPC by name with named
arguments (JSON-ready values) and return its JSON answer, or raise a ``JobForgeError``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["AsyncTransport", "Transport"]


@runtime_checkable
class Transport(Protocol):
    def call(self, fn: str, args: Mapping[str, Any]) -> Any: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    async def call(self, fn: str, args: Mapping[str, Any]) -> Any: ...

    async def close(self) -> None: ...
