"""Execution-plane throughput and latency (contract: docs/architecture.md): events one by one
and in batches, listing events out of a million, and requesting template jobs, each through
the SDK and through a raw psycopg call of the same SQL function, in the same run; and, for
the contract's rows, through the bare yardstick (``bench/bare.py``): the same events as one
INSERT into a bare events table (a batch: one INSERT ... SELECT FROM jsonb_to_recordset), a
requested job as one single-row INSERT into the bare jobs table.

Why these four: they are the execution plane's hot paths. Apps submit events as things
happen (one call each, or batched by a relay), dashboards page through a tenant's events,
and triggers and people request autopilot jobs. The SDK adds pydantic validation, feature
gating and model parsing on top of each RPC; the raw path shows what is left without it.

Fairness rules, as in ``core_queue``: one autocommit connection per variant (the SDK gets
``max_size=1``), psycopg's automatic prepared statements on all, the raw path decodes the
JSON answer, the SDK also validates it into models, the bare path fetches the ids it
returns. Work lists are built before the clock starts, identically for all; the variants
take turns going first, run by run. ``--history`` runs submit_event, submit_events and
request_job on an empty database and on one holding a history (``bench/history.py``).

Listing is measured on a realistic table rather than an empty one: 1,000,000 events of 100
tenants over 30 days (``--quick``: 100,000), loaded with one server-side
``INSERT ... SELECT FROM generate_series`` straight into ``public.jobforge_events`` (the
RPCs would spend minutes on a million audited inserts). The table's indexes are dropped
for the load and rebuilt from their own catalog definitions afterwards (2-3x faster here);
rebuilt indexes are compact, as after a REINDEX, so an organically grown table may read a
few more index pages per page of events. The plan printed with the results is the one the
RPC's dynamic query really gets: ``auto_explain`` (loaded in the session, nested statements
on, reported as a NOTICE) captures it inside ``jobforge_list_events``. Without the privilege
to ``LOAD`` it, the plan of the same query text, prepared and executed with the same values,
is shown instead, and the report says so.

The audit trail is append-only (not even TRUNCATE passes), so it keeps growing through the
module, by one row per event, per batch and per request; that costs both variants alike.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from jobforge_sdk import FeatureFlags, JobForgeClient, JobForgeError

from . import bare
from .harness import (
    EVENTS_BATCH_TARGET,
    SDK_PATH,
    SINGLE_CALL_TARGET,
    VARIANTS,
    BenchConfig,
    BenchDatabase,
    BenchError,
    Block,
    Latency,
    Measurement,
    ModuleResult,
    Stage,
    blocks,
    log,
    rotate,
    scratch_database,
    stages_of,
)

NAME = "execution_plane"
MEASUREMENTS = ("submit_event", "submit_events", "list_events", "request_job")

TENANT_ID = uuid.UUID("00000000-0000-4000-8000-0000000e7e47")
EVENT_TYPE = "bench.event"
SOURCE_APP = "jobforge"
TEMPLATE_KEY = "autopilot.ops.scan"
INPUTS: dict[str, Any] = {"target": "x"}

# The raw path: the same functions the SDK calls, by parameter name, nothing else.
RAW_SUBMIT = (
    "select public.jobforge_submit_event(p_tenant_id => %s, p_event_type => %s,"
    " p_source_app => %s, p_payload => %s)"
)
RAW_SUBMIT_MANY = "select public.jobforge_submit_events(p_tenant_id => %s, p_events => %s)"
RAW_SUBMIT_IDS = (
    "select public.jobforge_submit_events(p_tenant_id => %s, p_events => %s, p_returning => 'ids')"
)
# The SDK answers event ids only since submit_event_ids; measured where it exists.
HAS_SUBMIT_IDS = hasattr(JobForgeClient, "submit_event_ids")
RAW_LIST = "select public.jobforge_list_events(p_tenant_id => %s, p_filters => %s)"
RAW_REQUEST = (
    "select public.jobforge_request_job(p_tenant_id => %s, p_template_key => %s, p_inputs => %s)"
)

# Where each variant's rows land, for the checks after each run.
EVENT_TABLE = {
    "sdk": "public.jobforge_events",
    "raw": "public.jobforge_events",
    "bare": bare.EVENTS,
}
JOB_TABLE = {"sdk": "public.jobforge_jobs", "raw": "public.jobforge_jobs", "bare": bare.JOBS}

# What the generated events look like: 20 types from the six allowed source apps.
LOAD_TENANTS = 100
LOAD_EVENT_TYPES = tuple(
    f"{area}.{verb}"
    for area in ("billing", "auth", "deploy", "support")
    for verb in ("created", "updated", "failed", "completed", "retried")
)
LOAD_SOURCE_APPS = ("settler", "aias", "keys", "readylayer", "jobforge", "external")
WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does; ``--quick`` trades precision for time.

    Every single submit and every request is its own durable commit, ~1,000-3,000 per
    second on a small machine; a few thousand per run keep each run a couple of seconds
    long, and the module within ~2 minutes, most of it the million-event load.
    """

    single_events: int
    single_warmup: int
    batch_size: int
    batches: int
    list_events: int
    list_calls: int
    requests: int
    request_warmup: int


