"""What the sync and async clients share: configuration, feature gating, and the
descriptors that turn an operation of ``ops`` into a method.

A method is declared once per client as ``enqueue_job = SyncMethod(ops.enqueue_job)``;
its signature, docstring, validation and parsing all come from the operation, so the two
clients differ only in whether the transport call is awaited.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec, Protocol, TypeVar, overload

from jobforge_sdk._operations._machinery import (
    FlagsRequest,
    Gate,
    Operation,
    Plan,
    RpcCall,
    operation_of,
)
from jobforge_sdk.errors import ConfigurationError, FeatureDisabledError
from jobforge_sdk.flags import Feature, FeatureFlags

__all__ = ["AsyncMethod", "ClientBase", "SyncMethod"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("jobforge_sdk")


class ClientBase:
    def __init__(self, *, flags: FeatureFlags | None, strict: bool) -> None:
        self.flags = flags if flags is not None else FeatureFlags()
        self.strict = strict
        self._reported_off: set[Feature] = set()
        if (
            self.flags.action_jobs
            and self.flags.require_policy_tokens
            and self.flags.policy_token_secret is None
        ):
            raise ConfigurationError(
                "JOBFORGE_ACTION_JOBS is on and JOBFORGE_REQUIRE_POLICY_TOKENS is on, but "
                "JOBFORGE_POLICY_TOKEN_SECRET is not set: action jobs could never be authorised"
            )

    def _allowed(self, method: str, op: Operation) -> bool:
        """False when the method's feature is off (logged once per feature), unless strict."""
        feature = op.feature
        if feature is None or self.flags.enabled(feature):
            return True
        env = f"JOBFORGE_{feature.value.upper()}"
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
            return self._allowed(step.method, Operation(step.feature))
        return self.flags


class _Method(Generic[P, T]):
    def __init__(self, build: Callable[P, Plan[T]]) -> None:
        self.build = build
        self.op = operation_of(build)
        self.name = build.__name__
        self.__doc__ = build.__doc__

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
            if not obj._allowed(name, op):
                empty: T = op.empty() if callable(op.empty) else op.empty
                return empty
            plan = build(*args, **kwargs)
            if isinstance(plan, RpcCall):
                return obj._run(plan)
            try:
                step = next(plan)
                while True:
                    if isinstance(step, RpcCall):
                        step = plan.send(obj._run(step))
                    else:
                        step = plan.send(obj._answer(step))
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
            if not obj._allowed(name, op):
                empty: T = op.empty() if callable(op.empty) else op.empty
                return empty
            plan = build(*args, **kwargs)
            if isinstance(plan, RpcCall):
                return await obj._run(plan)
            try:
                step = next(plan)
                while True:
                    if isinstance(step, RpcCall):
                        step = plan.send(await obj._run(step))
                    else:
                        step = plan.send(obj._answer(step))
            except StopIteration as done:
                result: T = done.value
                return result

        method.__name__ = name
        method.__doc__ = build.__doc__
        return method


class SyncRunner(Protocol):
    """What a ``SyncMethod`` needs of the client it is bound to."""

    def _allowed(self, method: str, op: Operation) -> bool: ...

    def _answer(self, step: Gate | FlagsRequest) -> object: ...

    def _run(self, call: RpcCall[T]) -> T: ...


class AsyncRunner(Protocol):
    def _allowed(self, method: str, op: Operation) -> bool: ...

    def _answer(self, step: Gate | FlagsRequest) -> object: ...

    async def _run(self, call: RpcCall[T]) -> T: ...
