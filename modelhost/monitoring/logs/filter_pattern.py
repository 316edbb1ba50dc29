"""CloudWatch Logs' filter patterns for unstructured events, the term syntax (pure).

    ERROR                      events containing ERROR (terms are case-sensitive substrings)
    ERROR Exception            both terms (terms separated by spaces are ANDed)
    "Traceback (most recent"   a phrase, matched as written (\\" and \\\\ escape inside quotes)
    ?ERROR ?WARN               at least one of the ?-terms (an OR group)
    ERROR -healthcheck         ERROR but not healthcheck (- excludes a term or "phrase")
    (empty)                    every event

JSON (`{ $.level = ... }`), space-delimited (`[ip, user, ...]`) and regular-expression (`%...%`) patterns are
refused with InvalidParameterException rather than matched wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelhost.monitoring.logs.errors import InvalidParameter

MAX_TERMS = 64


@dataclass(frozen=True, slots=True)
class FilterPattern:
    required: tuple[str, ...] = ()  # every one must occur
    any_of: tuple[str, ...] = ()  # one must occur, when there are any
    excluded: tuple[str, ...] = ()  # none may occur

    def matches(self, message: str) -> bool:
        if any(term in message for term in self.excluded):
            return False
        if not all(term in message for term in self.required):
            return False
        return not self.any_of or any(term in message for term in self.any_of)


def _refuse(pattern: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"Invalid filter pattern '{pattern[:200]}': {why}")


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    """The phrase whose opening quote is at `start`, and the index after its closing quote."""
    chars: list[str] = []
    i = start + 1
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern) and pattern[i + 1] in '"\\':
            chars.append(pattern[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(chars), i + 1
        chars.append(char)
        i += 1
    raise _refuse(pattern, f"the quote at position {start + 1} is never closed")


def _terms(pattern: str) -> list[tuple[str, str]]:
    """(operator, term) pairs: operator '' (AND), '?' (OR) or '-' (NOT)."""
    terms: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        if pattern[i].isspace():
            i += 1
            continue
        operator = pattern[i] if pattern[i] in "?-" else ""
        j = i + len(operator)
        if j < len(pattern) and pattern[j] == '"':
            term, i = _quoted(pattern, j)
            if i < len(pattern) and not pattern[i].isspace():
                raise _refuse(pattern, f"put a space after the phrase that ends at position {i}")
        else:
            end = j
            while end < len(pattern) and not pattern[end].isspace():
                end += 1
            term, i = pattern[j:end], end
            if '"' in term:
                raise _refuse(pattern, f"the term {term[:50]!r} has a quote inside it; quote the whole term")
        if not term:
            raise _refuse(pattern, f"'{operator}' must be followed by a term, as in {operator}ERROR")
        terms.append((operator, term))
    return terms


def parse_filter_pattern(pattern: str | None) -> FilterPattern:
    """The pattern as terms; InvalidParameterException naming what to fix when it is not one we match."""
    text = (pattern or "").strip()
    if text[:1] in ("{", "[", "%"):
        kind = {"{": "JSON", "[": "space-delimited", "%": "regular-expression"}[text[0]]
        raise _refuse(text, f"{kind} patterns are not supported here; use terms, \"phrases\", ?term and -term")
    terms = _terms(text)
    if len(terms) > MAX_TERMS:
        raise _refuse(text, f"use at most {MAX_TERMS} terms")
    return FilterPattern(
        required=tuple(t for op, t in terms if op == ""),
        any_of=tuple(t for op, t in terms if op == "?"),
        excluded=tuple(t for op, t in terms if op == "-"),
    )
