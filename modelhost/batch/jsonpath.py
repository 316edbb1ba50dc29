"""SageMaker's JSONPath subset for DataProcessing filters: parsing and selection (pure).

This module owns the grammar and meaning of `InputFilter`/`OutputFilter` expressions. SageMaker documents
these operators ("Supported JSONPath Operators" in "Associate Prediction Results with Input Records"):

- `$` the root, required at the start;
- `.name` and `['name']` / `["name"]` a member; `['a','b']` several members;
- `*` / `.*` / `[*]` every member or element;
- `[i]` an element (negative counts from the end: `-1` is the last), `[i,j,...]` several;
- `[start:end]` a slice, either side optional (`$[1:]`, `$[:5]`, `$[2:5]`), mixable with indexes
  (`$[0,5:]`, AWS's own OutputFilter example).

Everything else (`..`, filters `[?(...)]`, scripts `[(...)]`, slice steps `[::2]`, functions) raises
`JsonPathError` naming the unsupported part. Choices where AWS is silent or contradicts itself:

- Slices end before `end`, as JSONPath (and the JavaScript `slice()` AWS's operator table cites) define
  them; one prose paragraph of the AWS guide reads `$[1:4]` as inclusive, but the operator table, the
  JsonPath library it links to and RFC 9535 are exclusive.
- One bracket holds at most one slice: SageMaker refuses `$[0:2,246:]` ("only single range filters").
- `['a','b']` selects an object holding those members, in the order written (so the documented
  `$['id','SageMakerOutput']` keeps the key names); as the AWS guide says, it may only end the path.
- Strictness: until the path has passed a multi-selector (slice, index list, wildcard), a missing member,
  an index out of range or the wrong kind of value raises `NoMatch` (AWS: "If you specify indexes that
  aren't within the dimension size of the joined dataset, you get an error"). After a multi-selector,
  values that lack the member are skipped, as JSONPath does; a selection left empty raises `NoMatch`.
  Slices never raise on their own: they are clipped to the array, like every JSONPath slice.
- Inside brackets, spaces around items and commas are allowed; a quoted name takes `\\` before any
  character to mean that character (`['it\\'s']`). Dot names take any character but whitespace and
  ``. [ ] ' " * , ( ) ? @ : \\``; other names need the bracket form.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

MAX_EXPRESSION_CHARS = 1000
_MAX_INDEX_DIGITS = 9  # |i| < 10**9: more columns or elements than any record holds
_DOT_NAME = re.compile(r"""[^\s.\[\]'"*,()?@:\\]+""")
_INDEX = re.compile(rf"-?\d{{1,{_MAX_INDEX_DIGITS}}}")
_SLICE = re.compile(rf"(-?\d{{1,{_MAX_INDEX_DIGITS}}})?:(-?\d{{1,{_MAX_INDEX_DIGITS}}})?")


class JsonPathError(ValueError):
    """The expression is not in SageMaker's JSONPath subset; the message says which part and why."""


class NoMatch(Exception):
    """The expression selects nothing in this document; the message names the path and the reason."""


@dataclass(frozen=True, slots=True)
class _Name:
    name: str


@dataclass(frozen=True, slots=True)
class _Names:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Index:
    index: int


@dataclass(frozen=True, slots=True)
class _Union:
    items: tuple[int | slice, ...]


_Segment = _Name | _Names | _Wildcard | _Index | _Union


def _is_multi(segment: _Segment) -> bool:
    return isinstance(segment, _Wildcard | _Union)


def _text(segment: _Segment) -> str:
    """The segment written back in bracket form, for messages."""
    if isinstance(segment, _Name):
        return f"[{segment.name!r}]"
    if isinstance(segment, _Names):
        return "[" + ",".join(repr(name) for name in segment.names) + "]"
    if isinstance(segment, _Wildcard):
        return "[*]"
    if isinstance(segment, _Index):
        return f"[{segment.index}]"
    return "[" + ",".join(_item_text(item) for item in segment.items) + "]"


def _item_text(item: int | slice) -> str:
    if isinstance(item, int):
        return str(item)
    start = "" if item.start is None else str(item.start)
    end = "" if item.stop is None else str(item.stop)
    return f"{start}:{end}"


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled expression; build it with `parse`. `definite` is True when it selects at most one value."""

    expression: str
    segments: tuple[_Segment, ...]

    @property
    def definite(self) -> bool:
        return not any(_is_multi(segment) for segment in self.segments)

    @property
    def is_root(self) -> bool:
        """True for `$` alone: the whole document, unchanged."""
        return not self.segments

    def select(self, document: Any) -> Any:
        """The value selected in a parsed JSON `document`: one value for a definite path, else a list.

        Raises NoMatch when nothing matches (see the module docstring for when a miss is an error).
        """
        nodes: list[Any] = [document]
        multi = False
        prefix = "$"
        for segment in self.segments:
            found: list[Any] = []
            for node in nodes:
                self._apply(segment, node, found, strict=not multi, prefix=prefix)
            nodes = found
            multi = multi or _is_multi(segment)
            prefix += _text(segment)
            if not nodes:
                raise NoMatch(f"JSONPath {self.expression} matches nothing: {prefix} selects no value.")
        return nodes if multi else nodes[0]

    def select_columns(self, fields: Sequence[str]) -> list[str]:
        """The columns of one CSV row selected as SageMaker does: the row taken as a JSON array.

        Only index-based paths apply (`$`, `$[0]`, `$[1:]`, `$[0,2]`, `$[0,-1]`, `$[*]`); others raise
        JsonPathError. Raises NoMatch as `select` does (an index beyond the row, an empty selection).
        """
        if len(self.segments) > 1 or any(isinstance(s, _Name | _Names) for s in self.segments):
            raise JsonPathError(
                f"JSONPath {self.expression} cannot select CSV columns: a CSV row is taken as one array, so use "
                "an index-based path such as $[0], $[1:] or $[0,2]."
            )
        selected = self.select(list(fields))
        return list(selected) if not self.definite or self.is_root else [selected]

    def _apply(self, segment: _Segment, node: Any, found: list[Any], *, strict: bool, prefix: str) -> None:
        if isinstance(segment, _Wildcard):
            if isinstance(node, dict):
                found.extend(node.values())
            elif isinstance(node, list):
                found.extend(node)
            return
        if isinstance(segment, _Name | _Names):
            self._apply_names(segment, node, found, strict=strict, prefix=prefix)
        else:
            self._apply_indexes(segment, node, found, strict=strict, prefix=prefix)

    def _apply_names(self, segment: _Name | _Names, node: Any, found: list[Any], *, strict: bool, prefix: str) -> None:
        if not isinstance(node, dict):
            if strict:
                self._miss(f"{prefix} is {_kind(node)}, not an object, so it has no members")
            return
        names = (segment.name,) if isinstance(segment, _Name) else segment.names
        present = [name for name in names if name in node]
        if strict and len(present) < len(names):
            missing = next(name for name in names if name not in node)
            self._miss(f"{prefix} has no member {missing!r}")
        if isinstance(segment, _Name):
            found.extend(node[name] for name in present)
        elif present:
            found.append({name: node[name] for name in present})

    def _apply_indexes(
        self, segment: _Index | _Union, node: Any, found: list[Any], *, strict: bool, prefix: str
    ) -> None:
        if not isinstance(node, list):
            if strict:
                self._miss(f"{prefix} is {_kind(node)}, not an array, so it has no elements")
            return
        items = (segment.index,) if isinstance(segment, _Index) else segment.items
        for item in items:
            if isinstance(item, slice):
                found.extend(node[item])
            elif -len(node) <= item < len(node):
                found.append(node[item])
            elif strict:
                self._miss(f"{prefix} has {len(node)} elements, so index {item} is out of range")

    def _miss(self, reason: str) -> NoReturn:
        raise NoMatch(f"JSONPath {self.expression} matches nothing: {reason}.")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def parse(expression: str) -> JsonPath:
    """Compile `expression`; JsonPathError names what is outside SageMaker's subset."""
    if not isinstance(expression, str):
        raise JsonPathError(f"A JSONPath expression must be a string, not {type(expression).__name__}.")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise JsonPathError(f"The JSONPath expression is {len(expression)} characters; at most {MAX_EXPRESSION_CHARS}.")
    if not expression.startswith("$"):
        raise JsonPathError(f"JSONPath {expression!r} must start with $ (the root), for example $ or $[1:].")
    segments: list[_Segment] = []
    pos = 1
    while pos < len(expression):
        segment, pos = _segment(expression, pos)
        if segment is not None:
            segments.append(segment)
    for segment in segments[:-1]:
        if isinstance(segment, _Names):
            raise JsonPathError(
                f"JSONPath {expression!r}: a list of names {_text(segment)} may only end the path "
                "(nesting below a multi-name bracket is not supported)."
            )
    return JsonPath(expression, tuple(segments))


def _segment(expression: str, pos: int) -> tuple[_Segment | None, int]:
    """The segment starting at `pos` and the position after it (None for a `.` that a bracket follows)."""
    char = expression[pos]
    if char == "[":
        return _bracket(expression, pos)
    if char != ".":
        raise _unsupported(expression, pos, "expected . or [ here")
    if expression.startswith("..", pos):
        raise _unsupported(expression, pos, "recursive descent (..) is not supported")
    pos += 1
    if pos == len(expression):
        raise JsonPathError(f"JSONPath {expression!r} ends with '.'; name a member after it.")
    if expression[pos] == "[":  # `$.field1.['child1','child2']`, as the AWS guide writes it
        return None, pos
    if expression[pos] == "*":
        return _Wildcard(), pos + 1
    match = _DOT_NAME.match(expression, pos)
    if match is None:
        raise _unsupported(expression, pos, "use the bracket form ['name'] for names with this character")
    return _Name(match.group()), match.end()


def _unsupported(expression: str, pos: int, why: str) -> JsonPathError:
    return JsonPathError(f"JSONPath {expression!r} is not supported at {expression[pos : pos + 20]!r}: {why}.")


def _skip_spaces(expression: str, pos: int) -> int:
    while pos < len(expression) and expression[pos] == " ":
        pos += 1
    return pos


def _bracket(expression: str, pos: int) -> tuple[_Segment, int]:
    start = pos
    pos = _skip_spaces(expression, pos + 1)
    if pos < len(expression) and expression[pos] in "'\"":
        return _names(expression, pos)
    end = expression.find("]", pos)
    if end < 0:
        raise _unsupported(expression, start, "the bracket is not closed with ]")
    content = expression[pos:end].strip()
    if content == "*":
        return _Wildcard(), end + 1
    return _numbers(expression, start, content), end + 1


def _names(expression: str, pos: int) -> tuple[_Segment, int]:
    names: list[str] = []
    while True:
        name, pos = _quoted(expression, pos)
        names.append(name)
        pos = _skip_spaces(expression, pos)
        if pos >= len(expression):
            raise JsonPathError(f"JSONPath {expression!r}: the bracket is not closed with ].")
        if expression[pos] == "]":
            break
        if expression[pos] != ",":
            raise _unsupported(expression, pos, "expected , or ] after a quoted name")
        pos = _skip_spaces(expression, pos + 1)
        if pos >= len(expression) or expression[pos] not in "'\"":
            raise _unsupported(expression, min(pos, len(expression) - 1), "expected a quoted name after ,")
    unique = tuple(dict.fromkeys(names))
    return (_Name(unique[0]) if len(names) == 1 else _Names(unique)), pos + 1


def _quoted(expression: str, pos: int) -> tuple[str, int]:
    quote = expression[pos]
    chars: list[str] = []
    pos += 1
    while pos < len(expression):
        char = expression[pos]
        if char == "\\" and pos + 1 < len(expression):
            chars.append(expression[pos + 1])
            pos += 2
        elif char == quote:
            return "".join(chars), pos + 1
        else:
            chars.append(char)
            pos += 1
    raise JsonPathError(f"JSONPath {expression!r}: a quoted name is not closed with {quote}.")


def _numbers(expression: str, start: int, content: str) -> _Segment:
    if not content:
        raise _unsupported(expression, start, "empty brackets; write an index, a slice, a quoted name or *")
    if any(char in content for char in "?()@$"):
        raise _unsupported(expression, start, "filter and script expressions ([?(...)], [(...)]) are not supported")
    items = [_number_item(expression, start, item.strip()) for item in content.split(",")]
    if sum(isinstance(item, slice) for item in items) > 1:
        raise _unsupported(expression, start, "only one range (start:end) per bracket is supported")
    if len(items) == 1 and isinstance(items[0], int):
        return _Index(items[0])
    return _Union(tuple(items))


def _number_item(expression: str, start: int, item: str) -> int | slice:
    if _INDEX.fullmatch(item):
        return int(item)
    match = _SLICE.fullmatch(item)
    if match:
        low, high = match.groups()
        return slice(None if low is None else int(low), None if high is None else int(high))
    if item.count(":") > 1:
        raise _unsupported(expression, start, f"slice steps ({item}) are not supported")
    raise _unsupported(
        expression,
        start,
        f"{item!r} is not an index (such as 0 or -1) or a slice (such as 1: or 2:5) of at most "
        f"{_MAX_INDEX_DIGITS} digits",
    )
