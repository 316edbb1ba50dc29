"""State survives a server restart, even kill -9: resources stay, InService endpoints come back."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model


def invoke_when_ready(runtime: Any, name: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"again")["Body"].read())
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ServiceUnavailable" or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_kill_9_and_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = ServerProcess(home).start()
    try:
        sm, runtime = first.clients()
        folder = write_echo_model(tmp_path / "echo")
        deploy(sm, "survivor", str(folder))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="survivor", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        old_pid = json.loads(runtime.invoke_endpoint(EndpointName="survivor", Body=b"x")["Body"].read())["worker"]
    finally:
        first.stop(sig=signal.SIGKILL)

    second = ServerProcess(home).start()
    try:
        sm, runtime = second.clients()
        assert sm.describe_model(ModelName="survivor")["ModelName"] == "survivor"
        assert sm.describe_endpoint_config(EndpointConfigName="survivor")["EndpointConfigName"] == "survivor"
        assert sm.describe_endpoint(EndpointName="survivor")["EndpointStatus"] == "InService"
        body = invoke_when_ready(runtime, "survivor")
        assert body["echo"] == "again"
        assert body["worker"] != old_pid
        deadline = time.monotonic() + 10
        while pid_alive(old_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(old_pid), "the old worker outlived its server"
        sm.delete_endpoint(EndpointName="survivor")
        sm.get_waiter("endpoint_deleted").wait(EndpointName="survivor", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    finally:
        second.stop()


SLOW_MODEL = """
import time
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    time.sleep(2)
    return Output().add("finished")
"""


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    import threading

    server = ServerProcess(tmp_path / "home").start()
    try:
        sm, runtime = server.clients()
        deploy(sm, "drain", str(write_echo_model(tmp_path / "slow", model_py=SLOW_MODEL)))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="drain", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        answers: list[bytes] = []
        caller = threading.Thread(
            target=lambda: answers.append(runtime.invoke_endpoint(EndpointName="drain", Body=b"x")["Body"].read())
        )
        caller.start()
        time.sleep(0.5)  # the request is in the handler now
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        assert answers == [b"finished"]
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    finally:
        server.stop()
