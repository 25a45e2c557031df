"""What every benchmark module shares: a scratch database, timing statistics, machine facts
and the result records that ``run_all`` turns into JSON and Markdown.

Why a scratch database: a benchmark must start from an empty, freshly migrated queue on the
server it is pointed at, and must never touch anybody else's data there. Each run creates a
uniquely named database, migrates it with the project's own ``Migrator`` (so the numbers
are for exactly the SQL in ``supabase/``), and drops it in a ``finally``, also on errors and
Ctrl-C.

Why medians of several runs: the machines this runs on are small and shared, so a single
run says little. Every measurement is repeated (3 times by default) and reported as
median with min and max, so the noise is visible next to the number.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import jobforge_sdk
from jobforge_sdk.tooling.migrate import Migrator, migrations_dir

__all__ = [
    "DEFAULT_SERVER_URL",
    "SERVER_URL_ENV",
    "BenchConfig",
    "BenchDatabase",
    "BenchError",
    "Block",
    "HistoryPair",
    "Latency",
    "Measurement",
    "ModuleResult",
    "Series",
    "Stage",
    "Table",
    "Target",
    "blocks",
    "check_durable",
    "log",
    "machine_info",
    "percentile",
    "redact",
    "rotate",
    "scratch_database",
    "server_settings",
    "stages_of",
]

SERVER_URL_ENV = "JOBFORGE_BENCH_DATABASE_URL"
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "jobforge_bench_"
REPO_ROOT = Path(__file__).resolve().parents[1]

# The tables a measurement may fill; emptied between measurements so that queue depth,
# dead tuples and index size left by one run do not slow down the next. Those a tree does
# not have are skipped (jobforge_job_results is gone since c23d9e5); the bare yardstick
# tables (bench/bare.py) are emptied with them.
QUEUE_TABLES = (
    "public.jobforge_job_results",
    "public.jobforge_job_attempts",
    "public.jobforge_jobs",
    "public.jobforge_events",
    "bench_bare.jobs",
    "bench_bare.events",
)
# Emptied by ON DELETE CASCADE from jobforge_jobs (found through their job_id index).
CASCADED_TABLES = ("public.jobforge_job_results", "public.jobforge_job_attempts")

# The SDK and the SQL under test: printed at start and in the report, so a run of another
# tree (a git worktree on PYTHONPATH) shows that it measured that tree.
SDK_PATH = str(Path(jobforge_sdk.__file__).resolve().parent)
MIGRATIONS_PATH = str(migrations_dir().resolve())

# Server settings reported with every result: what decides whether two runs are comparable.
REPORTED_SETTINGS = (
    "server_version",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "shared_buffers",
    "max_connections",
    "jit",
)


class BenchError(RuntimeError):
    """A benchmark could not run or its result is not valid (not: it was slow)."""


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the Markdown report."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """What ``run_all`` passes to each module.

    ``only`` holds measurement names of this module to run (empty: all of them).
    """

    server_url: str
    quick: bool = False
    repeats: int = 3
    only: frozenset[str] = frozenset()
    # Set by ``--history``: measure the contract's rows on an empty database and on one
    # holding a history, alternating, instead of the usual run.
    history: HistoryPair | None = None

    def wants(self, measurement: str) -> bool:
        return not self.only or measurement in self.only


# -- the scratch database ---------------------------------------------------------------


def _url_for(server_url: str, dbname: str) -> str:
    params = conninfo_to_dict(server_url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


def redact(url: str) -> str:
    """The URL without its password, for reports."""
    params = conninfo_to_dict(url)
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


@dataclass
class BenchDatabase:
    """A migrated database that belongs to one benchmark run and nobody else.

    ``history`` is set on a database preloaded with a history (``bench/history.py``): its
    reset then deletes only the rows of ``live_tenants`` (the tenants the measurements
    write as) instead of truncating, and vacuums what it deleted.
    """

    name: str
    url: str
    can_checkpoint: bool = True
    history: dict[str, Any] | None = None
    live_tenants: tuple[uuid.UUID, ...] = ()
    _tables: list[str] | None = None

    def tables(self, conn: psycopg.Connection[Any]) -> list[str]:
        """The tables of ``QUEUE_TABLES`` this database has (looked up once)."""
        if self._tables is None:
            row = conn.execute(
                "select array(select t from unnest(%s::text[]) with ordinality as u (t, o)"
                " where pg_catalog.to_regclass(t) is not null order by o)",
                (list(QUEUE_TABLES),),
            ).fetchone()
            self._tables = list(row[0]) if row else []
        return self._tables

    def reset(self) -> None:
        """Empty the queue tables and flush dirty pages, so the next measurement starts
        from the same state: no backlog, no dead tuples, no checkpoint half-way through.

        TRUNCATE gives the tables new files (no bloat carried over); CASCADE also empties
        tables of later migrations that reference jobs (safe: the database is ours alone).
        With a history, the live tenants' rows are deleted instead (children of jobs go by
        their ON DELETE CASCADE) and the tables vacuumed with index cleanup, so dead
        tuples do not pile up from run to run. CHECKPOINT needs superuser or
        ``pg_checkpoint``; without it the step is skipped and reported.
        """
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = self.tables(conn)
            if self.history is None:
                names = sql.SQL(", ").join(sql.SQL(t) for t in tables)
                conn.execute(sql.SQL("truncate {} cascade").format(names))
            else:
                tenants = list(self.live_tenants)
                for table in tables:
                    if table not in CASCADED_TABLES:
                        conn.execute(
                            sql.SQL("delete from {} where tenant_id = any (%s)").format(
                                sql.SQL(table)
                            ),
                            (tenants,),
                        )
                for table in tables:
                    conn.execute(sql.SQL("vacuum (index_cleanup on) {}").format(sql.SQL(table)))
            if self.can_checkpoint:
                try:
                    conn.execute("checkpoint")
                except psycopg.errors.InsufficientPrivilege:
                    self.can_checkpoint = False
                    log("no privilege to CHECKPOINT between measurements; skipping it")

    def analyze(self, table: str = "public.jobforge_jobs") -> None:
        """Fresh planner statistics after a bulk load, as autovacuum would give a queue that
        has been running for a while; without it the plan depends on when autovacuum ran."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("analyze {}").format(sql.SQL(table)))


