"""The asynchronous endpoints' CloudWatch metrics, one sample each per endpoint and 10 s tick (pure).

Namespace AWS/SageMaker, dimension EndpointName, as SageMaker publishes them:
ApproximateBacklogSize (waiting + in flight), ApproximateBacklogSizePerInstance (÷ max(1, instances)),
ApproximateAgeOfOldestRequest (seconds) and HasBacklogWithoutCapacity (1 when there is a backlog and no
instance: the metric to scale an endpoint from zero on).
"""

from __future__ import annotations

from collections.abc import Iterable

from modelhost.async_inference.decide import Backlog
from modelhost.monitoring.datapoints import Datapoint, MetricIdentity, StatisticSet, dimensions_of

NAMESPACE = "AWS/SageMaker"
BACKLOG_SIZE = "ApproximateBacklogSize"
BACKLOG_PER_INSTANCE = "ApproximateBacklogSizePerInstance"
AGE_OF_OLDEST = "ApproximateAgeOfOldestRequest"
WITHOUT_CAPACITY = "HasBacklogWithoutCapacity"


def backlog_values(backlog: Backlog, now: float) -> dict[str, tuple[float, str]]:
    """metric name -> (value, unit)."""
    age = 0.0 if backlog.oldest_received is None else max(0.0, now - backlog.oldest_received)
    return {
        BACKLOG_SIZE: (float(backlog.size), "None"),
        BACKLOG_PER_INSTANCE: (backlog.size / max(1, backlog.instances), "None"),
        AGE_OF_OLDEST: (age, "Seconds"),
        WITHOUT_CAPACITY: (1.0 if backlog.size > 0 and backlog.instances == 0 else 0.0, "None"),
    }


def backlog_datapoints(backlogs: Iterable[Backlog], now: float) -> list[Datapoint]:
    points = []
    for backlog in backlogs:
        dimensions = dimensions_of((("EndpointName", backlog.endpoint),))
        for name, (value, unit) in backlog_values(backlog, now).items():
            identity = MetricIdentity(NAMESPACE, name, dimensions)
            points.append(Datapoint(identity, unit, now, StatisticSet.of_value(value), True))
    return points
