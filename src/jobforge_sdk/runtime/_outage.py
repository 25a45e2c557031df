"""How a worker lives through a database it cannot reach (a restart, a failover, a cut
connection) without dying, flooding its log, or coming back late.

Every thread of a worker that meets a ``TransportError`` reports it here. The first report
of an outage logs one warning; later ones, from any thread, are quiet (debug), because a
worker with sixteen slots would otherwise log sixteen tracebacks a second for as long as
the outage lasts. The claim loop then stops calling the database and waits, probing it
with a plain connection after capped exponential delays (0.1 s doubling to
``max_delay``, 1 s by default, so a server that comes back is noticed within about a
second: waiting longer saves nothing worth having, since a failed connection attempt
costs the server nothing). When a probe succeeds, the pool's idle connections, which all
died with the old server process, are checked and replaced before the claim loop resumes;
the first call that works logs one line saying how long the outage lasted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from jobforge_sdk.errors import TransportError

__all__ = ["Outage", "is_outage"]

logger = logging.getLogger("jobforge_sdk.worker")


def is_outage(exc: BaseException) -> bool:
    """A failure to reach the database, as opposed to an answer refusing the call."""
    return isinstance(exc, TransportError)


class Outage:
    """The database's reachability as one worker sees it, shared by its threads."""

    def __init__(
        self,
        *,
        probe_dsn: str | None,
        pool: Any = None,
        first_delay: float = 0.1,
        max_delay: float = 1.0,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.probe_dsn = probe_dsn
        self.pool = pool
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.extra = extra or {}
        self.back = threading.Event()  # set while the database is reachable
        self.back.set()
        self._lock = threading.Lock()
        self._since: float | None = None
        self._delay = first_delay
        self.outages = 0

    @property
    def down(self) -> bool:
        return not self.back.is_set()

    def failed(self, exc: BaseException, doing: str) -> None:
        """Record that ``doing`` failed to reach the database; log only the first time."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
                self._delay = self.first_delay
                self.outages += 1
                self.back.clear()
        reason = " ".join(str(exc).split())[:300]
        if first:
            logger.warning(
                "database unreachable (%s failed: %s); jobs in hand keep running, their "
                "results wait; retrying every %.1f s at most",
                doing,
                reason,
                self.max_delay,
                extra=self.extra,
            )
        else:
            logger.debug("still unreachable (%s): %s", doing, reason, extra=self.extra)

    def recovered(self) -> None:
        """A call worked: if the database was down, say for how long, once."""
        with self._lock:
            since, self._since = self._since, None
            self._delay = self.first_delay
            self.back.set()
        if since is not None:
            logger.warning(
                "database reachable again after %.1f s; resuming",
                time.monotonic() - since,
                extra=self.extra,
            )

    def next_delay(self) -> float:
        """How long to wait before the next probe (doubles each time, up to the cap)."""
        with self._lock:
            delay = self._delay
            self._delay = min(self._delay * 2, self.max_delay)
        return delay

    def probe(self) -> bool:
        """One attempt to reach the server (a plain connection, not the pool's); on success
        the pool's dead idle connections are replaced. Over HTTP there is nothing to probe
        with: True, and the caller's next real call is the probe."""
        if self.probe_dsn is not None:
            timeout = max(1, round(self.max_delay * 2))
            try:
                psycopg.connect(self.probe_dsn, connect_timeout=timeout).close()
            except psycopg.Error as exc:
                logger.debug("probe failed: %s", exc, extra=self.extra)
                return False
        check: Callable[[], None] | None = getattr(self.pool, "check", None)
        if check is not None and not getattr(self.pool, "closed", True):
            try:
                check()  # discards each idle connection that died with the old server
            except Exception as exc:  # the pool's own business; the next call tells
                logger.debug("pool check failed: %s", exc, extra=self.extra)
        return True
