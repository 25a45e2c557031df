"""``jobforge purge``: retention for every table, from the command line or a daily cron.

``--jobs``, ``--manifests``, ``--events`` and ``--audit`` each take a duration (``30d``,
``12h``, ``2w``; events and audit rows by whole days, as their RPCs take days). Every
table is purged in batches (at most ``--batch-size`` rows per call, each call its own
short transaction) until the database says none remain, with one progress line per
batch. Manifests go first, so a shorter manifest retention is applied before the jobs it
rides with; the audit log goes last, so the rows the other purges just wrote are never
what it removes (they are newer than any cutoff anyway). The scheduler's daily purge
(``runtime/scheduler.py``) runs the same steps.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TextIO

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.models.retention import MAX_PURGE_BATCH, MAX_RETENTION, PurgeResult

__all__ = [
    "add_purge_arguments",
    "batch_size",
    "duration",
    "purge_steps",
    "purge_usage_problem",
    "run_purge",
]

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


def batch_size(value: str) -> int:
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
        type=batch_size,
        default=MAX_PURGE_BATCH,
        metavar="N",
        help=f"rows per call (1-{MAX_PURGE_BATCH}, default {MAX_PURGE_BATCH})",
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


def purge_steps(
    client: JobForgeClient,
    *,
    jobs: timedelta | None = None,
    manifests: timedelta | None = None,
    events: timedelta | None = None,
    audit: timedelta | None = None,
    batch_size: int = MAX_PURGE_BATCH,
) -> list[tuple[str, Callable[[], PurgeResult | None]]]:
    """The purges asked for, in the order they run: (table, one batch's call). Events and
    audit rows are by whole days (the caller has checked)."""
    steps: list[tuple[str, Callable[[], PurgeResult | None]]] = []
    if manifests is not None:
        age_m = manifests
        steps.append(
            (
                "manifests",
                lambda: client.purge_manifests(older_than=age_m, batch_size=batch_size),
            )
        )
    if jobs is not None:
        age_j = jobs
        steps.append(
            ("jobs", lambda: client.purge_finished_jobs(older_than=age_j, batch_size=batch_size))
        )
    if events is not None:
        days_e = events.days
        steps.append(
            (
                "events",
                lambda: client.purge_expired_events(retention_days=days_e, batch_size=batch_size),
            )
        )
    if audit is not None:
        days_a = audit.days
        steps.append(
            (
                "audit",
                lambda: client.purge_audit_logs(retention_days=days_a, batch_size=batch_size),
            )
        )
    return steps


def run_purge(client: JobForgeClient, args: argparse.Namespace, out: TextIO) -> dict[str, Any]:
    """Run the purges asked for (``purge_usage_problem`` passed), in order; returns the
    totals by table."""
    steps = purge_steps(
        client,
        jobs=args.jobs,
        manifests=args.manifests,
        events=args.events,
        audit=args.audit,
        batch_size=args.batch_size,
    )
    return {name: _batches(name, call, out) for name, call in steps}
