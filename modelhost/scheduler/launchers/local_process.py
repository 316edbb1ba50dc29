"""LocalProcessLauncher: each worker is a child process (`python -m modelhost.worker`) on this host.

It picks the worker's loopback port, its log file (`logs/<endpoint>/<variant>-<n>.log`), its run folder
(`run/<instance id>/`: the failure record and `worker.json`, what a later server needs to find it again), and
its device environment (`CUDA_VISIBLE_DEVICES`). A worker left running by a server that died is stopped by
the next server on the same home only if its environment carries the spec this home recorded for it: a pid
alone proves nothing, pids are reused. Each launch gets a fresh random router token (WorkerSpec.router_token)
that the worker requires on invocations, so only the router, which learns it from the Worker, reaches it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelhost.contracts.worker import PING_PATH, SPEC_ENV, FailureRecord, WorkerSpec
from modelhost.scheduler.launchers.base import LaunchRequest, Worker

log = logging.getLogger(__name__)

WORKER_MODULE = "modelhost.worker"
RECORD_NAME = "worker.json"  # in the worker's run folder: its pid and instance id


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalProcessLauncher:
    def __init__(self, run_dir: Path, logs_dir: Path, host: str = "127.0.0.1") -> None:
        self._run_dir = run_dir
        self._logs_dir = logs_dir
        self._host = host
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._client: httpx.AsyncClient | None = None

    def log_dir(self, endpoint_name: str) -> Path:
        return self._logs_dir / endpoint_name.lower()

    def start(self, request: LaunchRequest) -> Worker:
        run_dir = self._run_dir / request.instance_id
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir(request.endpoint_name) / request.log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        spec = _spec(request, free_port(self._host), self._host, run_dir, secrets.token_urlsafe(32))
        env = {**request.environment, SPEC_ENV: spec.to_json(), "PYTHONUNBUFFERED": "1"}
        env["SAGEMAKER_BIND_TO_PORT"] = str(spec.port)
        # the one place the worker's devices are decided: the GPUs it was placed on, or none at all
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in request.gpu_ids)
        with open(log_path, "ab") as log_file:
            for note in request.notes:
                log_file.write(f"[modelhost] {note}\n".encode())
            log_file.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=spec.model_dir,
                start_new_session=True,  # a Ctrl-C to the server's terminal must not kill workers mid-drain
            )
        self._processes[request.instance_id] = process
        try:
            (run_dir / RECORD_NAME).write_text(json.dumps({"pid": process.pid, "instance_id": request.instance_id}))
        except OSError:
            process.kill()  # a worker nobody could find again after a crash must not run
            process.wait()
            self._processes.pop(request.instance_id, None)
            raise
        log.info("started worker %s (pid %d, port %d)", request.instance_id, process.pid, spec.port)
        return Worker(
            instance_id=request.instance_id,
            group_id=request.group_id,
            endpoint_name=request.endpoint_name,
            variant_name=request.variant_name,
            url=f"http://{self._host}:{spec.port}",
            log_path=log_path,
            router_token=spec.router_token,
        )

    def pid(self, worker: Worker) -> int | None:
        process = self._processes.get(worker.instance_id)
        return None if process is None else process.pid

    def poll(self, worker: Worker) -> int | None:
        process = self._processes.get(worker.instance_id)
        return -1 if process is None else process.poll()

    async def ping(self, worker: Worker, timeout_s: float) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient()
        try:
            response = await self._client.get(f"{worker.url}{PING_PATH}", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def failure(self, worker: Worker) -> FailureRecord | None:
        return FailureRecord.read(self._run_dir / worker.instance_id / "failure.json")

    def kill(self, worker: Worker) -> None:
        process = self._processes.get(worker.instance_id)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def stop(self, worker: Worker, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (SageMaker's container stop semantics). Blocking."""
        process = self._processes.pop(worker.instance_id, None)
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
            log.info("stopped worker %s (exit %s)", worker.instance_id, process.returncode)
        shutil.rmtree(self._run_dir / worker.instance_id, ignore_errors=True)

    def recover_stale(self) -> list[str]:
        """Workers recorded in run/ by a previous server on this home (e.g. after kill -9) are stopped."""
        stopped: list[str] = []
        if not self._run_dir.is_dir():
            return stopped
        for record_path in sorted(self._run_dir.glob(f"*/{RECORD_NAME}")):
            instance_id = record_path.parent.name
            if instance_id in self._processes:
                continue  # ours
            try:
                pid = int(json.loads(record_path.read_text())["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                pid = 0
            if pid and stop_if_ours(pid, instance_id):
                log.info("stopped worker %s left by a previous server (pid %d)", instance_id, pid)
                stopped.append(instance_id)
            shutil.rmtree(record_path.parent, ignore_errors=True)
        return stopped


def _spec(request: LaunchRequest, port: int, host: str, run_dir: Path, router_token: str) -> WorkerSpec:
    return WorkerSpec(
        instance_id=request.instance_id,
        endpoint_name=request.endpoint_name,
        variant_name=request.variant_name,
        model_name=request.model_name,
        model_dir=str(request.model_dir),
        port=port,
        host=host,
        instance_type=request.instance_type,
        image=request.image,
        gpu_ids=list(request.gpu_ids),
        packages_dir=str(request.packages_dir) if request.packages_dir else None,
        failure_path=str(run_dir / "failure.json"),
        parent_pid=os.getpid(),
        group_id=request.group_id,
        cpu_threads=request.cpu_threads,
        memory_bytes=request.memory_bytes,
        tensor_parallel_degree=request.tensor_parallel_degree,
        router_token=router_token,
    )


def carries_spec(pid: int, instance_id: str) -> bool:
    """Whether process `pid` is the worker this home started as `instance_id` (its environment says so)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    prefix = f"{SPEC_ENV}=".encode()
    for entry in environ:
        if entry.startswith(prefix):
            try:
                return bool(json.loads(entry[len(prefix) :])["instance_id"] == instance_id)
            except (ValueError, KeyError, TypeError):
                return False
    return False


def stop_if_ours(pid: int, instance_id: str, grace_s: float = 5.0) -> bool:
    """Stop a worker a dead server left behind, only if it is that worker; True when it was."""
    if not carries_spec(pid, instance_id):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not carries_spec(pid, instance_id):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
