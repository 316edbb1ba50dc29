"""The guide's own archive deploys unchanged: a model folder packed with `tar.add(folder, arcname=basename)`
(every file under one top-level folder), uploaded to S3 (moto's server, found through AWS_ENDPOINT_URL),
deployed and invoked with plain boto3. modelhost serves it from the inner folder, as DJL Serving does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.integration.server import ServerProcess, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 180}
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
INVENTORY = json.dumps({"gpus": [{"memory_gib": 24}] * 4, "cpus": 8, "memory_gib": 64})  # an ml.g5.24xlarge

# The guide's handler, cut down to what a test can check: where it runs and which GPUs its copy holds.
GUIDE_MODEL_PY = """
import os
from djl_python import Input, Output

properties = None

def handle(inputs: Input):
    global properties
    if properties is None:
        properties = inputs.get_properties()
    if inputs.is_empty():
        return None
    data = inputs.get_as_json()
    return Output().add_as_json({
        "text": data["text"],
        "text_length": data["text_length"],
        "model_dir": properties["model_dir"],
        "tensor_parallel_degree": properties.get("tensor_parallel_degree"),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "worker": int(os.environ["SAGEMAKER_BIND_TO_PORT"]),
    })
"""
# tensor_parallel_degree=2 on the 4 GPUs of an ml.g5.24xlarge makes two copies: the controller read this file.
GUIDE_PROPERTIES = "engine=Python\noption.tensor_parallel_degree=2\n"
GUIDE_REQUIREMENTS = "torch==2.0.1\n"  # the guide's pin; it conflicts with the worker's torch, so it is reported


def create_tar_gz(source_file: str, output_file: str) -> None:
    """The guide's packing code, verbatim."""
    with tarfile.open(output_file, "w:gz") as tar:
        tar.add(source_file, arcname=os.path.basename(source_file))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def guide_server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[ServerProcess]:
    """A modelhost server whose S3 client finds moto through AWS_ENDPOINT_URL, on a host with 4 (fake) GPUs."""
    env = {**S3_ENV, "AWS_ENDPOINT_URL": moto_endpoint, "MODELHOST_INVENTORY": INVENTORY}
    proc = ServerProcess(tmp_path_factory.mktemp("guide-home"), env=env).start()
    yield proc
    proc.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = unique("sagemaker-us-east-1")
    s3.create_bucket(Bucket=name)
    return name


def code_container(tmp_path: Path) -> Path:
    folder = write_echo_model(tmp_path / "code_container", properties=GUIDE_PROPERTIES, model_py=GUIDE_MODEL_PY)
    (folder / "requirements.txt").write_text(GUIDE_REQUIREMENTS)
    return folder


def create_endpoint(sm: Any, name: str, container: dict[str, Any], instance_type: str = "ml.g5.24xlarge") -> None:
    """The guide's step 4, with unique names."""
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE, **container})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "falcon40",
                "ModelName": name,
                "InstanceType": instance_type,
                "InitialInstanceCount": 1,
                "ModelDataDownloadTimeoutInSeconds": 3600,
                "ContainerStartupHealthCheckTimeoutInSeconds": 3600,
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def wait_in_service(sm: Any, name: str) -> None:
    try:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    except Exception:
        desc = sm.describe_endpoint(EndpointName=name)
        raise AssertionError(f"{name} is {desc['EndpointStatus']}: {desc.get('FailureReason')}") from None


def invoke_guide(runtime: Any, name: str) -> dict[str, Any]:
    """The guide's step 5."""
    response = runtime.invoke_endpoint(
        EndpointName=name,
        Body=json.dumps({"text": "How do I write a professional email?", "text_length": 150}),
        ContentType="application/json",
    )
    answer: dict[str, Any] = json.loads(response["Body"].read().decode("utf8"))
    return answer


