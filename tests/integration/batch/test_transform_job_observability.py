"""A transform job seen as SageMaker shows one: its workers' logs in CloudWatch Logs' /aws/sagemaker/TransformJobs
(streams `<TransformJobName>/<instance>`), its instances' metrics in CloudWatch's /aws/sagemaker/TransformJobs
namespace (dimension Host = `<TransformJobName>/<instance>`), and no endpoint log group or metrics of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.integration.batch.test_transform_jobs import DOUBLER, WAIT, create_model, job_request, write_inputs
from tests.integration.server import ServerProcess, write_echo_model

JOB = "Observed-Job"  # mixed case: the names keep it
GROUP = "/aws/sagemaker/TransformJobs"
LOGGING_DOUBLER = DOUBLER.replace('    answers = []\n', '    answers = []\n    print("doubling a batch", flush=True)\n')


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that ran JOB to completion (slowly enough that the sampler sees its instance)."""
    server = ServerProcess(tmp_path_factory.mktemp("observed-home")).start()
    try:
        sm, _ = server.clients()
        model = write_echo_model(tmp_path_factory.mktemp("doubler") / "model", model_py=LOGGING_DOUBLER)
        create_model(sm, "observed-doubler", model, env={"DELAY_S": "0.4"})
        inputs = write_inputs(tmp_path_factory.mktemp("in"), {"a.jsonl": list(range(35))})
        request = job_request(JOB, "observed-doubler", inputs, tmp_path_factory.mktemp("out"),
                              BatchStrategy="SingleRecord", MaxConcurrentTransforms=1)  # fmt: skip
        sm.create_transform_job(**request)
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName=JOB, WaiterConfig=WAIT)
        assert sm.describe_transform_job(TransformJobName=JOB)["TransformJobStatus"] == "Completed"
        yield server
    finally:
        server.stop()


def client(server: ServerProcess, service: str) -> Any:
    session = boto3.session.Session(aws_access_key_id="AKIDTEST", aws_secret_access_key="secret",
                                    region_name="us-east-1")  # fmt: skip
    return session.client(service, endpoint_url=server.url, config=Config(retries={"max_attempts": 1}))


def test_logs_are_in_the_transform_jobs_group(ran: ServerProcess) -> None:
    logs = client(ran, "logs")
    names = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]]
    assert GROUP in names
    assert not [n for n in names if "transform-job" in n]  # the hidden endpoint has no group of its own
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=GROUP)["logStreams"]]
    assert f"{JOB}/alltraffic-0" in streams and f"{JOB}/modelhost-events" in streams, streams
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=f"{JOB}/alltraffic-0", startFromHead=True)
    assert any("doubling a batch" in e["message"] for e in events["events"])
    found = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=f"{JOB}/", filterPattern='"doubling"')
    assert found["events"] and {e["logStreamName"] for e in found["events"]} == {f"{JOB}/alltraffic-0"}
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.describe_log_streams(logGroupName=f"/aws/sagemaker/Endpoints/transform-job.{JOB.lower()}")


def test_instance_metrics_are_in_the_transform_jobs_namespace(ran: ServerProcess) -> None:
    cloudwatch = client(ran, "cloudwatch")
    deadline, hosts = time.monotonic() + 30, set()
    while time.monotonic() < deadline:
        metrics = cloudwatch.list_metrics(Namespace=GROUP)["Metrics"]
        hosts = {d["Value"] for m in metrics for d in m["Dimensions"] if d["Name"] == "Host"}
        if f"{JOB}/alltraffic-0" in hosts:
            break
        time.sleep(1)
    assert f"{JOB}/alltraffic-0" in hosts, hosts
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace=GROUP)["Metrics"]}
    assert {"MemoryUtilization", "DiskUtilization"} <= names
    endpoints = cloudwatch.list_metrics(Namespace="/aws/sagemaker/Endpoints")["Metrics"]
    assert not [m for m in endpoints for d in m["Dimensions"] if d["Value"].startswith("transform-job.")]