FULL = Sizes(
    single_events=3_000,
    single_warmup=100,
    batch_size=100,
    batches=300,
    list_events=1_000_000,
    list_calls=200,
    requests=2_000,
    request_warmup=50,
)
QUICK = Sizes(
    single_events=400,
    single_warmup=30,
    batch_size=100,
    batches=40,
    list_events=100_000,
    list_calls=100,
    requests=300,
    request_warmup=20,
)


def event_payload(n: int) -> dict[str, Any]:
    """A small event payload, ~70 bytes of JSON."""
    return {"n": n, "order_id": f"ord-{n}", "amount_cents": 1299, "currency": "EUR"}


def event_specs(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"event_type": EVENT_TYPE, "source_app": SOURCE_APP, "payload": event_payload(start + i)}
        for i in range(count)
    ]


@dataclass(frozen=True)
class ListQuery:
    """One ``list_events`` call: a tenant, and optionally a type and a time window."""

    tenant_id: uuid.UUID
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    def filters(self) -> dict[str, Any]:
        """The ``p_filters`` document a hand-written raw call sends."""
        out: dict[str, Any] = {"limit": self.limit}
        if self.event_type is not None:
            out["event_type"] = self.event_type
        if self.since is not None:
            out["from"] = self.since.isoformat()
        if self.until is not None:
            out["to"] = self.until.isoformat()
        return out


# -- the two ways to call the plane ---------------------------------------------------


class Plane(Protocol):
    def submit_event(self, payload: dict[str, Any]) -> None: ...

    def submit_events(self, events: list[dict[str, Any]]) -> int: ...

    def submit_event_ids(self, events: list[dict[str, Any]]) -> int: ...

    def list_events(self, query: ListQuery) -> int: ...

    def request_job(self) -> None: ...

    def close(self) -> None: ...


def sdk_flags() -> FeatureFlags:
    """Every execution-plane feature on, as a deployment that uses them runs."""
    return FeatureFlags.all_on(policy_token_secret="x" * 32)


class SdkPlane:
    def __init__(self, url: str) -> None:
        self.client = JobForgeClient.from_postgres(url, flags=sdk_flags(), max_size=1)

    def submit_event(self, payload: dict[str, Any]) -> None:
        self.client.submit_event(
            tenant_id=TENANT_ID, event_type=EVENT_TYPE, source_app=SOURCE_APP, payload=payload
        )

    def submit_events(self, events: list[dict[str, Any]]) -> int:
        return len(self.client.submit_events(tenant_id=TENANT_ID, events=events))

    def submit_event_ids(self, events: list[dict[str, Any]]) -> int:
        ids = self.client.submit_event_ids(tenant_id=TENANT_ID, events=events)  # type: ignore[attr-defined, unused-ignore]
        return len(ids)

    def list_events(self, query: ListQuery) -> int:
        rows = self.client.list_events(
            tenant_id=query.tenant_id,
            event_type=query.event_type,
            since=query.since,
            until=query.until,
            limit=query.limit,
        )
        return len(rows)

    def request_job(self) -> None:
        self.client.request_job(tenant_id=TENANT_ID, template_key=TEMPLATE_KEY, inputs=INPUTS)

    def close(self) -> None:
        self.client.close()


