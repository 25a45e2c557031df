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
import types
import typing
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
    bad = _text_field_problem(params)
    if bad is not None:
        field, reason = bad
        raise InvalidInputError(f"{field}: {reason}", field=field, code=None)
    return params


def _text_field_problem(value: BaseModel) -> tuple[str, str] | None:
    """The first text field (in models, lists of them, lists of text) that PostgreSQL
    cannot store, as ``(dotted path, reason)``. Only the fields a model declares as text
    are visited (``_text_fields``, worked out once per model), and a path is spelt out
    only for a field that fails, so a batch of a thousand jobs costs well under a
    millisecond; JSON values are not walked: ``check_json`` has already refused NUL
    characters and lone surrogates in them."""
    for name, kind in _text_fields(type(value)):
        field_value = getattr(value, name)
        if field_value is None:
            continue
        if kind == "text":
            reason = _bad_text(field_value)
            if reason is not None:
                return name, reason
        elif kind == "model":
            found = _text_field_problem(field_value)
            if found is not None:
                return f"{name}.{found[0]}", found[1]
        else:
            for index, item in enumerate(field_value):
                if kind == "texts":
                    reason = _bad_text(item)
                    if reason is not None:
                        return f"{name}.{index}", reason
                elif isinstance(item, BaseModel):
                    found = _text_field_problem(item)
                    if found is not None:
                        return f"{name}.{index}.{found[0]}", found[1]
    return None


def _bad_text(value: Any) -> str | None:
    # The common case, plain ASCII without NUL, in two C-speed tests.
    if not isinstance(value, str) or ("\x00" not in value and value.isascii()):
        return None
    return text_problem(value)


@functools.cache
def _text_fields(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """``(field, kind)`` for each field of ``model`` that holds text: ``text``, ``texts``
    (a list of text), ``model`` or ``models`` (nested models, walked in turn)."""
    found = []
    for name, info in model.model_fields.items():
        kind = _text_kind(info.annotation)
        if kind is not None:
            found.append((name, kind))
    return tuple(found)


def _text_kind(annotation: Any) -> str | None:
    # Enums are left out: their values are the SDK's own.
    candidates = list(typing.get_args(annotation)) if _is_union(annotation) else [annotation]
    for candidate in candidates:
        if typing.get_origin(candidate) is typing.Annotated:
            candidate = typing.get_args(candidate)[0]
        if candidate is str:
            return "text"
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return "model"
        if typing.get_origin(candidate) is list:
            (item,) = typing.get_args(candidate) or (Any,)
            if typing.get_origin(item) is typing.Annotated:
                item = typing.get_args(item)[0]
            if item is str:
                return "texts"
            if isinstance(item, type) and issubclass(item, BaseModel):
                return "models"
    return None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


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
