"""GetMetricStatistics and ListMetrics over the metric store."""

from __future__ import annotations

from typing import Any

from modelhost.monitoring import paging
from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.errors import InvalidParameterCombination
from modelhost.monitoring.metric_params import (
    check_period,
    check_statistic,
    check_time_range,
    metric_identity,
)
from modelhost.monitoring.metric_store import DimensionFilter
from modelhost.monitoring.resolutions import periods_between

MAX_STATISTICS_DATAPOINTS = 1440  # CloudWatch's limit per GetMetricStatistics call
LIST_PAGE = 500  # ListMetrics returns up to 500 metrics a call


def get_metric_statistics(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    statistics: list[str] = params.get("Statistics", [])
    extended: list[str] = params.get("ExtendedStatistics", [])
    if statistics and extended:
        raise InvalidParameterCombination(
            "The parameters Statistics and ExtendedStatistics are mutually exclusive and you have specified both."
        )
    if not statistics and not extended:
        raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics.")
    for i, stat in enumerate(extended, start=1):
        check_statistic(stat, f"ExtendedStatistics.member.{i}")
    start_s, end_s, period_s = params["StartTime"], params["EndTime"], params["Period"]
    check_time_range(start_s, end_s)
    check_period(period_s)
    requested = periods_between(start_s, end_s, period_s)
    if requested > MAX_STATISTICS_DATAPOINTS:
        raise InvalidParameterCombination(
            f"You have requested up to {requested:,} datapoints, which exceeds the limit of "
            f"{MAX_STATISTICS_DATAPOINTS:,}. You may reduce the datapoints requested by increasing Period, "
            "or decreasing the time range."
        )
    metric = metric_identity(params["Namespace"], params["MetricName"], params.get("Dimensions"))
    rows = ctx.store.statistics(metric, start_s, end_s, period_s, ctx.now_s, unit=params.get("Unit"))
    datapoints = []
    for row in rows:
        point: dict[str, Any] = {"Timestamp": float(row.timestamp_s), "Unit": row.unit}
        for stat in dict.fromkeys(statistics):
            point[stat] = row.stats.value(stat)
        datapoints.append(point)
    return {"Label": params["MetricName"], "Datapoints": datapoints}


def list_metrics(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    filters = tuple(DimensionFilter(f["Name"], f.get("Value")) for f in params.get("Dimensions", []))
    metrics = ctx.store.list_metrics(
        ctx.now_s,
        namespace=params.get("Namespace"),
        metric_name=params.get("MetricName"),
        filters=filters,
        recently_active=params.get("RecentlyActive") == "PT3H",
    )
    owner = params.get("OwningAccount")
    if owner is not None and owner != ctx.account_id:
        metrics = []  # this server holds one account's metrics
    offset = paging.decode_token(params)
    page = metrics[offset : offset + LIST_PAGE]
    result: dict[str, Any] = {
        "Metrics": [
            {
                "Namespace": m.namespace,
                "MetricName": m.metric_name,
                "Dimensions": [{"Name": name, "Value": value} for name, value in m.dimensions],
            }
            for m in page
        ]
    }
    if params.get("IncludeLinkedAccounts"):
        result["OwningAccounts"] = [ctx.account_id] * len(page)
    if offset + LIST_PAGE < len(metrics):
        result["NextToken"] = paging.encode_token(offset + LIST_PAGE, params)
    return result
