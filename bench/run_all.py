"""Run the benchmark modules, write ``bench/results/latest.json`` and print a Markdown report.

    python -m bench.run_all                    # everything (``make bench``)
    python -m bench.run_all --quick            # small sizes, under 2 minutes: does it all work?
    python -m bench.run_all --only core_queue.enqueue_single
    python -m bench.run_all --only worker_latency --only peers --quick
    python -m bench.run_all --only fairness    # fair claims, limits vs none
    python -m bench.run_all --history          # the contract's rows, empty vs 1M jobs + events
    python -m bench.run_all --database-url postgresql://postgres@127.0.0.1:5432/postgres

The server comes from ``--database-url``, else ``JOBFORGE_BENCH_DATABASE_URL``, else the
local default; its user must be allowed to CREATE DATABASE (each module measures in a
scratch database that it drops afterwards).

Progress goes to stderr and the report to stdout, so ``make bench > report.md`` keeps only
the Markdown. The exit status is 1 when any measurement failed or could not be verified;
never because a number missed its target (that is for people to judge).

Every figure has its yardstick in the same run (docs/architecture.md, "Performance
targets"): the raw call of the same SQL function, and for the contract's rows the bare
table of ``bench/bare.py``; the report's "target met" column checks the contract's ratios.
``--history`` (``bench/history.py``) measures the contract's rows of ``core_queue`` and
``execution_plane`` on an empty database and on one holding a history of finished jobs
and events, alternating, and reports history/empty.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from . import bare, core_queue, execution_plane, fairness, history, peers, worker_latency
from .harness import (
    DEFAULT_SERVER_URL,
    HISTORY_MAX_SLOWDOWN,
    MIGRATIONS_PATH,
    SDK_PATH,
    SERVER_URL_ENV,
    BenchConfig,
    BenchError,
    HistoryPair,
    ModuleResult,
    check_durable,
    log,
    machine_info,
    redact,
    server_settings,
    write_json,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"
# The modules whose contract rows --history measures.
HISTORY_MODULES = (core_queue.NAME, execution_plane.NAME)
RATIO_NAMES = {"sdk_bare": "SDK/bare", "sdk_raw": "SDK/raw", "raw_bare": "raw/bare"}


@dataclass(frozen=True)
class Module:
    """A benchmark module: its measurement names and how to run it."""

    name: str
    measurements: tuple[str, ...]
    run: Callable[[BenchConfig], ModuleResult]


MODULES: dict[str, Module] = {
    core_queue.NAME: Module(core_queue.NAME, core_queue.MEASUREMENTS, core_queue.run),
    execution_plane.NAME: Module(
        execution_plane.NAME, execution_plane.MEASUREMENTS, execution_plane.run
    ),
    worker_latency.NAME: Module(
        worker_latency.NAME, worker_latency.MEASUREMENTS, worker_latency.run
    ),
    peers.NAME: Module(peers.NAME, peers.MEASUREMENTS, peers.run),
    fairness.NAME: Module(fairness.NAME, fairness.MEASUREMENTS, fairness.run),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run_all", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(SERVER_URL_ENV, "").strip() or DEFAULT_SERVER_URL,
        help=f"server to measure on (default: ${SERVER_URL_ENV}, else {DEFAULT_SERVER_URL})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1.5 minute run")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="a module (core_queue, execution_plane, worker_latency, peers, fairness) or one"
        " measurement (core_queue.claim_complete); repeatable",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per measurement, at least 3 (default 3)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON result file")
    parser.add_argument(
        "--history",
        action="store_true",
        help="measure the contract's rows of core_queue and execution_plane on an empty"
        " database and on one holding finished jobs and events (history/empty ratios)",
    )
    parser.add_argument(
        "--history-rows",
        type=int,
        default=None,
        metavar="N",
        help=f"finished jobs and events of the history (default {history.HISTORY_ROWS:,};"
        f" with --quick {history.QUICK_HISTORY_ROWS:,})",
    )
    parser.add_argument(
        "--allow-non-durable",
        action="store_true",
        help="measure even if synchronous_commit or fsync is off (reported as such)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error("--repeats must be at least 3: one or two runs cannot show the noise")
    if args.history_rows is not None and not args.history:
        parser.error("--history-rows goes with --history")
    if args.history_rows is not None and args.history_rows < 1:
        parser.error("--history-rows must be positive")
    return args


def select(only: Sequence[str], *, history_run: bool = False) -> dict[str, frozenset[str]]:
    """Module name -> measurement names to run (empty set: all), from ``--only``; with
    ``--history`` only the modules it applies to."""
    if history_run:
        chosen = select(only) if only else {name: frozenset() for name in HISTORY_MODULES}
        other = sorted(set(chosen) - set(HISTORY_MODULES))
        if other:
            raise BenchError(f"--history applies to {' and '.join(HISTORY_MODULES)}, not {other}")
        return chosen
    if not only:
        return {name: frozenset() for name in MODULES}
    whole: set[str] = set()
    parts: dict[str, set[str]] = {}
    for item in only:
        module, _, measurement = item.partition(".")
        if module not in MODULES:
            raise BenchError(f"--only {item}: no module {module!r} (have: {', '.join(MODULES)})")
        if not measurement:
            whole.add(module)
        elif measurement in MODULES[module].measurements:
            parts.setdefault(module, set()).add(measurement)
        else:
            have = ", ".join(MODULES[module].measurements)
            raise BenchError(f"--only {item}: {module} has no {measurement!r} (have: {have})")
    return {
        name: frozenset() if name in whole else frozenset(parts[name])
        for name in MODULES
        if name in whole or name in parts
    }


# -- Markdown ---------------------------------------------------------------------------


def _rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def _cell(series: dict[str, Any], unit: str) -> str:
    if not series["runs"]:
        return "—"
    return f"{_rate(series['median'])} {unit} ({_rate(series['min'])}-{_rate(series['max'])})"


def _ratio(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def _yardstick_cell(m: dict[str, Any]) -> str:
    """SDK over the row's yardstick: bare, or raw for single calls and rows without bare."""
    ratios, target = m["ratios"], m["target"] or {}
    if "sdk_raw" in target or not m["bare"]["runs"]:
        value = ratios["sdk_raw"]
        return "—" if math.isnan(value) else f"{value:.2f} (raw)"
    return _ratio(ratios["sdk_bare"])


