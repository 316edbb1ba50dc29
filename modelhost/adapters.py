"""The adapters between the server's services: small functions that give one service what it needs from
another (records → the OpenAI model list and endpoint statuses, records + routing table + admission → variant
counts for metrics, records → log group names and transform job names, the key store → each AWS API's
authorizer, scalable targets → whether a variant wakes from zero, scaling activities for cold starts). Each is
wired once, in app.py."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from modelhost.auth import authenticate, authorize, wire_request
from modelhost.autoscaling.api import AutoScalingCall
from modelhost.autoscaling.policies import ScalingSettings
from modelhost.autoscaling.records import ActivityStatus
from modelhost.autoscaling.scaling_store import record_activity, targets
from modelhost.clock import Clock
from modelhost.monitoring.cloudwatch_api import IncomingCall
from modelhost.monitoring.exposition import VariantCounts
from modelhost.monitoring.logs.api import LogsCall
from modelhost.monitoring.logs.naming import EndpointNames
from modelhost.resources.status import EndpointStatus
from modelhost.resources.transform_job import job_of_hidden_endpoint
from modelhost.router.admission import Admission
from modelhost.router.openai import ServedModel
from modelhost.router.table import RoutingTable
from modelhost.settings import ServerSettings
from modelhost.store.errors import UnreadableRecord
from modelhost.store.records import Records


def served_models(records: Records) -> list[ServedModel]:
    """InService endpoints, which the OpenAI API lists as models."""
    return [
        ServedModel(e.name, int(e.created))
        for e in records.endpoints.list()
        if e.status == EndpointStatus.IN_SERVICE and job_of_hidden_endpoint(e.name) is None
    ]


def endpoint_status(records: Records, name: str) -> str | None:
    """The endpoint's status for the router; None when there is no such endpoint."""
    try:
        endpoint = records.endpoints.get(name)
    except UnreadableRecord:
        return None
    return None if endpoint is None else str(endpoint.status)


def variant_counts(records: Records, table: RoutingTable, admission: Admission) -> list[VariantCounts]:
    """Desired and serving instances and router concurrency of every variant (for /metrics and CloudWatch)."""
    counts = []
    for endpoint in records.endpoints.list():
        installed = table.get(endpoint.name)
        for state in endpoint.states:
            route = installed.route.variant(state.name) if installed is not None else None
            instances = route.instances if route is not None else ()
            concurrent = sum(admission.in_flight(i.instance_id) for i in instances)
            concurrent += admission.waiting(endpoint.name, state.name)
            counts.append(VariantCounts(endpoint.name, state.name, state.desired_count, len(instances), concurrent))
    return counts


def endpoint_names(records: Records, folder: str) -> EndpointNames | None:
    """An endpoint's names as created (log groups and streams keep their case), from its log folder's name."""
    try:
        endpoint = records.endpoints.get(folder)
    except UnreadableRecord:
        return None
    if endpoint is None:
        return None
    pending = endpoint.pending.variants if endpoint.pending else ()
    variants = [v.name for v in (*endpoint.variants, *pending)]
    return EndpointNames(endpoint.name, tuple(dict.fromkeys(variants)))


def job_name(records: Records, key: str) -> str | None:
    """A transform job's name as created (its log streams and metrics keep its case), from its key."""
    try:
        job = records.transform_jobs.get(key)
    except UnreadableRecord:
        return None
    return None if job is None else job.name


def logs_authorizer(settings: ServerSettings) -> Callable[[LogsCall], str]:
    """The Logs API's check once the call is parsed: SigV4 as everywhere, then `logs:<Op>` on the log group."""

    def check(call: LogsCall) -> str:
        caller = authenticate(wire_request(call.method, call.scope, call.raw_headers, call.body), settings)
        authorize(caller, call.action, call.resource_arn(caller.region, settings.account_id), settings)
        return caller.region

    return check


def autoscaling_authorizer(settings: ServerSettings) -> Callable[[AutoScalingCall], str]:
    """The Application Auto Scaling API's check before it decodes anything: SigV4, then
    `application-autoscaling:<Op>` on *."""

    def check(call: AutoScalingCall) -> str:
        caller = authenticate(wire_request(call.method, call.scope, call.raw_headers, call.body), settings)
        authorize(caller, call.action, "*", settings)
        return caller.region

    return check


def scales_to_zero(records: Records, endpoint: str, variant: str) -> bool:
    """Whether a variant may start from zero instances on a request: its scalable target allows 0."""
    try:
        return any(
            t.min_capacity == 0 and t.endpoint_name.lower() == endpoint.lower() and t.variant_name == variant
            for t in targets(records)
        )
    except UnreadableRecord:
        return False


def cold_start_activity(records: Records, clock: Clock) -> Callable[[str, str, int, str], None]:
    """What a start from zero writes to DescribeScalingActivities."""

    def note(endpoint: str, variant: str, count: int, cause: str) -> None:
        registered = [t.resource_id for t in targets(records)
                      if t.endpoint_name.lower() == endpoint.lower() and t.variant_name == variant]  # fmt: skip
        with contextlib.suppress(Exception):  # an activity that cannot be written never blocks a request
            record_activity(
                records, resource_id=registered[0] if registered else f"endpoint/{endpoint}/variant/{variant}",
                description=f"Setting desired instance count to {count}.", cause=cause, now=clock.now(),
                status=ActivityStatus.SUCCESSFUL,
            )  # fmt: skip

    return note


def cloudwatch_authorizer(settings: ServerSettings) -> Callable[[IncomingCall], str]:
    """The CloudWatch API's check before it decodes anything: SigV4 as everywhere, then `cloudwatch:<Op>` on *."""

    def check(call: IncomingCall) -> str:
        caller = authenticate(wire_request(call.method, call.scope, call.raw_headers, call.body), settings)
        authorize(caller, call.action, "*", settings)
        return caller.region

    return check


def scaling_settings(settings: ServerSettings) -> ScalingSettings:
    """The decider's settings from the server's (MODELHOST_SCALING_*, MODELHOST_SCALE_TO_ZERO_IDLE_S). With a
    shared store the idle rule is off: the leader's metrics hold only the requests it answered itself, so an
    endpoint busy through the followers would look idle and be scaled to zero (docs/fleet.md)."""
    return ScalingSettings(
        evaluation_s=settings.scaling_evaluation_s,
        scale_in_points=settings.scaling_scale_in_points,
        idle_s=settings.scale_to_zero_idle_s,
        default_scale_out_cooldown_s=settings.scaling_scale_out_cooldown_s,
        default_scale_in_cooldown_s=settings.scaling_scale_in_cooldown_s,
        scale_to_zero=not settings.store_url,
    )
