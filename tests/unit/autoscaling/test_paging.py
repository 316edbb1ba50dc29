"""MaxResults and NextToken."""

from __future__ import annotations

import pytest

from modelhost.autoscaling.errors import InvalidNextToken
from modelhost.autoscaling.paging import page
from modelhost.errors import ValidationError


def test_pages_follow_one_another_and_the_last_has_no_token() -> None:
    items = list(range(7))
    params = {"ServiceNamespace": "sagemaker", "MaxResults": 3}
    first, token = page(items, params)
    second, token2 = page(items, {**params, "NextToken": token})
    third, token3 = page(items, {**params, "NextToken": token2})
    assert (first, second, third, token3) == ([0, 1, 2], [3, 4, 5], [6], None)
    assert page(items, {"ServiceNamespace": "sagemaker"}) == (items, None)  # 50 by default


def test_max_results_is_1_to_50() -> None:
    for value in (0, 51):
        with pytest.raises(ValidationError, match="at 'maxResults' failed to satisfy constraint"):
            page([1], {"MaxResults": value})


def test_tokens_from_elsewhere_or_another_query_are_refused() -> None:
    _, token = page(list(range(5)), {"ServiceNamespace": "sagemaker", "MaxResults": 2})
    with pytest.raises(InvalidNextToken, match="different query"):
        page(list(range(5)), {"ServiceNamespace": "ecs", "MaxResults": 2, "NextToken": token})
    for bad in ("bogus", "e30=", "eyJvIjotMSwiZiI6IngifQ=="):
        with pytest.raises(InvalidNextToken):
            page([1], {"NextToken": bad})
