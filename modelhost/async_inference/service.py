"""Builds InvokeEndpointAsync's parts for the server (app.py): the dispatcher, the runtime edge's intake and the
backlog metrics source."""

from __future__ import annotations

import time
from collections.abc import Callable

from modelhost.async_inference.dispatcher import AsyncDispatcher
from modelhost.async_inference.intake import AsyncIntake
from modelhost.async_inference.metrics import backlog_datapoints
from modelhost.async_inference.notify import SnsPublisher
from modelhost.monitoring.datapoints import Datapoint
from modelhost.monitoring.invocations import InvocationMetrics
from modelhost.router.forward import InvocationRouter
from modelhost.router.table import RoutingTable
from modelhost.settings import ServerSettings
from modelhost.storage.objects import objects_for
from modelhost.store.records import Records


def build_async_inference(
    settings: ServerSettings,
    records: Records,
    router: InvocationRouter,
    table: RoutingTable,
    metrics: InvocationMetrics,
    now: Callable[[], float] = time.time,
    leading: Callable[[], bool] = lambda: True,
) -> tuple[AsyncDispatcher, AsyncIntake]:
    """`leading()`: whether this server leads its store now (only the leader's dispatcher queues requests)."""
    objects = objects_for(settings)
    dispatcher = AsyncDispatcher(records, router, table, objects, SnsPublisher(settings.region), metrics,
                                 max_input_bytes=settings.async_max_input_bytes, now=now)  # fmt: skip
    intake = AsyncIntake(records, objects, dispatcher.submit, settings.account_id, now, dispatcher.queued, leading)
    return dispatcher, intake


def backlog_source(dispatcher: AsyncDispatcher) -> Callable[[float], list[Datapoint]]:
    """The Monitoring source of the asynchronous endpoints' backlog metrics."""
    return lambda now: backlog_datapoints(dispatcher.backlogs(), now)
