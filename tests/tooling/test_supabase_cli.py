"""The library beside an app's Supabase CLI history, both ways round, with the pinned
Supabase CLI (3.1.0) itself, each test on fresh Supabase-shaped databases migrated as
their (non-superuser) owner:

- ``supabase db push`` of the library's own ``supabase/`` folder applies everything, and
  the smoke test passes there;
- ``jobforge migrate --supabase-project`` leaves the CLI nothing to do; a plain
  ``jobforge migrate`` never touches the CLI's table;
- after ``supabase db push``, ``jobforge migrate`` applies nothing and says who did;
- an app with its own timestamped migrations: the library exported into it and pushed,
  then the app's next migration pushed; and the other way round (``jobforge migrate``
  first, then the app pushes its own), with no ``supabase migration repair`` anywhere.

The CLI must be installed (``make tools``); a missing CLI fails these tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jobforge_sdk.tooling.migrate import discover, migrations_dir
from tests.support.cli import run_cli
from tests.tooling.conftest import SupabaseCli

REPO = Path(__file__).resolve().parents[2]
UP_TO_DATE = "Remote database is up to date."
APP_MIGRATION = "create table public.app_things (id bigint primary key, label text not null);\n"
NEXT_MIGRATION = "alter table public.app_things add column created_at timestamptz;\n"


@pytest.fixture
def app() -> Iterator[Path]:
    """An app's project folder: supabase/migrations with its own first migration."""
    root = Path(tempfile.mkdtemp(prefix="jobforge-app-"))
    try:
        (root / "supabase" / "migrations").mkdir(parents=True)
        (root / "supabase" / "migrations" / "20260101000000_app.sql").write_text(APP_MIGRATION)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _jobforge(*args: str) -> str:
    result = run_cli(*args, timeout=180)
    assert result.returncode == 0, f"jobforge {' '.join(args)}: {result.stderr}{result.stdout}"
    return result.stdout


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _exists(url: str, relation: str) -> bool:
    return _query(url, f"select to_regclass('{relation}') is not null") == [(True,)]


def _cli_history(url: str) -> list[tuple[str, str]]:
    return [
        (str(v), str(n))
        for v, n in _query(
            url, "select version, name from supabase_migrations.schema_migrations order by 1"
        )
    ]


def _library_history(url: str) -> list[tuple[str, str | None]]:
    return [
        (str(v), c)
        for v, c in _query(url, "select version, checksum from jobforge_migrations.history")
    ]


def _assert_nothing_pending(cli: SupabaseCli, url: str, workdir: Path) -> None:
    """`migration list`: local == remote on every row; `db push --dry-run`: up to date."""
    listed = cli.run(
        "migration", "list", "--output-format", "json", remote=url, workdir=workdir, yes=False
    )
    rows = json.loads(listed.stdout)["migrations"]
    assert rows, listed.stdout
    assert [r for r in rows if r.get("local") != r.get("remote")] == [], rows
    dry = cli.run("db", "push", "--dry-run", remote=url, workdir=workdir)
    assert UP_TO_DATE in dry.stdout, dry.stdout + dry.stderr


def _library_lines(status: str) -> list[str]:
    return [line for line in status.splitlines() if line.strip()]


