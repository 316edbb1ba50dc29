"""`modelhost stop ENDPOINT` and `modelhost start ENDPOINT`: free every instance of an endpoint but keep the
endpoint, its config, its models and their caches; bring it back at the config's instance counts.

Both are UpdateEndpointWeightsAndCapacities underneath (DesiredInstanceCount 0, then each variant's
InitialInstanceCount), so a stopped endpoint stays InService with 0 current instances, and what boto3 users
see (DescribeEndpoint) says the same. Requests to a stopped endpoint get ServiceUnavailable, unless its
variant scales to zero (a scalable target with MinCapacity 0), in which case the first request starts it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from modelhost.cli.client import clients, server_url
from modelhost.cli.progress import StatusLine

STOPPED = "Stopped"  # how `modelhost ls` shows an InService endpoint whose variants all want 0 instances


def is_stopped(description: dict[str, Any]) -> bool:
    variants = description.get("ProductionVariants") or []
    return bool(variants) and all(int(v.get("DesiredInstanceCount", v.get("CurrentInstanceCount", 1))) == 0
                                  for v in variants)  # fmt: skip


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _set_counts(sm: Any, endpoint: str, counts: dict[str, int], timeout_s: float) -> None:
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": v, "DesiredInstanceCount": n} for v, n in counts.items()],
    )
    status = StatusLine()
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sm.describe_endpoint(EndpointName=endpoint)
        current = {v["VariantName"]: int(v.get("CurrentInstanceCount", 0)) for v in desc["ProductionVariants"]}
        if desc["EndpointStatus"] == "InService" and current == counts:
            status.done(f"endpoint {endpoint}: " + ", ".join(f"{v} {n} instance(s)" for v, n in counts.items()))
            return
        if desc["EndpointStatus"] == "Failed":
            status.done(f"endpoint {endpoint} failed")
            _fail(desc.get("FailureReason", "no reason given"))
        if time.monotonic() > deadline:
            _fail(f"endpoint {endpoint} did not reach {counts} within {timeout_s:.0f} s (now {current})")
        status.update(f"{endpoint}: {desc['EndpointStatus']}, instances {current}")
        time.sleep(0.5)


def _in_service(sm: Any, endpoint: str) -> dict[str, Any]:
    desc: dict[str, Any] = sm.describe_endpoint(EndpointName=endpoint)
    if desc["EndpointStatus"] != "InService":
        _fail(f"endpoint {endpoint} is {desc['EndpointStatus']}; only an InService endpoint can be stopped or started")
    return desc


@click.command()
@click.argument("endpoint")
@click.option("--timeout", "timeout_s", default=900.0, show_default=True, help="seconds to wait")
@click.option("--url", envvar="MODELHOST_URL", default=None, help="server URL (env MODELHOST_URL; default http://127.0.0.1:8080)")
def stop(endpoint: str, timeout_s: float, url: str | None) -> None:
    """Free every instance of ENDPOINT, keeping it (InService, 0 instances), its config, models and caches."""
    sm, _ = clients(server_url(url))
    desc = _in_service(sm, endpoint)
    _set_counts(sm, endpoint, {v["VariantName"]: 0 for v in desc["ProductionVariants"]}, timeout_s)
    click.echo(f"endpoint {endpoint} stopped; `modelhost start {endpoint}` brings it back", err=True)


@click.command()
@click.argument("endpoint")
@click.option("--timeout", "timeout_s", default=3600.0, show_default=True, help="seconds to wait")
@click.option("--url", envvar="MODELHOST_URL", default=None, help="server URL (env MODELHOST_URL; default http://127.0.0.1:8080)")
def start(endpoint: str, timeout_s: float, url: str | None) -> None:
    """Bring a stopped ENDPOINT back at its config's instance counts."""
    sm, _ = clients(server_url(url))
    desc = _in_service(sm, endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    counts = {v["VariantName"]: int(v.get("InitialInstanceCount", 1)) for v in config["ProductionVariants"]}
    running = {v["VariantName"] for v in desc["ProductionVariants"]}
    _set_counts(sm, endpoint, {v: n for v, n in counts.items() if v in running}, timeout_s)
