"""DJL's batch wire format (>= 0.25, `batch_000.` keys): many Inputs -> one, one Output -> many (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from modelhost.worker.handler.djl import Input, Output

_ITEM_KEY = re.compile(r"^batch_(\d+)\.(.*)$", re.DOTALL)
# HEAD's per-item headers, e.g. batch_0_Content-Type
_ITEM_HEADER = re.compile(r"^batch_(\d+)_(.+)$", re.DOTALL)


def build_batch_input(items: Sequence[Input], engine_properties: Mapping[str, str]) -> Input:
    """One Input for several requests: top-level `batch_size` and engine properties; each request's properties
    and content under `batch_000.<name>`. A single request stays a plain Input."""
    if len(items) == 1:
        single = items[0]
        single.properties.update(engine_properties)
        return single
    batch = Input()
    batch.properties["batch_size"] = str(len(items))
    batch.properties.update(engine_properties)
    for index, item in enumerate(items):
        prefix = f"batch_{index:03d}."
        for name, value in item.properties.items():
            batch.properties[prefix + name] = value
        for name, value in item.content:
            batch.content.add(prefix + name, value)
    return batch


def _mismatch(expected: int, got: str) -> list[Output]:
    message = f"Batch output size mismatch: expected {expected} outputs (one per request), got {got}"
    return [Output().error(message) for _ in range(expected)]


def _route(output: Output, count: int) -> dict[int, bytes] | None:
    """Content entry per request index, or None unless there is exactly one `batch_<i>.` entry per request."""
    routed: dict[int, bytes] = {}
    for key, value in output.content:
        match = _ITEM_KEY.match(str(key))
        if match is None or int(match.group(1)) >= count or int(match.group(1)) in routed:
            return None
        routed[int(match.group(1))] = value
    return routed if len(routed) == count else None


def _item_output(output: Output, index: int, value: bytes) -> Output:
    """Request `index`'s Output: the shared code, message and properties, its own `batch_<i>_` headers."""
    item = Output(code=output.code, message=output.message)
    own: dict[str, object] = {}
    for name, prop in output.properties.items():
        header = _ITEM_HEADER.match(str(name))
        if header is None:
            item.properties[name] = prop
        elif int(header.group(1)) == index:
            own[header.group(2)] = prop
    for name, prop in own.items():  # a per-item header replaces a shared one, whatever its case
        for shared in [k for k in item.properties if str(k).lower() == name.lower()]:
            del item.properties[shared]
        item.properties[name] = prop
    item.content.add("data", value)
    return item


def split_batch_output(output: Output | None, count: int) -> list[Output]:
    """Route a batch's Output back to its `count` requests by `batch_<i>.<key>` content keys.

    Top-level code, message and properties are copied to every item; a code >= 300 gives every request that
    same Output; a wrong number of entries fails every request with "Batch output size mismatch".
    """
    if output is None:
        return _mismatch(count, "no output (handle returned None)")
    if output.stream_content is not None:
        error = f"a streamed Output cannot answer a batch of {count} requests; set batch_size=1 to stream"
        return [Output().error(error) for _ in range(count)]
    if int(output.code) >= 300:
        return [output for _ in range(count)]
    routed = _route(output, count)
    if routed is None:
        return _mismatch(count, f"{output.content.size()} entries with keys {output.content.get_keys()!r}")
    return [_item_output(output, index, routed[index]) for index in range(count)]
