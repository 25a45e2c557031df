"""Supabase's linters find nothing to complain about in the JobForge schema.

- splinter (the lints behind Supabase's Security and Performance Advisors), run through
  the pinned Supabase CLI (``supabase db advisors``) on a Supabase-shaped database migrated
  by its non-superuser owner: no ERROR and no WARN on a jobforge object, except
  ``authenticated_security_definer_function_executable`` on the tenant RPCs, which check
  the caller's tenant themselves (docs/operations.md lists them and says why);
- plpgsql_check (the engine of ``supabase db lint``), with extra and security warnings on
  and trigger functions included: no finding at all.

Both tools must be installed (``make tools``); a missing one fails the test.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobforge_sdk import Migrator
from tests.support.database import Server
from tests.support.plpgsql_check import plpgsql_check_findings
from tests.support.splinter import run_splinter
from tests.support.supabase_project import drop_supabase_project, make_supabase_project

ACCEPTED_WARNING = "authenticated_security_definer_function_executable"


@pytest.fixture
def project(pg_server: Server) -> Iterator[tuple[str, str]]:
    """(owner URL, superuser URL) of a Supabase-shaped database migrated by its owner."""
    name = f"jobforge_lint_{secrets.token_hex(4)}"
    owner = make_supabase_project(pg_server.admin_url, name)
    try:
        Migrator(owner, echo=lambda _line: None).apply()
        yield owner, pg_server.url_for(name)
    finally:
        drop_supabase_project(pg_server.admin_url, name)


def _metadata(finding: dict[str, Any]) -> dict[str, Any]:
    metadata = finding.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _is_ours(finding: dict[str, Any]) -> bool:
    name = str(_metadata(finding).get("name", ""))
    schema = str(_metadata(finding).get("schema", ""))
    return schema == "jobforge_private" or name.startswith("jobforge_")


def test_splinter_reports_no_error_and_no_warning(
    project: tuple[str, str], superuser_rpc_audience: set[str]
) -> None:
    owner, _ = project
    findings = run_splinter(owner)
    assert findings, "splinter returned nothing at all: the lints did not run"
    ours = [f for f in findings if _is_ours(f)]
    serious = [f for f in ours if str(f.get("level")) in ("ERROR", "WARN")]
    unexpected = [f for f in serious if f.get("name") != ACCEPTED_WARNING]
    assert unexpected == [], [(f.get("name"), f.get("detail")) for f in unexpected]
    # The accepted warning names only RPCs that authenticated may call by design.
    flagged = {str(_metadata(f).get("name")) for f in serious}
    assert flagged <= superuser_rpc_audience


@pytest.fixture
def superuser_rpc_audience(project: tuple[str, str]) -> set[str]:
    """The RPCs authenticated may execute (the tenant RPCs of 90_api.sql)."""
    _, superuser = project
    with psycopg.connect(superuser) as conn:
        rows = conn.execute(
            "select p.proname from pg_proc p"
            " where p.pronamespace = 'public'::regnamespace and p.proname like 'jobforge\\_%'"
            " and has_function_privilege('authenticated', p.oid, 'execute')"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_plpgsql_check_finds_nothing(project: tuple[str, str]) -> None:
    _, superuser = project
    with psycopg.connect(superuser) as conn:
        checked = conn.execute(
            "select count(*) from pg_proc p join pg_language l on l.oid = p.prolang"
            " where l.lanname = 'plpgsql' and p.pronamespace in"
            " ('public'::regnamespace, 'jobforge_private'::regnamespace)"
        ).fetchone()
    assert checked is not None
    assert checked[0] > 20, "no PL/pgSQL functions found: nothing was checked"
    findings = plpgsql_check_findings(superuser)
    assert findings == [], [
        (f["function"], f["lineno"], f["level"], f["message"]) for f in findings
    ]
