"""A throwaway PgBouncer in transaction mode, as Supabase's pooler runs (port 6543).

``running_pgbouncer(dbname)`` writes a config into a temporary folder, starts
``pgbouncer`` in the foreground on a free port of 127.0.0.1, pointing at the PostgreSQL
server (127.0.0.1:5432 unless told otherwise), waits until it accepts connections, and
yields a URL through it; on exit it stops the process (SIGTERM, then SIGKILL) and removes
the folder. No process outlives the block: on Linux the pooler also gets SIGTERM if the
thread that started it dies first.

Transaction pooling means that two transactions of one client may run on two server
connections, and one server connection serves many clients in turn: session state (SET,
session advisory locks, LISTEN, temporary tables, prepared statements) leaks or vanishes.
That is what tests run through it are for. PgBouncer 1.18 (Debian 12) knows no protocol-level
prepared statements, so connect with ``psycopg.connect(url, prepare_threshold=None)``.

Authentication: ``auth_type = trust`` with an auth_file naming ``users`` (PgBouncer
rejects a user that is not in it, even under trust), and the server must trust
127.0.0.1 as well. PgBouncer refuses to run as root ("PgBouncer should not run as
root"): as root, the process is started as ``run_as`` (default ``nobody``; not with
pgbouncer's own ``-u``, whose setuid would cancel the parent-death signal), and the folder
is made readable for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

PGBOUNCER = os.environ.get("JOBFORGE_PGBOUNCER", "pgbouncer")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class PgBouncerError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _executable() -> str:
    found = shutil.which(PGBOUNCER) or shutil.which(PGBOUNCER, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PgBouncerError(
            f"{PGBOUNCER} not found: run scripts/ci_tools.sh (installs the Debian package)"
        )
    return found


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)

    return preexec


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _config(
    dbname: str, port: int, server_host: str, server_port: int, auth_file: Path, pool_mode: str
) -> str:
    return "\n".join(
        [
            "[databases]",
            f"{dbname} = host={server_host} port={server_port} dbname={dbname}",
            "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {auth_file}",
            f"pool_mode = {pool_mode}",
            "default_pool_size = 5",
            "max_client_conn = 100",
            # psycopg and the JDBC-style clients send these; PgBouncer refuses unknown ones.
            "ignore_startup_parameters = extra_float_digits,options",
            "server_check_delay = 0",
            "",
        ]
    )


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PgBouncerError(
                f"pgbouncer exited with {proc.returncode}: {log.read_text(errors='replace')}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise PgBouncerError(f"pgbouncer did not listen on {port}: {log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # 1.18: immediate shutdown, server connections closed
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def running_pgbouncer(
    dbname: str,
    *,
    user: str = "postgres",
    users: Sequence[str] = (),
    server_host: str = "127.0.0.1",
    server_port: int = 5432,
    pool_mode: str = "transaction",
    run_as: str = "nobody",
) -> Iterator[str]:
    """Run a PgBouncer for ``dbname``; yield ``postgresql://user@127.0.0.1:<port>/dbname``.

    ``users`` are further users the pooler lets in (besides ``user``).
    """
    executable = _executable()
    workdir = Path(tempfile.mkdtemp(prefix="jobforge-pgbouncer-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        auth_file = workdir / "users.txt"
        auth_file.write_text("".join(f'{_quote(u)} ""\n' for u in dict.fromkeys([user, *users])))
        log = workdir / "pgbouncer.log"
        for attempt in range(3):
            port = _free_port()
            ini = workdir / "pgbouncer.ini"
            ini.write_text(_config(dbname, port, server_host, server_port, auth_file, pool_mode))
            as_root = os.geteuid() == 0
            if as_root:  # the process runs as run_as: it must read the folder
                workdir.chmod(0o755)
                for path in (auth_file, ini):
                    path.chmod(0o644)
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [executable, str(ini)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    user=run_as if as_root else None,
                    preexec_fn=_die_with_parent(),
                )
            try:
                _wait_until_listening(proc, port, log)
                break
            except PgBouncerError:
                _stop(proc)
                proc = None
                if attempt == 2:
                    raise
        yield f"postgresql://{user}@127.0.0.1:{port}/{dbname}"
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
