"""A transport for clients that are built but must never reach a database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NoNetwork:
    """Fails the test on any call: for a worker or client that is built but never run."""

    def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        raise AssertionError(f"unexpected call of {fn}")

    def close(self) -> None:
        pass

    def listen_conninfo(self) -> str | None:
        return None
