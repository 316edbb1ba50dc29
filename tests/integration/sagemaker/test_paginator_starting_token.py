"""Every NextToken the server issues can be handed to a botocore paginator as StartingToken (the SageMaker
Python SDK resumes that way): botocore passes `mh1.` tokens through instead of reading them as its own."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from modelhost import page_tokens
from tests.integration.server import ServerProcess


def test_list_models_resumes_from_a_starting_token(server: ServerProcess) -> None:
    sm, _ = server.clients()
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.22.1-deepspeed0.8.3-cu118"
    names = [f"paged-model-{i}" for i in range(3)]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"Image": image, "ModelDataUrl": "s3://bucket/m.tar.gz"})
    try:
        paginator = sm.get_paginator("list_models")
        query: dict[str, Any] = {"NameContains": "paged-model-", "SortBy": "Name", "SortOrder": "Ascending"}
        first = next(iter(paginator.paginate(**query, PaginationConfig={"PageSize": 1, "MaxItems": 1})))
        token = first["NextToken"]
        assert token.startswith(page_tokens.PREFIX)
        rest = paginator.paginate(**query, PaginationConfig={"PageSize": 1, "StartingToken": token})
        seen = [m["ModelName"] for page in [first, *rest] for m in page["Models"]]
        assert seen == names
    finally:
        for name in names:
            sm.delete_model(ModelName=name)


def test_list_metrics_resumes_from_a_starting_token(server: ServerProcess) -> None:
    cw = boto3.client("cloudwatch", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="y", config=Config(retries={"max_attempts": 1}))  # fmt: skip
    data = [{"MetricName": f"Paged{i}", "Value": 1.0} for i in range(600)]  # ListMetrics pages hold 500
    for start in range(0, len(data), 100):
        cw.put_metric_data(Namespace="Custom/Paging", MetricData=data[start : start + 100])
    first = cw.list_metrics(Namespace="Custom/Paging")
    token = first["NextToken"]
    assert token.startswith(page_tokens.PREFIX)
    paginator = cw.get_paginator("list_metrics")
    rest = paginator.paginate(Namespace="Custom/Paging", PaginationConfig={"StartingToken": token})
    names = {m["MetricName"] for page in [first, *rest] for m in page["Metrics"]}
    assert names == {d["MetricName"] for d in data}


def test_a_token_of_another_form_is_refused_not_misread() -> None:
    assert page_tokens.decode("eyJvIjogMX0=") is None  # base64 JSON without the prefix: not ours
    assert page_tokens.decode(page_tokens.encode({"o": 1})) == {"o": 1}
    assert page_tokens.decode("mh1.!!!") is None
