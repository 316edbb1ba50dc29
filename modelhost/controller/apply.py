"""The applier: carries out the planner's actions with the launcher, the store and the routing table.

It is the one owner of what runs (`fleets`) and the one writer of the routing table: every change of a fleet
is published to the router as a fresh immutable route. Long operations (deploy, update, scale, drain, delete)
are coroutines the loop runs as tasks; reaping and publishing are immediate.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from modelhost.clock import Clock
from modelhost.controller.endpoint_log import EndpointLog
from modelhost.controller.instances import InstanceStarter
from modelhost.controller.planner import ExitedInstance, FleetView
from modelhost.controller.preparation import ModelPreparer
from modelhost.controller.scaling import CRASH_LOOP_FAILURES, restart_delay_s
from modelhost.controller.state import Fleet, VariantRun
from modelhost.errors import DeploymentError
from modelhost.resources.endpoint import Endpoint, VariantObservation, VariantSpec, VariantState
from modelhost.resources.status import HOLDS_INSTANCES, EndpointStatus
from modelhost.router.admission import Admission
from modelhost.router.cache import CACHE_ENV, CACHE_TTL_ENV, DEFAULT_CACHE_TTL_S, cache_mode
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.scheduler.launchers.base import Launcher, Worker
from modelhost.store.errors import StoreError
from modelhost.store.records import Records

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    download_s: float  # ModelDataDownloadTimeoutInSeconds when the variant does not say
    startup_s: float  # ContainerStartupHealthCheckTimeoutInSeconds when the variant does not say


class Applier:
    def __init__(
        self,
        records: Records,
        launcher: Launcher,
        starter: InstanceStarter,
        preparer: ModelPreparer,
        table: RoutingTable,
        admission: Admission,
        clock: Clock,
        timeouts: Timeouts,
        wake: Callable[[], None],
    ) -> None:
        self._records = records
        self._launcher = launcher
        self._starter = starter
        self._preparer = preparer
        self._table = table
        self._admission = admission
        self._clock = clock
        self._timeouts = timeouts
        self._wake = wake
        self.fleets: dict[str, Fleet] = {}  # endpoint key -> what runs for it
        self._background: set[asyncio.Task[None]] = set()  # stops of reaped workers

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # observing -------------------------------------------------------------------------------
    def view(self, key: str, operation: str | None, retry_after: float) -> FleetView:
        fleet = self.fleets.get(key)
        if fleet is None:
            return FleetView(live=False, operation=operation, retry_after=retry_after)
        variants = {name: run.view(self._exited(run)) for name, run in fleet.items()}
        return FleetView(live=True, operation=operation, retry_after=retry_after, variants=variants)

    def _exited(self, run: VariantRun) -> tuple[ExitedInstance, ...]:
        exited: list[ExitedInstance] = []
        for worker in run.serving:
            code = self._launcher.poll(worker)
            if code is not None and all(e.group_id != worker.group_id for e in exited):
                exited.append(ExitedInstance(worker.group_id, worker.instance_id, code))
        return tuple(exited)

    def serving_workers(self) -> list[Worker]:
        return [w for fleet in self.fleets.values() for run in fleet.values() for w in run.serving]

    def endlog(self, name: str) -> EndpointLog:
        return EndpointLog(self._launcher.log_dir(name) / "endpoint.log")

    # deploy ----------------------------------------------------------------------------------
    async def deploy(self, endpoint: Endpoint) -> None:
        """Bring up the endpoint's current configuration; Failed with the phase's reason if it cannot run."""
        endlog = self.endlog(endpoint.name)
        endlog.write(f"deploying endpoint {endpoint.name} (status {endpoint.status})")
        fleet: Fleet = {}
        self.fleets[endpoint.key] = fleet
        try:
            await self._bring_up(endpoint.name, endpoint.variants, endpoint.states, fleet, pending=False)
        except asyncio.CancelledError:
            await self._stop_fleet(self.fleets.pop(endpoint.key, fleet))
            raise
        except Exception as exc:
            await self._stop_fleet(self.fleets.pop(endpoint.key, fleet))
            if is_environmental(exc):  # a full disk is not the model's fault: retried with backoff, not Failed
                endlog.write(f"deployment interrupted, will retry: {exc}")
                raise
            reason = _failure_reason(exc, "deploying", endpoint.name)
            now = self._clock.now()
            endlog.write(f"deployment failed: {reason}")
            self._table.remove(endpoint.name)
            self._change(endpoint.name, lambda e: None if e.status == EndpointStatus.DELETING else e.fail(reason, now))
            return
        self.publish_route(endpoint.name)
        self.publish(endpoint.name, in_service=True)
        endlog.write(f"endpoint {endpoint.name} is InService")

    async def _bring_up(
        self,
        name: str,
        specs: tuple[VariantSpec, ...],
        states: tuple[VariantState, ...],
        fleet: Fleet,
        *,
        pending: bool,
    ) -> None:
        """Prepare each variant's model and start its desired instances into `fleet` (the caller's, so that what
        was started can be stopped when this fails)."""
        for spec in specs:
            status = self._variant_status(name, spec.name, pending=pending)
            fleet[spec.name] = await self._prepare(name, spec, status)
            await self._start_instances(name, fleet[spec.name], _desired(states, spec), status)

    async def _prepare(self, name: str, spec: VariantSpec, status: Callable[[str], None]) -> VariantRun:
        endlog = self.endlog(name)

        def progress(message: str) -> None:
            endlog.write(message)
            status(message)

        prepared = await self._preparer.prepare(
            spec.container,
            download_timeout_s=spec.variant.download_timeout_s or self._timeouts.download_s,
            install_timeout_s=spec.variant.startup_timeout_s or self._timeouts.startup_s,
            progress=progress,
        )
        return VariantRun(spec=spec, prepared=prepared)

    async def _start_instances(self, name: str, run: VariantRun, count: int, status: Callable[[str], None]) -> None:
        """Start `count` instances and wait until each is healthy; they then join the run's serving list."""
        if count <= 0:
            return
        status(f"starting {count} instance(s)")
        endlog = self.endlog(name)
        workers: list[Worker] = []
        run.starting += count
        try:
            indices = range(run.next_index, run.next_index + count)
            run.next_index += count
            # started side by side: each is placed before any launch begins, and a cluster's launches take seconds
            started = await asyncio.gather(
                *(self._starter.start_instance(name, run.spec, run.prepared, index) for index in indices),
                return_exceptions=True,
            )
            for copies in started:
                if not isinstance(copies, BaseException):
                    workers.extend(copies)
                    for worker in copies:
                        endlog.write(f"started {worker.instance_id}, log {worker.log_path}")
            failed = next((e for e in started if isinstance(e, BaseException)), None)
            if failed is not None:
                raise failed
            startup_s = run.spec.variant.startup_timeout_s or self._timeouts.startup_s
            node = run.prepared.node_data  # the instance's node downloads and installs the model before it answers
            preparation_s = node.download_timeout_s + node.install_timeout_s if node is not None else 0.0
            await self._starter.wait_healthy(workers, run.spec, startup_s, status, preparation_s)
        except BaseException:
            await self._stop_workers(workers)
            raise
        finally:
            run.starting -= count
        run.serving.extend(workers)
        run.failures = 0

    # update (blue/green) ---------------------------------------------------------------------
    async def update(self, endpoint: Endpoint) -> None:
        """Bring up the new configuration beside the old, move traffic, then drain and stop the old fleet.

        If the new fleet fails, it is stopped and the endpoint goes RollingBack → InService on the old
        configuration, with the failure in FailureReason (SageMaker's rollback)."""
        pending = endpoint.pending
        if pending is None:
            return
        endlog = self.endlog(endpoint.name)
        endlog.write(f"updating endpoint {endpoint.name} to configuration {pending.config_name}")
        fleet: Fleet = {}
        try:
            await self._bring_up(endpoint.name, pending.variants, pending.states, fleet, pending=True)
        except asyncio.CancelledError:
            await self._stop_fleet(fleet)
            raise
        except Exception as exc:
            if is_environmental(exc):
                await self._stop_fleet(fleet)
                endlog.write(f"update interrupted, will retry: {exc}")
                raise
            reason = _failure_reason(exc, "updating", endpoint.name)
            endlog.write(f"update failed, rolling back to {endpoint.config_name}: {reason}")
            await self._stop_fleet(fleet)  # first: a record write that fails must not leave it running
            self._change(endpoint.name, lambda e: e.roll_back(f"Update rolled back: {reason}", self._clock.now()))
            self.publish(endpoint.name, in_service=True)
            return
        try:
            self._change(endpoint.name, lambda e: e.commit_update(self._clock.now()) if e.pending else None)
        except BaseException:
            await self._stop_fleet(fleet)  # the old fleet keeps serving; the update is tried again
            raise
        old = self.fleets.get(endpoint.key, {})
        self.fleets[endpoint.key] = fleet
        try:
            self.publish_route(endpoint.name)
            self.publish(endpoint.name, in_service=True)
            endlog.write(f"traffic moved to {pending.config_name}; draining the old instances")
        finally:
            await asyncio.gather(*(self._drain(endpoint.name, run.serving) for run in old.values()))
        endlog.write(f"endpoint {endpoint.name} is InService on {pending.config_name}")

    # scale -----------------------------------------------------------------------------------
    async def scale_up(self, name: str, variant: str, count: int) -> None:
        run = self.fleets.get(name.lower(), {}).get(variant)
        if run is None:
            return
        status = self._variant_status(name, variant, pending=False)
        try:
            await self._start_instances(name, run, count, status)
        except DeploymentError as exc:
            if is_environmental(exc):  # the host cannot act (disk full): the loop reports it and backs off
                raise
            run.failures += 1
            delay = restart_delay_s(run.failures + 1)
            run.retry_after = self._clock.monotonic() + delay
            self.endlog(name).write(f"starting {count} instance(s) of {variant} failed: {exc}; retry in {delay:.0f} s")
            if run.failures >= CRASH_LOOP_FAILURES:
                status(f"crash loop: {run.failures} failed starts; last: {exc}")
        else:
            self.publish_route(name)
        self._wake()

    async def scale_down(self, name: str, variant: str, group_ids: tuple[str, ...]) -> None:
        run = self.fleets.get(name.lower(), {}).get(variant)
        if run is None:
            return
        leaving = run.workers_of(set(group_ids))
        run.serving = [w for w in run.serving if w not in leaving]
        self.publish_route(name)
        await self._drain(name, leaving)
        self.endlog(name).write(f"stopped {len(set(group_ids))} instance(s) of {variant}")
        self._wake()

    async def _drain(self, name: str, workers: list[Worker]) -> None:
        """Let requests in flight on `workers` (already out of the route) finish, then stop them."""
        deadline = self._clock.monotonic() + DRAIN_TIMEOUT_S
        try:
            while any(self._admission.in_flight(w.instance_id) for w in workers):
                if self._clock.monotonic() >= deadline:
                    break
                await self._clock.sleep(0.05)
        finally:  # cancelled (delete, shutdown) or not, workers out of the route are stopped
            await self._stop_workers(workers)

    def reap(self, name: str, variant: str, exited: ExitedInstance) -> None:
        """An instance's worker exited: the whole instance leaves the route (a model copy alone cannot stand in
        for it); the planner replaces it after the variant's backoff."""
        run = self.fleets.get(name.lower(), {}).get(variant)
        if run is None:
            return
        group = run.workers_of({exited.group_id})
        record = next((self._launcher.failure(w) for w in group if w.instance_id == exited.instance_id), None)
        run.serving = [w for w in run.serving if w not in group]
        for worker in group:
            self._launcher.kill(worker)
        self._in_background(self._stop_workers(group))  # reaped, then the GPUs are free (not before)
        lost_node = record.lost_node if record is not None else ""
        if not lost_node or lost_node not in run.lost_nodes:  # a lost node counts once, not once per instance on it
            run.failures += 1
            run.retry_after = self._clock.monotonic() + restart_delay_s(run.failures)
        if lost_node:
            run.lost_nodes.add(lost_node)
        why = f": {record.reason}" if record is not None and record.reason else ""
        message = f"instance {exited.instance_id} exited with status {exited.exit_code}{why}; replacing it"
        log.warning("%s", message)
        self.endlog(name).write(message)
        if run.failures >= CRASH_LOOP_FAILURES:
            self._variant_status(name, variant, pending=False)(
                f"crash loop: {run.failures} instance failures in a row"
            )
        self.publish_route(name)

    # delete ----------------------------------------------------------------------------------
    async def delete(self, name: str) -> None:
        self._table.remove(name)
        await self._stop_fleet(self.fleets.pop(name.lower(), {}))
        self._records.endpoints.delete(name)
        log.info("endpoint %s deleted", name)

    async def stop_orphan(self, key: str) -> None:
        """A fleet whose endpoint record is gone."""
        self._table.remove(key)
        await self._stop_fleet(self.fleets.pop(key, {}))

    async def stop_all(self, grace_s: float = STOP_GRACE_S) -> None:
        """Every worker stopped: SIGTERM, SIGKILL after `grace_s`."""
        fleets = list(self.fleets.values())
        self.fleets.clear()
        await asyncio.gather(*(self._stop_fleet(fleet, grace_s) for fleet in fleets), *self._background)

    async def _stop_fleet(self, fleet: Fleet, grace_s: float = STOP_GRACE_S) -> None:
        await self._stop_workers([w for run in fleet.values() for w in run.serving], grace_s)

    async def _stop_workers(self, workers: list[Worker], grace_s: float = STOP_GRACE_S) -> None:
        await asyncio.gather(*(asyncio.to_thread(self._launcher.stop, w, grace_s) for w in workers))
        for group_id in {w.group_id for w in workers}:
            self._starter.release(group_id)

    # publishing ------------------------------------------------------------------------------
    def publish_route(self, name: str) -> None:
        """Give the router a fresh snapshot of the endpoint's fleet (weights from the record's desired ones)."""
        fleet = self.fleets.get(name.lower())
        endpoint = self._records.endpoints.get(name)
        if fleet is None or endpoint is None:
            return
        environment = endpoint.environment()
        weights = {s.name: s.desired_weight for s in endpoint.states}
        variants = tuple(
            VariantRoute(
                name=variant,
                weight=weights.get(variant, run.spec.variant.initial_weight),
                instances=tuple(InstanceRoute(w.instance_id, w.url, w.router_token) for w in run.serving),
            )
            for variant, run in fleet.items()
        )
        self._table.install(
            EndpointRoute(
                name=endpoint.name,
                variants=variants,
                log_group=f"/aws/sagemaker/Endpoints/{endpoint.name}",
                cache_mode=cache_mode(environment.get(CACHE_ENV)),
                cache_ttl_s=float(environment.get(CACHE_TTL_ENV, DEFAULT_CACHE_TTL_S)),
            )
        )

    def publish(self, name: str, *, in_service: bool) -> None:
        """Write current counts and weights (the route's weights are the record's desired ones); with
        `in_service`, the endpoint (back) to InService."""
        fleet = self.fleets.get(name.lower(), {})
        now = self._clock.now()

        def change(endpoint: Endpoint) -> Endpoint | None:
            if endpoint.status not in HOLDS_INSTANCES:
                return None
            observed = {
                variant: VariantObservation(
                    instances=len(run.groups()),
                    weight=_desired_weight(endpoint, variant, run),
                    image=run.spec.container.image,
                    settled=run.failures == 0 and not run.starting,
                )
                for variant, run in fleet.items()
            }
            updated = endpoint.with_observed(observed, now)
            if in_service and endpoint.status != EndpointStatus.IN_SERVICE and endpoint.pending is None:
                updated = updated.back_in_service(now)
            return None if updated == endpoint else updated

        updated = self._records.endpoints.update(name, change)
        if updated is not None and self._weights_changed(updated):
            self.publish_route(name)

    def _weights_changed(self, endpoint: Endpoint) -> bool:
        installed = self._table.get(endpoint.name)
        if installed is None:
            return False
        routed = {v.name: v.weight for v in installed.route.variants}
        return any(routed.get(s.name, s.desired_weight) != s.desired_weight for s in endpoint.states)

    def _variant_status(self, name: str, variant: str, *, pending: bool) -> Callable[[str], None]:
        def status(message: str) -> None:
            self._change(name, lambda e: _with_message(e, variant, message, self._clock.now(), pending))

        return status

    def _change(self, name: str, change: Callable[[Endpoint], Endpoint | None]) -> None:
        self._records.endpoints.update(name, change)


def _with_message(endpoint: Endpoint, variant: str, message: str, now: float, pending: bool) -> Endpoint | None:
    if endpoint.status == EndpointStatus.DELETING:
        return None
    updated = endpoint.with_variant_message(variant, message, now, pending=pending)
    return None if updated == endpoint else updated


def _desired_weight(endpoint: Endpoint, variant: str, run: VariantRun) -> float:
    state = endpoint.state(variant)
    return state.desired_weight if state is not None else run.spec.variant.initial_weight


def _desired(states: tuple[VariantState, ...], spec: VariantSpec) -> int:
    return next((s.desired_count for s in states if s.name == spec.name), spec.variant.initial_instance_count)


ENVIRONMENTAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE})


def is_environmental(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the host's trouble (disk full, read-only, out of files, the store
    refusing writes) rather than the model's: such failures are retried once the cause is gone."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreError) or (isinstance(seen, OSError) and seen.errno in ENVIRONMENTAL_ERRNOS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _failure_reason(exc: Exception, doing: str, name: str) -> str:
    if isinstance(exc, DeploymentError):
        return str(exc)
    log.error("%s %s failed", doing, name, exc_info=exc)
    return f"internal error while {doing}: {exc!r}"
