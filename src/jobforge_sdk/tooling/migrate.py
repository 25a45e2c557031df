"""Apply the library's migrations (``supabase/migrations``) beside an app's own history.

The library keeps its own migration history in ``jobforge_migrations.history``
(version, name, checksum, applied_at, applied_by), never inside the app's Supabase CLI
history (``supabase_migrations.schema_migrations``), so an app's timestamped migrations and
the library's ``001``, ``002``, ... never meet in one table.

**The rule for migration files.** Every library migration records itself, whichever tool
applies it: it creates ``jobforge_migrations.history`` if needed (the baseline does) and
its LAST statement is ``insert into jobforge_migrations.history (version, name) values
('NNN', 'name')``. ``supabase db push`` therefore leaves the same record as this runner,
and a file that does not record itself (or records another version) is refused here.

**What ``jobforge migrate`` does** (``Migrator.apply``):

1. applies ``supabase/bootstrap`` when a Supabase role, ``auth.jwt()``/``uid()``/``role()``
   or a membership of ``authenticator`` is missing (plain PostgreSQL), and says what it
   created; ``authenticator`` is created NOLOGIN (an operator who runs PostgREST gives it
   LOGIN and a password);
2. reads ``jobforge_migrations.history`` and refuses to do anything when an applied
   file's content changed. The checksum is the sha256 of the file's normalized
   statements (whitespace-insensitive; an edited comment inside a statement counts).
   When ``checksum`` is null, another tool applied the file: it is then compared with the
   statements that tool recorded in ``supabase_migrations.schema_migrations`` (the row
   whose statements contain the file's self-record), and when nothing is on record it is
   accepted and its checksum recorded, saying so;
3. applies each pending file in its own transaction, which first takes a
   transaction-scoped advisory lock (``pg_advisory_xact_lock``) and re-reads the history,
   so two runners never apply a file twice and no lock outlives its transaction (behind
   a transaction pooler such as PgBouncer or Supavisor a session lock would stay held by
   an idle pooled connection). The file's own statements record it; the runner fills in
   ``checksum`` in the same transaction. A failing statement stops the run with one line
   naming the file, statement, line and SQLSTATE; nothing of that file is applied.

It connects with ``prepare_threshold=None`` (no server-side prepared statements), so it
runs through a transaction pooler too.

**Three ways to apply the library, which agree:**

- ``jobforge migrate``: the library only. The Supabase CLI's table is never touched, so
  the app's ``supabase db push`` keeps working with its own migrations.
- ``jobforge migrations export --into <app>/supabase/migrations`` (``export_migrations``),
  then ``supabase db push``: the library's files are copied verbatim under timestamped
  names ``<YYYYMMDDHHMMSS>_jobforge_<version>_<name>.sql`` sorting after the app's own;
  each still records itself as its library version, so ``jobforge migrate`` afterwards
  applies nothing twice. Versions already exported there are skipped.
- ``jobforge migrate --supabase-project DIR``: for a project whose
  ``DIR/supabase/migrations`` holds the library's files (this repository's ``supabase/``,
  or an app after an export) but that applies them with this runner: each applied file is
  also recorded in ``supabase_migrations.schema_migrations`` under the version it has in
  that folder, so ``supabase migration list`` shows nothing pending and ``supabase db
  push`` has nothing to do.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from jobforge_sdk.errors import MigrationError
from jobforge_sdk.tooling.sqltext import normalized, split_statements

__all__ = [
    "AppliedRecord",
    "MigrationFile",
    "MigrationStatus",
    "Migrator",
    "bootstrap_dir",
    "checksum",
    "discover",
    "export_migrations",
    "migrations_dir",
]

# The Supabase CLI's rule for migration file names; other files are skipped.
_FILENAME = re.compile(r"^([0-9]+)_(.*)\.sql$")
# What export_migrations writes: <timestamp>_jobforge_<library version>_<name>.sql.
_EXPORTED = re.compile(r"^([0-9]+)_jobforge_([0-9]+)_(.+)\.sql$")
# A library migration's self-record: insert into jobforge_migrations.history ... ('NNN', ...
_SELF_RECORD = re.compile(
    r"insert\s+into\s+\"?jobforge_migrations\"?\s*\.\s*\"?history\"?\s*"
    r"\([^)]*\)\s*values\s*\(\s*'([0-9]+)'",
    re.IGNORECASE,
)
# Any fixed pair works; this one spells "JOBF" and "MIGR" in ASCII.
_LOCK_KEY = (0x4A4F4246, 0x4D494752)
_SUPABASE_ROLES = ("anon", "authenticated", "service_role", "authenticator")
_AUTH_FUNCTIONS = ("auth.jwt()", "auth.uid()", "auth.role()")
_API_ROLES = ("anon", "authenticated", "service_role")
# Of what supabase/bootstrap creates, what the migrations need besides the roles: when
# one of them is missing, jobforge migrate applies the bootstrap.
_NEEDED = ("schema auth", "function auth.jwt()")
_HISTORY = "jobforge_migrations.history"
_CLI_HISTORY = "supabase_migrations.schema_migrations"
_TIMESTAMP = "%Y%m%d%H%M%S"
_NOLOGIN_NOTE = (
    "note: role authenticator is NOLOGIN (the bootstrap never creates a login role without "
    "a password); an operator who runs PostgREST gives it LOGIN and a password: "
    "alter role authenticator with login password '...'"
)

Echo = Callable[[str], None]
Conn = psycopg.Connection[tuple[Any, ...]]


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


def checksum(statements: list[str]) -> str:
    """sha256 (hex) of the normalized statements: what ``jobforge_migrations.history``
    records for a file ``jobforge migrate`` applied."""
    return hashlib.sha256(normalized(statements).encode("utf-8")).hexdigest()


def _self_recorded_version(statements: Iterable[str]) -> str | None:
    """The library version a migration's statements record themselves as, if any."""
    for statement in statements:
        match = _SELF_RECORD.search(statement)
        if match:
            return match.group(1)
    return None