@dataclass(frozen=True)
class HistoryPair:
    """``--history``: two migrated databases of the same run, one empty and one holding a
    history of finished jobs and events (``bench/history.py``); ``load`` describes it."""

    empty: BenchDatabase
    history: BenchDatabase
    load: dict[str, Any]


@dataclass(frozen=True)
class Stage:
    """A database a measurement runs on: the module's own (``key`` empty), or one of the
    ``--history`` pair (``empty``, ``history``). Each stage gets its own ``Measurement``."""

    key: str
    db: BenchDatabase
    label: str = ""

    def name(self, base: str) -> str:
        return f"{base}@{self.key}" if self.key else base

    def operation(self, text: str) -> str:
        return f"{text} [{self.label}]" if self.label else text


def stages_of(config: BenchConfig, db: BenchDatabase | None) -> list[Stage]:
    """The stages of a module: its own database, or the ``--history`` pair."""
    if config.history is None:
        if db is None:
            raise BenchError("no database to measure on")
        return [Stage("", db)]
    pair = config.history
    return [
        Stage("empty", pair.empty, "empty tables"),
        Stage("history", pair.history, str(pair.load.get("label", "with history"))),
    ]


def rotate(items: Sequence[Any], repeat: int) -> list[Any]:
    """``items`` rotated by ``repeat``: each comes first in turn, so a slow drift in machine
    load hits every variant alike instead of always the last one."""
    if not items:
        return []
    k = repeat % len(items)
    return list(items[k:]) + list(items[:k])


