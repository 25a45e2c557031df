"""``--history``: the contract's rows measured twice in one run, on an empty database and on
one that already holds a history, alternating block by block.

Why: a queue that is fast on empty tables and slows down as finished jobs and events pile
up fails its users after a month. docs/architecture.md asks every target to hold "within
1.2x with a million finished jobs and events present"; history/empty is the ratio that
says so, and it is measured like the others: both databases on the same server, their
blocks next to each other, median of the repeats.

What the history is, by default 1,000,000 of each (``--history-rows``):

- finished jobs, exactly as a completion leaves them. The module does not guess what that
  is: it enqueues, claims and completes one job through the tree's own RPCs
  (``jobforge_complete_jobs``, as the worker does) and reads back the job row and every row
  that references it (``jobforge_job_attempts``, and ``jobforge_job_results`` in trees that
  still have it). Those rows are the template of one ``INSERT ... SELECT FROM
  generate_series`` per table: ids, tenants (100), creation times (spread over 30 days, the
  probe's offsets between created, started and finished kept), payloads (~80 bytes) and
  types (5) vary, every other column is the probe's value. Foreign-key triggers are off
  for the load (``session_replication_role = replica``, superuser only; consistent by
  construction), indexes stay in place.
- events: ``execution_plane.load_events``, the loader of the list_events measurement
  (100 tenants, 30 days, indexes rebuilt after the load).
- the bare yardstick's tables get the same number of finished jobs and events, so that
  bare history/empty shows what the server alone loses.

Then ``VACUUM ANALYZE`` of every table and a CHECKPOINT. The history belongs to tenants
the measurements never write as; resetting the database between blocks deletes the
measurements' own rows and vacuums (``BenchDatabase.reset``).

The audit trail is not preloaded (it is append-only, and not what the targets are about);
neither are the failed or dead jobs a real history would also have.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from . import bare, execution_plane
from .harness import BenchDatabase, BenchError, HistoryPair, log, scratch_database

HISTORY_ROWS = 1_000_000
QUICK_HISTORY_ROWS = 100_000
HISTORY_TENANTS = tuple(uuid.UUID(int=(0x4157 << 96) + i) for i in range(100))
HISTORY_TYPES = ("history.mail", "history.report", "history.sync", "history.export", "history.gc")

PROBE_TENANT = uuid.UUID("00000000-0000-4000-8000-0000000970be")
PROBE_TYPE = "bench.probe"
PROBE_WORKER = "bench-history-worker"
PROBE_RESULT: dict[str, Any] = {"ok": True}
JOBS = "public.jobforge_jobs"

COLUMNS_SQL = """
select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
from pg_catalog.pg_attribute a
where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
  and a.attgenerated = ''
order by a.attnum
"""

# Tables with a foreign key to jobforge_jobs (id), and the referencing column.
CHILDREN_SQL = """
select c.conrelid::regclass::text, a.attname
from pg_catalog.pg_constraint c
join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
where c.contype = 'f' and c.confrelid = 'public.jobforge_jobs'::regclass
  and pg_catalog.cardinality(c.conkey) = 1
