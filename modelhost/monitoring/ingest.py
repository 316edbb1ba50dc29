"""PutMetricData: custom metrics checked as CloudWatch checks them and turned into store data points."""

from __future__ import annotations

import math
from typing import Any

from modelhost.monitoring.context import CloudWatchContext
from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of
from modelhost.monitoring.errors import InvalidParameterCombination, InvalidParameterValue, MissingParameter

MAX_METRICS = 1000
MAX_VALUES = 150
VALUE_LIMIT = 2.0**360  # CloudWatch refuses values outside -2^360..2^360
PAST_S = 14 * 86400  # timestamps up to two weeks old ...
FUTURE_S = 2 * 3600  # ... and two hours ahead are accepted


def _text(value: str, name: str, *, ascii_only: bool) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidParameterValue(
            f"The value for parameter {name} contains control characters, which are not supported."
        )
    if ascii_only and not value.isascii():
        raise InvalidParameterValue(f"The value for parameter {name} must contain only ASCII characters.")
    if not value.strip():
        raise InvalidParameterValue(f"The value for parameter {name} must include a non-whitespace character.")


def _number(value: float, name: str) -> float:
    if not math.isfinite(value) or abs(value) > VALUE_LIMIT:
        raise InvalidParameterValue(f"The value {value} for parameter {name} is invalid.")
    return float(value)


def _dimensions(datum: dict[str, Any], path: str) -> tuple[tuple[str, str], ...]:
    names: set[str] = set()
    for i, dimension in enumerate(datum.get("Dimensions", []), start=1):
        where = f"{path}.Dimensions.member.{i}"
        _text(dimension["Name"], f"{where}.Name", ascii_only=True)
        _text(dimension["Value"], f"{where}.Value", ascii_only=True)
        if dimension["Name"].startswith(":"):
            raise InvalidParameterValue(f"The value for parameter {where}.Name must not start with a colon.")
        if dimension["Name"] in names:
            raise InvalidParameterValue(f"The dimension name {dimension['Name']} is given twice in {path}.Dimensions.")
        names.add(dimension["Name"])
    return dimensions_of((d["Name"], d["Value"]) for d in datum.get("Dimensions", []))


def _exclusive(datum: dict[str, Any], path: str) -> None:
    given = [name for name in ("Value", "StatisticValues", "Values") if name in datum]
    if len(given) > 1:
        raise InvalidParameterCombination(
            f"The parameters {path}.{given[0]} and {path}.{given[1]} are mutually exclusive "
            "and you have specified both."
        )
    if not given:
        raise MissingParameter(
            f"One of the parameters {path}.Value, {path}.StatisticValues or {path}.Values is required."
        )
    if "Counts" in datum and "Values" not in datum:
        raise InvalidParameterCombination(f"The parameter {path}.Counts needs {path}.Values.")


def _statistics(datum: dict[str, Any], path: str) -> StatisticSet | None:
    _exclusive(datum, path)
    if "Value" in datum:
        return StatisticSet.of_value(_number(datum["Value"], f"{path}.Value"))
    if "StatisticValues" in datum:
        given = datum["StatisticValues"]
        s = StatisticSet(
            *(_number(given[k], f"{path}.StatisticValues.{k}") for k in ("SampleCount", "Sum", "Minimum", "Maximum"))
        )
        if s.sample_count <= 0:
            raise InvalidParameterValue(f"The parameter {path}.StatisticValues.SampleCount must be greater than 0.")
        if s.minimum > s.maximum:
            raise InvalidParameterValue(
                f"The parameter {path}.StatisticValues.Minimum must not be greater than Maximum."
            )
        return s
    values = [_number(v, f"{path}.Values") for v in datum["Values"]]
    counts = [_number(c, f"{path}.Counts") for c in datum["Counts"]] if "Counts" in datum else None
    if len(values) > MAX_VALUES:
        raise InvalidParameterValue(f"The collection {path}.Values must not have a size greater than {MAX_VALUES}.")
    if counts is not None and len(counts) != len(values):
        raise InvalidParameterValue(f"The parameters {path}.Values and {path}.Counts must be of the same size.")
    if counts is not None and any(c < 0 for c in counts):
        raise InvalidParameterValue(f"The values of {path}.Counts must not be negative.")
    return StatisticSet.of_values(values, counts)


def _timestamp(datum: dict[str, Any], path: str, now_s: float) -> float:
    at = float(datum.get("Timestamp", now_s))
    if at < now_s - PAST_S:
        raise InvalidParameterValue(
            f"The parameter {path}.Timestamp must specify a time no more than two weeks in the past."
        )
    if at > now_s + FUTURE_S:
        raise InvalidParameterValue(
            f"The parameter {path}.Timestamp must specify a time no more than two hours in the future."
        )
    return at


def datapoint(namespace: str, datum: dict[str, Any], path: str, now_s: float) -> Datapoint | None:
    """One MetricDatum as a store data point; None when its Counts are all zero (nothing was sampled)."""
    _text(datum["MetricName"], f"{path}.MetricName", ascii_only=False)
    dimensions = _dimensions(datum, path)
    resolution = datum.get("StorageResolution", 60)
    if resolution not in (1, 60):
        raise InvalidParameterValue(
            f"The value {resolution} for parameter {path}.StorageResolution is invalid: use 1 or 60."
        )
    stats = _statistics(datum, path)
    at = _timestamp(datum, path, now_s)
    if stats is None:
        return None
    metric = MetricIdentity(namespace, datum["MetricName"], dimensions)
    return Datapoint(metric, datum.get("Unit", "None"), at, stats, high_resolution=resolution == 1)


def put_metric_data(ctx: CloudWatchContext, params: dict[str, Any]) -> dict[str, Any]:
    namespace = params["Namespace"]
    _text(namespace, "Namespace", ascii_only=True)
    if namespace.startswith("AWS/"):
        raise InvalidParameterValue(
            f"The value {namespace[:255]} for parameter Namespace is invalid: "
            "namespaces starting with AWS/ are reserved."
        )
    data = [(f"MetricData.member.{i}", d) for i, d in enumerate(params.get("MetricData", []), start=1)]
    for e, entity in enumerate(params.get("EntityMetricData", []), start=1):
        data += [
            (f"EntityMetricData.member.{e}.MetricData.member.{i}", d)
            for i, d in enumerate(entity.get("MetricData", []), start=1)
        ]
    if not data:
        raise MissingParameter("The parameter MetricData is required.")
    if len(data) > MAX_METRICS:
        raise InvalidParameterValue(f"The collection MetricData must not have a size greater than {MAX_METRICS}.")
    points = [datapoint(namespace, datum, path, ctx.now_s) for path, datum in data]
    ctx.store.add(p for p in points if p is not None)
    return {}
