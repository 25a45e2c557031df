"""Where a hot-path call spends its time inside the database, statement by statement.

    python -m bench.breakdown [--server-url URL] [--calls 30]

Each RPC on the hot path is called on a scratch database (created, migrated, dropped)
with ``auto_explain`` loaded into the session and ``log_nested_statements`` on, so every
statement a PL/pgSQL function runs reports its own duration; the messages come back to
the client as notices (``client_min_messages = log``), nothing is read from the server
log. For each call shape the report gives the median duration of the whole call and of
each statement inside it, over ``--calls`` calls after a warm-up, and the part of the call
that no statement accounts for (PL/pgSQL expressions, function entry with its
``SET search_path``, argument checks written as expressions).

A second table gives the backend CPU time per call of single-row writes, layer by layer:
the bare table's insert, the same insert into ``jobforge_jobs`` as its owner, the private
insert function with its checks, the public RPC, and ``submit_event`` / ``request_job``;
read from ``/proc/<pid>/stat`` of the server process serving the connection (so the bench
must run on the database's machine), autocommit, commit included. CPU time hardly
depends on what else the machine runs, unlike throughput; the clock ticks every 10 ms,
so each figure is the mean over a few thousand calls.

What it is for: deciding what to change. What it is not: a throughput figure. Measuring
adds overhead to every statement (``log_timing`` is off to keep it small), and durations
are server time only, without the round trip or the commit (the call runs in a
transaction that is committed afterwards, outside the timed part). Needs a superuser (it
runs ``LOAD 'auto_explain'``), as the rest of the bench does.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench import bare
from bench.harness import DEFAULT_SERVER_URL, log, scratch_database

TENANT = str(uuid.uuid4())
WORKER = "bench-breakdown"
JOB_TYPE = "bench.noop"
PAYLOAD: dict[str, Any] = {"order": 1, "note": "x" * 60}
EVENT: dict[str, Any] = {
    "event_type": "billing.created",
    "source_app": "settler",
    "payload": {"amount": 12, "currency": "usd", "note": "x" * 40},
    "actor_id": "u1",
}
TEMPLATE_KEY = "autopilot.ops.scan"

_DURATION = re.compile(r"duration: ([0-9.]+) ms")


@dataclass
class Shape:
    """One way of calling one RPC; ``call`` runs it once on the connection."""

    name: str
    call: Callable[[psycopg.Connection[Any]], object]
    prepare: Callable[[psycopg.Connection[Any]], None] = lambda _conn: None
    totals: list[float] = field(default_factory=list)
    statements: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def _jobs(n: int) -> list[dict[str, Any]]:
    return [{"type": JOB_TYPE, "payload": {**PAYLOAD, "order": i}} for i in range(n)]


def _claim_then_complete(limit: int) -> Callable[[psycopg.Connection[Any]], object]:
    def call(conn: psycopg.Connection[Any]) -> object:
        row = conn.execute(
            "select public.jobforge_claim_jobs(p_worker_id => %s, p_limit => %s)",
            (WORKER, limit),
        ).fetchone()
        claimed = row[0] if row else []
        results = [{"job_id": job["id"], "status": "succeeded"} for job in claimed]
        return conn.execute(
            "select public.jobforge_complete_jobs(p_worker_id => %s, p_results => %s,"
            " p_returning => 'ids')",
            (WORKER, Jsonb(results)),
        ).fetchone()

    return call


def _fill(conn: psycopg.Connection[Any], jobs: int) -> None:
    for start in range(0, jobs, 1000):
        conn.execute(
            "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s,"
            " p_returning => 'ids')",
            (TENANT, Jsonb(_jobs(min(1000, jobs - start)))),
        )


def shapes(calls: int) -> list[Shape]:
    """The hot path's calls, each in the shape the bench measures."""
    return [
        Shape(
            "enqueue_job",
            lambda c: c.execute(
                "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s,"
                " p_payload => %s)",
                (TENANT, JOB_TYPE, Jsonb(PAYLOAD)),
            ).fetchone(),
        ),
        Shape(
            "enqueue_jobs, 1,000 rows answered",
            lambda c: c.execute(
                "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s)",
                (TENANT, Jsonb(_jobs(1000))),
            ).fetchone(),
        ),
        Shape(
            "enqueue_jobs, 1,000, ids answered",
            lambda c: c.execute(
                "select public.jobforge_enqueue_jobs(p_tenant_id => %s, p_jobs => %s,"
                " p_returning => 'ids')",
                (TENANT, Jsonb(_jobs(1000))),
            ).fetchone(),
        ),
        Shape(
            "claim_jobs(100) + complete_jobs(100, ids)",
            _claim_then_complete(100),
            prepare=lambda c: _fill(c, 100 * (calls + 5)),
        ),
        Shape(
            "submit_event",
            lambda c: c.execute(
                "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => %s,"
                " p_source_app => %s, p_payload => %s)",
                (TENANT, EVENT["event_type"], EVENT["source_app"], Jsonb(EVENT["payload"])),
            ).fetchone(),
        ),
        Shape(
            "submit_events, 100 rows answered",
            lambda c: c.execute(
                "select public.jobforge_submit_events(p_tenant_id => %s, p_events => %s)",
                (TENANT, Jsonb([EVENT] * 100)),
            ).fetchone(),
        ),
        Shape(
            "submit_events, 100, ids answered",
            lambda c: c.execute(
                "select public.jobforge_submit_events(p_tenant_id => %s, p_events => %s,"
                " p_returning => 'ids')",
                (TENANT, Jsonb([EVENT] * 100)),
            ).fetchone(),
        ),
        Shape(
            "request_job",
            lambda c: c.execute(
                "select public.jobforge_request_job(p_tenant_id => %s, p_template_key => %s,"
                " p_inputs => %s)",
                (TENANT, TEMPLATE_KEY, Jsonb({"target": "x"})),
            ).fetchone(),
            prepare=lambda c: c.execute(
                "select public.jobforge_set_template_enabled(%s, true)", (TEMPLATE_KEY,)
            ).fetchone(),
        ),
    ]


