"""``jobforge connectors set|list|delete``: a tenant's connector configs.

Secrets never pass through the command line, where they would sit in the shell history
and in every process listing: ``--secrets-file`` reads them as a JSON object from a file,
or from stdin with ``-``. Nothing the commands print holds a secret value, only the names
of the secret keys; a file that is not a JSON object is refused without quoting it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jobforge_sdk.models.connectors import ConnectorConfig
from jobforge_sdk.tooling.cli import (
    EXIT_OK,
    UsageError,
    _cell,
    _client,
    _db,
    _flags,
    _print_json,
    _rows,
    _table,
    _uuid,
)

__all__ = ["add_connectors_commands"]

_COLUMNS = ("connector", "enabled", "config", "secret_keys", "updated_at")


def _json_object(text: str, what: str, *, quote: bool) -> dict[str, Any]:
    """``text`` as a JSON object; the error quotes nothing of a secret (``quote``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})"
        detail = f": {exc.msg}{where}" if quote else where
        raise UsageError(f"{what}: not JSON{detail}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what}: must be a JSON object")
    return value


def _read(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.__class__.__name__}") from None


def _config(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.config is not None:
        return _json_object(args.config, "--config", quote=True)
    if args.config_file is not None:
        return _json_object(_read(args.config_file, "--config-file"), "--config-file", quote=True)
    return None


def _secrets(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.secrets_file is None:
        return None
    if args.secrets_file == "-" and args.config_file == "-":
        raise UsageError("--secrets-file and --config-file cannot both read stdin")
    return _json_object(_read(args.secrets_file, "--secrets-file"), "--secrets-file", quote=False)


def _describe(row: ConnectorConfig) -> str:
    state = "enabled" if row.enabled else "disabled"
    keys = ", ".join(row.secret_keys) or "none"
    config = ", ".join(sorted(row.config)) or "none"
    return (
        f"connector {row.connector_type} of tenant {row.tenant_id}: {state}; "
        f"config keys: {config}; secret keys: {keys}"
    )


def _cmd_set(args: argparse.Namespace) -> int:
    config, secrets = _config(args), _secrets(args)
    with _client(args, _flags(autopilot_jobs=True)) as client:
        row = client.set_connector_config(
            tenant_id=args.tenant_id,
            connector_type=args.connector_type,
            config=config,
            secrets=secrets,
            enabled=args.enable,
            actor_id=args.actor_id,
        )
    assert row is not None  # the flag is on
    if args.json:
        _print_json(row.model_dump(mode="json"))
    else:
        print(_describe(row))
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    with _client(args, _flags(autopilot_jobs=True)) as client:
        rows = client.list_connector_configs(tenant_id=args.tenant_id)
    if args.json:
        _print_json(_rows(rows))
    elif not rows:
        print("no connector configs")
    else:
        lines = [
            [
                r.connector_type,
                "yes" if r.enabled else "no",
                _cell(r.config, 40),
                ",".join(r.secret_keys),
                r.updated_at,
            ]
            for r in rows
        ]
        print(_table(lines, _COLUMNS))
    return EXIT_OK


def _cmd_delete(args: argparse.Namespace) -> int:
    with _client(args, _flags(autopilot_jobs=True)) as client:
        row = client.delete_connector_config(
            tenant_id=args.tenant_id, connector_type=args.connector_type, actor_id=args.actor_id
        )
    assert row is not None  # the flag is on
    if args.json:
        _print_json(row.model_dump(mode="json"))
    else:
        print(f"deleted connector {row.connector_type} of tenant {row.tenant_id}")
    return EXIT_OK


def add_connectors_commands(commands: Any) -> None:
    """Add ``connectors`` and its subcommands to the ``jobforge`` subparsers."""
    connectors = commands.add_parser(
        "connectors", help="set, list or delete a tenant's connector configs"
    )
    sub = connectors.add_subparsers(
        dest="connectors_command", required=True, parser_class=type(connectors)
    )

    set_ = sub.add_parser(
        "set",
        help="create or replace a connector config (config and enabled as given; "
        "secrets kept unless --secrets-file)",
    )
    _db(set_, supabase=True)
    set_.add_argument("connector_type", help="e.g. slack (a lowercase identifier)")
    set_.add_argument("--tenant-id", type=_uuid, required=True)
    config = set_.add_mutually_exclusive_group()
    config.add_argument("--config", metavar="JSON", help="the config, a JSON object")
    config.add_argument("--config-file", metavar="PATH", help="the config from a file (- : stdin)")
    set_.add_argument(
        "--secrets-file",
        metavar="PATH",
        help="the secrets, a JSON object, from a file (- : stdin); replaces the stored ones "
        "({} clears them). Never printed",
    )
    set_.add_argument("--enable", action="store_true", help="enable it (default: disabled)")
    set_.add_argument("--actor-id", help="who to record in the audit trail")
    set_.add_argument("--json", action="store_true", help="print the config as JSON")
    set_.set_defaults(handler=_cmd_set)

    list_ = sub.add_parser("list", help="a tenant's connector configs (secret key names only)")
    _db(list_, supabase=True)
    list_.add_argument("--tenant-id", type=_uuid, required=True)
    list_.add_argument("--json", action="store_true", help="print JSON, not a table")
    list_.set_defaults(handler=_cmd_list)

    delete = sub.add_parser("delete", help="delete a connector config and its secrets")
    _db(delete, supabase=True)
    delete.add_argument("connector_type")
    delete.add_argument("--tenant-id", type=_uuid, required=True)
    delete.add_argument("--actor-id", help="who to record in the audit trail")
    delete.add_argument("--json", action="store_true", help="print the deleted config as JSON")
    delete.set_defaults(handler=_cmd_delete)