class RawPlane:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def submit_event(self, payload: dict[str, Any]) -> None:
        self.conn.execute(
            RAW_SUBMIT, (TENANT_ID, EVENT_TYPE, SOURCE_APP, Jsonb(payload))
        ).fetchone()

    def submit_events(self, events: list[dict[str, Any]]) -> int:
        row = self.conn.execute(RAW_SUBMIT_MANY, (TENANT_ID, Jsonb(events))).fetchone()
        return len(row[0]) if row else 0

    def submit_event_ids(self, events: list[dict[str, Any]]) -> int:
        row = self.conn.execute(RAW_SUBMIT_IDS, (TENANT_ID, Jsonb(events))).fetchone()
        return len(row[0]) if row else 0

    def list_events(self, query: ListQuery) -> int:
        row = self.conn.execute(RAW_LIST, (query.tenant_id, Jsonb(query.filters()))).fetchone()
        return len(row[0]) if row else 0

    def request_job(self) -> None:
        self.conn.execute(RAW_REQUEST, (TENANT_ID, TEMPLATE_KEY, Jsonb(INPUTS))).fetchone()

    def close(self) -> None:
        self.conn.close()


class BarePlane:
    """The yardstick: events into the bare events table, a requested job as one row into
    the bare jobs table (no template lookup, no input check, no audit)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def submit_event(self, payload: dict[str, Any]) -> None:
        self.conn.execute(bare.SUBMIT_ONE, (TENANT_ID, EVENT_TYPE, Jsonb(payload))).fetchone()

    def submit_events(self, events: list[dict[str, Any]]) -> int:
        return len(self.conn.execute(bare.SUBMIT_MANY, (TENANT_ID, Jsonb(events))).fetchall())

    def submit_event_ids(self, events: list[dict[str, Any]]) -> int:
        return self.submit_events(events)  # the bare insert answers ids either way

    def list_events(self, query: ListQuery) -> int:
        raise BenchError("the bare yardstick has no list_events")

    def request_job(self) -> None:
        self.conn.execute(bare.ENQUEUE_ONE, (TENANT_ID, TEMPLATE_KEY, Jsonb(INPUTS))).fetchone()

    def close(self) -> None:
        self.conn.close()


PLANES: dict[str, Callable[[str], Plane]] = {"sdk": SdkPlane, "raw": RawPlane, "bare": BarePlane}


def variant_order(repeat: int) -> list[str]:
    """SDK first on even repeats, raw first on odd ones (the SDK/raw-only rows)."""
    return rotate(("sdk", "raw"), repeat)


def plane(variant: str, url: str) -> closing[Plane]:
    return closing(PLANES[variant](url))


def count_rows(db: BenchDatabase, table: str) -> int:
    """Rows of this module's tenant in ``table`` (a history's rows are other tenants')."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        row = conn.execute(
            f"select count(*) from {table} where tenant_id = %s", (TENANT_ID,)
        ).fetchone()
    return int(row[0]) if row else 0


def _measurements(
    stages: list[Stage], base: str, operation: str, **fields: Any
) -> dict[str, Measurement]:
    """One ``Measurement`` per stage (one, or empty + history under ``--history``)."""
    return {
        stage.key: Measurement(
            name=stage.name(base),
            operation=stage.operation(operation),
            stage=stage.key,
            base=base,
            **fields,
        )
        for stage in stages
    }


# -- submit_event, submit_events, request_job ------------------------------------------


