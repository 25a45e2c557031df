"""Handlers the worker tests run: `jobforge worker --app tests.support.worker_app:handlers`."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from jobforge_sdk.runtime.registry import JobContext, JobRegistry

handlers = JobRegistry()


@handlers.handler("test.echo")
def echo(ctx: JobContext) -> Any:
    return {"echo": ctx.payload, "worker": ctx.worker_id}


@handlers.handler("test.async_echo")
async def async_echo(ctx: JobContext) -> Any:
    await asyncio.sleep(0.001)
    return {"echo": ctx.payload}


@handlers.handler("test.sleep")
def sleep(ctx: JobContext) -> Any:
    """Sleeps ``payload.seconds``; in a process started with JOBFORGE_TEST_SLOW=1 it sleeps
    ``payload.slow_seconds`` instead (the worker that is about to be killed)."""
    payload = ctx.payload if isinstance(ctx.payload, dict) else {}
    key = "slow_seconds" if os.environ.get("JOBFORGE_TEST_SLOW") == "1" else "seconds"
    seconds = float(payload.get(key, payload.get("seconds", 0)))  # type: ignore[arg-type]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return {"slept": seconds, "worker": ctx.worker_id}


@handlers.handler("test.fail")
def fail(ctx: JobContext) -> Any:
    raise RuntimeError("boom: could not reach postgresql://admin:hunter2@db.internal/prod")