def blocks(
    repeats: int, variants: Sequence[str], stages: Sequence[Stage]
) -> Iterator[tuple[int, str, Stage]]:
    """The order of the timed blocks: per repeat, every variant (rotated), and for each
    variant every stage (rotated), so the empty and history blocks of one variant run next
    to each other and the variants of one stage within a few blocks."""
    for repeat in range(repeats):
        for variant in rotate(variants, repeat):
            for stage in rotate(stages, repeat):
                yield repeat, variant, stage


@contextlib.contextmanager
def scratch_database(server_url: str, *, migrate: bool = True) -> Iterator[BenchDatabase]:
    """Create a uniquely named database on the server, migrate it, yield it, drop it.

    ``migrate=False`` leaves it empty: the peers (pgqueuer, procrastinate) install their
    own schema, and must not share a database with JobForge's tables and triggers.
    The drop uses ``WITH (FORCE)`` so that connections left behind by a crashed worker
    process cannot keep the database alive.
    """
    name = f"{DATABASE_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    log(f"created database {name}")
    try:
        url = _url_for(server_url, name)
        if migrate:
            Migrator(url, echo=lambda _line: None).apply()
        yield BenchDatabase(name=name, url=url)
    finally:
        try:
            with psycopg.connect(server_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )
            log(f"dropped database {name}")
        except psycopg.Error as exc:  # Never hide the original error behind this one.
            log(f"could not drop database {name}: {exc}; drop it by hand")


