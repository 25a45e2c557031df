"""How a named-argument RPC call becomes SQL on a direct connection, shared by the sync
and async Postgres transports.

PostgREST turns a JSON body into ``fn(p_a := <value>::<declared type>, ...)`` after
looking the function up in its schema cache; this does the same, caching each function's
argument types after one catalog query, so both transports convert values identically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.types.json import Jsonb

from jobforge_sdk._operations._machinery import JsonText
from jobforge_sdk.errors import (
    CHARACTER_NOT_IN_REPERTOIRE,
    UNTRANSLATABLE_CHARACTER,
    JobForgeError,
    TransportError,
    error_from_sqlstate,
)

# One row per argument; a function without arguments still gives one row (of nulls), so
# "no rows" means "no such function".
SIGNATURE_QUERY = (
    "select a.name, pg_catalog.format_type(a.type, null)"
    " from pg_catalog.pg_proc p"
    " left join lateral unnest(p.proargnames, p.proargtypes::oid[]) as a(name, type) on true"
    " where p.pronamespace = 'public'::regnamespace and p.proname = %s"
)

SET_CLAIMS = "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)"


class JsonTextLoader(Loader):
    """Leave ``jsonb`` and ``json`` answers as text: pydantic-core validates JSON text in
    one pass, faster than ``json.loads`` followed by model validation of the Python
    objects. (The hot-path RPCs answer ``json``, which the server builds as text.)"""

    def load(self, data: Buffer) -> JsonText:
        return JsonText(bytes(data).decode())


def configure_connection(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    conn.adapters.register_loader("jsonb", JsonTextLoader)
    conn.adapters.register_loader("json", JsonTextLoader)


class Signatures:
    """Argument types of the public RPCs, looked up once per function and cached."""

    def __init__(self) -> None:
        self._types: dict[str, dict[str, str]] = {}
        # Rendered once to bytes: psycopg caches the conversion of a bytes query, while a
        # ``sql.Composed`` would be rendered again on every call.
        self._statements: dict[tuple[str, tuple[str, ...]], bytes] = {}

    def known(self, fn: str) -> bool:
        return fn in self._types

    def store(self, fn: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            raise JobForgeError(
                f"function public.{fn} does not exist: apply the migrations (jobforge migrate)",
                code="42883",
            )
        self._types[fn] = {str(name): str(typ) for name, typ in rows if name is not None}

    def prepare(self, fn: str, args: Mapping[str, Any]) -> tuple[bytes, list[Any]]:
        types = self._types[fn]
        names = tuple(args)
        key = (fn, names)
        statement = self._statements.get(key)
        if statement is None:
            unknown = [n for n in names if n not in types]
            if unknown:
                raise JobForgeError(f"public.{fn} has no parameter {unknown[0]}", code="42883")
            parts = [
                sql.SQL("{} => {}::{}").format(
                    sql.Identifier(n), sql.Placeholder(), sql.SQL(types[n])
                )
                for n in names
            ]
            statement = (
                sql.SQL("select public.{}({})")
                .format(sql.Identifier(fn), sql.SQL(", ").join(parts))
                .as_bytes(None)
            )
            self._statements[key] = statement
        values = [
            Jsonb(v) if v is not None and types[n] in ("jsonb", "json") else v
            for n, v in args.items()
        ]
        return statement, values


def unencodable_text(exc: UnicodeEncodeError) -> JobForgeError:
    """A text argument psycopg could not encode (a lone surrogate): as the server reports
    text it cannot represent (22021), never a raw ``UnicodeEncodeError``."""
    return error_from_sqlstate(CHARACTER_NOT_IN_REPERTOIRE, f"invalid text argument: {exc.reason}")


def claims_json(claims: Mapping[str, Any]) -> str:
    return json.dumps(dict(claims), separators=(",", ":"))


def map_error(exc: psycopg.Error) -> JobForgeError:
    """psycopg error -> SDK error: SQLSTATE through the shared table, no SQLSTATE (the
    connection broke) as ``TransportError``."""
    code = exc.sqlstate
    if code is None and isinstance(exc, psycopg.DataError):
        # Refused by psycopg before anything was sent (a NUL character in a text
        # argument): bad input, which the server reports as 22P05; not a broken
        # connection, which a caller would retry.
        return error_from_sqlstate(UNTRANSLATABLE_CHARACTER, str(exc).strip())
    if (
        code is None
        or code.startswith("08")
        or (isinstance(exc, psycopg.OperationalError) and (code.startswith("57P")))
    ):
        return TransportError(f"database connection failed: {str(exc).strip()}", code=code)
    diag = exc.diag
    message = diag.message_primary or str(exc).strip()
    return error_from_sqlstate(code, message, details=diag.message_detail)