order by 1
"""

Row = dict[str, str | None]


@dataclass
class CompletionShape:
    """What completing one job with ``jobforge_complete_jobs`` leaves in this database:
    the job row, and the rows of every table that references jobs, as text."""

    job: Row
    job_types: dict[str, str]
    children: dict[str, list[Row]] = field(default_factory=dict)
    child_types: dict[str, dict[str, str]] = field(default_factory=dict)
    child_keys: dict[str, str] = field(default_factory=dict)

    def per_job(self) -> dict[str, int]:
        """Rows written per completed job in each table that references jobs."""
        return {table: len(rows) for table, rows in self.children.items()}

    def set_columns(self) -> list[str]:
        """Columns of the completed job row that are not null (every completed job must
        have them set too)."""
        return [col for col, value in self.job.items() if value is not None]

    def describe(self) -> str:
        written = [f"{n} {t.split('.')[-1]} row(s)" for t, n in self.per_job().items() if n]
        return "the job row" + "".join(f" + {w}" for w in written) + " per completed job"


def _columns(conn: psycopg.Connection[Any], table: str) -> dict[str, str]:
    return {str(n): str(t) for n, t in conn.execute(COLUMNS_SQL, (table,)).fetchall()}


def _rows(conn: psycopg.Connection[Any], table: str, key: str, job_id: str) -> list[Row]:
    """Rows of ``table`` whose ``key`` is ``job_id``, as column -> text (grouped by row)."""
    ids = conn.execute(
        sql.SQL("select t.ctid::text from {} t where t.{} = %s").format(
            sql.SQL(table), sql.Identifier(key)
        ),
        (job_id,),
    ).fetchall()
    out: list[Row] = []
    for (ctid,) in ids:
        pairs = conn.execute(
            sql.SQL(
                "select e.key, e.value from {} t, jsonb_each_text(to_jsonb(t)) as e"
                " where t.ctid = %s::tid"
            ).format(sql.SQL(table)),
            (ctid,),
        ).fetchall()
        out.append({str(k): (None if v is None else str(v)) for k, v in pairs})
    return out


def probe_completion(url: str) -> CompletionShape:
    """Enqueue, claim and complete one job through the RPCs (as the owner, raw SQL), read
    what the completion left, then delete the probe job (its children go by cascade)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s, p_payload => %s)",
            (PROBE_TENANT, PROBE_TYPE, Jsonb({"probe": True})),
        ).fetchone()
        row = conn.execute(
            "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => 1, p_types => %s)",
            (PROBE_WORKER, [PROBE_TYPE]),
        ).fetchone()
        claimed = row[0] if row else []
        if len(claimed) != 1:
            raise BenchError(f"probe: claimed {len(claimed)} jobs instead of 1")
        job_id = str(claimed[0]["id"])
        conn.execute(
            "select public.jobforge_complete_jobs(p_worker_id => %s, p_results => %s)",
            (
                PROBE_WORKER,
                Jsonb([{"job_id": job_id, "status": "succeeded", "result": PROBE_RESULT}]),
            ),
        ).fetchone()
        jobs = _rows(conn, JOBS, "id", job_id)
        if len(jobs) != 1 or jobs[0].get("status") != "succeeded":
            raise BenchError(f"probe: the completed job reads {jobs}")
        shape = CompletionShape(job=jobs[0], job_types=_columns(conn, JOBS))
        for table, key in conn.execute(CHILDREN_SQL).fetchall():
            table, key = str(table), str(key)
            if "." not in table:
                table = f"public.{table}"
            shape.children[table] = _rows(conn, table, key, job_id)
            shape.child_types[table] = _columns(conn, table)
            shape.child_keys[table] = key
        conn.execute("delete from public.jobforge_jobs where id = %s", (job_id,))
    return shape


def verify_completions(
    conn: psycopg.Connection[Any], shape: CompletionShape, tenant_id: uuid.UUID, jobs: int
) -> dict[str, Any]:
    """``jobs`` jobs of ``tenant_id`` ended ``succeeded`` after exactly one attempt, each
    looks like the probe's completed job (same columns set), and each has exactly the rows
    the probe's completion wrote in the tables that reference jobs."""
    by_status = {
        str(k): int(v)
        for k, v in conn.execute(
            "select status, count(*) from public.jobforge_jobs where tenant_id = %s"
            " group by status",
            (tenant_id,),
        ).fetchall()
    }
    unset = sql.SQL(" or ").join(
        sql.SQL("{} is null").format(sql.Identifier(col)) for col in shape.set_columns()
    )
    row = conn.execute(
        sql.SQL(
            "select count(*) filter (where attempts <> 1), count(*) filter (where {})"
            " from public.jobforge_jobs where tenant_id = %s"
        ).format(unset),
        (tenant_id,),
    ).fetchone()
    not_once, incomplete = (int(v) for v in row) if row else (-1, -1)
    children: dict[str, dict[str, int]] = {}
    ok = by_status == {"succeeded": jobs} and not_once == 0 and incomplete == 0
    for table, per_job in shape.per_job().items():
        counted = conn.execute(
            sql.SQL(
                "select count(*), count(distinct c.{key}) from {table} c"
                " join public.jobforge_jobs j on j.id = c.{key} where j.tenant_id = %s"
            ).format(table=sql.SQL(table), key=sql.Identifier(shape.child_keys[table])),
            (tenant_id,),
        ).fetchone()
        rows, distinct = (int(v) for v in counted) if counted else (-1, -1)
        children[table] = {"rows": rows, "jobs": distinct, "expected_rows": jobs * per_job}
        ok = ok and rows == jobs * per_job and distinct == (jobs if per_job else 0)
    return {
        "ok": ok,
        "by_status": by_status,
        "attempts_not_1": not_once,
        "columns_unset": incomplete,
        "children": children,
    }


# -- loading ----------------------------------------------------------------------------


