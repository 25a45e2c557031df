"""Direct PostgreSQL transport: psycopg 3 with a ``psycopg_pool`` pool.

Without claims a call is one autocommitted statement, one round trip. With claims
(``with_claims``) each call runs in its own transaction that first switches role and sets
``request.jwt.claims``, exactly as PostgREST does, so RLS and the RPCs' tenant checks see
the same caller they would see through Supabase.

Building a transport does no I/O; the first call opens the pool, and before that makes
one plain connection of its own. A pool that cannot connect retries quietly until its
timeout and then says only that it timed out, so a wrong URL, password or database name
would cost every caller the whole pool timeout and a burst of warnings, and tell them
nothing; the plain connection fails in a moment with libpq's reason (connection refused
at host:port, password authentication failed, database "x" does not exist).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from jobforge_sdk._transports._sql import (
    SET_CLAIMS,
    SIGNATURE_QUERY,
    Signatures,
    claims_json,
    configure_connection,
    map_error,
    unencodable_text,
)
from jobforge_sdk.errors import ConfigurationError, JobForgeError, TransportError

__all__ = ["AsyncPostgresTransport", "PostgresTransport"]

# reconnect_timeout: psycopg_pool replaces each connection that broke (a server restart)
# in the background, retrying after 1, 2, 4, 8, ... s with no cap until this timeout
# (default 5 minutes), and while such retries hold every slot of the pool it opens no
# new connection: a pool that lost all its connections in a 20 s outage served again
# only 8.4 s after the server was back (measured). Giving up after 5 s frees the slot,
# and the next caller connects at once.
_DEFAULT_POOL = {"min_size": 1, "max_size": 10, "timeout": 30.0, "reconnect_timeout": 5.0}


def _pool_args(dsn: str, pool_options: Mapping[str, Any], *, is_async: bool) -> dict[str, Any]:
    options = {**_DEFAULT_POOL, **pool_options}
    kwargs = {"autocommit": True, **options.pop("kwargs", {})}
    user_configure = options.pop("configure", None)
    if is_async:

        async def configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
            configure_connection(conn)
            if user_configure is not None:
                await user_configure(conn)

        configure: Any = configure_async
    else:

        def configure_sync(conn: psycopg.Connection[Any]) -> None:
            configure_connection(conn)
            if user_configure is not None:
                user_configure(conn)

        configure = configure_sync
    return {"conninfo": dsn, "kwargs": kwargs, "open": False, "configure": configure, **options}


def _check_args(pool: ConnectionPool | AsyncConnectionPool) -> tuple[str, dict[str, Any]] | None:
    """Arguments of the first, plain connection: the pool's own, and a connect timeout
    within the pool's (libpq waits forever for a host that drops packets) unless the URL
    or the options chose one. None for a pool given conninfo or kwargs as functions (made
    by the caller, not ``connect``): they are the pool's to call, so it is not checked."""
    conninfo, given_kwargs = pool.conninfo, pool.kwargs
    if not isinstance(conninfo, str) or not isinstance(given_kwargs, dict | None):
        return None
    kwargs = dict(given_kwargs or {})
    try:
        in_url = "connect_timeout" in conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        in_url = False  # the connection attempt reports the malformed URL
    if not in_url and "connect_timeout" not in kwargs:
        kwargs["connect_timeout"] = max(2, min(10, math.ceil(pool.timeout)))
    return conninfo, kwargs


