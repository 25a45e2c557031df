"""Build SDK clients over each transport, so one test body runs through all four:
direct Postgres and Supabase (the PostgREST stub), sync and async."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from jobforge_sdk._client.aio import AsyncJobForgeClient
from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.flags import FeatureFlags
from tests.support.postgrest import PostgrestStub, make_jwt

JWT_SECRET = "jobforge-test-jwt-secret-at-least-32-characters"
TRANSPORTS = ("postgres", "postgres-async", "supabase", "supabase-async")


class SyncFacade:
    """Drive an ``AsyncJobForgeClient`` from a sync test on its own event loop."""

    def __init__(self, client: AsyncJobForgeClient) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    @property
    def flags(self) -> FeatureFlags:
        return self._client.flags

    @property
    def transport(self) -> Any:
        return _LoopBound(self._client.transport, self._loop)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def run(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._loop.run_until_complete(result)
            return result

        return run

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


class _LoopBound:
    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def call(self, fn: str, args: dict[str, Any]) -> Any:
        return self._loop.run_until_complete(self._target.call(fn, args))


def user_jwt_claims(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != "role"}


class ClientFactory:
    """``make(kind, url=..., claims=..., flags=...)``; closes everything it made."""

    def __init__(self, default_url: str, stub_for: Callable[[str], PostgrestStub]) -> None:
        self.default_url = default_url
        self._stub_for = stub_for
        self._made: list[Any] = []

    def make(
        self,
        kind: str,
        *,
        url: str | None = None,
        claims: dict[str, Any] | None = None,
        flags: FeatureFlags | None = None,
        strict: bool = False,
    ) -> Any:
        dsn = url or self.default_url
        client: Any
        if kind == "postgres":
            client = JobForgeClient.from_postgres(dsn, flags=flags, strict=strict, max_size=4)
            self._made.append(client)
            return client.with_claims(claims) if claims is not None else client
        if kind == "postgres-async":
            aclient = AsyncJobForgeClient.from_postgres(dsn, flags=flags, strict=strict, max_size=4)
            if claims is not None:
                facade = SyncFacade(aclient)
                self._made.append(facade)
                user = SyncFacade(aclient.with_claims(claims))
                user._loop.close()
                user._loop = facade._loop
                return user
            client = SyncFacade(aclient)
            self._made.append(client)
            return client
        stub = self._stub_for(dsn)
        # A backend calls with the service-role key; a user's call carries the anon key
        # for the gateway and the user's JWT as the bearer, as supabase-js sends them.
        token: str | None = None
        if claims is None:
            key = make_jwt(JWT_SECRET, "service_role")
        else:
            key = make_jwt(JWT_SECRET, "anon")
            token = make_jwt(JWT_SECRET, "authenticated", **user_jwt_claims(claims))
        options: dict[str, Any] = {"access_token": token, "flags": flags, "strict": strict}
        if kind == "supabase":
            client = JobForgeClient.from_supabase(stub.url, key, **options)
        elif kind == "supabase-async":
            client = SyncFacade(AsyncJobForgeClient.from_supabase(stub.url, key, **options))
        else:
            raise ValueError(kind)
        self._made.append(client)
        return client

    def close(self) -> None:
        for client in reversed(self._made):
            client.close()


@contextmanager
def stubs(
    shared_url: str,
    shared: Callable[[], PostgrestStub],
    start: Callable[[str], PostgrestStub],
) -> Iterator[Callable[[str], PostgrestStub]]:
    """Stubs for the databases a test uses; the shared database's stub lives all session.
    ``start(url)`` starts one (the ``start_stub`` fixture)."""
    running: dict[str, PostgrestStub] = {}

    def stub_for(url: str) -> PostgrestStub:
        if url == shared_url:
            return shared()
        if url not in running:
            running[url] = start(url)
        return running[url]

    try:
        yield stub_for
    finally:
        for stub in running.values():
            stub.stop()
