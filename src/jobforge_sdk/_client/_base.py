"""What the sync and async clients share: configuration, feature gating, the one driver
that runs an operation, and the descriptors that turn an operation into a method.

A method is declared once per client as ``enqueue_job = SyncMethod(queue.enqueue_job)``
(an internal operation under ``_`` + its name); its signature, docstring, validation and
parsing all come from the operation, so the two clients differ only in whether the
transport call is awaited. Only this module calls a client's ``_allowed`` and ``_run``.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from jobforge_sdk._operations._machinery import FlagsRequest, Gate, Operation, RpcCall
from jobforge_sdk.errors import ConfigurationError, FeatureDisabledError
from jobforge_sdk.flags import Feature, FeatureFlags, warn_unknown_settings

__all__ = ["AsyncMethod", "ClientBase", "SyncMethod", "method_signature"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("jobforge_sdk")


class ClientBase:
    def __init__(self, *, flags: FeatureFlags | None, strict: bool) -> None:
        warn_unknown_settings()  # a misspelt JOBFORGE_* variable: once per process
        self.flags = flags if flags is not None else FeatureFlags()
        self.strict = strict
        self._reported_off: set[Feature] = set()
        # Answers of cacheable calls (RpcCall.cache_seconds): key -> (expires at, answer).
        self._remembered: dict[str, tuple[float, Any]] = {}
        if (
            self.flags.action_jobs
            and self.flags.require_policy_tokens
            and self.flags.policy_token_secret is None
        ):
            raise ConfigurationError(
                "JOBFORGE_ACTION_JOBS_ENABLED is on and JOBFORGE_REQUIRE_POLICY_TOKENS is on, "
                "but JOBFORGE_POLICY_TOKEN_SECRET is not set: action jobs could never be "
                "authorised"
            )

    def _allowed(self, method: str, feature: Feature | None) -> bool:
        """False when the method's feature is off (logged once per feature), unless strict."""
        if feature is None or self.flags.enabled(feature):
            return True
        env = feature.env_var
        if self.strict:
            raise FeatureDisabledError(f"{method} needs feature {feature.value} ({env}=1)")
        if feature not in self._reported_off:
            self._reported_off.add(feature)
            logger.info(
                "feature %s is off (%s): %s and its kin do nothing", feature.value, env, method
            )
        return False

    def _recall(self, call: RpcCall[Any]) -> tuple[str, Any] | None:
        """``(key, answer)`` when a cacheable call's answer is still remembered; ``(key,
        _MISSING)`` when it must be asked; ``None`` for a call that is never cached."""
        if call.cache_seconds is None:
            return None
        key = json.dumps([call.fn, call.args], sort_keys=True, default=str)
        hit = self._remembered.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return key, hit[1]
        return key, _MISSING

    def _remember(self, key: str, call: RpcCall[Any], answer: Any) -> None:
        assert call.cache_seconds is not None
        self._remembered[key] = (time.monotonic() + call.cache_seconds, answer)

    def _answer(self, step: Gate | FlagsRequest) -> object:
        """Answer a step of a multi-step operation that needs the client, not the network."""
        if isinstance(step, Gate):
            return self._allowed(step.method, step.feature)
        return self.flags


_MISSING = object()


def _ask(client: _Client, call: RpcCall[T]) -> Generator[RpcCall[Any], Any, T]:
    """One call's answer: from the client's memory when the call is cacheable and
    remembered, else from the transport (and remembered when cacheable)."""
    recalled = client._recall(call)
    if recalled is not None and recalled[1] is not _MISSING:
        remembered: T = recalled[1]
        return remembered
    answer: T = yield call
    if recalled is not None:
        client._remember(recalled[0], call, answer)
    return answer


