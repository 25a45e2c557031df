"""Supabase transport: PostgREST's ``/rpc`` through supabase-py's ``.rpc()``.

The SDK owns the httpx client it hands to supabase-py (explicit timeouts, closed with the
client) unless the caller passes a ready-made supabase client. ``key`` is the project's API
key (the gateway checks it on every request); ``access_token``, when given, is the signed-in
user's JWT, sent as the bearer token so that calls run as that user (without it the key is
the bearer too, as supabase-py does). ``APIError.code`` carries the
SQLSTATE (``PT400``...) or a PostgREST code, and is mapped through the same table as a
psycopg error, so both transports raise the same exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, Client, ClientOptions

from jobforge_sdk.errors import JobForgeError, TransportError, error_from_sqlstate

__all__ = ["DEFAULT_TIMEOUT", "AsyncSupabaseTransport", "SupabaseTransport"]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _map_api_error(exc: APIError) -> JobForgeError:
    # A gateway refusal (wrong API key) has a message and no code: the shared table maps
    # those messages too, so no HTTP status is needed (supabase-py does not keep it).
    return error_from_sqlstate(exc.code or None, exc.message or str(exc), details=exc.details)


def _bearer(access_token: str | None) -> dict[str, str]:
    return {} if access_token is None else {"Authorization": f"Bearer {access_token}"}


def _map_http_error(exc: httpx.HTTPError) -> TransportError:
    # A connect failure never reached the server: safe to retry whatever the call was.
    retryable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    return TransportError(
        f"Supabase request failed: {type(exc).__name__}: {exc}", retryable=retryable
    )


class SupabaseTransport:
    def __init__(self, client: Client, *, http: httpx.Client | None = None) -> None:
        self.client = client
        self._http = http

    @classmethod
    def connect(
        cls,
        url: str,
        key: str,
        *,
        access_token: str | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> SupabaseTransport:
        http = httpx.Client(timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        options = ClientOptions(
            postgrest_client_timeout=http.timeout, httpx_client=http, headers=_bearer(access_token)
        )
        return cls(Client(url, key, options), http=http)

    def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        try:
            return self.client.rpc(fn, dict(args)).execute().data
        except APIError as exc:
            raise _map_api_error(exc) from None
        except httpx.HTTPError as exc:
            raise _map_http_error(exc) from None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def listen_conninfo(self) -> str | None:
        """None: there is no LISTEN over HTTP, so a worker polls."""
        return None


class AsyncSupabaseTransport:
    def __init__(self, client: AsyncClient, *, http: httpx.AsyncClient | None = None) -> None:
        self.client = client
        self._http = http

    @classmethod
    def connect(
        cls,
        url: str,
        key: str,
        *,
        access_token: str | None = None,
        timeout: httpx.Timeout | float | None = None,
    ) -> AsyncSupabaseTransport:
        http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
        options = AsyncClientOptions(
            postgrest_client_timeout=http.timeout, httpx_client=http, headers=_bearer(access_token)
        )
        return cls(AsyncClient(url, key, options), http=http)

    async def call(self, fn: str, args: Mapping[str, Any]) -> Any:
        try:
            return (await self.client.rpc(fn, dict(args)).execute()).data
        except APIError as exc:
            raise _map_api_error(exc) from None
        except httpx.HTTPError as exc:
            raise _map_http_error(exc) from None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def listen_conninfo(self) -> str | None:
        """None: there is no LISTEN over HTTP, so a worker polls."""
        return None