# -- timing statistics ------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; ``nan`` for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Series:
    """Repeated runs of one variant (SDK or raw) of one measurement.

    Each run records how many jobs it handled and the wall time they took; the rate of a
    run is jobs / seconds, and the reported figure is the median rate. ``cpu_s`` is the CPU
    time the client process(es) spent (``time.process_time``): unlike wall time it hardly
    depends on what else the machine runs, so SDK minus raw CPU per job is the steadiest
    measure of what the SDK itself costs.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, jobs: int, seconds: float, cpu_s: float, **extra: Any) -> float:
        rate = jobs / seconds if seconds > 0 else math.inf
        run = {"jobs": jobs, "seconds": seconds, "rate": rate, "cpu_s": cpu_s, **extra}
        self.runs.append(run)
        return rate

    @property
    def cpu_us_per_job(self) -> float:
        """Median over runs of client CPU microseconds per job."""
        if not self.runs:
            return math.nan
        return float(statistics.median(run["cpu_s"] / run["jobs"] * 1e6 for run in self.runs))

    @property
    def rates(self) -> list[float]:
        return [float(run["rate"]) for run in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.runs else math.nan

    @property
    def min(self) -> float:
        return min(self.rates) if self.runs else math.nan

    @property
    def max(self) -> float:
        return max(self.rates) if self.runs else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "client_cpu_us_per_job": self.cpu_us_per_job,
            "runs": self.runs,
        }


# docs/architecture.md, "Performance targets": a single SDK call may take at most 1.10x
# the time of the raw call, i.e. SDK/raw throughput >= 1/1.10; everything within 1.2x
# with a history present, i.e. history/empty throughput >= 1/1.2.
SINGLE_CALL_MAX_SLOWDOWN = 1.10
HISTORY_MAX_SLOWDOWN = 1.2


@dataclass(frozen=True)
class Target:
    """A row's target in the performance contract: minimum throughput ratios, each
    measured in one run with the blocks alternated (``None``: no such condition)."""

    sdk_bare: float | None = None
    sdk_raw: float | None = None
    raw_bare: float | None = None

    def conditions(self) -> list[tuple[str, float]]:
        """(ratio name, minimum) for each condition this target sets."""
        return [
            (name, float(value))
            for name, value in (
                ("sdk_bare", self.sdk_bare),
                ("sdk_raw", self.sdk_raw),
                ("raw_bare", self.raw_bare),
            )
            if value is not None
        ]

    def as_dict(self) -> dict[str, float]:
        return dict(self.conditions())


BATCH_TARGET = Target(sdk_bare=0.7)
EVENTS_BATCH_TARGET = Target(sdk_bare=0.6)
SINGLE_CALL_TARGET = Target(sdk_raw=1 / SINGLE_CALL_MAX_SLOWDOWN, raw_bare=0.8)

VARIANTS = ("sdk", "raw", "bare")


def _ratio(a: Series, b: Series) -> float:
    if not a.runs or not b.runs or not b.median:
        return math.nan
    return a.median / b.median


def _paired(a: Series, b: Series) -> list[float]:
    return [x / y for x, y in zip(a.rates, b.rates, strict=False) if y > 0]


@dataclass
class Measurement:
    """One row of the report: the same operation through the SDK, through a raw call of
    the same SQL function, and (where the contract has one) through the bare yardstick
    (``bench/bare.py``), in the same run.

    Ratios are of median rates (``sdk_bare`` = median SDK rate / median bare rate); the
    ``paired`` ones divide runs that ran next to each other, which is less sensitive to
    load that changes during the run. ``target`` is the contract's condition for the row
    (``None`` where it sets none). ``stage`` is set under ``--history`` (``empty`` or
    ``history``), and ``base`` is then the name shared by the two stages.
    """

    name: str
    operation: str
    unit: str
    params: dict[str, Any]
    target: Target | None = None
    stage: str = ""
    base: str = ""
    sdk: Series = field(default_factory=Series)
    raw: Series = field(default_factory=Series)
    bare: Series = field(default_factory=Series)
    extra: dict[str, Any] = field(default_factory=dict)
    valid: bool = True

    def series(self, variant: str) -> Series:
        """``sdk``, ``raw`` or ``bare``."""
        return {"sdk": self.sdk, "raw": self.raw, "bare": self.bare}[variant]

    @property
    def ratio(self) -> float:
        """SDK/raw, as before the yardstick existed."""
        return _ratio(self.sdk, self.raw)

    def ratios(self) -> dict[str, float]:
        return {
            "sdk_raw": _ratio(self.sdk, self.raw),
            "sdk_bare": _ratio(self.sdk, self.bare),
            "raw_bare": _ratio(self.raw, self.bare),
        }

    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        ratios = self.ratios()
        values = [(ratios[name], minimum) for name, minimum in self.target.conditions()]
        if any(math.isnan(value) for value, _ in values):
            return None
        return all(value >= minimum for value, minimum in values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base or self.name,
            "stage": self.stage,
            "operation": self.operation,
            "unit": self.unit,
            "target": None if self.target is None else self.target.as_dict(),
            "params": self.params,
            "sdk": self.sdk.as_dict(),
            "raw": self.raw.as_dict(),
            "bare": self.bare.as_dict(),
            "ratios": self.ratios(),
            "sdk_raw_ratio": self.ratio,
            "paired_ratios": {
                "sdk_raw": _paired(self.sdk, self.raw),
                "sdk_bare": _paired(self.sdk, self.bare),
                "raw_bare": _paired(self.raw, self.bare),
            },
            "meets_target": self.meets_target(),
            "valid": self.valid,
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass
class Latency:
    """Per-call latency of one operation, SDK, raw and bare, in seconds (reported in ms).

    ``shown`` names the quantiles the Markdown report prints (all of ``QUANTILES`` are in
    the JSON); ``targets`` maps some of them to a target in ms. A latency measured only
    through the SDK (the worker's enqueue-to-start time has no raw twin) leaves ``raw``
    empty and the report prints a dash there.
    """

    name: str
    operation: str
    sdk: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    shown: tuple[str, ...] = ("p50", "p99")
    targets: dict[str, float] = field(default_factory=dict)

    QUANTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

    def samples(self, variant: str) -> list[float]:
        """``sdk``, ``raw`` or ``bare``."""
        return {"sdk": self.sdk, "raw": self.raw, "bare": self.bare}[variant]

    def summary(self, samples: Sequence[float]) -> dict[str, float]:
        out = {f"p{q:g}_ms": percentile(samples, q) * 1e3 for q in self.QUANTILES}
        out["mean_ms"] = statistics.fmean(samples) * 1e3 if samples else math.nan
        out["max_ms"] = max(samples) * 1e3 if samples else math.nan
        out["samples"] = float(len(samples))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "operation": self.operation,
            "shown": list(self.shown),
            "targets_ms": self.targets,
            "sdk": self.summary(self.sdk),
            "raw": self.summary(self.raw),
            "bare": self.summary(self.bare),
        }


@dataclass
class Table:
    """A free-form table of the report, for results that are not "SDK vs raw": JobForge
    next to its peers, the worker's latency breakdown. Cells are preformatted text; the
    numbers behind them belong in ``ModuleResult.data`` (the JSON)."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
        }


