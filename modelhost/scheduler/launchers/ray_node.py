"""What runs on a Ray node for one worker: the model data fetched into the node's own content cache, its
requirements installed there, then `python -m modelhost.worker` started with the local launcher's environment
contract (the WorkerSpec in MODELHOST_WORKER_SPEC, SAGEMAKER_BIND_TO_PORT, CUDA_VISIBLE_DEVICES), so /ping,
/invocations and /metrics are the same worker's. Its output goes to a log file on the node that the server
reads in chunks (`read_log`) into the instance's log in its own logs folder.

There is no Ray in this module: ray_cluster.py wraps `NodeInstance` in an actor, and tests run it as plain code.
The node's folder (`node_dir`, MODELHOST_RAY_NODE_DIR on the server) holds:
    artifacts/        the content cache (storage/artifacts.py), one per node, never shared with the server
    packages/         requirements.txt installs
    run/<instance>/   the worker's failure record
    logs/<instance>.log
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from modelhost.contracts.worker import PHASE_DOWNLOAD, PHASE_LOAD, SPEC_ENV, FailureRecord
from modelhost.errors import DeploymentError
from modelhost.requirements import prepare_requirements
from modelhost.scheduler.launchers.base import LaunchRequest
from modelhost.scheduler.launchers.environment import worker_base_environment
from modelhost.scheduler.launchers.local_process import WORKER_MODULE, free_port, worker_spec
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits
from modelhost.storage.model_ids import deployment_refusal
from modelhost.storage.uris import LocalLocation
from modelhost.worker.properties import file_properties

log = logging.getLogger(__name__)

SETUP_FAILED = 1  # the exit status of an instance whose model data or requirements could not be prepared
LOG_CHUNK_BYTES = 1024 * 1024  # the most one read_log call returns


@dataclass(frozen=True, slots=True)
class NodeLaunch:
    """What the server sends to a node for one worker (pickled by Ray)."""

    request: LaunchRequest  # as the controller decided it; `node_data` says where the model data is
    host: str  # the address the worker listens on and the router reaches it at; "" = the node's Ray address
    node_dir: str  # this node's modelhost folder (see the module docstring)
    max_extract_bytes: int  # MODELHOST_MAX_EXTRACT_BYTES
    local_roots: tuple[str, ...] | None  # folders local model data may be read from on the node; None: anywhere
    allow_private_http: bool  # MODELHOST_ALLOW_PRIVATE_MODEL_DATA
    router_token: str  # the worker's per-launch secret (WorkerSpec.router_token)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where the worker of a NodeInstance serves, known before it is started."""

    url: str
    node_address: str  # the node's own address as Ray knows it
    gpu_ids: tuple[int, ...]  # the GPUs the cluster gave it (its CUDA_VISIBLE_DEVICES)
    node_id: str  # the node's Ray id


