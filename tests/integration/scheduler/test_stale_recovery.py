"""After a crash, the next server stops only the workers this home started: a pid alone proves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhost.contracts.worker import SPEC_ENV
from modelhost.scheduler.launchers.local_process import RECORD_NAME, LocalProcessLauncher


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def sleeper(started: list[subprocess.Popen[bytes]], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    started.append(process)
    return process


def record(run_dir: Path, instance_id: str, pid: int) -> None:
    (run_dir / instance_id).mkdir(parents=True)
    (run_dir / instance_id / RECORD_NAME).write_text(json.dumps({"pid": pid, "instance_id": instance_id}))


def test_only_workers_carrying_this_homes_spec_are_stopped(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    run_dir = tmp_path / "run"
    ours = sleeper(sleepers, {SPEC_ENV: json.dumps({"instance_id": "ep-a-0-c0"})})
    other_home = sleeper(sleepers, {SPEC_ENV: json.dumps({"instance_id": "ep-b-0-c0"})})
    reused_pid = sleeper(sleepers, {})  # an unrelated process that got a recorded worker's pid
    record(run_dir, "ep-a-0-c0", ours.pid)
    record(run_dir, "ep-b-9-c0", other_home.pid)  # recorded here, but the process is someone else's worker
    record(run_dir, "ep-c-0-c0", reused_pid.pid)
    record(run_dir, "ep-d-0-c0", 999_999_999)  # long gone

    stopped = LocalProcessLauncher(run_dir, tmp_path / "logs").recover_stale()

    assert stopped == ["ep-a-0-c0"]
    assert ours.wait(timeout=10) is not None
    assert other_home.poll() is None and reused_pid.poll() is None
    assert sorted(p.name for p in run_dir.iterdir()) == []  # the records are cleaned up either way
