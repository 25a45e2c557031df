"""What each client method sends and how its answer is read: the machinery shared by
every operation (``RpcCall``, ``Operation``, ``REGISTRY``, validation and parsing).

Every public method is an *operation*: a function that validates its keyword arguments
with pydantic (raising ``InvalidInputError`` before any I/O) and returns an ``RpcCall``
saying which RPC to call, with which named arguments, and how to parse the JSON answer.
``JobForgeClient`` and ``AsyncJobForgeClient`` only execute these calls, so the sync and
async clients cannot drift apart: they are built from the same operations, all listed in
``REGISTRY``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError

from jobforge_sdk.errors import DatabaseError, InvalidInputError
from jobforge_sdk.flags import Feature
from jobforge_sdk.models._base import DEPTH_REASON, json_depth_exceeds, text_problem

__all__ = [
    "FLAGS",
    "REGISTRY",
    "FlagsRequest",
    "Gate",
    "Operation",
    "Plan",
    "RpcCall",
    "Steps",
    "operation",
    "read_answer",
    "steps_of",
    "validate",
]

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RpcCall(Generic[T]):
    """One RPC: its name, its named arguments, how to parse its JSON answer, and how long
    a client may answer the same call from memory (``cache_seconds``; ``None``: always
    ask). Only reads of what rarely changes are cached, such as a template."""

    fn: str
    args: dict[str, Any]
    parse: Callable[[Any], T]
    cache_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """A step asking the client whether ``feature`` is on (answers False, or raises when
    the client is strict), for gates that depend on the arguments."""

    feature: Feature
    method: str


@dataclass(frozen=True, slots=True)
class FlagsRequest:
    """A step asking the client for its ``FeatureFlags``."""


FLAGS = FlagsRequest()


# An operation that needs more than one round trip is a generator: it yields each call,
# receives the parsed answer, and returns the method's result. The clients drive it with or
# without ``await``; the logic itself never does I/O.
Steps = Generator[RpcCall[Any] | Gate | FlagsRequest, Any, T]
Plan = RpcCall[T] | Steps[T]


@dataclass(frozen=True, slots=True)
class Operation(Generic[P, T]):
    """One RPC as the clients expose it: the builder of its plan (validates the keyword
    arguments, does no I/O), its feature gate, and what a gated-off call returns
    (``empty``: ``None``, or a factory such as ``list``).

    Calling an operation builds its plan. Every operation is in ``REGISTRY`` under its
    name; tests derive their lists from it. A *public* operation is the client method of
    the same name. An *internal* one is what the SDK's own runtime (worker, scheduler)
    needs and users do not: the clients declare it under ``method_name`` (``_`` + name),
    so it runs through the same gate and driver without being part of the client's API.
    """

    build: Callable[P, Plan[T]]
    feature: Feature | None
    empty: Any
    name: str
    internal: bool = False

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Plan[T]:
        return self.build(*args, **kwargs)

    @property
    def method_name(self) -> str:
        """The attribute the clients declare this operation under."""
        return f"_{self.name}" if self.internal else self.name

    def empty_value(self) -> Any:
        return self.empty() if callable(self.empty) else self.empty


REGISTRY: dict[str, Operation[..., Any]] = {}


def steps_of(plan: Plan[T]) -> Steps[T]:
    """Another operation's plan as steps of a multi-step one:
    ``row = yield from steps_of(other_op(...))`` (one call or many, the same way)."""
    if isinstance(plan, RpcCall):
        answer: T = yield plan
        return answer
    return (yield from plan)


def operation(
    feature: Feature | None = None, *, empty: Any = None, internal: bool = False
) -> Callable[[Callable[P, Plan[T]]], Operation[P, T]]:
    """Make a call builder an ``Operation`` behind ``feature`` (``None``: never gated)
    and register it in ``REGISTRY``; ``internal`` keeps it off the clients' public API."""

    def make(build: Callable[P, Plan[T]]) -> Operation[P, T]:
        op = Operation(build, feature, empty, build.__name__, internal)
        if op.name in REGISTRY:
            raise RuntimeError(f"two operations are named {op.name}")
        REGISTRY[op.name] = op
        return op

    return make


