"""The handler of the fault tests: `jobforge worker --app tests.support.fault_app:handlers`.

``fault.record`` writes one row per execution into ``fault_executions`` of the database
named by ``JOBFORGE_FAULT_DB`` (its own connection, one per worker thread), then works for
``payload.seconds`` and returns the execution's id, so a test can tell every execution of
a job, and which of them completed it, whatever happened to the worker or the server in
between.

The row is written before the work, on a connection of its own, committed at once: an
execution cut short by a SIGKILL is still counted. When the server is down, the write is
retried until it is back (the row carries the execution's own id, so a retry whose first
try did commit adds nothing): a restart must not make an execution vanish from the count.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

import psycopg

from jobforge_sdk.runtime.registry import JobContext, JobRegistry

TABLE = """
create table if not exists fault_executions (
  execution_id uuid primary key,
  job_id uuid not null,
  worker_id text not null,
  pid integer not null,
  attempt integer not null,
  started_at timestamptz not null default clock_timestamp()
)
"""

handlers = JobRegistry()
_local = threading.local()


def _record(execution_id: uuid.UUID, ctx: JobContext) -> None:
    deadline = time.monotonic() + 120
    while True:
        conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
        try:
            if conn is None or conn.closed:
                conn = _local.conn = psycopg.connect(
                    os.environ["JOBFORGE_FAULT_DB"], autocommit=True, connect_timeout=3
                )
            conn.execute(
                "insert into fault_executions (execution_id, job_id, worker_id, pid, attempt)"
                " values (%s, %s, %s, %s, %s) on conflict do nothing",
                (execution_id, ctx.job.id, ctx.worker_id, os.getpid(), ctx.job.attempts),
            )
            return
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@handlers.handler("fault.record")
def record(ctx: JobContext) -> Any:
    execution_id = uuid.uuid4()
    _record(execution_id, ctx)
    payload = ctx.payload if isinstance(ctx.payload, dict) else {}
    seconds = payload.get("seconds", 0)
    time.sleep(float(seconds) if isinstance(seconds, int | float) else 0.0)
    return {"execution_id": str(execution_id)}
