"""ColdStarts, the scale-to-zero state machine's first step: at zero, a variant that allows zero goes to one
instance on the first request (one write, one activity, one wake); later requests write nothing; a variant
that does not allow zero, an endpoint not InService, or an unknown variant is not started."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from modelhost.controller.cold_start import ColdStarts
from modelhost.resources.status import EndpointStatus
from modelhost.store.records import Records
from modelhost.store.sqlite import SqliteStore
from tests.fakes.clock import FakeClock
from tests.fakes.records import endpoint


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    store = SqliteStore(tmp_path / "modelhost.db")
    store.open()
    records = Records(store)
    at_zero = endpoint("ep", status=EndpointStatus.IN_SERVICE)
    states = tuple(replace(s, desired_count=0, current_count=0) for s in at_zero.states)
    records.endpoints.insert("ep", replace(at_zero, states=states))
    yield records
    store.close()


def desired(records: Records) -> int:
    found = records.endpoints.get("ep")
    assert found is not None and (state := found.state("AllTraffic")) is not None
    return state.desired_count


def test_the_first_request_starts_one_instance_and_later_ones_write_nothing(records: Records) -> None:
    woken: list[int] = []
    notes: list[tuple[str, str, int, str]] = []
    cold = ColdStarts(records, lambda e, v: True, lambda: woken.append(1), FakeClock(),
                      lambda e, v, n, cause: notes.append((e, v, n, cause)))  # fmt: skip
    assert cold.request("EP", "AllTraffic") is True
    assert desired(records) == 1 and len(woken) == 1 and notes[0][:3] == ("ep", "AllTraffic", 1)
    found = records.endpoints.get("ep")
    assert found is not None and found.status == EndpointStatus.UPDATING  # as UpdateEndpointWeightsAndCapacities
    assert cold.request("ep", "AllTraffic") is True  # under way: the request waits, nothing is written again
    assert len(woken) == 1 and len(notes) == 1


def test_no_start_without_min_capacity_zero_or_for_unknown_variants(records: Records) -> None:
    woken: list[int] = []

    def cold(allows: bool) -> ColdStarts:
        return ColdStarts(records, lambda e, v: allows, lambda: woken.append(1), FakeClock())

    assert cold(False).request("ep", "AllTraffic") is False
    assert cold(True).request("ep", "Other") is False
    assert cold(True).request("nope", "x") is False
    assert desired(records) == 0 and woken == []


def test_an_endpoint_that_is_not_in_service_is_not_started(records: Records) -> None:
    records.endpoints.update("ep", lambda e: replace(e, status=EndpointStatus.DELETING))
    assert ColdStarts(records, lambda e, v: True, lambda: None, FakeClock()).request("ep", "AllTraffic") is False
    assert desired(records) == 0
