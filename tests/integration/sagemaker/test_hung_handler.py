"""A model.py handler that hangs: its caller gets a 424 within option.predict_timeout, the instance fails /ping,
the control plane replaces it, and every other request is served meanwhile (no 424, no hang)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model

PREDICT_TIMEOUT_S = 2
RETRIED_CODES = ("ServiceUnavailable", "ThrottlingException")

HANG_MODEL_PY = """
import os, threading
from djl_python import Input, Output

def handle(inputs: Input):
    if inputs.is_empty():
        return None
    body = inputs.get_as_string()
    if body == "hang":
        threading.Event().wait()  # forever
    return Output().add_as_json({"echo": body, "worker": int(os.environ["SAGEMAKER_BIND_TO_PORT"])})
"""


@pytest.fixture
def fast_health_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that pings serving instances every 0.5 s (3 failures in a row replace one)."""
    server = ServerProcess(tmp_path / "home", env={"MODELHOST_HEALTH_INTERVAL_S": "0.5"}).start()
    yield server
    server.stop()


class NormalLoad:
    """Two threads invoking the endpoint with normal requests; records answers, failures and the slowest call.
    ServiceUnavailable / throttling are retried briefly (the router's words for "no capacity right now")."""

    def __init__(self, runtime: Any, name: str) -> None:
        self.runtime, self.name = runtime, name
        self.pids: list[int] = []
        self.errors: list[str] = []
        self.slowest_s = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(2)]

    def invoke(self, body: str) -> int:
        started = time.monotonic()
        for _ in range(20):
            try:
                answer = self.runtime.invoke_endpoint(EndpointName=self.name, Body=body.encode())
                break
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in RETRIED_CODES:
                    raise
                time.sleep(0.2)
        else:
            raise AssertionError("still unavailable after 20 tries")
        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
        result = json.loads(answer["Body"].read())
        assert result["echo"] == body
        return int(result["worker"])

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                self.pids.append(self.invoke(f"normal-{index}-{n}"))
            except Exception as exc:
                self.errors.append(repr(exc))
            time.sleep(0.05)

    def __enter__(self) -> NormalLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_a_hung_handler_is_answered_424_and_its_instance_replaced(
    fast_health_server: ServerProcess, tmp_path: Path
) -> None:
    server = fast_health_server
    sm, runtime = server.clients()
    name = "hangs"
    model = write_echo_model(
        tmp_path / "model", f"engine=Python\noption.predict_timeout={PREDICT_TIMEOUT_S}\n", HANG_MODEL_PY
    )
    deploy(sm, name, str(model), count=2)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    probe = NormalLoad(runtime, name)
    before = {probe.invoke(f"warm-{i}") for i in range(30)}
    assert len(before) == 2

    with NormalLoad(runtime, name) as load:
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(ClientError) as hung:
            runtime.invoke_endpoint(EndpointName=name, Body=b"hang")
        elapsed_s = time.monotonic() - started
        error = hung.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["OriginalStatusCode"] == 424
        assert f"did not finish within {PREDICT_TIMEOUT_S} s" in error["Error"]["Message"]
        assert elapsed_s < PREDICT_TIMEOUT_S + 3

        deadline = time.monotonic() + 60
        while True:  # replaced: the endpoint log says why, and two instances serve again, one of them new
            logs = httpx.get(f"{server.url}/_modelhost/endpoints/{name}/logs", timeout=10).text
            count = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"]
            if "stopped answering /ping" in logs and count == 2 and len(set(load.pids[-40:]) - before) == 1:
                break
            assert time.monotonic() < deadline, f"the hung instance was not replaced (count {count}):\n{logs}"
            time.sleep(0.5)
        time.sleep(1)

    assert load.errors == [], load.errors[:3]  # no normal request failed (no 424 from the hung instance)
    assert len(load.pids) > 20
    assert load.slowest_s < 15, f"a normal request took {load.slowest_s:.1f} s"
    assert "past its 2 s predict_timeout" in logs  # the worker's own log line says why /ping failed
    after = {probe.invoke(f"after-{i}") for i in range(30)}
    assert len(after) == 2 and len(after & before) == 1  # the healthy instance stayed; the hung one is gone
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "InService"
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
