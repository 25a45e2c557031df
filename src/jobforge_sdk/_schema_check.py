"""Values checked against a template's JSON Schema, as the database checks them.

The SDK checks a template job's inputs twice with this module: in ``request_job`` before
the request is sent, and in the worker before the handler runs (the worker also checks
the handler's result against the output schema). The database checks the same inputs in
``jobforge_private.schema_error`` and refuses any template whose input schema uses a
keyword it does not check, so the two verdicts agree: this module runs the full JSON
Schema (draft 2020-12, ``jsonschema``) and words the first problem the way the database
does (``inputs.depth: must be at most 5``), so a caller sees one message whichever side
refused.

One rule sits on top of JSON Schema, on both sides: an object property whose value is
JSON null is absent (it fails ``required`` and is not type-checked).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema costs ~50 ms to import: only template jobs pay for it
    from jsonschema import Draft202012Validator, ValidationError

__all__ = ["schema_problem"]


def schema_problem(schema: Mapping[str, Any], value: Any, name: str) -> str | None:
    """The first problem of ``value`` against ``schema`` as ``"<name>.<path>: <reason>"``,
    or ``None`` when it conforms. ``name`` is what the value is called (``"inputs"``)."""
    problems = list(_validator(_key(schema)).iter_errors(_without_nulls(value)))
    if not problems:
        return None
    first = min(problems, key=_database_order)
    path, reason = _worded(first)
    return f"{'.'.join([name, *path])}: {reason}"


# The order in which the database looks at one value: its own keywords, then its items or
# properties (by index, or by name in byte order), depth first; the first problem found is
# the one reported, so the SDK reports the same one when there are several.
_OWN_KEYWORDS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "additionalProperties",
)
_CHILD = len(_OWN_KEYWORDS)


def _database_order(error: ValidationError) -> list[tuple[int, int, bytes]]:
    steps = [
        (_CHILD, part, b"") if isinstance(part, int) else (_CHILD, 0, str(part).encode())
        for part in error.absolute_path
    ]
    keyword = str(error.validator)
    rank = _OWN_KEYWORDS.index(keyword) if keyword in _OWN_KEYWORDS else _CHILD + 1
    return [*steps, (rank, 0, b"")]


def _without_nulls(value: Any) -> Any:
    """``value`` with every object property whose value is null left out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_json))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _worded(error: ValidationError) -> tuple[list[str], str]:
    """Where the problem is (path segments) and the database's words for it."""
    path = [str(part) for part in error.absolute_path]
    limit: Any = error.validator_value
    instance = error.instance
    wording: dict[str, Callable[[], str]] = {
        "type": lambda: (
            "must be " + " or ".join(limit if isinstance(limit, list) else [str(limit)])
        ),
        "enum": lambda: f"must be one of {_json(limit)}",
        "minimum": lambda: f"must be at least {_json(limit)}",
        "maximum": lambda: f"must be at most {_json(limit)}",
        "minLength": lambda: f"must be at least {_json(limit)} characters",
        "maxLength": lambda: f"must be at most {_json(limit)} characters",
        "minItems": lambda: f"must have at least {_json(limit)} items",
        "maxItems": lambda: f"must have at most {_json(limit)} items",
    }
    validator = str(error.validator)
    if validator == "required" and isinstance(instance, dict):
        missing = sorted((str(n) for n in limit if n not in instance), key=str.encode)
        return [*path, missing[0]], "is required"
    if validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted((str(k) for k in instance if k not in known), key=str.encode)
        return [*path, extra[0]], "is not a known input"
    if validator in wording:
        return path, wording[validator]()
    return path, error.message