class NodeInstance:
    """One worker on this node: set up in a thread (`begin`), watched (`wait`, `exit_code`), stopped."""

    def __init__(self, launch: NodeLaunch, node_address: str, gpu_ids: tuple[int, ...], node_id: str = "") -> None:
        self._launch = launch
        self._node_address = node_address
        self._node_id = node_id
        self._gpu_ids = gpu_ids
        root = Path(launch.node_dir).expanduser()
        self._root = root
        self._run_dir = root / "run" / launch.request.instance_id
        self._log_path = root / "logs" / f"{launch.request.instance_id}.log"
        self._host = launch.host or node_address
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._failure: FailureRecord | None = None
        self._exit_code: int | None = None
        self._stopping = False
        self._done = threading.Event()
        self._lock = threading.Lock()

    # starting --------------------------------------------------------------------------------
    def begin(self) -> Placed:
        """Pick the worker's port and start preparing it in a thread; returns at once."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._port = free_port(self._host)
        gpus = f"; GPUs {','.join(str(g) for g in self._gpu_ids)}" if self._gpu_ids else ""
        self.note(f"on Ray node {self._node_id} ({self._node_address}){gpus}; serving at http://{self._host}:{self._port}")
        threading.Thread(target=self._set_up, name=f"setup {self._launch.request.instance_id}", daemon=True).start()
        return Placed(f"http://{self._host}:{self._port}", self._node_address, self._gpu_ids, self._node_id)

    def note(self, line: str) -> None:
        """A line in the instance log, marked as modelhost's own."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(self._log_path, "ab") as f:
            f.write(f"{stamp} [modelhost] {line}\n".encode())

    def _set_up(self) -> None:
        try:
            model_dir, packages_dir = self._prepare()
            with self._lock:
                if self._stopping:
                    self._finish(0)
                    return
                self._process = self._spawn(model_dir, packages_dir)
        except DeploymentError as exc:
            self.note(f"{exc.phase} failed: {exc.reason}")
            self._fail(FailureRecord(exc.phase, exc.reason))
            return
        except Exception as exc:  # a disk error, a bug: the instance fails with it rather than hang
            log.exception("setting up %s failed", self._launch.request.instance_id)
            self.note(f"setting up the worker failed: {exc!r}")
            self._fail(FailureRecord(PHASE_LOAD, f"setting up the worker on node {self._node_address} failed: {exc}"))
            return
        self._finish(self._process.wait())

    def _prepare(self) -> tuple[Path, Path | None]:
        """The model folder and the requirements' site folder on this node."""
        request = self._launch.request
        data = request.node_data
        if data is None:  # the server prepared it; only right when the server's disk is this node's
            return request.model_dir, request.packages_dir
        limits = DataLimits(
            local_roots=None if self._launch.local_roots is None else tuple(Path(r) for r in self._launch.local_roots),
            allow_private_http=self._launch.allow_private_http,
        )
        if data.source is None:
            model_dir = self._root / "empty-model"
            model_dir.mkdir(parents=True, exist_ok=True)
        else:
            if isinstance(data.source.location, LocalLocation) and not data.source.location.path.exists():
                raise DeploymentError(
                    PHASE_DOWNLOAD,
                    f"no file or folder at {data.source.location.path} on Ray node {self._node_address} "
                    f"({data.source.uri}): local model data must exist on every node that runs an instance; "
                    "use s3:// or https:// model data on a cluster",
                )
            self.note(f"fetching model data {data.source.uri} into this node's cache")
            cache = ArtifactCache(self._root / "artifacts", self._launch.max_extract_bytes, limits=limits)
            model_dir = cache.prepare(data.source, timeout_s=data.download_timeout_s, progress=self.note)
        refusal = deployment_refusal(file_properties(model_dir), request.environment, model_dir, limits.local_roots)
        if refusal is not None:
            raise DeploymentError(PHASE_LOAD, refusal)
        result = prepare_requirements(model_dir, self._root / "packages", self.note, timeout_s=data.install_timeout_s)
        return model_dir, result.packages_dir

    def _spawn(self, model_dir: Path, packages_dir: Path | None) -> subprocess.Popen[bytes]:
        request = replace(self._launch.request, model_dir=model_dir, packages_dir=packages_dir, gpu_ids=self._gpu_ids)
        spec = worker_spec(request, self._port, self._host, self._run_dir, self._launch.router_token, True)
        # the node's own environment through the allow-list (its PATH, its virtualenv), then the model's
        env = {**worker_base_environment(os.environ), **request.environment}
        env.update({SPEC_ENV: spec.to_json(), "PYTHONUNBUFFERED": "1", "SAGEMAKER_BIND_TO_PORT": str(self._port)})
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in self._gpu_ids)
        with open(self._log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=spec.model_dir,
                start_new_session=True,
            )
        self.note(f"started worker pid {process.pid}")
        return process

    def _fail(self, record: FailureRecord) -> None:
        self._failure = record
        self._finish(SETUP_FAILED)

    def _finish(self, code: int) -> None:
        self._exit_code = code
        self._done.set()

    # watching --------------------------------------------------------------------------------
    def wait(self) -> int:
        """Block until the worker has exited (or could not be set up); its exit status."""
        self._done.wait()
        return self._exit_code if self._exit_code is not None else -1

    def exit_code(self) -> int | None:
        return self._exit_code

    def failure(self) -> tuple[str, str] | None:
        """(phase, reason): why it could not serve, from the setup or the record the worker left."""
        record = self._failure or FailureRecord.read(self._run_dir / "failure.json")
        return None if record is None else (record.phase, record.reason)

    def read_log(self, offset: int) -> tuple[bytes, int]:
        """The instance log from `offset` (at most LOG_CHUNK_BYTES), and the offset after it."""
        try:
            with open(self._log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read(LOG_CHUNK_BYTES)
        except OSError:
            return b"", offset
        return chunk, offset + len(chunk)

    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # stopping --------------------------------------------------------------------------------
    def stop(self, grace_s: float) -> int | None:
        """SIGTERM, then SIGKILL after `grace_s`; a worker still being set up never starts. Its exit status."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        return process.returncode if process is not None else None

    def kill(self) -> None:
        with self._lock:
            self._stopping = True
            process = self._process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def discard(self) -> None:
        """Remove its run folder and log (the server has read the log)."""
        shutil.rmtree(self._run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self._log_path.unlink()

