"""Template input schemas: the database checks every keyword a template may use, refuses a
template whose schema uses one it does not check, and agrees with the SDK's check
(``jobforge_sdk._schema_check``: its fast walk, itself held to ``jsonschema`` by
tests/unit/test_schema_check.py) on every seeded template.

The cases are made from each template's own schema: a minimal valid input, then one
problem at a time (a required name missing or null, a value of the wrong type, a number
past a bound, an array item of the wrong type, an undeclared name). For each, both sides
must give the same verdict and the same message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from jobforge_sdk._schema_check import schema_problem
from tests.integration.sql.helpers import sql_error

WRONG_VALUE = {
    "string": 5,
    "integer": 1.5,
    "number": "1",
    "boolean": 1,
    "array": {"a": 1},
    "object": ["a"],
}
GOOD_VALUE = {
    "string": "x",
    "integer": 3,
    "number": 0.5,
    "boolean": True,
    "array": [],
    "object": {},
}


def _good(schema: dict[str, Any]) -> Any:
    """A value that meets ``schema`` (only the keywords seeded templates use)."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind in ("integer", "number") and "minimum" in schema:
        return schema["minimum"]
    if kind == "object":
        return {name: _good(schema["properties"][name]) for name in schema.get("required", [])}
    return GOOD_VALUE.get(str(kind), "x")


