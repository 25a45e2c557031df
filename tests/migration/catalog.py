"""A comparable snapshot of everything the JobForge schema defines in a database.

Two databases built different ways (the schema files applied in order, the migrations
applied by the runner) must give equal snapshots: same tables, columns, constraints,
indexes, functions with their bodies and settings, grants, policies, triggers and
comments. The library's migration history (schema ``jobforge_migrations``) is left out:
only migrations create it.
"""

from __future__ import annotations

from typing import Any

import psycopg

# Objects of the library: everything in jobforge_private, and jobforge_* in public.
_OURS = """
  (n.nspname = 'jobforge_private' or (n.nspname = 'public' and {name} like 'jobforge\\_%'))
"""

QUERIES: dict[str, str] = {
    "schemas": """
        select n.nspname, n.nspacl::text, obj_description(n.oid, 'pg_namespace')
        from pg_namespace n where n.nspname in ('jobforge_private')
    """,
    "relations": f"""
        select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               c.relacl::text, obj_description(c.oid, 'pg_class')
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where {_OURS.format(name="c.relname")} or (n.nspname = 'jobforge_private')
    """,
    "columns": f"""
        select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attacl::text, a.attnum
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'v', 'p')
          and ({_OURS.format(name="c.relname")})
    """,
    "constraints": f"""
        select n.nspname, c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
        from pg_constraint k
        join pg_class c on c.oid = k.conrelid
        join pg_namespace n on n.oid = c.relnamespace
        where {_OURS.format(name="c.relname")}
    """,
    "indexes": """
        select schemaname, tablename, indexname, indexdef from pg_indexes
        where schemaname = 'jobforge_private'
           or (schemaname = 'public' and tablename like 'jobforge\\_%')
    """,
    "functions": f"""
        select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proconfig::text,
               p.prosecdef, p.provolatile, p.proacl::text, obj_description(p.oid, 'pg_proc')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where {_OURS.format(name="p.proname")}
    """,
    "policies": """
        select schemaname, tablename, policyname, permissive, roles::text, cmd, qual,
               with_check
        from pg_policies
        where schemaname = 'jobforge_private'
           or (schemaname = 'public' and tablename like 'jobforge\\_%')
    """,
    "triggers": f"""
        select c.relname, t.tgname, t.tgenabled, pg_get_triggerdef(t.oid)
        from pg_trigger t
        join pg_class c on c.oid = t.tgrelid
        join pg_namespace n on n.oid = c.relnamespace
        where not t.tgisinternal and ({_OURS.format(name="c.relname")})
    """,
    "types": """
        select n.nspname, t.typname, t.typtype, t.typacl::text
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = 'jobforge_private' and t.typtype in ('d', 'e', 'c')
          and not exists (select 1 from pg_class c where c.reltype = t.oid)
    """,
    "seeded_templates": """
        select (to_jsonb(t) - 'created_at' - 'updated_at')::text
        from public.jobforge_job_templates t
    """,
}


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every query's rows, sorted, so two databases compare with ``==``."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(url) as conn:
        for name, query in QUERIES.items():
            rows = conn.execute(query.encode()).fetchall()
            result[name] = sorted(rows, key=repr)
    return result
