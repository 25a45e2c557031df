"""Handlers for the timeout tests of a `jobforge worker` process:
`jobforge worker --app tests.support.timeout_app:handlers`."""

from __future__ import annotations

import time
from typing import Any

from jobforge_sdk.runtime.registry import JobContext, JobRegistry

handlers = JobRegistry()


@handlers.handler("timeout.hang")
def hang(ctx: JobContext) -> Any:
    """A sync handler that never returns in time: nothing can stop it but the process's
    end (the worker abandons its thread at the job's timeout)."""
    time.sleep(3600)
    return {"never": True}
