"""Bringing up one variant's instances: placement, one launch request per model copy, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from modelhost import ids
from modelhost.clock import Clock
from modelhost.contracts.worker import PHASE_HEALTH_CHECK, PHASE_LOAD, PHASE_PLACEMENT
from modelhost.controller.endpoint_log import last_log_line
from modelhost.controller.preparation import PreparedModel
from modelhost.errors import DeploymentError
from modelhost.registry import referenced_model_ids
from modelhost.resources.endpoint import VariantSpec
from modelhost.scheduler.catalog import gpu_count
from modelhost.scheduler.inventory import GpuLedger, Inventory
from modelhost.scheduler.launchers.base import Launcher, LaunchRequest, Worker
from modelhost.scheduler.launchers.environment import worker_base_environment
from modelhost.scheduler.placement import InsufficientCapacity, Placement, model_copies, place
from modelhost.worker.properties import ServingProperties, build_serving_properties

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0  # SageMaker's per-ping timeout
WorkerEnvironment = Callable[..., dict[str, str]]


class InstanceStarter:
    """Places instances, starts their workers through the launcher and waits until they are healthy."""

    def __init__(
        self,
        launcher: Launcher,
        inventory: Inventory,
        ledger: GpuLedger | None,
        worker_environment: WorkerEnvironment,
        clock: Clock,
        *,
        strict: bool = False,
        ping_interval_s: float = 0.5,
        base_environment: dict[str, str] | None = None,
    ) -> None:
        self._launcher = launcher
        self._inventory = inventory
        self._ledger = ledger  # None: devices are assigned where the instance runs (a Ray cluster); `inventory`
        # is then one node's resources, what one instance is sized against
        self._worker_environment = worker_environment
        self._clock = clock
        self._strict = strict
        self._ping_interval_s = ping_interval_s
        self._base_environment = base_environment

    async def start_instance(
        self, endpoint_name: str, spec: VariantSpec, prepared: PreparedModel, index: int
    ) -> list[Worker]:
        """Place one instance and start its workers: one per model copy (several when the instance has more
        GPUs than option.tensor_parallel_degree). Raises DeploymentError (placement) when it cannot run.
        Placement is decided on the event loop (no two decisions interleave); the launcher's start, which may
        wait for a cluster to place the workers, runs in a thread."""
        model_env = dict(spec.container.environment)
        properties = serving_properties(prepared.model_dir, model_env)
        tp = properties.tensor_parallel_degree if properties else None
        if tp is None and model_env.get("SM_NUM_GPUS", "").strip().isdigit():  # TGI's form of the degree
            tp = int(model_env["SM_NUM_GPUS"])
        try:
            in_use = self._ledger.in_use() if self._ledger is not None else ()
            placement = place(spec.instance_type, self._inventory, in_use, strict=self._strict)
            blocks = model_copies(spec.instance_type, placement.gpu_ids, tp)
        except InsufficientCapacity as exc:
            raise DeploymentError(PHASE_PLACEMENT, str(exc)) from exc
        group_id = f"{endpoint_name.lower()}-{spec.name.lower()}-{index}-{ids.short_id()}"
        # the allow-list of the server's environment, never all of it (no keys, tokens or passwords)
        base = worker_base_environment(os.environ if self._base_environment is None else self._base_environment)
        env = self._worker_environment(base, model_ids=model_ids(prepared.model_dir, model_env, properties))
        env.update(model_env)
        notes = (self._cpu_fallback_note(spec.instance_type),) if placement.cpu_fallback else ()
        if self._ledger is not None:
            self._ledger.allocate(group_id, placement.gpu_ids)
        workers: list[Worker] = []
        try:
            for copy, gpus in enumerate(blocks):
                suffix = f"-{copy}" if len(blocks) > 1 else ""
                request = _launch_request(
                    endpoint_name, spec, prepared, placement, len(blocks), gpus, env, notes,
                    instance_id=f"{group_id}-c{copy}", group_id=group_id,
                    log_name=f"{spec.name.lower()}-{index}{suffix}.log", copy_index=copy,
                )  # fmt: skip
                workers.append(await self._launch(request))
        except BaseException as exc:  # OSError (disk full, limits), ValueError (a NUL in the environment), …
            for worker in workers:
                await asyncio.to_thread(self._launcher.stop, worker, 0.0)
            self.release(group_id)
            if isinstance(exc, InsufficientCapacity):  # the cluster found no node for it in time
                raise DeploymentError(PHASE_PLACEMENT, str(exc)) from exc
            if not isinstance(exc, Exception):
                raise
            raise DeploymentError(PHASE_LOAD, f"the worker could not be started: {exc}") from exc
        return workers

    async def _launch(self, request: LaunchRequest) -> Worker:
        """The launcher's start in a thread; cancelled meanwhile, the worker it still starts is stopped."""
        task = asyncio.ensure_future(asyncio.to_thread(self._launcher.start, request))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                worker = await task
                await asyncio.to_thread(self._launcher.stop, worker, 0.0)
            raise

    def _cpu_fallback_note(self, instance_type: str) -> str:
        where = "this host has" if self._ledger is not None else "the cluster's largest node has"
        return (
            f"{instance_type} asks for {gpu_count(instance_type)} GPU(s) and {where} "
            f"{len(self._inventory.gpus)}: running the instance on CPU (set MODELHOST_STRICT_INSTANCE_TYPES=1 to "
            "refuse instead)."
        )

    def release(self, group_id: str) -> None:
        """The instance's workers are gone: its GPUs are free again."""
        if self._ledger is not None:
            self._ledger.release(group_id)

    async def wait_healthy(
        self,
        workers: list[Worker],
        spec: VariantSpec,
        startup_timeout_s: float,
        status: Callable[[str], None],
        preparation_s: float = 0.0,
    ) -> None:
        """Every worker must answer /ping with 200 within the startup window, else DeploymentError.
        `preparation_s` comes first: the deadlines of a node that fetches and installs the model itself."""
        deadline = self._clock.monotonic() + preparation_s + startup_timeout_s
        pending = list(workers)
        while pending:
            for worker in list(pending):
                self._raise_if_exited(worker, spec)
                if await self._launcher.ping(worker, PING_TIMEOUT_S):
                    pending.remove(worker)
                    log.info("instance %s is healthy", worker.instance_id)
            if not pending:
                return
            status(f"waiting for {len(pending)} of {len(workers)} instance(s) to pass the health check")
            if self._clock.monotonic() > deadline:
                tail = last_log_line(pending[0].log_path)
                raise DeploymentError(
                    PHASE_HEALTH_CHECK,
                    f"The primary container for production variant {spec.name} did not pass the "
                    f"ping health check within {startup_timeout_s:.0f} s "
                    f"(ContainerStartupHealthCheckTimeoutInSeconds). Last log line: {tail or '(none)'}",
                )
            await self._clock.sleep(self._ping_interval_s)

    def _raise_if_exited(self, worker: Worker, spec: VariantSpec) -> None:
        code = self._launcher.poll(worker)
        if code is None:
            return
        record = self._launcher.failure(worker)
        if record is not None and record.reason:
            raise DeploymentError(record.phase or PHASE_LOAD, record.reason)
        tail = last_log_line(worker.log_path)
        raise DeploymentError(
            PHASE_LOAD,
            f"the worker for variant {spec.name} exited with status {code} before it was healthy. "
            f"Last log line: {tail or '(none)'}",
        )