def check_served_from_the_inner_folder(server: ServerProcess, runtime: Any, name: str) -> None:
    copies: dict[int, str] = {}
    for _ in range(40):
        answer = invoke_guide(runtime, name)
        assert answer["text"] == "How do I write a professional email?" and answer["text_length"] == 150
        assert Path(answer["model_dir"]).name == "code_container"
        assert answer["tensor_parallel_degree"] == "2"
        copies[answer["worker"]] = answer["gpus"]
        if len(copies) == 2:
            break
    assert sorted(copies.values()) == ["0,1", "2,3"]  # two copies: the nested serving.properties was read
    logs = httpx.get(f"{server.url}/_modelhost/endpoints/{name}/logs", timeout=30).text
    assert "holds only the folder code_container/" in logs
    assert "torch==2.0.1" in logs  # the nested requirements.txt was read (and its conflicting pin reported)


def test_the_guides_tarball_from_s3_deploys_and_answers(
    guide_server: ServerProcess, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code_container(tmp_path)
    create_tar_gz("code_container", "code_packaged.tar.gz")  # run from the folder that holds it, as the guide
    with tarfile.open("code_packaged.tar.gz") as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"code_container"}
    key = "code_container/deepspeed/code_packaged.tar.gz"
    s3.upload_file("code_packaged.tar.gz", bucket, key)  # what sage_session.upload_data does
    sm, runtime = guide_server.clients()
    name = unique("falcon40b-model-ds")

    create_endpoint(sm, name, {"ModelDataUrl": f"s3://{bucket}/{key}"})
    wait_in_service(sm, name)

    check_served_from_the_inner_folder(guide_server, runtime, name)
    sm.delete_endpoint(EndpointName=name)


def test_an_s3_prefix_holding_one_folder_deploys_from_it(
    guide_server: ServerProcess, s3: Any, bucket: str, tmp_path: Path
) -> None:
    folder = code_container(tmp_path)
    for path in folder.iterdir():
        s3.upload_file(str(path), bucket, f"uploads/code_container/{path.name}")
    s3.put_object(Bucket=bucket, Key="uploads/.DS_Store", Body=b"\x00")  # hidden junk beside it is ignored
    sm, runtime = guide_server.clients()
    name = unique("prefix-model")
    source = {"S3Uri": f"s3://{bucket}/uploads/", "S3DataType": "S3Prefix", "CompressionType": "None"}

    create_endpoint(sm, name, {"ModelDataSource": {"S3DataSource": source}})
    wait_in_service(sm, name)

    check_served_from_the_inner_folder(guide_server, runtime, name)
    sm.delete_endpoint(EndpointName=name)


@pytest.mark.slow
def test_engine_mode_serves_a_nested_serving_properties(
    guide_server: ServerProcess, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelhost.testing import SMOLLM2_ID, bundled_smollm2_gguf

    subprocess.run(
        [sys.executable, "-m", "modelhost", "models", "add", SMOLLM2_ID, str(bundled_smollm2_gguf())],
        check=True,
        env={**os.environ, "MODELHOST_HOME": str(guide_server.home)},
        capture_output=True,
        timeout=300,
    )
    monkeypatch.chdir(tmp_path)
    Path("smol").mkdir()
    Path("smol/serving.properties").write_text(f"option.model_id={SMOLLM2_ID}\noption.max_rolling_batch_size=2\n")
    create_tar_gz("smol", "smol.tar.gz")
    s3.upload_file("smol.tar.gz", bucket, "smol/smol.tar.gz")
    sm, runtime = guide_server.clients()
    name = unique("smol-nested")

    create_endpoint(sm, name, {"ModelDataUrl": f"s3://{bucket}/smol/smol.tar.gz"}, instance_type="ml.m5.xlarge")
    wait_in_service(sm, name)

    body = {"inputs": "Paris is the capital of", "parameters": {"max_new_tokens": 8}}
    response = runtime.invoke_endpoint(EndpointName=name, ContentType="application/json", Body=json.dumps(body))
    answer = json.loads(response["Body"].read())
    assert isinstance(answer["generated_text"], str) and answer["generated_text"].strip()
    sm.delete_endpoint(EndpointName=name)
