#!/usr/bin/env python3
"""The execution-plane smoke test, for CIs that run scripts rather than console commands.

Same checks, options and exit codes as ``jobforge smoke`` (it calls the package):

    python scripts/smoke_test_execution_plane.py --database-url "$DATABASE_URL" --json
    python scripts/smoke_test_execution_plane.py --enable-all   # embedded PostgreSQL
"""

from __future__ import annotations

import sys

from jobforge_sdk.tooling.cli import main

if __name__ == "__main__":
    sys.exit(main(["smoke", *sys.argv[1:]]))
