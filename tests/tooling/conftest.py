"""Fixtures for the tests that drive the Supabase tooling itself (the pinned Supabase CLI,
PgBouncer) against real databases.

``supabase_cli`` finds the CLI: ``$SUPABASE_CLI``, else the one ``make tools``
(scripts/ci_tools.sh) installs at ``${JOBFORGE_TOOLS_DIR:-~/.cache/jobforge-tools}/bin``.
A missing CLI FAILS the test, saying to run ``make tools``: these tests are the proof that
the library and the CLI agree, and a skip would hide that the proof did not run.

``supabase_project_db()`` makes a fresh database shaped like hosted Supabase
(tests/support/supabase_project.py) and returns its owner's URL (not a superuser); each
is dropped after the test. ``for_cli(url)`` adds the ``sslmode=disable`` the CLI needs
for a local server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.database import Server
from tests.support.supabase_project import drop_supabase_project, make_supabase_project

CLI_TIMEOUT = 180.0
# No telemetry, no update check, no prompt: the CLI runs as in CI.
CLI_ENV = {"SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1", "CI": "1"}


def _find_cli() -> Path | None:
    env = os.environ.get("SUPABASE_CLI", "").strip()
    if env:
        return Path(env)
    tools = os.environ.get("JOBFORGE_TOOLS_DIR", "").strip() or str(
        Path.home() / ".cache" / "jobforge-tools"
    )
    installed = Path(tools) / "bin" / "supabase"
    return installed if installed.exists() else None


def for_cli(url: str) -> str:
    """``url`` with ``sslmode=disable``: the CLI insists on TLS otherwise."""
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


@dataclass(frozen=True)
class SupabaseCli:
    binary: Path

    def run(
        self,
        *args: str,
        remote: str | None = None,
        workdir: Path | None = None,
        yes: bool = True,
        timeout: float = CLI_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``supabase ARGS --remote=URL --workdir DIR --yes``, output captured. With
        ``check`` (the default) a non-zero exit fails the test, showing the output; a hang
        fails it after ``timeout`` seconds."""
        command = [str(self.binary), *args]
        if remote is not None:
            command.append(f"--remote={for_cli(remote)}")
        if workdir is not None:
            command += ["--workdir", str(workdir)]
        if yes:
            command.append("--yes")
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env={**os.environ, **CLI_ENV},
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{' '.join(command[:3])} did not finish in {timeout:.0f} s: {exc}")
        if check:
            assert result.returncode == 0, (
                f"supabase {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="session")
def supabase_cli() -> SupabaseCli:
    binary = _find_cli()
    if binary is None or not os.access(binary, os.X_OK):
        where = binary or "$SUPABASE_CLI or ~/.cache/jobforge-tools/bin/supabase"
        pytest.fail(
            f"the Supabase CLI is missing ({where} not found or not executable): run "
            "`make tools` (scripts/ci_tools.sh installs the pinned 3.1.0), or set SUPABASE_CLI",
            pytrace=False,
        )
    return SupabaseCli(binary)


@pytest.fixture
def supabase_project_db(pg_server: Server) -> Iterator[Callable[[], str]]:
    """``supabase_project_db()``: a new Supabase-shaped database; its owner's URL."""
    names: list[str] = []

    def make() -> str:
        names.append(f"jobforge_tooling_{os.getpid()}_{secrets.token_hex(4)}")
        return make_supabase_project(pg_server.admin_url, names[-1])

    yield make
    for name in names:
        drop_supabase_project(pg_server.admin_url, name)
