"""A fast checker for the JSON Schema subset the manifest schema uses.

`jsonschema` spends ~100 µs per array item: a record with 200,000 inputs took
most of a minute to validate, twice per `show`. This walks the same schema
(the keywords `type`, `properties`, `required`, `items`, `additionalProperties`,
`enum`, `const`, `pattern`, `minimum`, `maximum`, `if`/`then`/`else`) in one plain loop, and names
the first problem by its dotted field path. A schema that uses any other
keyword is not ours to guess at: `supports` says so and the caller falls back
to `jsonschema`.
"""

from __future__ import annotations

import re
from typing import Any

_KEYWORDS = frozenset(
    {
        "$schema", "$id", "title", "description", "type", "properties", "required", "items",
        "additionalProperties", "enum", "const", "pattern", "minimum", "maximum",
        "if", "then", "else",
    }
)  # fmt: skip
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_ARTICLE = {"object": "an object", "array": "a list", "integer": "an integer"}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (`object`, `array`, `string`, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _expected(types: list[str]) -> str:
    return " or ".join(_ARTICLE.get(t, f"a {t}") for t in types)


def supports(schema: Any) -> bool:
    """True when every keyword in `schema` is one this checker implements."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or not set(schema) <= _KEYWORDS:
        return False
    children = list((schema.get("properties") or {}).values())
    for key in ("items", "additionalProperties", "if", "then", "else"):
        if isinstance(schema.get(key), (dict, bool)):
            children.append(schema[key])
    return all(supports(child) for child in children)


_Problem = tuple[list[Any], str]  # (path parts, innermost first; what is wrong)
_Check = Any  # Callable[[Any], _Problem | None]


def _type_check(types: list[str]) -> _Check:
    classes = tuple(c for t in types for c in _JSON_TYPES.get(t, ()))
    no_bool = "boolean" not in types and bool({"integer", "number"} & set(types))
    float_ok = "integer" in types and "number" not in types

    def check(value: Any) -> _Problem | None:
        if isinstance(value, classes) and not (no_bool and isinstance(value, bool)):
            return None
        if float_ok and isinstance(value, float) and value.is_integer():
            return None
        return [], f"expected {_expected(types)}, got {json_type(value)}"

    check.fast_pass = classes if not (no_bool or float_ok) else ()  # type: ignore[attr-defined]
    return check


def _compile(schema: Any, types_only: bool) -> _Check | None:
    """A function returning the first problem of a value, or None when there is nothing to check."""
    if schema is False:
        return lambda value: ([], "not allowed")
    if not isinstance(schema, dict):
        return None
    checks: list[_Check] = []
    if schema.get("type") is not None:
        types = schema["type"]
        checks.append(_type_check([types] if isinstance(types, str) else list(types)))
    if not types_only:
        checks.extend(_value_checks(schema))
    properties = {
        key: check
        for key, sub in (schema.get("properties") or {}).items()
        if (check := _compile(sub, types_only)) is not None
    }
    extra = _compile(schema.get("additionalProperties", True), types_only)
    required = () if types_only else tuple(schema.get("required") or ())
    if properties or extra or required:
        checks.append(_object_check(properties, extra, required))
    items = _compile(schema.get("items", True), types_only)
    if items is not None:
        checks.append(_array_check(items))
    if "if" in schema and not types_only:
        checks.append(_conditional_check(schema))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def check_all(value: Any) -> _Problem | None:
        for check in checks:
            problem = check(value)
            if problem:
                return problem
        return None

    return check_all


def _value_checks(schema: dict[str, Any]) -> list[_Check]:
    checks: list[_Check] = []
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda v: None if v == const else ([], f"expected {const!r}"))
    if "enum" in schema:
        allowed = schema["enum"]
        checks.append(lambda v: None if v in allowed else ([], f"{v!r} is not one of {allowed!r}"))
    if "pattern" in schema:
        search = re.compile(schema["pattern"]).search
        text = schema["pattern"]
        checks.append(
            lambda v: (
                None
                if not isinstance(v, str) or search(v)
                else ([], f"{v[:80]!r} does not match {text!r}")
            )
        )
    for key, below in (("minimum", True), ("maximum", False)):
        if key in schema:
            bound = schema[key]

            def bounded(v: Any, bound: Any = bound, below: bool = below, key: str = key) -> Any:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    return None
                if (v < bound) if below else (v > bound):
                    return [], f"{v} is {'below' if below else 'above'} the {key} {bound}"
                return None

            checks.append(bounded)
    return checks


def _object_check(
    properties: dict[str, _Check], extra: _Check | None, required: tuple[str, ...]
) -> _Check:
    # (name, classes a value may have to pass at once, the full check)
    named = tuple((k, getattr(c, "fast_pass", ()), c) for k, c in properties.items())

    def check(value: Any) -> _Problem | None:
        if not isinstance(value, dict):
            return None
        for name in required:
            if name not in value:
                return [], f"{name!r} is a required field"
        for key, fast, sub in named:
            if key in value:
                item = value[key]
                if fast and isinstance(item, fast):
                    continue
                problem = sub(item)
                if problem:
                    problem[0].append(key)
                    return problem
        if extra is not None:
            for key, item in value.items():
                if key not in properties:
                    problem = extra(item)
                    if problem:
                        problem[0].append(key)
                        return problem
        return None

    return check


def _array_check(items: _Check) -> _Check:
    def check(value: Any) -> _Problem | None:
        if not isinstance(value, (list, tuple)):
            return None
        for i, item in enumerate(value):
            problem = items(item)
            if problem:
                problem[0].append(i)
                return problem
        return None

    return check


def _conditional_check(schema: dict[str, Any]) -> _Check:
    condition = _compile(schema["if"], False)
    then = _compile(schema.get("then", True), False)
    otherwise = _compile(schema.get("else", True), False)

    def check(value: Any) -> _Problem | None:
        holds = condition is None or condition(value) is None
        branch = then if holds else otherwise
        return branch(value) if branch is not None else None

    return check


_compiled: dict[tuple[int, bool], tuple[Any, _Check | None]] = {}


def first_problem(value: Any, schema: Any, types_only: bool = False) -> str | None:
    """The first place `value` breaks `schema`, as `field: what is wrong`; None when it follows it.

    `types_only` checks only the types of the fields present (what a reader needs
    to walk the record), not required fields, patterns or allowed values.
    """
    key = (id(schema), types_only)
    cached = _compiled.get(key)
    if cached is None or cached[0] is not schema:
        cached = (schema, _compile(schema, types_only))
        _compiled[key] = cached
    check = cached[1]
    problem = check(value) if check is not None else None
    if problem is None:
        return None
    parts, message = problem
    path = ""
    for part in reversed(parts):
        path = f"{path}[{part}]" if isinstance(part, int) else (f"{path}.{part}" if path else part)
    return f"{path or '<root>'}: {message}"
