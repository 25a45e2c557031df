"""The yardstick: the same rows written to, claimed from and completed in bare tables of the
same shape, in the same scratch database, timed in the same alternation as SDK and raw SQL.

Why: docs/architecture.md states every performance target as a ratio to what PostgreSQL
itself does on the same server in the same run, because absolute numbers move with the
machine and its load. The bare tables have the columns a queue needs and nothing else: no
RPC, no checks, no audit, no JSON answer, the minimum of indexes (a claim index and a
tenant index). What the SDK and the SQL functions add on top is then the ratio.

The statements, one each (and one autocommit commit each):

- enqueue, batch: ``INSERT ... SELECT FROM jsonb_to_recordset($2) ... RETURNING id``: the
  client sends the same JSON array it would send to ``jobforge_enqueue_jobs``. Of the forms
  tried (on this 2-core machine, batches of 100 / 1,000), it was the fastest with
  ``jsonb_array_elements`` (82k / 127k rows/s without RETURNING, 69k / 124k with it);
  ``unnest($2::text[], $3::jsonb[])`` reached only 34k / 55k, because psycopg dumps every
  element of a ``jsonb[]`` on its own (12 µs of client CPU per row instead of 2).
  ``RETURNING id`` is kept: an enqueue that does not tell the caller what it created is not
  a fair twin of one that does (it costs 2-15 %, most at batch 100).
- enqueue / submit / request, one call: ``INSERT ... VALUES (...) RETURNING id``.
- claim: ``UPDATE ... SET status = 'running', attempts = attempts + 1 WHERE id =
  ANY(ARRAY(SELECT id ... WHERE status = 'queued' AND run_at <= now() ORDER BY run_at, id
  LIMIT n FOR UPDATE SKIP LOCKED)) RETURNING id, tenant_id, type, payload, attempts``.
- completion: ``UPDATE ... SET status = 'succeeded' WHERE id = ANY($1)``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

SCHEMA = "bench_bare"
JOBS = f"{SCHEMA}.jobs"
EVENTS = f"{SCHEMA}.events"
TABLES = (JOBS, EVENTS)

DDL = f"""
create schema if not exists {SCHEMA};

create table if not exists {JOBS} (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  type text not null,
  payload jsonb not null,
  status text not null default 'queued',
  attempts integer not null default 0,
  max_attempts integer not null default 5,
  run_at timestamptz not null default now(),
  created_at timestamptz not null default now()
);
create index if not exists jobs_claim on {JOBS} (run_at, id) where status = 'queued';
create index if not exists jobs_tenant on {JOBS} (tenant_id);

create table if not exists {EVENTS} (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null,
  event_type text not null,
  payload jsonb not null,
  occurred_at timestamptz not null default now(),
  created_at timestamptz not null default now()
);
create index if not exists events_tenant_created on {EVENTS} (tenant_id, created_at);
"""

ENQUEUE_ONE = (
    f"insert into {JOBS} (tenant_id, type, payload, attempts, max_attempts)"
    " values (%s, %s, %s, 0, 5) returning id"
)
ENQUEUE_MANY = (
    f"insert into {JOBS} (tenant_id, type, payload, attempts, max_attempts)"
    " select %s, r.type, r.payload, 0, 5"
    " from jsonb_to_recordset(%s) as r (type text, payload jsonb) returning id"
)
CLAIM = (
    f"update {JOBS} set status = 'running', attempts = attempts + 1"
    " where id = any (array("
    f"select q.id from {JOBS} q where q.status = 'queued' and q.run_at <= now()"
    " order by q.run_at, q.id limit %s for update skip locked"
    ")) returning id, tenant_id, type, payload, attempts"
)
COMPLETE_ONE = f"update {JOBS} set status = 'succeeded' where id = %s"
COMPLETE_MANY = f"update {JOBS} set status = 'succeeded' where id = any (%s)"
SUBMIT_ONE = (
    f"insert into {EVENTS} (tenant_id, event_type, payload) values (%s, %s, %s) returning id"
)
SUBMIT_MANY = (
    f"insert into {EVENTS} (tenant_id, event_type, payload)"
    " select %s, r.event_type, r.payload"
    " from jsonb_to_recordset(%s) as r (event_type text, payload jsonb) returning id"
)

# Shown in the report, so a reader sees what the yardstick is without opening this file.
DESCRIPTION = (
    "bare = the same rows in a bare table of the same shape in the same database"
    f" ({JOBS}: uuid pk, tenant_id, type, payload jsonb, status, attempts, max_attempts,"
    " run_at, created_at; a partial index on (run_at, id) where status = 'queued' and one"
    f" on tenant_id; {EVENTS}: uuid pk, tenant_id, event_type, payload, occurred_at,"
    " created_at, an index on (tenant_id, created_at)); batches are one INSERT ... SELECT"
    " FROM jsonb_to_recordset($json) RETURNING id, single calls one INSERT ... VALUES"
    " RETURNING id, claim one UPDATE ... WHERE id = ANY(ARRAY(SELECT id ... ORDER BY"
    " run_at, id LIMIT n FOR UPDATE SKIP LOCKED)) RETURNING the row, completion one UPDATE"
    " ... SET status = 'succeeded' WHERE id = ANY($ids); one autocommit statement each"
)


def install(url: str) -> None:
    """Create the bare tables in ``url``'s database (idempotent)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(DDL)


