"""Test harness: every database test runs against a real PostgreSQL.

One server per run (see tests/support/database.py for how it is found), one template
database migrated with the project's own runner (after Supabase's default grants, so the
migrations' revokes are tested as on Supabase), and copies of it: ``migrated_db_url``
is shared by the run (tests isolate themselves with fresh tenant ids and job types), and
``fresh_db_url`` is a brand-new copy for tests that need an empty queue.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobforge_sdk.migrate import Migrator
from tests.support.database import NoDatabaseError, Server, find_server
from tests.support.roles import RoleSession

RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
SUPPORT = Path(__file__).parent / "support"
BOOTSTRAP = Path(__file__).parents[1] / "supabase" / "bootstrap" / "000_supabase_compat.sql"
# Supabase's default grants to the API roles: see tests/support/supabase_defaults.sql.
SUPABASE_DEFAULTS = SUPPORT / "supabase_defaults.sql"


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


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    """Name of a database migrated once per run; only ever copied, never connected to."""
    name = f"jobforge_test_{RUN_ID}_tmpl"
    url = pg_server.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(BOOTSTRAP.read_bytes())
            conn.execute(SUPABASE_DEFAULTS.read_bytes())
        Migrator(url, echo=lambda _line: None).apply()
        yield name
    finally:
        pg_server.drop_database(name)


@pytest.fixture(scope="session")
def migrated_db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"jobforge_test_{RUN_ID}_shared"
    url = pg_server.create_database(name, template=template_db)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def fresh_db_url(pg_server: Server, template_db: str) -> Iterator[str]:
    name = f"jobforge_test_{RUN_ID}_{secrets.token_hex(4)}"
    url = pg_server.create_database(name, template=template_db)
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
def shared_stub(migrated_db_url: str) -> Iterator[Any]:
    from tests.support.clients import JWT_SECRET
    from tests.support.postgrest import PostgrestStub

    with PostgrestStub(migrated_db_url, JWT_SECRET) as stub:
        yield stub


@pytest.fixture
def stub_for(
    migrated_db_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Any]]:
    """The PostgREST-compatible stub for a database URL, started on first use."""
    from tests.support.clients import stubs

    with stubs(migrated_db_url, lambda: request.getfixturevalue("shared_stub")) as factory:
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
