"""Starts each instance as a local worker process (`python -m modelhost.worker`) and stops it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from modelhost.contracts.worker import SPEC_ENV, WorkerSpec

log = logging.getLogger(__name__)

WORKER_MODULE = "modelhost.worker"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class WorkerHandle:
    spec: WorkerSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.spec.host}:{self.spec.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self) -> int | None:
        return self.process.poll()


class LocalProcessLauncher:
    """Runs workers as child processes of the server, output appended to one log file each."""

    def start(self, spec: WorkerSpec, env: dict[str, str], log_path: Path) -> WorkerHandle:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = {**env, SPEC_ENV: spec.to_json(), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=spec.model_dir,
                start_new_session=True,  # a Ctrl-C to the server's terminal must not kill workers mid-drain
            )
        log.info("started worker %s (pid %d, port %d)", spec.instance_id, process.pid, spec.port)
        return WorkerHandle(spec=spec, process=process, log_path=log_path)

    def kill(self, handle: WorkerHandle) -> None:
        """SIGKILL at once: the worker is hung (it stopped answering /ping)."""
        with contextlib.suppress(ProcessLookupError):
            handle.process.kill()

    def stop(self, handle: WorkerHandle, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (SageMaker's container stop semantics). Blocking."""
        process = handle.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        log.info("stopped worker %s (exit %s)", handle.spec.instance_id, process.returncode)


def kill_stale_worker(pid: int, grace_s: float = 5.0) -> bool:
    """Stop a worker left behind by a server that died; only a process running our worker module."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if WORKER_MODULE.encode() not in cmdline:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True
