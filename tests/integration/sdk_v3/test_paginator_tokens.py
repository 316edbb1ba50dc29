"""The Logs API's nextTokens resume botocore paginators (`PaginationConfig={"StartingToken": token}`), as the
SageMaker SDK's deploy waiter uses FilterLogEvents' nextToken on every poll (v2 and v3 alike).

botocore first reads a StartingToken as its own resume token (standard base64 of a JSON object whose members
become request parameters) and only when that fails sends it on as the service's. A page token that decoded
that way was split into unknown parameters (`ParamValidationError: Unknown parameter in input: "p"`) and ended
ModelBuilder.deploy() half way; the tests run botocore's own paginator code, against a stub and a server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from modelhost.monitoring.logs import tokens
from tests.integration.server import ServerProcess, deploy, write_echo_model

GROUP = "/aws/sagemaker/Endpoints/sdk-v3-demo"
WAIT = {"Delay": 1, "MaxAttempts": 120}


def logs_client(url: str = "http://127.0.0.1:9") -> Any:
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    return session.client("logs", endpoint_url=url)


def positions() -> Iterator[Any]:
    """Positions of every shape the operations use: per-stream offsets (FilterLogEvents), sort keys."""
    streams = ["AllTraffic/alltraffic-0", "AllTraffic/alltraffic-1", "modelhost/endpoint-events", "b/x-1-2"]
    for count, offset in itertools.product(range(1, 5), [0, 1, 7, 63, 64, 255, 4096, 123456789, 2**40]):
        yield {name: offset + i for i, name in enumerate(streams[:count])}
    for name, time_ms in itertools.product(streams, [0, 1, 1796174138123, 2**53]):
        yield [time_ms, name]
        yield [name]


@pytest.mark.parametrize(
    ("operation", "method", "params"),
    [
        (
            "FilterLogEvents",
            "filter_log_events",
            {"logGroupName": GROUP, "logStreamNamePrefix": "AllTraffic/", "limit": 10},
        ),
        ("FilterLogEvents", "filter_log_events", {"logGroupName": GROUP, "filterPattern": "ERROR", "limit": 1}),
        ("DescribeLogStreams", "describe_log_streams", {"logGroupName": GROUP, "limit": 1}),
        ("DescribeLogGroups", "describe_log_groups", {"logGroupNamePrefix": "/aws/sagemaker/", "limit": 2}),
    ],
)
def test_botocore_paginators_send_every_page_token_unchanged(
    operation: str, method: str, params: dict[str, Any]
) -> None:
    client = logs_client()
    stub = Stubber(client)
    cases = list(positions())
    for position in cases:
        token = tokens.page_token(operation, params, position)
        stub.add_response(method, {}, expected_params={**params, "nextToken": token})
    limit = params["limit"]
    with stub:
        for position in cases:
            token = tokens.page_token(operation, params, position)
            query = {k: v for k, v in params.items() if k != "limit"}
            pages = client.get_paginator(method).paginate(
                **query, PaginationConfig={"StartingToken": token, "PageSize": limit}
            )
            assert len(list(pages)) == 1  # the stub checked that nextToken arrived as issued, nothing else
    stub.assert_no_pending_responses()


@pytest.fixture(scope="module")
def two_endpoints(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    sm, _ = server.clients()
    names = ["paged-logs-a", "paged-logs-b"]
    for name in names:
        deploy(sm, name, str(write_echo_model(tmp_path_factory.mktemp(name) / "m")))
    for name in names:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)
    yield names
    for name in names:
        sm.delete_endpoint(EndpointName=name)
        sm.delete_endpoint_config(EndpointConfigName=name)
        sm.delete_model(ModelName=name)


def test_filter_log_events_resumes_from_a_starting_token_as_the_sdk_waiter_does(
    server: ServerProcess, two_endpoints: list[str]
) -> None:
    logs = logs_client(server.url)
    group = f"/aws/sagemaker/Endpoints/{two_endpoints[0]}"
    every = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="AllTraffic/")["events"]
    assert len(every) >= 6, every  # the worker's start-up lines
    paginator = logs.get_paginator("filter_log_events")
    config: dict[str, Any] = {"MaxItems": 2, "PageSize": 2}  # the SDK's loop, two events per poll
    seen: list[str] = []
    for _ in range(3):
        for page in paginator.paginate(logGroupName=group, logStreamNamePrefix="AllTraffic/", PaginationConfig=config):
            assert "nextToken" in page  # more events follow
            config["StartingToken"] = page["nextToken"]
            seen += [e["eventId"] for e in page["events"]]
    assert seen == [e["eventId"] for e in every[:6]]


def test_describe_paginators_resume_from_a_starting_token(server: ServerProcess, two_endpoints: list[str]) -> None:
    logs = logs_client(server.url)
    streams = logs.get_paginator("describe_log_streams")
    group = f"/aws/sagemaker/Endpoints/{two_endpoints[0]}"
    first = next(iter(streams.paginate(logGroupName=group, PaginationConfig={"PageSize": 1, "MaxItems": 1})))
    rest = streams.paginate(logGroupName=group, PaginationConfig={"PageSize": 1, "StartingToken": first["nextToken"]})
    names = [s["logStreamName"] for page in [first, *rest] for s in page["logStreams"]]
    assert names == [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert len(names) == 2  # the instance's stream and the controller's

    groups = logs.get_paginator("describe_log_groups")
    prefix = "/aws/sagemaker/Endpoints/paged-logs-"
    first = next(iter(groups.paginate(logGroupNamePrefix=prefix, PaginationConfig={"PageSize": 1, "MaxItems": 1})))
    rest = groups.paginate(
        logGroupNamePrefix=prefix, PaginationConfig={"PageSize": 1, "StartingToken": first["nextToken"]}
    )
    assert [g["logGroupName"] for page in [first, *rest] for g in page["logGroups"]] == [
        f"/aws/sagemaker/Endpoints/{name}" for name in two_endpoints
    ]


def test_old_style_tokens_are_what_botocore_misread() -> None:
    """Why the prefix: the token format before it (plain base64url JSON) is taken apart by botocore."""
    import base64
    import json

    from botocore.exceptions import ParamValidationError

    old = base64.urlsafe_b64encode(json.dumps({"p": {"AllTraffic/alltraffic-0": 64}, "q": "0" * 12}).encode()).decode()
    pages = (
        logs_client()
        .get_paginator("filter_log_events")
        .paginate(logGroupName=GROUP, PaginationConfig={"StartingToken": old})
    )
    with pytest.raises(ParamValidationError, match='Unknown parameter in input: "p"'):
        list(pages)