def _target_cell(m: dict[str, Any]) -> str:
    """The contract's conditions for the row, each with ✓ or ✗."""
    if not m["target"]:
        return "—"
    parts = []
    for name, minimum in m["target"].items():
        value = m["ratios"][name]
        mark = "?" if math.isnan(value) else ("✓" if value >= minimum else "✗")
        parts.append(f"{RATIO_NAMES[name]} ≥ {minimum:.2f} {mark}")
    return "; ".join(parts)


def _us(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f} µs"


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f} ms"


def _diff(sdk: float, raw: float, unit: str, digits: int) -> str:
    if math.isnan(sdk) or math.isnan(raw):
        return "—"
    return f"{sdk - raw:+,.{digits}f} {unit}"


def _samples(latency: dict[str, Any], variant: str) -> bool:
    return bool(latency.get(variant, {}).get("samples"))


def _latency_cell(value: float, target: float | None) -> str:
    if target is None or math.isnan(value):
        return _ms(value)
    return f"{_ms(value)} {'✓' if value <= target else '✗'} (≤ {target:g} ms)"


def _render_table(table: dict[str, Any]) -> list[str]:
    columns = table["columns"]
    lines = [
        "",
        f"**{table['title']}**",
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table["rows"]]
    if table["notes"]:
        lines.append("")
        lines += [f"- {note}" for note in table["notes"]]
    return lines


def render_history(report: dict[str, Any]) -> list[str]:
    """The history/empty table of a ``--history`` run (nothing otherwise)."""
    info = report.get("history")
    if not info:
        return []
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for module in report["modules"].values():
        for m in module["measurements"]:
            if m.get("stage"):
                pairs.setdefault(m["base"], {})[m["stage"]] = m
    minimum = 1 / HISTORY_MAX_SLOWDOWN
    lines = [
        "",
        f"**History: {info['label']} vs empty tables, same run, blocks alternated**",
        "",
        "| operation | SDK, empty | SDK, history | SDK history/empty | raw history/empty"
        f" | bare history/empty | within {HISTORY_MAX_SLOWDOWN:g}x |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for stages in pairs.values():
        empty, full = stages.get("empty"), stages.get("history")
        if empty is None or full is None:
            continue
        ratios = {}
        for variant in ("sdk", "raw", "bare"):
            a, b = full[variant], empty[variant]
            ratios[variant] = (
                a["median"] / b["median"] if a["runs"] and b["runs"] and b["median"] else math.nan
            )
        sdk = ratios["sdk"]
        mark = "—" if math.isnan(sdk) else ("✓" if sdk >= minimum else "✗")
        operation = empty["operation"].rsplit(" [", 1)[0]
        lines.append(
            f"| {operation} | {_cell(empty['sdk'], empty['unit'])}"
            f" | {_cell(full['sdk'], full['unit'])} | {_ratio(sdk)} | {_ratio(ratios['raw'])}"
            f" | {_ratio(ratios['bare'])} | ≥ {minimum:.2f} {mark} |"
        )
    lines += [
        "",
        f"History/empty is the median throughput with the history over the median on empty"
        f" tables (✓ when the SDK's is ≥ {minimum:.2f}, i.e. at most {HISTORY_MAX_SLOWDOWN:g}x"
        f" slower). The history: finished jobs as a completion in this tree leaves them"
        f" ({info['completion']}), events as list_events loads them, and as many finished jobs"
        f" and events in the bare tables, of other tenants than the measurements'; loaded in"
        f" {info['seconds']:.0f} s"
        f" (jobs {info['jobs_s']:.0f} s, events {info['events_s']:.0f} s, bare tables"
        f" {info['bare_s']:.0f} s, VACUUM ANALYZE {info['vacuum_s']:.0f} s); foreign-key"
        f" checks {info['foreign_key_checks']}.",
        "",
        "| history table | heap | indexes (count) |",
        "|---|---:|---:|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in history.history_table_rows(info)]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The table for docs/benchmarks.md, then CPU, latency, history, machine facts and
    any errors."""
    machine = report["machine"]
    pg = machine["postgres"]
    mode = "quick run (--quick)" if report["quick"] else "full run"
    if report.get("history"):
        mode += ", --history"
    lines = [
        f"Benchmark of {report['finished_at'][:10]}, {mode}: median of {report['repeats']} runs"
        " (min-max), SDK, raw SQL and bare alternating.",
        "",
        "| operation | SDK | raw SQL | bare | SDK/bare (single calls: SDK/raw) | raw/bare"
        " | target met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    latencies: list[dict[str, Any]] = []
    errors: list[str] = []
    for module in report["modules"].values():
        for m in module["measurements"]:
            operation = m["operation"] if m["valid"] else f"{m['operation']} (NOT VERIFIED)"
            lines.append(
                f"| {operation} | {_cell(m['sdk'], m['unit'])} | {_cell(m['raw'], m['unit'])}"
                f" | {_cell(m['bare'], m['unit'])} | {_yardstick_cell(m)}"
                f" | {_ratio(m['ratios']['raw_bare'])} | {_target_cell(m)} |"
            )
        latencies.extend(module["latencies"])
        errors.extend(f"{module['name']}: {e}" for e in module["errors"])
    lines += [
        "",
        'Ratios are of median throughputs in this run (docs/architecture.md, "Performance'
        ' targets"): batches and claim + complete need SDK/bare ≥ 0.7 (events 0.6); a single'
        " call needs SDK/raw ≥ 0.91 (at most 1.10x the raw call's time) and raw/bare ≥ 0.8."
        " (raw) marks a row whose SDK is compared with the raw call. Claim + complete: every"
        " job verified to end `succeeded` exactly once, with the rows a completion writes."
        f" {bare.DESCRIPTION[0].upper()}{bare.DESCRIPTION[1:]}.",
    ]
    if any(
        not m["raw"]["runs"]
        for module in report["modules"].values()
        for m in module["measurements"]
    ):
        lines[-1] += (
            " Rows without a raw SQL figure have no raw twin: their SDK column is the real"
            " `jobforge_sdk.Worker`, every job verified to end `succeeded`."
        )
    lines += [
        "",
        "Client CPU is the CPU time of the calling process(es) per job: the difference is what"
        " the SDK itself costs, and unlike throughput it hardly depends on what else runs on"
        " the machine.",
        "",
        "| client CPU per job | SDK | raw SQL | bare | difference |",
        "|---|---:|---:|---:|---:|",
    ]
    for module in report["modules"].values():
        for m in module["measurements"]:
            sdk, raw = m["sdk"]["client_cpu_us_per_job"], m["raw"]["client_cpu_us_per_job"]
            yard = m["bare"]["client_cpu_us_per_job"]
            lines.append(
                f"| {m['operation']} | {_us(sdk)} | {_us(raw)} | {_us(yard)}"
                f" | {_diff(sdk, raw, 'µs', 0)} |"
            )
    for lat in latencies:
        with_bare = _samples(lat, "bare")
        lines += [
            "",
            f"| {lat['operation']}: latency | SDK | raw SQL |"
            + (" bare |" if with_bare else "")
            + " difference |",
            "|---|---:|---:|" + ("---:|" if with_bare else "") + "---:|",
        ]
        targets = lat.get("targets_ms", {})
        for q in lat.get("shown", ("p50", "p99")):
            sdk, raw = lat["sdk"][f"{q}_ms"], lat["raw"][f"{q}_ms"]
            yard = f" {_ms(lat['bare'][f'{q}_ms'])} |" if with_bare else ""
            lines.append(
                f"| {q} | {_latency_cell(sdk, targets.get(q))} | {_ms(raw)} |{yard}"
                f" {_diff(sdk, raw, 'ms', 2)} |"
            )
    lines += render_history(report)
    for module in report["modules"].values():
        for table in module.get("tables", []):
            lines += _render_table(table)
        for block in module.get("blocks", []):
            lines += ["", f"<details><summary>{block['title']}</summary>", "", "```"]
            lines += [block["text"], "```", "", "</details>"]
        notes = module.get("notes", [])
        if notes:
            lines += ["", f"Notes ({module['name']}):"]
            lines += [f"- {note}" for note in notes]
    load_start = "/".join(f"{x:.1f}" for x in machine["load_average_at_start"])
    load_end = "/".join(f"{x:.1f}" for x in report["load_average_at_end"])
    durable = pg.get("synchronous_commit") == "on" and pg.get("fsync") == "on"
    lines += [
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_cores']} cores,"
        f" {machine['memory_gib']} GiB; {machine['os']}",
        f"- PostgreSQL {pg.get('server_version')} at {machine['postgres_host']}:"
        f" synchronous_commit = {pg.get('synchronous_commit')}, fsync = {pg.get('fsync')}"
        f", wal_sync_method = {pg.get('wal_sync_method')}"
        f", shared_buffers = {pg.get('shared_buffers')}"
        + ("" if durable else " — **commits NOT durable: not comparable to the targets**"),
        f"- {machine['python']}, psycopg {machine['psycopg']}, jobforge-sdk"
        f" {machine['jobforge_sdk']} ({machine['git_revision'] or 'unknown revision'}),"
        f" imported from {machine.get('jobforge_sdk_path')}, migrations from"
        f" {machine.get('migrations_dir')}",
        f"- Load average (1/5/15 min) at start {load_start}, at end {load_end};"
        f" run took {report['duration_s']:.0f} s",
    ]
    if errors:
        lines += ["", "**Errors:**", *(f"- {e}" for e in errors)]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------


def _terminate(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` (dropping databases) still runs."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        selection = select(args.only, history_run=args.history)
        settings = server_settings(args.database_url)
        if not args.allow_non_durable:
            check_durable(settings)
    except BenchError as exc:
        log(str(exc))
        return 2
    except Exception as exc:  # Unreachable server, bad URL: say which, do not dump a trace.
        log(f"cannot use {redact(args.database_url)}: {type(exc).__name__}: {exc}")
        return 2

    log(f"jobforge_sdk from {SDK_PATH}; migrations from {MIGRATIONS_PATH}")
    started = time.time()
    began = time.perf_counter()
    report: dict[str, Any] = {
        "schema": 2,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "quick": args.quick,
        "repeats": args.repeats,
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine_info(args.database_url, settings),
        "modules": {},
    }
    failed = False
    with contextlib.ExitStack() as stack:
        pair: HistoryPair | None = None
        if args.history:
            rows = args.history_rows or (
                history.QUICK_HISTORY_ROWS if args.quick else history.HISTORY_ROWS
            )
            try:
                pair = stack.enter_context(history.history_pair(args.database_url, rows))
            except Exception as exc:  # Nothing to measure without the history.
                log(f"could not load the history: {type(exc).__name__}: {exc}")
                return 1
            report["history"] = pair.load
        for name, only in selection.items():
            log(f"module {name}" + (f" ({', '.join(sorted(only))})" if only else ""))
            config = BenchConfig(
                server_url=args.database_url,
                quick=args.quick,
                repeats=args.repeats,
                only=only,
                history=pair,
            )
            try:
                result = MODULES[name].run(config)
            except Exception as exc:  # One broken module must not lose the others' results.
                log(f"module {name} failed: {type(exc).__name__}: {exc}")
                result = ModuleResult(name=name, errors=[f"{type(exc).__name__}: {exc}"])
            failed = failed or bool(result.errors)
            report["modules"][name] = result.as_dict()

    report["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report["duration_s"] = time.perf_counter() - began
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(args.output, report)
    log(f"wrote {args.output} ({report['duration_s']:.0f} s)")
    print(render_markdown(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
