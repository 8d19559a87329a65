"""The manifest schema, checked by fastjsonschema (compiled once per process).

`jsonschema` spends ~100 µs per array item: a record with 200,000 inputs took
most of a minute to validate. fastjsonschema compiles the same schema to plain
Python. Problems are named by the record's own field path (`environment.packages[0]`),
because a record is untrusted input and the reader must say where it is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fastjsonschema

# What a reader needs to walk a record: types and structure, not the value rules.
_STRUCTURE = ("type", "properties", "items", "additionalProperties", "$schema")
_ARTICLE = {"object": "an object", "array": "a list", "integer": "an integer"}
_PY_TO_JSON = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (`object`, `array`, `string`, ...)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return _PY_TO_JSON.get(type(value), type(value).__name__)


def _structure_only(schema: Any) -> Any:
    """`schema` keeping only the keywords that say what type each field has."""
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key in _STRUCTURE:
        if key not in schema:
            continue
        value = schema[key]
        if key == "properties":
            kept[key] = {name: _structure_only(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            kept[key] = _structure_only(value)
        elif key != "additionalProperties":  # an unknown field is a value rule, not a type
            kept[key] = value
    return kept


@lru_cache(maxsize=4)
def _validator(schema_text: str, types_only: bool) -> Callable[[Any], Any]:
    import json

    schema = json.loads(schema_text)
    return fastjsonschema.compile(_structure_only(schema) if types_only else schema)


def _field(name: str) -> str:
    """fastjsonschema's `data.environment.packages[0]` as the record's `environment.packages[0]`."""
    return name.removeprefix("data").removeprefix(".") or "<root>"


def first_problem(value: Any, schema: dict[str, Any], types_only: bool = False) -> str | None:
    """None when `value` follows `schema`; else '<field>: <what is wrong>'."""
    import json

    validate = _validator(json.dumps(schema, sort_keys=True), types_only)
    try:
        validate(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = _field(str(exc.name))
        if exc.rule == "type":
            expected = exc.rule_definition
            names = expected if isinstance(expected, list) else [expected]
            wanted = " or ".join(_ARTICLE.get(str(n), f"a {n}") for n in names)
            return f"{where}: expected {wanted}, got {json_type(exc.value)}"
        return f"{where}: {str(exc.message).removeprefix(str(exc.name)).strip()}"
    return None