def _launch_request(
    endpoint_name: str,
    spec: VariantSpec,
    prepared: PreparedModel,
    placement: Placement,
    copies: int,
    gpus: tuple[int, ...],
    env: dict[str, str],
    notes: tuple[str, ...],
    *,
    instance_id: str,
    group_id: str,
    log_name: str,
    copy_index: int,
) -> LaunchRequest:
    cpu_threads = max(1, placement.cpu_threads // copies)
    return LaunchRequest(
        instance_id=instance_id,
        group_id=group_id,
        endpoint_name=endpoint_name,
        variant_name=spec.name,
        model_name=spec.model.name,
        instance_type=spec.instance_type,
        image=spec.container.image,
        model_dir=prepared.model_dir,
        packages_dir=prepared.packages_dir,
        gpu_ids=gpus,
        cpu_threads=cpu_threads,
        memory_bytes=placement.memory_bytes // copies,
        tensor_parallel_degree=len(gpus) or None,  # a copy's GPUs are exactly its degree (model_copies)
        environment=env,
        log_name=log_name,
        notes=notes,
        node_data=prepared.node_data,
        copies=copies,
        copy_index=copy_index,
    )


def serving_properties(model_dir: Path, model_env: dict[str, str]) -> ServingProperties | None:
    """The model folder's serving.properties with its environment forms; None when they are malformed
    (the worker reports that as a load failure)."""
    path = model_dir / "serving.properties"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    try:
        return build_serving_properties(text, model_env)
    except ValueError:
        return None


def model_ids(model_dir: Path, model_env: dict[str, str], properties: ServingProperties | None) -> list[str]:
    """The model ids a deployment names: option.model_id (or its env forms) and from_pretrained("…") in model.py."""
    found = [properties.model_id] if properties and properties.model_id else []
    handler = model_dir / "model.py"
    if handler.is_file():
        found.extend(referenced_model_ids(handler.read_text(encoding="utf-8", errors="replace")))
    return found