def measure_submit_event(
    stages: list[Stage], config: BenchConfig, sizes: Sizes
) -> list[tuple[Measurement, Latency]]:
    """One call per event on one connection; every call timed (throughput and latency)."""
    ms = _measurements(
        stages,
        "submit_event",
        "submit_event, one call per event",
        unit="events/s",
        target=SINGLE_CALL_TARGET,
        params={"events": sizes.single_events, "warmup": sizes.single_warmup, "triggers": 0},
    )
    lats = {
        stage.key: Latency(
            name=stage.name("submit_event_latency"),
            operation=stage.operation("submit_event, one call"),
        )
        for stage in stages
    }
    payloads = [event_payload(i) for i in range(sizes.single_events)]
    clock = time.perf_counter
    for _repeat, variant, stage in blocks(config.repeats, VARIANTS, stages):
        stage.db.reset()
        m = ms[stage.key]
        with plane(variant, stage.db.url) as p:
            for i in range(sizes.single_warmup):
                p.submit_event(event_payload(-1 - i))
            samples = [0.0] * len(payloads)
            cpu_began = time.process_time()
            began = clock()
            for i, item in enumerate(payloads):
                t = clock()
                p.submit_event(item)
                samples[i] = clock() - t
            seconds = clock() - began
            cpu_s = time.process_time() - cpu_began
        stored = count_rows(stage.db, EVENT_TABLE[variant])
        expected = sizes.single_events + sizes.single_warmup
        if stored != expected:
            m.valid = False
            log(f"  {m.name} {variant}: {stored} events stored, expected {expected}")
        rate = m.series(variant).add(len(payloads), seconds, cpu_s, stored=stored)
        lats[stage.key].samples(variant).extend(samples)
        log(f"  {m.name} {variant}: {rate:,.0f} events/s")
    return [(ms[stage.key], lats[stage.key]) for stage in stages]


def measure_submit_events(
    stages: list[Stage], config: BenchConfig, sizes: Sizes
) -> list[Measurement]:
    """``submit_events`` (and ``submit_event_ids`` where the SDK has it) with batches of
    100 on one connection; the bare twin is one INSERT ... RETURNING id per batch."""
    batch, batches = sizes.batch_size, sizes.batches
    kinds = [("submit_events", "submit_events", "rows")]
    if HAS_SUBMIT_IDS:
        kinds.append(("submit_event_ids", "submit_event_ids", "ids"))
    work = [event_specs(i * batch, batch) for i in range(batches)]
    out: list[Measurement] = []
    for base, operation, call in kinds:
        ms = _measurements(
            stages,
            f"{base}_{batch}",
            f"{operation}, batch of {batch:,}",
            unit="events/s",
            target=EVENTS_BATCH_TARGET,
            params={
                "batch": batch,
                "batches": batches,
                "events": batch * batches,
                "triggers": 0,
                "sdk_call": operation,
            },
        )
        for _repeat, variant, stage in blocks(config.repeats, VARIANTS, stages):
            stage.db.reset()
            m = ms[stage.key]
            with plane(variant, stage.db.url) as p:
                send = p.submit_event_ids if call == "ids" else p.submit_events
                send(event_specs(-batch - 1, batch))  # warm-up
                cpu_began = time.process_time()
                began = time.perf_counter()
                done = sum(send(events) for events in work)
                seconds = time.perf_counter() - began
                cpu_s = time.process_time() - cpu_began
            if done != batch * batches:
                raise BenchError(f"{base} returned {done} answers for {batch * batches}")
            stored = count_rows(stage.db, EVENT_TABLE[variant])
            if stored != batch * (batches + 1):
                m.valid = False
                expected = batch * (batches + 1)
                log(f"  {m.name} {variant}: {stored} events stored, expected {expected}")
            rate = m.series(variant).add(done, seconds, cpu_s, stored=stored)
            log(f"  {m.name} {variant}: {rate:,.0f} events/s")
        out.extend(ms[stage.key] for stage in stages)
    return out


def enable_template(db: BenchDatabase) -> None:
    """Templates ship disabled; an operator enables one through the SDK (audited)."""
    with JobForgeClient.from_postgres(db.url, flags=sdk_flags(), max_size=1) as client:
        row = client.set_template_enabled(template_key=TEMPLATE_KEY, enabled=True)
    if row is None or not row.enabled:
        raise BenchError(f"could not enable template {TEMPLATE_KEY}")