def _drive(
    client: _Client, op: Operation[P, T], *args: P.args, **kwargs: P.kwargs
) -> Generator[RpcCall[Any], Any, T]:
    """The one place an operation is run: its gate, then its plan's round trips.

    Yields each ``RpcCall`` and takes its parsed answer back; a gated-off operation
    returns its empty value without building its plan (no validation, no I/O), and the
    steps that need the client rather than the network (a gate that depends on the
    arguments, the flags) are answered here. The sync and async methods differ only in
    whether they await the transport between two yields.
    """
    if not client._allowed(op.name, op.feature):
        empty: T = op.empty_value()
        return empty
    plan = op(*args, **kwargs)
    if isinstance(plan, RpcCall):
        return (yield from _ask(client, plan))
    try:
        step = next(plan)
        while True:
            if isinstance(step, RpcCall):
                step = plan.send((yield from _ask(client, step)))
            else:
                step = plan.send(client._answer(step))
    except StopIteration as done:
        result: T = done.value
        return result


_PLAN_TYPE = re.compile(r"^(?:RpcCall|Steps|Plan)\[(.*)\]$")


def method_signature(op: Operation[..., Any]) -> inspect.Signature:
    """The client method's signature: the operation's parameters, returning what its
    plan's answer is (``RpcCall[JobRow]`` becomes ``JobRow``)."""
    signature = inspect.signature(op.build)
    returns = signature.return_annotation
    match = _PLAN_TYPE.match(returns) if isinstance(returns, str) else None
    return signature.replace(return_annotation=match.group(1) if match else inspect.Signature.empty)


class _Method(Generic[P, T]):
    """A client method made from an operation: declared once per client, under the
    operation's ``method_name``."""

    def __init__(self, op: Operation[P, T]) -> None:
        self.op = op
        self.name = self.qualname = op.method_name
        self.signature = method_signature(op)
        self.__doc__ = op.build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.op.method_name:
            raise TypeError(
                f"{owner.__name__}.{name} runs operation {self.op.name}: declare it as "
                f"{self.op.method_name}"
            )
        self.qualname = f"{owner.__name__}.{name}"

    def _decorate(self, method: Callable[..., Any]) -> None:
        method.__name__ = self.name
        method.__qualname__ = self.qualname
        method.__doc__ = self.__doc__
        method.__signature__ = self.signature  # type: ignore[attr-defined]


class SyncMethod(_Method[P, T]):
    @overload
    def __get__(self, obj: None, owner: type) -> SyncMethod[P, T]: ...

    @overload
    def __get__(self, obj: SyncRunner, owner: type) -> Callable[P, T]: ...

    def __get__(self, obj: SyncRunner | None, owner: type) -> SyncMethod[P, T] | Callable[P, T]:
        if obj is None:
            return self
        op = self.op

        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            steps = _drive(obj, op, *args, **kwargs)
            try:
                call = next(steps)
                while True:
                    call = steps.send(obj._run(call))
            except StopIteration as done:
                result: T = done.value
                return result

        self._decorate(method)
        return method


class AsyncMethod(_Method[P, T]):
    @overload
    def __get__(self, obj: None, owner: type) -> AsyncMethod[P, T]: ...

    @overload
    def __get__(self, obj: AsyncRunner, owner: type) -> Callable[P, Awaitable[T]]: ...

    def __get__(
        self, obj: AsyncRunner | None, owner: type
    ) -> AsyncMethod[P, T] | Callable[P, Awaitable[T]]:
        if obj is None:
            return self
        op = self.op

        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            steps = _drive(obj, op, *args, **kwargs)
            try:
                call = next(steps)
                while True:
                    call = steps.send(await obj._run(call))
            except StopIteration as done:
                result: T = done.value
                return result

        self._decorate(method)
        return method


class _Client(Protocol):
    """What the driver needs of a client: its gate and the answers to client steps."""

    def _allowed(self, method: str, feature: Feature | None) -> bool: ...

    def _answer(self, step: Gate | FlagsRequest) -> object: ...

    def _recall(self, call: RpcCall[Any]) -> tuple[str, Any] | None: ...

    def _remember(self, key: str, call: RpcCall[Any], answer: Any) -> None: ...


class SyncRunner(_Client, Protocol):
    """What a ``SyncMethod`` needs of the client it is bound to."""

    def _run(self, call: RpcCall[T]) -> T: ...


class AsyncRunner(_Client, Protocol):
    """What an ``AsyncMethod`` needs of the client it is bound to."""

    async def _run(self, call: RpcCall[T]) -> T: ...
