"""``jobforge limits set|list|delete``: the concurrency and rate limits claims keep.

A limit is keyed by ``--type``, ``--tenant-id``, both, or ``--cost-tier``; the database
checks every combination again, and a refusal is printed as one line naming the option.
"""

from __future__ import annotations

import argparse
from typing import Any

from jobforge_sdk.models.limits import JobLimit
from jobforge_sdk.tooling.cli import (
    EXIT_OK,
    _cell,
    _client,
    _db,
    _flags,
    _print_json,
    _rows,
    _table,
    _uuid,
)
from jobforge_sdk.tooling.purge import duration

__all__ = ["add_limits_commands"]

_COLUMNS = ("key", "max_running", "running", "max_starts", "per", "updated_at")


def _key(row: JobLimit) -> str:
    if row.cost_tier is not None:
        return f"cost tier {row.cost_tier}"
    parts = [
        f"type {row.type}" if row.type else "",
        f"tenant {row.tenant_id}" if row.tenant_id else "",
    ]
    return ", ".join(part for part in parts if part)


def _key_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"type": args.type, "tenant_id": args.tenant_id, "cost_tier": args.cost_tier}


def _cmd_set(args: argparse.Namespace) -> int:
    with _client(args, _flags()) as client:
        row = client.set_limit(
            **_key_args(args),
            max_running=args.max_running,
            max_starts=args.max_starts,
            per=args.per,
            actor_id=args.actor_id,
        )
    if args.json:
        _print_json(row.model_dump(mode="json"))
    else:
        print(f"limit of {_key(row)}: {_describe(row)}")
    return EXIT_OK


def _describe(row: JobLimit) -> str:
    caps = []
    if row.max_running is not None:
        caps.append(f"at most {row.max_running} running ({row.running} now)")
    if row.max_starts is not None:
        caps.append(f"at most {row.max_starts} starts per {row.per_seconds}s")
    return "; ".join(caps)


def _cmd_list(args: argparse.Namespace) -> int:
    with _client(args, _flags()) as client:
        rows = client.list_limits(type=args.type, tenant_id=args.tenant_id)
    if args.json:
        _print_json(_rows(rows))
    elif not rows:
        print("no limits")
    else:
        lines = [
            [
                _key(r),
                _cell(r.max_running),
                r.running,
                _cell(r.max_starts),
                _cell(None if r.per_seconds is None else f"{r.per_seconds}s"),
                r.updated_at,
            ]
            for r in rows
        ]
        print(_table(lines, _COLUMNS))
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace) -> int:
    with _client(args, _flags()) as client:
        row = client.delete_limit(**_key_args(args), actor_id=args.actor_id)
    if args.json:
        _print_json(row.model_dump(mode="json"))
    else:
        print(f"deleted the limit of {_key(row)}")
    return EXIT_OK


def _count(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", help="the job type it counts")
    parser.add_argument("--tenant-id", "--tenant", type=_uuid, help="the tenant it counts")
    parser.add_argument(
        "--cost-tier",
        choices=("low", "medium", "high"),
        help="each template type of this tier (not with --type or --tenant-id)",
    )
    parser.add_argument("--actor-id", help="who to record in the audit trail")
    parser.add_argument("--json", action="store_true", help="print the limit as JSON")


def add_limits_commands(commands: Any) -> None:
    """Add ``limits`` and its subcommands to the ``jobforge`` subparsers."""
    limits = commands.add_parser("limits", help="set, list or delete concurrency and rate limits")
    sub = limits.add_subparsers(dest="limits_command", required=True, parser_class=type(limits))

    set_ = sub.add_parser("set", help="create or change the limit of a type, tenant or tier")
    _db(set_, supabase=True)
    _key_options(set_)
    set_.add_argument(
        "--max-running", type=_count, help="at most this many running at once (0 pauses)"
    )
    set_.add_argument("--max-starts", type=_count, help="at most this many starts per --per")
    set_.add_argument("--per", type=duration, help="the rate window, e.g. 60s, 1m, 1h")
    set_.set_defaults(handler=_cmd_set)

    list_ = sub.add_parser("list", help="the limits, each with its running jobs")
    _db(list_, supabase=True)
    list_.add_argument("--type", help="only the limits of this type")
    list_.add_argument("--tenant-id", "--tenant", type=_uuid, help="only this tenant's limits")
    list_.add_argument("--json", action="store_true", help="print JSON, not a table")
    list_.set_defaults(handler=_cmd_list)

    delete = sub.add_parser("delete", help="delete the limit of a type, tenant or tier")
    _db(delete, supabase=True)
    _key_options(delete)
    delete.set_defaults(handler=_cmd_delete)
