"""`modelhost metrics ENDPOINT`: the endpoint's CloudWatch metrics over a recent window, read with boto3's
cloudwatch client from the server (ListMetrics for its variants, one GetMetricData for every value)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from modelhost.cli.client import server_url, service_client
from modelhost.cli.metrics_view import (
    INSTANCE_NAMESPACE,
    INVOCATION_NAMESPACE,
    VariantMetrics,
    build_queries,
    collect,
    parse_duration,
    render_variant,
    to_json,
)


def variants_of(cloudwatch: Any, endpoint: str) -> list[str]:
    """The VariantNames CloudWatch has metrics of for `endpoint`, in both namespaces."""
    found: set[str] = set()
    for namespace in (INVOCATION_NAMESPACE, INSTANCE_NAMESPACE):
        pages = cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=namespace, Dimensions=[{"Name": "EndpointName", "Value": endpoint}]
        )
        for page in pages:
            for metric in page["Metrics"]:
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                if dims.get("EndpointName") == endpoint and "VariantName" in dims:
                    found.add(dims["VariantName"])
    return sorted(found)


def window(since_s: int, period_s: int, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) covering the last `since_s` seconds, on period boundaries (the current period included)."""
    epoch = int(now.timestamp())
    end = (epoch // period_s + 1) * period_s
    start = (epoch - since_s) // period_s * period_s
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def fetch(cloudwatch: Any, endpoint: str, variants: list[str], start: datetime, end: datetime,
          period_s: int) -> list[VariantMetrics]:  # fmt: skip
    results: list[dict[str, Any]] = []
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=build_queries(endpoint, variants, period_s), StartTime=start, EndTime=end,
        ScanBy="TimestampAscending",
    )  # fmt: skip
    for page in pages:
        results.extend(page["MetricDataResults"])
    merged: dict[str, dict[str, Any]] = {}
    for result in results:  # a query's values may continue on the next page
        known = merged.setdefault(result["Id"], {"Id": result["Id"], "Timestamps": [], "Values": []})
        known["Timestamps"].extend(result.get("Timestamps", []))
        known["Values"].extend(result.get("Values", []))
    return collect(variants, list(merged.values()))


@click.command()
@click.argument("endpoint")
@click.option("--since", default="1h", show_default=True, help="how far back: 90s, 30m, 1h, 1d, 1h30m")
@click.option("--period", default=60, show_default=True, type=click.IntRange(min=1),
              help="seconds per row (60 and multiples; 10, 30 within the last 3 hours)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables")
@click.option("--url", envvar="MODELHOST_URL", default=None, help="server URL (env MODELHOST_URL)")
def metrics(endpoint: str, since: str, period: int, as_json: bool, url: str | None) -> None:
    """The endpoint's CloudWatch metrics per variant and period: invocations, errors, latency, utilisation."""
    try:
        since_s = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    cloudwatch = service_client(server_url(url), "cloudwatch")
    start, end = window(since_s, period, datetime.now(UTC))
    variants = variants_of(cloudwatch, endpoint)
    found = fetch(cloudwatch, endpoint, variants, start, end, period) if variants else []
    if not found:
        click.echo(f"error: no CloudWatch data for endpoint {endpoint} in the last {since} (metrics are written "
                   "every 10 s once the endpoint serves)", err=True)  # fmt: skip
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(to_json(endpoint, start, end, period, found), indent=2))
        return
    click.echo(f"{endpoint}: CloudWatch metrics from {start.astimezone():%Y-%m-%d %H:%M:%S} to "
               f"{end.astimezone():%H:%M:%S}, {period} s periods (latencies in ms)")  # fmt: skip
    for metrics_of_variant in found:
        click.echo("")
        click.echo("\n".join(render_variant(metrics_of_variant)))
