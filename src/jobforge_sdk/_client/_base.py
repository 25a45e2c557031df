"""What the sync and async clients share: configuration, feature gating, and the
descriptors that turn an operation of ``ops`` into a method.

A method is declared once per client as ``enqueue_job = SyncMethod(ops.enqueue_job)``;
its signature, docstring, validation and parsing all come from the operation, so the two
clients differ only in whether the transport call is awaited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from jobforge_sdk._operations._machinery import (
    FlagsRequest,
    Gate,
    Operation,
    Plan,
    RpcCall,
)
from jobforge_sdk.errors import ConfigurationError, FeatureDisabledError
from jobforge_sdk.flags import Feature, FeatureFlags, warn_unknown_settings

__all__ = ["AsyncMethod", "ClientBase", "SyncMethod"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("jobforge_sdk")


class ClientBase:
    def __init__(self, *, flags: FeatureFlags | None, strict: bool) -> None:
        warn_unknown_settings()  # a misspelt JOBFORGE_* variable: once per process
        self.flags = flags if flags is not None else FeatureFlags()
        self.strict = strict
        self._reported_off: set[Feature] = set()
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

    def _answer(self, step: Gate | FlagsRequest) -> object:
        """Answer a step of a multi-step operation that needs the client, not the network."""
        if isinstance(step, Gate):
            return self._allowed(step.method, step.feature)
        return self.flags


def _round_trips(client: _Answers, plan: Plan[T]) -> Generator[RpcCall[Any], Any, T]:
    """The plan's round trips, and nothing else: the one place a plan is driven.

    Yields each ``RpcCall`` and takes its parsed answer back; the steps that need the
    client rather than the network (a gate, the flags) are answered here. The sync and
    async methods differ only in whether they await the transport between two yields.
    """
    if isinstance(plan, RpcCall):
        answer: T = yield plan
        return answer
    try:
        step = next(plan)
        while True:
            if isinstance(step, RpcCall):
                step = plan.send((yield step))
            else:
                step = plan.send(client._answer(step))
    except StopIteration as done:
        result: T = done.value
        return result


class _Answers(Protocol):
    def _answer(self, step: Gate | FlagsRequest) -> object: ...


class _Method(Generic[P, T]):
    def __init__(self, op: Operation[P, T]) -> None:
        self.build = op
        self.op = op
        self.name = op.name
        self.__doc__ = op.build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class SyncMethod(_Method[P, T]):
    @overload
    def __get__(self, obj: None, owner: type) -> SyncMethod[P, T]: ...

    @overload
    def __get__(self, obj: SyncRunner, owner: type) -> Callable[P, T]: ...

    def __get__(self, obj: SyncRunner | None, owner: type) -> SyncMethod[P, T] | Callable[P, T]:
        if obj is None:
            return self
        build, op, name = self.build, self.op, self.name

        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            if not obj._allowed(name, op.feature):
                empty: T = op.empty_value()
                return empty
            steps = _round_trips(obj, build(*args, **kwargs))
            try:
                call = next(steps)
                while True:
                    call = steps.send(obj._run(call))
            except StopIteration as done:
                result: T = done.value
                return result

        method.__name__ = name
        method.__doc__ = build.__doc__
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
        build, op, name = self.build, self.op, self.name

        async def method(*args: P.args, **kwargs: P.kwargs) -> T:
            if not obj._allowed(name, op.feature):
                empty: T = op.empty_value()
                return empty
            steps = _round_trips(obj, build(*args, **kwargs))
            try:
                call = next(steps)
                while True:
                    call = steps.send(await obj._run(call))
            except StopIteration as done:
                result: T = done.value
                return result

        method.__name__ = name
        method.__doc__ = build.__doc__
        return method


class SyncRunner(Protocol):
    """What a ``SyncMethod`` needs of the client it is bound to."""

    def _allowed(self, method: str, feature: Feature | None) -> bool: ...

    def _answer(self, step: Gate | FlagsRequest) -> object: ...

    def _run(self, call: RpcCall[T]) -> T: ...


class AsyncRunner(Protocol):
    def _allowed(self, method: str, feature: Feature | None) -> bool: ...

    def _answer(self, step: Gate | FlagsRequest) -> object: ...

    async def _run(self, call: RpcCall[T]) -> T: ...
