"""Handlers of job types, and the context a handler receives.

Apps declare handlers with a decorator on a ``JobRegistry`` (or pass a plain dict); the
worker looks the job's type up and calls the handler with a ``JobContext``. A handler may
be a plain function (run in a worker thread) or a coroutine function.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import JsonValue

from jobforge_sdk.models.jobs import JobRow
from jobforge_sdk.models.manifests import ArtifactOutput

__all__ = ["Handler", "JobContext", "JobRegistry"]

Handler = Callable[["JobContext"], JsonValue] | Callable[["JobContext"], Awaitable[JsonValue]]


@dataclass
class JobContext:
    """What a handler knows about its job, and where it puts what it produced."""

    job: JobRow
    worker_id: str
    heartbeat: Callable[[], None] = field(repr=False)
    outputs: list[ArtifactOutput] = field(default_factory=list)
    metrics: dict[str, JsonValue] = field(default_factory=dict)
    tool_versions: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        return self.job.payload

    @property
    def tenant_id(self) -> UUID:
        return self.job.tenant_id

    @property
    def template_key(self) -> str | None:
        value = self.job.payload.get("template_key") if isinstance(self.job.payload, dict) else None
        return value if isinstance(value, str) else None

    @property
    def inputs(self) -> dict[str, JsonValue]:
        """Template inputs for ``autopilot.*`` jobs; the whole payload otherwise."""
        payload = self.job.payload
        if self.template_key is not None and isinstance(payload, dict):
            inputs = payload.get("inputs")
            return inputs if isinstance(inputs, dict) else {}
        return payload if isinstance(payload, dict) else {}

    @property
    def trace_id(self) -> str | None:
        payload = self.job.payload
        value = payload.get("trace_id") if isinstance(payload, dict) else None
        return value if isinstance(value, str) else None

    def add_output(self, output: ArtifactOutput) -> None:
        self.outputs.append(output)


class JobRegistry(Mapping[str, Handler]):
    """``@registry.handler("type")`` collects handlers; the registry is the worker's map."""

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for job_type, fn in (handlers or {}).items():
            self.register(job_type, fn)

    def register(self, job_type: str, fn: Handler) -> None:
        if not job_type or len(job_type) > 255:
            raise ValueError("job_type: must be 1..255 characters")
        if job_type in self._handlers:
            raise ValueError(f"job_type: a handler for {job_type!r} is already registered")
        if not callable(fn):
            raise TypeError(f"handler for {job_type!r} is not callable")
        self._handlers[job_type] = fn

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(job_type, fn)
            return fn

        return decorate

    def __getitem__(self, job_type: str) -> Handler:
        return self._handlers[job_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def call_handler(fn: Handler, ctx: JobContext) -> Any:
    """Run a sync or async handler to completion in the current (worker) thread."""
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(ctx))
    result = fn(ctx)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(value: Awaitable[Any]) -> Any:
    return await value