def _statement_label(message: str) -> str:
    """The first line of a statement's text, as a row label."""
    text = message.split("Query Text:", 1)[-1].strip()
    first = " ".join(text.split())
    return first[:90] + ("…" if len(first) > 90 else "")


def measure(conn: psycopg.Connection[Any], shape: Shape, calls: int) -> None:
    notices: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(diag.message_primary or "")

    conn.add_notice_handler(keep)
    try:
        _measure(conn, shape, calls, notices)
    finally:
        conn.remove_notice_handler(keep)


def _measure(conn: psycopg.Connection[Any], shape: Shape, calls: int, notices: list[str]) -> None:
    shape.prepare(conn)
    conn.commit()
    conn.execute("analyze")  # plans from current statistics, as autovacuum would keep them
    conn.commit()
    for _ in range(3):  # warm-up: plans cached, relations open
        shape.call(conn)
        conn.commit()
    for _ in range(calls):
        notices.clear()
        conn.execute("set client_min_messages = log")
        shape.call(conn)
        conn.execute("set client_min_messages = notice")
        conn.commit()
        timed: list[tuple[str, float]] = []
        for message in notices:
            found = _DURATION.search(message)
            if found is not None:
                timed.append((message, float(found.group(1))))
        if not timed:
            raise RuntimeError(f"{shape.name}: auto_explain reported nothing")
        top = "Query Text: select public.jobforge_"
        shape.totals.append(sum(ms for message, ms in timed if top in message))
        per_call: dict[str, float] = defaultdict(float)
        for message, ms in timed:
            if top not in message:
                per_call[_statement_label(message)] += ms
        for label, ms in per_call.items():
            shape.statements[label].append(ms)


def report(results: Sequence[Shape], calls: int) -> str:
    lines = [
        f"Server time per call, median of {calls} calls (auto_explain, nested statements;"
        " no round trip, no commit).",
        "",
    ]
    for shape in results:
        total = statistics.median(shape.totals)
        lines += [f"**{shape.name}**: {total:.2f} ms", "", "| statement | ms | share |"]
        lines.append("|---|---:|---:|")
        rows = sorted(
            ((label, statistics.median(v)) for label, v in shape.statements.items()),
            key=lambda item: -item[1],
        )
        accounted = 0.0
        for label, ms in rows:
            accounted += ms
            lines.append(f"| `{label.replace('|', '/')}` | {ms:.3f} | {ms / total:.0%} |")
        rest = max(0.0, total - accounted)
        lines.append(f"| (PL/pgSQL outside statements) | {rest:.3f} | {rest / total:.0%} |")
        lines.append("")
    return "\n".join(lines)


