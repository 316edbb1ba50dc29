"""EndpointController: brings endpoints from Creating to InService or Failed, and tears them down.

Every status change is written to the store first; the routing table follows. After a restart the
store says what should run and `recover()` makes it so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from modelhost.controller.instances import EndpointLog, InstanceStarter, VariantPlan
from modelhost.errors import DeploymentError
from modelhost.router.table import EndpointRoute, InstanceRoute, RoutingTable, VariantRoute
from modelhost.scheduler.launchers.local_process import LocalProcessLauncher, WorkerHandle, kill_stale_worker
from modelhost.settings import ServerSettings
from modelhost.store.sqlite import InstanceRow, SqliteStore

log = logging.getLogger(__name__)

KIND = "endpoint"
FAILURE_REASON_MAX = 1024


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
        self._tasks: dict[str, asyncio.Task[None]] = {}  # endpoint key -> its deploy or delete task
        self._workers: dict[str, list[WorkerHandle]] = {}  # endpoint key -> running workers
        self._wake = asyncio.Event()
        self._stopping = False

    # lifecycle -------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """The control loop: reconcile every endpoint, then sleep until woken or the interval passes."""
        self._recover_stale_workers()
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
        handles = [h for hs in self._workers.values() for h in hs]
        await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in handles))
        self._workers.clear()

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
            elif task is None and (
                status == "Creating" or (status == "InService" and key not in self._workers)
            ):
                self._spawn(key, self._deploy(record))
            elif status == "InService":
                self._drop_dead_workers(record["EndpointName"], key)

    def _spawn(self, key: str, coro: Any, is_delete: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.is_delete = is_delete  # type: ignore[attr-defined]
        self._tasks[key] = task

    # deploy ----------------------------------------------------------------------------------
    async def _deploy(self, record: dict[str, Any]) -> None:
        name = record["EndpointName"]
        key = name.lower()
        endlog = EndpointLog(self._starter.log_dir(name) / "endpoint.log")
        endlog.write(f"deploying endpoint {name} (status {record['EndpointStatus']})")
        routes: list[VariantRoute] = []
        try:
            for variant in record["_deployment"]["variants"]:
                plan = VariantPlan.from_snapshot(name, variant, self._settings)
                routes.append(await self._bring_up(plan, endlog))
        except asyncio.CancelledError:
            await self._stop_workers(key)
            raise
        except DeploymentError as exc:
            endlog.write(f"deployment failed: {exc}")
            await self._stop_workers(key)
            self._set_failed(name, str(exc))
            return
        except Exception as exc:
            log.exception("deploying %s failed", name)
            endlog.write(f"deployment failed: {exc!r}")
            await self._stop_workers(key)
            self._set_failed(name, f"internal error while deploying: {exc!r}")
            return
        self._table.set(
            EndpointRoute(name=name, variants=routes, log_group=f"/aws/sagemaker/Endpoints/{name}")
        )
        self._set_in_service(name, routes)
        endlog.write(f"endpoint {name} is InService")

    async def _bring_up(self, plan: VariantPlan, endlog: EndpointLog) -> VariantRoute:
        def status(message: str) -> None:
            self._set_variant_message(plan.endpoint_name, plan.variant_name, message)

        model_dir, packages_dir = await self._starter.prepare_model_dir(plan, status, endlog)
        status(f"starting {plan.instance_count} instance(s)")
        key = plan.endpoint_name.lower()
        handles: list[WorkerHandle] = []
        for index in range(plan.instance_count):
            handle = self._starter.start_worker(plan, model_dir, packages_dir, index)
            handles.append(handle)
            self._workers.setdefault(key, []).append(handle)
            self._store.add_instance(
                InstanceRow(handle.spec.instance_id, key, handle.pid, handle.spec.port, self._now())
            )
            endlog.write(
                f"started instance {handle.spec.instance_id} (pid {handle.pid}), log {handle.log_path}"
            )
        await self._starter.wait_healthy(handles, plan, status)
        instances = [InstanceRoute(h.spec.instance_id, h.url) for h in handles]
        return VariantRoute(name=plan.variant_name, weight=plan.weight, instances=instances)

    # delete ----------------------------------------------------------------------------------
    async def _delete(self, record: dict[str, Any]) -> None:
        name = record["EndpointName"]
        self._table.remove(name)
        await self._stop_workers(name.lower())
        self._store.delete(KIND, name)
        log.info("endpoint %s deleted", name)

    # workers ---------------------------------------------------------------------------------
    async def _stop_workers(self, key: str) -> None:
        handles = self._workers.pop(key, [])
        await asyncio.gather(*(asyncio.to_thread(self._stop_worker, h) for h in handles))

    def _stop_worker(self, handle: WorkerHandle) -> None:
        self._launcher.stop(handle)
        self._store.remove_instance(handle.spec.instance_id)

    def _drop_dead_workers(self, name: str, key: str) -> None:
        for handle in list(self._workers.get(key, [])):
            code = handle.exit_code()
            if code is not None:
                log.warning("instance %s exited with status %s", handle.spec.instance_id, code)
                self._table.drop_instance(name, handle.spec.instance_id)
                self._workers[key].remove(handle)
                self._store.remove_instance(handle.spec.instance_id)

    def _recover_stale_workers(self) -> None:
        """Workers recorded by a previous server process (e.g. after kill -9) are stopped; the loop restarts them."""
        for row in self._store.instances():
            if kill_stale_worker(row.pid):
                log.info("stopped worker %s left by a previous server (pid %d)", row.instance_id, row.pid)
            self._store.remove_instance(row.instance_id)

    # status ----------------------------------------------------------------------------------
    def _set_variant_message(self, name: str, variant_name: str, message: str) -> None:
        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            for summary in record["ProductionVariants"]:
                if summary["VariantName"] == variant_name and summary.get("VariantStatus"):
                    if summary["VariantStatus"][0].get("StatusMessage") == message:
                        return None
                    summary["VariantStatus"][0]["StatusMessage"] = message
            return record

        self._store.update(KIND, name, change)

    def _set_in_service(self, name: str, routes: list[VariantRoute]) -> None:
        counts = {r.name: len(r.instances) for r in routes}
        now = self._now()

        def change(record: dict[str, Any]) -> dict[str, Any] | None:
            if record["EndpointStatus"] not in ("Creating", "InService"):
                return None
            images = {
                v["VariantName"]: (v["Model"].get("PrimaryContainer") or v["Model"]["Containers"][0]).get(
                    "Image", ""
                )
                for v in record["_deployment"]["variants"]
            }
            for summary in record["ProductionVariants"]:
                summary["CurrentInstanceCount"] = counts.get(summary["VariantName"], 0)
                summary.pop("VariantStatus", None)
                image = images.get(summary["VariantName"])
                if image and "DeployedImages" not in summary:
                    summary["DeployedImages"] = [
                        {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": now}
                    ]
            record.pop("FailureReason", None)
            if record["EndpointStatus"] != "InService":
                record["EndpointStatus"] = "InService"
                record["LastModifiedTime"] = self._now()
            return record

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