def _connect_error(exc: psycopg.Error) -> JobForgeError:
    """Why the database could not be reached, on one line: libpq's own reason, which
    names the host and port, the user or the database, and never the password."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.ProgrammingError):
        return ConfigurationError(f"invalid database URL: {reason}")
    return TransportError(f"cannot connect to the database: {reason}", retryable=True)


class PostgresTransport:
    """Sync transport. The pool opens on the first call, so building a client does no I/O;
    a database that cannot be reached fails that call at once, saying why."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        claims: Mapping[str, Any] | None = None,
        role: str = "authenticated",
        owns_pool: bool = True,
        signatures: Signatures | None = None,
    ) -> None:
        self.pool = pool
        self._claims = claims_json(claims) if claims is not None else None
        self._role = role
        self._owns_pool = owns_pool
        self._signatures = signatures or Signatures()
        self._open_lock = threading.Lock()
        self._opened = False

    @classmethod
    def connect(cls, dsn: str, **pool_options: Any) -> PostgresTransport:
        return cls(ConnectionPool(**_pool_args(dsn, pool_options, is_async=False)))

    def with_claims(
        self, claims: Mapping[str, Any], *, role: str = "authenticated"
    ) -> PostgresTransport:
        """A transport on the same pool whose calls run as ``role`` with ``claims``."""
        return PostgresTransport(
            self.pool, claims=claims, role=role, owns_pool=False, signatures=self._signatures
        )

    def _ensure_open(self) -> None:
        if not self._opened:
            with self._open_lock:
                if self.pool.closed:
                    # Left closed on failure: the next call checks again (the server may
                    # be up by then), and no pool worker keeps retrying in the background.
                    check = _check_args(self.pool)
                    if check is not None:
                        try:
                            psycopg.connect(check[0], **check[1]).close()
                        except psycopg.Error as exc:
                            raise _connect_error(exc) from None
                    self.pool.open()
                self._opened = True

    def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        self._ensure_open()
        try:
            with self.pool.connection() as conn:
                if not self._signatures.known(fn):
                    self._signatures.store(fn, conn.execute(SIGNATURE_QUERY, (fn,)).fetchall())
                statement, values = self._signatures.prepare(fn, args)
                if self._claims is None:
                    row = conn.execute(statement, values).fetchone()
                else:
                    with conn.transaction():
                        conn.execute(SET_CLAIMS, (self._role, self._claims))
                        row = conn.execute(statement, values).fetchone()
        except PoolTimeout as exc:
            raise TransportError(
                f"no database connection available: {exc}", retryable=True
            ) from None
        except psycopg.Error as exc:
            raise map_error(exc) from None
        except UnicodeEncodeError as exc:
            raise unencodable_text(exc) from None
        return row[0] if row else None

    def close(self) -> None:
        if self._owns_pool and not self.pool.closed:
            self.pool.close()

    def listen_conninfo(self) -> str | None:
        """Where a worker can LISTEN: the pool's own server."""
        return str(self.pool.conninfo)


class AsyncPostgresTransport:
    """Async twin of ``PostgresTransport``; statement building and error mapping are shared."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        claims: Mapping[str, Any] | None = None,
        role: str = "authenticated",
        owns_pool: bool = True,
        signatures: Signatures | None = None,
    ) -> None:
        self.pool = pool
        self._claims = claims_json(claims) if claims is not None else None
        self._role = role
        self._owns_pool = owns_pool
        self._signatures = signatures or Signatures()
        self._open_lock: asyncio.Lock | None = None
        self._opened = False

    @classmethod
    def connect(cls, dsn: str, **pool_options: Any) -> AsyncPostgresTransport:
        return cls(AsyncConnectionPool(**_pool_args(dsn, pool_options, is_async=True)))

    def with_claims(
        self, claims: Mapping[str, Any], *, role: str = "authenticated"
    ) -> AsyncPostgresTransport:
        return AsyncPostgresTransport(
            self.pool, claims=claims, role=role, owns_pool=False, signatures=self._signatures
        )

    async def _ensure_open(self) -> None:
        if not self._opened:
            if self._open_lock is None:
                self._open_lock = asyncio.Lock()
            async with self._open_lock:
                if self.pool.closed:
                    # As in PostgresTransport._ensure_open; inside the running loop, which
                    # the pool's workers then belong to.
                    check = _check_args(self.pool)
                    if check is not None:
                        try:
                            conn = await psycopg.AsyncConnection.connect(check[0], **check[1])
                        except psycopg.Error as exc:
                            raise _connect_error(exc) from None
                        await conn.close()
                    await self.pool.open()
                self._opened = True

    async def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        await self._ensure_open()
        try:
            async with self.pool.connection() as conn:
                if not self._signatures.known(fn):
                    cur = await conn.execute(SIGNATURE_QUERY, (fn,))
                    self._signatures.store(fn, await cur.fetchall())
                statement, values = self._signatures.prepare(fn, args)
                if self._claims is None:
                    cur = await conn.execute(statement, values)
                    row = await cur.fetchone()
                else:
                    async with conn.transaction():
                        await conn.execute(SET_CLAIMS, (self._role, self._claims))
                        cur = await conn.execute(statement, values)
                        row = await cur.fetchone()
        except PoolTimeout as exc:
            raise TransportError(
                f"no database connection available: {exc}", retryable=True
            ) from None
        except psycopg.Error as exc:
            raise map_error(exc) from None
        except UnicodeEncodeError as exc:
            raise unencodable_text(exc) from None
        return row[0] if row else None

    async def close(self) -> None:
        if self._owns_pool and not self.pool.closed:
            await self.pool.close()

    def listen_conninfo(self) -> str | None:
        """Where a worker can LISTEN: the pool's own server."""
        return str(self.pool.conninfo)