def _code_statements(statements: Iterable[str]) -> list[str]:
    # The Supabase CLI also records comment-only chunks (a trailing comment) as
    # statements; split_statements drops them, so drop them here too before comparing.
    return [s for s in statements if split_statements(s)]


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

    @property
    def checksum(self) -> str:
        return checksum(self.statements)

    @property
    def records_version(self) -> str | None:
        """The library version this file records itself as (its self-record insert)."""
        return _self_recorded_version(self.statements)

    def locate(self, statement: str) -> tuple[int, str]:
        """Line number and text of the statement's first line of code (not a comment)."""
        line = self.sql[: max(self.sql.find(statement), 0)].count("\n") + 1
        for offset, text in enumerate(statement.splitlines()):
            code = text.strip()
            if code and not code.startswith(("--", "/*")):
                return line + offset, code
        return line, statement.splitlines()[0]


@dataclass(frozen=True)
class AppliedRecord:
    """One row of ``jobforge_migrations.history``, checked against the file on disk.

    ``state`` is one of:
    - ``checksum``: ``jobforge migrate`` recorded a checksum, and it matches the file;
    - ``other-tool``: another tool applied it (checksum null) and the statements it
      recorded in ``supabase_migrations.schema_migrations`` (version ``cli_version``)
      match the file;
    - ``unrecorded``: another tool applied it and nothing records its statements: accepted,
      and the next ``jobforge migrate`` records its checksum;
    - ``changed``: the file differs from what was applied;
    - ``unknown``: no file of this library has that version.
    """

    version: str
    name: str
    checksum: str | None
    applied_by: str
    state: str
    cli_version: str | None = None
    file: MigrationFile | None = field(default=None, repr=False)

    def describe(self) -> str:
        if self.state == "checksum":
            return "by jobforge migrate: checksum recorded, matches the file"
        if self.state == "other-tool":
            return f"by another tool: same statements as {_CLI_HISTORY} version {self.cli_version}"
        if self.state == "unrecorded":
            return (
                "by another tool: its statements are not on record; the next jobforge migrate "
                "records the file's checksum"
            )
        if self.state == "changed":
            against = (
                f"the statements {_CLI_HISTORY} version {self.cli_version} recorded"
                if self.checksum is None
                else "the recorded checksum"
            )
            return f"differs from {against}"
        return f"in {_HISTORY}, no such file in this library"


