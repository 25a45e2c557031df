"""The fast walk of ``_schema_check`` against ``jsonschema``: the same verdict and the same
words on generated values, for schemas of the keywords the database checks.

(That the database agrees with the SDK is tests/integration/sql/test_template_schemas.py.)
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobforge_sdk._schema_check import _checkable, full_schema_problem, schema_problem

NAMES = st.sampled_from(["name", "mode", "size", "tags", "nested", "id", "x", "é", "Z"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-20, max_value=20),
    st.floats(min_value=-20, max_value=20, allow_nan=False).map(lambda f: round(f, 1)),
    st.text(max_size=6),
    st.sampled_from(["fast", "ab", "abcde", "ééé"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=5),
    max_leaves=12,
)

# Values shaped like the first schema's objects, so the deeper checks (lengths, bounds,
# enum, items, nested required and unknown names) are reached, not only the type check.
SHAPED = st.fixed_dictionaries(
    {"name": st.sampled_from(["ab", "abcd", "ééé", "ab", "a", "abcde", 5, None])},
    optional={
        "mode": st.sampled_from(["fast", "slow", 2, 2.0, True, 1, None, [1], {"a": 1}]),
        "size": st.sampled_from([0, 1, 9, 10, 3.0, 3.5, "3", True, None]),
        "tags": st.lists(st.sampled_from(["a", 1, None, True]), max_size=3),
        "nested": st.fixed_dictionaries(
            {},
            optional={
                "id": st.sampled_from([1, 1.0, 1.5, "1", 2, None]),
                "x": st.sampled_from([0.5, 1, "x", None]),
                "y": st.sampled_from([1, None]),
            },
        ),
    },
)

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 4, "title": "a name"},
            "mode": {"enum": ["fast", 2, None, True, [1], {"a": 1}]},
            "size": {"type": ["integer", "null"], "minimum": 1, "maximum": 9},
            "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "nested": {
                "type": "object",
                "required": ["id", "x"],
                "additionalProperties": False,
                "properties": {"id": {"type": "integer"}, "x": {"type": "number"}},
            },
        },
    },
    {"type": "array", "items": {"type": ["string", "boolean"], "maxLength": 1}},
    {"type": ["number", "string"], "minimum": 0.5, "maxLength": 2, "enum": [1, 1.5, "ab", "é"]},
    {"required": ["Z", "é", "name"], "properties": {"é": {"type": "null"}}},
]


def test_the_generated_schemas_take_the_fast_walk() -> None:
    assert all(_checkable(schema) for schema in SCHEMAS)
    assert not _checkable({"type": "string", "pattern": "^x"})
    assert not _checkable({"properties": {"a": {"oneOf": []}}})
    assert not _checkable({"additionalProperties": {}})


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(schema=st.sampled_from(SCHEMAS), value=VALUES)
def test_the_fast_walk_and_jsonschema_agree(schema: dict[str, Any], value: Any) -> None:
    assert schema_problem(schema, value, "inputs") == full_schema_problem(schema, value, "inputs")


@settings(max_examples=400, derandomize=True, deadline=None)
@given(value=SHAPED)
def test_they_agree_on_values_shaped_like_the_schema(value: dict[str, Any]) -> None:
    schema = SCHEMAS[0]
    assert schema_problem(schema, value, "inputs") == full_schema_problem(schema, value, "inputs")


def test_true_is_not_one_and_one_is_one_point_zero() -> None:
    schema = {"enum": [1]}
    assert schema_problem(schema, 1.0, "v") is None
    assert schema_problem(schema, True, "v") == "v: must be one of [1]"
    assert schema_problem({"type": "integer"}, True, "v") == "v: must be integer"
