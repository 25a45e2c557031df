"""The schema files are the source; the migrations must build the very same database.

One database gets ``supabase/schema/*.sql`` applied in order, another gets
``supabase/migrations`` through the runner; their catalogs must agree (tables, columns,
constraints, indexes, functions with bodies and settings, grants, policies, triggers,
comments, seeded templates). A second run of the runner applies nothing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from jobforge_sdk import Migrator
from tests.migration.catalog import snapshot

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "supabase" / "schema"
BOOTSTRAP = ROOT / "supabase" / "bootstrap" / "000_supabase_compat.sql"
SUPABASE_DEFAULTS = ROOT / "tests" / "support" / "supabase_defaults.sql"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_baseline", ROOT / "scripts" / "build_baseline.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def prepared_db(make_blank_db: Callable[[], str]) -> str:
    """An empty database of the run's shape (see tests/conftest.py)."""
    return make_blank_db()


prepared_db_2 = prepared_db


def test_the_baseline_is_built_from_the_current_schema_files() -> None:
    baseline = _build_script()
    assert baseline.BASELINE.read_text(encoding="utf-8") == baseline.build(), (
        "supabase/migrations/001_jobforge_baseline.sql is stale: run `make baseline`"
    )


def test_schema_files_and_migrations_build_the_same_catalog(
    prepared_db: str, prepared_db_2: str
) -> None:
    with psycopg.connect(prepared_db) as conn:
        for path in sorted(SCHEMA.glob("[0-9][0-9]_*.sql")):
            conn.execute(path.read_bytes())
    Migrator(prepared_db_2, echo=lambda _line: None).apply()

    from_schema, from_migrations = snapshot(prepared_db), snapshot(prepared_db_2)
    assert from_schema.keys() == from_migrations.keys()
    for kind in from_schema:
        only_schema = set(from_schema[kind]) - set(from_migrations[kind])
        only_migrations = set(from_migrations[kind]) - set(from_schema[kind])
        assert not only_schema, f"{kind} only in schema files: {sorted(only_schema, key=repr)[:3]}"
        assert not only_migrations, (
            f"{kind} only in migrations: {sorted(only_migrations, key=repr)[:3]}"
        )
    # The comparison is not vacuous: the schema really is there.
    assert len(from_schema["functions"]) > 50
    assert len(from_schema["seeded_templates"]) == 13


def test_a_second_migrate_applies_nothing(prepared_db: str) -> None:
    lines: list[str] = []
    first = Migrator(prepared_db, echo=lines.append).apply()
    assert [m.filename for m in first] == ["001_jobforge_baseline.sql"]
    before = snapshot(prepared_db)
    assert Migrator(prepared_db, echo=lines.append).apply() == []
    assert snapshot(prepared_db) == before


def test_upgrade_from_the_baseline_applies_only_the_new_file(
    prepared_db: str, tmp_path: Path
) -> None:
    """After the first release a change is a new file beside the frozen baseline: a
    database at the baseline gets that file only, and it records itself too."""
    Migrator(prepared_db, echo=lambda _line: None).apply()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    baseline = ROOT / "supabase" / "migrations" / "001_jobforge_baseline.sql"
    (migrations / baseline.name).write_bytes(baseline.read_bytes())
    (migrations / "002_probe.sql").write_text(
        "create table public.jobforge_upgrade_probe (id int primary key);\n"
        "insert into jobforge_migrations.history (version, name)"
        " values ('002', 'probe');\n"
    )
    applied = Migrator(prepared_db, directory=migrations, echo=lambda _line: None).apply()
    assert [m.filename for m in applied] == ["002_probe.sql"]
    with psycopg.connect(prepared_db) as conn:
        versions = conn.execute(
            "select version from jobforge_migrations.history order by version"
        ).fetchall()
        probe = conn.execute("select to_regclass('public.jobforge_upgrade_probe')").fetchone()
    assert versions == [("001",), ("002",)]
    assert probe is not None
    assert probe[0] is not None