@dataclass
class MigrationStatus:
    applied: list[str]
    pending: list[MigrationFile]
    changed: list[MigrationFile]
    unknown: list[str]
    needs_bootstrap: bool
    records: dict[str, AppliedRecord] = field(default_factory=dict)
    bootstrap_missing: list[str] = field(default_factory=list)
    # Applied library versions the Supabase CLI history lacks (only with a project):
    # library version -> the version it has in the project's supabase/migrations.
    cli_unrecorded: dict[str, str] = field(default_factory=dict)

    @property
    def unrecorded(self) -> list[AppliedRecord]:
        """Files another tool applied whose statements are nowhere on record."""
        return [r for r in self.records.values() if r.state == "unrecorded"]

    def lines(self, files: list[MigrationFile]) -> list[str]:
        """One line per library version, as ``jobforge migrate --status`` prints them."""
        out: list[str] = []
        pending = {m.version for m in self.pending}
        for migration in files:
            record = self.records.get(migration.version)
            if migration.version in pending:
                out.append(f"pending  {migration.version}  {migration.filename}")
            elif record is not None and record.state == "changed":
                out.append(
                    f"CHANGED  {migration.version}  {migration.filename}  ({record.describe()})"
                )
            elif record is not None:
                line = f"applied  {migration.version}  {migration.filename}  ({record.describe()})"
                if migration.version in self.cli_unrecorded:
                    line += (
                        f"; not yet in {_CLI_HISTORY} as {self.cli_unrecorded[migration.version]}"
                    )
                out.append(line)
        for version in self.unknown:
            out.append(f"unknown  {version}  ({self.records[version].describe()})")
        if self.needs_bootstrap:
            out.append(
                "bootstrap needed (missing: "
                + ", ".join(self.bootstrap_missing)
                + "): jobforge migrate applies it, or run jobforge bootstrap"
            )
        return out


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


# -- export -----------------------------------------------------------------------------


def _library_version_of(path: Path, library: dict[str, MigrationFile]) -> str | None:
    """Which library migration a file of an app's folder is, if it is one."""
    if path.name in {m.filename for m in library.values()}:
        return next(v for v, m in library.items() if m.filename == path.name)
    exported = _EXPORTED.match(path.name)
    if exported and exported.group(2) in library:
        return exported.group(2)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return _self_recorded_version(split_statements(text))


def _start_timestamp(existing: Iterable[str], now: datetime) -> datetime:
    """Now (UTC, whole seconds), or one second after the newest existing timestamp."""
    start = now.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    for version in existing:
        if len(version) != 14:
            continue
        try:
            when = datetime.strptime(version, _TIMESTAMP)
        except ValueError:
            continue
        if when >= start:
            start = when + timedelta(seconds=1)
    return start


