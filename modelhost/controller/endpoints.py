"""EndpointController: the control loop that makes running instances match the endpoints in the store.

Creating → InService or Failed; Updating (new counts or weights) → InService; Deleting → gone. An
instance that exits is replaced (with backoff; a crash loop is reported in the variant's status), and
the endpoint stays InService while any instance serves. Every status change is written to the store
first; the routing table follows. After a restart the store says what should run and the loop makes
it so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelhost.controller.instances import PING_TIMEOUT_S, EndpointLog, InstanceStarter, VariantPlan, ping
from modelhost.controller.scaling import CRASH_LOOP_FAILURES, decide_scale, restart_delay_s
from modelhost.errors import DeploymentError
from modelhost.router.cache import CACHE_ENV, CACHE_TTL_ENV, DEFAULT_CACHE_TTL_S, cache_mode
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.scheduler.launchers.local_process import LocalProcessLauncher, WorkerHandle, kill_stale_worker
from modelhost.settings import ServerSettings
from modelhost.store.sqlite import InstanceRow, SqliteStore

log = logging.getLogger(__name__)

KIND = "endpoint"
FAILURE_REASON_MAX = 1024
DRAIN_TIMEOUT_S = 60.0


@dataclass(slots=True)
class VariantRuntime:
    """What runs for one variant of a live endpoint."""

    plan: VariantPlan
    model_dir: Path
    packages_dir: Path | None
    route: VariantRoute  # the healthy instances the router may use (shared with the routing table)
    serving: list[WorkerHandle] = field(default_factory=list)  # healthy, oldest first
    starting: int = 0  # instances being started and health-checked
    next_index: int = 0  # numbers instance logs: <variant>-<n>.log
    failures: int = 0  # consecutive instance failures (exits, failed starts)
    retry_after: float = 0.0  # monotonic time before which no replacement starts


def group_of(handle: WorkerHandle) -> str:
    """The SageMaker instance a worker belongs to (workers are model copies of one instance)."""
    return handle.spec.group_id or handle.spec.instance_id


def groups(handles: list[WorkerHandle]) -> list[str]:
    """The instances `handles` make up, in the order they were started."""
    return list(dict.fromkeys(group_of(h) for h in handles))


def endpoint_route(name: str, fleet: dict[str, VariantRuntime]) -> EndpointRoute:
    """The router's view of a fleet; the result cache follows the models' MODELHOST_RESULT_CACHE settings."""
    environment: dict[str, str] = {}
    for runtime in fleet.values():
        environment.update(runtime.plan.container.get("Environment") or {})
    return EndpointRoute(
        name=name,
        variants=[v.route for v in fleet.values()],
        log_group=f"/aws/sagemaker/Endpoints/{name}",
        cache_mode=cache_mode(environment.get(CACHE_ENV)),
        cache_ttl_s=float(environment.get(CACHE_TTL_ENV, DEFAULT_CACHE_TTL_S)),
    )


class EndpointController:
    def __init__(
        self,
        store: SqliteStore,
        settings: ServerSettings,
        launcher: LocalProcessLauncher,
        starter: InstanceStarter,
        table: RoutingTable,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._settings = settings
        self._launcher = launcher
        self._starter = starter
        self._table = table
        self._now = now
        self._tasks: dict[str, asyncio.Task[None]] = {}  # endpoint key -> its deploy, scale or delete task
        self._live: dict[str, dict[str, VariantRuntime]] = {}  # endpoint key -> variant name -> runtime
        self._wake = asyncio.Event()
        self._stopping = False

    # lifecycle -------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """The control loop: reconcile every endpoint, then sleep until woken or the interval passes."""
        self._recover_stale_workers()
        health = asyncio.get_running_loop().create_task(self._watch_health())
        try:
            await self._control_loop()
        finally:
            health.cancel()

    async def _control_loop(self) -> None:
        while not self._stopping:
            try:
                self.reconcile_once()
            except Exception:  # the loop survives any single failure
                log.exception("reconcile failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.control_interval_s)

    async def shutdown(self) -> None:
        """Stop every worker (SIGTERM, then SIGKILL); the store keeps the desired state for the next start."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(self._stop_endpoint_workers(key) for key in list(self._live)))

    # reconcile -------------------------------------------------------------------------------
    def reconcile_once(self) -> None:
        for record in self._store.list(KIND):
            key = record["EndpointName"].lower()
            task = self._tasks.get(key)
            if task is not None and task.done():
                self._tasks.pop(key)
                task = None
            status = record["EndpointStatus"]
            if status == "Deleting":
                if task is not None and not getattr(task, "is_delete", False):
                    task.cancel()
                    task = None
                if task is None:
                    self._spawn(key, self._delete(record), is_delete=True)
            elif task is not None:
                continue  # one operation at a time per endpoint
            elif status == "Creating" or (status in ("InService", "Updating") and key not in self._live):
                self._spawn(key, self._deploy(record))
            elif status == "Updating" and "_pending" in record:
                self._spawn(key, self._update(record))
            elif status in ("InService", "Updating"):
                self._converge(record)

    def _spawn(self, key: str, coro: Any, is_delete: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.is_delete = is_delete  # type: ignore[attr-defined]
        self._tasks[key] = task

    # deploy ----------------------------------------------------------------------------------
    async def _deploy(self, record: dict[str, Any]) -> None:
        name = record["EndpointName"]
        key = name.lower()
        endlog = self._endlog(name)
        endlog.write(f"deploying endpoint {name} (status {record['EndpointStatus']})")
        desired = {s["VariantName"]: int(s["DesiredInstanceCount"]) for s in record["ProductionVariants"]}
        weights = {s["VariantName"]: float(s["DesiredWeight"]) for s in record["ProductionVariants"]}
        variants: dict[str, VariantRuntime] = {}
        self._live[key] = variants
        try:
            for snapshot in record["_deployment"]["variants"]:
                plan = VariantPlan.from_snapshot(name, snapshot, self._settings)
                status = self._variant_status(name, plan.variant_name)
                weight = weights.get(plan.variant_name, plan.weight)
                runtime = await self._prepare_variant(plan, weight, endlog, status)
                variants[plan.variant_name] = runtime
                count = desired.get(plan.variant_name, plan.instance_count)
                await self._start_instances(name, runtime, count, endlog, status)
        except asyncio.CancelledError:
            await self._stop_endpoint_workers(key)
            raise
        except DeploymentError as exc:
            endlog.write(f"deployment failed: {exc}")
            await self._stop_endpoint_workers(key)
            self._set_failed(name, str(exc))
            return
        except Exception as exc:
            log.exception("deploying %s failed", name)
            endlog.write(f"deployment failed: {exc!r}")
            await self._stop_endpoint_workers(key)
            self._set_failed(name, f"internal error while deploying: {exc!r}")
            return
        self._table.set(endpoint_route(name, variants))
        self._publish(name, variants, in_service=True)
        endlog.write(f"endpoint {name} is InService")

    def _variant_status(self, name: str, variant_name: str) -> Callable[[str], None]:
        return lambda message: self._set_variant_message(name, variant_name, message)

    async def _prepare_variant(
        self, plan: VariantPlan, weight: float, endlog: EndpointLog, status: Callable[[str], None]
    ) -> VariantRuntime:
        model_dir, packages_dir = await self._starter.prepare_model_dir(plan, status, endlog)
        route = VariantRoute(name=plan.variant_name, weight=weight)
        return VariantRuntime(plan=plan, model_dir=model_dir, packages_dir=packages_dir, route=route)

    async def _start_instances(
        self, name: str, runtime: VariantRuntime, count: int, endlog: EndpointLog, status: Callable[[str], None]
    ) -> None:
        """Start `count` workers and wait until each is healthy; they then join the variant's route."""
        plan = runtime.plan
        if count <= 0:
            return
        status(f"starting {count} instance(s)")
        handles: list[WorkerHandle] = []
        runtime.starting += count
        try:
            for _ in range(count):
                copies = self._starter.start_instance(plan, runtime.model_dir, runtime.packages_dir, runtime.next_index)
                runtime.next_index += 1
                handles.extend(copies)
                for handle in copies:
                    self._store.add_instance(
                        InstanceRow(handle.spec.instance_id, name.lower(), handle.pid, handle.spec.port, self._now())
                    )
                    endlog.write(f"started {handle.spec.instance_id} (pid {handle.pid}), log {handle.log_path}")
            await self._starter.wait_healthy(handles, plan, status)
        except BaseException:
            await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in handles))
            raise
        finally:
            runtime.starting -= count
        runtime.serving.extend(handles)
        runtime.route.instances.extend(InstanceRoute(h.spec.instance_id, h.url) for h in handles)
        runtime.failures = 0

    # update (blue/green) ---------------------------------------------------------------------
    async def _update(self, record: dict[str, Any]) -> None:
        """Bring up the new configuration beside the old, move traffic, then drain and stop the old fleet.

        If the new fleet fails, it is stopped and the endpoint stays InService on the old configuration,
        with the failure in FailureReason (SageMaker's rollback).
        """
        name = record["EndpointName"]
        key = name.lower()
        pending = record["_pending"]
        endlog = self._endlog(name)
        endlog.write(f"updating endpoint {name} to configuration {pending['EndpointConfigName']}")
        desired = {s["VariantName"]: int(s["DesiredInstanceCount"]) for s in pending["ProductionVariants"]}
        weights = {s["VariantName"]: float(s["DesiredWeight"]) for s in pending["ProductionVariants"]}
        fleet: dict[str, VariantRuntime] = {}
        try:
            for snapshot in pending["variants"]:
                plan = VariantPlan.from_snapshot(name, snapshot, self._settings)
                status = self._pending_status(name, plan.variant_name)
                runtime = await self._prepare_variant(plan, weights[plan.variant_name], endlog, status)
                fleet[plan.variant_name] = runtime
                await self._start_instances(name, runtime, desired[plan.variant_name], endlog, status)
        except asyncio.CancelledError:
            await self._stop_fleet(fleet)
            raise
        except Exception as exc:
            if not isinstance(exc, DeploymentError):
                log.exception("updating %s failed", name)
            endlog.write(f"update failed, rolling back to {record['EndpointConfigName']}: {exc}")
            await self._stop_fleet(fleet)
            self._finish_update(name, committed=False, reason=f"Update rolled back: {exc}")
            return
        old = self._live.get(key, {})
        self._live[key] = fleet
        self._table.set(endpoint_route(name, fleet))
        self._finish_update(name, committed=True, reason=None)
        self._publish(name, fleet, in_service=True)
        endlog.write(f"traffic moved to {pending['EndpointConfigName']}; draining the old instances")
        for runtime in old.values():
            await self._drain_and_stop(name, runtime, groups(runtime.serving))
        endlog.write(f"endpoint {name} is InService on {pending['EndpointConfigName']}")

    async def _stop_fleet(self, fleet: dict[str, VariantRuntime]) -> None:
        handles = [h for runtime in fleet.values() for h in runtime.serving]
        await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in handles))

    def _pending_status(self, name: str, variant_name: str) -> Callable[[str], None]:
        def status(message: str) -> None:
            def change(record: dict[str, Any]) -> dict[str, Any] | None:
                for summary in record.get("PendingDeploymentSummary", {}).get("ProductionVariants", []):
                    if summary["VariantName"] == variant_name:
                        summary["VariantStatus"] = [
                            {"Status": "Creating", "StatusMessage": message, "StartTime": self._now()}
                        ]
                return record

            self._store.update(KIND, name, change)

        return status

    def _finish_update(self, name: str, *, committed: bool, reason: str | None) -> None:
        now = self._now()

        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            pending = record.pop("_pending", None)
            record.pop("PendingDeploymentSummary", None)
            if pending is None or record["EndpointStatus"] != "Updating":
                return None
            if committed:
                record["EndpointConfigName"] = pending["EndpointConfigName"]
                record["ProductionVariants"] = pending["ProductionVariants"]
                record["_deployment"] = {**record["_deployment"], "variants": pending["variants"]}
                record.pop("FailureReason", None)
            else:
                record["FailureReason"] = (reason or "update failed")[:FAILURE_REASON_MAX]
                for summary in record["ProductionVariants"]:
                    summary.pop("VariantStatus", None)
            record["EndpointStatus"] = "InService"
            record["LastModifiedTime"] = now
            return record

        self._store.update(KIND, name, change)

    # converge (InService / Updating endpoints with running instances) -------------------------
    def _converge(self, record: dict[str, Any]) -> None:
        name = record["EndpointName"]
        key = name.lower()
        variants = self._live[key]
        self._reap_exited(name, variants)
        summaries = {s["VariantName"]: s for s in record["ProductionVariants"]}
        for variant_name, runtime in variants.items():
            summary = summaries.get(variant_name)
            if summary is None:
                continue
            runtime.route.weight = float(summary["DesiredWeight"])
            decision = decide_scale(int(summary["DesiredInstanceCount"]), groups(runtime.serving), runtime.starting)
            if decision.stop:
                self._spawn(key, self._drain_and_stop(name, runtime, list(decision.stop)))
                return
            if decision.start and time.monotonic() >= runtime.retry_after:
                self._spawn(key, self._scale_up(name, runtime, decision.start))
                return
        self._publish(name, variants, in_service=record["EndpointStatus"] == "Updating" and self._converged(record))

    def _converged(self, record: dict[str, Any]) -> bool:
        variants = self._live.get(record["EndpointName"].lower(), {})
        return all(
            len(groups(variants[s["VariantName"]].serving)) == int(s["DesiredInstanceCount"])
            for s in record["ProductionVariants"]
            if s["VariantName"] in variants
        )

    async def _scale_up(self, name: str, runtime: VariantRuntime, count: int) -> None:
        endlog = self._endlog(name)
        try:
            await self._start_instances(
                name, runtime, count, endlog, self._variant_status(name, runtime.plan.variant_name)
            )
        except DeploymentError as exc:
            runtime.failures += 1
            delay = restart_delay_s(runtime.failures + 1)
            runtime.retry_after = time.monotonic() + delay
            variant = runtime.plan.variant_name
            endlog.write(f"starting {count} instance(s) of {variant} failed: {exc}; retry in {delay:.0f} s")
            if runtime.failures >= CRASH_LOOP_FAILURES:
                self._set_variant_message(
                    name, runtime.plan.variant_name, f"crash loop: {runtime.failures} failed starts; last: {exc}"
                )
        self.wake()

    async def _drain_and_stop(self, name: str, runtime: VariantRuntime, group_ids: list[str]) -> None:
        """Take instances out of the route, let their in-flight requests finish, then stop them."""
        leaving = [h for h in runtime.serving if group_of(h) in group_ids]
        instance_ids = {h.spec.instance_id for h in leaving}
        routes = [r for r in runtime.route.instances if r.instance_id in instance_ids]
        runtime.route.instances = [r for r in runtime.route.instances if r.instance_id not in instance_ids]
        runtime.serving = [h for h in runtime.serving if h.spec.instance_id not in instance_ids]
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while any(r.in_flight for r in routes) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in leaving))
        self._endlog(name).write(f"stopped {len(leaving)} instance(s) of {runtime.plan.variant_name}")
        self.wake()

    def _reap_exited(self, name: str, variants: dict[str, VariantRuntime]) -> None:
        """Instances whose process exited leave the route at once; the next converge replaces them."""
        for runtime in variants.values():
            for handle in list(runtime.serving):
                code = handle.exit_code()
                if code is None or handle not in runtime.serving:
                    continue
                # the whole instance goes: a model copy alone cannot stand in for it
                group = [h for h in runtime.serving if group_of(h) == group_of(handle)]
                gone = {h.spec.instance_id for h in group}
                runtime.serving = [h for h in runtime.serving if h.spec.instance_id not in gone]
                runtime.route.instances = [r for r in runtime.route.instances if r.instance_id not in gone]
                for other in group:
                    if other is not handle:
                        self._launcher.kill(other)
                    self._store.remove_instance(other.spec.instance_id)
                self._starter.release(group_of(handle))
                runtime.failures += 1
                runtime.retry_after = time.monotonic() + restart_delay_s(runtime.failures)
                message = f"instance {handle.spec.instance_id} exited with status {code}; replacing it"
                log.warning("%s", message)
                self._endlog(name).write(message)
                if runtime.failures >= CRASH_LOOP_FAILURES:
                    self._set_variant_message(
                        name, runtime.plan.variant_name, f"crash loop: {runtime.failures} instance failures in a row"
                    )

    async def _watch_health(self) -> None:
        """Ping every serving instance; one that fails `health_failures` pings in a row is killed, and the
        control loop replaces it like any instance that exits."""
        failures: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=PING_TIMEOUT_S) as client:
            while not self._stopping:
                await asyncio.sleep(self._settings.health_interval_s)
                handles = [h for fleet in self._live.values() for rt in fleet.values() for h in rt.serving]
                results = await asyncio.gather(*(ping(client, h) for h in handles))
                for handle, healthy in zip(handles, results, strict=True):
                    key = handle.spec.instance_id
                    failures[key] = 0 if healthy else failures.get(key, 0) + 1
                    if failures[key] >= self._settings.health_failures and handle.exit_code() is None:
                        log.warning("instance %s failed %d health checks; replacing it", key, failures[key])
                        self._endlog(handle.spec.endpoint_name).write(
                            f"instance {key} stopped answering /ping; replacing it"
                        )
                        self._launcher.kill(handle)
                        failures.pop(key, None)
                self.wake()

    # delete ----------------------------------------------------------------------------------
    async def _delete(self, record: dict[str, Any]) -> None:
        name = record["EndpointName"]
        self._table.remove(name)
        await self._stop_endpoint_workers(name.lower())
        self._store.delete(KIND, name)
        log.info("endpoint %s deleted", name)

    # workers ---------------------------------------------------------------------------------
    async def _stop_endpoint_workers(self, key: str) -> None:
        variants = self._live.pop(key, {})
        handles = [h for runtime in variants.values() for h in runtime.serving]
        await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in handles))

    def _stop_worker(self, handle: WorkerHandle) -> None:
        self._launcher.stop(handle)
        self._starter.release(group_of(handle))
        self._store.remove_instance(handle.spec.instance_id)

    def _recover_stale_workers(self) -> None:
        """Workers recorded by a previous server process (e.g. after kill -9) are stopped; the loop restarts them."""
        for row in self._store.instances():
            if kill_stale_worker(row.pid):
                log.info("stopped worker %s left by a previous server (pid %d)", row.instance_id, row.pid)
            self._store.remove_instance(row.instance_id)

    def _endlog(self, name: str) -> EndpointLog:
        return EndpointLog(self._starter.log_dir(name) / "endpoint.log")

    # status ----------------------------------------------------------------------------------
    def _set_variant_message(self, name: str, variant_name: str, message: str) -> None:
        now = self._now()

        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            for summary in record["ProductionVariants"]:
                if summary["VariantName"] != variant_name:
                    continue
                current = summary.get("VariantStatus") or [{"Status": "Updating", "StartTime": now}]
                if current[0].get("StatusMessage") == message:
                    return None
                current[0]["StatusMessage"] = message
                summary["VariantStatus"] = current
            return record

        self._store.update(KIND, name, change)

    def _publish(self, name: str, variants: dict[str, VariantRuntime], *, in_service: bool) -> None:
        """Write current counts and weights; with `in_service`, the endpoint (back) to InService."""
        now = self._now()

        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            if record["EndpointStatus"] not in ("Creating", "InService", "Updating"):
                return None
            before = repr(record)
            for summary in record["ProductionVariants"]:
                runtime = variants.get(summary["VariantName"])
                if runtime is None:
                    continue
                summary["CurrentInstanceCount"] = len(groups(runtime.serving))
                summary["CurrentWeight"] = runtime.route.weight
                image = runtime.plan.container.get("Image", "")
                if image and "DeployedImages" not in summary:
                    deployed = {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": now}
                    summary["DeployedImages"] = [deployed]
                if in_service or (runtime.failures == 0 and summary.get("VariantStatus") and not runtime.starting):
                    summary.pop("VariantStatus", None)
            if in_service and record["EndpointStatus"] != "InService" and "_pending" not in record:
                record["EndpointStatus"] = "InService"
                record["LastModifiedTime"] = now
                record.pop("FailureReason", None)
            return None if repr(record) == before else record

        self._store.update(KIND, name, change)

    def _set_failed(self, name: str, reason: str) -> None:
        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            if record["EndpointStatus"] == "Deleting":
                return None
            record["EndpointStatus"] = "Failed"
            record["FailureReason"] = reason[:FAILURE_REASON_MAX]
            record["LastModifiedTime"] = self._now()
            for summary in record["ProductionVariants"]:
                summary["CurrentInstanceCount"] = 0
                summary.pop("VariantStatus", None)
            return record

        self._store.update(KIND, name, change)
        self._table.remove(name)
        self._live.pop(name.lower(), None)
