"""A connection the worker closes without answering never takes a healthy instance out of rotation.

The model below, on the input "reset", shuts down the worker's inbound connections from inside its handler
(the process stays up and keeps answering /ping), so the router sees a connection closed before any answer,
on the pooled path and on the streaming path alike. The router reports the instance to the routing table
instead of dropping it; the controller pings it and keeps it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import deploy, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 120}

RESETTING_MODEL = """
import os, socket
from djl_python import Output

def _close_inbound_connections():
    port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.fromfd(int(name), socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            local = sock.getsockname()
            if isinstance(local, tuple) and local[1] == port:
                sock.getpeername()  # raises for the listening socket, which must stay
                sock.shutdown(socket.SHUT_RDWR)  # the router reads end-of-file before any answer
        except OSError:
            pass
        finally:
            sock.close()  # the duplicate only; the worker's own descriptor stays open

def handle(inputs):
    if inputs.is_empty():
        return None
    if inputs.get_as_string() == "reset":
        _close_inbound_connections()
    return Output().add_as_json({"worker": int(os.environ["SAGEMAKER_BIND_TO_PORT"])})
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pid_of(runtime: Any, name: str) -> int:
    body = runtime.invoke_endpoint(EndpointName=name, Body=b"hello", ContentType="text/plain")["Body"].read()
    return int(json.loads(body)["worker"])


def streamed_pid(runtime: Any, name: str) -> int:
    response = runtime.invoke_endpoint_with_response_stream(EndpointName=name, Body=b"hello", ContentType="text/plain")
    parts = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event)
    return int(json.loads(parts)["worker"])


def current_count(sm: Any, name: str) -> int:
    return int(sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"])


def test_a_reset_connection_keeps_the_only_instance_serving(sm: Any, runtime: Any, tmp_path: Path) -> None:
    name = unique("reset")
    deploy(sm, name, str(write_echo_model(tmp_path / "model", model_py=RESETTING_MODEL)))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    pid = pid_of(runtime, name)
    assert current_count(sm, name) == 1

    with pytest.raises(ClientError) as caught:  # nothing answered, and there is no other instance to try
        runtime.invoke_endpoint(EndpointName=name, Body=b"reset", ContentType="text/plain")
    assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert [pid_of(runtime, name) for _ in range(10)] == [pid] * 10  # still in rotation at once
    assert streamed_pid(runtime, name) == pid

    with pytest.raises(ClientError) as caught:  # the same on the streaming (httpx) path
        runtime.invoke_endpoint_with_response_stream(EndpointName=name, Body=b"reset", ContentType="text/plain")
    assert caught.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert [pid_of(runtime, name) for _ in range(5)] == [pid] * 5

    time.sleep(2.0)  # the controller has pinged the reported instance by now, and kept it
    assert [pid_of(runtime, name) for _ in range(10)] == [pid] * 10
    assert streamed_pid(runtime, name) == pid
    assert current_count(sm, name) == 1
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_a_reset_on_two_instances_takes_neither_out(sm: Any, runtime: Any, tmp_path: Path) -> None:
    name = unique("reset2")
    deploy(sm, name, str(write_echo_model(tmp_path / "model", model_py=RESETTING_MODEL)), count=2)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    before = {pid_of(runtime, name) for _ in range(30)}
    assert len(before) == 2

    with pytest.raises(ClientError) as caught:  # tried on one, retried once on the other: both closed
        runtime.invoke_endpoint(EndpointName=name, Body=b"reset", ContentType="text/plain")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert "the instance went away" in caught.value.response["Error"]["Message"]

    time.sleep(2.0)
    assert {pid_of(runtime, name) for _ in range(30)} == before
    assert current_count(sm, name) == 2
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)
