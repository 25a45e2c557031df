"""Shared pydantic configuration for rows (lenient: the database may add columns) and
params (strict: unknown keyword arguments are a caller's typo, refused before any I/O)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    Strict,
    StringConstraints,
)

__all__ = [
    "MAX_INPUTS_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TARGET_INPUTS_BYTES",
    "NUL_ESCAPE",
    "Bool",
    "Int",
    "JsonObject",
    "NonEmptyStr",
    "NoneIsEmpty",
    "Params",
    "PurgeParams",
    "Row",
    "TargetInputs",
    "TenantId",
    "check_json",
    "json_depth_exceeds",
    "text_problem",
]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TenantId = UUID
# Strict: ``True`` is not the number 1 and ``"5"`` is not 5 (a purge with
# ``retention_days=True`` would keep one day), and ``1`` is not ``True``.
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]

# How deep containers may nest in any JSON argument (the database refuses the same, see
# jobforge_private.json_error). Deeper values are refused before they are stored: the
# answers that carry them back are a few levels deeper still, and JSON parsers (pydantic's
# among them) stop at some depth, so a stored value that deep could not be read back.
MAX_JSON_DEPTH = 64


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


# A JSON-object argument left out (``None``, the signature's default) is the empty object:
# said here once, so an operation hands its arguments to the model unchanged.
NoneIsEmpty = BeforeValidator(_none_is_empty)

# Template inputs (``request_job``'s ``inputs``): they become a job's payload, so at most
# a quarter of its cap leaves room for the rest. A trigger stores its ``target_inputs``
# once and requests a job with them on every fire: a quarter of that again.
MAX_INPUTS_BYTES = 256 * 1024
MAX_TARGET_INPUTS_BYTES = 64 * 1024


def _json_object(max_bytes: int) -> Any:
    """A JSON object argument, checked as JSON (size, depth, NUL) before pydantic's
    recursive ``JsonValue`` check, which would recurse as deep as the value does."""

    def check(value: Any) -> Any:
        return check_json(value, max_bytes=max_bytes)

    return Annotated[dict[str, JsonValue], NoneIsEmpty, BeforeValidator(check)]


JsonObject = _json_object(MAX_INPUTS_BYTES)
TargetInputs = _json_object(MAX_TARGET_INPUTS_BYTES)


class Row(BaseModel):
    """A row returned by an RPC. Extra columns are kept, so a newer schema never breaks
    an older SDK."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Params(BaseModel):
    """Arguments of one RPC, named after its parameters without the ``p_`` prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    def rpc_args(self) -> dict[str, Any]:
        """JSON-ready named arguments; unset optional values are left to the SQL default."""
        return {f"p_{k}": v for k, v in self.model_dump(mode="json", exclude_none=True).items()}


class PurgeParams(Params):
    """A retention purge: ``purge_expired_events`` and ``purge_audit_logs`` alike."""

    retention_days: Annotated[int, Strict(), Field(ge=1, le=36500)]


# A \u0000 escape preceded by an even number of backslashes is a real NUL character (an
# odd number means the backslash itself was escaped: the text "\\u0000" is harmless).
NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")


DEPTH_REASON = f"must be nested at most {MAX_JSON_DEPTH} levels deep"


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and dicts nest more than ``limit`` deep, walked without recursion
    (a value nested thousands deep must not raise ``RecursionError`` here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def text_problem(value: str) -> str | None:
    """Why a string cannot reach PostgreSQL as text, or None: a NUL character (text
    cannot hold one), or a lone surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode (no lone surrogates)"
    return None


def check_json(value: Any, *, max_bytes: int | None = None) -> Any:
    """Refuse what cannot travel as JSON, is nested too deep, or is too big, with one
    C-speed ``json.dumps`` (and a walk of the value only when it has more than
    ``MAX_JSON_DEPTH`` containers at all).

    JSON fields are typed ``Any`` rather than ``JsonValue``: pydantic's recursive
    ``JsonValue`` check costs tens of microseconds per call on the enqueue hot path.
    """
    try:
        # Default separators: the size then matches PostgreSQL's jsonb text, which is what
        # the database measures against the same limit.
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except RecursionError:
        raise ValueError(DEPTH_REASON) from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON ({exc})") from None
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and json_depth_exceeds(value):
        raise ValueError(DEPTH_REASON)
    if "\\u0000" in text and NUL_ESCAPE.search(text):
        raise ValueError("must not contain NUL characters (\\u0000): PostgreSQL cannot store them")
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    if max_bytes is not None:
        size = len(text.encode())
        if size > max_bytes:
            unit = "MiB" if max_bytes >= 1024 * 1024 else "KiB"
            limit = max_bytes // (1024 * 1024 if unit == "MiB" else 1024)
            raise ValueError(f"must be at most {limit} {unit} of JSON (got {size} bytes)")
    return value
