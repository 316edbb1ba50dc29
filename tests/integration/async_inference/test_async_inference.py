"""InvokeEndpointAsync end to end: a real server and workers, real boto3, moto's S3 and SNS (an SQS queue in moto
subscribed to each topic reads the notifications): results and error documents land where the 202 said, the
notifications carry SageMaker's message, local-file outputs work (the embedded default), an endpoint at zero
instances is started by its backlog, the backlog metrics are in CloudWatch, and bad requests are refused."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 120}
REGION = "us-east-1"
SLOW_MODEL = """
import time
from djl_python import Output

def handle(inputs):
    if inputs.is_empty():
        return None
    time.sleep(float(inputs.get_property("sleep") or 0))
    return Output().add("slept:" + inputs.get_as_string())
"""


def aws_env(moto: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


def aws(moto: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=moto, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("async-home"), env=aws_env(moto_endpoint)).start()
    yield proc
    proc.stop()


def topic_with_queue(moto: str, name: str) -> tuple[str, str]:
    """An SNS topic and an SQS queue subscribed to it with raw delivery: (topic ARN, queue URL)."""
    sns, sqs = aws(moto, "sns"), aws(moto, "sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue


def messages(moto: str, queue: str, count: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    sqs = aws(moto, "sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert len(found) >= count, f"{len(found)} of {count} notifications arrived"
    return found


def s3_object(moto: str, uri: str, timeout_s: float = 30) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3 = aws(moto, "s3")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def local_file(path: Path, timeout_s: float = 30) -> bytes:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)
    return path.read_bytes()


def async_endpoint(
    sm: Any,
    name: str,
    folder: Path,
    output: str,
    failure: str | None = None,
    *,
    success_topic: str | None = None,
    error_topic: str | None = None,
    concurrency: int | None = None,
    count: int = 1,
    include: list[str] | None = None,
) -> None:
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "djl-inference", "ModelDataUrl": str(folder)})
    out: dict[str, Any] = {"S3OutputPath": output}
    if failure:
        out["S3FailurePath"] = failure
    notification = {k: v for k, v in (("SuccessTopic", success_topic), ("ErrorTopic", error_topic)) if v}
    if include:
        notification["IncludeInferenceResponseIn"] = include  # type: ignore[assignment]
    if notification:
        out["NotificationConfig"] = notification
    config: dict[str, Any] = {"OutputConfig": out}
    if concurrency:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": concurrency}
    sm.create_endpoint_config(
        EndpointConfigName=name,
        AsyncInferenceConfig=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def put_input(moto: str, bucket: str, key: str, body: bytes) -> str:
    s3 = aws(moto, "s3")
    with contextlib.suppress(ClientError):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def test_results_land_in_s3_with_a_success_notification(
    server: ServerProcess, moto_endpoint: str, tmp_path: Path
) -> None:
    sm, runtime = server.clients()
    topic, queue = topic_with_queue(moto_endpoint, "async-done")
    aws(moto_endpoint, "s3").create_bucket(Bucket="async-out")
    async_endpoint(
        sm,
        "async-s3",
        write_echo_model(tmp_path / "echo"),
        "s3://async-out/results/",
        "s3://async-out/failures/",
        success_topic=topic,
        include=["SUCCESS_NOTIFICATION_TOPIC"],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName="async-s3", WaiterConfig=FAST)
    desc = sm.describe_endpoint(EndpointName="async-s3")
    assert desc["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == "s3://async-out/results/"
    assert desc["AsyncInferenceConfig"]["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 4
    described = sm.describe_endpoint_config(EndpointConfigName="async-s3")["AsyncInferenceConfig"]
    assert described["OutputConfig"]["NotificationConfig"]["SuccessTopic"] == topic

    source = put_input(moto_endpoint, "async-in", "payload.json", b'{"question": 42}')
    answer = runtime.invoke_endpoint_async(
        EndpointName="async-s3", InputLocation=source, ContentType="application/json", InferenceId="my-id-1"
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["InferenceId"] == "my-id-1"
    assert answer["OutputLocation"] == "s3://async-out/results/my-id-1.out"
    assert answer["FailureLocation"] == "s3://async-out/failures/my-id-1-error.out"
    result = json.loads(s3_object(moto_endpoint, answer["OutputLocation"]))
    assert result["echo"] == '{"question": 42}' and result["content_type"] == "application/json"

    (message,) = messages(moto_endpoint, queue, 1)
    assert message["invocationStatus"] == "Completed" and message["eventName"] == "InferenceResult"
    assert message["inferenceId"] == "my-id-1" and message["awsRegion"] == REGION
    assert message["requestParameters"]["endpointName"] == "async-s3"
    assert message["requestParameters"]["inputLocation"] == source
    assert message["responseParameters"]["outputLocation"] == answer["OutputLocation"]
    assert message["responseParameters"]["contentType"] == "application/json"
    assert json.loads(message["responseBody"]["content"])["echo"] == '{"question": 42}'

    generated = runtime.invoke_endpoint_async(EndpointName="async-s3", InputLocation=source)
    assert str(uuid.UUID(generated["InferenceId"])) == generated["InferenceId"]
    assert generated["OutputLocation"].endswith(f"/{generated['InferenceId']}.out")
    s3_object(moto_endpoint, generated["OutputLocation"])


def test_a_model_error_writes_the_failure_path_and_notifies_the_error_topic(
    server: ServerProcess, moto_endpoint: str, tmp_path: Path
) -> None:
    sm, runtime = server.clients()
    done, done_queue = topic_with_queue(moto_endpoint, "async-ok")
    errors, error_queue = topic_with_queue(moto_endpoint, "async-errors")
    aws(moto_endpoint, "s3").create_bucket(Bucket="async-fail")
    async_endpoint(
        sm,
        "async-fail",
        write_echo_model(tmp_path / "echo"),
        "s3://async-fail/out",
        "s3://async-fail/err",
        success_topic=done,
        error_topic=errors,
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName="async-fail", WaiterConfig=FAST)
    source = put_input(moto_endpoint, "async-fail", "in/x.txt", b"please fail")
    answer = runtime.invoke_endpoint_async(EndpointName="async-fail", InputLocation=source, CustomAttributes="fail=yes")
    document = s3_object(moto_endpoint, answer["FailureLocation"]).decode()
    assert "asked to fail" in document
    (message,) = messages(moto_endpoint, error_queue, 1)
    assert message["invocationStatus"] == "Failed" and message["inferenceId"] == answer["InferenceId"]
    assert message["responseParameters"]["failureLocation"] == answer["FailureLocation"]
    assert "asked to fail" in message["failureReason"] and message["failureReason"].startswith("ModelError")
    missing = runtime.invoke_endpoint_async(EndpointName="async-fail", InputLocation="s3://async-fail/in/none.txt")
    document = s3_object(moto_endpoint, missing["FailureLocation"]).decode()
    assert "could not be read" in document and "none.txt" in document
    (message,) = messages(moto_endpoint, error_queue, 1)
    assert message["inferenceId"] == missing["InferenceId"]
    assert aws(moto_endpoint, "sqs").receive_message(QueueUrl=done_queue, WaitTimeSeconds=1).get("Messages") is None


def test_local_files_and_inline_bodies_and_the_invocation_timeout(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    model = write_echo_model(tmp_path / "slow", model_py=SLOW_MODEL)
    async_endpoint(sm, "async-local", model, str(tmp_path / "out"), f"file://{tmp_path / 'failed'}")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="async-local", WaiterConfig=FAST)
    (tmp_path / "in.txt").write_text("from a file")
    answer = runtime.invoke_endpoint_async(EndpointName="async-local", InputLocation=str(tmp_path / "in.txt"))
    assert answer["OutputLocation"] == str(tmp_path / "out" / f"{answer['InferenceId']}.out")
    assert local_file(Path(answer["OutputLocation"])) == b"slept:from a file"

    inline = runtime.invoke_endpoint_async(
        EndpointName="async-local",
        Body=b"inline",
        InferenceId="inline-1",
        S3OutputPathExtension="day-1",
        Filename="inline.txt",
    )
    assert inline["OutputLocation"] == str(tmp_path / "out" / "day-1" / "inline.txt")
    assert local_file(Path(inline["OutputLocation"])) == b"slept:inline"

    slow = runtime.invoke_endpoint_async(
        EndpointName="async-local", Body=b"late", CustomAttributes="sleep=4", InvocationTimeoutSeconds=1
    )
    document = local_file(Path(slow["FailureLocation"])).decode()
    assert "InvocationTimeoutSeconds" in document and "1 s" in document
    assert not Path(slow["OutputLocation"]).exists()


def test_refusals_are_validation_errors(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    deploy(sm, "sync-only", str(write_echo_model(tmp_path / "echo")))
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_async(EndpointName="sync-only", InputLocation="s3://b/k")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "not configured for asynchronous inference" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_async(EndpointName="no-such-endpoint", InputLocation="s3://b/k")
    assert "not found" in caught.value.response["Error"]["Message"]
    async_endpoint(sm, "async-refusals", write_echo_model(tmp_path / "echo2"), str(tmp_path / "out"))
    for kwargs, words in (
        ({}, "InputLocation is required"),
        ({"InputLocation": "s3://bkt/k", "RequestTTLSeconds": 21601}, "requestTTLSeconds"),
        ({"InputLocation": "s3://bkt/k", "InvocationTimeoutSeconds": 3601}, "invocationTimeoutSeconds"),
        ({"InputLocation": "https://example.com/x"}, "InputLocation"),
        ({"InputLocation": str(server.home / "modelhost.db")}, "InputLocation"),
    ):
        with pytest.raises(ClientError) as caught:
            runtime.invoke_endpoint_async(EndpointName="async-refusals", **kwargs)
        assert caught.value.response["Error"]["Code"] == "ValidationError", kwargs
        assert words in caught.value.response["Error"]["Message"], (kwargs, caught.value.response["Error"])
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for variants, words in (
        (
            [{"VariantName": v, "ModelName": "async-refusals", "InstanceType": "ml.m5.large"} for v in ("a", "b")],
            "exactly one production variant",
        ),
    ):
        with pytest.raises(ClientError) as caught:
            sm.create_endpoint_config(
                EndpointConfigName="two-variants",
                ProductionVariants=variants,
                AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bkt/o"}},
            )
        assert words in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        sm.create_endpoint_config(
            EndpointConfigName="bad-concurrency",
            AsyncInferenceConfig={
                "OutputConfig": {"S3OutputPath": "s3://bkt/o"},
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1001},
            },
            ProductionVariants=[{"VariantName": "a", "ModelName": "async-refusals", "InstanceType": "ml.m5.large"}],
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_an_endpoint_at_zero_instances_is_started_by_its_backlog(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    name = "async-zero"
    async_endpoint(sm, name, write_echo_model(tmp_path / "echo"), str(tmp_path / "out"))
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    aas = boto3.client(
        "application-autoscaling",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(retries={"max_attempts": 1}),
    )
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=f"endpoint/{name}/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=0,
        MaxCapacity=1,
    )
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}]
    )
    deadline = time.monotonic() + 60
    while sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    answers = [runtime.invoke_endpoint_async(EndpointName=name, Body=f"wake {i}".encode()) for i in range(3)]
    for i, answer in enumerate(answers):
        assert json.loads(local_file(Path(answer["OutputLocation"]), timeout_s=60))["echo"] == f"wake {i}"
    assert sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    cloudwatch = boto3.client(
        "cloudwatch", endpoint_url=server.url, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y"
    )
    wanted = {
        "ApproximateBacklogSize",
        "ApproximateBacklogSizePerInstance",
        "ApproximateAgeOfOldestRequest",
        "HasBacklogWithoutCapacity",
    }
    deadline = time.monotonic() + 30
    while True:
        listed = cloudwatch.list_metrics(
            Namespace="AWS/SageMaker", Dimensions=[{"Name": "EndpointName", "Value": name}]
        )
        names = {m["MetricName"] for m in listed["Metrics"]}
        if wanted <= names or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert wanted <= names


def test_requests_sent_while_the_endpoint_is_creating_wait_for_it(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    name = "async-early"
    async_endpoint(sm, name, write_echo_model(tmp_path / "echo"), str(tmp_path / "out"), str(tmp_path / "failed"))
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Creating"
    answers = [runtime.invoke_endpoint_async(EndpointName=name, Body=f"early {i}".encode()) for i in range(3)]
    for i, answer in enumerate(answers):
        assert json.loads(local_file(Path(answer["OutputLocation"]), timeout_s=60))["echo"] == f"early {i}"
    assert not (tmp_path / "failed").exists()
    with pytest.raises(ClientError) as caught:  # a transform job's hidden endpoint is nobody's to invoke
        runtime.invoke_endpoint_async(EndpointName="transform-job.anything", Body=b"x")
    assert "not found" in caught.value.response["Error"]["Message"]
