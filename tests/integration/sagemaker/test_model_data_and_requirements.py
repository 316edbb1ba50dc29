"""Model data from S3 (moto's server), requirements.txt installs and conflicts, strict instance types."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.integration.server import ServerProcess, deploy, wait_status, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 120}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[ServerProcess]:
    """A modelhost server whose S3 client is pointed at moto only through the environment."""
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": moto_endpoint, "MODELHOST_STRICT_INSTANCE_TYPES": "1"}
    proc = ServerProcess(tmp_path_factory.mktemp("s3home"), env=env).start()
    yield proc
    proc.stop()


def targz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_model_data_from_s3_tarball_and_prefix(s3_server: ServerProcess, moto_endpoint: str, tmp_path: Path) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        **{k.lower(): v for k, v in S3_ENV.items() if "KEY" in k},
        region_name="us-east-1",
    )
    bucket = unique("models")
    s3.create_bucket(Bucket=bucket)
    echo = write_echo_model(tmp_path / "echo")
    files = {p.name: p.read_text() for p in echo.iterdir()}
    s3.put_object(Bucket=bucket, Key="echo/model.tar.gz", Body=targz(files))
    for name, text in files.items():
        s3.put_object(Bucket=bucket, Key=f"raw/{name}", Body=text.encode())
    sm, runtime = s3_server.clients()

    tarball = unique("s3tar")
    deploy(sm, tarball, f"s3://{bucket}/echo/model.tar.gz")
    prefix = unique("s3prefix")
    sm.create_model(
        ModelName=prefix,
        PrimaryContainer={
            "Image": "djl-inference:0.22.1",
            "ModelDataSource": {
                "S3DataSource": {
                    "S3Uri": f"s3://{bucket}/raw/",
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            },
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=prefix,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": prefix,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName=prefix, EndpointConfigName=prefix)
    missing = unique("s3missing")
    deploy(sm, missing, f"s3://{bucket}/nothing/here.tar.gz")

    for name in (tarball, prefix):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
        body = json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"from s3")["Body"].read())
        assert body["echo"] == "from s3"
    desc = wait_status(sm, missing)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("download failed:")
    assert f"s3://{bucket}/nothing/here.tar.gz" in desc["FailureReason"]


def test_strict_instance_types_refuse_gpus_the_host_lacks(s3_server: ServerProcess, tmp_path: Path) -> None:
    sm, _ = s3_server.clients()
    name = unique("gpu")
    with pytest.raises(ClientError) as exc:
        deploy(sm, name, str(write_echo_model(tmp_path / "echo")), instance_type="ml.g5.12xlarge")
    assert exc.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert exc.value.response["Error"]["Message"].startswith(
        "The account-level service limit 'ml.g5.12xlarge for endpoint usage' is 0 Instances"
    )
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName=name)  # nothing half-made


REQUIREMENTS_MODEL = """
from djl_python import Output
import tabulate

def handle(inputs):
    if inputs.is_empty():
        return None
    return Output().add(tabulate.tabulate([[1, 2]]))
"""


def test_requirements_are_installed_and_conflicts_reported(server: ServerProcess, tmp_path: Path) -> None:
    sm, runtime = server.clients()
    folder = write_echo_model(tmp_path / "req", model_py=REQUIREMENTS_MODEL)
    (folder / "requirements.txt").write_text("tabulate\ntorch==1.13.1\nboto3\n")
    name = unique("req")
    deploy(sm, name, str(folder))
    desc = wait_status(sm, name, timeout_s=300)
    assert desc["EndpointStatus"] == "InService", desc.get("FailureReason")
    assert "1  2" in runtime.invoke_endpoint(EndpointName=name, Body=b"x")["Body"].read().decode()
    logs = httpx.get(f"{server.url}/_modelhost/endpoints/{name}/logs").text
    assert "torch==1.13.1" in logs and "conflict" in logs.lower()
    sm.delete_endpoint(EndpointName=name)

    broken = write_echo_model(tmp_path / "broken")
    (broken / "requirements.txt").write_text("modelhost-no-such-package-xyz==0.0.1\n")
    name = unique("badreq")
    deploy(sm, name, str(broken))
    desc = wait_status(sm, name, timeout_s=300)
    assert desc["EndpointStatus"] == "Failed"
    assert desc["FailureReason"].startswith("requirements failed:")
    assert "modelhost-no-such-package-xyz" in desc["FailureReason"]
