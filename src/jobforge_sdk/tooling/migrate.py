"""Apply ``supabase/migrations`` the way the Supabase CLI does, so the two agree.

Applied versions are recorded in ``supabase_migrations.schema_migrations`` (the table
``supabase db push`` writes), one transaction per file together with its bookkeeping row,
under an advisory lock so that two runners started at once never apply a file twice. An
applied file whose content changed is refused: silently diverging schemas are worse than a
stopped deploy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from jobforge_sdk.errors import MigrationError
from jobforge_sdk.tooling.sqltext import normalized, split_statements

__all__ = [
    "MigrationFile",
    "MigrationStatus",
    "Migrator",
    "bootstrap_dir",
    "discover",
    "migrations_dir",
]

_FILENAME = re.compile(r"^([0-9]+)_(.*)\.sql$")
# Any fixed pair works; this one spells "JOBF" and "MIGR" in ASCII.
_LOCK_KEY = (0x4A4F4246, 0x4D494752)
_SUPABASE_ROLES = ("anon", "authenticated", "service_role", "authenticator")

Echo = Callable[[str], None]


def _sql_root() -> Path:
    """Where the SQL lives: inside the installed wheel, else the source tree."""
    package = Path(__file__).resolve().parents[1]  # src/jobforge_sdk, or the installed package
    packaged = package / "_sql"
    if packaged.is_dir():
        return packaged
    return package.parents[1] / "supabase"


def migrations_dir() -> Path:
    return _sql_root() / "migrations"


def bootstrap_dir() -> Path:
    return _sql_root() / "bootstrap"


@dataclass(frozen=True)
class MigrationFile:
    version: str
    name: str
    path: Path
    sql: str
    statements: list[str] = field(repr=False)

    @property
    def filename(self) -> str:
        return self.path.name

    def locate(self, statement: str) -> tuple[int, str]:
        """Line number and text of the statement's first line of code (not a comment)."""
        line = self.sql[: max(self.sql.find(statement), 0)].count("\n") + 1
        for offset, text in enumerate(statement.splitlines()):
            code = text.strip()
            if code and not code.startswith(("--", "/*")):
                return line + offset, code
        return line, statement.splitlines()[0]


@dataclass
class MigrationStatus:
    applied: list[str]
    pending: list[MigrationFile]
    changed: list[MigrationFile]
    unknown: list[str]
    needs_bootstrap: bool


