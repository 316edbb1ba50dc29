"""`modelhost metrics`: its GetMetricData queries, how the answers combine per period and overall, the tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modelhost.cli.metrics import window
from modelhost.cli.metrics_view import (
    COLUMNS,
    VariantMetrics,
    build_queries,
    collect,
    parse_duration,
    query_id,
    render_variant,
    to_json,
)

T0, T1 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC), datetime(2026, 5, 1, 12, 1, tzinfo=UTC)


def column(key: str) -> int:
    return next(i for i, c in enumerate(COLUMNS) if c.key == key)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("1d", 86400),
                                               ("1h30m", 5400), (" 2h ", 7200)])  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "h", "1w", "1h 30m", "0m", "-1h", "1hx"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_window_is_on_period_boundaries_and_includes_the_current_period() -> None:
    start, end = window(3600, 60, datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC))
    assert start == datetime(2026, 5, 1, 11, 0, tzinfo=UTC) and end == datetime(2026, 5, 1, 12, 1, tzinfo=UTC)


def test_queries_name_both_dimensions_and_every_column_for_each_variant() -> None:
    queries = build_queries("chat", ["A", "B"], 60)
    assert len(queries) == 2 * len(COLUMNS) and len({q["Id"] for q in queries}) == len(queries)
    first = queries[0]["MetricStat"]
    assert first["Metric"] == {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": [
        {"Name": "EndpointName", "Value": "chat"}, {"Name": "VariantName", "Value": "A"}]}  # fmt: skip
    assert (first["Period"], first["Stat"]) == (60, "Sum")
    cpu = queries[len(COLUMNS) + column("cpu_utilization")]["MetricStat"]
    assert cpu["Metric"]["Namespace"] == "/aws/sagemaker/Endpoints" and cpu["Metric"]["Dimensions"][1]["Value"] == "B"


def result(variant: int, key: str, values: dict[datetime, float]) -> dict[str, object]:
    return {"Id": query_id(variant, column(key)), "Timestamps": list(values), "Values": list(values.values())}


def answers() -> list[dict[str, object]]:
    return [
        result(0, "invocations", {T0: 10, T1: 30}),
        result(0, "errors_4xx", {T0: 1, T1: 2}),
        result(0, "model_latency_avg_ms", {T0: 10_000, T1: 30_000}),  # microseconds, as SageMaker reports them
        result(0, "model_latency_max_ms", {T0: 50_000, T1: 40_000}),
        result(0, "model_latency_samples", {T0: 10, T1: 30}),
        result(0, "cpu_utilization", {T1: 40.0}),
        result(0, "memory_utilization", {T0: 10.0, T1: 20.0}),
    ]


def test_collect_scales_latency_to_ms_and_leaves_variants_without_data_out() -> None:
    [found] = collect(["A", "B"], answers())
    assert found.variant == "A" and sorted(found.periods) == [T0, T1]
    assert found.periods[T0]["model_latency_avg_ms"] == 10.0 and "cpu_utilization" not in found.periods[T0]


def test_overall_sums_weights_latency_by_samples_and_averages_utilisation() -> None:
    [found] = collect(["A"], answers())
    overall = found.overall()
    assert overall["invocations"] == 40 and overall["errors_4xx"] == 3
    assert overall["model_latency_avg_ms"] == pytest.approx((10 * 10 + 30 * 30) / 40)  # not (10 + 30) / 2
    assert overall["model_latency_max_ms"] == 50.0
    assert overall["cpu_utilization"] == 40.0 and overall["memory_utilization"] == 15.0
    assert "gpu_utilization" not in overall


def test_a_variant_table_shows_only_columns_with_data_and_ends_with_overall() -> None:
    [found] = collect(["A"], answers())
    lines = render_variant(found)
    assert lines[0] == "variant A"
    assert lines[1].split() == ["TIME", "INVOC", "4XX", "LAT_AVG_MS", "LAT_MAX_MS", "CPU%", "MEM%"]
    first = lines[2].split()
    assert first[2:] == ["10", "1", "10.0", "50.0", "-", "10.0"]
    assert lines[-1].split() == ["overall", "40", "3", "25.0", "50.0", "40.0", "15.0"]
    assert len(lines) == 5


def test_json_lists_periods_in_time_order_with_the_overall() -> None:
    metrics = VariantMetrics("A", {T1: {"invocations": 2.0}, T0: {"invocations": 1.0}})
    document = to_json("chat", T0, T1, 60, [metrics])
    assert [p["time"] for p in document["variants"][0]["periods"]] == [T0.isoformat(), T1.isoformat()]
    assert document["variants"][0]["overall"] == {"invocations": 3.0}
    assert (document["endpoint"], document["period_s"], document["start"]) == ("chat", 60, T0.isoformat())