def export_migrations(
    into: Path,
    *,
    directory: Path | None = None,
    echo: Echo = print,
    now: datetime | None = None,
) -> list[Path]:
    """Copy the library's migrations into an app's ``supabase/migrations`` folder.

    Each file is copied verbatim as ``<YYYYMMDDHHMMSS>_jobforge_<version>_<name>.sql``,
    the timestamps starting now (or after the newest file already there) and one second
    apart, so ``supabase db push`` applies them after the app's existing migrations. A
    library version already in the folder (by that name, its original name, or its
    self-record) is skipped. One line per library file goes to ``echo``. Returns the
    files written.
    """
    library = {m.version: m for m in discover(directory or migrations_dir())}
    if not into.is_dir():
        if into.exists() or not into.parent.is_dir():
            raise MigrationError(
                f"--into {into}: not a folder (expected <app>/supabase/migrations)"
            )
        into.mkdir()
        echo(f"created {into}")
    present: dict[str, str] = {}
    versions: list[str] = []
    for path in sorted(into.iterdir()):
        match = _FILENAME.match(path.name)
        if not match or not path.is_file():
            continue
        versions.append(match.group(1))
        library_version = _library_version_of(path, library)
        if library_version is not None:
            present.setdefault(library_version, path.name)
    stamp = _start_timestamp(versions, now or datetime.now(UTC))
    written: list[Path] = []
    for version, migration in library.items():
        if version in present:
            echo(f"skipped {migration.filename}: already in {into} as {present[version]}")
            continue
        target = into / f"{stamp.strftime(_TIMESTAMP)}_jobforge_{version}_{migration.name}.sql"
        target.write_bytes(migration.path.read_bytes())
        echo(f"wrote {target} (library migration {migration.filename}, copied verbatim)")
        written.append(target)
        stamp += timedelta(seconds=1)
    return written


# -- the runner -------------------------------------------------------------------------


@dataclass(frozen=True)
class _ProjectFile:
    version: str  # the version in the project's folder (the CLI's version)
    name: str
    filename: str


