from __future__ import annotations

import pytest

from modelhost.api.pagination import epoch_seconds, page
from modelhost.errors import ValidationError

ITEMS = [{"Name": f"n{i}", "CreationTime": 100.0 + i, "Status": "InService" if i % 2 else "Failed"} for i in range(5)]
SORT = {"Name": "Name", "CreationTime": "CreationTime", "Status": "Status"}


def test_default_is_newest_first_and_pages_follow_tokens() -> None:
    first, token = page(ITEMS, {"MaxResults": 2}, name_key="Name", sort_keys=SORT)
    assert [i["Name"] for i in first] == ["n4", "n3"]
    second, token2 = page(ITEMS, {"MaxResults": 2, "NextToken": token}, name_key="Name", sort_keys=SORT)
    assert [i["Name"] for i in second] == ["n2", "n1"]
    last, none = page(ITEMS, {"MaxResults": 2, "NextToken": token2}, name_key="Name", sort_keys=SORT)
    assert [i["Name"] for i in last] == ["n0"] and none is None
    assert len({token, token2}) == 2


def test_filters() -> None:
    items, _ = page(
        ITEMS,
        {"StatusEquals": "Failed", "SortOrder": "Ascending"},
        name_key="Name",
        sort_keys=SORT,
        status_key="Status",
    )
    assert [i["Name"] for i in items] == ["n0", "n2", "n4"]
    items, _ = page(
        ITEMS,
        {"CreationTimeAfter": 102, "CreationTimeBefore": "1970-01-01T00:01:44Z"},
        name_key="Name",
        sort_keys=SORT,
    )
    assert [i["Name"] for i in items] == ["n3"]
    items, _ = page(ITEMS, {"NameContains": "N4"}, name_key="Name", sort_keys=SORT)
    assert [i["Name"] for i in items] == ["n4"]


def test_token_from_another_query_or_garbage_is_rejected() -> None:
    _, token = page(ITEMS, {"MaxResults": 1}, name_key="Name", sort_keys=SORT)
    with pytest.raises(ValidationError):
        page(ITEMS, {"MaxResults": 1, "NextToken": token, "NameContains": "x"}, name_key="Name", sort_keys=SORT)
    with pytest.raises(ValidationError):
        page(ITEMS, {"NextToken": "garbage!"}, name_key="Name", sort_keys=SORT)


def test_timestamps_accept_int_float_and_iso() -> None:
    assert epoch_seconds(1704067200) == 1704067200.0
    assert epoch_seconds(1.5) == 1.5
    assert epoch_seconds("2024-01-01T00:00:00Z") == 1704067200.0
    with pytest.raises(ValidationError):
        epoch_seconds("yesterday")
