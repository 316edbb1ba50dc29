"""DescribeLogGroups and DescribeLogStreams over the log folders (the store does the I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from modelhost.monitoring.logs import naming, tokens
from modelhost.monitoring.logs.errors import GROUP_NOT_FOUND, InvalidParameter, ResourceNotFound
from modelhost.monitoring.logs.store import LogGroup, LogStore

DEFAULT_DESCRIBE_LIMIT = 50
T = TypeVar("T")
SortKey = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class LogsContext:
    """What every operation gets."""

    store: LogStore
    region: str  # the caller's region (ARNs carry it), else the server's
    account_id: str


def named_group(ctx: LogsContext, params: dict[str, Any]) -> LogGroup:
    """The group named by logGroupName or logGroupIdentifier (exactly one of them)."""
    name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
    if (name is None) == (identifier is None):
        raise InvalidParameter("Specify exactly one of logGroupName and logGroupIdentifier (a name or an ARN).")
    group = ctx.store.group(name if name is not None else naming.group_from_identifier(str(identifier)))
    if group is None:
        raise ResourceNotFound(naming_hint(GROUP_NOT_FOUND, name or identifier))
    return group


def naming_hint(message: str, asked: object) -> str:
    return (
        f"{message} ({str(asked)[:200]!r}; endpoint log groups are {naming.GROUP_PREFIX}<EndpointName>, "
        f"transform jobs' {naming.JOBS_GROUP})"
    )


def _position(operation: str, params: dict[str, Any], like: SortKey) -> SortKey | None:
    position = tokens.parse_page_token(operation, params)
    if position is None:
        return None
    if (
        not isinstance(position, list)
        or len(position) != len(like)
        or any(type(p) is not type(k) for p, k in zip(position, like, strict=True))
    ):
        raise InvalidParameter("The specified nextToken was issued for a different request; call without it.")
    return tuple(position)


def page(
    operation: str, params: dict[str, Any], rows: list[tuple[SortKey, T]], descending: bool = False
) -> tuple[list[T], str | None]:
    """The rows (sort key, item) after the token's position, at most `limit`, and the next page's token."""
    ordered = sorted(rows, key=lambda row: row[0], reverse=descending)
    if ordered:
        position = _position(operation, params, ordered[0][0])
        if position is not None:
            ordered = [r for r in ordered if (r[0] < position if descending else r[0] > position)]
    else:
        tokens.parse_page_token(operation, params)
    limit = int(params.get("limit", DEFAULT_DESCRIBE_LIMIT))
    shown = ordered[:limit]
    token = tokens.page_token(operation, params, list(shown[-1][0])) if len(ordered) > limit else None
    return [item for _, item in shown], token


def describe_log_groups(ctx: LogsContext, params: dict[str, Any]) -> dict[str, Any]:
    prefix, pattern = params.get("logGroupNamePrefix"), params.get("logGroupNamePattern")
    identifiers = params.get("logGroupIdentifiers")
    if prefix is not None and pattern is not None:
        raise InvalidParameter("logGroupNamePrefix and logGroupNamePattern are mutually exclusive; send one.")
    if identifiers is not None and (prefix is not None or pattern is not None):
        raise InvalidParameter("logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.")
    accounts = params.get("accountIdentifiers")
    other_account = accounts is not None and ctx.account_id not in accounts
    if other_account or params.get("logGroupClass", "STANDARD") != "STANDARD":
        return {"logGroups": []}  # every group here is this account's, of the STANDARD class
    wanted = None if identifiers is None else {naming.group_from_identifier(i) for i in identifiers}
    rows: list[tuple[SortKey, dict[str, Any]]] = []
    for group in ctx.store.groups():
        name = group.name
        if (prefix and not name.startswith(prefix)) or (pattern and pattern not in name):
            continue
        if wanted is not None and name not in wanted:
            continue
        rows.append(((name,), _group_shape(ctx, group, brief=pattern is not None)))
    shown, token = page("DescribeLogGroups", params, rows)
    return {"logGroups": shown, **({"nextToken": token} if token else {})}


def _group_shape(ctx: LogsContext, group: LogGroup, *, brief: bool) -> dict[str, Any]:
    stats = [s for s in (ctx.store.stats(stream) for stream in ctx.store.streams(group)) if s is not None]
    created = min((s.creation_ms for s in stats), default=ctx.store.folder_mtime_ms(group))
    arn = naming.group_arn(group.name, region=ctx.region, account_id=ctx.account_id)
    shape: dict[str, Any] = {"logGroupName": group.name, "creationTime": created, "arn": f"{arn}:*"}
    if brief:  # as CloudWatch answers a logGroupNamePattern query
        return shape
    return {
        **shape,
        "metricFilterCount": 0,
        "storedBytes": sum(s.size_bytes for s in stats),
        "logGroupClass": "STANDARD",
        "logGroupArn": arn,
    }


def describe_log_streams(ctx: LogsContext, params: dict[str, Any]) -> dict[str, Any]:
    group = named_group(ctx, params)
    prefix = params.get("logStreamNamePrefix")
    by_time = params.get("orderBy", "LogStreamName") == "LastEventTime"
    if by_time and prefix is not None:
        raise InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix; send one of them.")
    rows: list[tuple[SortKey, dict[str, Any]]] = []
    for stream in ctx.store.streams(group):
        if prefix is not None and not stream.name.startswith(prefix):
            continue
        stats = ctx.store.stats(stream)
        if stats is None:
            continue  # deleted while listed
        shape: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stats.creation_ms,
            "arn": naming.stream_arn(group.name, stream.name, region=ctx.region, account_id=ctx.account_id),
            "storedBytes": stats.size_bytes,
            "lastIngestionTime": stats.ingestion_ms,
        }
        if stats.first_event_ms is not None and stats.last_event_ms is not None:
            shape["firstEventTimestamp"] = stats.first_event_ms
            shape["lastEventTimestamp"] = stats.last_event_ms
        key: SortKey = (stats.last_event_ms or 0, stream.name) if by_time else (stream.name,)
        rows.append((key, shape))
    shown, token = page("DescribeLogStreams", params, rows, descending=bool(params.get("descending", False)))
    return {"logStreams": shown, **({"nextToken": token} if token else {})}
