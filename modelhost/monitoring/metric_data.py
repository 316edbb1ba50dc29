"""GetMetricData: MetricStat queries, metric math over their ids, labels, ScanBy, MaxDatapoints and NextToken.

Every query is answered in full and the answer cut into pages of `MaxDatapoints` values in query order,
so a NextToken is an offset into that sequence bound to the request (paging.py). A returned expression whose
value is a scalar is given at every timestamp any MetricStat query of the request has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelhost.monitoring import metric_math, paging
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.datapoints import StatisticSet
from modelhost.monitoring.errors import InvalidParameterCombination, InvalidParameterValue
from modelhost.monitoring.metric_params import check_period, check_statistic, check_time_range, metric_identity

MAX_QUERIES = 500
DEFAULT_MAX_DATAPOINTS = 100_800
QUERY_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class _Answer:
    id: str
    label: str
    points: list[tuple[int, float]]  # (timestamp, value) in ScanBy order


def _check_queries(queries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not queries:
        raise InvalidParameterValue("The parameter MetricDataQueries must contain at least one query.")
    if len(queries) > MAX_QUERIES:
        raise InvalidParameterValue(f"The parameter MetricDataQueries must not hold more than {MAX_QUERIES} queries.")
    by_id: dict[str, dict[str, Any]] = {}
    for i, query in enumerate(queries, start=1):
        path = f"MetricDataQueries.member.{i}"
        query_id = query["Id"]
        if QUERY_ID.fullmatch(query_id) is None:
            raise InvalidParameterValue(
                f"The value {query_id[:255]} for parameter {path}.Id is invalid: it must start with a lowercase "
                "letter and hold only letters, numbers and underscores."
            )
        if query_id in by_id:
            raise InvalidParameterValue(f"The Id {query_id} is used by more than one query; Ids must be unique.")
        if ("MetricStat" in query) == ("Expression" in query):
            raise InvalidParameterCombination(f"Exactly one of {path}.MetricStat and {path}.Expression must be given.")
        if "MetricStat" in query:
            stat = query["MetricStat"]
            check_period(stat["Period"], f"{path}.MetricStat.Period")
            check_statistic(stat["Stat"], f"{path}.MetricStat.Stat")
            if "MetricName" not in stat["Metric"] or "Namespace" not in stat["Metric"]:
                raise InvalidParameterValue(
                    f"The parameter {path}.MetricStat.Metric needs a Namespace and a MetricName."
                )
        by_id[query_id] = query
    if not any(q.get("ReturnData", True) for q in queries):
        raise InvalidParameterValue("At least one query in MetricDataQueries must have ReturnData set to true.")
    return by_id


class _Resolver:
    """Answers each query id once, MetricStat from the store, expressions from the ids they name."""

    def __init__(self, ctx: CloudWatchContext, by_id: dict[str, dict[str, Any]], start_s: float, end_s: float) -> None:
        self._ctx = ctx
        self._by_id = by_id
        self._start_s = start_s
        self._end_s = end_s
        self._values: dict[str, metric_math.Value] = {}
        self._open: set[str] = set()

    def value(self, query_id: str) -> metric_math.Value:
        known = self._values.get(query_id)
        if known is not None:
            return known
        if query_id in self._open:
            raise InvalidParameterValue(f"The expression of query {query_id} refers back to itself.")
        self._open.add(query_id)
        query = self._by_id[query_id]
        result = self._metric(query["MetricStat"]) if "MetricStat" in query else self._expression(query)
        self._open.discard(query_id)
        self._values[query_id] = result
        return result

    def _metric(self, stat: dict[str, Any]) -> metric_math.Series:
        metric = stat["Metric"]
        identity = metric_identity(metric["Namespace"], metric["MetricName"], metric.get("Dimensions"))
        rows = self._ctx.store.statistics(
            identity, self._start_s, self._end_s, stat["Period"], self._ctx.now_s, unit=stat.get("Unit")
        )
        merged: dict[int, StatisticSet] = {}
        for row in rows:  # several units at one timestamp: one value, as GetMetricData has no unit
            known = merged.get(row.timestamp_s)
            merged[row.timestamp_s] = row.stats if known is None else known.merge(row.stats)
        return {ts: s.value(stat["Stat"]) for ts, s in merged.items()}

    def _expression(self, query: dict[str, Any]) -> metric_math.Value:
        expression = query["Expression"]
        try:
            names = metric_math.referenced_ids(expression)
            unknown = sorted(n for n in names if n not in self._by_id)
            if unknown:
                raise metric_math.ExpressionError(f"Unrecognized query id or function '{unknown[0]}'.")
            return metric_math.evaluate(expression, {n: self.value(n) for n in names})
        except metric_math.ExpressionError as exc:
            raise InvalidParameterValue(f"Error in expression {query['Id']}: {exc}") from None

    def all_timestamps(self) -> list[int]:
        return sorted({ts for v in self._values.values() if isinstance(v, dict) for ts in v})


def _answers(ctx: CloudWatchContext, params: dict[str, Any]) -> list[_Answer]:
    queries = params["MetricDataQueries"]
    by_id = _check_queries(queries)
    start_s, end_s = params["StartTime"], params["EndTime"]
    check_time_range(start_s, end_s)
    resolver = _Resolver(ctx, by_id, start_s, end_s)
    for query in queries:
        resolver.value(query["Id"])
    descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
    answers = []
    for query in queries:
        if not query.get("ReturnData", True):
            continue
        value = resolver.value(query["Id"])
        series = value if isinstance(value, dict) else dict.fromkeys(resolver.all_timestamps(), value)
        default_label = query["MetricStat"]["Metric"]["MetricName"] if "MetricStat" in query else query["Id"]
        points = sorted(series.items(), reverse=descending)
        answers.append(_Answer(query["Id"], query.get("Label", default_label), points))
    return answers


def get_metric_data(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    max_points = params.get("MaxDatapoints", DEFAULT_MAX_DATAPOINTS)
    if max_points < 1:
        raise InvalidParameterValue("The parameter MaxDatapoints must be greater than 0.")
    offset = paging.decode_token(params)
    answers = _answers(ctx, params)
    page_end = offset + max_points
    results = []
    first = 0  # where this answer's points start in the whole sequence
    for answer in answers:
        last = first + len(answer.points)
        shown = answer.points[max(0, offset - first) : max(0, page_end - first)]
        results.append(
            {
                "Id": answer.id,
                "Label": answer.label,
                "Timestamps": [float(ts) for ts, _ in shown],
                "Values": [v for _, v in shown],
                "StatusCode": "Complete" if last <= page_end else "PartialData",
                "Messages": [],
            }
        )
        first = last
    result: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
    if page_end < first:
        result["NextToken"] = paging.encode_token(page_end, params)
    return result
