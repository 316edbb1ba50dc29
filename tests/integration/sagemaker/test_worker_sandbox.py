"""The worker sandbox and budgets, end to end: a model.py that looks around from inside its worker sees its own
model folder and scratch, not the data directory, the user's home, /etc's secrets or the server's processes,
and cannot write outside its scratch; a worker that allocates past its instance type's memory is stopped
by the kernel and the endpoint fails with that reason; MODELHOST_WORKER_SANDBOX=required without bwrap
stops the server with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhost.scheduler.launchers.budgets import detect_budgets
from tests.integration.server import ServerProcess, deploy, write_echo_model

HAVE_BWRAP = shutil.which("bwrap") is not None
pytestmark = pytest.mark.skipif(
    not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
)

LOOK_MODEL_PY = """
import json, os
from pathlib import Path
from djl_python import Output

def _try_write(path):
    try:
        Path(path).write_text("x")
        return True
    except OSError:
        return False

def _try_read(path):
    try:
        Path(path).read_bytes()
        return True
    except OSError:
        return False

def handle(inputs):
    if inputs.is_empty():
        return None
    probe = json.loads(inputs.get_as_bytes() or b"{}")
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return Output().add_as_json({
        "cwd": os.getcwd(),
        "home": os.environ.get("HOME"),
        "model_files": sorted(os.listdir(".")),
        "pids": pids,
        "paths_exist": {p: os.path.exists(p) for p in probe.get("exist", [])},
        "reads": {p: _try_read(p) for p in probe.get("read", [])},
        "writes": {p: _try_write(p) for p in probe.get("write", [])},
        "status": Path("/proc/self/status").read_text(),
    })
"""

HOG_MODEL_PY = """
from djl_python import Output

HOLD = []

def handle(inputs):
    if not HOLD:  # the first call (the load): take 6 GiB, past ml.t2.medium's 4 GiB
        for _ in range(6 * 16):
            HOLD.append(bytearray(64 * 1024 * 1024))
    if inputs.is_empty():
        return None
    return Output().add_as_json({"held": len(HOLD)})
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-home")


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(home).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def looked(server: ServerProcess, home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    sm, runtime = server.clients()
    folder = write_echo_model(tmp_path_factory.mktemp("look-data") / "look-model", model_py=LOOK_MODEL_PY)
    deploy(sm, "look", str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="look", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    probe = {
        "exist": [str(home / "modelhost.db"), str(home / "logs"), str(Path.home()), "/etc/shadow", str(folder)],
        "read": [str(home / "modelhost.db"), "/etc/shadow", "/etc/passwd", "/proc/1/environ"],
        "write": ["/tmp/scratch-file", "/usr/evil", str(home / "evil"), "model.py"],
    }
    body = runtime.invoke_endpoint(EndpointName="look", Body=json.dumps(probe).encode())["Body"].read()
    return dict(json.loads(body))


def test_the_worker_sees_its_model_folder_and_scratch_only(looked: dict[str, Any], home: Path) -> None:
    assert "model.py" in looked["model_files"]
    assert looked["home"] == "/tmp"
    exist = looked["paths_exist"]
    assert not exist[str(home / "modelhost.db")], "the data directory's store is out of view"
    assert not exist[str(home / "logs")], "other workers' logs are out of view"
    assert not exist["/etc/shadow"], "/etc holds only what programs need"
    reads = looked["reads"]
    assert reads == {str(home / "modelhost.db"): False, "/etc/shadow": False, "/etc/passwd": True,
                     "/proc/1/environ": True}  # fmt: skip  (pid 1 is the sandbox's own init, not the host's)


def test_the_worker_writes_only_its_scratch(looked: dict[str, Any], home: Path) -> None:
    writes = looked["writes"]
    assert writes["/tmp/scratch-file"] is True
    assert writes["/usr/evil"] is False
    assert writes["model.py"] is False, "the model folder is read-only"
    # the data directory is not there to write to: a home under /tmp lands in the worker's own scratch
    assert not (home / "evil").exists()


def test_the_worker_has_its_own_processes_and_no_capabilities(looked: dict[str, Any]) -> None:
    assert max(looked["pids"]) < 100, "a pid namespace of its own: the server's processes are not visible"
    status = dict(line.split(":\t", 1) for line in looked["status"].splitlines() if ":\t" in line)
    assert int(status["CapEff"].strip(), 16) == 0


def test_the_server_log_and_worker_log_say_how_workers_run(server: ServerProcess, looked: dict[str, Any]) -> None:
    worker_log = "".join(p.read_text() for p in (server.home / "logs" / "look").glob("alltraffic-*.log"))
    assert "workers run in a bubblewrap sandbox" in worker_log
    assert "budget memory" in worker_log


@pytest.mark.skipif(detect_budgets()[0] is None, reason="this host lets the server create no control groups")
def test_a_worker_past_its_memory_budget_is_stopped_and_reported(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sm, _ = server.clients()
    folder = write_echo_model(tmp_path_factory.mktemp("hog-data") / "hog-model", model_py=HOG_MODEL_PY)
    deploy(sm, "hog", str(folder), instance_type="ml.t2.medium")
    with pytest.raises(Exception):  # noqa: B017  (the waiter's WaiterError on Failed)
        sm.get_waiter("endpoint_in_service").wait(EndpointName="hog", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    described = sm.describe_endpoint(EndpointName="hog")
    assert described["EndpointStatus"] == "Failed"
    assert "more than its memory budget of 4.0 GiB (ml.t2.medium" in described["FailureReason"]


def test_required_sandbox_without_bwrap_refuses_to_start(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")  # a PATH with no bwrap on it
    env = {**os.environ, "PATH": str(bin_dir), "MODELHOST_WORKER_SANDBOX": "required"}
    env["MODELHOST_HOME"] = str(tmp_path / "h")
    done = subprocess.run(
        [sys.executable, "-m", "modelhost", "server", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "MODELHOST_WORKER_SANDBOX=required, but bubblewrap (bwrap) is not installed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "h" / "modelhost.db").exists()