def discover(directory: Path) -> list[MigrationFile]:
    """Migration files of ``directory`` in version order (numeric, as the CLI sorts them)."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory not found: {directory}")
    files: list[MigrationFile] = []
    seen: dict[str, str] = {}
    for path in directory.iterdir():
        match = _FILENAME.match(path.name)
        if not match or not path.is_file():
            continue
        version, name = match.groups()
        if version in seen:
            raise MigrationError(
                f"two migrations share version {version}: {seen[version]}, {path.name}"
            )
        seen[version] = path.name
        sql = path.read_text(encoding="utf-8")
        files.append(MigrationFile(version, name, path, sql, split_statements(sql)))
    return sorted(files, key=lambda f: (int(f.version), f.version))


class Migrator:
    """Applies migrations to one database. ``echo`` receives one line per event."""

    def __init__(
        self,
        database_url: str,
        *,
        directory: Path | None = None,
        echo: Echo = print,
    ) -> None:
        if not database_url:
            raise MigrationError(
                "no database URL: pass --database-url or set JOBFORGE_DATABASE_URL"
            )
        self.database_url = database_url
        self.directory = directory or migrations_dir()
        self.echo = echo

    # -- public -------------------------------------------------------------------------

    def status(self) -> MigrationStatus:
        files = discover(self.directory)
        with self._connect() as conn:
            return self._status(conn, files)

    def apply(self, *, dry_run: bool = False) -> list[MigrationFile]:
        """Apply every pending file; return those applied (or that would be, on a dry run)."""
        files = discover(self.directory)
        with self._connect() as conn:
            if dry_run:
                return self._dry_run(conn, files)
            with self._locked(conn):
                if self._needs_bootstrap(conn):
                    self._bootstrap(conn)
                self._ensure_history_table(conn)
                status = self._status(conn, files)
                self._refuse_changed(status)
                for migration in status.pending:
                    self._apply_one(conn, migration)
                    self.echo(f"applied {migration.filename}")
                if not status.pending:
                    self.echo("database is up to date: nothing to apply")
                return status.pending

    # -- steps --------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.database_url, autocommit=True, connect_timeout=10)
        except psycopg.ProgrammingError as exc:
            raise MigrationError(f"invalid database URL: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise MigrationError(f"cannot connect to the database: {_first_line(exc)}") from None

    @contextmanager
    def _locked(self, conn: psycopg.Connection[tuple[object, ...]]) -> Iterator[None]:
        conn.execute("select pg_advisory_lock(%s, %s)", _LOCK_KEY)
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("select pg_advisory_unlock(%s, %s)", _LOCK_KEY)

    def _needs_bootstrap(self, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        row = conn.execute(
            "select count(*) = %s and to_regprocedure('auth.jwt()') is not null"
            " from pg_catalog.pg_roles where rolname = any(%s)",
            (len(_SUPABASE_ROLES), list(_SUPABASE_ROLES)),
        ).fetchone()
        return not (row and row[0])

    def _bootstrap(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self.echo(
            "Supabase roles or auth.jwt() missing: applying supabase/bootstrap "
            "(roles anon, authenticated, service_role, authenticator; schema auth)"
        )
        for boot in discover(bootstrap_dir()):
            self._run_statements(conn, boot, record=False)

    def _ensure_history_table(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations"
            " (version text primary key, statements text[], name text)"
        )

    def _applied(self, conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, list[str]]:
        exists = conn.execute(
            "select to_regclass('supabase_migrations.schema_migrations') is not null"
        ).fetchone()
        if not (exists and exists[0]):
            return {}
        rows = conn.execute(
            "select version, coalesce(statements, '{}') from supabase_migrations.schema_migrations"
        ).fetchall()
        return {str(version): list(statements) for version, statements in rows}  # type: ignore[call-overload]

    def _status(
        self, conn: psycopg.Connection[tuple[object, ...]], files: list[MigrationFile]
    ) -> MigrationStatus:
        applied = self._applied(conn)
        on_disk = {f.version for f in files}
        return MigrationStatus(
            applied=sorted(applied, key=lambda v: (len(v), v)),
            pending=[f for f in files if f.version not in applied],
            changed=[
                f
                for f in files
                if f.version in applied
                and normalized(applied[f.version]) != normalized(f.statements)
            ],
            unknown=sorted(v for v in applied if v not in on_disk),
            needs_bootstrap=self._needs_bootstrap(conn),
        )

    def _refuse_changed(self, status: MigrationStatus) -> None:
        if status.changed:
            first = status.changed[0]
            raise MigrationError(
                f"{first.filename} was already applied but its content has changed; "
                "refusing to apply anything (restore the file, or put the change in a new "
                "migration)"
            )

    def _dry_run(
        self, conn: psycopg.Connection[tuple[object, ...]], files: list[MigrationFile]
    ) -> list[MigrationFile]:
        status = self._status(conn, files)
        self._refuse_changed(status)
        if status.needs_bootstrap:
            self.echo("would apply supabase/bootstrap (Supabase roles or auth.jwt() missing)")
        for migration in status.pending:
            self.echo(f"would apply {migration.filename} ({len(migration.statements)} statements)")
        if not status.pending:
            self.echo("database is up to date: nothing to apply")
        return status.pending

    def _apply_one(
        self, conn: psycopg.Connection[tuple[object, ...]], migration: MigrationFile
    ) -> None:
        self._run_statements(conn, migration, record=True)

    def _run_statements(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        migration: MigrationFile,
        *,
        record: bool,
    ) -> None:
        # One transaction per file: either all of it and its history row, or nothing.
        try:
            with conn.transaction():
                for index, statement in enumerate(migration.statements, start=1):
                    try:
                        conn.execute(statement.encode(), prepare=False)
                    except psycopg.Error as exc:
                        raise _StatementFailed(index, statement, exc) from exc
                if record:
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations"
                        " (version, name, statements) values (%s, %s, %s)",
                        (migration.version, migration.name, migration.statements),
                    )
        except _StatementFailed as failed:
            line, code = migration.locate(failed.statement)
            raise MigrationError(
                f"{migration.filename}: statement {failed.index} (line {line}) failed: "
                f"{code[:80]!r}: "
                f"{_first_line(failed.cause)} [SQLSTATE {failed.cause.sqlstate}]; "
                "nothing of this file was applied"
            ) from None
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.filename}: {_first_line(exc)}") from None


class _StatementFailed(Exception):
    def __init__(self, index: int, statement: str, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.index = index
        self.statement = statement
        self.cause = cause


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