def measure_request_job(
    stages: list[Stage], config: BenchConfig, sizes: Sizes
) -> list[Measurement]:
    """``request_job`` of an enabled, non-action template: template lookup, input-schema
    check, enqueue and audit, one commit per request."""
    ms = _measurements(
        stages,
        "request_job",
        f"request_job ({TEMPLATE_KEY}), one call per job",
        unit="requests/s",
        target=SINGLE_CALL_TARGET,
        params={"requests": sizes.requests, "warmup": sizes.request_warmup, "inputs": INPUTS},
    )
    for stage in stages:
        enable_template(stage.db)
    for _repeat, variant, stage in blocks(config.repeats, VARIANTS, stages):
        stage.db.reset()
        m = ms[stage.key]
        with plane(variant, stage.db.url) as p:
            for _ in range(sizes.request_warmup):
                p.request_job()
            cpu_began = time.process_time()
            began = time.perf_counter()
            for _ in range(sizes.requests):
                p.request_job()
            seconds = time.perf_counter() - began
            cpu_s = time.process_time() - cpu_began
        jobs = count_rows(stage.db, JOB_TABLE[variant])
        if jobs != sizes.requests + sizes.request_warmup:
            m.valid = False
            log(f"  {m.name} {variant}: {jobs} jobs, expected more")
        rate = m.series(variant).add(sizes.requests, seconds, cpu_s, stored_jobs=jobs)
        log(f"  {m.name} {variant}: {rate:,.0f} requests/s")
    return [ms[stage.key] for stage in stages]


# -- list_events on a loaded table -----------------------------------------------------

# One statement: N events in arrival order (occurred_at grows with g, tenants and types
# interleave as hashed), payloads of ~90 bytes; every 20th carries an email with a
# redaction hint and every 50th is marked PII, so pages pay for some redaction.
LOAD_SQL = """
insert into public.jobforge_events (
  tenant_id, project_id, event_version, event_type, occurred_at, trace_id, actor_id,
  source_app, source_module, subject_type, subject_id, payload, contains_pii,
  redaction_hints, processed, created_at
)
select
  (%(tenants)s::uuid[])[1 + r.t],
  null,
  '1.0',
  (%(types)s::text[])[1 + r.k],
  r.at,
  'trace-' || g,
  'user-' || (r.h %% 5000),
  (%(apps)s::text[])[1 + r.k %% 6],
  (array['ops', 'support', 'growth', 'finops', 'core'])[1 + r.k %% 5],
  'order',
  'ord-' || (r.h %% 100000),
  case when g %% 20 = 0
    then jsonb_build_object('n', g, 'amount_cents', r.h %% 100000, 'currency', 'EUR',
      'email', 'user' || (r.h %% 5000) || '@example.com')
    else jsonb_build_object('n', g, 'amount_cents', r.h %% 100000, 'currency', 'EUR',
      'status', 'ok')
  end,
  g %% 50 = 0,
  case when g %% 20 = 0 then '{"redact_fields": ["email"]}'::jsonb end,
  r.at < %(now)s - interval '1 hour',
  r.at + interval '150 milliseconds'
from generate_series(1, %(n)s) as g,
  lateral (
    select
      abs(hashint4(g)::bigint) as h,
      abs(hashint4(g)::bigint) %% %(tenant_count)s as t,
      abs(hashint4(-g)::bigint) %% %(type_count)s as k,
      %(now)s - interval '30 days' + (g::double precision / %(n)s) * interval '30 days' as at
  ) as r
"""

INDEXES_SQL = """
select i.indexrelid::regclass::text, pg_catalog.pg_get_indexdef(i.indexrelid),
  c.conname, pg_catalog.pg_get_constraintdef(c.oid)
from pg_catalog.pg_index i
left join pg_catalog.pg_constraint c on c.conindid = i.indexrelid and c.conrelid = i.indrelid
where i.indrelid = 'public.jobforge_events'::regclass
order by 1
"""