@dataclass
class Block:
    """Preformatted text for the report (a query plan), printed as a code block."""

    title: str
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "text": self.text}


@dataclass
class ModuleResult:
    """What a benchmark module returns; an error in one measurement does not hide the others."""

    name: str
    measurements: list[Measurement] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tables: list[Table] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    # What the reader must know that is not an error: a peer that is not installed, a
    # plan read from a reproduction rather than from the RPC itself.
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": self.seconds,
            "measurements": [m.as_dict() for m in self.measurements],
            "latencies": [lat.as_dict() for lat in self.latencies],
            "tables": [t.as_dict() for t in self.tables],
            "blocks": [b.as_dict() for b in self.blocks],
            "notes": self.notes,
            "data": self.data,
            "errors": self.errors,
        }


def measure(fn: Callable[[], object]) -> float:
    """Wall time of one call, with ``perf_counter`` (monotonic, highest resolution)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- machine facts ----------------------------------------------------------------------


def server_settings(url: str) -> dict[str, str]:
    """The settings of ``REPORTED_SETTINGS`` as this connection sees them (a DSN option can
    change ``synchronous_commit`` per connection, so it is read on the bench's own DSN)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "select name, current_setting(name) from unnest(%s::text[]) as s(name)",
            (list(REPORTED_SETTINGS),),
        ).fetchall()
    return {str(name): str(value) for name, value in rows}


def check_durable(settings: dict[str, str]) -> None:
    """Refuse to measure with non-durable commits: the targets are for durable commits, and a
    result without them would look several times better than what production gets."""
    problems = [
        f"{name} = {settings.get(name)!r}"
        for name in ("synchronous_commit", "fsync")
        if settings.get(name) != "on"
    ]
    if problems:
        raise BenchError(
            "commits are not durable on this server/connection ("
            + ", ".join(problems)
            + "); the targets assume synchronous_commit = on and fsync = on. "
            "Pass --allow-non-durable to measure anyway (the report says so)."
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _git_revision() -> str | None:
    """Commit of the measured tree, with ``+dirty`` for uncommitted changes (read only)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src", "supabase"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}+dirty" if dirty else rev


def machine_info(server_url: str, settings: dict[str, str]) -> dict[str, Any]:
    """Facts that decide whether two results can be compared."""
    host = conninfo_to_dict(server_url).get("host") or "local socket"
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "psycopg": psycopg.__version__,
        "jobforge_sdk": jobforge_sdk.__version__,
        "jobforge_sdk_path": SDK_PATH,
        "migrations_dir": MIGRATIONS_PATH,
        "git_revision": _git_revision(),
        "postgres": settings,
        "postgres_host": host,
        "server_url": redact(server_url),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a ``.tmp`` file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str, allow_nan=True) + "\n")
    tmp.replace(path)