def validate(model: type[M], values: dict[str, Any]) -> M:
    """Validate keyword arguments; the first error becomes ``InvalidInputError(field=...)``.

    An operation passes ``locals()`` as its first statement: its keyword arguments as the
    signature names them, so a parameter is written in the signature and the params model
    and nowhere else (what ``None`` means for a field, such as "no inputs", the model
    says, not the operation). Every text field is then checked for what PostgreSQL text
    cannot hold, so that no such value reaches the driver (which would fail it as a
    broken connection, not as bad input)."""
    try:
        params = model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or model.__name__
        message = f"{field}: {first['msg']}"
        raise InvalidInputError(message, field=field, code=None, details=exc.errors()) from None
    except RecursionError:
        # A value nested thousands deep, met by a validator that recurses: name the
        # argument that holds it.
        field = next(
            (name for name, value in values.items() if json_depth_exceeds(value)),
            model.__name__,
        )
        raise InvalidInputError(f"{field}: {DEPTH_REASON}", field=field, code=None) from None
    bad = _text_field_problem(params, "")
    if bad is not None:
        field, reason = bad
        raise InvalidInputError(f"{field}: {reason}", field=field, code=None)
    return params


def _text_field_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first text field (in models, lists of them, lists of text) that PostgreSQL
    cannot store, as ``(dotted path, reason)``. JSON values are not walked: ``check_json``
    has already refused NUL characters and lone surrogates in them."""
    if isinstance(value, str):
        reason = text_problem(value)
        return None if reason is None else (path, reason)
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found = _text_field_problem(getattr(value, name), f"{path}.{name}" if path else name)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, str | BaseModel):
                found = _text_field_problem(item, f"{path}.{index}")
                if found is not None:
                    return found
    return None


def read_answer(call: RpcCall[T], data: Any) -> T:
    """Parse an RPC's answer. The database only stores what the input caps allow, so
    this does not fail on anything it accepted; should it fail anyway (a row written
    before a cap existed, a server newer than this SDK), the caller gets a
    ``DatabaseError`` saying the call took effect, never a raw pydantic error, so a worker
    or a retry loop that handles ``JobForgeError`` keeps running."""
    try:
        return call.parse(data)
    except (ValidationError, ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise DatabaseError(
            f"{call.fn}: the call took effect but its answer could not be read: {reason}"
        ) from None


class JsonText(str):
    """An RPC answer still in JSON text form (the direct Postgres transport leaves jsonb
    undecoded), so pydantic-core can validate it straight from text in one pass."""

    __slots__ = ()


def _json_text(
    validate_json: Callable[[str], T], validate_python: Callable[[Any], T], data: str
) -> T:
    """Validate JSON text in one pass; when pydantic's parser refuses it (it stops near 200
    levels of nesting, deeper than any value the database now accepts but not than a row
    written before the caps), decode it with ``json`` and validate the objects instead,
    so one such row does not make a claim or a list fail for everyone."""
    try:
        return validate_json(data)
    except ValidationError:
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError):
            raise DatabaseError("the answer is not JSON this client can read") from None
        return validate_python(decoded)


def parse_one(model: type[M]) -> Callable[[Any], M]:
    def parse(data: Any) -> M:
        if isinstance(data, JsonText):
            return _json_text(model.model_validate_json, model.model_validate, data)
        return model.model_validate(data)

    return parse


def parse_optional(model: type[M]) -> Callable[[Any], M | None]:
    one = parse_one(model)

    def parse(data: Any) -> M | None:
        return None if data is None else one(data)

    return parse


def parse_list(model: type[M]) -> Callable[[Any], list[M]]:
    adapter = _list_adapter(model)

    def parse(data: Any) -> list[M]:
        if data is None:
            return []
        if isinstance(data, JsonText):
            return _json_text(adapter.validate_json, adapter.validate_python, data)
        return adapter.validate_python(data)

    return parse


_UUIDS = TypeAdapter(list[UUID])


def parse_uuids(data: Any) -> list[UUID]:
    if data is None:
        return []
    if isinstance(data, JsonText):
        return _UUIDS.validate_json(data)
    return _UUIDS.validate_python(data)


@functools.cache
def _list_adapter(model: type[M]) -> TypeAdapter[list[M]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]
