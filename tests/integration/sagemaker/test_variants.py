"""Two production variants: traffic split by weight, TargetVariant, and the invoked variant reported."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.server import write_echo_model

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
FAST = {"Delay": 1, "MaxAttempts": 60}


def test_weighted_split_and_target_variant(sm: Any, runtime: Any, tmp_path: Path) -> None:
    folder = write_echo_model(tmp_path / "echo")
    for name in ("split-a", "split-b"):
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": str(folder), "Environment": {"ECHO_ENV": name}},
        )
    sm.create_endpoint_config(
        EndpointConfigName="split",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "split-a", "InstanceType": "ml.m5.large", "InitialVariantWeight": 3},
            {"VariantName": "B", "ModelName": "split-b", "InstanceType": "ml.m5.large", "InitialVariantWeight": 1},
        ],
    )
    sm.create_endpoint(EndpointName="split", EndpointConfigName="split")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="split", WaiterConfig=FAST)

    seen: Counter[str] = Counter()
    for _ in range(400):
        response = runtime.invoke_endpoint(EndpointName="split", Body=b"x")
        body = json.loads(response["Body"].read())
        assert body["env"] == f"split-{response['InvokedProductionVariant'].lower()}"
        seen[response["InvokedProductionVariant"]] += 1
    assert 0.67 < seen["A"] / 400 < 0.83  # 3:1 → 75 %

    for _ in range(20):
        response = runtime.invoke_endpoint(EndpointName="split", Body=b"x", TargetVariant="B")
        assert response["InvokedProductionVariant"] == "B"
        assert json.loads(response["Body"].read())["env"] == "split-b"

    sm.update_endpoint_weights_and_capacities(
        EndpointName="split", DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredWeight": 0.0}]
    )
    sm.get_waiter("endpoint_in_service").wait(EndpointName="split", WaiterConfig=FAST)
    variants = {v["VariantName"]: v for v in sm.describe_endpoint(EndpointName="split")["ProductionVariants"]}
    assert variants["A"]["CurrentWeight"] == 0.0 and variants["B"]["CurrentWeight"] == 1.0
    assert {
        runtime.invoke_endpoint(EndpointName="split", Body=b"x")["InvokedProductionVariant"] for _ in range(30)
    } == {"B"}
    sm.delete_endpoint(EndpointName="split")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="split", WaiterConfig=FAST)
