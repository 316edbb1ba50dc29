"""FakeLauncher: the Launcher protocol without processes; tests decide who is healthy, who exits, who fails."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelhost.contracts.worker import FailureRecord
from modelhost.scheduler.launchers.base import LaunchRequest, Worker


@dataclass(slots=True)
class FakeWorker:
    request: LaunchRequest
    worker: Worker
    exit_code: int | None = None
    healthy: bool = True
    failure: FailureRecord | None = None
    stopped: bool = False


@dataclass(slots=True)
class StartFailure:
    """Workers of `model_name` exit at once with this record (e.g. a load failure)."""

    phase: str
    reason: str


class FakeLauncher:
    def __init__(self, log_root: Path) -> None:
        self.log_root = log_root
        self.workers: dict[str, FakeWorker] = {}
        self.start_failures: dict[str, StartFailure] = {}  # model name -> how its workers fail
        self.unhealthy_models: set[str] = set()  # workers of these models never answer /ping
        self.start_errors: dict[str, Exception] = {}  # model name -> what start() raises for it
        self.stale: list[str] = []  # what recover_stale reports
        self.recover_error: Exception | None = None
        self.started: list[LaunchRequest] = []

    # the protocol ----------------------------------------------------------------------------
    def log_dir(self, endpoint_name: str) -> Path:
        return self.log_root / endpoint_name.lower()

    def start(self, request: LaunchRequest) -> Worker:
        if request.model_name in self.start_errors:
            raise self.start_errors[request.model_name]
        self.started.append(request)
        worker = Worker(
            instance_id=request.instance_id,
            group_id=request.group_id,
            endpoint_name=request.endpoint_name,
            variant_name=request.variant_name,
            url=f"http://fake/{request.instance_id}",
            log_path=self.log_dir(request.endpoint_name) / request.log_name,
        )
        fake = FakeWorker(request, worker, healthy=request.model_name not in self.unhealthy_models)
        failure = self.start_failures.get(request.model_name)
        if failure is not None:
            fake.exit_code = 1
            fake.failure = FailureRecord(failure.phase, failure.reason)
        self.workers[request.instance_id] = fake
        return worker

    def poll(self, worker: Worker) -> int | None:
        return self.workers[worker.instance_id].exit_code

    async def ping(self, worker: Worker, timeout_s: float) -> bool:
        fake = self.workers[worker.instance_id]
        return fake.exit_code is None and fake.healthy and not fake.stopped

    def failure(self, worker: Worker) -> FailureRecord | None:
        return self.workers[worker.instance_id].failure

    def stop(self, worker: Worker, grace_s: float) -> None:
        fake = self.workers[worker.instance_id]
        fake.stopped = True
        if fake.exit_code is None:
            fake.exit_code = 0

    def kill(self, worker: Worker) -> None:
        fake = self.workers[worker.instance_id]
        if fake.exit_code is None:
            fake.exit_code = -9

    def pid(self, worker: Worker) -> int | None:
        return None  # no process: instance metrics have nothing to sample

    def recover_stale(self) -> list[str]:
        if self.recover_error is not None:
            raise self.recover_error
        stale, self.stale = self.stale, []
        return stale

    # for tests -------------------------------------------------------------------------------
    def running(self, endpoint_name: str | None = None) -> list[FakeWorker]:
        return [
            w
            for w in self.workers.values()
            if w.exit_code is None and (endpoint_name is None or w.request.endpoint_name == endpoint_name)
        ]

    def crash(self, instance_id: str, code: int = 137) -> None:
        self.workers[instance_id].exit_code = code

    def lose_node(self, instance_ids: list[str], node_id: str) -> None:
        """The Ray node these workers ran on died: each reads as exited -9 with the node's id in its record."""
        for instance_id in instance_ids:
            fake = self.workers[instance_id]
            fake.exit_code = -9
            fake.failure = FailureRecord("load", f"the Ray node {node_id} running the instance was lost", node_id)
