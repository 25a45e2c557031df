"""Run the installed ``jobforge`` console script the way a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

JOBFORGE = str(Path(sys.executable).with_name("jobforge"))


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [JOBFORGE, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
