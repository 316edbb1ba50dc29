"""Bringing up one variant's instances: model data, requirements, worker processes, health checks."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modelhost import ids
from modelhost.contracts.worker import (
    PHASE_DOWNLOAD,
    PHASE_HEALTH_CHECK,
    PHASE_LOAD,
    PHASE_PLACEMENT,
    FailureRecord,
    WorkerSpec,
)
from modelhost.errors import DeploymentError
from modelhost.registry import referenced_model_ids
from modelhost.requirements import prepare_requirements
from modelhost.scheduler.catalog import gpu_count
from modelhost.scheduler.inventory import Inventory
from modelhost.scheduler.launchers.local_process import LocalProcessLauncher, WorkerHandle, free_port
from modelhost.scheduler.placement import InsufficientCapacity, model_copies, place
from modelhost.settings import ServerSettings
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.uris import parse_model_data_url, parse_s3_data_source
from modelhost.worker.properties import ServingProperties, build_serving_properties

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0  # SageMaker's per-ping timeout


@dataclass(frozen=True, slots=True)
class VariantPlan:
    """What the controller needs of one production variant (from the endpoint's snapshot)."""

    endpoint_name: str
    variant_name: str
    model_name: str
    instance_type: str
    instance_count: int
    weight: float  # InitialVariantWeight
    container: dict[str, Any]  # the model's PrimaryContainer
    download_timeout_s: float
    startup_timeout_s: float

    @classmethod
    def from_snapshot(cls, endpoint_name: str, variant: dict[str, Any], settings: ServerSettings) -> VariantPlan:
        model = variant["Model"]
        container = model.get("PrimaryContainer") or model["Containers"][0]
        return cls(
            endpoint_name=endpoint_name,
            variant_name=variant["VariantName"],
            model_name=model["ModelName"],
            instance_type=variant["InstanceType"],
            instance_count=int(variant.get("InitialInstanceCount", 1)),
            weight=float(variant.get("InitialVariantWeight", 1.0)),
            container=container,
            download_timeout_s=float(
                variant.get("ModelDataDownloadTimeoutInSeconds") or settings.default_download_timeout_s
            ),
            startup_timeout_s=float(
                variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or settings.default_startup_timeout_s
            ),
        )


class EndpointLog:
    """The endpoint's own log (controller messages), beside its instances' logs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} [modelhost] {message}\n")


def last_log_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log, for a FailureReason."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 16384))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""


class InstanceStarter:
    """Prepares a variant's model data and starts and health-checks its worker processes."""

    def __init__(
        self,
        settings: ServerSettings,
        launcher: LocalProcessLauncher,
        artifacts: ArtifactCache,
        worker_environment: Callable[..., dict[str, str]],
        inventory: Inventory,
    ) -> None:
        self._settings = settings
        self._launcher = launcher
        self._artifacts = artifacts
        self._worker_environment = worker_environment
        self._inventory = inventory
        self._gpus: dict[str, tuple[int, ...]] = {}  # instance id -> the GPUs it holds

    def log_dir(self, endpoint_name: str) -> Path:
        return self._settings.logs_dir / endpoint_name.lower()

    async def prepare_model_dir(
        self, plan: VariantPlan, status: Callable[[str], None], endlog: EndpointLog
    ) -> tuple[Path, Path | None]:
        """Download and extract the model data, then install its requirements. Raises DeploymentError."""
        container = plan.container
        try:
            if container.get("ModelDataUrl"):
                source = parse_model_data_url(container["ModelDataUrl"])
            elif container.get("ModelDataSource", {}).get("S3DataSource"):
                source = parse_s3_data_source(container["ModelDataSource"]["S3DataSource"])
            else:
                source = None
        except ValueError as exc:
            raise DeploymentError(PHASE_DOWNLOAD, str(exc)) from exc

        def progress(message: str) -> None:
            status(message)
            endlog.write(message)

        if source is None:
            model_dir = self._settings.run_dir / "empty-model"
            model_dir.mkdir(parents=True, exist_ok=True)
        else:
            endlog.write(f"fetching model data for variant {plan.variant_name}")
            model_dir = await asyncio.to_thread(
                self._artifacts.prepare, source, timeout_s=plan.download_timeout_s, progress=progress
            )
        status("installing requirements")
        result = await asyncio.to_thread(prepare_requirements, model_dir, self._settings.packages_dir, endlog.write)
        return model_dir, result.packages_dir

    def start_instance(
        self, plan: VariantPlan, model_dir: Path, packages_dir: Path | None, index: int
    ) -> list[WorkerHandle]:
        """Place one instance and start its workers: one per model copy (several when the instance has more
        GPUs than option.tensor_parallel_degree). Raises DeploymentError (placement) when it cannot run."""
        in_use = [gpu for gpus in self._gpus.values() for gpu in gpus]
        model_env = {str(k): str(v) for k, v in (plan.container.get("Environment") or {}).items()}
        properties = _serving_properties(model_dir, model_env)
        try:
            placement = place(plan.instance_type, self._inventory, in_use, strict=self._settings.strict_instance_types)
            tp = properties.tensor_parallel_degree if properties else None
            blocks = model_copies(plan.instance_type, placement.gpu_ids, tp)
        except InsufficientCapacity as exc:
            raise DeploymentError(PHASE_PLACEMENT, str(exc)) from exc
        group_id = f"{plan.endpoint_name.lower()}-{plan.variant_name.lower()}-{index}-{ids.short_id()}"
        env = self._worker_environment(dict(os.environ), model_ids=_model_ids(model_dir, model_env, properties))
        env.update(model_env)
        env["MODELHOST_CPU_THREADS"] = str(max(1, placement.cpu_threads // len(blocks)))
        env["MODELHOST_MEMORY_BUDGET_BYTES"] = str(placement.memory_bytes // len(blocks))
        handles = []
        for copy, gpus in enumerate(blocks):
            suffix = f"-{copy}" if len(blocks) > 1 else ""
            log_path = self.log_dir(plan.endpoint_name) / f"{plan.variant_name.lower()}-{index}{suffix}.log"
            if placement.cpu_fallback:
                self._note_cpu_fallback(plan, log_path)
            handles.append(
                self._start_copy(plan, model_dir, packages_dir, f"{group_id}-c{copy}", group_id, gpus, env, log_path)
            )
        self._gpus[group_id] = placement.gpu_ids
        return handles

    def _start_copy(
        self,
        plan: VariantPlan,
        model_dir: Path,
        packages_dir: Path | None,
        instance_id: str,
        group_id: str,
        gpu_ids: tuple[int, ...],
        env: dict[str, str],
        log_path: Path,
    ) -> WorkerHandle:
        run_dir = self._settings.run_dir / instance_id
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = WorkerSpec(
            instance_id=instance_id,
            endpoint_name=plan.endpoint_name,
            variant_name=plan.variant_name,
            model_name=plan.model_name,
            model_dir=str(model_dir),
            port=free_port(),
            instance_type=plan.instance_type,
            image=str(plan.container.get("Image", "")),
            gpu_ids=list(gpu_ids),
            packages_dir=str(packages_dir) if packages_dir else None,
            failure_path=str(run_dir / "failure.json"),
            parent_pid=os.getpid(),
            group_id=group_id,
        )
        copy_env = {**env, "SAGEMAKER_BIND_TO_PORT": str(spec.port)}
        if not spec.gpu_ids:
            copy_env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU instance does not see the host's GPUs
        return self._launcher.start(spec, copy_env, log_path)

    def _note_cpu_fallback(self, plan: VariantPlan, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(
                f"[modelhost] {plan.instance_type} asks for {gpu_count(plan.instance_type)} GPU(s) and this host "
                f"has {len(self._inventory.gpus)}: running the instance on CPU (set MODELHOST_STRICT_INSTANCE_TYPES=1 "
                "to refuse instead).\n"
            )

    def release(self, group_id: str) -> None:
        """The instance's workers are gone: its GPUs are free again."""
        self._gpus.pop(group_id, None)

    async def wait_healthy(self, handles: list[WorkerHandle], plan: VariantPlan, status: Callable[[str], None]) -> None:
        """Every worker must answer /ping with 200 within the startup window, else DeploymentError."""
        deadline = time.monotonic() + plan.startup_timeout_s
        pending = list(handles)
        async with httpx.AsyncClient(timeout=PING_TIMEOUT_S) as client:
            while pending:
                for handle in list(pending):
                    self._raise_if_exited(handle, plan)
                    if await ping(client, handle):
                        pending.remove(handle)
                        log.info("instance %s is healthy", handle.spec.instance_id)
                if not pending:
                    return
                status(f"waiting for {len(pending)} of {len(handles)} instance(s) to pass the health check")
                if time.monotonic() > deadline:
                    handle = pending[0]
                    tail = last_log_line(handle.log_path)
                    raise DeploymentError(
                        PHASE_HEALTH_CHECK,
                        f"The primary container for production variant {plan.variant_name} did not pass the "
                        f"ping health check within {plan.startup_timeout_s:.0f} s "
                        f"(ContainerStartupHealthCheckTimeoutInSeconds). Last log line: {tail or '(none)'}",
                    )
                await asyncio.sleep(self._settings.ping_interval_s)

    @staticmethod
    def _raise_if_exited(handle: WorkerHandle, plan: VariantPlan) -> None:
        code = handle.exit_code()
        if code is None:
            return
        record = FailureRecord.read(handle.spec.failure_path) if handle.spec.failure_path else None
        if record is not None and record.reason:
            raise DeploymentError(record.phase or PHASE_LOAD, record.reason)
        tail = last_log_line(handle.log_path)
        raise DeploymentError(
            PHASE_LOAD,
            f"the worker for variant {plan.variant_name} exited with status {code} before it was healthy. "
            f"Last log line: {tail or '(none)'}",
        )


def _serving_properties(model_dir: Path, model_env: dict[str, str]) -> ServingProperties | None:
    """The model folder's serving.properties with its environment forms; None when they are malformed
    (the worker reports that as a load failure)."""
    path = model_dir / "serving.properties"
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    try:
        return build_serving_properties(text, model_env)
    except ValueError:
        return None


def _model_ids(model_dir: Path, model_env: dict[str, str], properties: ServingProperties | None) -> list[str]:
    """The model ids a deployment names: option.model_id (or its env forms) and from_pretrained("…") in model.py."""
    found = [properties.model_id] if properties and properties.model_id else []
    handler = model_dir / "model.py"
    if handler.is_file():
        found.extend(referenced_model_ids(handler.read_text(encoding="utf-8", errors="replace")))
    return found


async def ping(client: httpx.AsyncClient, handle: WorkerHandle) -> bool:
    """Whether the worker answers GET /ping with 200 (within the client's timeout)."""
    try:
        response = await client.get(f"{handle.url}/ping")
    except httpx.HTTPError:
        return False
    return response.status_code == 200
