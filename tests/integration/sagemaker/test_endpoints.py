"""Deploy, invoke and delete with boto3 against real worker processes running a DJL-style echo handler."""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.server import deploy, wait_status, write_echo_model

ACCOUNT = "123456789012"
FAST = {"Delay": 1, "MaxAttempts": 120}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pack(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in folder.iterdir():
            tar.add(path, arcname=path.name)
    return target


def test_walkthrough_with_echo_handler(sm: Any, runtime: Any, echo_model: Path, tmp_path: Path) -> None:
    name = unique("Echo")
    archive = pack(echo_model, tmp_path / "model.tar.gz")
    deploy(
        sm,
        name,
        archive.as_uri(),
        instance_type="ml.g5.24xlarge",
        count=2,
        environment={"ECHO_ENV": "from-env"},
    )
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointStatus"] == "Creating"  # readable at once, as the waiter needs
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointArn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{name.lower()}"
    variant = desc["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == 2 and variant["DesiredInstanceCount"] == 2
    assert variant["CurrentWeight"] == 1.0
    assert variant["DeployedImages"][0]["SpecifiedImage"].endswith("djl-inference:0.22.1-deepspeed0.8.3-cu118")
    listed = sm.list_endpoints(NameContains=name, StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [name]

    pids = set()
    for _ in range(20):  # ties go to a random instance: both serve
        response = runtime.invoke_endpoint(
            EndpointName=name,
            ContentType="application/json",
            Accept="application/json",
            CustomAttributes="greeting=hello;other=1",
            Body=json.dumps({"inputs": "hi"}),
        )
        assert response["InvokedProductionVariant"] == "AllTraffic"
        assert response["ContentType"] == "application/json"
        assert response["CustomAttributes"] == "echoed=1"
        body = json.loads(response["Body"].read())
        assert body["echo"] == '{"inputs": "hi"}'
        assert body["custom"] == "hello"
        assert body["env"] == "from-env"
        assert body["init_properties"]["engine"] == "Python"
        assert Path(body["init_properties"]["model_dir"]).is_dir()
        pids.add(body["worker"])
    assert len(pids) == 2  # both instances served

    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", CustomAttributes="fail=yes")
    error = exc.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["Error"]["Message"].startswith('Received client error (424) from primary with message "')
    assert error["OriginalStatusCode"] == 424
    assert "asked to fail" in error["OriginalMessage"]
    assert error["LogStreamArn"].startswith("arn:aws:logs:us-east-1:")

    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x" * (6 * 1024 * 1024 + 1))
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x", TargetVariant="Nope")
    assert exc.value.response["Error"]["Code"] == "ValidationError"

    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=b"{}")
    assert exc.value.response["Error"]["Message"] == f"Endpoint {name} of account {ACCOUNT} not found."
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def test_a_folder_deploys_in_place_and_deleting_config_and_model_keeps_it_serving(
    sm: Any, runtime: Any, echo_model: Path
) -> None:
    name = unique("inplace")
    deploy(sm, name, str(echo_model))
    sm.delete_endpoint_config(EndpointConfigName=name)  # AWS allows both while in use
    sm.delete_model(ModelName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    body = json.loads(runtime.invoke_endpoint(EndpointName=name, Body=b"ping")["Body"].read())
    assert body["echo"] == "ping"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_in_progress_endpoint_cannot_be_deleted_or_invoked(sm: Any, runtime: Any, tmp_path: Path) -> None:
    slow = write_echo_model(
        tmp_path / "slow",
        model_py="import time\nfrom djl_python import Output\n"
        "def handle(inputs):\n    time.sleep(3)\n    return None if inputs.is_empty() else Output().add('ok')\n",
    )
    name = unique("slow")
    deploy(sm, name, str(slow))
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{name.lower()}"
    with pytest.raises(ClientError) as exc:
        sm.delete_endpoint(EndpointName=name)
    assert exc.value.response["Error"]["Message"] == f'Cannot update in-progress endpoint "{arn}".'
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as exc:
        deploy(sm, name, str(slow))
    assert "Cannot create already existing model" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert exc.value.response["Error"]["Message"] == f'Cannot create already existing endpoint "{arn}".'
    assert wait_status(sm, name)["EndpointStatus"] == "InService"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)