def _series(rows: int, now: datetime) -> sql.Composed:
    """``FROM generate_series`` with the values every history table shares: ``g``, the
    tenant ``r.tenant`` and the time ``r.at`` (creation, spread over 30 days up to an hour
    ago)."""
    tenants = sql.SQL("{}::uuid[]").format(sql.Literal([str(t) for t in HISTORY_TENANTS]))
    return sql.SQL(
        " from generate_series(1, {n}) as g cross join lateral (select"
        " ({tenants})[1 + mod(g, {count})] as tenant,"
        " {now}::timestamptz - interval '30 days 1 hour'"
        " + (g::double precision / {n}) * interval '30 days' as at) as r"
    ).format(
        n=sql.Literal(rows),
        tenants=tenants,
        count=sql.Literal(len(HISTORY_TENANTS)),
        now=sql.Literal(now.isoformat()),
    )


PAYLOAD = sql.SQL(
    "jsonb_build_object('n', g, 'email', 'user' || g || '@example.com', 'action', 'welcome',"
    " 'retry', false)"
)
HISTORY_TYPE = sql.SQL("({})[1 + mod(g, {})]").format(
    sql.SQL("{}::text[]").format(sql.Literal(list(HISTORY_TYPES))),
    sql.Literal(len(HISTORY_TYPES)),
)


def _generated_id(prefix: str) -> sql.Composed:
    """A uuid per ``g``, the same in every statement that names it (md5: spread over the
    key space like gen_random_uuid, so the primary key grows as it does in production)."""
    return sql.SQL("md5({} || g)::uuid").format(sql.Literal(f"jobforge-history:{prefix}:"))


def _insert(
    table: str,
    types: dict[str, str],
    template: Row,
    ids: dict[str, sql.Composable],
    since: str | None,
    overrides: dict[str, sql.Composable],
    series: sql.Composed,
) -> sql.Composed:
    """``INSERT INTO table SELECT ... FROM series``: each column is its override, a mapped
    id (a uuid of the template that is the probe's job, child row or tenant), a time at the
    template's offset from the probe's creation, or the template's own value."""
    exprs: list[sql.Composable] = []
    for col, typ in types.items():
        value = template.get(col)
        if col in overrides:
            expr = overrides[col]
        elif value is None:
            expr = sql.SQL("null::{}").format(sql.SQL(typ))
        elif typ == "uuid" and value in ids:
            expr = ids[value]
        elif typ == "timestamp with time zone" and since is not None:
            expr = sql.SQL("r.at + ({}::timestamptz - {}::timestamptz)").format(
                sql.Literal(value), sql.Literal(since)
            )
        else:
            expr = sql.SQL("{}::{}").format(sql.Literal(value), sql.SQL(typ))
        exprs.append(expr)
    return sql.SQL("insert into {} ({}) select {}{}").format(
        sql.SQL(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in types),
        sql.SQL(", ").join(exprs),
        series,
    )


def load_jobs(conn: psycopg.Connection[Any], shape: CompletionShape, rows: int) -> list[str]:
    """``rows`` completed jobs and their children, from the probe's template (see the
    module docstring). Returns the tables written."""
    series = _series(rows, datetime.now(UTC))
    ids: dict[str, sql.Composable] = {str(PROBE_TENANT): sql.SQL("r.tenant")}
    job_id = shape.job.get("id")
    if job_id is None:
        raise BenchError("probe: the job row has no id")
    ids[job_id] = _generated_id("job")
    for table, children in shape.children.items():
        for k, child in enumerate(children):
            child_id = child.get("id")
            if child_id is not None and shape.child_types[table].get("id") == "uuid":
                ids[child_id] = _generated_id(f"{table}:{k}")
    since = shape.job.get("created_at")
    statements = [
        (
            JOBS,
            _insert(
                JOBS,
                shape.job_types,
                shape.job,
                ids,
                since,
                {"payload": PAYLOAD, "type": HISTORY_TYPE},
                series,
            ),
        )
    ]
    for table, children in shape.children.items():
        for child in children:
            statements.append(
                (
                    table,
                    _insert(table, shape.child_types[table], child, ids, since, {}, series),
                )
            )
    for table, statement in statements:
        began = time.perf_counter()
        conn.execute(statement)
        log(f"  {table}: {rows:,} rows in {time.perf_counter() - began:.1f} s")
    return [table for table, _ in statements]


