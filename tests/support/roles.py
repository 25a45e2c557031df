"""Act as a Supabase role on a direct connection, exactly as PostgREST does.

PostgREST runs each request in one transaction that starts with
``set_config('role', <role>, true)`` and ``set_config('request.jwt.claims', <json>, true)``
and then calls the function with named arguments. ``RoleSession`` does the same, so a
test proves what a caller who bypasses the SDK would meet.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


def tenant_claims(*tenant_ids: uuid.UUID | str, sub: str | None = None) -> dict[str, Any]:
    """JWT claims of an ``authenticated`` user who belongs to ``tenant_ids``."""
    return {
        "role": "authenticated",
        "sub": sub or str(uuid.uuid4()),
        "app_metadata": {"tenant_ids": [str(t) for t in tenant_ids]},
    }


class RoleSession:
    def __init__(self, url: str, role: str, claims: dict[str, Any] | None = None) -> None:
        self.role = role
        self.claims = dict(claims) if claims is not None else {"role": role}
        self._conn = psycopg.connect(url, autocommit=True)
        self._signatures: dict[str, dict[str, str]] = {}

    def _arg_types(self, fn: str) -> dict[str, str]:
        if fn not in self._signatures:
            rows = self._conn.execute(
                "select a.name, pg_catalog.format_type(a.type, null)"
                " from pg_catalog.pg_proc p,"
                " unnest(p.proargnames, p.proargtypes::oid[]) as a(name, type)"
                " where p.pronamespace = 'public'::regnamespace and p.proname = %s",
                (fn,),
            ).fetchall()
            self._signatures[fn] = {str(name): str(typ) for name, typ in rows}
        return self._signatures[fn]

    def _begin(self, cur: psycopg.Cursor[Any]) -> None:
        cur.execute(
            "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
            (self.role, json.dumps(self.claims)),
        )

    def call(self, fn: str, **args: Any) -> Any:
        """Call ``public.<fn>`` with named arguments in one transaction; return its value."""
        types = self._arg_types(fn)
        parts = []
        values = []
        for name, value in args.items():
            typ = types.get(name, "unknown")
            parts.append(
                sql.SQL("{} => {}::{}").format(
                    sql.Identifier(name), sql.Placeholder(), sql.SQL(typ)
                )
            )
            values.append(Jsonb(value) if typ in ("jsonb", "json") and value is not None else value)
        query = sql.SQL("select public.{}({})").format(
            sql.Identifier(fn), sql.SQL(", ").join(parts)
        )
        with self._conn.transaction(), self._conn.cursor() as cur:
            self._begin(cur)
            cur.execute(query, values)
            row = cur.fetchone()
        return row[0] if row else None

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement as this role (SELECT, or a write expected to be refused)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            self._begin(cur)
            cur.execute(statement.encode(), params)
            return cur.fetchall() if cur.description else []

    def close(self) -> None:
        self._conn.close()
