"""Test harness: every database test runs against a real PostgreSQL.

One server per run (see tests/support/database.py for how it is found), one template
database migrated with the project's own runner (after Supabase's default grants, so the
migrations' revokes are tested as on Supabase), and copies of it: ``migrated_db_url``
is shared by the run (tests isolate themselves with fresh tenant ids and job types), and
``fresh_db_url`` is a brand-new copy for tests that need an empty queue.

``JOBFORGE_TEST_SHAPE`` picks the shape of those databases:
- ``vanilla`` (default): plain PostgreSQL, the Supabase roles from supabase/bootstrap,
  migrated by the superuser;
- ``supabase``: shaped like a hosted Supabase project (tests/support/supabase_project.sql)
  and migrated, and then used, as its owner, who is not a superuser. What a hosted project
  refuses fails here too.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobforge_sdk.tooling.migrate import Migrator
from tests.support.database import NoDatabaseError, Server, describe_choice, find_server
from tests.support.roles import RoleSession
from tests.support.supabase_project import OWNER_ROLE, make_supabase_project, owner_url

RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
SUPPORT = Path(__file__).parent / "support"
BOOTSTRAP = Path(__file__).parents[1] / "supabase" / "bootstrap" / "000_supabase_compat.sql"
# Supabase's default grants to the API roles: see tests/support/supabase_defaults.sql.
SUPABASE_DEFAULTS = SUPPORT / "supabase_defaults.sql"
SHAPES = ("vanilla", "supabase")
SHAPE = os.environ.get("JOBFORGE_TEST_SHAPE", "").strip().lower() or "vanilla"


def pytest_report_header() -> list[str]:
    """Say first which server and which databases the run uses (and how to change it)."""
    return [
        f"jobforge: database server: {describe_choice()}",
        f"jobforge: database shape: {SHAPE} (JOBFORGE_TEST_SHAPE={'|'.join(SHAPES)});"
        f" test databases are named jobforge_test_{RUN_ID}_* and dropped after the run",
    ]


def pytest_configure(config: pytest.Config) -> None:
    if SHAPE not in SHAPES:
        raise pytest.UsageError(
            f"JOBFORGE_TEST_SHAPE={SHAPE!r}: must be one of {', '.join(SHAPES)}"
        )


def _copy(server: Server, name: str, template: str) -> str:
    """A copy of the template database, owned and used as the shape says."""
    if SHAPE == "supabase":
        server.create_database(name, template=template, owner=OWNER_ROLE)
        return owner_url(server.admin_url, name)
    return server.create_database(name, template=template)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    try:
        server = find_server()
    except NoDatabaseError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _prepared(server: Server, name: str) -> str:
    """A new database shaped as JOBFORGE_TEST_SHAPE says, nothing of JobForge in it yet;
    the URL connects as whoever applies the migrations in that shape."""
    if SHAPE == "supabase":
        return make_supabase_project(server.admin_url, name)
    url = server.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BOOTSTRAP.read_bytes())
        conn.execute(SUPABASE_DEFAULTS.read_bytes())
    return url


@pytest.fixture
def make_blank_db(pg_server: Server) -> Iterator[Callable[[], str]]:
    """``make_blank_db()``: a new database of the run's shape with nothing of JobForge
    applied; each is dropped after the test."""
    names: list[str] = []

    def make() -> str:
        names.append(f"jobforge_test_{RUN_ID}_{secrets.token_hex(4)}_blank")
        return _prepared(pg_server, names[-1])

    yield make
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture
def blank_db(make_blank_db: Callable[[], str]) -> str:
    """A database of the run's shape with nothing of JobForge applied (fresh per test)."""
    return make_blank_db()


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    """Name of a database migrated once per run; only ever copied, never connected to."""
    name = f"jobforge_test_{RUN_ID}_tmpl"
    url = _prepared(pg_server, name)
    try:
        Migrator(url, echo=lambda _line: None).apply()
        yield name
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def copy_template(pg_server: Server, template_db: str) -> Callable[[str], str]:
    """``copy_template(name)``: a new copy of the migrated template, as the shape says
    (the caller drops it with ``pg_server.drop_database(name)``)."""
    return lambda name: _copy(pg_server, name, template_db)


@pytest.fixture
def superuser_conn(pg_server: Server, migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The shared database as the cluster's superuser, whatever the shape: for the few
    checks about what even a superuser cannot do."""
    dbname = psycopg.conninfo.conninfo_to_dict(migrated_db_url)["dbname"]
    with psycopg.connect(pg_server.url_for(str(dbname)), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def migrated_db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"jobforge_test_{RUN_ID}_shared"
    url = _copy(pg_server, name, template_db)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def fresh_db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"jobforge_test_{RUN_ID}_{secrets.token_hex(4)}"
    url = _copy(pg_server, name, template_db)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def empty_db(pg_server: Server) -> Iterator[str]:
    """A database with nothing applied, for migration-runner tests."""
    name = f"jobforge_test_{RUN_ID}_{secrets.token_hex(4)}_empty"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def admin_conn(migrated_db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def act_as(migrated_db_url: str) -> Iterator[Callable[..., RoleSession]]:
    sessions: list[RoleSession] = []

    def make(
        role: str, claims: dict[str, Any] | None = None, url: str | None = None
    ) -> RoleSession:
        session = RoleSession(url or migrated_db_url, role, claims)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture(scope="session")
def start_stub(pg_server: Server) -> Callable[..., Any]:
    """``start_stub(url, secret=JWT_SECRET, pool_size=...)``: the PostgREST-compatible
    stub serving the database of ``url``, logged in as the authenticator role, with the API
    roles' statement timeouts set in that database as Supabase sets them (the caller stops
    it)."""
    from tests.support.clients import JWT_SECRET
    from tests.support.postgrest import PostgrestStub, authenticator_url, prepare_database

    def start(url: str, secret: str = JWT_SECRET, **options: Any) -> Any:
        dbname = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
        prepare_database(pg_server.url_for(dbname))
        return PostgrestStub(authenticator_url(url), secret, **options).start()

    return start


@pytest.fixture(scope="session")
def shared_stub(migrated_db_url: str, start_stub: Callable[..., Any]) -> Iterator[Any]:
    stub = start_stub(migrated_db_url)
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def stub_for(
    migrated_db_url: str, request: pytest.FixtureRequest, start_stub: Callable[..., Any]
) -> Iterator[Callable[[str], Any]]:
    """The PostgREST-compatible stub for a database URL, started on first use."""
    from tests.support.clients import stubs

    shared = lambda: request.getfixturevalue("shared_stub")  # noqa: E731
    with stubs(migrated_db_url, shared, start_stub) as factory:
        yield factory


@pytest.fixture
def make_client(migrated_db_url: str, stub_for: Callable[[str], Any]) -> Iterator[Any]:
    """``make_client(kind, url=..., claims=..., flags=...)`` over any of the four transports."""
    from tests.support.clients import ClientFactory

    factory = ClientFactory(migrated_db_url, stub_for)
    yield factory.make
    factory.close()


@pytest.fixture(params=["postgres", "postgres-async", "supabase", "supabase-async"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(make_client: Callable[..., Any], transport_kind: str) -> Any:
    """A service-role client over each transport in turn (the test runs four times)."""
    return make_client(transport_kind)
