"""UpdateEndpoint: blue/green with no failed request under load, and rollback when the new fleet fails."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.integration.server import SteadyLoad, write_echo_model

FAST = {"Delay": 1, "MaxAttempts": 120}
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def model_and_config(sm: Any, name: str, folder: Path, version: str, count: int = 1) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder), "Environment": {"ECHO_ENV": version}},
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": count,
            }
        ],
    )


def test_update_under_load_loses_nothing(sm: Any, runtime: Any, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "echo")
    blue, green, name = unique("blue"), unique("green"), unique("bg")
    model_and_config(sm, blue, folder, "blue")
    model_and_config(sm, green, folder, "green", count=2)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=blue)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    with SteadyLoad(runtime, name) as load:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=green)
        desc = sm.describe_endpoint(EndpointName=name)
        assert desc["EndpointStatus"] == "Updating"
        assert desc["PendingDeploymentSummary"]["EndpointConfigName"] == green
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
        seen = len(load.versions)
        while len(load.versions) < seen + 20:
            pass
    assert load.errors == []
    assert load.versions[0] == "blue" and load.versions[-1] == "green"
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == green
    assert "PendingDeploymentSummary" not in desc
    assert desc["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_failed_update_rolls_back_and_keeps_serving(sm: Any, runtime: Any, tmp_path: Path) -> None:
    good = write_echo_model(tmp_path / "good")
    bad = write_echo_model(tmp_path / "bad", model_py="import no_such_module_for_update\n")
    old, new, name = unique("old"), unique("broken"), unique("rb")
    model_and_config(sm, old, good, "old")
    model_and_config(sm, new, bad, "new")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=old)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    with SteadyLoad(runtime, name) as load:
        sm.update_endpoint(EndpointName=name, EndpointConfigName=new)
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    assert load.errors == [] and set(load.versions) == {"old"}
    desc = sm.describe_endpoint(EndpointName=name)
    assert desc["EndpointConfigName"] == old
    assert desc["FailureReason"].startswith("Update rolled back: load failed:")
    assert "no_such_module_for_update" in desc["FailureReason"]
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)


def test_retain_all_variant_properties(sm: Any, runtime: Any, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "echo")
    first, second, name = unique("first"), unique("second"), unique("retain")
    model_and_config(sm, first, folder, "first")
    model_and_config(sm, second, folder, "second", count=1)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=first)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}]
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    sm.update_endpoint(
        EndpointName=name,
        EndpointConfigName=second,
        RetainAllVariantProperties=True,
        ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}],
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST)
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert (variant["DesiredInstanceCount"], variant["CurrentInstanceCount"]) == (2, 2)
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig=FAST)
