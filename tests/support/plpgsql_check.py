"""Static checks of every PL/pgSQL function with the plpgsql_check extension.

``plpgsql_check_findings(url)`` runs ``plpgsql_check_function_tb`` on each PL/pgSQL function
of the given schemas (default: public and jobforge_private) and returns one dict per finding:
``function`` (regprocedure text), ``relation`` (the table, for a trigger function),
``lineno``, ``statement``, ``sqlstate``, ``message``, ``detail``, ``hint``, ``level``
(``error``, ``warning``, ``warning extra``, ``performance``, ``security``), ``position``,
``query``, ``context``.

Unlike ``supabase db lint`` (same extension, default options), trigger functions are
checked too, once per table that has a trigger calling them (plpgsql_check needs the
relation), and security warnings (SQL injection through EXECUTE) are on.

The extension is not trusted: a superuser must create it. The function creates it when
missing (in schema ``extensions`` when that exists, as Supabase does), so pass a superuser
URL, or one of a database where it exists already; creating it changes the database, so
use a scratch copy. The Debian package is postgresql-15-plpgsql-check
(scripts/ci_tools.sh installs it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

DEFAULT_SCHEMAS = ("public", "jobforge_private")

_FUNCTIONS = """
select p.oid, p.oid::regprocedure::text as function, t.tgrelid as relid,
       t.tgrelid::regclass::text as relation
from pg_catalog.pg_proc p
join pg_catalog.pg_language l on l.oid = p.prolang and l.lanname = 'plpgsql'
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
left join lateral (
  select distinct tg.tgrelid
  from pg_catalog.pg_trigger tg
  where tg.tgfoid = p.oid
) t on p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype
where n.nspname = any(%(schemas)s)
  and p.prokind in ('f', 'p')
  -- trigger functions no trigger uses cannot be checked: plpgsql_check needs a relation
  and (p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype or t.tgrelid is not null)
  -- event trigger functions likewise
  and p.prorettype <> 'pg_catalog.event_trigger'::pg_catalog.regtype
order by 2, 4
"""


def _extension_schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "select extnamespace::regnamespace::text from pg_catalog.pg_extension"
        " where extname = 'plpgsql_check'"
    ).fetchone()
    if row is not None:
        return str(row[0])
    has_extensions = conn.execute("select to_regnamespace('extensions') is not null").fetchone()
    schema = "extensions" if has_extensions and has_extensions[0] else "public"
    try:
        conn.execute(
            sql.SQL("create extension plpgsql_check with schema {}").format(sql.Identifier(schema))
        )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RuntimeError(
            "plpgsql_check is not installed in this database and this user may not create "
            f"it ({exc}): create it as a superuser first"
        ) from None
    except psycopg.errors.UndefinedFile as exc:
        raise RuntimeError(
            f"the plpgsql_check extension is not on this server ({exc}): run "
            "scripts/ci_tools.sh (Debian package postgresql-15-plpgsql-check)"
        ) from None
    return schema


def plpgsql_check_findings(
    url: str,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    *,
    extra_warnings: bool = True,
    performance_warnings: bool = False,
    security_warnings: bool = True,
    compatibility_warnings: bool = False,
) -> list[dict[str, object]]:
    """Every plpgsql_check finding for the PL/pgSQL functions of ``schemas``."""
    findings: list[dict[str, object]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        schema = _extension_schema(conn)
        check = sql.SQL(
            "select * from {}.plpgsql_check_function_tb("
            "%(oid)s::regprocedure, %(relid)s::regclass,"
            " fatal_errors => false, other_warnings => true,"
            " extra_warnings => %(extra)s, performance_warnings => %(performance)s,"
            " security_warnings => %(security)s,"
            " compatibility_warnings => %(compatibility)s)"
        ).format(sql.Identifier(schema))
        with conn.cursor(row_factory=dict_row) as cur:
            functions = cur.execute(_FUNCTIONS, {"schemas": list(schemas)}).fetchall()
            for fn in functions:
                rows = cur.execute(
                    check,
                    {
                        "oid": fn["oid"],
                        "relid": fn["relid"] or 0,
                        "extra": extra_warnings,
                        "performance": performance_warnings,
                        "security": security_warnings,
                        "compatibility": compatibility_warnings,
                    },
                ).fetchall()
                for row in rows:
                    finding: dict[str, object] = {
                        "function": fn["function"],
                        "relation": fn["relation"],
                    }
                    finding.update((k, v) for k, v in row.items() if k != "functionid")
                    findings.append(finding)
    return findings
