"""Starting the dashboard: the bind rule, and uvicorn in the foreground (the CLI) or in a
thread (tests, embedding)."""

from __future__ import annotations

import threading
import time
from typing import Any

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.dashboard.app import create_app
from jobforge_sdk.dashboard.settings import DashboardSettings, is_loopback
from jobforge_sdk.errors import ConfigurationError

__all__ = ["DashboardServer", "check_bind"]


def check_bind(host: str, settings: DashboardSettings) -> None:
    """Refuse to serve a non-loopback address without a token: anyone who can reach it
    could read every tenant's jobs and retry or cancel them."""
    if not is_loopback(host) and settings.auth_token is None:
        raise ConfigurationError(
            f"--host {host} is reachable from other machines: pass --auth-token (or set "
            "JOBFORGE_DASHBOARD_TOKEN), or bind 127.0.0.1"
        )


class DashboardServer:
    """uvicorn serving the dashboard; ``start()`` runs it in a daemon thread and returns
    once it listens, ``run()`` blocks (Ctrl-C stops it)."""

    def __init__(
        self,
        client: JobForgeClient,
        settings: DashboardSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        log_level: str = "warning",
    ) -> None:
        import uvicorn

        check_bind(host, settings)
        self.app = create_app(client, settings)
        config = uvicorn.Config(
            self.app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0)."""
        servers: list[Any] = getattr(self.server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def run(self) -> None:
        self.server.run()

    def start(self, timeout: float = 15.0) -> DashboardServer:
        self._thread = threading.Thread(target=self.server.run, name="jobforge-dashboard")
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError("the dashboard did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
