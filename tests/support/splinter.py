"""Supabase's database linter (splinter) against any database the tests make.

``run_splinter(url)`` returns splinter's rows, one dict per finding, with the keys of
splinter's lint interface: ``name``, ``title``, ``level`` (ERROR / WARN / INFO),
``facing``, ``categories``, ``description``, ``detail``, ``remediation``, ``metadata``,
``cache_key``.

Where the lint SQL comes from (tests/support/splinter/README.md says why the repository
does not carry a copy):

1. a splinter.sql file: ``sql_path``, else ``$JOBFORGE_SPLINTER_SQL``, else
   tests/support/splinter/splinter.sql when someone put one there. It runs in one
   transaction that is rolled back, after ``set_config('pgrst.db_schemas', ...)`` and an
   empty search_path, exactly as the Supabase CLI and dashboard run it;
2. otherwise the pinned Supabase CLI (scripts/ci_tools.sh installs it), whose
   ``supabase db advisors --remote=<url>`` runs the copy of splinter built into it against
   the database itself (no Docker, no network, no access token). The CLI's copy can be
   older than splinter's main branch (3.1.0 has 23 of its 28 lints: not 0025-0029).

What the database needs: the roles ``anon`` and ``authenticated`` (lints call
``has_table_privilege('anon', ...)`` and fail without them). Everything Supabase-only is
optional: a lint about ``auth.users``, storage buckets, pg_graphql or pgmq finds nothing
where those are absent. ``db_schemas`` plays PostgREST's exposed schemas (Supabase's
default: public, graphql_public); the exposure lints (RLS disabled, security definer
executable, materialized views, ...) look only there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

SUPPORT = Path(__file__).parent
LOCAL_SQL = SUPPORT / "splinter" / "splinter.sql"
DEFAULT_DB_SCHEMAS = ("public", "graphql_public")
CLI_TIMEOUT = 300.0


class SplinterError(RuntimeError):
    pass


def _sql_file(sql_path: Path | str | None) -> Path | None:
    if sql_path is not None:
        return Path(sql_path)
    env = os.environ.get("JOBFORGE_SPLINTER_SQL", "").strip()
    if env:
        return Path(env)
    return LOCAL_SQL if LOCAL_SQL.is_file() else None


def supabase_cli() -> str | None:
    """The Supabase CLI: $SUPABASE_CLI, the one scripts/ci_tools.sh installs, or PATH's."""
    env = os.environ.get("SUPABASE_CLI", "").strip()
    if env:
        return env
    tools = os.environ.get("JOBFORGE_TOOLS_DIR", "").strip() or str(
        Path.home() / ".cache" / "jobforge-tools"
    )
    installed = Path(tools) / "bin" / "supabase"
    if os.access(installed, os.X_OK):
        return str(installed)
    return shutil.which("supabase")


def _query(sql_file: Path) -> str:
    text = sql_file.read_text()
    # The file starts with its own `set local search_path = ''`; what follows is one
    # query (a union of every lint) ending with a semicolon.
    text = re.sub(r"^\s*set\s+local\s+search_path\s*=\s*''\s*;", "", text, flags=re.I)
    return text.strip().rstrip(";")


def _from_sql(url: str, sql_file: Path, db_schemas: str) -> list[dict[str, object]]:
    query = _query(sql_file)
    with psycopg.connect(url) as conn:
        try:
            conn.execute("select set_config('pgrst.db_schemas', %s, true)", (db_schemas,))
            conn.execute("set local search_path = ''")
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(query.encode()).fetchall()
        finally:
            conn.rollback()
    return [dict(row) for row in rows]


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _from_cli(url: str, cli: str, db_schemas: str) -> list[dict[str, object]]:
    if not url.startswith(("postgresql://", "postgres://")):
        raise SplinterError("the Supabase CLI needs a postgresql:// URL, not a conninfo string")
    with tempfile.TemporaryDirectory(prefix="jobforge-splinter-") as workdir:
        config = Path(workdir) / "supabase" / "config.toml"
        config.parent.mkdir()
        schemas = ", ".join(json.dumps(s.strip()) for s in db_schemas.split(",") if s.strip())
        config.write_text(f"[api]\nschemas = [{schemas}]\n")
        env = dict(os.environ)
        env.update(
            SUPABASE_TELEMETRY_DISABLED="1",
            DO_NOT_TRACK="1",
            SUPABASE_NO_UPDATE_NOTIFIER="1",
            HOME=env.get("HOME") or workdir,
        )
        env.setdefault("PGSSLMODE", "disable")  # a URL's own sslmode wins over this
        command = [
            cli,
            "db",
            "advisors",
            f"--remote={url}",
            "--workdir",
            workdir,
            "--type",
            "all",
            "--level",
            "info",
            "--output-format",
            "json",
        ]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise SplinterError(
            f"supabase db advisors exited with {done.returncode}: {done.stderr.strip()}"
        )
    try:
        results: Any = json.loads(done.stdout)["results"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SplinterError(f"unexpected output of supabase db advisors: {done.stdout!r}") from exc
    return [{_snake(k): v for k, v in row.items()} for row in results]


def run_splinter(
    url: str,
    *,
    db_schemas: tuple[str, ...] | list[str] = DEFAULT_DB_SCHEMAS,
    sql_path: Path | str | None = None,
) -> list[dict[str, object]]:
    """Splinter's findings for the database at ``url`` (see the module docstring)."""
    schemas = ",".join(db_schemas)
    sql_file = _sql_file(sql_path)
    if sql_file is not None:
        return _from_sql(url, sql_file, schemas)
    cli = supabase_cli()
    if cli is None:
        raise SplinterError(
            "no splinter SQL and no Supabase CLI: run scripts/ci_tools.sh, or set "
            "JOBFORGE_SPLINTER_SQL to a copy of splinter.sql"
        )
    return _from_cli(url, cli, schemas)
