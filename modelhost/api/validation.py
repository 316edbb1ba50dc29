"""Checks a request body against botocore's service model the way AWS does, and words the errors as AWS.

boto3 checks only required members, types and minimum lengths on the client; `max`, `pattern`, `enum`
and numeric ranges reach the server and are checked here. Messages follow AWS:
`1 validation error detected: Value 'x' at 'productionVariants.1.member.instanceType' failed to satisfy
constraint: Member must satisfy enum value set: [...]`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from modelhost.errors import ValidationError

# Members whose model pattern we relax on purpose: modelhost also takes file:// URLs and local paths.
RELAXED_PATTERNS = frozenset({"ModelDataUrl", "S3Uri", "S3OutputPath", "S3FailurePath"})


@lru_cache(maxsize=4)
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def operation_model(service: str, operation: str) -> OperationModel | None:
    model = service_model(service)
    if operation not in model.operation_names:
        return None
    return model.operation_model(operation)


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None  # a Java-only construct: skip rather than reject valid input


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _shown(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return text if len(text) <= 200 else text[:200] + "..."


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, value: Any, path: str, constraint: str) -> None:
        self.errors.append(
            f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member must {constraint}"
        )

    def check(self, shape: Shape, value: Any, path: str, member_name: str = "") -> None:
        type_name = shape.type_name
        if type_name == "structure":
            self._structure(shape, value, path)
        elif type_name == "list":
            self._list(shape, value, path)
        elif type_name == "map":
            self._map(shape, value, path)
        elif type_name == "string":
            self._string(shape, value, path, member_name)
        elif type_name in ("integer", "long", "float", "double"):
            self._number(shape, value, path)
        elif type_name == "boolean" and not isinstance(value, bool):
            self.fail(value, path, "be a boolean")

    def _structure(self, shape: StructureShape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, path, "be a structure")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail("null", self._join(path, name), "not be null")
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None or member_value is None:
                continue  # unknown members are accepted and ignored, as AWS does
            self.check(member, member_value, self._join(path, name), name)

    def _list(self, shape: ListShape, value: Any, path: str) -> None:
        if not isinstance(value, list):
            self.fail(value, path, "be a list")
            return
        self._length(shape, value, path, "length")
        for index, item in enumerate(value, start=1):
            self.check(shape.member, item, f"{path}.{index}.member")

    def _map(self, shape: MapShape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(value, path, "be a map")
            return
        self._length(shape, value, path, "length")
        for key, item in value.items():
            self.check(shape.key, key, f"{path}.key")
            self.check(shape.value, item, f"{path}.{key}.member")

    def _string(self, shape: Shape, value: Any, path: str, member_name: str) -> None:
        if not isinstance(value, str):
            self.fail(value, path, "be a string")
            return
        meta = shape.metadata
        enum = getattr(shape, "enum", None) or meta.get("enum")
        if enum and value not in enum:
            self.fail(value, path, f"satisfy enum value set: [{', '.join(enum)}]")
            return
        if "max" in meta and len(value) > meta["max"]:
            self.fail(value, path, f"have length less than or equal to {meta['max']}")
        elif meta.get("min") and len(value) < meta["min"]:
            self.fail(value, path, f"have length greater than or equal to {meta['min']}")
        pattern = meta.get("pattern")
        if pattern and member_name not in RELAXED_PATTERNS:
            compiled = _compiled(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                self.fail(value, path, f"satisfy regular expression pattern: {pattern}")

    def _number(self, shape: Shape, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(value, path, "be a number")
            return
        if shape.type_name in ("integer", "long") and not float(value).is_integer():
            self.fail(value, path, "be an integer")
            return
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            self.fail(value, path, f"have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(value, path, f"have value less than or equal to {meta['max']}")

    def _length(self, shape: Shape, value: Any, path: str, what: str) -> None:
        meta = shape.metadata
        if "max" in meta and len(value) > meta["max"]:
            self.fail(value, path, f"have {what} less than or equal to {meta['max']}")
        elif meta.get("min") and len(value) < meta["min"]:
            self.fail(value, path, f"have {what} greater than or equal to {meta['min']}")

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{_camel(name)}" if path else _camel(name)


def constraint_errors(shape: Shape, body: dict[str, Any]) -> list[str]:
    """Every constraint `body` breaks, worded as AWS words them (empty when valid)."""
    checker = _Checker()
    checker.check(shape, body, "")
    return checker.errors


def validate_input(operation: OperationModel, body: dict[str, Any]) -> None:
    """Raise ValidationException listing every constraint the request breaks."""
    if operation.input_shape is None:
        return
    errors = constraint_errors(operation.input_shape, body)
    if errors:
        count = len(errors)
        noun = "validation error" if count == 1 else "validation errors"
        raise ValidationError(f"{count} {noun} detected: " + "; ".join(errors))


def without_null_members(shape: Shape, value: Any) -> Any:
    """`value` with every explicit `null` member of a structure removed, at any depth, so that handlers see
    an optional member sent as null exactly as one left out (AWS treats them alike). Run after
    `validate_input`, which has already refused nulls in required members, lists and maps."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        for name, member_value in value.items():
            if member_value is None:
                continue
            member = shape.members.get(name)
            cleaned[name] = member_value if member is None else without_null_members(member, member_value)
        return cleaned
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [without_null_members(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: without_null_members(shape.value, item) for key, item in value.items()}
    return value
