"""``jobforge purge``: retention for every table, from the command line or a daily cron.

``--jobs``, ``--manifests``, ``--events`` and ``--audit`` each take a duration (``30d``,
``12h``, ``2w``). Jobs and manifests are purged in batches (at most ``--batch-size`` rows
per call, each call its own short transaction) until the database says none remain, with
one progress line per batch; events and audit rows by whole days, in one call each (their
RPCs take days). Manifests go first, so a shorter manifest retention is applied before
the jobs it rides with; the audit log goes last, so the rows the other purges just wrote
are never what it removes (they are newer than any cutoff anyway).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.models.retention import MAX_PURGE_BATCH, MAX_RETENTION, PurgeResult

__all__ = ["add_purge_arguments", "duration", "purge_usage_problem", "run_purge"]

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d{1,9})([smhdw])")


def duration(value: str) -> timedelta:
    """``30d`` and the like: a whole number and one unit (s, m, h, d, w); positive and at
    most 36,500 days, as the database allows."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {value!r} (a whole number and a unit: s, m, h, d or w, e.g. 30d)"
        )
    amount = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if amount <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    if amount > MAX_RETENTION:
        raise argparse.ArgumentTypeError(f"must be at most 36500d: {value!r}")
    return amount


def _batch_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= size <= MAX_PURGE_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PURGE_BATCH}: {value!r}")
    return size


def add_purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=duration, metavar="AGE", help="finished jobs older than AGE")
    parser.add_argument(
        "--manifests", type=duration, metavar="AGE", help="manifests of runs finished before AGE"
    )
    parser.add_argument(
        "--events", type=duration, metavar="AGE", help="events older than AGE (whole days)"
    )
    parser.add_argument(
        "--audit", type=duration, metavar="AGE", help="audit rows older than AGE (whole days)"
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=MAX_PURGE_BATCH,
        metavar="N",
        help=f"jobs or manifests per call (1-{MAX_PURGE_BATCH}, default {MAX_PURGE_BATCH})",
    )
    parser.add_argument(
        "--json", action="store_true", help="progress on stderr, the totals as JSON on stdout"
    )


def purge_usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options as a whole, or None; checked before anything is
    deleted, so a bad ``--audit`` does not follow a finished ``--jobs``."""
    if all(getattr(args, t) is None for t in ("jobs", "manifests", "events", "audit")):
        return "give at least one of --jobs, --manifests, --events, --audit"
    for option in ("events", "audit"):
        age = getattr(args, option)
        # Events and audit rows are purged by whole days (their RPCs take days).
        if age is not None and age % timedelta(days=1):
            return f"--{option}: must be whole days (e.g. 30d), got {age}"
    return None


def _batches(name: str, call: Callable[[], PurgeResult | None], out: TextIO) -> int:
    """Call until the answer says no more remain; one line per batch."""
    total = 0
    while True:
        result = call()
        if result is None:  # cannot happen: the command turns the flags on
            raise RuntimeError(f"{name}: the purge was not run")
        total += result.deleted
        state = "more to go" if result.more else "done"
        print(f"{name}: deleted {result.deleted} (total {total}), {state}", file=out, flush=True)
        if not result.more:
            return total


def run_purge(client: JobForgeClient, args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Run the purges asked for (``purge_usage_problem`` passed), in order; returns the
    totals by table."""
    totals: dict[str, Any] = {}
    if args.manifests is not None:
        totals["manifests"] = _batches(
            "manifests",
            lambda: client.purge_manifests(older_than=args.manifests, batch_size=args.batch_size),
            out,
        )
    if args.jobs is not None:
        totals["jobs"] = _batches(
            "jobs",
            lambda: client.purge_finished_jobs(older_than=args.jobs, batch_size=args.batch_size),
            out,
        )
    if args.events is not None:
        totals["events"] = client.purge_expired_events(retention_days=args.events.days)
        print(f"events: deleted {totals['events']}, done", file=out, flush=True)
    if args.audit is not None:
        totals["audit"] = client.purge_audit_logs(retention_days=args.audit.days)
        print(f"audit: deleted {totals['audit']}, done", file=out, flush=True)
    return totals
