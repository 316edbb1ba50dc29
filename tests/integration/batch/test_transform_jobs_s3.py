"""Transform jobs reading and writing S3 (moto's server on loopback, found through AWS_ENDPOINT_URL_S3 only):
an S3Prefix job and a ManifestFile job, outputs named `<S3OutputPath>/<key relative to the prefix>.out`, and an
unreadable input that fails the job with a reason naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import WaiterError

from tests.integration.batch.test_transform_jobs import DOUBLER, WAIT, create_model
from tests.integration.server import ServerProcess, write_echo_model

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_batch_server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("s3-batch-home"),
                           env={**S3_ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint}).start()  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(moto_endpoint: str) -> Any:
    client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                   region_name="us-east-1").client("s3", endpoint_url=moto_endpoint)  # fmt: skip
    client.create_bucket(Bucket="batch-data")
    return client


def put_lines(s3: Any, key: str, values: list[Any]) -> None:
    s3.put_object(Bucket="batch-data", Key=key, Body="".join(json.dumps({"x": v}) + "\n" for v in values).encode())


def read_outputs(s3: Any, prefix: str) -> dict[str, list[Any]]:
    found = {}
    for item in s3.list_objects_v2(Bucket="batch-data", Prefix=prefix).get("Contents", []):
        text = s3.get_object(Bucket="batch-data", Key=item["Key"])["Body"].read().decode()
        found[item["Key"][len(prefix):]] = [json.loads(line)["y"] for line in text.splitlines()]
    return found


def request(name: str, data_type: str, uri: str, output: str) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": "s3-doubler",
        "BatchStrategy": "MultiRecord",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri}},
                           "ContentType": "application/jsonlines", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": output, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }  # fmt: skip


@pytest.fixture(scope="module")
def s3_model(s3_batch_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    sm, _ = s3_batch_server.clients()
    create_model(sm, "s3-doubler", write_echo_model(tmp_path_factory.mktemp("s3-doubler") / "model", model_py=DOUBLER))
    return "s3-doubler"


def test_prefix_and_manifest_jobs_on_s3(s3_batch_server: ServerProcess, s3: Any, s3_model: str) -> None:
    sm, _ = s3_batch_server.clients()
    put_lines(s3, "in/part-1.jsonl", [1, 2, 3])
    put_lines(s3, "in/sub/part-2.jsonl", [10])
    s3.put_object(Bucket="batch-data", Key="in/folder/", Body=b"")  # a console "folder": not an input
    sm.create_transform_job(**request("s3-prefix", "S3Prefix", "s3://batch-data/in/", "s3://batch-data/out/prefix"))
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="s3-prefix", WaiterConfig=WAIT)
    described = sm.describe_transform_job(TransformJobName="s3-prefix")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert read_outputs(s3, "out/prefix/") == {"part-1.jsonl.out": [2, 4, 6], "sub/part-2.jsonl.out": [20]}

    manifest = [{"prefix": "s3://batch-data/in/"}, "sub/part-2.jsonl", "part-1.jsonl"]
    s3.put_object(Bucket="batch-data", Key="manifests/two.json", Body=json.dumps(manifest).encode())
    sm.create_transform_job(**request("s3-manifest", "ManifestFile", "s3://batch-data/manifests/two.json",
                                      "s3://batch-data/out/manifest/"))  # fmt: skip
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="s3-manifest", WaiterConfig=WAIT)
    described = sm.describe_transform_job(TransformJobName="s3-manifest")
    assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
    assert read_outputs(s3, "out/manifest/") == {"part-1.jsonl.out": [2, 4, 6], "sub/part-2.jsonl.out": [20]}


def test_missing_input_fails_naming_it(s3_batch_server: ServerProcess, s3: Any, s3_model: str) -> None:
    sm, _ = s3_batch_server.clients()
    sm.create_transform_job(**request("s3-missing", "S3Prefix", "s3://batch-data/nothing-here/",
                                      "s3://batch-data/out/missing/"))  # fmt: skip
    with pytest.raises(WaiterError):
        sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="s3-missing", WaiterConfig=WAIT)
    reason = sm.describe_transform_job(TransformJobName="s3-missing")["FailureReason"]
    assert "s3://batch-data/nothing-here/" in reason, reason

