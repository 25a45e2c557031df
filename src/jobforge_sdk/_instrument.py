"""Wrapping a transport's ``call`` so metrics and tracing see every RPC, without touching
the client or the transports: the wrapper replaces the bound method on the transport
instance (so ``isinstance`` checks and ``with_claims`` keep working), once per purpose.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Around", "AroundAsync", "wrap_calls"]

Observer = Callable[[str, Any, float, BaseException | None], None]
# An ``around`` takes (fn, args, run) and returns run's answer: tracing opens a span
# around ``run()``; it may hand ``run`` changed args. ``around_async`` is the same for an
# async transport (``run`` then returns an awaitable, and so must it).
Around = Callable[[str, Any, Callable[[Any], Any]], Any]
AroundAsync = Callable[[str, Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]


def wrap_calls(
    transport: Any,
    purpose: str,
    observe: Observer | None = None,
    around: Around | None = None,
    around_async: AroundAsync | None = None,
) -> None:
    marker = f"_jobforge_instrumented_{purpose}"
    if getattr(transport, marker, False):
        return
    inner = transport.call
    if inspect.iscoroutinefunction(inner):

        @functools.wraps(inner)
        async def acall(fn: str, args: Any) -> Any:
            async def run(given: Any) -> Any:
                return await _timed_async(inner, fn, given, observe)

            if around_async is None:
                return await run(args)
            return await around_async(fn, args, run)

        transport.call = acall
    else:

        @functools.wraps(inner)
        def call(fn: str, args: Any) -> Any:
            def run(given: Any) -> Any:
                return _timed(inner, fn, given, observe)

            if around is None:
                return run(args)
            return around(fn, args, run)

        transport.call = call
    setattr(transport, marker, True)


def _timed(inner: Callable[..., Any], fn: str, args: Any, observe: Observer | None) -> Any:
    if observe is None:
        return inner(fn, args)
    started = time.perf_counter()
    try:
        answer = inner(fn, args)
    except BaseException as exc:
        observe(fn, args, time.perf_counter() - started, exc)
        raise
    observe(fn, args, time.perf_counter() - started, None)
    return answer


async def _timed_async(
    inner: Callable[..., Any], fn: str, args: Any, observe: Observer | None
) -> Any:
    if observe is None:
        return await inner(fn, args)
    started = time.perf_counter()
    try:
        answer = await inner(fn, args)
    except BaseException as exc:
        observe(fn, args, time.perf_counter() - started, exc)
        raise
    observe(fn, args, time.perf_counter() - started, None)
    return answer