def _cases(schema: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(what, inputs): the valid minimum, then inputs with one problem each."""
    base = _good(schema)
    yield "minimal", base
    yield (
        "with every property",
        {
            **base,
            **{name: _good(prop) for name, prop in schema["properties"].items()},
        },
    )
    for name in schema.get("required", []):
        yield f"{name} missing", {k: v for k, v in base.items() if k != name}
        yield f"{name} null", {**base, name: None}
    for name, prop in schema["properties"].items():
        kind = str(prop.get("type"))
        yield f"{name} null when optional", {**base, name: None}
        if kind in WRONG_VALUE:
            yield f"{name} of the wrong type", {**base, name: WRONG_VALUE[kind]}
        if kind == "integer":
            yield f"{name} a bool", {**base, name: True}
            yield f"{name} 2.0 counts as an integer", {**base, name: prop.get("minimum", 2) * 1.0}
        if "minimum" in prop:
            yield f"{name} below minimum", {**base, name: prop["minimum"] - 1}
        if "maximum" in prop:
            yield f"{name} above maximum", {**base, name: prop["maximum"] + 1}
            yield f"{name} at maximum", {**base, name: prop["maximum"]}
        items = prop.get("items")
        if kind == "array" and isinstance(items, dict):
            item_kind = str(items.get("type"))
            yield f"{name} good items", {**base, name: [_good(items), _good(items)]}
            if item_kind in WRONG_VALUE:
                yield (
                    f"{name} second item wrong",
                    {**base, name: [_good(items), WRONG_VALUE[item_kind]]},
                )
            for inner, inner_prop in items.get("properties", {}).items():
                inner_kind = str(inner_prop.get("type"))
                if inner_kind in WRONG_VALUE:
                    bad = {**_good(items), inner: WRONG_VALUE[inner_kind]}
                    yield f"{name}.0.{inner} wrong", {**base, name: [bad]}
    yield "an undeclared name", {**base, "zz_unknown": 1}


def _database_verdict(conn: psycopg.Connection[Any], schema: Any, inputs: Any) -> str | None:
    row = conn.execute(
        "select jobforge_private.inputs_error(%s::jsonb, %s::jsonb)",
        (json.dumps(schema), json.dumps(inputs)),
    ).fetchone()
    assert row is not None
    if row[0] is None:
        return None
    path, reason = row[0]
    return f"{'.'.join(p for p in ('inputs', path) if p)}: {reason}"


def test_sdk_and_database_agree_on_every_seeded_template(
    admin_conn: psycopg.Connection[Any],
) -> None:
    templates = admin_conn.execute(
        "select template_key, input_schema from public.jobforge_job_templates order by 1"
    ).fetchall()
    assert len(templates) == 13
    refused = accepted = 0
    for key, schema in templates:
        for what, inputs in _cases(schema):
            sdk = schema_problem(schema, inputs, "inputs")
            database = _database_verdict(admin_conn, schema, inputs)
            assert sdk == database, (key, what, inputs)
            if sdk is None:
                accepted += 1
            else:
                refused += 1
    # Both kinds of verdict were reached on the whole set, so agreement means something.
    assert refused > 100
    assert accepted > 40


KEYWORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 4, "title": "a name"},
        "mode": {"enum": ["fast", 2, None]},
        "size": {"type": ["integer", "null"], "minimum": 1, "maximum": 9},
        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "nested": {
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {"id": {"type": "integer"}},
        },
    },
}


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"name": "abc"}, None),
        ({"name": "a"}, "inputs.name: must be at least 2 characters"),
        ({"name": "abcde"}, "inputs.name: must be at most 4 characters"),
        ({"name": "ééé"}, None),  # characters, not bytes
        ({"name": "ab", "mode": "slow"}, 'inputs.mode: must be one of ["fast", 2, null]'),
        ({"name": "ab", "mode": 2.0}, None),
        ({"name": "ab", "size": 0}, "inputs.size: must be at least 1"),
        ({"name": "ab", "size": 10}, "inputs.size: must be at most 9"),
        ({"name": "ab", "size": "3"}, "inputs.size: must be integer or null"),
        ({"name": "ab", "tags": []}, "inputs.tags: must have at least 1 items"),
        ({"name": "ab", "tags": ["a", "b", "c"]}, "inputs.tags: must have at most 2 items"),
        ({"name": "ab", "tags": ["a", 1]}, "inputs.tags.1: must be string"),
        ({"name": "ab", "nested": {}}, "inputs.nested.id: is required"),
        ({"name": "ab", "nested": {"id": 1, "x": 2}}, "inputs.nested.x: is not a known input"),
        ({"name": "ab", "nested": {"id": 1, "x": None}}, None),  # null is absent
        ({"name": "ab", "other": 1}, "inputs.other: is not a known input"),
    ],
)
def test_each_checked_keyword(
    admin_conn: psycopg.Connection[Any], inputs: dict[str, Any], message: str | None
) -> None:
    assert schema_problem(KEYWORD_SCHEMA, inputs, "inputs") == message
    assert _database_verdict(admin_conn, KEYWORD_SCHEMA, inputs) == message


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (
            {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
            "input_schema.properties.a.pattern: is not a keyword the database checks",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": [{}]}}},
            "input_schema.properties.a.items: must be a schema object",
        ),
        ({"type": "objet"}, "input_schema.type: must name JSON types"),
        (
            {"type": "object", "additionalProperties": {}},
            "input_schema.additionalProperties: only true or false is checked",
        ),
        ({"type": "object", "oneOf": []}, "input_schema.oneOf: is not a keyword"),
        ({"type": "object", "required": [1]}, "input_schema.required: must be an array of names"),
        ({"maxLength": -1}, "input_schema.maxLength: must be a non-negative integer"),
    ],
)
def test_a_template_with_an_unchecked_keyword_is_refused(
    admin_conn: psycopg.Connection[Any], schema: dict[str, Any], reason: str
) -> None:
    (found,) = admin_conn.execute(
        "select jobforge_private.schema_keyword_error(%s::jsonb, 'input_schema')",
        (json.dumps(schema),),
    ).fetchone() or (None,)
    assert found is not None
    assert found.startswith(reason), found
    row = {
        "template_key": "autopilot.ops.custom_check",
        "name": "custom",
        "category": "ops",
        "input_schema": json.dumps(schema),
    }
    with sql_error("23514", "jobforge_job_templates_input_schema_checkable"):
        admin_conn.execute(
            "insert into public.jobforge_job_templates"
            " (template_key, name, category, input_schema)"
            " values (%(template_key)s, %(name)s, %(category)s, %(input_schema)s::jsonb)",
            row,
        )
    with sql_error("23514", "jobforge_job_templates_input_schema_checkable"):
        admin_conn.execute(
            "update public.jobforge_job_templates set input_schema = %s::jsonb"
            " where template_key = 'autopilot.ops.scan'",
            (json.dumps(schema),),
        )
    assert admin_conn.execute(
        "select count(*) from public.jobforge_job_templates"
        " where template_key = 'autopilot.ops.custom_check'"
    ).fetchone() == (0,)


def test_a_template_with_only_checked_keywords_is_accepted(
    admin_conn: psycopg.Connection[Any],
) -> None:
    schema = copy.deepcopy(KEYWORD_SCHEMA)
    schema["properties"]["when"] = {"type": "string", "format": "date", "description": "d"}
    with admin_conn.transaction(force_rollback=True):
        admin_conn.execute(
            "insert into public.jobforge_job_templates"
            " (template_key, name, category, input_schema)"
            " values ('autopilot.ops.custom_check', 'custom', 'ops', %s::jsonb)",
            (json.dumps(schema),),
        )
