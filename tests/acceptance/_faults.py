"""Helpers of the fault tests: `jobforge worker` processes with their logs, and reads of a
database that may be down at the moment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.support.cli import JOBFORGE

REPO = Path(__file__).parents[2]


class WorkerProcess:
    """One `jobforge worker` process; its stderr (JSON log lines) goes to a file."""

    def __init__(
        self, url: str, worker_id: str, logdir: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.worker_id = worker_id
        self.log_path = logdir / f"{worker_id}.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [JOBFORGE, "worker", "--database-url", url, "--worker-id", worker_id, *extra],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO,  # --app tests.support...: imported from the working directory
                env={**os.environ, "JOBFORGE_FAULT_DB": url, **(env or {})},
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def messages(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (a line cut by a SIGKILL is left out)."""
        lines = []
        for line in self.log_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def logged(self, fragment: str) -> int:
        return sum(fragment in m.get("message", "") for m in self.messages())

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something true; fail saying ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]] | None:
    """Rows of ``sql``, or None while the server cannot be reached."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute(sql, params).fetchall()
    except psycopg.OperationalError:
        return None
