"""A real `modelhost server` process for tests: started on a free loopback port, stopped by the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from modelhost.testing import free_port


class ServerProcess:
    def __init__(
        self,
        home: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        scheme: str = "http",
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.args = args  # more `modelhost server` options
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> ServerProcess:
        """Start the server and wait until its health check says ok."""
        self.start_process()
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/_modelhost/health", timeout=1, verify=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def start_process(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelhost",
                    "server",
                    "--port",
                    str(self.port),
                    "--home",
                    str(self.home),
                    "--log-level",
                    "info",
                    *self.args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def clients(self, region: str = "us-east-1") -> tuple[Any, Any]:
        session = boto3.session.Session(
            aws_access_key_id="AKIDTEST", aws_secret_access_key="secret", region_name=region
        )
        config = Config(retries={"max_attempts": 1}, read_timeout=300)
        return (
            session.client("sagemaker", endpoint_url=self.url, config=config),
            session.client("sagemaker-runtime", endpoint_url=self.url, config=config),
        )


ECHO_MODEL_PY = """
import json, os, time
from djl_python import Input, Output

loaded = None

def handle(inputs: Input):
    global loaded
    if loaded is None:
        loaded = dict(inputs.get_properties())
    if inputs.is_empty():
        return None
    if inputs.get_property("fail") == "yes":
        raise ValueError("asked to fail")
    body = inputs.get_as_string()
    out = Output()
    out.add_property("Content-Type", "application/json")
    out.add_property("X-Amzn-SageMaker-Custom-Attributes", "echoed=1")
    return out.add_as_json({
        "echo": body,
        "content_type": inputs.get_property("Content-Type"),
        "custom": inputs.get_property("greeting"),
        "init_properties": loaded,
        "env": os.environ.get("ECHO_ENV"),
        "worker": int(os.environ["SAGEMAKER_BIND_TO_PORT"]),
    })
"""


def write_echo_model(folder: Path, properties: str = "engine=Python\n", model_py: str = ECHO_MODEL_PY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "serving.properties").write_text(properties)
    (folder / "model.py").write_text(model_py)
    return folder


def deploy(
    sm: Any,
    name: str,
    model_data: str,
    *,
    instance_type: str = "ml.m5.large",
    count: int = 1,
    environment: dict[str, str] | None = None,
    startup_timeout: int | None = None,
    image: str | None = None,
) -> None:
    container: dict[str, Any] = {
        "Image": image or "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118",
        "ModelDataUrl": model_data,
    }
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=name, PrimaryContainer=container)
    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": instance_type,
        "InitialInstanceCount": count,
    }
    if startup_timeout:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = startup_timeout
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def wait_status(sm: Any, name: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll until the endpoint leaves Creating/Updating; returns the last description."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] not in ("Creating", "Updating") or time.monotonic() > deadline:
            return desc
        time.sleep(0.3)


class SteadyLoad:
    """Invokes the endpoint in a loop from two threads and records every answer or error."""

    def __init__(self, runtime: Any, name: str) -> None:
        self.runtime, self.name = runtime, name
        self.versions: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = self.runtime.invoke_endpoint(EndpointName=self.name, Body=b"x")["Body"].read()
                self.versions.append(json.loads(body)["env"])
            except Exception as exc:
                self.errors.append(repr(exc))

    def __enter__(self) -> SteadyLoad:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def worker_pids(home: Path) -> list[int]:
    """The host pids of the workers a server on `home` runs (the launcher's run records). Inside the sandbox a
    worker's own os.getpid() is its namespace's pid, so tests that signal workers take the pid from here."""
    pids = []
    for record in sorted((home / "run").glob("*/worker.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            pids.append(int(json.loads(record.read_text())["pid"]))
    return pids


def worker_process(home: Path, port: int) -> int:
    """The host pid of the worker serving on `port` (the model's own interpreter, inside its sandbox when it
    has one): what a test signals to kill, stop or hang one worker."""
    from modelhost.contracts.worker import SPEC_ENV
    from modelhost.scheduler.launchers.sandbox import sandboxed_child

    prefix = f"{SPEC_ENV}=".encode()
    for pid in worker_pids(home):
        with contextlib.suppress(OSError, ValueError, KeyError, StopIteration):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            spec = json.loads(next(e for e in environ if e.startswith(prefix))[len(prefix) :])
            if int(spec["port"]) == port:
                return sandboxed_child(pid) or pid
    raise LookupError(f"no worker of {home} serves on port {port}")
