"""The tokens this server issues: bound to their stream or query, refused otherwise."""

from __future__ import annotations

import base64

import pytest

from modelhost.monitoring.logs import tokens
from modelhost.monitoring.logs.errors import InvalidParameter

GROUP, STREAM = "/aws/sagemaker/Endpoints/e", "AllTraffic/alltraffic-0"


def test_stream_tokens_round_trip_and_are_the_same_for_the_same_position() -> None:
    token = tokens.stream_token("f", 1234, GROUP, STREAM)
    assert token.startswith("f/1234/")
    assert token == tokens.stream_token("f", 1234, GROUP, STREAM)
    assert tokens.parse_stream_token(token, GROUP, STREAM) == ("f", 1234)
    back = tokens.stream_token("b", 0, GROUP, STREAM)
    assert back.startswith("b/") and tokens.parse_stream_token(back, GROUP, STREAM) == ("b", 0)


@pytest.mark.parametrize(
    "token",
    [
        "f/1234/000000000000",  # wrong tag
        "b" + tokens.stream_token("f", 1234, GROUP, STREAM)[1:],  # direction changed
        tokens.stream_token("f", 1234, GROUP, STREAM).replace("1234", "1235"),  # offset changed
        tokens.stream_token("f", 1234, GROUP, "AllTraffic/alltraffic-1"),  # another stream's
        "f/-1/abcdefabcdef",
        "garbage",
        "",
    ],
)
def test_stream_tokens_not_issued_for_this_stream_are_refused(token: str) -> None:
    with pytest.raises(InvalidParameter, match="not valid for this log stream"):
        tokens.parse_stream_token(token, GROUP, STREAM)


def test_page_tokens_are_bound_to_their_query() -> None:
    params = {"logGroupName": GROUP, "limit": 2}
    token = tokens.page_token("DescribeLogStreams", params, ["b"])
    assert tokens.parse_page_token("DescribeLogStreams", {**params, "nextToken": token}) == ["b"]
    assert tokens.parse_page_token("DescribeLogStreams", params) is None
    with pytest.raises(InvalidParameter, match="different request"):
        tokens.parse_page_token("DescribeLogStreams", {**params, "limit": 3, "nextToken": token})
    with pytest.raises(InvalidParameter, match="different request"):
        tokens.parse_page_token("FilterLogEvents", {**params, "nextToken": token})


@pytest.mark.parametrize(
    "token", ["!!!", base64.urlsafe_b64encode(b"[1,2]").decode(), base64.urlsafe_b64encode(b"{").decode(), "x" * 70000]
)
def test_page_tokens_not_issued_here_are_refused(token: str) -> None:
    with pytest.raises(InvalidParameter, match="not issued by this server"):
        tokens.parse_page_token("DescribeLogGroups", {"nextToken": token})
