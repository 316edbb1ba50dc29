"""LocalProcessLauncher: each worker is a child process (`python -m modelhost.worker`) on this host.

It picks the worker's loopback port, its log file (`logs/<endpoint>/<variant>-<n>.log`), its run folder
(`run/<instance id>/`: the failure record and `worker.json`, what a later server needs to find it again), and
its device environment (`CUDA_VISIBLE_DEVICES`). A worker left running by a server that died is stopped by
the next server on the same home only if its environment carries the spec this home recorded for it: a pid
alone proves nothing, pids are reused. Each launch gets a fresh random router token (WorkerSpec.router_token)
that the worker requires on invocations, so only the router, which learns it from the Worker, reaches it.

Where the server's Confinement has them, a worker runs in its bubblewrap sandbox (sandbox.py; its scratch
folder is `run/<instance id>/tmp`) and in control groups holding its memory and CPU budgets (budgets.py); a
worker the kernel stopped for going past its memory gets that as its failure reason.
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
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelhost.contracts.worker import PHASE_LOAD, PING_PATH, SPEC_ENV, FailureRecord, WorkerSpec
from modelhost.scheduler.launchers.base import LaunchRequest, Worker
from modelhost.scheduler.launchers.budgets import Budget, WorkerGroup, join_command
from modelhost.scheduler.launchers.confinement import UNCONFINED, Confinement
from modelhost.scheduler.launchers.sandbox import SCRATCH_MOUNT, sandboxed_child

log = logging.getLogger(__name__)

WORKER_MODULE = "modelhost.worker"
RECORD_NAME = "worker.json"  # in the worker's run folder: its pid and instance id


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class _Started:
    process: subprocess.Popen[bytes]
    group: WorkerGroup | None  # its control groups (None: budgets not enforced)
    budget: Budget
    instance_type: str
    sandboxed: bool


class LocalProcessLauncher:
    def __init__(
        self, run_dir: Path, logs_dir: Path, host: str = "127.0.0.1", confinement: Confinement = UNCONFINED
    ) -> None:
        self._run_dir = run_dir
        self._logs_dir = logs_dir
        self._host = host
        self._confinement = confinement
        self._started: dict[str, _Started] = {}
        self._client: httpx.AsyncClient | None = None

    def log_dir(self, endpoint_name: str) -> Path:
        return self._logs_dir / endpoint_name.lower()

    def start(self, request: LaunchRequest) -> Worker:
        run_dir = self._run_dir / request.instance_id
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir(request.endpoint_name) / request.log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sandbox = self._confinement.sandbox
        token = secrets.token_urlsafe(32)
        spec = worker_spec(request, free_port(self._host), self._host, run_dir, token, sandbox is None)
        env = {**request.environment, SPEC_ENV: spec.to_json(), "PYTHONUNBUFFERED": "1"}
        env["SAGEMAKER_BIND_TO_PORT"] = str(spec.port)
        # the one place the worker's devices are decided: the GPUs it was placed on, or none at all
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in request.gpu_ids)
        command = [sys.executable, "-m", WORKER_MODULE]
        if sandbox is not None:
            scratch = run_dir / "tmp"
            scratch.mkdir(exist_ok=True)
            env["HOME"] = env["TMPDIR"] = str(SCRATCH_MOUNT)  # the user's home is out of view
            layout = sandbox.layout(model_dir=request.model_dir, packages_dir=request.packages_dir, run_dir=run_dir,
                                    scratch=scratch, env=env, gpus=bool(request.gpu_ids))  # fmt: skip
            command = sandbox.command(layout, command)
        budget = Budget(memory_bytes=request.memory_bytes, cpus=request.cpu_threads)
        group, budget_line = self._group(request.instance_id, budget)
        command = join_command(group.procs_files if group else (), command)
        with open(log_path, "ab") as log_file:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for note in (*request.notes, *self._confinement.notes, budget_line):
                log_file.write(f"{stamp} [modelhost] {note}\n".encode())
            log_file.flush()
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=spec.model_dir,
                start_new_session=True,  # a Ctrl-C to the server's terminal must not kill workers mid-drain
            )
        sandboxed = sandbox is not None
        self._started[request.instance_id] = _Started(process, group, budget, request.instance_type, sandboxed)
        try:
            (run_dir / RECORD_NAME).write_text(json.dumps({"pid": process.pid, "instance_id": request.instance_id}))
        except OSError:
            process.kill()  # a worker nobody could find again after a crash must not run
            process.wait()
            self._forget(request.instance_id)
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
            memory_bytes=request.memory_bytes,
            gpu_ids=tuple(request.gpu_ids),
        )

    def _group(self, instance_id: str, budget: Budget) -> tuple[WorkerGroup | None, str]:
        """The worker's control groups and the log line saying what is enforced."""
        shown = f"memory {budget.memory_bytes / 1024**3:.1f} GiB, {budget.cpus} CPU(s)"
        budgets = self._confinement.budgets
        if budgets is None:
            return None, f"budget {shown}: not enforced on this host"
        try:
            return budgets.create(instance_id, budget), f"budget {shown}: enforced with {budgets.describe()}"
        except OSError as exc:
            return None, f"budget {shown}: not enforced (the control group could not be made: {exc.strerror})"

    def _forget(self, instance_id: str) -> _Started | None:
        started = self._started.pop(instance_id, None)
        if started is not None and started.group is not None and self._confinement.budgets is not None:
            self._confinement.budgets.remove(started.group)
        return started

    def pid(self, worker: Worker) -> int | None:
        """The worker's process (inside its sandbox, the model's own interpreter, not bwrap's)."""
        started = self._started.get(worker.instance_id)
        if started is None:
            return None
        return sandboxed_child(started.process.pid) if started.sandboxed else started.process.pid

    def poll(self, worker: Worker) -> int | None:
        started = self._started.get(worker.instance_id)
        return -1 if started is None else started.process.poll()

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
        """Why the worker exited: the kernel stopped it for its memory budget, or the record it left."""
        started = self._started.get(worker.instance_id)
        budgets = self._confinement.budgets
        group = started.group if started is not None else None
        if started is not None and group is not None and budgets is not None and budgets.oom_killed(group):
            return FailureRecord(PHASE_LOAD, memory_exceeded_reason(started.budget, started.instance_type))
        return FailureRecord.read(self._run_dir / worker.instance_id / "failure.json")

    def kill(self, worker: Worker) -> None:
        started = self._started.get(worker.instance_id)
        if started is not None:  # bwrap's own SIGKILL takes the sandbox with it (--die-with-parent)
            with contextlib.suppress(ProcessLookupError):
                started.process.kill()

    def stop(self, worker: Worker, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (SageMaker's container stop semantics). Blocking.
        In a sandbox SIGTERM goes to the worker itself: bwrap would die of it and take the worker with it."""
        started = self._started.get(worker.instance_id)
        if started is not None:
            process = started.process
            if process.poll() is None:
                target = sandboxed_child(process.pid) if started.sandboxed else process.pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target or process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
            log.info("stopped worker %s (exit %s)", worker.instance_id, process.returncode)
            self._forget(worker.instance_id)
        shutil.rmtree(self._run_dir / worker.instance_id, ignore_errors=True)

    def recover_stale(self) -> list[str]:
        """Workers recorded in run/ by a previous server on this home (e.g. after kill -9) are stopped."""
        stopped: list[str] = []
        if not self._run_dir.is_dir():
            return stopped
        for record_path in sorted(self._run_dir.glob(f"*/{RECORD_NAME}")):
            instance_id = record_path.parent.name
            if instance_id in self._started:
                continue  # ours
            try:
                pid = int(json.loads(record_path.read_text())["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                pid = 0
            if pid and stop_if_ours(pid, instance_id):
                log.info("stopped worker %s left by a previous server (pid %d)", instance_id, pid)
                stopped.append(instance_id)
            shutil.rmtree(record_path.parent, ignore_errors=True)
        if self._confinement.budgets is not None:
            self._confinement.budgets.remove_stale(keep=set(self._started))
        return stopped


def memory_exceeded_reason(budget: Budget, instance_type: str) -> str:
    return (
        f"the worker used more than its memory budget of {budget.memory_bytes / 1024**3:.1f} GiB "
        f"({instance_type}'s memory on this host) and was stopped by the kernel; use an instance type with more "
        "memory or a smaller model"
    )


def worker_spec(
    request: LaunchRequest, port: int, host: str, run_dir: Path, router_token: str, watch_parent: bool
) -> WorkerSpec:
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
        parent_pid=os.getpid() if watch_parent else None,  # a sandbox has its own pids; bwrap dies with us
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