def test_db_push_of_the_library_folder_applies_everything_and_smoke_passes(
    supabase_cli: SupabaseCli, supabase_project_db: Any
) -> None:
    url = supabase_project_db()
    pushed = supabase_cli.run("db", "push", remote=url, workdir=REPO)
    assert "001_jobforge_baseline.sql" in pushed.stdout + pushed.stderr
    # The file recorded itself; the CLI recorded it in its own table.
    assert _library_history(url) == [("001", None)]
    assert _cli_history(url) == [("001", "jobforge_baseline")]
    assert _exists(url, "public.jobforge_jobs")

    smoke = run_cli("smoke", "--database-url", url, "--enable-all", timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert " 0 failed" in smoke.stdout


def test_migrate_with_supabase_project_leaves_the_cli_nothing_to_do(
    supabase_cli: SupabaseCli, supabase_project_db: Any
) -> None:
    url = supabase_project_db()
    out = _jobforge("migrate", "--database-url", url, "--supabase-project", str(REPO))
    assert "applied 001_jobforge_baseline.sql in " in out
    assert "in supabase_migrations.schema_migrations as 001" in out
    assert _cli_history(url) == [("001", "jobforge_baseline")]
    _assert_nothing_pending(supabase_cli, url, REPO)
    # And the CLI's push changes nothing either.
    pushed = supabase_cli.run("db", "push", remote=url, workdir=REPO)
    assert UP_TO_DATE in pushed.stdout

    # Without the option the CLI's table is none of the runner's business.
    plain = supabase_project_db()
    _jobforge("migrate", "--database-url", plain)
    assert not _exists(plain, "supabase_migrations.schema_migrations")
    assert _library_history(plain)[0][0] == "001"


def test_after_db_push_jobforge_migrate_applies_nothing_and_says_who_did(
    supabase_cli: SupabaseCli, supabase_project_db: Any
) -> None:
    url = supabase_project_db()
    supabase_cli.run("db", "push", remote=url, workdir=REPO)

    out = _jobforge("migrate", "--database-url", url)
    assert out.strip() == "database is up to date: nothing to apply"
    status = _jobforge("migrate", "--database-url", url, "--status")
    assert _library_lines(status) == [
        "applied  001  001_jobforge_baseline.sql  (by another tool: same statements as "
        "supabase_migrations.schema_migrations version 001)"
    ]
    assert _library_history(url) == [("001", None)]  # still: applied by another tool
    assert _cli_history(url) == [("001", "jobforge_baseline")]


def test_an_app_pushes_the_exported_library_and_then_its_own_next_migration(
    supabase_cli: SupabaseCli, supabase_project_db: Any, app: Path
) -> None:
    url = supabase_project_db()
    folder = app / "supabase" / "migrations"
    exported = _jobforge("migrations", "export", "--into", str(folder))
    library = discover(migrations_dir())
    assert len(exported.splitlines()) == len(library)
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "20260101000000_app.sql"
    (copy,) = names[1:]
    assert copy.endswith("_jobforge_001_jobforge_baseline.sql")
    assert copy > "20260101000000_app.sql"

    supabase_cli.run("db", "push", remote=url, workdir=app)
    assert _exists(url, "public.app_things")
    assert _exists(url, "public.jobforge_jobs")
    version = copy.split("_", 1)[0]
    status = _jobforge("migrate", "--database-url", url, "--status")
    assert _library_lines(status) == [
        "applied  001  001_jobforge_baseline.sql  (by another tool: same statements as "
        f"supabase_migrations.schema_migrations version {version})"
    ]
    assert "nothing to apply" in _jobforge("migrate", "--database-url", url)

    again = _jobforge("migrations", "export", "--into", str(folder))
    assert again.startswith("skipped 001_jobforge_baseline.sql: already in")
    assert sorted(p.name for p in folder.iterdir()) == names

    (folder / "20991231000000_next.sql").write_text(NEXT_MIGRATION)
    pushed = supabase_cli.run("db", "push", remote=url, workdir=app)
    assert "20991231000000_next.sql" in pushed.stdout + pushed.stderr
    assert _query(
        url,
        "select count(*) from information_schema.columns"
        " where table_name = 'app_things' and column_name = 'created_at'",
    ) == [(1,)]
    _assert_nothing_pending(supabase_cli, url, app)
    assert _library_history(url) == [("001", None)]


def test_an_app_that_uses_jobforge_migrate_pushes_its_own_migrations_without_repair(
    supabase_cli: SupabaseCli, supabase_project_db: Any, app: Path
) -> None:
    url = supabase_project_db()
    _jobforge("migrate", "--database-url", url)
    assert not _exists(url, "supabase_migrations.schema_migrations")

    supabase_cli.run("db", "push", remote=url, workdir=app)
    assert _exists(url, "public.app_things")
    assert _cli_history(url) == [("20260101000000", "app")]
    _assert_nothing_pending(supabase_cli, url, app)

    # The runner still finds its own history, and leaves the app's alone.
    assert "nothing to apply" in _jobforge("migrate", "--database-url", url)
    assert _cli_history(url) == [("20260101000000", "app")]
    (app / "supabase" / "migrations" / "20991231000000_next.sql").write_text(NEXT_MIGRATION)
    supabase_cli.run("db", "push", remote=url, workdir=app)
    _assert_nothing_pending(supabase_cli, url, app)
    assert [v for v, _ in _library_history(url)] == ["001"]


def test_an_existing_app_adopts_the_library_through_export_and_jobforge_migrate(
    supabase_cli: SupabaseCli, supabase_project_db: Any, app: Path
) -> None:
    """The app pushed its own migrations long ago; it exports the library, applies it
    with `jobforge migrate --supabase-project`, and keeps pushing."""
    url = supabase_project_db()
    supabase_cli.run("db", "push", remote=url, workdir=app)
    folder = app / "supabase" / "migrations"
    _jobforge("migrations", "export", "--into", str(folder))

    out = _jobforge("migrate", "--database-url", url, "--supabase-project", str(app))
    assert "applied 001_jobforge_baseline.sql in " in out
    _assert_nothing_pending(supabase_cli, url, app)

    (folder / "20991231000000_next.sql").write_text(NEXT_MIGRATION)
    supabase_cli.run("db", "push", remote=url, workdir=app)
    _assert_nothing_pending(supabase_cli, url, app)
    status = _jobforge("migrate", "--database-url", url, "--status", "--supabase-project", str(app))
    assert _library_lines(status) == [
        "applied  001  001_jobforge_baseline.sql  (by jobforge migrate: checksum recorded, "
        "matches the file)"
    ]
