"""Fixtures that start real `python -m modelhost.worker` processes on 127.0.0.1 for a temp model folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

from modelhost.contracts.worker import SPEC_ENV, FailureRecord, WorkerSpec
from modelhost.testing import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class RunningWorker:
    process: subprocess.Popen[bytes]
    url: str
    spec: WorkerSpec
    log_path: Path

    @property
    def failure(self) -> FailureRecord | None:
        assert self.spec.failure_path
        return FailureRecord.read(self.spec.failure_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {timeout_s} s:\n{self.log()}")

    def wait_exit(self, timeout_s: float = 20.0) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker still running after {timeout_s} s:\n{self.log()}") from None


class StartWorker(Protocol):
    def __call__(
        self,
        model_py: str | None,
        serving_properties: str | None = None,
        env: dict[str, str] | None = None,
        parent_pid: int | None = None,
    ) -> RunningWorker: ...


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    started: list[RunningWorker] = []

    def start(
        model_py: str | None,
        serving_properties: str | None = None,
        env: dict[str, str] | None = None,
        parent_pid: int | None = None,
    ) -> RunningWorker:
        index = len(started)
        model_dir = tmp_path / f"model{index}"
        model_dir.mkdir()
        if model_py is not None:
            (model_dir / "model.py").write_text(textwrap.dedent(model_py))
        if serving_properties is not None:
            (model_dir / "serving.properties").write_text(textwrap.dedent(serving_properties))
        port = free_port()
        spec = WorkerSpec(
            instance_id=f"test-{index}",
            endpoint_name="ep",
            variant_name="AllTraffic",
            model_name="m",
            model_dir=str(model_dir),
            port=port,
            failure_path=str(tmp_path / f"failure{index}.json"),
            parent_pid=parent_pid,
        )
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTION_", "SERVING_"))}
        child_env.pop("SAGEMAKER_BIND_TO_PORT", None)
        child_env.update(env or {})
        child_env[SPEC_ENV] = spec.to_json()
        child_env["PYTHONPATH"] = str(REPO_ROOT)
        log_path = tmp_path / f"worker{index}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelhost.worker"],
                env=child_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        worker = RunningWorker(process, f"http://127.0.0.1:{port}", spec, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=10)
