"""ControlLoop: observe → plan → apply for every endpoint, forever, surviving every error.

One operation runs per endpoint at a time (a task); an operation that fails unexpectedly (the store cannot be
written, a bug) is logged with its traceback, reported by `problems()` (the server's health check is then not
ok) and retried with backoff, never in a hot loop. The loop also pings serving instances (a worker that fails
`health_failures` pings in a row is killed and replaced) and checks instances the router reported unreachable:
one that answers its ping is re-admitted, one that does not is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from modelhost.clock import Clock
from modelhost.controller.apply import STOP_GRACE_S, Applier
from modelhost.controller.instances import PING_TIMEOUT_S
from modelhost.controller.planner import (
    Action,
    Delete,
    Deploy,
    Publish,
    Reap,
    ScaleDown,
    ScaleUp,
    Update,
    orphaned_fleets,
    plan_endpoint,
)
from modelhost.controller.scaling import restart_delay_s
from modelhost.resources.endpoint import Endpoint
from modelhost.router.table import RoutingTable
from modelhost.scheduler.launchers.base import Launcher, Worker
from modelhost.store.records import Records

log = logging.getLogger(__name__)

LOOP = "control loop"


@dataclass(frozen=True, slots=True)
class LoopSettings:
    control_interval_s: float = 0.5  # how often the loop runs when nothing wakes it
    health_interval_s: float = 5.0  # how often serving instances are pinged
    health_failures: int = 3  # consecutive failed pings after which an instance is replaced


@dataclass(slots=True)
class Operation:
    kind: str  # deploy | update | scale | drain | delete | stop
    task: asyncio.Task[None]


@dataclass(slots=True)
class Backoff:
    failures: int
    retry_after: float  # monotonic


class ControlLoop:
    def __init__(
        self,
        records: Records,
        applier: Applier,
        launcher: Launcher,
        table: RoutingTable,
        clock: Clock,
        settings: LoopSettings,
    ) -> None:
        self._records = records
        self._applier = applier
        self._launcher = launcher
        self._table = table
        self._clock = clock
        self._settings = settings
        self._operations: dict[str, Operation] = {}  # endpoint key -> the operation under way
        self._backoff: dict[str, Backoff] = {}  # endpoint key -> after its last failed operation
        self._problems: dict[str, str] = {}  # what keeps the loop from acting, by where
        self._ping_failures: dict[str, int] = {}  # instance id -> consecutive failed health pings
        self._checks: set[asyncio.Task[None]] = set()
        self._recovered = False
        self._stopping = False
        self._wake = asyncio.Event()

    # lifecycle -------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def operations(self) -> dict[str, str]:
        """The operation under way per endpoint key (deploy, update, scale, drain, delete, stop)."""
        return {key: op.kind for key, op in self._operations.items()}

    def problems(self) -> list[str]:
        """Why the control plane cannot act right now (empty when it can)."""
        return [f"{where}: {what}" for where, what in sorted(self._problems.items())]

    async def run(self) -> None:
        health = asyncio.get_running_loop().create_task(self._watch_health())
        try:
            while not self._stopping:
                self.tick()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._settings.control_interval_s)
        finally:
            health.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health

    def serving_workers(self) -> list[Worker]:
        """Every worker in a route now (for monitoring)."""
        return self._applier.serving_workers()

    async def shutdown(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every worker (SIGKILL after `grace_s`); the store keeps the desired state for the next start."""
        self._stopping = True
        tasks = [op.task for op in self._operations.values()] + list(self._checks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._applier.stop_all(grace_s)

    # one pass --------------------------------------------------------------------------------
    def tick(self) -> None:
        """Observe, plan and apply once for every endpoint; never raises."""
        try:
            if not self._recovered:
                self._launcher.recover_stale()
                self._recovered = True
            endpoints = self._records.endpoints.list()
            for endpoint in endpoints:
                self._reconcile(endpoint)
            self._stop_orphans({e.key for e in endpoints})
            self._check_reports()
        except Exception as exc:
            if self._problems.get(LOOP) != repr(exc):
                log.exception("the control loop could not run; retrying")
            self._problems[LOOP] = repr(exc)
        else:
            self._problems.pop(LOOP, None)

    def _reconcile(self, endpoint: Endpoint) -> None:
        key = endpoint.key
        operation = self._operations.get(key)
        backoff = self._backoff.get(key)
        view = self._applier.view(
            key, operation.kind if operation else None, backoff.retry_after if backoff else 0.0
        )
        for action in plan_endpoint(endpoint, view, self._clock.monotonic()):
            self._apply(endpoint, action)

    def _apply(self, endpoint: Endpoint, action: Action) -> None:
        name = endpoint.name
        applier = self._applier
        match action:
            case Delete():
                running = self._operations.get(endpoint.key)
                self._spawn(endpoint.key, "delete", self._delete(running, name))
            case Deploy():
                self._spawn(endpoint.key, "deploy", applier.deploy(endpoint))
            case Update():
                self._spawn(endpoint.key, "update", applier.update(endpoint))
            case ScaleUp(variant=variant, count=count):
                self._spawn(endpoint.key, "scale", applier.scale_up(name, variant, count))
            case ScaleDown(variant=variant, group_ids=group_ids):
                self._spawn(endpoint.key, "drain", applier.scale_down(name, variant, group_ids))
            case Reap(variant=variant, instance=instance):
                applier.reap(name, variant, instance)
            case Publish(in_service=in_service):
                applier.publish(name, in_service=in_service)

    async def _delete(self, running: Operation | None, name: str) -> None:
        """Delete wins over whatever runs: that operation is cancelled, and has stopped what it started, first."""
        if running is not None and not running.task.done():
            running.task.cancel()
            await asyncio.wait({running.task})  # its own outcome is its own; a cancelled delete still stops here
        await self._applier.delete(name)

    def _stop_orphans(self, recorded: set[str]) -> None:
        unreadable = self._records.problems.names(self._records.endpoints.kind)
        for key in orphaned_fleets(set(self._applier.fleets), recorded, unreadable):
            if key not in self._operations:
                self._spawn(key, "stop", self._applier.stop_orphan(key))

    def _spawn(self, key: str, kind: str, work: Coroutine[Any, Any, None]) -> None:
        previous = self._operations.get(key)
        if previous is not None and not previous.task.done() and kind != "delete":
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work, name=f"{kind} {key}")
        self._operations[key] = Operation(kind, task)
        task.add_done_callback(lambda t: self._finished(key, kind, t))

    def _finished(self, key: str, kind: str, task: asyncio.Task[None]) -> None:
        current = self._operations.get(key)
        if current is not None and current.task is task:
            self._operations.pop(key)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._backoff.pop(key, None)
            self._problems.pop(f"endpoint {key}", None)
        else:
            failures = self._backoff[key].failures + 1 if key in self._backoff else 1
            delay = max(1.0, restart_delay_s(failures + 1))
            self._backoff[key] = Backoff(failures, self._clock.monotonic() + delay)
            self._problems[f"endpoint {key}"] = f"{kind} failed: {exc!r}; retrying in {delay:.0f} s"
            log.error("%s of endpoint %s failed; retrying in %.0f s", kind, key, delay, exc_info=exc)
        self.wake()

    # instance health -------------------------------------------------------------------------
    async def _watch_health(self) -> None:
        while not self._stopping:
            await self._clock.sleep(self._settings.health_interval_s)
            try:
                await self._ping_serving()
            except Exception:
                log.exception("health checks failed; retrying")

    async def _ping_serving(self) -> None:
        workers = self._applier.serving_workers()
        results = await asyncio.gather(*(self._launcher.ping(w, PING_TIMEOUT_S) for w in workers))
        for worker, healthy in zip(workers, results, strict=True):
            failures = 0 if healthy else self._ping_failures.get(worker.instance_id, 0) + 1
            self._ping_failures[worker.instance_id] = failures
            if failures >= self._settings.health_failures and self._launcher.poll(worker) is None:
                self._replace(worker, f"stopped answering /ping ({failures} health checks in a row)")
        live = {w.instance_id for w in workers}
        self._ping_failures = {k: v for k, v in self._ping_failures.items() if k in live}
        self.wake()

    def _replace(self, worker: Worker, why: str) -> None:
        log.warning("instance %s %s; replacing it", worker.instance_id, why)
        self._applier.endlog(worker.endpoint_name).write(f"instance {worker.instance_id} {why}; replacing it")
        self._launcher.kill(worker)  # the next tick reaps it and starts a replacement
        self._ping_failures.pop(worker.instance_id, None)

    def _check_reports(self) -> None:
        for _endpoint, instance_id in self._table.take_unreachable():
            worker = next((w for w in self._applier.serving_workers() if w.instance_id == instance_id), None)
            if worker is not None:
                task = asyncio.get_running_loop().create_task(self._check_unreachable(worker))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)

    async def _check_unreachable(self, worker: Worker) -> None:
        """The router could not reach `worker`: re-admit it if it answers its ping, else replace it."""
        if await self._launcher.ping(worker, PING_TIMEOUT_S):
            log.info("instance %s answers its ping again; back in rotation", worker.instance_id)
            self._applier.publish_route(worker.endpoint_name)
        elif self._launcher.poll(worker) is None:
            self._replace(worker, "was unreachable and does not answer /ping")
        self.wake()
