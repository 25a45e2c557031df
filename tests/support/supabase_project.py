"""A database shaped like a hosted Supabase project (see supabase_project.sql).

``make_supabase_project(admin_url, dbname)`` creates ``dbname`` as the superuser of
``admin_url``, runs supabase_project.sql in it as that superuser, and returns a URL that
logs in as ``jobforge_project_owner``: the non-superuser that plays Supabase's ``postgres``
role. Apply migrations through that URL, never the admin one, so that anything needing a
superuser fails as it does on Supabase.

The owner has no password: the test servers trust local TCP connections (pg_hba ``host all
all 127.0.0.1/32 trust``). Pass ``owner_password`` for a server that does not; it is set on
the cluster-wide role and put into the returned URL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

OWNER_ROLE = "jobforge_project_owner"
SUPABASE_PROJECT_SQL = Path(__file__).with_name("supabase_project.sql")

# Connection parameters that are about the server, not about who logs in.
_KEPT_PARAMS = ("sslmode", "connect_timeout", "application_name", "options")


def _url(params: dict[str, str], user: str, password: str | None, dbname: str) -> str:
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    query = {k: params[k] for k in _KEPT_PARAMS if params.get(k)}
    netloc = quote(user, safe="")
    if password:
        netloc += ":" + quote(password, safe="")
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        query.update(host=host, port=port)
        netloc += "@"
    else:
        netloc += f"@{host}:{port}"
    url = f"postgresql://{netloc}/{quote(dbname, safe='')}"
    return f"{url}?{urlencode(query)}" if query else url


def owner_url(admin_url: str, dbname: str, owner_password: str | None = None) -> str:
    """The URL of ``dbname`` on the server of ``admin_url``, logging in as the owner."""
    params = {k: str(v) for k, v in conninfo_to_dict(admin_url).items() if v is not None}
    return _url(params, OWNER_ROLE, owner_password, dbname)


def admin_url_for(admin_url: str, dbname: str) -> str:
    """The URL of ``dbname`` as the superuser of ``admin_url``."""
    params = {k: str(v) for k, v in conninfo_to_dict(admin_url).items() if v is not None}
    return _url(params, params.get("user", "postgres"), params.get("password"), dbname)


def make_supabase_project(admin_url: str, dbname: str, *, owner_password: str | None = None) -> str:
    """Create ``dbname``, shape it like a Supabase project; return the owner's URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    with psycopg.connect(admin_url_for(admin_url, dbname), autocommit=True) as conn:
        conn.execute(SUPABASE_PROJECT_SQL.read_bytes())
        if owner_password is not None:
            conn.execute(
                sql.SQL("alter role {} password {}").format(
                    sql.Identifier(OWNER_ROLE), sql.Literal(owner_password)
                )
            )
    return owner_url(admin_url, dbname, owner_password)


def drop_supabase_project(admin_url: str, dbname: str) -> None:
    """Drop ``dbname``; the cluster-wide roles stay (other databases may use them)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
        )
