"""The ``jobforge`` command line.

Every command turns an expected failure (bad input, unreachable database, refused token)
into one line on stderr and exit code 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import JobForgeError
from .migrate import Migrator

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _database_url(args: argparse.Namespace) -> str:
    return str(args.database_url or os.environ.get("JOBFORGE_DATABASE_URL", ""))


def _cmd_migrate(args: argparse.Namespace) -> int:
    directory = Path(args.migrations_dir) if args.migrations_dir else None
    migrator = Migrator(_database_url(args), directory=directory, echo=print)
    if args.status:
        status = migrator.status()
        for version in status.applied:
            print(f"applied  {version}")
        for migration in status.pending:
            print(f"pending  {migration.version}  {migration.filename}")
        for migration in status.changed:
            print(f"CHANGED  {migration.version}  {migration.filename} (differs from applied)")
        for version in status.unknown:
            print(f"unknown  {version} (applied, no file on disk)")
        if status.needs_bootstrap:
            print("bootstrap needed (Supabase roles or auth.jwt() missing)")
        return EXIT_OK
    migrator.apply(dry_run=args.dry_run)
    return EXIT_OK


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL (default: $JOBFORGE_DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jobforge", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply supabase/migrations to a database")
    _add_database_option(migrate)
    mode = migrate.add_mutually_exclusive_group()
    mode.add_argument("--status", action="store_true", help="list applied and pending versions")
    mode.add_argument("--dry-run", action="store_true", help="print what would run; change nothing")
    migrate.add_argument("--migrations-dir", help=argparse.SUPPRESS)
    migrate.set_defaults(handler=_cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except JobForgeError as exc:
        print(f"jobforge {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jobforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