@dataclass
class LoadedEvents:
    """What ``load_events`` put in the table, for building queries that hit it."""

    tenants: list[uuid.UUID]
    now: datetime
    count: int
    seconds: float
    table_bytes: int = 0
    index_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def load_events(db: BenchDatabase, count: int) -> LoadedEvents:
    """Fill ``jobforge_events`` with ``count`` generated events (see ``LOAD_SQL``), with
    its indexes dropped during the load and rebuilt from their catalog definitions."""
    tenants = [uuid.UUID(int=(0xBE9C << 96) + i) for i in range(LOAD_TENANTS)]
    now = datetime.now(UTC).replace(microsecond=0)
    values = {
        "tenants": tenants,
        "types": list(LOAD_EVENT_TYPES),
        "apps": list(LOAD_SOURCE_APPS),
        "now": now,
        "n": count,
        "tenant_count": LOAD_TENANTS,
        "type_count": len(LOAD_EVENT_TYPES),
    }
    notes: list[str] = []
    began = time.perf_counter()
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("truncate public.jobforge_events cascade")
        indexes = conn.execute(INDEXES_SQL).fetchall()
        try:
            with conn.transaction():
                for name, _definition, constraint, _constraint_def in indexes:
                    if constraint:
                        conn.execute(
                            f"alter table public.jobforge_events drop constraint {constraint}"
                        )
                    else:
                        conn.execute(f"drop index {name}")
                conn.execute(LOAD_SQL, values)
                conn.execute("set local maintenance_work_mem = '256MB'")
                for _name, definition, constraint, constraint_def in indexes:
                    if constraint:
                        conn.execute(
                            f"alter table public.jobforge_events add constraint {constraint}"
                            f" {constraint_def}"
                        )
                    else:
                        conn.execute(definition)
        except psycopg.errors.DependentObjectsStillExist as exc:
            # A later migration references an event key: load with the indexes in place.
            notes.append(f"indexes kept during the load ({exc.diag.message_primary})")
            conn.execute(LOAD_SQL, values)
        conn.execute("analyze public.jobforge_events")
        sizes = conn.execute(
            "select pg_catalog.pg_table_size('public.jobforge_events'),"
            " pg_catalog.pg_indexes_size('public.jobforge_events')"
        ).fetchone()
    seconds = time.perf_counter() - began
    loaded = LoadedEvents(tenants=tenants, now=now, count=count, seconds=seconds, notes=notes)
    if sizes:
        loaded.table_bytes, loaded.index_bytes = int(sizes[0]), int(sizes[1])
    return loaded


def list_queries(loaded: LoadedEvents, kind: str, calls: int) -> list[ListQuery]:
    """The same call sequence for both variants: tenants, types and windows vary call by
    call, so the pages come from all over the table rather than one cached corner."""
    out: list[ListQuery] = []
    for i in range(calls):
        tenant = loaded.tenants[(i * 37) % len(loaded.tenants)]
        if kind == "filtered":
            until = loaded.now - timedelta(days=i % 20)
            out.append(
                ListQuery(
                    tenant_id=tenant,
                    event_type=LOAD_EVENT_TYPES[(i * 7) % len(LOAD_EVENT_TYPES)],
                    since=until - WINDOW,
                    until=until,
                )
            )
        else:
            out.append(ListQuery(tenant_id=tenant))
    return out


LIST_KINDS = {
    "filtered": "tenant + event_type + 7-day window",
    "first_page": "tenant only, first page",
}


