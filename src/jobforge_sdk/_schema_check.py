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

A schema made only of the keywords the database checks (every template's input schema,
by a table constraint) is checked by a direct walk that mirrors
``jobforge_private.schema_error`` step by step, about ten times faster than ``jsonschema``
(which then is not even imported); ``jsonschema`` checks any other schema (an output
schema may use more of JSON Schema). A test holds the two paths to the same verdicts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jsonschema costs ~50 ms to import: only template jobs pay for it
    from jsonschema import Draft202012Validator, ValidationError

__all__ = ["schema_problem"]


def schema_problem(schema: Mapping[str, Any], value: Any, name: str) -> str | None:
    """The first problem of ``value`` against ``schema`` as ``"<name>.<path>: <reason>"``,
    or ``None`` when it conforms. ``name`` is what the value is called (``"inputs"``)."""
    if _checkable_cached(schema):
        found = _walk(schema, value, [])
        return None if found is None else f"{'.'.join([name, *found[0]])}: {found[1]}"
    return full_schema_problem(schema, value, name)


def full_schema_problem(schema: Mapping[str, Any], value: Any, name: str) -> str | None:
    """``schema_problem`` by ``jsonschema`` whatever the keywords (the slow path, kept
    public to this package so a test can hold the fast walk to it)."""
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


# Keywords the database checks (schema_keyword_error), and those it ignores.
_CHECKED = frozenset({*_OWN_KEYWORDS, "properties", "items"})
_IGNORED = frozenset(
    {"description", "title", "format", "default", "examples", "$comment", "deprecated"}
    | {"readOnly", "writeOnly"}
)


# Verdicts of _checkable by schema identity: a template's schema is the same object for as
# long as the client remembers the template. The schema is kept with its verdict, so its
# id cannot be reused while the entry exists.
_CHECKABLE: dict[int, tuple[Mapping[str, Any], bool]] = {}


def _checkable_cached(schema: Mapping[str, Any]) -> bool:
    known = _CHECKABLE.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    verdict = _checkable(schema)
    if len(_CHECKABLE) >= 256:
        _CHECKABLE.clear()
    _CHECKABLE[id(schema)] = (schema, verdict)
    return verdict


def _checkable(schema: Any) -> bool:
    """Whether ``schema`` uses only keywords the fast walk knows, in the shapes it knows."""
    return isinstance(schema, Mapping) and all(
        key in _IGNORED or _keyword_ok(key, value) for key, value in schema.items()
    )


def _keyword_ok(key: str, value: Any) -> bool:
    if key == "properties":
        return isinstance(value, Mapping) and all(map(_checkable, value.values()))
    if key == "items":
        return _checkable(value)
    if key == "type":
        names = value if isinstance(value, list) else [value]
        return bool(names) and all(isinstance(n, str) and n in _JSON_TYPES for n in names)
    if key == "required":
        return isinstance(value, list) and all(isinstance(n, str) for n in value)
    if key == "enum":
        return isinstance(value, list)
    if key == "additionalProperties":
        return isinstance(value, bool)
    if key in _BOUNDS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


_BOUNDS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems")
_JSON_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})


def _kind(value: Any) -> str:
    """The JSON type of a decoded JSON value, as jsonb_typeof names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, Mapping) else "other"


def _is_type(value: Any, kind: str, name: str) -> bool:
    if kind == name:
        return True
    # An integer is a number without a fractional part (1.0 counts, as in JSON Schema).
    return name == "integer" and kind == "number" and float(value).is_integer()


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values as jsonb compares them (true is not 1; 1 is 1.0)."""
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if kind == "object":
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _present(value: Mapping[str, Any], key: str) -> bool:
    return value.get(key) is not None


def _walk(schema: Mapping[str, Any], value: Any, path: list[str]) -> tuple[list[str], str] | None:
    """jobforge_private.schema_error in Python: the same checks in the same order."""
    kind = _kind(value)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, kind, n) for n in names):
            return path, "must be " + " or ".join(names)
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        return path, f"must be one of {_json(schema['enum'])}"
    if kind == "number":
        if schema.get("minimum") is not None and value < schema["minimum"]:
            return path, f"must be at least {_json(schema['minimum'])}"
        if schema.get("maximum") is not None and value > schema["maximum"]:
            return path, f"must be at most {_json(schema['maximum'])}"
    elif kind == "string":
        if schema.get("minLength") is not None and len(value) < schema["minLength"]:
            return path, f"must be at least {_json(schema['minLength'])} characters"
        if schema.get("maxLength") is not None and len(value) > schema["maxLength"]:
            return path, f"must be at most {_json(schema['maxLength'])} characters"
    elif kind == "array":
        if schema.get("minItems") is not None and len(value) < schema["minItems"]:
            return path, f"must have at least {_json(schema['minItems'])} items"
        if schema.get("maxItems") is not None and len(value) > schema["maxItems"]:
            return path, f"must have at most {_json(schema['maxItems'])} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                found = _walk(items, item, [*path, str(index)])
                if found is not None:
                    return found
    elif kind == "object":
        missing = _by_bytes(n for n in schema.get("required", ()) if not _present(value, n))
        if missing:
            return [*path, missing[0]], "is required"
        properties: Mapping[str, Any] = schema.get("properties") or {}
        if schema.get("additionalProperties") is False:
            extra = _by_bytes(k for k in value if k not in properties and _present(value, k))
            if extra:
                return [*path, extra[0]], "is not a known input"
        for key in _by_bytes(k for k in properties if _present(value, k)):
            found = _walk(properties[key], value[key], [*path, key])
            if found is not None:
                return found
    return None


def _by_bytes(names: Iterable[str]) -> list[str]:
    """Names in byte order of their UTF-8, as the database sorts them (collate "C")."""
    return sorted(names, key=str.encode)


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