def load_bare(conn: psycopg.Connection[Any], rows: int) -> None:
    """The same number of finished jobs and events in the bare yardstick's tables."""
    series = _series(rows, datetime.now(UTC))
    conn.execute(
        sql.SQL(
            "insert into {} (tenant_id, type, payload, status, attempts, max_attempts, run_at,"
            " created_at) select r.tenant, {}, {}, 'succeeded', 1, 5, r.at, r.at{}"
        ).format(sql.SQL(bare.JOBS), HISTORY_TYPE, PAYLOAD, series)
    )
    event_types = sql.SQL("({})[1 + mod(g, {})]").format(
        sql.SQL("{}::text[]").format(sql.Literal(list(execution_plane.LOAD_EVENT_TYPES))),
        sql.Literal(len(execution_plane.LOAD_EVENT_TYPES)),
    )
    conn.execute(
        sql.SQL(
            "insert into {} (tenant_id, event_type, payload, occurred_at, created_at)"
            " select r.tenant, {}, jsonb_build_object('n', g, 'amount_cents', mod(g, 100000),"
            " 'currency', 'EUR', 'status', 'ok'), r.at, r.at + interval '150 milliseconds'{}"
        ).format(sql.SQL(bare.EVENTS), event_types, series)
    )


def load_history(db: BenchDatabase, rows: int) -> dict[str, Any]:
    """Fill ``db`` with the history (module docstring); returns what was loaded and how
    long each part took. Marks ``db`` as a history database (see ``BenchDatabase.reset``)."""
    info: dict[str, Any] = {"rows": rows}
    began = time.perf_counter()
    shape = probe_completion(db.url)
    info["completion"] = shape.describe()
    info["completion_rows"] = shape.per_job()
    log(f"  a completion writes {shape.describe()}")
    tables: list[str] = []
    with psycopg.connect(db.url, autocommit=True) as conn:
        try:
            conn.execute("set session_replication_role = replica")
            info["foreign_key_checks"] = "off during the load (session_replication_role)"
        except psycopg.errors.InsufficientPrivilege:
            info["foreign_key_checks"] = "on (no privilege to turn them off)"
        t = time.perf_counter()
        tables += load_jobs(conn, shape, rows)
        info["jobs_s"] = time.perf_counter() - t
        t = time.perf_counter()
        load_bare(conn, rows)
        tables += list(bare.TABLES)
        info["bare_s"] = time.perf_counter() - t
        log(f"  bare tables: {rows:,} jobs and events in {info['bare_s']:.1f} s")
    t = time.perf_counter()
    events = execution_plane.load_events(db, rows)
    tables.append("public.jobforge_events")
    info["events_s"] = time.perf_counter() - t
    info["events_notes"] = events.notes
    log(f"  public.jobforge_events: {rows:,} rows in {info['events_s']:.1f} s")
    t = time.perf_counter()
    sizes: dict[str, dict[str, int]] = {}
    with psycopg.connect(db.url, autocommit=True) as conn:
        for table in dict.fromkeys(tables):
            conn.execute(sql.SQL("vacuum analyze {}").format(sql.SQL(table)))
            size = conn.execute(
                "select pg_catalog.pg_table_size(%s::regclass),"
                " pg_catalog.pg_indexes_size(%s::regclass),"
                " (select count(*) from pg_catalog.pg_index where indrelid = %s::regclass)",
                (table, table, table),
            ).fetchone()
            if size:
                sizes[table] = {"table": int(size[0]), "indexes": int(size[1]), "n": int(size[2])}
        conn.execute("checkpoint")
    info["vacuum_s"] = time.perf_counter() - t
    info["seconds"] = time.perf_counter() - began
    info["sizes"] = sizes
    info["label"] = f"{rows:,} finished jobs + {rows:,} events present"
    log(
        f"  history loaded in {info['seconds']:.0f} s (jobs {info['jobs_s']:.0f} s, events"
        f" {info['events_s']:.0f} s, bare {info['bare_s']:.0f} s, vacuum analyze"
        f" {info['vacuum_s']:.0f} s)"
    )
    db.history = info
    return info


@contextlib.contextmanager
def history_pair(server_url: str, rows: int) -> Iterator[HistoryPair]:
    """Two scratch databases of this run: one left empty, one with the history."""
    with scratch_database(server_url) as empty, scratch_database(server_url) as full:
        for db in (empty, full):
            bare.install(db.url)
        log(f"loading the history: {rows:,} finished jobs and {rows:,} events")
        info = load_history(full, rows)
        yield HistoryPair(empty=empty, history=full, load=info)


def history_table_rows(info: dict[str, Any]) -> list[list[str]]:
    """Rows of the report's table about the loaded history."""
    out: list[list[str]] = []
    for table, size in info.get("sizes", {}).items():
        out.append(
            [
                table,
                f"{size['table'] / 2**20:,.0f} MiB",
                f"{size['indexes'] / 2**20:,.0f} MiB ({size['n']})",
            ]
        )
    return out
