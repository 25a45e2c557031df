"""``jobforge migrate`` through a transaction-mode PgBouncer (as Supabase's pooler on port
6543 runs): the migration lock is transaction-scoped, so nothing stays held by an idle
pooled server connection, and a runner through the pooler and a direct one never apply a
file twice. Each runner is a real ``jobforge`` process with a timeout, so a hang fails.

PgBouncer must be installed (``make tools``); tests/support/pgbouncer.py fails otherwise.
"""

from __future__ import annotations

import subprocess

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests.support.cli import JOBFORGE, run_cli
from tests.support.pgbouncer import running_pgbouncer

BASELINE = "applied 001_jobforge_baseline.sql in "
TIMEOUT = 120.0


def _dbname_and_user(url: str) -> tuple[str, str]:
    params = conninfo_to_dict(url)
    return str(params["dbname"]), str(params.get("user") or "postgres")


def _advisory_locks(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory'"
            " and database = (select oid from pg_database where datname = current_database())"
        ).fetchone()
    return int(row[0]) if row else -1


def _history(url: str) -> list[tuple[str, str, bool]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version, name, checksum is not null from jobforge_migrations.history"
        ).fetchall()
    return [(str(v), str(n), bool(c)) for v, n, c in rows]


def test_a_migrate_through_the_pooler_leaves_no_lock_behind(blank_db: str) -> None:
    dbname, user = _dbname_and_user(blank_db)
    with running_pgbouncer(dbname, user=user) as pooled:
        result = run_cli("migrate", "--database-url", pooled, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        assert BASELINE in result.stdout
        # The pooler still holds its server connections, idle: none holds the lock.
        with psycopg.connect(pooled, prepare_threshold=None) as conn:
            conn.execute("select 1")
        assert _advisory_locks(blank_db) == 0

        # A direct runner finishes (a leaked session lock would make it wait forever;
        # run_cli's timeout turns that into a failure).
        direct = run_cli("migrate", "--database-url", blank_db, timeout=60)
        assert direct.returncode == 0, direct.stderr
        assert "nothing to apply" in direct.stdout
        # And so does a second one through the pooler, status included.
        status = run_cli("migrate", "--database-url", pooled, "--status", timeout=60)
        assert status.returncode == 0, status.stderr
        assert "applied  001  001_jobforge_baseline.sql  (by jobforge migrate" in status.stdout
    assert _history(blank_db) == [("001", "jobforge_baseline", True)]


def test_a_direct_and_a_pooled_runner_at_once_apply_the_baseline_once(blank_db: str) -> None:
    dbname, user = _dbname_and_user(blank_db)
    with running_pgbouncer(dbname, user=user) as pooled:
        procs = [
            subprocess.Popen(
                [JOBFORGE, "migrate", "--database-url", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for url in (blank_db, pooled)
        ]
        try:
            outputs = [p.communicate(timeout=TIMEOUT) for p in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert [p.returncode for p in procs] == [0, 0], outputs
        applied = [line for out, _ in outputs for line in out.splitlines() if BASELINE in line]
        assert len(applied) == 1, outputs
        assert _advisory_locks(blank_db) == 0
    assert _history(blank_db) == [("001", "jobforge_baseline", True)]