def _backend_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a server process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def layers(url: str, calls: int) -> list[tuple[str, float]]:
    """Backend CPU per call (µs) of each layer of a single-row write; rounds alternate."""
    bare.install(url)
    payload = Jsonb(PAYLOAD)
    shapes: list[tuple[str, str, tuple[Any, ...]]] = [
        ("select 1 (a round trip, nothing else)", "select %s::int", (1,)),
        ("bare insert (bench_bare.jobs)", bare.ENQUEUE_ONE, (TENANT, JOB_TYPE, payload)),
        (
            "insert into jobforge_jobs as its owner",
            "insert into public.jobforge_jobs (tenant_id, type, payload, run_at, max_attempts)"
            " values (%s, %s, %s, now(), 5) returning id",
            (TENANT, JOB_TYPE, payload),
        ),
        (
            "jobforge_private.enqueue_job (checks, insert, NOTIFY)",
            "select (jobforge_private.enqueue_job(%s, %s, %s)).id",
            (TENANT, JOB_TYPE, payload),
        ),
        (
            "jobforge_enqueue_job (the RPC)",
            "select public.jobforge_enqueue_job(p_tenant_id => %s, p_type => %s, p_payload => %s)",
            (TENANT, JOB_TYPE, payload),
        ),
        (
            "jobforge_submit_event (the RPC)",
            "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => %s,"
            " p_source_app => %s, p_payload => %s)",
            (TENANT, EVENT["event_type"], EVENT["source_app"], Jsonb(EVENT["payload"])),
        ),
        (
            "jobforge_request_job (the RPC)",
            "select public.jobforge_request_job(p_tenant_id => %s, p_template_key => %s,"
            " p_inputs => %s)",
            (TENANT, TEMPLATE_KEY, Jsonb({"target": "x"})),
        ),
    ]
    spent = dict.fromkeys((label for label, _, _ in shapes), 0.0)
    rounds = 10
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select public.jobforge_set_template_enabled(%s, true)", (TEMPLATE_KEY,))
        row = conn.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        pid = int(row[0])
        for _label, statement, args in shapes:  # warm-up: plans, relations, prepared
            for _ in range(20):
                conn.execute(statement, args).fetchone()
        for turn in range(rounds):
            ordered = shapes if turn % 2 == 0 else shapes[::-1]
            for label, statement, args in ordered:
                began = _backend_cpu_s(pid)
                for _ in range(calls // rounds):
                    conn.execute(statement, args).fetchone()
                spent[label] += _backend_cpu_s(pid) - began
    per_call = (calls // rounds) * rounds
    return [(label, spent[label] / per_call * 1e6) for label, _, _ in shapes]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument(
        "--cpu-calls", type=int, default=3000, help="calls per layer for the CPU table"
    )
    args = parser.parse_args(argv)
    with scratch_database(args.server_url) as db, psycopg.connect(db.url) as conn:
        conn.execute("load 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_timing", "off"),
            ("auto_explain.log_nested_statements", "on"),
        ):
            conn.execute(f"set {setting} = {value}")
        conn.commit()
        results = shapes(args.calls)
        for shape in results:
            log(f"breakdown: {shape.name}")
            measure(conn, shape, args.calls)
        log("breakdown: backend CPU per layer")
        cpu = layers(db.url, args.cpu_calls)
    table = [
        "",
        f"Backend CPU per call, single-row writes, autocommit (mean of {args.cpu_calls:,} calls"
        " each, layers alternating):",
        "",
        "| layer | µs |",
        "|---|---:|",
        *(f"| {label} | {us:.0f} |" for label, us in cpu),
    ]
    sys.stdout.write(report(results, args.calls) + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
