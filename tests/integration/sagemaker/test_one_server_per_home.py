"""One server per data directory: a second `modelhost server` on a home in use exits at once and changes nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from modelhost.testing import free_port
from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model


def invoke_pid(runtime: Any, name: str) -> int:
    body = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=b"{}")["Body"].read()
    return int(json.loads(body)["worker"])


def home_files(home: Path) -> dict[str, tuple[int, int]]:
    """Every file under the home (but the servers' own log) with its size and modification time."""
    return {
        str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in home.rglob("*")
        if p.is_file() and p.name != "server.log" and not p.name.endswith((".log", "-shm", "-wal"))
    }


def test_a_second_server_on_the_same_home_exits_and_the_first_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home).start()
    try:
        sm, runtime = first.clients()
        deploy(sm, "solo", str(write_echo_model(tmp_path / "echo")))
        assert wait_status(sm, "solo")["EndpointStatus"] == "InService"
        worker_pid = invoke_pid(runtime, "solo")
        before = home_files(home)

        second_port = free_port()
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "modelhost", "server", "--port", str(second_port), "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert time.monotonic() - started < 30
        assert first.process is not None
        expected = (
            f"error: another modelhost server (pid {first.process.pid}, port {first.port}) is using {home}; "
            "stop it or start this one with --home DIR"
        )
        assert second.stderr.strip().splitlines()[-1] == expected
        assert "Traceback" not in second.stderr

        assert invoke_pid(runtime, "solo") == worker_pid  # same worker, still answering
        assert sm.describe_endpoint(EndpointName="solo")["EndpointStatus"] == "InService"
        assert home_files(home) == before  # no store opened, nothing rewritten
    finally:
        first.stop()


def test_after_kill_9_a_new_server_takes_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home).start()
    first.stop(sig=signal.SIGKILL)
    assert (home / "server.lock").exists()  # left behind, but nobody holds it

    second = ServerProcess(home).start(timeout_s=60)
    try:
        assert second.process is not None
        recorded = json.loads((home / "server.lock").read_text())
        assert (recorded["pid"], recorded["port"]) == (second.process.pid, second.port)
        assert second.clients()[0].list_endpoints()["Endpoints"] == []
    finally:
        second.stop()
