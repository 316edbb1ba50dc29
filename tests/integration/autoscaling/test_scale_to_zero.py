"""Scale to zero that never fails a request, with real workers and real clients: a variant whose scalable
target allows MinCapacity 0 sits at 0 instances (InService, DescribeEndpoint shows 0), and the first request
starts one at once and waits for it — InvokeEndpoint, the response stream and the OpenAI route alike —
answered with X-Modelhost-Cold-Start-Seconds; the start is in DescribeScalingActivities. A variant at zero
without MinCapacity 0 (stopped) is not woken; a full queue at zero is throttled with Retry-After, not hung."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model

ROOT = Path(__file__).resolve().parents[3]
FAKE_ENGINE = {"MODELHOST_ENGINE_FACTORY": "tests.fake_backend:create_backend", "PYTHONPATH": str(ROOT)}
FAST = {"Delay": 1, "MaxAttempts": 120}
COLD = "x-modelhost-cold-start-seconds"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {**FAKE_ENGINE, "MODELHOST_MAX_QUEUE_PER_VARIANT": "3"}
    proc = ServerProcess(tmp_path_factory.mktemp("zero-home"), env=env).start()
    yield proc
    proc.stop()


def aas(server: ServerProcess) -> Any:
    return boto3.client("application-autoscaling", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="y",
                        config=Config(retries={"max_attempts": 1}))  # fmt: skip


def scale_to(sm: Any, name: str, count: int) -> None:
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": count}]
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        desc = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] == "InService" and desc["ProductionVariants"][0]["CurrentInstanceCount"] == count:
            return
        time.sleep(0.3)
    raise AssertionError(f"{name} did not reach {count} instances")


def at_zero(server: ServerProcess, name: str, folder: Path, *, min_capacity: int = 0) -> None:
    sm, _ = server.clients()
    deploy(sm, name, str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    aas(server).register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=f"endpoint/{name}/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=min_capacity, MaxCapacity=2,
    )  # fmt: skip
    scale_to(sm, name, 0)


def test_the_first_request_at_zero_starts_an_instance_and_gets_its_answer(
    server: ServerProcess, tmp_path: Path
) -> None:
    at_zero(server, "zero-plain", write_echo_model(tmp_path / "m"))
    sm, runtime = server.clients()
    desc = sm.describe_endpoint(EndpointName="zero-plain")
    assert desc["EndpointStatus"] == "InService" and desc["ProductionVariants"][0]["CurrentInstanceCount"] == 0
    answer = runtime.invoke_endpoint(EndpointName="zero-plain", Body=b"wake up")
    assert json.loads(answer["Body"].read())["echo"] == "wake up"
    waited = float(answer["ResponseMetadata"]["HTTPHeaders"][COLD])
    assert 0 < waited < 60
    again = runtime.invoke_endpoint(EndpointName="zero-plain", Body=b"warm")
    assert COLD not in again["ResponseMetadata"]["HTTPHeaders"]  # warm now
    activities = aas(server).describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId="endpoint/zero-plain/variant/AllTraffic"
    )["ScalingActivities"]
    assert any("a request arrived" in a["Cause"] and a["Description"] == "Setting desired instance count to 1."
               for a in activities), activities  # fmt: skip


def test_concurrent_requests_at_zero_all_succeed(server: ServerProcess, tmp_path: Path) -> None:
    at_zero(server, "zero-many", write_echo_model(tmp_path / "m"))
    _, runtime = server.clients()
    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda i: runtime.invoke_endpoint(EndpointName="zero-many", Body=f"r{i}".encode()),
                               range(3)))  # fmt: skip
    assert sorted(json.loads(b["Body"].read())["echo"] for b in bodies) == ["r0", "r1", "r2"]


def test_a_stream_and_the_openai_route_at_zero(server: ServerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "engine"
    folder.mkdir()
    (folder / "serving.properties").write_text("option.model_id=fake/model\noption.max_rolling_batch_size=4\n")
    at_zero(server, "zero-engine", folder)
    _, runtime = server.clients()
    body = {"inputs": "Hi", "parameters": {"max_new_tokens": 4}}
    response = runtime.invoke_endpoint_with_response_stream(EndpointName="zero-engine", Body=json.dumps(body),
                                                            ContentType="application/json")  # fmt: skip
    parts = b"".join(e["PayloadPart"]["Bytes"] for e in response["Body"] if "PayloadPart" in e)
    assert b"Deep" in parts
    assert float(response["ResponseMetadata"]["HTTPHeaders"][COLD]) > 0

    scale_to(server.clients()[0], "zero-engine", 0)  # back to zero, then the OpenAI route wakes it
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="zero-engine", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert float(raw.headers[COLD]) > 0
    assert raw.parse().choices[0].message.content


def test_a_stopped_variant_without_min_capacity_zero_is_not_woken(server: ServerProcess, tmp_path: Path) -> None:
    at_zero(server, "zero-stopped", write_echo_model(tmp_path / "m"), min_capacity=1)
    _, runtime = server.clients()
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName="zero-stopped", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_a_full_queue_at_zero_is_throttled_with_retry_after(server: ServerProcess, tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    write_echo_model(slow)
    (slow / "model.py").write_text((slow / "model.py").read_text().replace(
        "def handle(inputs):", "import time\ntime.sleep(8)  # a slow load\n\ndef handle(inputs):", 1))  # fmt: skip
    at_zero(server, "zero-full", slow)
    url = f"{server.url}/endpoints/zero-full/invocations"
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: httpx.post(url, content=b"x", timeout=60, trust_env=False), range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) == 3 and codes.count(429) == 3, codes  # a queue of 3 (MODELHOST_MAX_QUEUE_PER_VARIANT)
    throttled = [a for a in answers if a.status_code == 429]
    assert all(a.headers["x-amzn-errortype"] == "ThrottlingException" and a.headers["retry-after"] for a in throttled)