def fill_jobs(conn: psycopg.Connection[Any], tenant_id: uuid.UUID, batches: list[Any]) -> None:
    """Queue the same job lists as the real queue's fill, one batch per statement."""
    for jobs in batches:
        conn.execute(ENQUEUE_MANY, (tenant_id, Jsonb(jobs))).fetchall()
    conn.execute(f"analyze {JOBS}")


def verify_jobs(conn: psycopg.Connection[Any], tenant_id: uuid.UUID) -> tuple[dict[str, int], int]:
    """Status counts of ``tenant_id``'s bare jobs and how many were claimed other than once."""
    by_status = {
        str(status): int(count)
        for status, count in conn.execute(
            f"select status, count(*) from {JOBS} where tenant_id = %s group by status",
            (tenant_id,),
        ).fetchall()
    }
    row = conn.execute(
        f"select count(*) from {JOBS} where tenant_id = %s and attempts <> 1", (tenant_id,)
    ).fetchone()
    return by_status, int(row[0]) if row else -1


class BareProducer:
    """``core_queue.Producer`` on the bare jobs table."""

    def __init__(self, url: str, tenant_id: uuid.UUID, job_type: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.tenant_id = tenant_id
        self.job_type = job_type

    def enqueue(self, payload: dict[str, Any]) -> None:
        self.conn.execute(ENQUEUE_ONE, (self.tenant_id, self.job_type, Jsonb(payload))).fetchone()

    def enqueue_many(self, jobs: list[dict[str, Any]]) -> int:
        return len(self.conn.execute(ENQUEUE_MANY, (self.tenant_id, Jsonb(jobs))).fetchall())

    def close(self) -> None:
        self.conn.close()


class BareConsumer:
    """``core_queue.Consumer`` on the bare jobs table (rows are tuples, id first)."""

    def __init__(self, url: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.conn = psycopg.connect(url, autocommit=True)

    def claim(self, limit: int) -> Sequence[Any]:
        return self.conn.execute(CLAIM, (limit,)).fetchall()

    def complete(self, job: Any) -> None:
        self.conn.execute(COMPLETE_ONE, (job[0],))

    def complete_many(self, jobs: Sequence[Any]) -> None:
        self.conn.execute(COMPLETE_MANY, ([job[0] for job in jobs],))

    def warm_up(self) -> None:
        """The same statements on nothing: a claim of no rows, completions of a job that
        does not exist."""
        self.conn.execute(CLAIM, (0,)).fetchall()
        self.conn.execute(COMPLETE_ONE, (uuid.uuid4(),))
        self.conn.execute(COMPLETE_MANY, ([uuid.uuid4()],))

    def close(self) -> None:
        self.conn.close()
