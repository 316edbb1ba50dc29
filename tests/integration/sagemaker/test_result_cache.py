"""The result cache: opt-in per endpoint, exact match, deterministic requests only, hits skip the worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import deploy, write_echo_model

COUNTING_MODEL = """
from djl_python import Output

calls = 0

def handle(inputs):
    global calls
    if inputs.is_empty():
        return None
    calls += 1
    return Output().add_as_json({"calls": calls, "body": inputs.get_as_string()})
"""
FAST = {"Delay": 1, "MaxAttempts": 60}


def invoke(runtime: Any, name: str, body: dict[str, Any], **kw: Any) -> tuple[int, str]:
    response = runtime.invoke_endpoint(EndpointName=name, Body=json.dumps(body), ContentType="application/json", **kw)
    state = response["ResponseMetadata"]["HTTPHeaders"].get("x-modelhost-cache", "")
    return json.loads(response["Body"].read())["calls"], state


def test_cache_hits_skip_the_worker(sm: Any, runtime: Any, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "count", model_py=COUNTING_MODEL)
    env = {"MODELHOST_RESULT_CACHE": "deterministic", "MODELHOST_RESULT_CACHE_TTL_S": "2"}
    deploy(sm, "cached", str(folder), environment=env)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="cached", WaiterConfig=FAST)
    greedy = {"inputs": "hi", "parameters": {"max_new_tokens": 5}}
    assert invoke(runtime, "cached", greedy) == (1, "miss")
    assert invoke(runtime, "cached", greedy) == (1, "hit")  # the worker was not called
    assert invoke(runtime, "cached", greedy, CustomAttributes="a=b") == (2, "miss")  # exact match on attributes
    assert invoke(runtime, "cached", {**greedy, "inputs": "other"}) == (3, "miss")
    sampled = {"inputs": "hi", "parameters": {"do_sample": True}}
    assert invoke(runtime, "cached", sampled) == (4, "bypass")
    assert invoke(runtime, "cached", sampled) == (5, "bypass")
    time.sleep(2.2)
    assert invoke(runtime, "cached", greedy) == (6, "miss")  # the TTL passed
    sm.delete_endpoint(EndpointName="cached")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="cached", WaiterConfig=FAST)


def test_cache_is_off_by_default_and_settings_are_checked(sm: Any, runtime: Any, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "count", model_py=COUNTING_MODEL)
    deploy(sm, "uncached", str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="uncached", WaiterConfig=FAST)
    greedy = {"inputs": "hi"}
    assert invoke(runtime, "uncached", greedy) == (1, "")
    assert invoke(runtime, "uncached", greedy) == (2, "")
    with pytest.raises(ClientError) as exc:
        sm.create_model(
            ModelName="badcache",
            PrimaryContainer={
                "Image": "x",
                "ModelDataUrl": str(folder),
                "Environment": {"MODELHOST_RESULT_CACHE": "maybe"},
            },
        )
    assert "MODELHOST_RESULT_CACHE must be off, deterministic or all" in exc.value.response["Error"]["Message"]
    sm.delete_endpoint(EndpointName="uncached")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="uncached", WaiterConfig=FAST)
