"""Models, endpoint configs and endpoints through plain boto3: shapes, errors, pagination."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "123456789012"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


def make_model(sm: Any, name: str, tmp_path: Path) -> str:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "model.py").write_text("def handle(i):\n    return None\n")
    return sm.create_model(ModelName=name, PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder)})["ModelArn"]


def test_model_lifecycle(sm: Any, tmp_path: Path) -> None:
    name = unique("Model")
    arn = make_model(sm, name, tmp_path)
    assert arn == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/{name.lower()}"
    desc = sm.describe_model(ModelName=name)
    assert desc["ModelName"] == name and desc["ModelArn"] == arn
    assert isinstance(desc["CreationTime"], datetime.datetime)
    assert desc["PrimaryContainer"]["Image"] == IMAGE
    listed = sm.list_models(NameContains=name)["Models"]
    assert [m["ModelName"] for m in listed] == [name]
    with pytest.raises(ClientError) as exc:
        make_model(sm, name, tmp_path / "again")
    assert error_of(exc) == ("ValidationException", f'Cannot create already existing model "{arn}".')
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as exc:
        sm.describe_model(ModelName=name)
    assert error_of(exc) == ("ValidationException", f'Could not find model "{arn}".')
    with pytest.raises(ClientError) as exc:
        sm.delete_model(ModelName=name)
    assert error_of(exc)[1].startswith("Could not find model")


def test_region_comes_from_the_client(server: Any, tmp_path: Path) -> None:
    sm_west, _ = server.clients(region="eu-west-1")
    name = unique("west")
    arn = make_model(sm_west, name, tmp_path)
    assert arn.startswith("arn:aws:sagemaker:eu-west-1:")


def test_validation_errors_are_worded_as_aws(sm: Any, tmp_path: Path) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName="x" * 64, PrimaryContainer={"Image": IMAGE})
    code, message = error_of(exc)
    assert code == "ValidationException"
    assert message.startswith("1 validation error detected: Value '" + "x" * 64 + "' at 'modelName' failed to satisfy")
    assert "Member must have length less than or equal to 63" in message
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName="bad_name!", PrimaryContainer={"Image": IMAGE})
    assert "Member must satisfy regular expression pattern" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.list_models(MaxResults=1000, SortBy="Bogus")
    code, message = error_of(exc)
    assert message.startswith("2 validation errors detected:")
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=unique("nocontainer"))
    assert error_of(exc) == (
        "ValidationException",
        "Either PrimaryContainer or Containers must be specified.",
    )
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=unique("badurl"), PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "ftp://x/y"})
    assert error_of(exc)[0] == "ValidationException"


def test_endpoint_config_lifecycle_and_errors(sm: Any, tmp_path: Path) -> None:
    model = unique("m")
    make_model(sm, model, tmp_path)
    name = unique("cfg")
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "InstanceType": "ml.g5.12xlarge",
        "InitialInstanceCount": 1,
    }
    arn = sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])["EndpointConfigArn"]
    desc = sm.describe_endpoint_config(EndpointConfigName=name)
    assert desc["EndpointConfigArn"] == arn
    assert desc["ProductionVariants"][0]["InitialVariantWeight"] == 1.0
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    assert error_of(exc) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{arn}".',
    )
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"), ProductionVariants=[{**variant, "ModelName": "no-such-model"}]
        )
    assert error_of(exc)[1] == f'Could not find model "arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/no-such-model".'
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint_config(
            EndpointConfigName=unique("cfg"),
            ProductionVariants=[{**variant, "InstanceType": "ml.bogus.xlarge"}],
        )
    code, message = error_of(exc)
    assert "at 'productionVariants.1.member.instanceType'" in message
    assert "Member must satisfy enum value set" in message
    sm.delete_endpoint_config(EndpointConfigName=name)
    with pytest.raises(ClientError) as exc:
        sm.describe_endpoint_config(EndpointConfigName=name)
    assert error_of(exc) == ("ValidationException", f'Could not find endpoint configuration "{arn}".')


def test_endpoint_errors(sm: Any, runtime: Any) -> None:
    missing = unique("missing")
    arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{missing}"
    for call in (sm.describe_endpoint, sm.delete_endpoint):
        with pytest.raises(ClientError) as exc:
            call(EndpointName=missing)
        assert error_of(exc) == ("ValidationException", f'Could not find endpoint "{arn}".')
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName=missing, EndpointConfigName="no-such-config")
    assert error_of(exc)[1] == (
        f'Could not find endpoint configuration "arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint-config/no-such-config".'
    )
    # a failed create leaves nothing behind
    with pytest.raises(ClientError):
        sm.describe_endpoint(EndpointName=missing)
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=missing, Body=b"{}")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert exc.value.response["Error"]["Message"] == f"Endpoint {missing} of account {ACCOUNT} not found."


def test_unknown_operation_is_a_clear_error(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.list_training_jobs()
    assert "does not implement" in error_of(exc)[1]


def test_paginators_walk_every_page(sm: Any, tmp_path: Path) -> None:
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        make_model(sm, name, tmp_path)
    pages = list(sm.get_paginator("list_models").paginate(NameContains=prefix, PaginationConfig={"PageSize": 2}))
    assert [len(p["Models"]) for p in pages] == [2, 2, 1]
    seen = [m["ModelName"] for p in pages for m in p["Models"]]
    assert sorted(seen) == sorted(names)
    assert "NextToken" not in pages[-1]
    ascending = sm.list_models(NameContains=prefix, SortBy="Name", SortOrder="Ascending")["Models"]
    assert [m["ModelName"] for m in ascending] == sorted(names)
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    assert sm.list_models(NameContains=prefix, CreationTimeAfter=future)["Models"] == []
    with pytest.raises(ClientError) as exc:
        sm.list_models(NameContains="other", NextToken=pages[0]["NextToken"])
    assert error_of(exc)[0] == "ValidationException"


def test_tags_on_models_configs_and_endpoints(sm: Any, tmp_path: Path) -> None:
    name = unique("tagged")
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.py").write_text("def handle(i):\n    return None\n")
    model_arn = sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder)},
        Tags=[{"Key": "team", "Value": "ml"}],
    )["ModelArn"]
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.add_tags(ResourceArn=model_arn, Tags=[{"Key": "team", "Value": "llm"}, {"Key": "cost", "Value": "7"}])
    assert sorted((t["Key"], t["Value"]) for t in sm.list_tags(ResourceArn=model_arn)["Tags"]) == [
        ("cost", "7"),
        ("team", "llm"),
    ]
    sm.delete_tags(ResourceArn=model_arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "cost", "Value": "7"}]
    config_arn = sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large"}],
    )["EndpointConfigArn"]
    assert sm.list_tags(ResourceArn=config_arn)["Tags"] == []  # the SageMaker SDK reads these on update
    with pytest.raises(ClientError) as exc:
        sm.list_tags(ResourceArn=model_arn.replace(name.lower(), "nope"))
    assert error_of(exc)[0] == "ValidationException"
