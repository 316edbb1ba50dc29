"""IAM identity-policy evaluation, pure: may this policy perform this action on this resource?

The grammar is IAM's: `Version`, `Statement` (a list or one object), each with `Effect` (Allow | Deny),
`Action` or `NotAction`, `Resource` or `NotResource` (strings or lists). Action patterns match
case-insensitively (`sagemaker:*`, `sagemaker:Describe*`); resource patterns match case-sensitively,
`*` any run of characters and `?` one. An explicit Deny beats any Allow; nothing allowed means denied.
Conditions are not supported: a statement with `Condition` is refused when the policy is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from modelhost.errors import ModelhostError


class PolicyError(ModelhostError):
    """The policy document is not one modelhost can evaluate; the message says what to fix."""


class Decision(StrEnum):
    ALLOW = "allow"
    IMPLICIT_DENY = "implicit-deny"  # no statement allows it
    EXPLICIT_DENY = "explicit-deny"  # a Deny statement matches


@dataclass(frozen=True, slots=True)
class Statement:
    allow: bool
    actions: tuple[str, ...]
    not_actions: bool  # actions came from NotAction
    resources: tuple[str, ...]
    not_resources: bool  # resources came from NotResource


@lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcard match: `*` any run of characters, `?` exactly one."""
    return _pattern(pattern, ignore_case).match(value) is not None


def _strings(value: Any, field: str, index: int) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise PolicyError(f"Statement {index}: {field} must be a string or a non-empty list of strings")
    return tuple(items)


def parse_policy(document: Any) -> tuple[Statement, ...]:
    """The statements of an IAM identity policy; PolicyError naming the first problem."""
    if not isinstance(document, dict):
        raise PolicyError("a policy must be a JSON object with a Statement")
    version = document.get("Version", "2012-10-17")
    if version not in ("2012-10-17", "2008-10-17"):
        raise PolicyError(f"Version must be 2012-10-17, not {version!r}")
    raw = document.get("Statement")
    statements = [raw] if isinstance(raw, dict) else raw
    if not isinstance(statements, list) or not statements:
        raise PolicyError("Statement must be an object or a non-empty list of objects")
    parsed: list[Statement] = []
    for index, st in enumerate(statements):
        if not isinstance(st, dict):
            raise PolicyError(f"Statement {index} must be an object")
        effect = st.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Statement {index}: Effect must be Allow or Deny, not {effect!r}")
        if "Condition" in st:
            raise PolicyError(f"Statement {index}: Condition is not supported by modelhost; remove it")
        if ("Action" in st) == ("NotAction" in st):
            raise PolicyError(f"Statement {index} needs exactly one of Action and NotAction")
        if ("Resource" in st) == ("NotResource" in st):
            raise PolicyError(f"Statement {index} needs exactly one of Resource and NotResource")
        action_field = "Action" if "Action" in st else "NotAction"
        resource_field = "Resource" if "Resource" in st else "NotResource"
        parsed.append(
            Statement(
                allow=effect == "Allow",
                actions=_strings(st[action_field], action_field, index),
                not_actions=action_field == "NotAction",
                resources=_strings(st[resource_field], resource_field, index),
                not_resources=resource_field == "NotResource",
            )
        )
    return tuple(parsed)


def _applies(statement: Statement, action: str, resource: str) -> bool:
    action_hit = any(matches(p, action, ignore_case=True) for p in statement.actions)
    resource_hit = any(matches(p, resource, ignore_case=False) for p in statement.resources)
    return (action_hit != statement.not_actions) and (resource_hit != statement.not_resources)


def evaluate(statements: tuple[Statement, ...], action: str, resource: str) -> Decision:
    """IAM's order: any matching Deny → explicit deny; else any matching Allow → allow; else implicit deny."""
    allowed = False
    for statement in statements:
        if _applies(statement, action, resource):
            if not statement.allow:
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
