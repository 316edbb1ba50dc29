"""The control plane is never wedged, never silently dead, never stuck: a blocking model-data read, a restart
while Updating, a full disk at restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, wait_status, worker_pids, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 90}


def health(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.url}/_modelhost/health", timeout=5)


def test_a_fifo_as_model_data_fails_at_once_and_can_be_deleted(tmp_path: Path) -> None:
    fifo = tmp_path / "model.tar.gz"
    os.mkfifo(fifo)  # open() for reading blocks until someone writes: a hung mount behaves the same
    server = ServerProcess(tmp_path / "home", env={"MODELHOST_DOWNLOAD_TIMEOUT_S": "3"}).start()
    try:
        sm, _ = server.clients()
        started = time.monotonic()
        deploy(sm, "fifo", str(fifo))
        desc = wait_status(sm, "fifo", timeout_s=30)
        assert desc["EndpointStatus"] == "Failed", desc
        assert time.monotonic() - started < 20
        # a FIFO is refused without being opened; a read that blocks anyway ends at the download deadline
        # (tests/unit/controller/test_preparation.py)
        assert desc["FailureReason"] == f"download failed: {fifo} is not a regular file or folder"
        assert health(server).status_code == 200  # a failed deployment is not a broken control plane
        sm.delete_endpoint(EndpointName="fifo")
        sm.get_waiter("endpoint_deleted").wait(EndpointName="fifo", WaiterConfig=FAST)
        stop_started = time.monotonic()
    finally:
        server.stop()
    assert time.monotonic() - stop_started < 15  # the abandoned read does not hold the server at exit
    assert "Application shutdown complete" in server.log_text()


def test_an_endpoint_updating_at_a_restart_answers_retryable_errors_while_it_recovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = write_echo_model(tmp_path / "echo")
    first = ServerProcess(home).start()
    try:
        sm, _ = first.clients()
        deploy(sm, "upd", str(folder))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="upd", WaiterConfig=FAST)
        sm.update_endpoint_weights_and_capacities(
            EndpointName="upd", DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}]
        )
    finally:
        first.stop(sig=signal.SIGKILL)

    second = ServerProcess(home).start()
    try:
        _, runtime = second.clients()
        codes = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                body = json.loads(runtime.invoke_endpoint(EndpointName="upd", Body=b"back")["Body"].read())
                break
            except ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
                time.sleep(0.1)
        else:
            pytest.fail(f"never answered: {codes[-5:]}")
        assert body["echo"] == "back"
        assert set(codes) <= {"ServiceUnavailable"}, codes
        sm, _ = second.clients()
        sm.get_waiter("endpoint_in_service").wait(EndpointName="upd", WaiterConfig=FAST)
        variant = sm.describe_endpoint(EndpointName="upd")["ProductionVariants"][0]
        assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (2, 2)
    finally:
        second.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs the test can fill, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True,
                       capture_output=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {exc}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=10)


def fill(folder: Path) -> Path:
    """Fill the file system to the last byte."""
    filler = folder / "filler" if folder.is_dir() else folder
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def start_unchecked(server: ServerProcess, timeout_s: float = 60) -> None:
    """Start the server and wait until it answers at all (its health may be 503)."""
    server.start_process()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.process is not None
        if server.process.poll() is not None:
            raise AssertionError(f"server exited:\n{server.log_text()[-3000:]}")
        try:
            health(server)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not answer")


def invoke_within(runtime: Any, name: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dict(json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read()))
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_restarted_on_a_full_disk_it_serves_and_says_so_when_it_cannot_act_then_recovers(
    tmp_path: Path, small_disk: Path
) -> None:
    home = small_disk / "home"
    folder = write_echo_model(tmp_path / "echo")
    first = ServerProcess(home).start()
    try:
        sm, _ = first.clients()
        deploy(sm, "disk", str(folder))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="disk", WaiterConfig=FAST)
    finally:
        first.stop(sig=signal.SIGKILL)
    filler = fill(small_disk)

    second = ServerProcess(home)
    try:
        start_unchecked(second)  # on a full disk the server starts, and the endpoint comes back
        sm, runtime = second.clients()
        worker = invoke_within(runtime, "disk", 60)["worker"]
        assert sm.describe_endpoint(EndpointName="disk")["EndpointStatus"] == "InService"

        more = fill(small_disk / "more")  # whatever the restart freed is taken too
        for pid in worker_pids(home):
            os.kill(pid, signal.SIGKILL)  # the instance must be replaced, which needs to write
        deadline = time.monotonic() + 30
        while health(second).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        report = health(second)
        assert report.status_code == 503, report.text
        assert any("disk is full" in p or "No space left" in p for p in report.json()["problems"]), report.text
        assert sm.describe_endpoint(EndpointName="disk")["EndpointStatus"] == "InService"  # nothing claimed
        with pytest.raises(ClientError) as exc:
            runtime.invoke_endpoint(EndpointName="disk", Body=b"x")
        assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"

        filler.unlink()
        more.unlink()
        assert invoke_within(runtime, "disk", 90)["worker"] != worker  # it recovered by itself
        deadline = time.monotonic() + 30
        while health(second).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert health(second).status_code == 200, health(second).text
    finally:
        second.stop()