def measure_list_events(
    db: BenchDatabase, config: BenchConfig, sizes: Sizes, result: ModuleResult
) -> None:
    """Load the table, then time each page, SDK and raw alternating by repeat; the calls
    are split over the repeats (~``list_calls`` per variant and kind in all)."""
    log(f"  loading {sizes.list_events:,} events")
    loaded = load_events(db, sizes.list_events)
    log(
        f"  loaded in {loaded.seconds:.1f} s: table {loaded.table_bytes / 2**20:,.0f} MiB,"
        f" indexes {loaded.index_bytes / 2**20:,.0f} MiB"
    )
    result.notes.extend(loaded.notes)
    per_repeat = max(1, -(-sizes.list_calls // config.repeats))
    for kind, description in LIST_KINDS.items():
        queries = list_queries(loaded, kind, per_repeat)
        m = Measurement(
            name=f"list_events_{kind}",
            operation=f"list_events, {description}, limit 100 ({loaded.count:,} events)",
            unit="pages/s",
            params={
                "events": loaded.count,
                "tenants": LOAD_TENANTS,
                "event_types": len(LOAD_EVENT_TYPES),
                "calls_per_run": per_repeat,
                "load_seconds": round(loaded.seconds, 1),
                "table_bytes": loaded.table_bytes,
                "index_bytes": loaded.index_bytes,
            },
        )
        lat = Latency(
            name=f"list_events_{kind}_latency",
            operation=f"list_events, {description}",
            shown=("p50", "p95"),
        )
        rows_seen: dict[str, list[int]] = {"sdk": [], "raw": []}
        for repeat in range(config.repeats):
            for variant in variant_order(repeat):
                with plane(variant, db.url) as p:
                    p.list_events(queries[-1])  # warm-up: connect, signatures, plan
                    samples: list[float] = []
                    rows: list[int] = []
                    cpu_began = time.process_time()
                    began = time.perf_counter()
                    for query in queries:
                        t = time.perf_counter()
                        rows.append(p.list_events(query))
                        samples.append(time.perf_counter() - t)
                    seconds = time.perf_counter() - began
                    cpu_s = time.process_time() - cpu_began
                rows_seen[variant].extend(rows)
                lat.samples(variant).extend(samples)
                rate = m.series(variant).add(len(queries), seconds, cpu_s, rows=sum(rows))
                log(f"  list_events_{kind} {variant}: {rate:,.0f} pages/s")
        if rows_seen["sdk"] != rows_seen["raw"]:
            m.valid = False
            log(f"  list_events_{kind}: SDK and raw returned different row counts")
        m.extra["rows_per_page_median"] = statistics.median(rows_seen["sdk"] or [0])
        result.measurements.append(m)
        result.latencies.append(lat)
        plan, source = explain_list(db, queries[0])
        result.blocks.append(
            Block(
                title=f"Plan of jobforge_list_events, {description} ({loaded.count:,} events;"
                f" {source})",
                text=plan,
            )
        )


# -- the plan of the dynamic query ------------------------------------------------------

AUTO_EXPLAIN_SETTINGS = {
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "on",
    "auto_explain.log_nested_statements": "on",
    # NOTICE reaches the client: no need to read the server's log file.
    "auto_explain.log_level": "notice",
}


def explain_list(db: BenchDatabase, query: ListQuery) -> tuple[str, str]:
    """The plan of the page query ``jobforge_list_events`` builds and EXECUTEs, with the
    second of two identical calls (so the buffers show a warm cache). Returns the plan and
    where it came from."""
    try:
        return _auto_explain(db, query), "captured inside the RPC by auto_explain"
    except (psycopg.Error, BenchError) as exc:
        log(f"  auto_explain unavailable ({type(exc).__name__}: {exc}); explaining a copy")
    return _explain_copy(db, query), (
        "EXPLAIN of the same query text the RPC builds, prepared and executed with the same"
        " values: auto_explain could not be loaded"
    )


def _auto_explain(db: BenchDatabase, query: ListQuery) -> str:
    notices: list[str] = []
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("load 'auto_explain'")
        for name, value in AUTO_EXPLAIN_SETTINGS.items():
            conn.execute("select pg_catalog.set_config(%s, %s, false)", (name, value))
        for _ in range(2):
            notices.clear()
            conn.execute(RAW_LIST, (query.tenant_id, Jsonb(query.filters()))).fetchone()
    plans = [n for n in notices if "from public.jobforge_events e" in n]
    if not plans:
        raise BenchError("auto_explain reported no plan for the page query")
    return _tidy_plan(plans[-1])


def _tidy_plan(text: str) -> str:
    """auto_explain's NOTICE starts with ``duration: ... plan:``; keep query and plan."""
    lines = text.splitlines()
    if lines and lines[0].startswith("duration:"):
        lines = lines[1:]
    return "\n".join(line.rstrip() for line in lines).strip()


# The query ``jobforge_list_events`` builds for the filters this module uses (see the
# function in 002_execution_plane.sql); parameters keep the RPC's numbering.
_PAGE_SQL = (
    "select coalesce(pg_catalog.jsonb_agg("
    "case when page.redaction_hints is null and not page.contains_pii"
    " then pg_catalog.to_jsonb(page)"
    " else pg_catalog.to_jsonb(page) || pg_catalog.jsonb_build_object('payload',"
    " jobforge_private.event_safe_payload(page.payload, page.contains_pii,"
    " page.redaction_hints)) end"
    " order by page.occurred_at desc, page.id desc), '[]'::jsonb)"
    " from (select e.* from public.jobforge_events e where e.tenant_id = $1{filters}"
    " order by e.occurred_at desc, e.id desc limit $12 offset $13) as page"
)
_PARAM_TYPES = (
    "uuid, uuid, text, text, text, boolean, text, text, text, timestamptz, timestamptz,"
    " integer, integer"
)


def _explain_copy(db: BenchDatabase, query: ListQuery) -> str:
    filters = ""
    if query.event_type is not None:
        filters += " and e.event_type = $3"
    if query.since is not None:
        filters += " and e.occurred_at >= $10"
    if query.until is not None:
        filters += " and e.occurred_at < $11"
    statement = _PAGE_SQL.format(filters=filters)
    args = (
        query.tenant_id,
        None,
        query.event_type,
        None,
        None,
        None,
        None,
        None,
        None,
        query.since,
        query.until,
        query.limit,
        0,
    )
    placeholders = ", ".join(["%s"] * len(args))
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(f"prepare bench_page ({_PARAM_TYPES}) as {statement}")
        # Values inlined client-side: EXECUTE's arguments take the PREPARE'd types, while
        # server-side parameters (the NULLs) would have none.
        cur = psycopg.ClientCursor(conn)
        cur.execute(f"execute bench_page ({placeholders})", args)
        cur.execute(f"explain (analyze, buffers) execute bench_page ({placeholders})", args)
        rows = cur.fetchall()
    return "Query Text: " + statement + "\n" + "\n".join(str(r[0]) for r in rows)


# -- the module -------------------------------------------------------------------------


def run(config: BenchConfig) -> ModuleResult:
    """Every measurement of this module, on one scratch database (or, under
    ``--history``, the contract's rows on the empty and the history database)."""
    sizes = QUICK if config.quick else FULL
    result = ModuleResult(name=NAME)
    began = time.perf_counter()
    log(f"  jobforge_sdk from {SDK_PATH}")
    with contextlib.ExitStack() as stack:
        own = None
        if config.history is None:
            own = stack.enter_context(scratch_database(config.server_url))
            bare.install(own.url)
        stages = stages_of(config, own)
        for stage in stages:
            stage.db.live_tenants = (TENANT_ID,)

        def single() -> None:
            for m, lat in measure_submit_event(stages, config, sizes):
                result.measurements.append(m)
                result.latencies.append(lat)

        def batch() -> None:
            result.measurements.extend(measure_submit_events(stages, config, sizes))

        def listing() -> None:
            if own is not None:
                measure_list_events(own, config, sizes, result)

        def request() -> None:
            result.measurements.extend(measure_request_job(stages, config, sizes))

        steps: list[tuple[str, Callable[[], None]]] = [
            ("submit_event", single),
            ("submit_events", batch),
            ("request_job", request),
            ("list_events", listing),
        ]
        if config.history is not None:  # list_events has its own million events
            steps = [step for step in steps if step[0] != "list_events"]
        for name, step in steps:
            if not config.wants(name):
                continue
            log(f"{NAME}.{name}")
            try:
                step()
            except (BenchError, JobForgeError, psycopg.Error, OSError) as exc:
                log(f"{NAME}.{name} failed: {exc}")
                result.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        if config.history is not None:
            for stage in stages:
                stage.db.reset()  # leave the pair as found for the next module
    result.seconds = time.perf_counter() - began
    for m in result.measurements:
        if not m.valid:
            result.errors.append(f"{m.name}: verification failed")
    return result