class Migrator:
    """Applies the library's migrations to one database. ``echo`` gets one line per event.

    ``supabase_project``: a folder whose ``supabase/migrations`` holds the library's files
    (under their own or exported names); each applied file is then also recorded in the
    Supabase CLI's history under the version it has there. Without it that table is
    never written.
    """

    def __init__(
        self,
        database_url: str,
        *,
        directory: Path | None = None,
        echo: Echo = print,
        supabase_project: Path | None = None,
    ) -> None:
        if not database_url:
            raise MigrationError(
                "no database URL: pass --database-url or set JOBFORGE_DATABASE_URL"
            )
        self.database_url = database_url
        self.directory = directory or migrations_dir()
        self.echo = echo
        self.supabase_project = supabase_project

    # -- public -------------------------------------------------------------------------

    def files(self) -> list[MigrationFile]:
        return discover(self.directory)

    def status(self) -> MigrationStatus:
        files = self.files()
        project = self._project_versions(files) if self.supabase_project else None
        with self._connect() as conn:
            return self._status(conn, files, project)

    def bootstrap(self) -> list[str]:
        """Apply ``supabase/bootstrap`` where something is missing; return what it created."""
        with self._connect() as conn:
            missing = self._bootstrap_missing(conn)
            if not missing:
                self.echo(
                    "nothing to create: roles "
                    + ", ".join(_SUPABASE_ROLES)
                    + ", schema auth and "
                    + ", ".join(_AUTH_FUNCTIONS)
                    + " exist"
                )
                created: list[str] = []
            else:
                created = self._bootstrap(conn, missing)
            if self._authenticator_nologin(conn):
                self.echo(_NOLOGIN_NOTE)
            else:
                self.echo("note: role authenticator can log in already: left as it was")
            return created

    def apply(self, *, dry_run: bool = False) -> list[MigrationFile]:
        """Apply every pending file; return those applied (or that would be, on a dry run)."""
        files = self.files()
        project = self._project_versions(files) if self.supabase_project else None
        with self._connect() as conn:
            if dry_run:
                return self._dry_run(conn, files, project)
            missing = self._bootstrap_missing(conn, needed_only=True)
            if missing:
                self._bootstrap(conn, missing)
                if self._authenticator_nologin(conn):
                    self.echo(_NOLOGIN_NOTE)
            status = self._status(conn, files, project)
            self._refuse_changed(status)
            self._record_checksums(conn, status.unrecorded)
            applied: list[MigrationFile] = []
            for migration in status.pending:
                target = project.get(migration.version) if project else None
                if self._apply_one(conn, migration, target):
                    applied.append(migration)
            if project:
                self._record_in_cli(conn, files, project)
            if not applied:
                self.echo("database is up to date: nothing to apply")
            return applied

    # -- reading ------------------------------------------------------------------------

    def _connect(self) -> Conn:
        try:
            # No server-side prepared statements: works through a transaction pooler.
            return psycopg.connect(
                self.database_url, autocommit=True, connect_timeout=10, prepare_threshold=None
            )
        except psycopg.ProgrammingError as exc:
            raise MigrationError(f"invalid database URL: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise MigrationError(f"cannot connect to the database: {_first_line(exc)}") from None

    @staticmethod
    def _exists(conn: Conn, relation: str) -> bool:
        # From the catalog tables, not to_regclass(): see _lock.
        schema, name = relation.split(".")
        row = conn.execute(
            "select exists (select 1 from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = %s)",
            (schema, name),
        ).fetchone()
        return bool(row and row[0])

    def _history(self, conn: Conn) -> dict[str, tuple[str, str | None, str]]:
        """version -> (name, checksum, applied_by) from jobforge_migrations.history."""
        if not self._exists(conn, _HISTORY):
            return {}
        rows = conn.execute(
            f"select version, name, checksum, applied_by from {_HISTORY}"
        ).fetchall()
        return {str(v): (str(n), None if c is None else str(c), str(b)) for v, n, c, b in rows}

    def _cli_records(self, conn: Conn) -> dict[str, tuple[str, list[str]]]:
        """library version -> (CLI version, statements) of the Supabase CLI rows whose
        statements hold a library migration's self-record."""
        if not self._exists(conn, _CLI_HISTORY):
            return {}
        rows = conn.execute(
            f"select version, coalesce(statements, '{{}}') from {_CLI_HISTORY}"
            " where exists (select 1 from unnest(statements) s"
            " where s ~* 'jobforge_migrations')"
            " order by version"
        ).fetchall()
        found: dict[str, tuple[str, list[str]]] = {}
        for version, statements in rows:
            library_version = _self_recorded_version(statements)
            if library_version is not None:
                found[library_version] = (str(version), list(statements))
        return found

    def _cli_versions(self, conn: Conn) -> set[str]:
        if not self._exists(conn, _CLI_HISTORY):
            return set()
        rows = conn.execute(f"select version from {_CLI_HISTORY}").fetchall()
        return {str(r[0]) for r in rows}

    def _status(
        self,
        conn: Conn,
        files: list[MigrationFile],
        project: dict[str, _ProjectFile] | None = None,
    ) -> MigrationStatus:
        history = self._history(conn)
        cli = self._cli_records(conn) if any(c is None for _, c, _ in history.values()) else {}
        on_disk = {f.version: f for f in files}
        records: dict[str, AppliedRecord] = {}
        for version, (name, recorded, applied_by) in history.items():
            file = on_disk.get(version)
            cli_version: str | None = None
            if file is None:
                state = "unknown"
            elif recorded is not None:
                state = "checksum" if recorded == file.checksum else "changed"
            elif version in cli:
                cli_version, statements = cli[version]
                same = normalized(_code_statements(statements)) == normalized(file.statements)
                state = "other-tool" if same else "changed"
            else:
                state = "unrecorded"
            records[version] = AppliedRecord(
                version, name, recorded, applied_by, state, cli_version, file
            )
        missing = self._bootstrap_missing(conn, needed_only=True)
        cli_unrecorded: dict[str, str] = {}
        if project:
            in_cli = self._cli_versions(conn)
            cli_unrecorded = {
                v: project[v].version
                for v in history
                if v in project and project[v].version not in in_cli
            }
        return MigrationStatus(
            applied=sorted(history, key=lambda v: (len(v), v)),
            pending=[f for f in files if f.version not in history],
            changed=[
                f for f in files if f.version in records and records[f.version].state == "changed"
            ],
            unknown=sorted(v for v in history if v not in on_disk),
            needs_bootstrap=bool(missing),
            records=records,
            bootstrap_missing=missing,
            cli_unrecorded=cli_unrecorded,
        )

    def _project_versions(self, files: list[MigrationFile]) -> dict[str, _ProjectFile]:
        """library version -> its file in the project's supabase/migrations; refuses a
        project that lacks a library file or holds a different one."""
        assert self.supabase_project is not None
        folder = self.supabase_project / "supabase" / "migrations"
        if not folder.is_dir():
            raise MigrationError(
                f"--supabase-project {self.supabase_project}: no supabase/migrations folder in it"
            )
        library = {m.version: m for m in files}
        found: dict[str, list[MigrationFile]] = {}
        for copy in discover(folder):
            version = copy.records_version or _library_version_of(copy.path, library)
            if version in library:
                found.setdefault(version, []).append(copy)
        result: dict[str, _ProjectFile] = {}
        for version, migration in library.items():
            copies = found.get(version, [])
            if not copies:
                raise MigrationError(
                    f"{folder} has no copy of {migration.filename}: run `jobforge migrations "
                    f"export --into {folder}` first, or migrate without --supabase-project"
                )
            if len(copies) > 1:
                raise MigrationError(
                    f"{folder} holds library migration {version} twice: "
                    + ", ".join(c.filename for c in copies)
                )
            copy = copies[0]
            if normalized(copy.statements) != normalized(migration.statements):
                raise MigrationError(
                    f"{folder / copy.filename} differs from the library's {migration.filename}: "
                    "restore it (an exported file is the library file verbatim)"
                )
            result[version] = _ProjectFile(copy.version, copy.name, copy.filename)
        return result

    def _bootstrap_missing(self, conn: Conn, *, needed_only: bool = False) -> list[str]:
        """What of Supabase's roles, auth schema and helpers the database lacks; with
        ``needed_only``, only what the migrations need (the four roles and auth.jwt())."""
        row = conn.execute(
            "select"
            " array(select w.r from unnest(%s::text[]) as w(r)"
            "  where not exists (select 1 from pg_catalog.pg_roles where rolname = w.r)),"
            " array(select w.f from unnest(%s::text[]) as w(f)"
            "  where to_regprocedure(w.f) is null),"
            " to_regnamespace('auth') is null,"
            " array(select w.g from unnest(%s::text[]) as w(g)"
            "  where exists (select 1 from pg_catalog.pg_roles where rolname = w.g)"
            "  and exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator')"
            "  and not exists (select 1 from pg_catalog.pg_auth_members m"
            "   where m.roleid = (select oid from pg_catalog.pg_roles where rolname = w.g)"
            "   and m.member = (select oid from pg_catalog.pg_roles"
            "    where rolname = 'authenticator')))",
            (list(_SUPABASE_ROLES), list(_AUTH_FUNCTIONS), list(_API_ROLES)),
        ).fetchone()
        assert row is not None
        roles, functions, no_auth, grants = row
        missing = [f"role {r}" for r in roles]
        if no_auth:
            missing.append("schema auth")
        missing += [f"function {f}" for f in functions]
        missing += [f"authenticator's membership in {g}" for g in grants]
        if needed_only:
            return [m for m in missing if m.startswith("role ") or m in _NEEDED]
        return missing

    def _authenticator_nologin(self, conn: Conn) -> bool:
        row = conn.execute(
            "select not rolcanlogin from pg_catalog.pg_roles where rolname = 'authenticator'"
        ).fetchone()
        return bool(row and row[0])

    # -- writing ------------------------------------------------------------------------

    def _bootstrap(self, conn: Conn, missing: list[str]) -> list[str]:
        self.echo(
            f"Supabase roles or auth helpers missing ({', '.join(missing)}): "
            "applying supabase/bootstrap"
        )
        boots = discover(bootstrap_dir())
        try:
            with conn.transaction():
                _lock(conn)
                before = self._bootstrap_missing(conn)  # re-read: another runner may have
                if before:
                    for boot in boots:
                        self._run_statements(conn, boot)
                after = self._bootstrap_missing(conn)
        except _StatementFailed as failed:
            raise self._failure(boots[0], failed) from None
        except psycopg.Error as exc:
            raise MigrationError(f"supabase/bootstrap: {_first_line(exc)}") from None
        created = [item for item in before if item not in after]
        if not before:
            self.echo("bootstrap: another runner applied it meanwhile; nothing created")
        else:
            self.echo(f"bootstrap created {', '.join(created) or 'nothing'}")
        if after:
            self.echo(f"bootstrap: still missing {', '.join(after)}")
        return created

    def _record_checksums(self, conn: Conn, records: list[AppliedRecord]) -> None:
        for record in records:
            assert record.file is not None
            with conn.transaction():
                _lock(conn)
                row = conn.execute(
                    f"update {_HISTORY} set checksum = %s"
                    " where version = %s and checksum is null returning version",
                    (record.file.checksum, record.version),
                ).fetchone()
            if row is not None:
                self.echo(
                    f"{record.file.filename} was applied by another tool and its statements "
                    "are not on record: accepted as it is now, and its checksum recorded "
                    "(a later change to it will be refused)"
                )

    def _apply_one(self, conn: Conn, migration: MigrationFile, target: _ProjectFile | None) -> bool:
        """Apply one file in one transaction; False when another runner applied it first."""
        started = time.perf_counter()
        try:
            with conn.transaction():
                # Transaction-scoped: released at COMMIT or ROLLBACK, also behind a pooler.
                _lock(conn)
                if migration.version in self._history(conn):  # re-read inside the lock
                    self.echo(f"{migration.filename}: applied meanwhile by another runner")
                    return False
                self._run_statements(conn, migration)
                self._fill_checksum(conn, migration)
                if target is not None:
                    self._insert_cli_row(conn, migration, target)
        except _StatementFailed as failed:
            raise self._failure(migration, failed) from None
        except MigrationError:
            raise
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.filename}: {_first_line(exc)}") from None
        elapsed = time.perf_counter() - started
        self.echo(f"applied {migration.filename} in {elapsed:.2f} s")
        if target is not None:
            self.echo(f"recorded {migration.filename} in {_CLI_HISTORY} as {target.version}")
        return True

    def _fill_checksum(self, conn: Conn, migration: MigrationFile) -> None:
        row = None
        if self._exists(conn, _HISTORY):
            row = conn.execute(
                f"update {_HISTORY} set checksum = %s"
                " where version = %s and checksum is null returning version",
                (migration.checksum, migration.version),
            ).fetchone()
        if row is None:
            raise MigrationError(
                f"{migration.filename} does not record itself: a library migration ends with "
                f"insert into {_HISTORY} (version, name) values ('{migration.version}', "
                f"'{migration.name}'); nothing of this file was applied"
            )

    def _insert_cli_row(self, conn: Conn, migration: MigrationFile, target: _ProjectFile) -> None:
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            f"create table if not exists {_CLI_HISTORY}"
            " (version text primary key, statements text[], name text)"
        )
        row = conn.execute(
            f"insert into {_CLI_HISTORY} (version, statements, name)"
            " values (%s, %s, %s) on conflict (version) do nothing returning version",
            (target.version, migration.statements, target.name),
        ).fetchone()
        if row is None:
            raise MigrationError(
                f"{migration.filename}: {_CLI_HISTORY} already has version {target.version} "
                f"({target.filename}) although {_HISTORY} lacks {migration.version}; "
                "nothing of this file was applied"
            )

    def _record_in_cli(
        self, conn: Conn, files: list[MigrationFile], project: dict[str, _ProjectFile]
    ) -> None:
        """Record applied library files the Supabase CLI history lacks (applied earlier
        without --supabase-project)."""
        with conn.transaction():
            _lock(conn)
            history = self._history(conn)
            in_cli = self._cli_versions(conn)
            for migration in files:
                target = project[migration.version]
                if migration.version not in history or target.version in in_cli:
                    continue
                self._insert_cli_row(conn, migration, target)
                self.echo(
                    f"recorded {migration.filename} (applied earlier) in {_CLI_HISTORY} "
                    f"as {target.version}"
                )

    def _refuse_changed(self, status: MigrationStatus) -> None:
        if status.changed:
            first = status.changed[0]
            record = status.records[first.version]
            raise MigrationError(
                f"{first.filename} was already applied but its content has changed "
                f"({record.describe()}); refusing to apply anything (restore the file, or "
                "put the change in a new migration)"
            )

    def _dry_run(
        self, conn: Conn, files: list[MigrationFile], project: dict[str, _ProjectFile] | None
    ) -> list[MigrationFile]:
        status = self._status(conn, files, project)
        self._refuse_changed(status)
        if status.needs_bootstrap:
            self.echo(
                f"would apply supabase/bootstrap (missing: {', '.join(status.bootstrap_missing)})"
            )
        for record in status.unrecorded:
            assert record.file is not None
            self.echo(
                f"would record the checksum of {record.file.filename} "
                "(applied by another tool, statements not on record)"
            )
        for migration in status.pending:
            self.echo(f"would apply {migration.filename} ({len(migration.statements)} statements)")
            if project:
                self.echo(
                    f"would record {migration.filename} in {_CLI_HISTORY} as "
                    f"{project[migration.version].version}"
                )
        for version, cli_version in status.cli_unrecorded.items():
            self.echo(
                f"would record library migration {version} in {_CLI_HISTORY} as {cli_version}"
            )
        if not status.pending:
            self.echo("database is up to date: nothing to apply")
        return status.pending

    # -- statements ---------------------------------------------------------------------

    @staticmethod
    def _run_statements(conn: Conn, migration: MigrationFile) -> None:
        for index, statement in enumerate(migration.statements, start=1):
            try:
                conn.execute(statement.encode(), prepare=False)
            except psycopg.Error as exc:
                raise _StatementFailed(index, statement, exc) from exc

    @staticmethod
    def _failure(migration: MigrationFile, failed: _StatementFailed) -> MigrationError:
        line, code = migration.locate(failed.statement)
        return MigrationError(
            f"{migration.filename}: statement {failed.index} (line {line}) failed: "
            f"{code[:80]!r}: "
            f"{_first_line(failed.cause)} [SQLSTATE {failed.cause.sqlstate}]; "
            "nothing of this file was applied"
        )


def _lock(conn: Conn) -> None:
    """Take the migration lock for the current transaction (released at its end).

    Transaction-scoped, so no lock outlives its transaction, behind a pooler too. Then a
    first relation lock in this transaction (on pg_namespace): taking it makes the backend
    process the catalog invalidations that arrived while it waited, so cached name
    lookups (to_regprocedure(), the names in a statement) see what the runner that held
    the lock has just created.
    """
    conn.execute("select pg_advisory_xact_lock(%s, %s)", _LOCK_KEY)
    conn.execute("select 1 from pg_catalog.pg_namespace limit 0")


class _StatementFailed(Exception):
    def __init__(self, index: int, statement: str, cause: psycopg.Error) -> None:
        super().__init__(str(cause))
        self.index = index
        self.statement = statement
        self.cause = cause


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
