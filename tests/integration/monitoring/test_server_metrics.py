"""Monitoring end to end on a real server: N invocations (some answered 4xx by the model, one model failure)
give exactly those counts through the server's /metrics (parsed with prometheus_client's parser), through
GetMetricStatistics and GetMetricData with real boto3 (its default JSON protocol, CBOR and query forced), and
the counts survive a server restart; the worker's own /metrics comes through relabelled; /health and /ping."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.monitoring.cloudwatch_server import cloudwatch_client
from tests.integration.server import ServerProcess, deploy, write_echo_model

COUNTING_MODEL_PY = """
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    text = inputs.get_as_string()
    if text == "bad":
        return Output().set_code(400).set_message("bad input").add_as_json({"error": "bad input"})
    if text == "crash":  # DJL answers a handler exception with 424: a 4XX error of the model
        raise RuntimeError("the model failed")
    if text == "fail":
        return Output().set_code(500).set_message("server side").add_as_json({"error": "failed"})
    return Output().add_as_json({"echo": text})
"""
GOOD, BAD, CRASH, FAIL = 5, 2, 1, 1
ALL = GOOD + BAD + CRASH + FAIL


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring-home")


@pytest.fixture(scope="module")
def server(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(home).start()
    sm, runtime = proc.clients()
    folder = write_echo_model(tmp_path_factory.mktemp("counting") / "model", model_py=COUNTING_MODEL_PY)
    deploy(sm, "counted", str(folder))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="counted", WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for body, times in ((b"hello", GOOD), (b"bad", BAD), (b"crash", CRASH), (b"fail", FAIL)):
        for _ in range(times):
            with contextlib.suppress(runtime.exceptions.ModelError):
                runtime.invoke_endpoint(EndpointName="counted", Body=body)
    yield proc
    proc.stop()


def test_prometheus_counts_are_exact(server: ServerProcess) -> None:
    text = httpx.get(f"{server.url}/metrics", timeout=10, trust_env=False).text
    found = samples(text)
    labels = {"endpoint": "counted", "variant": "AllTraffic"}
    assert value(found, "modelhost_invocations_total", **labels) == ALL
    assert value(found, "modelhost_invocation_errors_total", **labels, **{"class": "4xx"}) == BAD + CRASH
    assert value(found, "modelhost_invocation_errors_total", **labels, **{"class": "5xx"}) == FAIL
    assert value(found, "modelhost_invocation_model_errors_total", **labels) == BAD + CRASH + FAIL
    assert value(found, "modelhost_model_latency_seconds_count", **labels) == ALL
    assert value(found, "modelhost_variant_desired_instances", **labels) == 1
    assert value(found, "modelhost_variant_current_instances", **labels) == 1
    instance = [dict(k[1]) for k in found if k[0] == "modelhost_instance_memory_bytes"]
    assert len(instance) == 1 and instance[0]["endpoint"] == "counted"
    assert value(found, "modelhost_instance_memory_bytes", **instance[0]) > 10 * 1024 * 1024


def test_the_workers_own_metrics_come_through_with_its_labels(server: ServerProcess) -> None:
    found = samples(httpx.get(f"{server.url}/metrics", timeout=10, trust_env=False).text)
    worker = [dict(k[1]) for k in found if k[0] == "modelhost_worker_requests_total"]
    assert worker, "the worker's /metrics was scraped"
    assert {"endpoint", "variant", "instance"} <= set(worker[0])
    assert sum(v for k, v in found.items() if k[0] == "modelhost_worker_requests_total") == ALL


def test_health_and_ping_answer_probes(server: ServerProcess) -> None:
    for path in ("/health", "/ping"):
        answer = httpx.get(f"{server.url}{path}", timeout=10, trust_env=False)
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def _statistics(client: Any, metric: str) -> dict[str, float]:
    now = datetime.now(UTC)
    answer = client.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName=metric, StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5), Period=3600, Statistics=["Sum", "SampleCount"],
        Dimensions=[{"Name": "EndpointName", "Value": "counted"}, {"Name": "VariantName", "Value": "AllTraffic"}],
    )  # fmt: skip
    total: dict[str, float] = {"Sum": 0.0, "SampleCount": 0.0}
    for point in answer["Datapoints"]:
        total["Sum"] += point["Sum"]
        total["SampleCount"] += point["SampleCount"]
    return total


def _wait_for_flush(client: Any) -> None:
    deadline = time.monotonic() + 40  # windows of 10 s are written every 10 s
    while _statistics(client, "Invocations")["Sum"] < ALL and time.monotonic() < deadline:
        time.sleep(1)


@pytest.mark.parametrize("protocol", ["json", "smithy-rpc-v2-cbor", "query"])
def test_cloudwatch_statistics_are_exact_in_every_protocol(
    server: ServerProcess, protocol: str, tmp_path: Path
) -> None:
    client = cloudwatch_client(server.url, tmp_path, None if protocol == "json" else protocol)
    _wait_for_flush(client)
    assert _statistics(client, "Invocations")["Sum"] == ALL
    assert _statistics(client, "Invocation4XXErrors") == {"Sum": BAD + CRASH, "SampleCount": ALL}
    assert _statistics(client, "Invocation5XXErrors")["Sum"] == FAIL
    assert _statistics(client, "InvocationModelErrors")["Sum"] == BAD + CRASH + FAIL
    assert _statistics(client, "ModelLatency")["SampleCount"] == ALL


def test_get_metric_data_and_list_metrics(server: ServerProcess, tmp_path: Path) -> None:
    client = cloudwatch_client(server.url, tmp_path)
    _wait_for_flush(client)
    now = datetime.now(UTC)
    dims = [{"Name": "EndpointName", "Value": "counted"}, {"Name": "VariantName", "Value": "AllTraffic"}]

    def stat(name: str) -> dict[str, Any]:
        metric = {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": dims}
        return {"Metric": metric, "Period": 3600, "Stat": "Sum"}

    answer = client.get_metric_data(
        MetricDataQueries=[
            {"Id": "inv", "MetricStat": stat("Invocations")},
            {"Id": "errs", "MetricStat": stat("InvocationModelErrors")},
            {"Id": "rate", "Expression": "errs / inv"},
        ],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
    )  # fmt: skip
    results = {r["Id"]: sum(r["Values"]) for r in answer["MetricDataResults"]}
    assert results["inv"] == ALL and results["errs"] == BAD + CRASH + FAIL
    names = {m["MetricName"] for m in client.list_metrics(Namespace="/aws/sagemaker/Endpoints")["Metrics"]}
    assert {"MemoryUtilization", "DiskUtilization"} <= names


def test_counts_survive_a_restart(server: ServerProcess, tmp_path: Path) -> None:
    client = cloudwatch_client(server.url, tmp_path)
    _wait_for_flush(client)
    server.stop()
    server.start()
    client = cloudwatch_client(server.url, tmp_path)
    assert _statistics(client, "Invocations")["Sum"] == ALL


def test_a_plain_boto3_cloudwatch_client_works(server: ServerProcess) -> None:
    client = boto3.client(
        "cloudwatch", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
        aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    assert "Metrics" in client.list_metrics(Namespace="AWS/SageMaker")


def _logs(server: ServerProcess) -> Any:
    return boto3.client(
        "logs", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def test_worker_log_lines_come_back_through_the_logs_api(server: ServerProcess) -> None:
    logs = _logs(server)
    group = "/aws/sagemaker/Endpoints/counted"
    assert group in {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    streams = {s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]}
    assert "AllTraffic/alltraffic-0" in streams
    events = logs.get_log_events(logGroupName=group, logStreamName="AllTraffic/alltraffic-0", startFromHead=True)
    assert any("listening on" in e["message"] for e in events["events"])
    assert all(e["timestamp"] > 1_700_000_000_000 for e in events["events"])
    failed = logs.filter_log_events(logGroupName=group, filterPattern='"the model failed"')["events"]
    assert failed, "the handler's failure is in the worker's log"
    assert any("Traceback" in e["message"] and "RuntimeError" in e["message"] for e in failed), failed
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName="/aws/sagemaker/Endpoints/nope", logStreamName="x")
