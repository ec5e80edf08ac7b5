"""Pydantic base classes for handler input and output (SPEC §18.2, STYLE §3).

Inputs are strict (no coercion: a string is a JSON string, an integer a JSON integer), drop
unknown keys and accept only the wire (camelCase) names. Outputs serialise by alias; fields made
with `opt()` are left out when they hold None, fields typed `X | None` without it go out as null.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from claudebench.core.errors import InvalidParams


class Schema(BaseModel):
    """Handler input: strict, unknown keys ignored, wire names only."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        strict=True,
        extra="ignore",
        serialize_by_alias=True,
    )


class Out(BaseModel):
    """Handler output: built by our own code, so lax; serialised by alias."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        extra="ignore",
        serialize_by_alias=True,
    )

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _is_none(value: Any) -> bool:
    return value is None


def opt(default: Any = None, **kwargs: Any) -> Any:
    """An optional output field: omitted from the answer when it is None (SPEC §18.2)."""
    return Field(default, exclude_if=_is_none, **kwargs)


def issues_from(exc: ValidationError) -> list[dict[str, Any]]:
    """Validation issues in the shape clients read: path, message, code."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        out.append({"code": err["type"], "path": list(err["loc"]), "message": err["msg"]})
    return out


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain lone surrogate code points"
    return None


def _find_unstorable(value: Any, path: list) -> tuple[list, str] | None:
    if isinstance(value, str):
        problem = _unstorable(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable(key)
            if problem:
                return (path + [key], "key " + problem)
            found = _find_unstorable(item, path + [key])
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_unstorable(item, path + [index])
            if found:
                return found
    return None


def _storable(params: Any) -> bool:
    """True when no string in `params` can be unstorable, known in one C call: orjson writes a NUL
    as \\u0000 and refuses a lone surrogate (or anything else unusual, which the walk then sees)."""
    try:
        return b"\\u0000" not in orjson.dumps(params)
    except TypeError:
        return False


def validate_input(model: type[Schema], params: Any) -> Schema:
    """Validate wire params against a handler's input model, or raise InvalidParams (-32602)."""
    found = None if _storable(params) else _find_unstorable(params, [])
    if found:
        path, problem = found
        name = ".".join(str(p) for p in path) or "params"
        raise InvalidParams(
            f"{name} {problem}",
            data=[{"code": "invalid_string", "path": path, "message": f"{name} {problem}"}],
        )
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise InvalidParams(data=issues_from(exc)) from None


class Empty(Schema):
    """Input of handlers that take no parameters."""


def json_schema(model: type[BaseModel], *, mode: str) -> dict[str, Any]:
    """Draft-07-style JSON Schema with type/properties/required at the top level (SPEC §2.4.3)."""
    schema = model.model_json_schema(by_alias=True, mode=mode)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema
